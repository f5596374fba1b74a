/* bn_peer_forward.c: attention and the fused forward of all layers in llama.cpp's float order.
 *
 * The graph is llama.cpp's llama / bitnet graph (src/models/llama.cpp, bitnet.cpp) evaluated the way its CPU
 * backend does for one ubatch of T tokens: every matmul through bn_peer_mm (the kernel order
 * llama.cpp picks for that matmul's row count), RMSNorm / RoPE / softmax / SwiGLU through
 * bn_peer_ops.c, and attention with llama.cpp's flash-attention kernel (bn_peer_fattn.c, when
 * bn_model.flash_attn is set) or without it:
 *   kq = K . q  (F16 cache: q rounded to f16; tinyBLAS for T >= 2 and d % 16 == 0, else
 *               ggml_vec_dot_f16; F32 cache: q is a permuted view, so ggml_vec_dot_f32)
 *   p  = softmax(kq * scale + mask) over the 64-padded row (llama.cpp pads its KV view to
 *        256 cells; masked cells add exact zeros, so both paddings give the same sums)
 *   kqv = V . p (p rounded to f16 with an F16 cache; tinyBLAS for T >= 2 and d % 4 == 0)
 * and, in the last layer, the FFN only for the output rows (llama.cpp's inp_out_ids
 * get_rows): their matmuls have n_out rows, which picks their kernels.
 *
 * Work split in one parallel region (spin barriers "|" between steps): for T >= 4 the
 * per-token steps (norms, activation quantization, residual adds) split token rows across
 * threads and share their results; for fewer tokens every thread computes them privately
 * (same bits) and saves the barriers. Matmuls split output features; attention splits
 * (token, head) pairs (one token: a thread runs the query heads of its kv heads right after
 * storing their keys and values, no barrier).
 */
#include "bn_peer.h"
#include "bn_api.h"
#include "bn_api_forward.h"

#include <stdlib.h>

/* ================================================================================= */
/* attention                                                                          */

static int64_t pad64(int64_t k) { return (k + 63) / 64 * 64; }

int64_t bn_peer_attn_scratch(int64_t K, int64_t d) { return pad64(K) + 65 * d + 16; }

static inline __attribute__((always_inline)) void axpy_generic(float *al, float p, const uint8_t *vr, int f16, int64_t d) {
    for (int64_t j = 0; j < d; j++) al[j] = fmaf(p, kv_at(vr, f16, j), al[j]);
}

/* o[j] for j < d from the lane-major accumulators: kqv_tiny: reduce16 over acc[l d + j];
 * else the 4 registers combined first ((r0 + r2) + (r1 + r3)), as ggml_vec_dot_f16 does */
static inline __attribute__((always_inline)) void out_generic(const float *acc, int64_t d, int tiny, float *o) {
    for (int64_t j = 0; j < d; j++) {
        float x[16];
        for (int l = 0; l < 16; l++)
            x[l] = tiny ? acc[l * d + j] : (acc[l * d + j] + acc[(32 + l) * d + j]) + (acc[(16 + l) * d + j] + acc[(48 + l) * d + j]);
        o[j] = bn_reduce16(x); /* Kp % 64 == 0: no tail */
    }
}

/* the three inner loops of attention, per ISA (the same float operations in the same order) */
typedef struct {
    float (*dot)(const float *q, const uint8_t *kr, int f16, int64_t n, int tiny);
    void (*axpy)(float *al, float p, const uint8_t *vr, int f16, int64_t d);
    void (*out)(const float *acc, int64_t d, int tiny, float *o);
} attn_loops;

