/* bn_float_mm.c: the float path of the matmul (numerics "float"), and bn_matmul's dispatch.
 *
 * Each weight row is dequantized (bn_dequant.c, bit-identical to bitnet.quants) and dotted
 * with the float32 activations: f32 dots in a fixed lane order per ISA, four activation rows
 * per weight row load (dot4, dot2x4), the same sums whatever the batch (batch invariance). The
 * llama.cpp order (modes 1 and 2 of bn_matmul) is bn_peer_*.c.
 */
#include "bn_peer.h"
#include "bn_api.h"

#include <stdlib.h>

/* ================================================================================= */
/* scalar                                                                             */

static float dot_f32_ref(const float *a, const float *b, int64_t n) {
    double s = 0.0; /* ggml_vec_dot_f32's scalar path sums in ggml_float (double) */
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return (float)s;
}

#if BN_X86
/* f32 dot; dot4 below must sum each row in exactly this order (batch invariance) */
static BN_TARGET_AVX2 float dot_f32_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = bn_hsum8_avx2(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* out[r] = dot(w, x + r * stride) for r < 4: w loaded once for four activation rows */
static BN_TARGET_AVX2 void dot4_f32_avx2(const float *w, const float *x, int64_t stride, int64_t n, float *out) {
    __m256 a[4], b[4];
    for (int r = 0; r < 4; r++) a[r] = b[r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 w0 = _mm256_loadu_ps(w + i), w1 = _mm256_loadu_ps(w + i + 8);
        for (int r = 0; r < 4; r++) {
            a[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * stride + i), a[r]);
            b[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + r * stride + i + 8), b[r]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 w0 = _mm256_loadu_ps(w + i);
        for (int r = 0; r < 4; r++) a[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * stride + i), a[r]);
    }
    for (int r = 0; r < 4; r++) {
        float s = bn_hsum8_avx2(_mm256_add_ps(a[r], b[r]));
        for (int64_t j = i; j < n; j++) s += w[j] * x[r * stride + j];
        out[r] = s;
    }
}

static BN_TARGET_AVX512 float dot_f32_avx512(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        const int64_t left = n - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static BN_TARGET_AVX512 void dot4_f32_avx512(const float *w, const float *x, int64_t stride, int64_t n, float *out) {
    __m512 a[4], b[4];
    for (int r = 0; r < 4; r++) a[r] = b[r] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 w0 = _mm512_loadu_ps(w + i), w1 = _mm512_loadu_ps(w + i + 16);
        for (int r = 0; r < 4; r++) {
            a[r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + r * stride + i), a[r]);
            b[r] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + r * stride + i + 16), b[r]);
        }
    }
    for (; i < n; i += 16) {
        const int64_t left = n - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const __m512 w0 = _mm512_maskz_loadu_ps(m, w + i);
        for (int r = 0; r < 4; r++) a[r] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x + r * stride + i), a[r]);
    }
    for (int r = 0; r < 4; r++) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(a[r], b[r]));
}

/* out[r] = dot(w0, x_r), out[4 + r] = dot(w1, x_r) for r < 4: two weight rows by four
 * activation rows, each pair summed in dot_f32_avx512's order (batch invariance) */
static BN_TARGET_AVX512 void dot2x4_f32_avx512(const float *w0, const float *w1, const float *x, int64_t stride,
                                               int64_t n, float *out) {
    __m512 a0[4], b0[4], a1[4], b1[4];
    for (int r = 0; r < 4; r++) a0[r] = b0[r] = a1[r] = b1[r] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 w00 = _mm512_loadu_ps(w0 + i), w01 = _mm512_loadu_ps(w0 + i + 16);
        const __m512 w10 = _mm512_loadu_ps(w1 + i), w11 = _mm512_loadu_ps(w1 + i + 16);
        for (int r = 0; r < 4; r++) {
            const __m512 x0 = _mm512_loadu_ps(x + r * stride + i), x1 = _mm512_loadu_ps(x + r * stride + i + 16);
            a0[r] = _mm512_fmadd_ps(w00, x0, a0[r]);
            b0[r] = _mm512_fmadd_ps(w01, x1, b0[r]);
            a1[r] = _mm512_fmadd_ps(w10, x0, a1[r]);
            b1[r] = _mm512_fmadd_ps(w11, x1, b1[r]);
        }
    }
    for (; i < n; i += 16) {
        const int64_t left = n - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const __m512 w00 = _mm512_maskz_loadu_ps(m, w0 + i), w10 = _mm512_maskz_loadu_ps(m, w1 + i);
        for (int r = 0; r < 4; r++) {
            const __m512 x0 = _mm512_maskz_loadu_ps(m, x + r * stride + i);
            a0[r] = _mm512_fmadd_ps(w00, x0, a0[r]);
            a1[r] = _mm512_fmadd_ps(w10, x0, a1[r]);
        }
    }
    for (int r = 0; r < 4; r++) {
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0[r], b0[r]));
        out[4 + r] = _mm512_reduce_add_ps(_mm512_add_ps(a1[r], b1[r]));
    }
}

#endif /* BN_X86 */

