/* bn_selftest_peer.c: the llama.cpp-order kernels, every variant against the scalar one, bit
 * for bit (bn_selftest.c runs it; so does the aarch64 qemu self-test, for NEON).
 *
 * The peer order is exact by construction, so the check is equality of the output bytes, with
 * guard floats around every output: matmuls of every peer type (repacked and plain, one token
 * with an odd row count, batches around the tinyBLAS / GEMM / tiled thresholds, threads 1 vs
 * 3), ggml_v_expf over its whole range, RMSNorm / softmax / SwiGLU on lengths around the
 * vector widths, RoPE (both modes, YaRN, frequency factors), attention on f16 and f32 caches,
 * and the fused forward (a batch, then one token, a batch with one output row).
 */
#include "bn_peer.h"
#include "bn_api.h"
#include "bn_api_forward.h"
#include "bn_selftest.h"

#include <stdio.h>
#include <stdlib.h>

/* weight types: block size, bytes per block, f16 scale offsets (-1: none) */
typedef struct { int type; const char *name; int block, size, d_off, m_off; } ptype;
static const ptype PTYPES[] = {
    {BN_F32, "f32", 1, 4, -1, -1},        {BN_F16, "f16", 1, 2, -1, -1},       {BN_Q8_0, "q8_0", 32, 34, 0, -1},
    {BN_Q4_0, "q4_0", 32, 18, 0, -1},     {BN_Q5_0, "q5_0", 32, 22, 0, -1},    {BN_Q4_1, "q4_1", 32, 20, 0, 2},
    {BN_Q5_1, "q5_1", 32, 24, 0, 2},      {BN_Q4_K, "q4_K", 256, 144, 0, 2},   {BN_Q5_K, "q5_K", 256, 176, 0, 2},
    {BN_Q6_K, "q6_K", 256, 210, 208, -1}, {BN_TQ1_0, "tq1_0", 256, 54, 52, -1}, {BN_TQ2_0, "tq2_0", 256, 66, 64, -1},
    {BN_I2_S, "i2_s", 128, 32, -1, -1},
};

static void fill(const ptype *t, uint8_t *w, int64_t n_rows, int64_t D) {
    const int64_t nblocks = n_rows * (D / t->block);
    for (int64_t i = 0; i < nblocks * t->size; i++) w[i] = (uint8_t)bn_st_rnd();
    if (t->type == BN_F32)
        for (int64_t i = 0; i < n_rows * D; i++) ((float *)w)[i] = bn_st_rndf();
    if (t->type == BN_F16)
        for (int64_t i = 0; i < n_rows * D; i++) ((bn_half *)w)[i] = bn_fp32_to_fp16(bn_st_rndf());
    for (int64_t b = 0; b < nblocks; b++) {
        const bn_half d = bn_fp32_to_fp16(0.01f + 0.02f * (bn_st_rndf() + 1.0f));
        const bn_half m = bn_fp32_to_fp16(0.004f * bn_st_rndf());
        if (t->d_off >= 0) memcpy(w + b * t->size + t->d_off, &d, 2);
        if (t->m_off >= 0) memcpy(w + b * t->size + t->m_off, &m, 2);
    }
    if (t->type == BN_I2_S) {
        const float scale = 0.7f;
        memcpy(w + nblocks * t->size, &scale, 4);
    }
}

/* every variant vs scalar for one op: run(ctx, out) under each ISA, outputs compared by bytes */
typedef int (*op_fn)(void *ctx, float *out, int threads);

static int same_everywhere(const int *isas, int n_isas, int verbose, const char *what, const char *detail, op_fn run,
                           void *ctx, size_t n_out) {
    int failures = 0;
    float *ref = bn_st_guarded_alloc(n_out), *got = bn_st_guarded_alloc(n_out);
    if (!ref || !got) {
        bn_st_guarded_free(ref);
        bn_st_guarded_free(got);
        return 1;
    }
    bn_set_isa(BN_ISA_SCALAR);
    if (run(ctx, ref, 1) != 0) failures++;
    for (int k = 0; k < n_isas && !failures; k++) {
        bn_set_isa(isas[k]);
        const int rc = run(ctx, got, 3);
        const int ok = rc == 0 && memcmp(got, ref, n_out * sizeof(float)) == 0;
        failures += bn_st_check(ok, verbose, what, isas[k], detail, 0.0);
        failures += bn_st_check(bn_st_guards_ok(got, n_out), verbose, what, isas[k], "guards", 0.0);
    }
    bn_st_guarded_free(ref);
    bn_st_guarded_free(got);
    return failures;
}

typedef struct { int type, mode; const uint8_t *w; int64_t N, D, T; const float *x; } mm_case;

