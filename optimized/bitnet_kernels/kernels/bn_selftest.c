/* bn_selftest.c: every SIMD variant against the scalar *_ref, in C, with guard floats.
 *
 * bn_selftest() runs each kernel on random inputs of awkward sizes (N, T odd, one block,
 * three blocks for the two-blocks-per-register loops, f32 lengths not a multiple of 8/16)
 * under each ISA the CPU has and compares with the scalar variant (NMSE in double), and
 * checks the guard floats around every output. Used by the Python tests (through cffi,
 * also in the ASan/UBSan build) and by bn_selftest_main.c, the standalone binary the
 * aarch64 qemu script runs. Returns the number of failures.
 */
#include "bn_common.h"
#include "bn_api.h"
#include "bn_api_forward.h"
#include "bn_selftest.h"

#include <stdio.h>
#include <stdlib.h>

#define GUARD 16
#define GUARD_BITS 0x7FA5A5A5u /* a NaN payload no kernel produces */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
uint32_t bn_st_rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}
float bn_st_rndf(void) { return ((float)bn_st_rnd() / 4294967296.0f) * 2.0f - 1.0f; } /* [-1, 1) */

float *bn_st_guarded_alloc(size_t n) {
    float *p = (float *)malloc(sizeof(float) * (n + 2 * GUARD));
    if (!p) return NULL;
    for (size_t i = 0; i < n + 2 * GUARD; i++) { const uint32_t g = GUARD_BITS; memcpy(&p[i], &g, 4); }
    return p + GUARD;
}
int bn_st_guards_ok(const float *p, size_t n) {
    for (size_t i = 0; i < GUARD; i++) {
        uint32_t a, b;
        memcpy(&a, p - GUARD + i, 4);
        memcpy(&b, p + n + i, 4);
        if (a != GUARD_BITS || b != GUARD_BITS) return 0;
    }
    return 1;
}
void bn_st_guarded_free(float *p) { if (p) free(p - GUARD); }

static double nmse(const float *a, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    if (num != num) return INFINITY; /* NaN in the candidate */
    return den > 0 ? num / den : num;
}

/* bytes per block, weights per block, and where the fp16 scales sit (-1: none) */
typedef struct { int type; const char *name; int block, size, d_off, m_off; } wtype;
static const wtype WTYPES[] = {
    {BN_F32, "f32", 1, 4, -1, -1},       {BN_F16, "f16", 1, 2, -1, -1},
    {BN_Q8_0, "q8_0", 32, 34, 0, -1},    {BN_Q4_0, "q4_0", 32, 18, 0, -1},
    {BN_Q4_1, "q4_1", 32, 20, 0, 2},     {BN_Q4_K, "q4_K", QK_K, 144, 0, 2},
    {BN_Q6_K, "q6_K", QK_K, 210, 208, -1}, {BN_TQ1_0, "tq1_0", QK_K, 54, 52, -1},
    {BN_TQ2_0, "tq2_0", QK_K, 66, 64, -1}, {BN_I2_S, "i2_s", 128, 32, -1, -1},
};

static void fill_weights(const wtype *t, uint8_t *w, int64_t n_rows, int64_t D) {
    const int64_t nblocks = n_rows * (D / t->block);
    for (int64_t i = 0; i < nblocks * t->size; i++) w[i] = (uint8_t)bn_st_rnd();
    if (t->type == BN_F32) {
        float *f = (float *)w;
        for (int64_t i = 0; i < n_rows * D; i++) f[i] = bn_st_rndf();
    } else if (t->type == BN_F16) {
        bn_half *h = (bn_half *)w;
        for (int64_t i = 0; i < n_rows * D; i++) h[i] = bn_fp32_to_fp16(bn_st_rndf());
    }
    for (int64_t b = 0; b < nblocks; b++) {
        if (t->d_off >= 0) {
            const bn_half d = bn_fp32_to_fp16(0.01f + 0.02f * (bn_st_rndf() + 1.0f));
            memcpy(w + b * t->size + t->d_off, &d, 2);
        }
        if (t->m_off >= 0) {
            const bn_half m = bn_fp32_to_fp16(0.004f * bn_st_rndf());
            memcpy(w + b * t->size + t->m_off, &m, 2);
        }
    }
    if (t->type == BN_I2_S) {
        const float scale = 0.7f;
        memcpy(w + nblocks * t->size, &scale, 4);
    }
}