static inline __attribute__((always_inline)) void attn_core(const bn_peer_attn *a, int64_t t, int64_t h,
                                                            const float *qr, float *scratch, const attn_loops *lp) {
    const int f16 = a->kv_f16;
    const int64_t d = a->d, K = a->K, Kp = pad64(K), kvh = h / (a->H / a->Hkv);
    const size_t esz = f16 ? 2 : 4, row = (size_t)(a->Hkv * d) * esz;
    float *s = scratch, *qv = s + Kp, *acc = qv + d;
    for (int64_t i = 0; i < d; i++) qv[i] = f16 ? round_f16(qr[i]) : qr[i];
    /* kq: F16 K through tinyBLAS for batches; F32 K stays on ggml_vec_dot_f32 (q is a view) */
    const int kq_tiny = f16 && a->T >= 2 && d % 16 == 0;
    const int64_t qp = a->q_pos[t];
    for (int64_t k = 0; k < Kp; k++) {
        const int64_t kp = k < K ? a->kv_pos[k] : -1;
        s[k] = (kp < 0 || kp > qp) ? -INFINITY
                                   : lp->dot(qv, a->k + k * row + (size_t)kvh * d * esz, f16, d, kq_tiny) * a->scale;
    }
    bn_peer_softmax_row(s, s, Kp);
    /* kqv = V . p along the cells: lane l of register r collects cell k = 64 step + 16 r + l
     * (one register for tinyBLAS); acc is lane-major (acc[(16 r + l) d + j]) so each cell is
     * an axpy. Cells with p = 0 (masked, padding) add exact zeros and are skipped. */
    const int kqv_tiny = a->T >= 2 && d % 4 == 0;
    const int nreg = kqv_tiny ? 1 : 4;
    memset(acc, 0, sizeof(float) * (size_t)(nreg * 16 * d));
    for (int64_t k = 0; k < K; k++) {
        const float p = f16 ? round_f16(s[k]) : s[k];
        if (p == 0.0f) continue;
        lp->axpy(acc + ((kqv_tiny ? 0 : (k / 16) % 4) * 16 + k % 16) * d, p, a->v + k * row + (size_t)kvh * d * esz,
                 f16, d);
    }
    lp->out(acc, d, kqv_tiny, a->out + (t * a->H + h) * d);
}

static float dot_ref(const float *q, const uint8_t *kr, int f16, int64_t n, int tiny) { return peer_dot(q, kr, f16, n, tiny); }
static void axpy_ref(float *al, float p, const uint8_t *vr, int f16, int64_t d) { axpy_generic(al, p, vr, f16, d); }
static void out_ref(const float *acc, int64_t d, int tiny, float *o) { out_generic(acc, d, tiny, o); }
static const attn_loops LOOPS_REF = {dot_ref, axpy_ref, out_ref};
static void attn_ref(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *s) {
    attn_core(a, t, h, qr, s, &LOOPS_REF);
}
#if BN_X86
static BN_TARGET_AVX2 float dot_avx2(const float *q, const uint8_t *kr, int f16, int64_t n, int tiny) {
    return peer_dot(q, kr, f16, n, tiny);
}
static BN_TARGET_AVX2 void axpy_avx2(float *al, float p, const uint8_t *vr, int f16, int64_t d) {
    axpy_generic(al, p, vr, f16, d);
}
static BN_TARGET_AVX2 void out_avx2(const float *acc, int64_t d, int tiny, float *o) { out_generic(acc, d, tiny, o); }
static const attn_loops LOOPS_AVX2 = {dot_avx2, axpy_avx2, out_avx2};
static BN_TARGET_AVX2 void attn_avx2(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *s) {
    attn_core(a, t, h, qr, s, &LOOPS_AVX2);
}

/* AVX-512 with an F16 cache and d % 16 == 0: the same lanes as registers, F16C conversion */
static BN_TARGET_AVX512 float dot_avx512(const float *q, const uint8_t *kr, int f16, int64_t n, int tiny) {
    if (!f16 || n % 16) return peer_dot(q, kr, f16, n, tiny);
    float x[16];
    if (tiny) {
        __m512 l16 = _mm512_setzero_ps();
        for (int64_t c = 0; c < n; c += 16)
            l16 = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kr + 2 * c))), l16);
        _mm512_storeu_ps(x, l16);
        return bn_reduce16(x);
    }
    const int64_t np = n - n % 64;
    __m512 r[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t st = 0; st < np; st += 64)
        for (int k = 0; k < 4; k++)
            r[k] = _mm512_fmadd_ps(_mm512_loadu_ps(q + st + 16 * k),
                                   _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kr + 2 * (st + 16 * k)))), r[k]);
    _mm512_storeu_ps(x, _mm512_add_ps(_mm512_add_ps(r[0], r[2]), _mm512_add_ps(r[1], r[3])));
    double total = (double)bn_reduce16(x);
    for (int64_t i = np; i < n; i++) total += (double)(q[i] * kv_at(kr, 1, i));
    return (float)total;
}