#if defined(__aarch64__)
static float dot_f32_neon(const float *a, const float *b, int64_t n) {
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

#endif

/* ================================================================================= */
/* dispatch                                                                          */

typedef float (*dot_f32_fn)(const float *, const float *, int64_t);

static dot_f32_fn pick_dot_f32(void) {
    switch (bn_pick(K_DOT_F32)) {
#if BN_X86
    case BN_ISA_AVX512: return dot_f32_avx512;
    case BN_ISA_AVX2: return dot_f32_avx2;
#endif
#if defined(__aarch64__)
    case BN_ISA_NEON: return dot_f32_neon;
#endif
    default: return dot_f32_ref;
    }
}

float bn_dot_f32(const float *a, const float *b, int64_t n) { return pick_dot_f32()(a, b, n); }

typedef void (*dot4_f32_fn)(const float *, const float *, int64_t, int64_t, float *);
typedef void (*dot2x4_f32_fn)(const float *, const float *, const float *, int64_t, int64_t, float *);

static dot2x4_f32_fn pick_dot2x4_f32(void) {
#if BN_X86
    if (bn_pick(K_DOT_F32) == BN_ISA_AVX512) return dot2x4_f32_avx512;
#endif
    return NULL;
}

/* the 4-row form of the picked f32 dot, or NULL (then rows go one by one) */
static dot4_f32_fn pick_dot4_f32(void) {
    switch (bn_pick(K_DOT_F32)) {
#if BN_X86
    case BN_ISA_AVX512: return dot4_f32_avx512;
    case BN_ISA_AVX2: return dot4_f32_avx2;
#endif
    default: return NULL;
    }
}

static void mm_rows_float(bn_mm *c, int64_t n0, int64_t n1) {
    const dot_f32_fn dot = pick_dot_f32();
    const dot4_f32_fn dot4 = pick_dot4_f32();
    const dot2x4_f32_fn dot2x4 = c->T >= 4 ? pick_dot2x4_f32() : NULL;
    float *buf = NULL; /* two dequantized weight rows */
    if (c->type != BN_F32) {
        buf = (float *)malloc(sizeof(float) * 2 * (size_t)(c->D > 0 ? c->D : 1));
        if (!buf) { c->failed = 1; return; }
    }
    for (int64_t n = n0; n < n1;) {
        const int rows = (dot2x4 && n + 1 < n1) ? 2 : 1;
        const float *wr[2];
        for (int k = 0; k < rows; k++) {
            wr[k] = (const float *)(c->w + (size_t)(n + k) * c->w_row);
            if (buf) {
                bn_dequant_row(c->type, c->w + (size_t)(n + k) * c->w_row, buf + k * c->D, c->D, c->w_scale);
                wr[k] = buf + k * c->D;
            }
        }
        int64_t t = 0;
        if (rows == 2)
            for (; t + 4 <= c->T; t += 4) {
                float r[8];
                dot2x4(wr[0], wr[1], c->x + t * c->D, c->D, c->D, r);
                for (int k = 0; k < 4; k++) {
                    c->y[(t + k) * c->N + n] = r[k];
                    c->y[(t + k) * c->N + n + 1] = r[4 + k];
                }
            }
        for (int k = 0; k < rows; k++) {
            int64_t tt = t;
            if (dot4)
                for (; tt + 4 <= c->T; tt += 4) {
                    float r[4];
                    dot4(wr[k], c->x + tt * c->D, c->D, c->D, r);
                    for (int q = 0; q < 4; q++) c->y[(tt + q) * c->N + n + k] = r[q];
                }
            for (; tt < c->T; tt++) c->y[tt * c->N + n + k] = dot(wr[k], c->x + tt * c->D, c->D);
        }
        n += rows;
    }
    free(buf);
}

void bn_mm_rows(bn_mm *c, int64_t n0, int64_t n1) {
    if (n1 > c->N) n1 = c->N;
    if (n0 < n1) mm_rows_float(c, n0, n1);
}

static void mm_task(void *vctx, int ith, int nth) {
    bn_mm *c = (bn_mm *)vctx;
    const int64_t chunk = (c->N + nth - 1) / nth;
    bn_mm_rows(c, chunk * ith, chunk * ith + chunk);
}

int bn_mm_setup(bn_mm *c, int type, const void *w, int64_t N, int64_t D, const float *x, int64_t T, float *y) {
    memset(c, 0, sizeof(*c));
    const int rc = bn_row_bytes(type, D, &c->w_row);
    if (rc) return rc;
    if (N < 0 || T < 0) return -2;
    c->type = type;
    c->w = (const uint8_t *)w;
    c->N = N; c->D = D; c->T = T;
    c->x = x;
    c->y = y;
    if (type == BN_I2_S && w) memcpy(&c->w_scale, c->w + (size_t)N * c->w_row, sizeof(float));
    return 0;
}

int bn_matmul(int type, const void *w, int64_t N, int64_t D, const float *x, int64_t T, float *y,
              int mode, int n_threads) {
    if (mode >= 1) return bn_peer_matmul(type, w, N, D, x, T, y, mode == 2, n_threads);
    bn_mm c;
    const int rc = bn_mm_setup(&c, type, w, N, D, x, T, y);
    if (rc) return rc;
    if (N == 0 || T == 0) return 0;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > N) n_threads = (int)N;
    bn_parallel(mm_task, &c, n_threads);
    return c.failed ? -3 : 0;
}