static const char *const ISA_NAME[] = {"scalar", "avx2", "avx512", "neon"};

int bn_st_check(int ok, int verbose, const char *what, int isa, const char *detail, double e) {
    if (!ok && verbose) fprintf(stderr, "FAIL %s [%s] %s (nmse %.3g)\n", what, ISA_NAME[isa], detail, e);
    return ok ? 0 : 1;
}

/* attention (f32 / f16 cache, plain / peer rounding) of each variant vs scalar */
static int selftest_attention(const int *isas, int n_isas, int verbose) {
    int failures = 0;
    static const int64_t cases[][5] = {{1, 4, 2, 8, 5}, {3, 6, 3, 37, 9}, {2, 2, 1, 64, 1}, {4, 4, 4, 17, 7}}; /* T H Hkv d K */
    char detail[128];
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const int64_t T = cases[ci][0], H = cases[ci][1], Hkv = cases[ci][2], d = cases[ci][3], K = cases[ci][4];
        float *q = (float *)malloc(sizeof(float) * (size_t)(T * H * d));
        float *kf = (float *)malloc(sizeof(float) * (size_t)(K * Hkv * d));
        float *vf = (float *)malloc(sizeof(float) * (size_t)(K * Hkv * d));
        bn_half *kh = (bn_half *)malloc(sizeof(bn_half) * (size_t)(K * Hkv * d));
        bn_half *vh = (bn_half *)malloc(sizeof(bn_half) * (size_t)(K * Hkv * d));
        int64_t qpos[8], kvpos[16];
        float *ref = bn_st_guarded_alloc((size_t)(T * H * d)), *got = bn_st_guarded_alloc((size_t)(T * H * d));
        if (!q || !kf || !vf || !kh || !vh || !ref || !got) { failures++; goto next; }
        for (int64_t i = 0; i < T * H * d; i++) q[i] = bn_st_rndf() * 2.0f;
        for (int64_t i = 0; i < K * Hkv * d; i++) {
            kf[i] = bn_st_rndf();
            vf[i] = bn_st_rndf();
            kh[i] = bn_fp32_to_fp16(kf[i]);
            vh[i] = bn_fp32_to_fp16(vf[i]);
        }
        for (int64_t k = 0; k < K; k++) kvpos[k] = (k == 2 && K > 3) ? -1 : k; /* an empty cell */
        for (int64_t t = 0; t < T; t++) qpos[t] = K - T + t;
        for (int f16 = 0; f16 < 2; f16++)
            for (int peer = 0; peer < 2; peer++) {
                const void *kk = f16 ? (const void *)kh : (const void *)kf, *vv = f16 ? (const void *)vh : (const void *)vf;
                bn_set_isa(BN_ISA_SCALAR);
                if (bn_attention(q, kk, vv, f16, T, H, Hkv, d, K, qpos, kvpos, 0, 0.3f, peer, ref, 1)) { failures++; continue; }
                for (int k = 0; k < n_isas; k++) {
                    bn_set_isa(isas[k]);
                    const int rc = bn_attention(q, kk, vv, f16, T, H, Hkv, d, K, qpos, kvpos, 0, 0.3f, peer, got, 3);
                    const double e = nmse(got, ref, (size_t)(T * H * d));
                    snprintf(detail, sizeof(detail), "f16=%d peer=%d T=%lld H=%lld Hkv=%lld d=%lld K=%lld", f16, peer,
                             (long long)T, (long long)H, (long long)Hkv, (long long)d, (long long)K);
                    failures += bn_st_check(rc == 0 && e <= 1e-10, verbose, "attention", isas[k], detail, e);
                    failures += bn_st_check(bn_st_guards_ok(got, (size_t)(T * H * d)), verbose, "attention guards", isas[k], detail, 0);
                }
            }
    next:
        free(q); free(kf); free(vf); free(kh); free(vh); bn_st_guarded_free(ref); bn_st_guarded_free(got);
    }
    return failures;
}

