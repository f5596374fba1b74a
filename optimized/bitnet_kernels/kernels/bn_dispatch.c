/* bn_dispatch.c: CPU feature detection, the ISA switch, kernel variant table, thread pool. */
#include "bn_common.h"
#include "bn_api.h"


#define S (1 << BN_ISA_SCALAR)
#define A2 (1 << BN_ISA_AVX2)
#define A5 (1 << BN_ISA_AVX512)
#define NE (1 << BN_ISA_NEON)

/* which variants each kernel has; keep in step with the functions in the other files */
const int bn_kernel_masks[K_COUNT] = {
    [K_DOT_F32] = S | A2 | A5 | NE,
    [K_DEQUANT] = S | A2, /* hot types only; the rest are scalar */
    [K_RMS_NORM] = S | A2 | A5 | NE,
    [K_SOFTMAX] = S | A2 | A5,
    [K_ROPE] = S,
    [K_SWIGLU] = S | A2 | A5,
    [K_RELU2_GLU] = S | A2 | A5 | NE,
    [K_ATTENTION] = S | A2 | A5 | NE, /* AVX-512: the AVX2 loops, its own peer-order build */
    [K_PEER_OPS] = S | A2 | A5 | NE,
    [K_PEER_MATMUL] = S | A2 | A5 | NE,
};

static const char *const kernel_names[K_COUNT] = {
    "dot_f32", "dequantize_row",
    "rms_norm", "softmax", "rope", "swiglu", "relu2_glu", "attention", "peer_elementwise",
    "peer_matmul",
};

static int cpu_best = -1;
static int isa_requested = 99; /* "best available" */

int bn_cpu_isa(void) {
    if (cpu_best < 0) {
        int best = BN_ISA_SCALAR;
#if BN_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = BN_ISA_AVX2;
        if (best == BN_ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
            best = BN_ISA_AVX512;
#elif defined(__aarch64__)
        best = BN_ISA_NEON;
#endif
        cpu_best = best;
    }
    return cpu_best;
}

void bn_set_isa(int isa) { isa_requested = isa; }
int bn_isa_request(void) { return isa_requested; }

int bn_isa_effective(void) {
    int best = bn_cpu_isa();
    if (best == BN_ISA_NEON) return isa_requested == BN_ISA_SCALAR ? BN_ISA_SCALAR : BN_ISA_NEON;
    return isa_requested < best ? isa_requested : best;
}

int bn_pick(int kernel) {
    const int isa = bn_isa_effective();
    const int mask = bn_kernel_masks[kernel];
    if (isa == BN_ISA_NEON) return (mask & NE) ? BN_ISA_NEON : BN_ISA_SCALAR;
    for (int i = isa; i > BN_ISA_SCALAR; i--)
        if (mask & (1 << i)) return i;
    return BN_ISA_SCALAR;
}

int bn_kernel_count(void) { return K_COUNT; }
const char *bn_kernel_name(int k) { return (k >= 0 && k < K_COUNT) ? kernel_names[k] : ""; }
int bn_kernel_variant(int k) { return (k >= 0 && k < K_COUNT) ? bn_pick(k) : -1; }

/* ---- thread pool: persistent workers; the caller runs slice 0 ---------------------------- */

#define BN_MAX_THREADS 256

static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER; /* one parallel region at a time */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_start = PTHREAD_COND_INITIALIZER;
static pthread_cond_t cv_done = PTHREAD_COND_INITIALIZER;
static pthread_t workers[BN_MAX_THREADS];
static int n_workers = 0; /* workers 1..n_workers exist */
static uint64_t generation = 0;
static int pending = 0;
static bn_task_fn cur_fn;
static void *cur_ctx;
static int cur_nth;

static uint64_t start_generation[BN_MAX_THREADS];

static void *worker_main(void *arg) {
    const int ith = (int)(intptr_t)arg;
    /* subtle: start from the generation current when this worker was created (under
     * call_lock, before the bump of the call that needs it), not 0 and not whatever it is
     * when the thread first runs: either would run a stale task or miss the current one */
    uint64_t seen = start_generation[ith];
    pthread_mutex_lock(&mu);
    for (;;) {
        while (generation == seen) pthread_cond_wait(&cv_start, &mu);
        seen = generation;
        if (ith < cur_nth) {
            bn_task_fn fn = cur_fn;
            void *ctx = cur_ctx;
            const int nth = cur_nth;
            pthread_mutex_unlock(&mu);
            fn(ctx, ith, nth);
            pthread_mutex_lock(&mu);
            if (--pending == 0) pthread_cond_signal(&cv_done);
        }
    }
    return NULL;
}

/* subtle: a fork()ed child has none of the parent's workers; forget them there, or the
 * child's first parallel call would wait forever (e.g. multiprocessing's fork start). */
static void forget_workers_in_child(void) {
    pthread_mutex_init(&call_lock, NULL);
    pthread_mutex_init(&mu, NULL);
    pthread_cond_init(&cv_start, NULL);
    pthread_cond_init(&cv_done, NULL);
    n_workers = 0;
    pending = 0;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, forget_workers_in_child); }