static BN_TARGET_AVX512 void axpy_avx512(float *al, float p, const uint8_t *vr, int f16, int64_t d) {
    if (!f16 || d % 16) {
        axpy_generic(al, p, vr, f16, d);
        return;
    }
    const __m512 pv = _mm512_set1_ps(p);
    for (int64_t j = 0; j < d; j += 16)
        _mm512_storeu_ps(al + j, _mm512_fmadd_ps(pv, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vr + 2 * j))),
                                                 _mm512_loadu_ps(al + j)));
}

/* out_generic with 16 outputs j per register: the same adds, lane by lane */
static BN_TARGET_AVX512 void out_avx512(const float *acc, int64_t d, int tiny, float *o) {
    if (d % 16) {
        out_generic(acc, d, tiny, o);
        return;
    }
    for (int64_t j = 0; j < d; j += 16) {
        __m512 x[16];
        for (int l = 0; l < 16; l++)
            x[l] = tiny ? _mm512_loadu_ps(acc + l * d + j)
                        : _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(acc + l * d + j), _mm512_loadu_ps(acc + (32 + l) * d + j)),
                                        _mm512_add_ps(_mm512_loadu_ps(acc + (16 + l) * d + j), _mm512_loadu_ps(acc + (48 + l) * d + j)));
        __m512 v[8]; /* bn_reduce16: v[i] = x[8 + i] + x[i], then bn_hsum8 */
        for (int i = 0; i < 8; i++) v[i] = _mm512_add_ps(x[8 + i], x[i]);
        const __m512 r0 = _mm512_add_ps(v[4], v[0]), r1 = _mm512_add_ps(v[5], v[1]);
        const __m512 r2 = _mm512_add_ps(v[6], v[2]), r3 = _mm512_add_ps(v[7], v[3]);
        _mm512_storeu_ps(o + j, _mm512_add_ps(_mm512_add_ps(r0, r2), _mm512_add_ps(r1, r3)));
    }
}
static const attn_loops LOOPS_AVX512 = {dot_avx512, axpy_avx512, out_avx512};
static BN_TARGET_AVX512 void attn_avx512(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *s) {
    attn_core(a, t, h, qr, s, &LOOPS_AVX512);
}
#endif

void bn_peer_attn_one(const bn_peer_attn *all, int64_t t, int64_t h, const float *qr, float *scratch) {
    bn_peer_attn view = *all; /* query t's mask row */
    const bn_peer_attn *a = &view;
    view.kv_pos = all->kv_pos + t * all->kv_stride;
    if (a->flash) {
        bn_peer_fattn_one(a, t, h, qr, scratch);
        return;
    }
    switch (bn_pick(K_ATTENTION)) {
#if BN_X86
    case BN_ISA_AVX512: attn_avx512(a, t, h, qr, scratch); return;
    case BN_ISA_AVX2: attn_avx2(a, t, h, qr, scratch); return;
#endif
    default: attn_ref(a, t, h, qr, scratch); /* NEON: the compiler's vectorization of the same loops */
    }
}

/* ================================================================================= */
/* the fused forward                                                                 */

enum { MM_Q, MM_K, MM_V, MM_O, MM_GATE, MM_UP, MM_DOWN, MM_COUNT };
/* the matmuls of one input: q k v | o | gate up | down */
static const int GROUP_OF[MM_COUNT] = {0, 0, 0, 1, 2, 2, 3};