/* the fused forward on a small random 2-layer model (Q4_0 / Q8_0 / TQ2_0 / I2_S weights):
 * each variant with 3 threads vs scalar on 1, both matmul modes, a batch then one token */
static int selftest_forward(const int *isas, int n_isas, int verbose) {
    enum { L = 2, D = 256, H = 4, HKV = 2, HD = 64, F = 256, CTX = 8 };
    int failures = 0;
    char detail[128];
    static const int types[] = {BN_Q4_0, BN_Q8_0, BN_TQ2_0, BN_I2_S};
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        const wtype *t = NULL;
        for (size_t i = 0; i < sizeof(WTYPES) / sizeof(WTYPES[0]); i++)
            if (WTYPES[i].type == types[ti]) t = &WTYPES[i];
        if (!t) { failures++; continue; }
        bn_layer layers[L];
        uint8_t *blobs[L][7];
        float *norms = (float *)malloc(sizeof(float) * 4 * F);
        float *kc = (float *)calloc((size_t)(L * CTX * HKV * HD), sizeof(float));
        float *vc = (float *)calloc((size_t)(L * CTX * HKV * HD), sizeof(float));
        float *x0 = (float *)malloc(sizeof(float) * 3 * D);
        float *ref = bn_st_guarded_alloc(3 * D), *got = bn_st_guarded_alloc(3 * D);
        memset(blobs, 0, sizeof(blobs));
        int ok = norms && kc && vc && x0 && ref && got;
        for (int i = 0; ok && i < 4 * F; i++) norms[i] = 1.0f + 0.1f * bn_st_rndf();
        for (int l = 0; ok && l < L; l++) {
            const int64_t shp[7][2] = {{H * HD, D}, {HKV * HD, D}, {HKV * HD, D}, {D, H * HD}, {F, D}, {F, D}, {D, F}};
            bn_linear *lins[7] = {&layers[l].wq, &layers[l].wk, &layers[l].wv, &layers[l].wo, &layers[l].gate, &layers[l].up, &layers[l].down};
            layers[l].attn_norm = norms;
            layers[l].ffn_norm = norms + F;
            layers[l].attn_sub_norm = l ? norms + 2 * F : NULL;
            layers[l].ffn_sub_norm = l ? norms + 3 * F : NULL;
            for (int j = 0; j < 7 && ok; j++) {
                const size_t bytes = (size_t)(shp[j][0] * (shp[j][1] / t->block) * t->size) + 32;
                blobs[l][j] = (uint8_t *)malloc(bytes);
                if (!blobs[l][j]) { ok = 0; break; }
                fill_weights(t, blobs[l][j], shp[j][0], shp[j][1]);
                *lins[j] = (bn_linear){t->type, blobs[l][j], shp[j][0], shp[j][1], j == 3 ? 0.5f : 0.0f, NULL};
            }
        }
        if (!ok) { failures++; goto next; }
        for (int i = 0; i < 3 * D; i++) x0[i] = bn_st_rndf();
        for (int mode = 0; mode < 2; mode++)
            for (int pass = 0; pass <= n_isas; pass++) {
                const int isa = pass == 0 ? BN_ISA_SCALAR : isas[pass - 1];
                float *out = pass == 0 ? ref : got;
                bn_set_isa(isa);
                const bn_model m = {L, D, H, HKV, HD, F, HD, 2, mode, 1e-5f, 0.125f, mode, layers,
                                    {HD, 2, 0, 10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f, NULL}};
                const int64_t pos3[3] = {0, 1, 2}, pos1[1] = {3}, kvpos[4] = {0, 1, 2, 3};
                memcpy(out, x0, sizeof(float) * 3 * D);
                float cs[4 * HD / 2], sn[4 * HD / 2];
                for (int p = 0; p < 4; p++)
                    for (int i = 0; i < HD / 2; i++) {
                        const float th = (float)p * powf(10000.0f, -2.0f * (float)i / HD);
                        cs[p * HD / 2 + i] = cosf(th);
                        sn[p * HD / 2 + i] = sinf(th);
                    }
                int rc = bn_forward(&m, out, 3, pos3, NULL, kc, vc, 0, CTX, kvpos, 0, 3, cs, sn, pass == 0 ? 1 : 3, 3, out);
                /* one more token on top of the cache, into the first row */
                rc |= bn_forward(&m, out, 1, pos1, NULL, kc, vc, 0, CTX, kvpos, 0, 4, cs + 3 * HD / 2, sn + 3 * HD / 2,
                                 pass == 0 ? 1 : 3, 1, out);
                if (pass == 0) {
                    if (rc) failures++;
                    continue;
                }
                const double e = nmse(got, ref, 3 * D);
                snprintf(detail, sizeof(detail), "%s mode=%d", t->name, mode);
                /* mode 0 is float rounding only (measured <= 1e-12); mode 1, llama.cpp's
                 * order, is the same bits in every variant */
                if (getenv("BN_SELFTEST_PRINT")) fprintf(stderr, "forward %s %s nmse %.3g\n", ISA_NAME[isa], detail, e);
                const int same = mode == 0 || memcmp(got, ref, sizeof(float) * 3 * D) == 0;
                failures += bn_st_check(rc == 0 && same && e <= (mode ? 0.0 : 1e-10), verbose, "forward", isa, detail, e);
                failures += bn_st_check(bn_st_guards_ok(got, 3 * D), verbose, "forward guards", isa, detail, 0);
            }
    next:
        for (int l = 0; l < L; l++)
            for (int j = 0; j < 7; j++) free(blobs[l][j]);
        free(norms); free(kc); free(vc); free(x0); bn_st_guarded_free(ref); bn_st_guarded_free(got);
    }
    return failures;
}