void bn_parallel(bn_task_fn fn, void *ctx, int nth) {
    if (nth > BN_MAX_THREADS) nth = BN_MAX_THREADS;
    if (nth <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&call_lock);
    while (n_workers < nth - 1) {
        start_generation[n_workers + 1] = generation;
        if (pthread_create(&workers[n_workers + 1], NULL, worker_main, (void *)(intptr_t)(n_workers + 1)) != 0)
            break;
        pthread_detach(workers[n_workers + 1]);
        n_workers++;
    }
    if (nth > n_workers + 1) nth = n_workers + 1; /* could not start more threads */
    pthread_mutex_lock(&mu);
    cur_fn = fn;
    cur_ctx = ctx;
    cur_nth = nth;
    pending = nth - 1;
    generation++;
    pthread_cond_broadcast(&cv_start);
    pthread_mutex_unlock(&mu);
    fn(ctx, 0, nth);
    pthread_mutex_lock(&mu);
    while (pending > 0) pthread_cond_wait(&cv_done, &mu);
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&call_lock);
}

int bn_max_threads(void) { return BN_MAX_THREADS; }

/* ---- barrier for the fused forwards' parallel regions -------------------------------------- */

static inline void cpu_relax(void) {
#if BN_X86
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#define BN_SPINS 1000 /* about 20-40 us of pause before a waiter sleeps */

void bn_barrier_init(bn_barrier *b) {
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
}

void bn_barrier_destroy(bn_barrier *b) {
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
}

void bn_barrier_wait(bn_barrier *b, int nth) {
    if (nth <= 1) return;
    const int phase = __atomic_load_n(&b->phase, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == nth) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        pthread_mutex_lock(&b->mu); /* a waiter checks phase under mu: no lost wake-up */
        __atomic_store_n(&b->phase, phase + 1, __ATOMIC_RELEASE);
        if (b->sleepers) pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        return;
    }
    /* subtle: spin briefly, then sleep: on a loaded machine (more runnable threads than
     * cores) the thread we wait for may be descheduled, and spinning, even with
     * sched_yield, keeps its core busy; measured 4x slower decode than 1 thread */
    for (int spins = 0; spins < BN_SPINS; spins++) {
        if (__atomic_load_n(&b->phase, __ATOMIC_ACQUIRE) != phase) return;
        cpu_relax();
    }
    pthread_mutex_lock(&b->mu);
    b->sleepers++;
    while (__atomic_load_n(&b->phase, __ATOMIC_ACQUIRE) == phase) pthread_cond_wait(&b->cv, &b->mu);
    b->sleepers--;
    pthread_mutex_unlock(&b->mu);
}