typedef struct {
    const bn_model *m;
    float *x;       /* (T, D): the embeddings in; the last layer's FFN input out */
    float *out;     /* (n_out, D): the final residual of the output rows */
    int64_t T, n_out;
    const int64_t *positions, *cells, *kv_pos; /* cells: where each token's keys and values go */
    uint8_t *k_cache, *v_cache;
    int kv_f16, shared;
    int64_t n_ctx, n_kv, kv_stride;
    const float *rope; /* (T, rope_dims) cos/sin caches */
    float *q, *k, *v, *attn, *o, *gate, *up; /* shared (T, width) matmul outputs */
    uint8_t *blocks;   /* per-token buffers: one block (shared mode) or one per thread */
    uint8_t *scratch;  /* per thread: attention scratch and a roped q row */
    size_t blk_stride, scratch_stride, act_bytes[MM_COUNT];
    bn_barrier bar;
} pfwd;

/* per-token buffers: x (T, D) residual, y (n_out, D) the output rows' residual, h (T, wmax)
 * norm outputs, act (T, F) FFN activations, and the quantized activations of each matmul */
typedef struct {
    float *x, *y, *h, *act, *scratch;
    uint8_t *slot[MM_COUNT];
} pbufs;

static size_t blk_bytes(const bn_model *m, int64_t T, int64_t n_out, const size_t *act_bytes) {
    const int64_t D = m->n_embd, qw = m->n_head * m->head_dim, wmax = D > qw ? D : qw;
    size_t n = sizeof(float) * ((size_t)T * (size_t)(D + wmax + m->n_ff) + (size_t)(n_out * D)) + 64;
    for (int s = 0; s < MM_COUNT; s++) n += (act_bytes[s] + 63) & ~(size_t)63;
    return (n + 63) & ~(size_t)63;
}

static pbufs bufs_at(const pfwd *c, int ith) {
    const bn_model *m = c->m;
    const int64_t T = c->T, D = m->n_embd, qw = m->n_head * m->head_dim, wmax = D > qw ? D : qw;
    pbufs b;
    b.x = (float *)(c->blocks + (c->shared ? 0 : (size_t)ith * c->blk_stride));
    b.y = b.x + T * D;
    b.h = b.y + c->n_out * D;
    b.act = b.h + T * wmax;
    uint8_t *p = (uint8_t *)(((uintptr_t)(b.act + T * m->n_ff) + 63) & ~(uintptr_t)63);
    for (int s = 0; s < MM_COUNT; s++) {
        b.slot[s] = p;
        p += (c->act_bytes[s] + 63) & ~(size_t)63;
    }
    b.scratch = (float *)(c->scratch + (size_t)ith * c->scratch_stride);
    return b;
}

static void linear_post(const bn_linear *l, float *y, int64_t T, int64_t n0, int64_t n1) {
    if (l->scale == 0.0f && !l->bias) return;
    for (int64_t t = 0; t < T; t++) {
        float *r = y + t * l->n_out;
        if (l->scale != 0.0f)
            for (int64_t n = n0; n < n1; n++) r[n] = r[n] * l->scale;
        if (l->bias)
            for (int64_t n = n0; n < n1; n++) r[n] = r[n] + l->bias[n];
    }
}

/* this thread's share of the output features of the matmuls mm[0..cnt) (one input) */
static void mm_split(bn_peer_mm *mm, float *const *outs, const bn_linear *const *lins, int cnt, int ith, int nth) {
    int64_t total = 0;
    for (int i = 0; i < cnt; i++) total += mm[i].N;
    const int64_t chunk = (total + nth - 1) / nth;
    const int64_t r0 = chunk * ith, r1 = r0 + chunk < total ? r0 + chunk : total;
    int64_t base = 0;
    for (int i = 0; i < cnt; i++) {
        const int64_t a = r0 > base ? r0 - base : 0, b = r1 - base < mm[i].N ? r1 - base : mm[i].N;
        if (a < b) {
            bn_peer_mm_rows(&mm[i], outs[i], mm[i].N, a, b, 0, mm[i].T);
            linear_post(lins[i], outs[i], mm[i].T, a, b);
        }
        base += mm[i].N;
    }
}