static int run_mm(void *vc, float *out, int threads) {
    const mm_case *c = (const mm_case *)vc;
    return bn_matmul(c->type, c->w, c->N, c->D, c->x, c->T, out, c->mode, threads);
}

static int selftest_peer_matmul(const int *isas, int n_isas, int verbose) {
    /* N, D in blocks (two for blocks < 256), T, extra D for I2_S (a row ending with half a 256-block) */
    static const int64_t shapes[][4] = {{1, 1, 1, 0},  {7, 2, 1, 0},  {16, 2, 1, 0}, {5, 3, 1, 0},  {9, 5, 1, 128},
                                        {3, 1, 1, 128}, {12, 1, 2, 0}, {8, 3, 5, 0},  {24, 1, 8, 0}, {13, 2, 13, 0}};
    int failures = 0;
    char detail[128];
    for (size_t ti = 0; ti < sizeof(PTYPES) / sizeof(PTYPES[0]); ti++) {
        const ptype *t = &PTYPES[ti];
        for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
            const int64_t N = shapes[si][0], T = shapes[si][2];
            const int64_t D = (t->block > 1 ? shapes[si][1] * (t->block < 256 ? 2 * t->block : t->block) : 48 * shapes[si][1] + 16) +
                              (t->type == BN_I2_S ? shapes[si][3] : 0);
            uint8_t *w = (uint8_t *)malloc((size_t)(N * (D / t->block) * t->size) + 32);
            float *x = (float *)malloc(sizeof(float) * (size_t)(T * D));
            if (!w || !x) { failures++; free(w); free(x); continue; }
            fill(t, w, N, D);
            for (int64_t i = 0; i < T * D; i++) x[i] = bn_st_rndf() * 3.0f;
            for (int mode = 1; mode <= 2; mode++) {
                mm_case c = {t->type, mode, w, N, D, T, x};
                snprintf(detail, sizeof(detail), "%s mode=%d N=%lld D=%lld T=%lld", t->name, mode, (long long)N,
                         (long long)D, (long long)T);
                failures += same_everywhere(isas, n_isas, verbose, "peer matmul", detail, run_mm, &c, (size_t)(T * N));
            }
            free(w);
            free(x);
        }
    }
    return failures;
}

typedef struct { int op; const float *a, *b, *w; int64_t rows, n; bn_rope_params rope; const int64_t *pos; } ew_case;

static int run_ew(void *vc, float *out, int threads) {
    const ew_case *c = (const ew_case *)vc;
    (void)threads;
    switch (c->op) {
    case 0: bn_peer_expf(c->a, out, c->rows * c->n); return 0;
    case 1: bn_peer_rms_norm(c->a, c->w, out, c->rows, c->n, 1e-5f); return 0;
    case 2: bn_peer_softmax(c->a, out, c->rows, c->n); return 0;
    case 3: bn_peer_swiglu(c->a, c->b, out, c->rows, c->n); return 0;
    default: return bn_peer_rope(c->a, out, c->rows, 1, c->n, c->pos, &c->rope);
    }
}

static int selftest_peer_elementwise(const int *isas, int n_isas, int verbose) {
    static const int64_t lens[] = {1, 7, 15, 16, 17, 64, 100, 577};
    int failures = 0;
    char detail[128];
    /* ggml_v_expf from the underflow to the overflow side, and special values */
    {
        enum { NX = 4096 };
        float *x = (float *)malloc(sizeof(float) * NX);
        if (!x) return 1;
        for (int i = 0; i < NX - 4; i++) x[i] = -110.0f + 200.0f * (float)i / (float)(NX - 4) + 0.01f * bn_st_rndf();
        x[NX - 4] = INFINITY;
        x[NX - 3] = -INFINITY;
        x[NX - 2] = 0.0f;
        x[NX - 1] = -0.0f;
        ew_case c = {0, x, NULL, NULL, 1, NX, {0}, NULL};
        failures += same_everywhere(isas, n_isas, verbose, "peer expf", "range", run_ew, &c, NX);
        free(x);
    }
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        const int64_t n = lens[li], rows = 3;
        float *a = (float *)malloc(sizeof(float) * (size_t)(rows * n)), *b = (float *)malloc(sizeof(float) * (size_t)(rows * n));
        float *w = (float *)malloc(sizeof(float) * (size_t)n);
        int64_t pos[3] = {0, 17, 4099};
        if (!a || !b || !w) { failures++; free(a); free(b); free(w); continue; }
        for (int64_t i = 0; i < rows * n; i++) { a[i] = bn_st_rndf() * 20.0f; b[i] = bn_st_rndf(); }
        for (int64_t i = 0; i < n; i++) w[i] = bn_st_rndf();
        a[0] = -INFINITY; /* a masked score */
        for (int op = 1; op <= 3; op++) {
            ew_case c = {op, op == 1 ? a + 1 : a, b, w, op == 1 ? 1 : rows, op == 1 ? n - 1 : n, {0}, NULL};
            if (c.n <= 0) continue;
            snprintf(detail, sizeof(detail), "op=%d n=%lld", op, (long long)n);
            failures += same_everywhere(isas, n_isas, verbose, "peer elementwise", detail, run_ew, &c, (size_t)(c.rows * c.n));
        }
        for (int mode = 0; mode <= 2 && n % 2 == 0; mode += 2)
            for (int variant = 0; variant < 3; variant++) {
                const float ff[4] = {1.0f, 1.5f, 2.0f, 4.0f};
                ew_case c = {4, b, NULL, NULL, rows, n, {(int)(n >= 8 ? 8 : n), mode, 4096, 10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f, NULL}, pos};
                if (variant == 1) { c.rope.ext_factor = 1.0f; c.rope.freq_scale = 0.25f; }
                if (variant == 2 && c.rope.n_dims == 8) c.rope.freq_factors = ff;
                snprintf(detail, sizeof(detail), "rope mode=%d n=%lld variant=%d", mode, (long long)n, variant);
                failures += same_everywhere(isas, n_isas, verbose, "peer rope", detail, run_ew, &c, (size_t)(rows * n));
            }
        free(a);
        free(b);
        free(w);
    }
    return failures;
}