int bn_selftest(int verbose) {
    int failures = 0;
    const int saved_isa = bn_isa_request();
    const int best = bn_cpu_isa();
    int isas[4], n_isas = 0;
    if (best == BN_ISA_NEON) {
        isas[n_isas++] = BN_ISA_NEON;
    } else {
        for (int i = BN_ISA_AVX2; i <= best; i++) isas[n_isas++] = i;
    }
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 3, 5}, {33, 2, 2}, {5, 1, 9}}; /* N, blocks, T */
    char detail[128];

    for (size_t ti = 0; ti < sizeof(WTYPES) / sizeof(WTYPES[0]); ti++) {
        const wtype *t = &WTYPES[ti];
        for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
            const int64_t N = shapes[si][0], T = shapes[si][2];
            const int64_t D = t->block > 1 ? shapes[si][1] * t->block : 37 * shapes[si][1];
            const size_t wbytes = (size_t)(N * (D / t->block) * t->size) + 32;
            uint8_t *w = (uint8_t *)malloc(wbytes);
            float *x = (float *)malloc(sizeof(float) * (size_t)(T * D));
            float *ref = bn_st_guarded_alloc((size_t)(T * N)), *got = bn_st_guarded_alloc((size_t)(T * N));
            if (!w || !x || !ref || !got) { failures++; goto next; }
            fill_weights(t, w, N, D);
            for (int64_t i = 0; i < T * D; i++) x[i] = bn_st_rndf() * 3.0f;
            for (int mode = 0; mode < 2; mode++) {
                bn_set_isa(BN_ISA_SCALAR);
                if (bn_matmul(t->type, w, N, D, x, T, ref, mode, 1) != 0) { failures++; continue; }
                for (int k = 0; k < n_isas; k++) {
                    bn_set_isa(isas[k]);
                    const int rc = bn_matmul(t->type, w, N, D, x, T, got, mode, 3);
                    const double e = nmse(got, ref, (size_t)(T * N));
                    snprintf(detail, sizeof(detail), "%s mode=%d N=%lld D=%lld T=%lld", t->name, mode,
                             (long long)N, (long long)D, (long long)T);
                    /* NMSE of a handful of dots is dominated by cancellation in one of them */
                    const double limit = T * N >= 32 ? 1e-9 : 1e-6;
                    failures += bn_st_check(rc == 0 && e <= limit, verbose, "matmul", isas[k], detail, e);
                    failures += bn_st_check(bn_st_guards_ok(got, (size_t)(T * N)), verbose, "matmul guards", isas[k], detail, 0);
                }
            }
        next:
            free(w); free(x); bn_st_guarded_free(ref); bn_st_guarded_free(got);
        }
    }

    /* elementwise kernels on lengths around the vector widths */
    static const int64_t lens[] = {1, 7, 8, 17, 64, 577};
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        const int64_t n = lens[li], rows = 3;
        float *a = (float *)malloc(sizeof(float) * (size_t)(rows * n));
        float *b = (float *)malloc(sizeof(float) * (size_t)(rows * n));
        float *wt = (float *)malloc(sizeof(float) * (size_t)n);
        float *ref = bn_st_guarded_alloc((size_t)(rows * n)), *got = bn_st_guarded_alloc((size_t)(rows * n));
        if (!a || !b || !wt || !ref || !got) { failures++; goto next2; }
        for (int64_t i = 0; i < rows * n; i++) { a[i] = bn_st_rndf() * 20.0f; b[i] = bn_st_rndf(); }
        for (int64_t i = 0; i < n; i++) wt[i] = bn_st_rndf();
        a[0] = -INFINITY; /* a masked score */
        for (int op = 0; op < 4; op++) {
            static const char *const names[] = {"rms_norm", "softmax", "swiglu", "relu2_glu"};
            float *outs[2] = {ref, got};
            for (int pass = 0; pass < 2; pass++) {
                const int n_pass = pass == 0 ? 1 : n_isas;
                for (int k = 0; k < n_pass; k++) {
                    bn_set_isa(pass == 0 ? BN_ISA_SCALAR : isas[k]);
                    float *o = outs[pass];
                    if (op == 0) bn_rms_norm(a + 1, wt, o, 1, n - 1 > 0 ? n - 1 : 0, 1e-5f);
                    if (op == 1) bn_softmax(a, o, rows, n);
                    if (op == 2) bn_swiglu(a + 1, b, o, rows * n - 1);
                    if (op == 3) bn_relu2_glu(a + 1, b, o, rows * n - 1);
                    if (pass == 1) {
                        const size_t cnt = op == 0 ? (size_t)(n - 1) : (op == 1 ? (size_t)(rows * n) : (size_t)(rows * n - 1));
                        const double e = nmse(got, ref, cnt);
                        snprintf(detail, sizeof(detail), "%s n=%lld", names[op], (long long)n);
                        failures += bn_st_check(e <= 1e-10, verbose, names[op], isas[k], detail, e);
                        failures += bn_st_check(bn_st_guards_ok(got, (size_t)(rows * n)), verbose, "guards", isas[k], detail, 0);
                    }
                }
            }
        }
    next2:
        free(a); free(b); free(wt); bn_st_guarded_free(ref); bn_st_guarded_free(got);
    }
    failures += selftest_attention(isas, n_isas, verbose);
    failures += selftest_forward(isas, n_isas, verbose);
    failures += bn_selftest_peer(isas, n_isas, verbose);
    bn_set_isa(saved_isa);
    if (verbose) fprintf(stderr, "bn_selftest: %d failures (best ISA %s)\n", failures, ISA_NAME[best]);
    return failures;
}