/* quantize rows [r0, r1) of `in` for the matmuls of group `grp`; a matmul whose type an
 * earlier one of the group has reads that one's codes */
static void quantize_group(bn_peer_mm *mm, int grp, const float *in, int64_t r0, int64_t r1) {
    for (int s = 0; s < MM_COUNT; s++) {
        if (GROUP_OF[s] != grp) continue;
        int same = -1;
        for (int p = 0; p < s && same < 0; p++)
            if (GROUP_OF[p] == grp && mm[p].type == mm[s].type) same = p;
        if (same >= 0) mm[s].act = mm[same].act;
        else bn_peer_mm_quantize(&mm[s], in, r0, r1);
    }
}

/* the rows of n this thread runs the per-token steps for: all of them (privately) in
 * private mode, its share in shared mode */
static void my_rows(const pfwd *c, int64_t n, int ith, int nth, int64_t *r0, int64_t *r1) {
    if (!c->shared) {
        *r0 = 0;
        *r1 = n;
        return;
    }
    const int64_t chunk = (n + nth - 1) / nth;
    *r0 = chunk * ith < n ? chunk * ith : n;
    *r1 = *r0 + chunk < n ? *r0 + chunk : n;
}

static void sync_shared(pfwd *c, int nth) {
    if (c->shared) bn_barrier_wait(&c->bar, nth);
}

/* rope the keys of kv heads g0..g1 for every token and store keys and values in the cache */
static void store_kv(pfwd *c, int il, int64_t g0, int64_t g1) {
    const bn_model *m = c->m;
    const int64_t hd = m->head_dim, kw = m->n_head_kv * hd;
    const size_t esz = c->kv_f16 ? 2 : 4;
    const size_t lay = (size_t)il * (size_t)c->n_ctx * (size_t)kw * esz;
    for (int64_t t = 0; t < c->T; t++) {
        const size_t cell = lay + (size_t)c->cells[t] * (size_t)kw * esz;
        for (int64_t g = g0; g < g1; g++) {
            float *kr = c->k + t * kw + g * hd;
            const float *vr = c->v + t * kw + g * hd;
            bn_peer_rope_row(c->rope + t * m->rope.n_dims, kr, kr, hd, m->rope.n_dims, m->rope.mode);
            if (c->kv_f16) {
                bn_half *kd = (bn_half *)(c->k_cache + cell) + g * hd, *vd = (bn_half *)(c->v_cache + cell) + g * hd;
                for (int64_t i = 0; i < hd; i++) {
                    kd[i] = bn_fp32_to_fp16(kr[i]);
                    vd[i] = bn_fp32_to_fp16(vr[i]);
                }
            } else {
                memcpy(c->k_cache + cell + (size_t)(g * hd) * 4, kr, (size_t)hd * 4);
                memcpy(c->v_cache + cell + (size_t)(g * hd) * 4, vr, (size_t)hd * 4);
            }
        }
    }
}