typedef struct { const float *q; const void *k, *v; int f16; int64_t T, H, Hkv, d, K; const int64_t *qpos, *kvpos; } at_case;

static int run_attn(void *vc, float *out, int threads) {
    const at_case *c = (const at_case *)vc;
    return bn_attention(c->q, c->k, c->v, c->f16, c->T, c->H, c->Hkv, c->d, c->K, c->qpos, c->kvpos, 0, 0.3f, 1, out, threads);
}

static int selftest_peer_attention(const int *isas, int n_isas, int verbose) {
    static const int64_t cases[][5] = {{1, 4, 2, 64, 70}, {3, 6, 3, 32, 9}, {2, 2, 1, 17, 5}, {4, 4, 4, 80, 130}};
    int failures = 0;
    char detail[128];
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const int64_t T = cases[ci][0], H = cases[ci][1], Hkv = cases[ci][2], d = cases[ci][3], K = cases[ci][4];
        float *q = (float *)malloc(sizeof(float) * (size_t)(T * H * d));
        float *kf = (float *)malloc(sizeof(float) * (size_t)(K * Hkv * d)), *vf = (float *)malloc(sizeof(float) * (size_t)(K * Hkv * d));
        bn_half *kh = (bn_half *)malloc(2 * (size_t)(K * Hkv * d)), *vh = (bn_half *)malloc(2 * (size_t)(K * Hkv * d));
        int64_t *qpos = (int64_t *)malloc(sizeof(int64_t) * (size_t)T), *kvpos = (int64_t *)malloc(sizeof(int64_t) * (size_t)K);
        if (q && kf && vf && kh && vh && qpos && kvpos) {
            for (int64_t i = 0; i < T * H * d; i++) q[i] = bn_st_rndf() * 2.0f;
            for (int64_t i = 0; i < K * Hkv * d; i++) {
                kf[i] = bn_st_rndf();
                vf[i] = bn_st_rndf();
                kh[i] = bn_fp32_to_fp16(kf[i]);
                vh[i] = bn_fp32_to_fp16(vf[i]);
            }
            for (int64_t k = 0; k < K; k++) kvpos[k] = (k == 2 && K > 3) ? -1 : k;
            for (int64_t t = 0; t < T; t++) qpos[t] = K - T + t;
            for (int f16 = 0; f16 < 2; f16++) {
                at_case c = {q, f16 ? (const void *)kh : (const void *)kf, f16 ? (const void *)vh : (const void *)vf,
                             f16, T, H, Hkv, d, K, qpos, kvpos};
                snprintf(detail, sizeof(detail), "f16=%d T=%lld d=%lld K=%lld", f16, (long long)T, (long long)d, (long long)K);
                failures += same_everywhere(isas, n_isas, verbose, "peer attention", detail, run_attn, &c, (size_t)(T * H * d));
            }
        } else {
            failures++;
        }
        free(q); free(kf); free(vf); free(kh); free(vh); free(qpos); free(kvpos);
    }
    return failures;
}

int bn_selftest_peer(const int *isas, int n_isas, int verbose) {
    int failures = selftest_peer_matmul(isas, n_isas, verbose);
    failures += selftest_peer_elementwise(isas, n_isas, verbose);
    failures += selftest_peer_attention(isas, n_isas, verbose);
    return failures;
}