static void attention(pfwd *c, int il, const pbufs *b, int ith, int nth) {
    const bn_model *m = c->m;
    const int64_t T = c->T, H = m->n_head, Hkv = m->n_head_kv, hd = m->head_dim, group = H / Hkv;
    const size_t lay = (size_t)il * (size_t)c->n_ctx * (size_t)(Hkv * hd) * (c->kv_f16 ? 2 : 4);
    const int64_t gchunk = (Hkv + nth - 1) / nth;
    const int64_t g0 = gchunk * ith < Hkv ? gchunk * ith : Hkv, g1 = g0 + gchunk < Hkv ? g0 + gchunk : Hkv;
    store_kv(c, il, g0, g1);
    int64_t p0, p1;
    if (T == 1) { /* the query heads of this thread's kv heads: their cells are ours */
        p0 = g0 * group;
        p1 = g1 * group;
    } else {
        bn_barrier_wait(&c->bar, nth);
        const int64_t chunk = (T * H + nth - 1) / nth;
        p0 = chunk * ith < T * H ? chunk * ith : T * H;
        p1 = p0 + chunk < T * H ? p0 + chunk : T * H;
    }
    const bn_peer_attn a = {c->k_cache + lay, c->v_cache + lay, c->kv_f16, T, H, Hkv, hd, c->n_kv,
                            c->positions, c->kv_pos, c->kv_stride, m->kq_scale, c->attn, m->flash_attn, m->fa_threads,
                            m->fa_view};
    float *qr = b->scratch + bn_peer_attn_scratch(c->n_kv, hd);
    for (int64_t p = p0; p < p1; p++) {
        const int64_t t = p / H, h = p % H;
        bn_peer_rope_row(c->rope + t * m->rope.n_dims, c->q + p * hd, qr, hd, m->rope.n_dims, m->rope.mode);
        bn_peer_attn_one(&a, t, h, qr, b->scratch);
    }
}

/* the FFN of layer L on the n rows of x (their residual, updated in place) */
static void ffn(pfwd *c, const bn_layer *L, bn_peer_mm *mm, const pbufs *b, float *x, int64_t n, int ith, int nth) {
    const bn_model *m = c->m;
    const int64_t D = m->n_embd, F = m->n_ff;
    const bn_linear *lins[MM_COUNT] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
    int64_t r0, r1;
    for (int s = MM_GATE; s <= MM_DOWN; s++)
        bn_peer_mm_setup(&mm[s], lins[s]->type, lins[s]->w, lins[s]->n_out, lins[s]->n_in, n, b->slot[s]);
    my_rows(c, n, ith, nth, &r0, &r1);
    bn_peer_rms_norm(x + r0 * D, L->ffn_norm, b->h + r0 * D, r1 - r0, D, m->eps);
    quantize_group(mm, 2, b->h, r0, r1);
    sync_shared(c, nth);
    float *outs[2] = {c->gate, c->up};
    mm_split(mm + MM_GATE, outs, lins + MM_GATE, 2, ith, nth);
    bn_barrier_wait(&c->bar, nth);
    for (int64_t r = r0; r < r1; r++) {
        float *ar = b->act + r * F;
        if (m->ffn_relu2) bn_relu2_glu(c->gate + r * F, c->up + r * F, ar, F);
        else bn_peer_swiglu_row(c->gate + r * F, c->up + r * F, ar, F);
        if (L->ffn_sub_norm) bn_peer_rms_norm_row(ar, L->ffn_sub_norm, ar, F, m->eps);
    }
    quantize_group(mm, 3, b->act, r0, r1);
    sync_shared(c, nth);
    float *dout[1] = {c->o};
    mm_split(mm + MM_DOWN, dout, lins + MM_DOWN, 1, ith, nth);
    bn_barrier_wait(&c->bar, nth);
    for (int64_t i = r0 * D; i < r1 * D; i++) x[i] = x[i] + c->o[i];
}

/* one layer up to the FFN input: x (T, D) gets the attention residual */
static void attn_block(pfwd *c, const bn_layer *L, bn_peer_mm *mm, const pbufs *b, float *x, int il, int ith, int nth) {
    const bn_model *m = c->m;
    const int64_t T = c->T, D = m->n_embd, qw = m->n_head * m->head_dim;
    const bn_linear *lins[MM_COUNT] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
    int64_t r0, r1;
    my_rows(c, T, ith, nth, &r0, &r1);
    for (int s = 0; s <= MM_O; s++)
        bn_peer_mm_setup(&mm[s], lins[s]->type, lins[s]->w, lins[s]->n_out, lins[s]->n_in, T, b->slot[s]);
    bn_peer_rms_norm(x + r0 * D, L->attn_norm, b->h + r0 * D, r1 - r0, D, m->eps);
    quantize_group(mm, 0, b->h, r0, r1);
    sync_shared(c, nth);
    float *qkv[3] = {c->q, c->k, c->v};
    mm_split(mm, qkv, lins, 3, ith, nth);
    bn_barrier_wait(&c->bar, nth);
    attention(c, il, b, ith, nth);
    bn_barrier_wait(&c->bar, nth);
    if (L->attn_sub_norm) bn_peer_rms_norm(c->attn + r0 * qw, L->attn_sub_norm, b->h + r0 * qw, r1 - r0, qw, m->eps);
    else memcpy(b->h + r0 * qw, c->attn + r0 * qw, sizeof(float) * (size_t)((r1 - r0) * qw));
    quantize_group(mm, 1, b->h, r0, r1);
    sync_shared(c, nth);
    float *oo[1] = {c->o};
    mm_split(mm + MM_O, oo, lins + MM_O, 1, ith, nth);
    bn_barrier_wait(&c->bar, nth);
    for (int64_t i = r0 * D; i < r1 * D; i++) x[i] = x[i] + c->o[i];
}

static void pfwd_task(void *vctx, int ith, int nth) {
    pfwd *c = (pfwd *)vctx;
    const bn_model *m = c->m;
    const int64_t T = c->T, D = m->n_embd;
    const pbufs b = bufs_at(c, ith);
    float *x = c->shared ? c->x : b.x;
    float *y = c->shared ? c->out : b.y;
    if (!c->shared) memcpy(x, c->x, sizeof(float) * (size_t)(T * D));
    bn_peer_mm mm[MM_COUNT];
    for (int il = 0; il < m->n_layer; il++) {
        const bn_layer *L = &m->layers[il];
        attn_block(c, L, mm, &b, x, il, ith, nth);
        if (il < m->n_layer - 1) {
            ffn(c, L, mm, &b, x, T, ith, nth);
            continue;
        }
        /* the last layer: every row is an output (x ends as the final residual), or the FFN
         * of the output rows only, on a copy (x keeps the FFN input) */
        int64_t r0, r1;
        if (c->n_out == T) {
            ffn(c, L, mm, &b, x, T, ith, nth);
            my_rows(c, T, ith, nth, &r0, &r1);
            if (c->shared && c->out != x) memcpy(c->out + r0 * D, x + r0 * D, sizeof(float) * (size_t)((r1 - r0) * D));
            break;
        }
        if (c->n_out == 0) break;
        sync_shared(c, nth); /* the output rows' residuals come from other threads' rows */
        my_rows(c, c->n_out, ith, nth, &r0, &r1);
        memcpy(y + r0 * D, x + (T - c->n_out + r0) * D, sizeof(float) * (size_t)((r1 - r0) * D));
        ffn(c, L, mm, &b, y, c->n_out, ith, nth);
    }
    if (ith == 0 && !c->shared) {
        memcpy(c->x, x, sizeof(float) * (size_t)(T * D));
        const float *src = c->n_out == T ? c->x : y;
        if (c->out && c->n_out > 0 && c->out != src) memcpy(c->out, src, sizeof(float) * (size_t)(c->n_out * D));
    }
}

/* the last layer's FFN for rows already through its attention: x (T, D) in place */
static void ptail_task(void *vctx, int ith, int nth) {
    pfwd *c = (pfwd *)vctx;
    const pbufs b = bufs_at(c, ith);
    bn_peer_mm mm[MM_COUNT];
    float *x = c->shared ? c->x : b.x;
    if (!c->shared) memcpy(x, c->x, sizeof(float) * (size_t)(c->T * c->m->n_embd));
    ffn(c, &c->m->layers[c->m->n_layer - 1], mm, &b, x, c->T, ith, nth);
    if (ith == 0 && !c->shared) memcpy(c->x, x, sizeof(float) * (size_t)(c->T * c->m->n_embd));
}

/* sizes, buffers and the parallel region shared by bn_peer_forward and bn_peer_forward_tail */
static int prun(pfwd *c, int n_threads, void (*task)(void *, int, int)) {
    const bn_model *m = c->m;
    const int64_t T = c->T, D = m->n_embd, qw = m->n_head * m->head_dim, kw = m->n_head_kv * m->head_dim, F = m->n_ff;
    int nth = n_threads < 1 ? 1 : n_threads;
    if (nth > bn_max_threads()) nth = bn_max_threads();
    c->shared = T >= 4 && nth > 1;
    for (int il = 0; il < m->n_layer; il++) {
        const bn_layer *L = &m->layers[il];
        const bn_linear *lins[MM_COUNT] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (int s = 0; s < MM_COUNT; s++) {
            const size_t bytes = bn_peer_act_row_bytes(lins[s]->type, lins[s]->n_in) * (size_t)T;
            if (bytes > c->act_bytes[s]) c->act_bytes[s] = bytes;
        }
    }
    c->blk_stride = blk_bytes(m, T, c->n_out, c->act_bytes);
    c->scratch_stride = sizeof(float) * (size_t)((bn_peer_attn_scratch(c->n_kv, m->head_dim) + m->head_dim + 31) & ~(int64_t)15);
    const size_t shared_n = (size_t)T * (size_t)(2 * qw + 2 * kw + D + 2 * F);
    float *sh = (float *)malloc(sizeof(float) * shared_n + 64);
    uint8_t *blocks = (uint8_t *)malloc(c->blk_stride * (size_t)(c->shared ? 1 : nth) + 64);
    uint8_t *scratch = (uint8_t *)malloc(c->scratch_stride * (size_t)nth + 64);
    if (!sh || !blocks || !scratch) {
        free(sh);
        free(blocks);
        free(scratch);
        return -3;
    }
    float *p = sh;
    c->q = p; p += T * qw;
    c->k = p; p += T * kw;
    c->v = p; p += T * kw;
    c->attn = p; p += T * qw;
    c->o = p; p += T * D;
    c->gate = p; p += T * F;
    c->up = p;
    c->blocks = (uint8_t *)(((uintptr_t)blocks + 63) & ~(uintptr_t)63);
    c->scratch = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    bn_barrier_init(&c->bar);
    if (nth > 1) bn_parallel(task, c, nth);
    else task(c, 0, 1);
    bn_barrier_destroy(&c->bar);
    free(sh);
    free(blocks);
    free(scratch);
    return 0;
}

int bn_peer_forward(const bn_model *m, float *x, int64_t T, const int64_t *positions, const int64_t *cells,
                    void *k_cache, void *v_cache, int kv_f16, int64_t n_ctx, const int64_t *kv_pos, int64_t kv_stride,
                    int64_t n_kv, int n_threads, int64_t n_out, float *out) {
    if (T == 0) return 0;
    pfwd c;
    memset(&c, 0, sizeof(c));
    c.m = m;
    c.x = x;
    c.out = out;
    c.T = T;
    c.n_out = n_out;
    c.positions = positions;
    c.cells = cells;
    c.kv_pos = kv_pos;
    c.kv_stride = kv_stride;
    c.k_cache = (uint8_t *)k_cache;
    c.v_cache = (uint8_t *)v_cache;
    c.kv_f16 = kv_f16 != 0;
    c.n_ctx = n_ctx;
    c.n_kv = n_kv;
    float *rope = (float *)malloc(sizeof(float) * (size_t)(T * (m->rope.n_dims > 0 ? m->rope.n_dims : 1)));
    if (!rope) return -3;
    for (int64_t t = 0; t < T; t++) bn_peer_rope_cache(&m->rope, positions[t], rope + t * m->rope.n_dims);
    c.rope = rope;
    const int rc = prun(&c, n_threads, pfwd_task);
    free(rope);
    return rc;
}

int bn_peer_forward_tail(const bn_model *m, float *x, int64_t T, int n_threads) {
    if (T == 0 || m->n_layer == 0) return 0;
    pfwd c;
    memset(&c, 0, sizeof(c));
    c.m = m;
    c.x = x;
    c.T = T;
    return prun(&c, n_threads, ptail_task);
}
