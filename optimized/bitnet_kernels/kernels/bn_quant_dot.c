/* bn_quant_dot.c: activation quantizers, vec-dot kernels per weight type, the threaded matmul.
 *
 * Mirrors ggml-quants.c / ggml-cpu/quants.c (vec_dot_*_ref and the AVX2 paths of
 * ggml-cpu/arch/x86/quants.c) and bitnet.cpp's I2_S kernel. A vec_dot takes one weight row
 * (vx, n weights) and one activation row (vy) in the activation type the weight pairs with:
 *   Q8_0, Q4_0 -> Q8_0 blocks; Q4_1 -> Q8_1 (Q8_0 plus s = d * sum(qs), as llama.cpp);
 *   Q4_K, Q6_K, TQ1_0, TQ2_0 -> Q8_K; I2_S -> per-token int8 (scale 127/max|x|);
 *   F16 -> f16 row; F32 -> f32 row.
 * The AVX-512 variants use VNNI (vpdpbusd) on two 32-weight blocks per register.
 */
#include "bn_peer.h"
#include "bn_api.h"

#include <stdlib.h>

typedef bn_vec_dot_fn vec_dot_fn;

/* ================================================================================= */
/* activation quantizers (scalar; O(T*D), negligible beside the O(N*T*D) dots)        */

/* Q8_0 / Q8_1 activations as llama.cpp's SIMD quantize_row_q8_0 / q8_1 compute them
 * (arch/x86/quants.c AVX2 path; the NEON one is the same): d = amax / 127, codes
 * round-half-even(x * (127 / amax)). subtle: not quantize_row_q8_0_ref (1/d and roundf),
 * which llama.cpp runs only without SIMD; the two differ on rare ties and at +-127. */
int bn_quantize_row_q8_0(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = (block_q8_0 *)vy;
    if (n % 32) return -2;
    for (int64_t i = 0; i < n / 32; i++) {
        const float *xb = x + i * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = bn_fp32_to_fp16(d);
        for (int j = 0; j < 32; j++) y[i].qs[j] = (int8_t)bn_nearest_int(xb[j] * id);
    }
    return 0;
}

int bn_quantize_row_q8_1(const float *x, void *vy, int64_t n) {
    block_q8_1 *y = (block_q8_1 *)vy;
    if (n % 32) return -2;
    for (int64_t i = 0; i < n / 32; i++) {
        const float *xb = x + i * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            y[i].qs[j] = (int8_t)bn_nearest_int(xb[j] * id);
            sum += y[i].qs[j];
        }
        y[i].d = bn_fp32_to_fp16(d);
        y[i].s = bn_fp32_to_fp16(d * (float)sum); /* fp16: the rounding llama.cpp's dot sees */
    }
    return 0;
}

int bn_quantize_row_q8_K(const float *x, void *vy, int64_t n) {
    block_q8_K *y = (block_q8_K *)vy;
    if (n % QK_K) return -2;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *xb = x + i * QK_K;
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) { amax = ax; max = xb[j]; }
        }
        if (!amax) {
            y[i].d = 0.0f;
            memset(y[i].qs, 0, QK_K);
            memset(y[i].bsums, 0, sizeof(y[i].bsums));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = bn_nearest_int(iscale * xb[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
    return 0;
}

void bn_quantize_row_i8(const float *x, int8_t *q, float *scale, int32_t *sum, int64_t n) {
    double amax = 1e-5; /* bitnet.cpp quantize_row_i8_s: max|x| floored at 0.00001 */
    for (int64_t j = 0; j < n; j++) {
        /* as fmax (NaN ignored); subtle: written as a compare because gcc 12's aarch64
         * vectorizer ICEs on the fmax reduction */
        const double a = fabs((double)x[j]);
        if (a > amax) amax = a;
    }
    const float s = (float)(127.0 / amax);
    int32_t total = 0;
    for (int64_t j = 0; j < n; j++) {
        int v = bn_nearest_int(x[j] * s);
        v = v > 127 ? 127 : (v < -128 ? -128 : v);
        q[j] = (int8_t)v;
        total += v;
    }
    *scale = s;
    *sum = total;
}

/* F16 weights pair with f16 activations; they are kept as the f32 values of those halves
 * (exact), so the dots convert only the weights */
static void quantize_row_f16(const float *x, float *y, int64_t n) {
    for (int64_t j = 0; j < n; j++) y[j] = bn_fp16_to_fp32(bn_fp32_to_fp16(x[j]));
}

/* ================================================================================= */
/* scalar references                                                                  */

static float dot_f32_ref(const float *a, const float *b, int64_t n) {
    double s = 0.0; /* ggml_vec_dot_f32's scalar path sums in ggml_float (double) */
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return (float)s;
}

static void vec_dot_f16_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const bn_half *x = (const bn_half *)vx;
    const float *y = (const float *)vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(bn_fp16_to_fp32(x[i]) * y[i]);
    *s = (float)sum;
}

static void vec_dot_q8_0_q8_0_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = (const block_q8_0 *)vx, *y = (const block_q8_0 *)vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sumf += (float)sumi * (bn_fp16_to_fp32(x[i].d) * bn_fp16_to_fp32(y[i].d));
    }
    *s = sumf;
}

static void vec_dot_q4_0_q8_0_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = (const block_q4_0 *)vx;
    const block_q8_0 *y = (const block_q8_0 *)vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int v0 = (x[i].qs[j] & 0x0F) - 8;
            const int v1 = (x[i].qs[j] >> 4) - 8;
            sumi += v0 * y[i].qs[j] + v1 * y[i].qs[j + 16];
        }
        sumf += (float)sumi * bn_fp16_to_fp32(x[i].d) * bn_fp16_to_fp32(y[i].d);
    }
    *s = sumf;
}

static void vec_dot_q4_1_q8_1_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = (const block_q4_1 *)vx;
    const block_q8_1 *y = (const block_q8_1 *)vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (x[i].qs[j] & 0x0F) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        }
        sumf += (bn_fp16_to_fp32(x[i].d) * bn_fp16_to_fp32(y[i].d)) * (float)sumi
                + bn_fp16_to_fp32(x[i].m) * bn_fp16_to_fp32(y[i].s);
    }
    *s = sumf;
}

static void vec_dot_q4_K_q8_K_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = (const block_q4_K *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = x[i].scales;
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m; /* get_scale_min_k4 */
            if (j < 4) {
                sc = q[j] & 63;
                m = q[j + 4] & 63;
            } else {
                sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
                m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
            }
            const uint8_t *qs = x[i].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            const int8_t *a = y[i].qs + 32 * j;
            int acc = 0;
            for (int l = 0; l < 32; l++) acc += ((qs[l] >> shift) & 0xF) * a[l];
            sumi += sc * acc;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sumf += bn_fp16_to_fp32(x[i].d) * y[i].d * (float)sumi - bn_fp16_to_fp32(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sumf;
}

static void vec_dot_q6_K_q8_K_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = (const block_q6_K *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0;
        for (int g16 = 0; g16 < 16; g16++) {
            int acc = 0;
            for (int e = 16 * g16; e < 16 * g16 + 16; e++) {
                const int h = e / 128, g = (e % 128) / 32, l = e % 32;
                const uint8_t lbyte = x[i].ql[64 * h + 32 * (g % 2) + l];
                const int low = (g / 2) ? (lbyte >> 4) : (lbyte & 0xF);
                const int high = (x[i].qh[32 * h + l] >> (2 * g)) & 3;
                acc += ((low | (high << 4)) - 32) * y[i].qs[e];
            }
            sumi += x[i].scales[g16] * acc;
        }
        sumf += bn_fp16_to_fp32(x[i].d) * y[i].d * (float)sumi;
    }
    *s = sumf;
}

static void vec_dot_tq1_0_q8_K_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_tq1_0 *x = (const block_tq1_0 *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sum = 0;
        for (int l = 0; l < 5; l++)
            for (int m = 0; m < 32; m++) {
                const uint8_t q = (uint8_t)(x[i].qs[m] * pow3[l]);
                sum += ((((uint16_t)q * 3) >> 8) - 1) * y[i].qs[l * 32 + m];
            }
        for (int l = 0; l < 5; l++)
            for (int m = 0; m < 16; m++) {
                const uint8_t q = (uint8_t)(x[i].qs[32 + m] * pow3[l]);
                sum += ((((uint16_t)q * 3) >> 8) - 1) * y[i].qs[160 + l * 16 + m];
            }
        for (int l = 0; l < 4; l++)
            for (int j = 0; j < 4; j++) {
                const uint8_t q = (uint8_t)(x[i].qh[j] * pow3[l]);
                sum += ((((uint16_t)q * 3) >> 8) - 1) * y[i].qs[240 + l * 4 + j];
            }
        sumf += (float)sum * (bn_fp16_to_fp32(x[i].d) * y[i].d);
    }
    *s = sumf;
}

static void vec_dot_tq2_0_q8_K_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_tq2_0 *x = (const block_tq2_0 *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0;
        for (int c = 0; c < 2; c++)
            for (int l = 0; l < 4; l++)
                for (int k = 0; k < 32; k++)
                    sumi += y[i].qs[128 * c + 32 * l + k] * (((x[i].qs[32 * c + k] >> (2 * l)) & 3) - 1);
        sumf += (float)sumi * (bn_fp16_to_fp32(x[i].d) * y[i].d);
    }
    *s = sumf;
}

/* I2_S: sum(code * y) over the row; the caller subtracts sum(y) and applies both scales. */
static void vec_dot_i2_s_i8_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x = (const uint8_t *)vx;
    const int8_t *y = (const int8_t *)vy;
    int32_t sumi = 0;
    for (int64_t b = 0; b < n / 128; b++)
        for (int j = 0; j < 32; j++) {
            const uint8_t v = x[32 * b + j];
            const int8_t *yb = y + 128 * b + j;
            sumi += (v >> 6) * yb[0] + ((v >> 4) & 3) * yb[32] + ((v >> 2) & 3) * yb[64] + (v & 3) * yb[96];
        }
    memcpy(s, &sumi, sizeof(sumi)); /* an int32 in the float slot */
}

/* ================================================================================= */
/* AVX2 (+FMA, F16C)                                                                  */
#if BN_X86

/* F16C conversion (exact, like bn_fp16_to_fp32) inside the SIMD variants */
#define F16C_TO_F32(h) _cvtsh_ss(h)

static inline BN_TARGET_AVX2 float hsum_f32_8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline BN_TARGET_AVX2 int hsum_i32_8(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* 16 packed bytes -> 32 nibbles: low nibbles in bytes 0..15, high ones in 16..31 */
static inline BN_TARGET_AVX2 __m256i bytes_from_nibbles_32(const uint8_t *p) {
    const __m128i tmp = _mm_loadu_si128((const __m128i *)p);
    const __m256i bytes = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
    return _mm256_and_si256(_mm256_set1_epi8(0x0F), bytes);
}

/* sum of u8 * s8 pairs -> 8 int32 lanes */
static inline BN_TARGET_AVX2 __m256i mul_sum_us8(__m256i ax, __m256i sy) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

static inline BN_TARGET_AVX2 __m256i mul_sum_i8(__m256i x, __m256i y) {
    return mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* f32 dot; dot4 below must sum each row in exactly this order (batch invariance) */
static BN_TARGET_AVX2 float dot_f32_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum_f32_8(_mm256_add_ps(s0, s1));
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
        float s = hsum_f32_8(_mm256_add_ps(a[r], b[r]));
        for (int64_t j = i; j < n; j++) s += w[j] * x[r * stride + j];
        out[r] = s;
    }
}

static BN_TARGET_AVX2 void vec_dot_f16_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const bn_half *x = (const bn_half *)vx;
    const float *y = (const float *)vy;
    /* four accumulators: one fma chain would be latency-bound */
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8))), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 16))), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 24))), _mm256_loadu_ps(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), _mm256_loadu_ps(y + i), s0);
    float sum = hsum_f32_8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) sum += F16C_TO_F32(x[i]) * y[i];
    *s = sum;
}

static BN_TARGET_AVX2 void vec_dot_q8_0_q8_0_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = (const block_q8_0 *)vx, *y = (const block_q8_0 *)vy;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++) {
        const __m256 d = _mm256_set1_ps(F16C_TO_F32(x[i].d) * F16C_TO_F32(y[i].d));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_i8(qx, qy)), acc);
    }
    *s = hsum_f32_8(acc);
}

static BN_TARGET_AVX2 void vec_dot_q4_0_q8_0_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = (const block_q4_0 *)vx;
    const block_q8_0 *y = (const block_q8_0 *)vy;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++) {
        const __m256 d = _mm256_set1_ps(F16C_TO_F32(x[i].d) * F16C_TO_F32(y[i].d));
        const __m256i qx = _mm256_sub_epi8(bytes_from_nibbles_32(x[i].qs), _mm256_set1_epi8(8));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_i8(qx, qy)), acc);
    }
    *s = hsum_f32_8(acc);
}

static BN_TARGET_AVX2 void vec_dot_q4_1_q8_1_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = (const block_q4_1 *)vx;
    const block_q8_1 *y = (const block_q8_1 *)vy;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        summs += F16C_TO_F32(x[i].m) * F16C_TO_F32(y[i].s);
        const __m256 d = _mm256_set1_ps(F16C_TO_F32(x[i].d) * F16C_TO_F32(y[i].d));
        const __m256i qx = bytes_from_nibbles_32(x[i].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_us8(qx, qy)), acc);
    }
    *s = hsum_f32_8(acc) + summs;
}

static BN_TARGET_AVX2 void vec_dot_tq2_0_q8_K_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_tq2_0 *x = (const block_tq2_0 *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    const __m256i m3 = _mm256_set1_epi8(3);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 2; c++) {
            const __m256i qx = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            const int8_t *a = y[i].qs + 128 * c;
            const __m256i q0 = _mm256_and_si256(qx, m3);
            const __m256i q1 = _mm256_and_si256(_mm256_srli_epi16(qx, 2), m3);
            const __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(qx, 4), m3);
            const __m256i q3 = _mm256_and_si256(_mm256_srli_epi16(qx, 6), m3);
            sumi = _mm256_add_epi32(sumi, mul_sum_us8(q0, _mm256_loadu_si256((const __m256i *)(a + 0))));
            sumi = _mm256_add_epi32(sumi, mul_sum_us8(q1, _mm256_loadu_si256((const __m256i *)(a + 32))));
            sumi = _mm256_add_epi32(sumi, mul_sum_us8(q2, _mm256_loadu_si256((const __m256i *)(a + 64))));
            sumi = _mm256_add_epi32(sumi, mul_sum_us8(q3, _mm256_loadu_si256((const __m256i *)(a + 96))));
        }
        int ysum = 0;
        for (int j = 0; j < QK_K / 16; j++) ysum += y[i].bsums[j];
        sumf += (float)(hsum_i32_8(sumi) - ysum) * (F16C_TO_F32(x[i].d) * y[i].d);
    }
    *s = sumf;
}

static BN_TARGET_AVX2 void vec_dot_i2_s_i8_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x = (const uint8_t *)vx;
    const int8_t *y = (const int8_t *)vy;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i acc = _mm256_setzero_si256();
    for (int64_t b = 0; b < n / 128; b++) {
        const __m256i qx = _mm256_loadu_si256((const __m256i *)(x + 32 * b));
        const int8_t *a = y + 128 * b;
        const __m256i q0 = _mm256_and_si256(_mm256_srli_epi16(qx, 6), m3);
        const __m256i q1 = _mm256_and_si256(_mm256_srli_epi16(qx, 4), m3);
        const __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(qx, 2), m3);
        const __m256i q3 = _mm256_and_si256(qx, m3);
        __m256i p = _mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)(a + 0)));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(a + 32))));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(a + 64))));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(a + 96))));
        /* subtle: each i16 lane holds <= 4 * 2 * 3 * 128 = 3072 in magnitude: no saturation */
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
    const int32_t sumi = hsum_i32_8(acc);
    memcpy(s, &sumi, sizeof(sumi));
}

static BN_TARGET_AVX2 void vec_dot_q4_K_q8_K_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = (const block_q4_K *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = x[i].scales;
        int sc[8], mn[8], summ = 0;
        for (int j = 0; j < 8; j++) {
            if (j < 4) {
                sc[j] = q[j] & 63;
                mn[j] = q[j + 4] & 63;
            } else {
                sc[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
                mn[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
            }
            summ += mn[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) { /* 64 weights: sub-blocks 2c (low nibbles), 2c+1 (high) */
            const __m256i qx = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            const __m256i lo = _mm256_and_si256(qx, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qx, 4), m4);
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c)));
            const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16((short)sc[2 * c])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16((short)sc[2 * c + 1])));
        }
        sumf += F16C_TO_F32(x[i].d) * y[i].d * (float)hsum_i32_8(sumi) - F16C_TO_F32(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sumf;
}

static BN_TARGET_AVX2 void vec_dot_q6_K_q8_K_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = (const block_q6_K *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int ysc = 0; /* sum(scale * sum(y)) per 16 weights: the -32 offset, from bsums */
        for (int g = 0; g < 16; g++) ysc += x[i].scales[g] * y[i].bsums[g];
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            const __m256i lows[4] = {_mm256_and_si256(ql0, m4), _mm256_and_si256(ql1, m4),
                                     _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                     _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4)};
            const __m256i highs[4] = {_mm256_and_si256(qh, m3), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m3),
                                      _mm256_and_si256(_mm256_srli_epi16(qh, 4), m3),
                                      _mm256_and_si256(_mm256_srli_epi16(qh, 6), m3)};
            for (int g = 0; g < 4; g++) { /* weights 128h + 32g + l: codes 0..63 */
                const __m256i q = _mm256_or_si256(lows[g], _mm256_slli_epi16(highs[g], 4));
                const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * h + 32 * g)));
                const int8_t *sc = x[i].scales + 8 * h + 2 * g; /* l < 16: sc[0], l >= 16: sc[1] */
                const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scv));
            }
        }
        sumf += F16C_TO_F32(x[i].d) * y[i].d * (float)(hsum_i32_8(sumi) - 32 * ysc);
    }
    *s = sumf;
}

/* trits of TQ1_0 bytes: ((uint8)(b * pw) * 3) >> 8 per byte, pw per 16-bit lane */
static inline BN_TARGET_AVX2 __m256i tq1_trits(__m256i b, __m256i pw) {
    const __m256i lo_mask = _mm256_set1_epi16(0x00FF), three = _mm256_set1_epi16(3);
    const __m256i even = _mm256_and_si256(_mm256_mullo_epi16(b, pw), lo_mask);
    const __m256i odd = _mm256_slli_epi16(_mm256_mullo_epi16(_mm256_srli_epi16(b, 8), pw), 8);
    const __m256i v = _mm256_or_si256(even, odd); /* b * pw mod 256, byte-wise */
    /* subtle: mulhi_epu16(x << 8, 3) = (x * 3) >> 8 for the low byte; and for the high
     * byte mulhi_epu16(x & 0xFF00, 3) = (x * 3) >> 8 as well */
    const __m256i t_even = _mm256_mulhi_epu16(_mm256_slli_epi16(v, 8), three);
    const __m256i t_odd = _mm256_mulhi_epu16(_mm256_andnot_si256(lo_mask, v), three);
    return _mm256_or_si256(t_even, _mm256_slli_epi16(t_odd, 8));
}

static BN_TARGET_AVX2 void vec_dot_tq1_0_q8_K_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_tq1_0 *x = (const block_tq1_0 *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const int8_t *a = y[i].qs;
        __m256i acc = _mm256_setzero_si256();
        /* qs[0..31]: trit l of byte m is weight 32l + m */
        const __m256i q0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        for (int l = 0; l < 5; l++) {
            const __m256i t = tq1_trits(q0, _mm256_set1_epi16(pow3[l]));
            acc = _mm256_add_epi32(acc, mul_sum_us8(t, _mm256_loadu_si256((const __m256i *)(a + 32 * l))));
        }
        /* qs[32..47]: trit l of byte m is weight 160 + 16l + m; two trits per register */
        const __m256i q1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x[i].qs + 32)));
        for (int l = 0; l < 4; l += 2) {
            const __m256i pw = _mm256_set_m128i(_mm_set1_epi16(pow3[l + 1]), _mm_set1_epi16(pow3[l]));
            const __m256i t = tq1_trits(q1, pw);
            acc = _mm256_add_epi32(acc, mul_sum_us8(t, _mm256_loadu_si256((const __m256i *)(a + 160 + 16 * l))));
        }
        const __m256i t4 = tq1_trits(q1, _mm256_set1_epi16(pow3[4]));
        const __m256i y4 = _mm256_inserti128_si256(_mm256_setzero_si256(), _mm_loadu_si128((const __m128i *)(a + 224)), 0);
        acc = _mm256_add_epi32(acc, mul_sum_us8(t4, y4));
        int sumi = hsum_i32_8(acc);
        /* qh[0..3]: trit l of byte j is weight 240 + 4l + j (16 weights: scalar) */
        for (int l = 0; l < 4; l++)
            for (int j = 0; j < 4; j++) {
                const uint8_t q = (uint8_t)(x[i].qh[j] * pow3[l]);
                sumi += (((uint16_t)q * 3) >> 8) * a[240 + 4 * l + j];
            }
        int ysum = 0;
        for (int j = 0; j < QK_K / 16; j++) ysum += y[i].bsums[j];
        sumf += (float)(sumi - ysum) * (F16C_TO_F32(x[i].d) * y[i].d);
    }
    *s = sumf;
}

/* ================================================================================= */
/* AVX-512 (F, BW, VL, VNNI)                                                          */

static inline BN_TARGET_AVX512 __m512i load_2x256(const void *lo, const void *hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
                              _mm256_loadu_si256((const __m256i *)hi), 1);
}

/* lanes 0..7 = a, lanes 8..15 = b */
static inline BN_TARGET_AVX512 __m512 set_2x8(float a, float b) {
    return _mm512_mask_blend_ps((__mmask16)0xFF00, _mm512_set1_ps(a), _mm512_set1_ps(b));
}

/* one Q4 block's 16 bytes -> 32 nibbles (low nibbles first), as 256 bits */
static inline BN_TARGET_AVX512 __m256i nibbles_256(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
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

static BN_TARGET_AVX512 void vec_dot_f16_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const bn_half *x = (const bn_half *)vx;
    const float *y = (const float *)vy;
    /* four accumulators: one fma chain would be latency-bound (measured 9 -> 15 GMAC/s) */
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16))), _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 32))), _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 48))), _mm512_loadu_ps(y + i + 48), a3);
    }
    for (; i < n; i += 16) {
        const int64_t left = n - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const __m512 a = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i));
        const __m512 b = _mm512_maskz_loadu_ps(m, y + i);
        a0 = _mm512_fmadd_ps(a, b, a0);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static BN_TARGET_AVX512 void vec_dot_q8_0_q8_0_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = (const block_q8_0 *)vx, *y = (const block_q8_0 *)vy;
    const int64_t nb = n / 32;
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const __m512i qx = load_2x256(x[i].qs, x[i + 1].qs);
        const __m512i qy = load_2x256(y[i].qs, y[i + 1].qs);
        /* vpdpbusd multiplies u8 by s8: move x's sign onto y */
        const __mmask64 neg = _mm512_movepi8_mask(qx);
        const __m512i sy = _mm512_mask_sub_epi8(qy, neg, _mm512_setzero_si512(), qy);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(qx), sy);
        const __m512 d = set_2x8(F16C_TO_F32(x[i].d) * F16C_TO_F32(y[i].d),
                                 F16C_TO_F32(x[i + 1].d) * F16C_TO_F32(y[i + 1].d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc);
    }
    float sumf = _mm512_reduce_add_ps(acc);
    if (i < nb) {
        float tail;
        vec_dot_q8_0_q8_0_ref(32, &tail, x + i, y + i);
        sumf += tail;
    }
    *s = sumf;
}

static BN_TARGET_AVX512 void vec_dot_q4_0_q8_0_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = (const block_q4_0 *)vx;
    const block_q8_0 *y = (const block_q8_0 *)vy;
    const int64_t nb = n / 32;
    const __m512i eights = _mm512_set1_epi8(8);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(nibbles_256(x[i].qs)), nibbles_256(x[i + 1].qs), 1);
        const __m512i qy = load_2x256(y[i].qs, y[i + 1].qs);
        /* sum((q - 8) * y) = sum(q * y) - sum(8 * y), both exact in int32 */
        const __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy),
                                             _mm512_dpbusd_epi32(_mm512_setzero_si512(), eights, qy));
        const __m512 d = set_2x8(F16C_TO_F32(x[i].d) * F16C_TO_F32(y[i].d),
                                 F16C_TO_F32(x[i + 1].d) * F16C_TO_F32(y[i + 1].d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc);
    }
    float sumf = _mm512_reduce_add_ps(acc);
    if (i < nb) {
        float tail;
        vec_dot_q4_0_q8_0_ref(32, &tail, x + i, y + i);
        sumf += tail;
    }
    *s = sumf;
}

static BN_TARGET_AVX512 void vec_dot_q4_1_q8_1_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = (const block_q4_1 *)vx;
    const block_q8_1 *y = (const block_q8_1 *)vy;
    const int64_t nb = n / 32;
    __m512 acc = _mm512_setzero_ps();
    float summs = 0.0f;
    int64_t i = 0;
    /* four blocks per step: their fp16 scales converted by one vcvtph2ps each (x.d, y.d,
     * x.m, y.s) instead of sixteen scalar conversions; every product and sum is the same
     * float operation as in the two-block loop below, in the same order (same bits) */
    const __m512i lo2 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i hi2 = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2);
    for (; i + 3 < nb; i += 4) {
        const __m128i xd = _mm_setr_epi16((short)x[i].d, (short)x[i + 1].d, (short)x[i + 2].d, (short)x[i + 3].d, 0, 0, 0, 0);
        const __m128i yd = _mm_setr_epi16((short)y[i].d, (short)y[i + 1].d, (short)y[i + 2].d, (short)y[i + 3].d, 0, 0, 0, 0);
        const __m128i xm = _mm_setr_epi16((short)x[i].m, (short)x[i + 1].m, (short)x[i + 2].m, (short)x[i + 3].m, 0, 0, 0, 0);
        const __m128i ys = _mm_setr_epi16((short)y[i].s, (short)y[i + 1].s, (short)y[i + 2].s, (short)y[i + 3].s, 0, 0, 0, 0);
        const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(xd), _mm_cvtph_ps(yd));
        float ms[4];
        _mm_storeu_ps(ms, _mm_mul_ps(_mm_cvtph_ps(xm), _mm_cvtph_ps(ys)));
        summs += ms[0] + ms[1];
        summs += ms[2] + ms[3];
        const __m512 d4 = _mm512_castps128_ps512(dd);
        for (int h = 0; h < 2; h++) {
            const int64_t k = i + 2 * h;
            const __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(nibbles_256(x[k].qs)), nibbles_256(x[k + 1].qs), 1);
            const __m512i qy = load_2x256(y[k].qs, y[k + 1].qs);
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy);
            const __m512 d = _mm512_permutexvar_ps(h ? hi2 : lo2, d4);
            acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc);
        }
    }
    for (; i + 1 < nb; i += 2) {
        summs += F16C_TO_F32(x[i].m) * F16C_TO_F32(y[i].s)
                 + F16C_TO_F32(x[i + 1].m) * F16C_TO_F32(y[i + 1].s);
        const __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(nibbles_256(x[i].qs)), nibbles_256(x[i + 1].qs), 1);
        const __m512i qy = load_2x256(y[i].qs, y[i + 1].qs);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy);
        const __m512 d = set_2x8(F16C_TO_F32(x[i].d) * F16C_TO_F32(y[i].d),
                                 F16C_TO_F32(x[i + 1].d) * F16C_TO_F32(y[i + 1].d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc);
    }
    float sumf = _mm512_reduce_add_ps(acc) + summs;
    if (i < nb) {
        float tail;
        vec_dot_q4_1_q8_1_ref(32, &tail, x + i, y + i);
        sumf += tail;
    }
    *s = sumf;
}

/* One Q4_1 weight row against four activation rows (by bytes apart): the prefill form.
 * Each result is computed exactly as vec_dot_q4_1_q8_1_avx512 computes it (same bits); the
 * nibble unpacking and the weight scales are shared by the four. */
static BN_TARGET_AVX512 void vec_dot_q4_1_q8_1_avx512_x4(int64_t n, float *s, const void *vx, const void *vy, size_t by) {
    const block_q4_1 *x = (const block_q4_1 *)vx;
    const block_q8_1 *y[4];
    for (int r = 0; r < 4; r++) y[r] = (const block_q8_1 *)((const uint8_t *)vy + r * by);
    const int64_t nb = n / 32;
    __m512 acc[4];
    float summs[4];
    for (int r = 0; r < 4; r++) { acc[r] = _mm512_setzero_ps(); summs[r] = 0.0f; }
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const float xm0 = F16C_TO_F32(x[i].m), xm1 = F16C_TO_F32(x[i + 1].m);
        const float xd0 = F16C_TO_F32(x[i].d), xd1 = F16C_TO_F32(x[i + 1].d);
        const __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(nibbles_256(x[i].qs)), nibbles_256(x[i + 1].qs), 1);
        for (int r = 0; r < 4; r++) {
            const block_q8_1 *yr = y[r];
            summs[r] += xm0 * F16C_TO_F32(yr[i].s) + xm1 * F16C_TO_F32(yr[i + 1].s);
            const __m512i qy = load_2x256(yr[i].qs, yr[i + 1].qs);
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy);
            const __m512 d = set_2x8(xd0 * F16C_TO_F32(yr[i].d), xd1 * F16C_TO_F32(yr[i + 1].d));
            acc[r] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) {
        float sumf = _mm512_reduce_add_ps(acc[r]) + summs[r];
        if (i < nb) {
            float tail;
            vec_dot_q4_1_q8_1_ref(32, &tail, x + i, y[r] + i);
            sumf += tail;
        }
        s[r] = sumf;
    }
}

static BN_TARGET_AVX512 void vec_dot_tq2_0_q8_K_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const block_tq2_0 *x = (const block_tq2_0 *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    const __m512i m3 = _mm512_set1_epi8(3);
    /* per block: 16 int32 lanes of sum(code * q) minus the 16 bsums (sum(q), the +1 offset of
     * the codes), exact in int32 and in f32, times the block scale into 16 float lanes; one
     * horizontal sum per row instead of two per block */
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const __m512i qx = _mm512_loadu_si512((const void *)x[i].qs); /* c = 0 low half, c = 1 high */
        const int8_t *a = y[i].qs;
        __m512i sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(qx, m3), load_2x256(a, a + 128));
        sumi = _mm512_dpbusd_epi32(sumi, _mm512_and_si512(_mm512_srli_epi16(qx, 2), m3), load_2x256(a + 32, a + 160));
        sumi = _mm512_dpbusd_epi32(sumi, _mm512_and_si512(_mm512_srli_epi16(qx, 4), m3), load_2x256(a + 64, a + 192));
        sumi = _mm512_dpbusd_epi32(sumi, _mm512_and_si512(_mm512_srli_epi16(qx, 6), m3), load_2x256(a + 96, a + 224));
        const __m512i ysum = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)y[i].bsums));
        const __m512 d = _mm512_set1_ps(F16C_TO_F32(x[i].d) * y[i].d);
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(sumi, ysum)), acc);
    }
    *s = _mm512_reduce_add_ps(acc);
}

static BN_TARGET_AVX512 void vec_dot_i2_s_i8_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x = (const uint8_t *)vx;
    const int8_t *y = (const int8_t *)vy;
    const int64_t nb = n / 128;
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512i acc = _mm512_setzero_si512();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const __m512i qx = _mm512_loadu_si512((const void *)(x + 32 * b)); /* two blocks */
        const int8_t *a0 = y + 128 * b, *a1 = y + 128 * (b + 1);
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(qx, 6), m3), load_2x256(a0, a1));
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(qx, 4), m3), load_2x256(a0 + 32, a1 + 32));
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(qx, 2), m3), load_2x256(a0 + 64, a1 + 64));
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(qx, m3), load_2x256(a0 + 96, a1 + 96));
    }
    int32_t sumi = _mm512_reduce_add_epi32(acc);
    if (b < nb) {
        int32_t tail;
        vec_dot_i2_s_i8_ref(128, (float *)&tail, x + 32 * b, y + 128 * b);
        sumi += tail;
    }
    memcpy(s, &sumi, sizeof(sumi));
}

/* prefill forms of the ternary dots: one weight row, four activation rows; each result is
 * its single-row kernel's (integer sums: exact; TQ2_0's float lanes: same operations) */
static BN_TARGET_AVX512 void vec_dot_tq2_0_q8_K_avx512_x4(int64_t n, float *s, const void *vx, const void *vy, size_t by) {
    const block_tq2_0 *x = (const block_tq2_0 *)vx;
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512 acc[4];
    for (int r = 0; r < 4; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const __m512i qx = _mm512_loadu_si512((const void *)x[i].qs);
        const __m512i p0 = _mm512_and_si512(qx, m3), p1 = _mm512_and_si512(_mm512_srli_epi16(qx, 2), m3);
        const __m512i p2 = _mm512_and_si512(_mm512_srli_epi16(qx, 4), m3), p3 = _mm512_and_si512(_mm512_srli_epi16(qx, 6), m3);
        const float xd = F16C_TO_F32(x[i].d);
        for (int r = 0; r < 4; r++) {
            const block_q8_K *y = (const block_q8_K *)((const uint8_t *)vy + r * by) + i;
            const int8_t *a = y->qs;
            __m512i sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), p0, load_2x256(a, a + 128));
            sumi = _mm512_dpbusd_epi32(sumi, p1, load_2x256(a + 32, a + 160));
            sumi = _mm512_dpbusd_epi32(sumi, p2, load_2x256(a + 64, a + 192));
            sumi = _mm512_dpbusd_epi32(sumi, p3, load_2x256(a + 96, a + 224));
            const __m512i ysum = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)y->bsums));
            const __m512 d = _mm512_set1_ps(xd * y->d);
            acc[r] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(sumi, ysum)), acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) s[r] = _mm512_reduce_add_ps(acc[r]);
}

static BN_TARGET_AVX512 void vec_dot_i2_s_i8_avx512_x4(int64_t n, float *s, const void *vx, const void *vy, size_t by) {
    const uint8_t *x = (const uint8_t *)vx;
    const int64_t nb = n / 128;
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512i acc[4];
    for (int r = 0; r < 4; r++) acc[r] = _mm512_setzero_si512();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const __m512i qx = _mm512_loadu_si512((const void *)(x + 32 * b));
        const __m512i p0 = _mm512_and_si512(_mm512_srli_epi16(qx, 6), m3), p1 = _mm512_and_si512(_mm512_srli_epi16(qx, 4), m3);
        const __m512i p2 = _mm512_and_si512(_mm512_srli_epi16(qx, 2), m3), p3 = _mm512_and_si512(qx, m3);
        for (int r = 0; r < 4; r++) {
            const int8_t *y = (const int8_t *)vy + r * by;
            const int8_t *a0 = y + 128 * b, *a1 = y + 128 * (b + 1);
            acc[r] = _mm512_dpbusd_epi32(acc[r], p0, load_2x256(a0, a1));
            acc[r] = _mm512_dpbusd_epi32(acc[r], p1, load_2x256(a0 + 32, a1 + 32));
            acc[r] = _mm512_dpbusd_epi32(acc[r], p2, load_2x256(a0 + 64, a1 + 64));
            acc[r] = _mm512_dpbusd_epi32(acc[r], p3, load_2x256(a0 + 96, a1 + 96));
        }
    }
    for (int r = 0; r < 4; r++) {
        const int8_t *y = (const int8_t *)vy + r * by;
        int32_t sumi = _mm512_reduce_add_epi32(acc[r]);
        if (b < nb) {
            int32_t tail;
            vec_dot_i2_s_i8_ref(128, (float *)&tail, x + 32 * b, y + 128 * b);
            sumi += tail;
        }
        memcpy(&s[r], &sumi, sizeof(sumi));
    }
}

#endif /* BN_X86 */

/* ================================================================================= */
/* NEON (aarch64, baseline ARMv8.0: no dotprod): int8 products widen with vmull_s8 and
 * accumulate pairwise into int32. Checked under qemu by qemu_aarch64_selftest.sh. */
#if defined(__aarch64__)
static inline int32x4_t dot16_s8(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_s8(vget_high_s8(a), vget_high_s8(b)));
}

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

static void vec_dot_f16_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const bn_half *x = (const bn_half *)vx;
    const float *y = (const float *)vy;
    float32x4_t acc = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        acc = vfmaq_f32(acc, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))), vld1q_f32(y + i));
    float sum = vaddvq_f32(acc);
    for (; i < n; i++) sum += bn_fp16_to_fp32(x[i]) * y[i];
    *s = sum;
}

static void vec_dot_q8_0_q8_0_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = (const block_q8_0 *)vx, *y = (const block_q8_0 *)vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        int32x4_t acc = dot16_s8(vdupq_n_s32(0), vld1q_s8(x[i].qs), vld1q_s8(y[i].qs));
        acc = dot16_s8(acc, vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs + 16));
        sumf += (float)vaddvq_s32(acc) * (bn_fp16_to_fp32(x[i].d) * bn_fp16_to_fp32(y[i].d));
    }
    *s = sumf;
}

static void vec_dot_q4_0_q8_0_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = (const block_q4_0 *)vx;
    const block_q8_0 *y = (const block_q8_0 *)vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        const uint8x16_t v = vld1q_u8(x[i].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), vdupq_n_s8(8));
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
        int32x4_t acc = dot16_s8(vdupq_n_s32(0), lo, vld1q_s8(y[i].qs));
        acc = dot16_s8(acc, hi, vld1q_s8(y[i].qs + 16));
        sumf += (float)vaddvq_s32(acc) * bn_fp16_to_fp32(x[i].d) * bn_fp16_to_fp32(y[i].d);
    }
    *s = sumf;
}

static void vec_dot_q4_1_q8_1_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = (const block_q4_1 *)vx;
    const block_q8_1 *y = (const block_q8_1 *)vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        const uint8x16_t v = vld1q_u8(x[i].qs);
        const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F)));
        const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
        int32x4_t acc = dot16_s8(vdupq_n_s32(0), lo, vld1q_s8(y[i].qs));
        acc = dot16_s8(acc, hi, vld1q_s8(y[i].qs + 16));
        sumf += (bn_fp16_to_fp32(x[i].d) * bn_fp16_to_fp32(y[i].d)) * (float)vaddvq_s32(acc)
                + bn_fp16_to_fp32(x[i].m) * bn_fp16_to_fp32(y[i].s);
    }
    *s = sumf;
}

#define TQ2_PAIR(acc, q, sh, a)                                                              \
    acc = dot16_s8(acc, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q, sh), m3)), vld1q_s8(a))

static void vec_dot_tq2_0_q8_K_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_tq2_0 *x = (const block_tq2_0 *)vx;
    const block_q8_K *y = (const block_q8_K *)vy;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int c = 0; c < 2; c++)
            for (int h = 0; h < 32; h += 16) { /* bytes 32c + h .. +15: weights 128c + 32l + h + k */
                const uint8x16_t q = vld1q_u8(x[i].qs + 32 * c + h);
                const int8_t *a = y[i].qs + 128 * c + h;
                acc = dot16_s8(acc, vreinterpretq_s8_u8(vandq_u8(q, m3)), vld1q_s8(a));
                TQ2_PAIR(acc, q, 2, a + 32);
                TQ2_PAIR(acc, q, 4, a + 64);
                TQ2_PAIR(acc, q, 6, a + 96);
            }
        int ysum = 0;
        for (int j = 0; j < QK_K / 16; j++) ysum += y[i].bsums[j];
        sumf += (float)(vaddvq_s32(acc) - ysum) * (bn_fp16_to_fp32(x[i].d) * y[i].d);
    }
    *s = sumf;
}

static void vec_dot_i2_s_i8_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x = (const uint8_t *)vx;
    const int8_t *y = (const int8_t *)vy;
    const uint8x16_t m3 = vdupq_n_u8(3);
    int32x4_t acc = vdupq_n_s32(0);
    for (int64_t b = 0; b < n / 128; b++)
        for (int h = 0; h < 32; h += 16) {
            const uint8x16_t q = vld1q_u8(x + 32 * b + h);
            const int8_t *a = y + 128 * b + h;
            acc = dot16_s8(acc, vreinterpretq_s8_u8(vshrq_n_u8(q, 6)), vld1q_s8(a));
            TQ2_PAIR(acc, q, 4, a + 32);
            TQ2_PAIR(acc, q, 2, a + 64);
            acc = dot16_s8(acc, vreinterpretq_s8_u8(vandq_u8(q, m3)), vld1q_s8(a + 96));
        }
    const int32_t sumi = vaddvq_s32(acc);
    memcpy(s, &sumi, sizeof(sumi));
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

static void vec_dot_f32_any(int64_t n, float *s, const void *vx, const void *vy) {
    *s = bn_dot_f32((const float *)vx, (const float *)vy, n);
}

/* per weight type: the kernel id, block size, bytes per block, activation layout */
typedef struct {
    int kernel;
    int block;       /* weights per block */
    int type_size;   /* bytes per block */
    int act_block;   /* activation weights per block */
    int act_size;    /* activation bytes per block */
    vec_dot_fn ref, avx2, avx512, neon;
} type_traits;

static int traits_of(int type, type_traits *t) {
    memset(t, 0, sizeof(*t));
    switch (type) {
    case BN_F32: *t = (type_traits){K_MATMUL_F32, 1, 4, 1, 4, vec_dot_f32_any, vec_dot_f32_any, vec_dot_f32_any, vec_dot_f32_any}; break;
    case BN_F16: *t = (type_traits){K_MATMUL_F16, 1, 2, 1, 4, vec_dot_f16_ref, NULL, NULL, NULL}; break;
    case BN_Q8_0: *t = (type_traits){K_MATMUL_Q8_0, 32, 34, 32, 34, vec_dot_q8_0_q8_0_ref, NULL, NULL, NULL}; break;
    case BN_Q4_0: *t = (type_traits){K_MATMUL_Q4_0, 32, 18, 32, 34, vec_dot_q4_0_q8_0_ref, NULL, NULL, NULL}; break;
    case BN_Q4_1: *t = (type_traits){K_MATMUL_Q4_1, 32, 20, 32, 36, vec_dot_q4_1_q8_1_ref, NULL, NULL, NULL}; break;
    case BN_Q4_K: *t = (type_traits){K_MATMUL_Q4_K, QK_K, 144, QK_K, 292, vec_dot_q4_K_q8_K_ref, NULL, NULL, NULL}; break;
    case BN_Q6_K: *t = (type_traits){K_MATMUL_Q6_K, QK_K, 210, QK_K, 292, vec_dot_q6_K_q8_K_ref, NULL, NULL, NULL}; break;
    case BN_TQ1_0: *t = (type_traits){K_MATMUL_TQ1_0, QK_K, 54, QK_K, 292, vec_dot_tq1_0_q8_K_ref, NULL, NULL, NULL}; break;
    case BN_TQ2_0: *t = (type_traits){K_MATMUL_TQ2_0, QK_K, 66, QK_K, 292, vec_dot_tq2_0_q8_K_ref, NULL, NULL, NULL}; break;
    case BN_I2_S: *t = (type_traits){K_MATMUL_I2_S, 128, 32, 1, 1, vec_dot_i2_s_i8_ref, NULL, NULL, NULL}; break;
    default: return -1;
    }
#if BN_X86
    switch (type) {
    case BN_F16: t->avx2 = vec_dot_f16_avx2; t->avx512 = vec_dot_f16_avx512; break;
    case BN_Q8_0: t->avx2 = vec_dot_q8_0_q8_0_avx2; t->avx512 = vec_dot_q8_0_q8_0_avx512; break;
    case BN_Q4_0: t->avx2 = vec_dot_q4_0_q8_0_avx2; t->avx512 = vec_dot_q4_0_q8_0_avx512; break;
    case BN_Q4_1: t->avx2 = vec_dot_q4_1_q8_1_avx2; t->avx512 = vec_dot_q4_1_q8_1_avx512; break;
    case BN_Q4_K: t->avx2 = vec_dot_q4_K_q8_K_avx2; break;
    case BN_Q6_K: t->avx2 = vec_dot_q6_K_q8_K_avx2; break;
    case BN_TQ1_0: t->avx2 = vec_dot_tq1_0_q8_K_avx2; break;
    case BN_TQ2_0: t->avx2 = vec_dot_tq2_0_q8_K_avx2; t->avx512 = vec_dot_tq2_0_q8_K_avx512; break;
    case BN_I2_S: t->avx2 = vec_dot_i2_s_i8_avx2; t->avx512 = vec_dot_i2_s_i8_avx512; break;
    default: break;
    }
#endif
#if defined(__aarch64__)
    switch (type) {
    case BN_F16: t->neon = vec_dot_f16_neon; break;
    case BN_Q8_0: t->neon = vec_dot_q8_0_q8_0_neon; break;
    case BN_Q4_0: t->neon = vec_dot_q4_0_q8_0_neon; break;
    case BN_Q4_1: t->neon = vec_dot_q4_1_q8_1_neon; break;
    case BN_TQ2_0: t->neon = vec_dot_tq2_0_q8_K_neon; break;
    case BN_I2_S: t->neon = vec_dot_i2_s_i8_neon; break;
    default: break;
    }
#endif
    return 0;
}

/* the four-activation-row form of the picked dot, or NULL */
static bn_vec_dot_x4_fn pick_vec_dot_x4(int type, const type_traits *t) {
#if BN_X86
    if (bn_pick(t->kernel) == BN_ISA_AVX512) {
        if (type == BN_Q4_1) return vec_dot_q4_1_q8_1_avx512_x4;
        if (type == BN_TQ2_0) return vec_dot_tq2_0_q8_K_avx512_x4;
        if (type == BN_I2_S) return vec_dot_i2_s_i8_avx512_x4;
    }
#endif
    (void)type;
    (void)t;
    return NULL;
}

static vec_dot_fn pick_vec_dot(const type_traits *t) {
    vec_dot_fn f = NULL;
    switch (bn_pick(t->kernel)) {
    case BN_ISA_AVX512: f = t->avx512; break;
    case BN_ISA_AVX2: f = t->avx2; break;
    case BN_ISA_NEON: f = t->neon; break;
    default: break;
    }
    return f ? f : t->ref;
}

/* ================================================================================= */
/* the matmul                                                                        */

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
    if (n0 >= n1) return;
    if (c->mode == 0) {
        mm_rows_float(c, n0, n1);
        return;
    }
    const vec_dot_fn dot = c->dot;
    /* tiles of MM_TILE_N weight rows x MM_TILE_T activation rows, so both stay in L1 while
     * the other is swept (prefill); results do not depend on the tiling */
    enum { MM_TILE_N = 16, MM_TILE_T = 8 };
    for (int64_t nb = n0; nb < n1; nb += MM_TILE_N) {
        const int64_t ne = nb + MM_TILE_N < n1 ? nb + MM_TILE_N : n1;
        for (int64_t tb = 0; tb < c->T; tb += MM_TILE_T) {
            const int64_t te = tb + MM_TILE_T < c->T ? tb + MM_TILE_T : c->T;
            for (int64_t n = nb; n < ne; n++) {
                const uint8_t *wrow = c->w + (size_t)n * c->w_row;
                int64_t t = tb;
                if (c->dot_x4)
                    for (; t + 4 <= te; t += 4) {
                        float v[4];
                        c->dot_x4(c->D, v, wrow, c->act + (size_t)t * c->a_row, c->a_row);
                        for (int r = 0; r < 4; r++) {
                            if (c->type == BN_I2_S) { /* as below */
                                int32_t sumi;
                                memcpy(&sumi, &v[r], sizeof(sumi));
                                v[r] = (float)(sumi - c->act_sum[t + r]) / c->act_scale[t + r] * c->w_scale;
                            }
                            c->y[(t + r) * c->N + n] = v[r];
                        }
                    }
                for (; t < te; t++) {
                    float v;
                    dot(c->D, &v, wrow, c->act + (size_t)t * c->a_row);
                    if (c->type == BN_I2_S) {
                        int32_t sumi;
                        memcpy(&sumi, &v, sizeof(sumi));
                        /* bitnet.cpp: (sum(code * q) - sum(q)) / act_scale * w_scale */
                        v = (float)(sumi - c->act_sum[t]) / c->act_scale[t] * c->w_scale;
                    }
                    c->y[t * c->N + n] = v;
                }
            }
        }
    }
}

static void mm_task(void *vctx, int ith, int nth) {
    bn_mm *c = (bn_mm *)vctx;
    const int64_t chunk = (c->N + nth - 1) / nth;
    bn_mm_rows(c, chunk * ith, chunk * ith + chunk);
}

/* activation layout ids: 0 none (f32 as is), 1 f16, 2 q8_0, 3 q8_1, 4 q8_K, 5 i8 per token */
int bn_mm_act_kind(int type, int mode) {
    if (mode != 1) return 0;
    switch (type) {
    case BN_F16: return 1;
    case BN_Q8_0: case BN_Q4_0: return 2;
    case BN_Q4_1: return 3;
    case BN_Q4_K: case BN_Q6_K: case BN_TQ1_0: case BN_TQ2_0: return 4;
    case BN_I2_S: return 5;
    default: return 0;
    }
}

size_t bn_mm_act_bytes(int type, int64_t D, int64_t T, int mode) {
    type_traits tr;
    if (traits_of(type, &tr) || bn_mm_act_kind(type, mode) == 0 || D % tr.block) return 0;
    const size_t a_row = (size_t)(D / tr.act_block) * tr.act_size;
    size_t bytes = a_row * (size_t)T + 64;
    if (type == BN_I2_S) bytes += (sizeof(float) + sizeof(int32_t)) * (size_t)T + 16;
    return bytes;
}

int bn_mm_setup(bn_mm *c, int type, const void *w, int64_t N, int64_t D, const float *x, int64_t T,
                float *y, int mode, void *act_buf) {
    type_traits tr;
    if (traits_of(type, &tr)) return -1;
    if (N < 0 || T < 0 || D < 0 || D % tr.block) return -2;
    memset(c, 0, sizeof(*c));
    c->type = type;
    c->mode = mode == 1 ? 1 : 0;
    c->w = (const uint8_t *)w;
    c->N = N; c->D = D; c->T = T;
    c->x = x;
    c->y = y;
    c->w_row = (size_t)(D / tr.block) * tr.type_size;
    if (type == BN_I2_S) memcpy(&c->w_scale, c->w + (size_t)N * c->w_row, sizeof(float));
    if (c->mode == 1) {
        c->dot = pick_vec_dot(&tr);
        c->dot_x4 = pick_vec_dot_x4(type, &tr);
        if (type == BN_F32) { /* F32 weights: the f32 activations as they are */
            c->a_row = (size_t)D * 4;
            c->act = (const uint8_t *)x;
        } else {
            c->a_row = (size_t)(D / tr.act_block) * tr.act_size;
            c->act = (uint8_t *)act_buf;
            if (type == BN_I2_S) {
                uint8_t *tail = (uint8_t *)act_buf + ((c->a_row * (size_t)T + 15) & ~(size_t)15);
                c->act_scale = (float *)tail;
                c->act_sum = (int32_t *)(tail + sizeof(float) * (size_t)T);
            }
        }
    }
    return 0;
}

void bn_mm_quantize(bn_mm *c, int64_t t0, int64_t t1) {
    if (c->mode != 1 || c->type == BN_F32) return;
    if (t1 > c->T) t1 = c->T;
    uint8_t *act = (uint8_t *)c->act;
    for (int64_t t = t0; t < t1; t++) {
        const float *xr = c->x + t * c->D;
        uint8_t *ar = act + (size_t)t * c->a_row;
        switch (c->type) {
        case BN_F16: quantize_row_f16(xr, (float *)ar, c->D); break;
        case BN_Q8_0: case BN_Q4_0: bn_quantize_row_q8_0(xr, ar, c->D); break;
        case BN_Q4_1: bn_quantize_row_q8_1(xr, ar, c->D); break;
        case BN_I2_S:
            bn_quantize_row_i8(xr, (int8_t *)ar, (float *)&c->act_scale[t], (int32_t *)&c->act_sum[t], c->D);
            break;
        default: bn_quantize_row_q8_K(xr, ar, c->D); break;
        }
    }
}

int bn_matmul(int type, const void *w, int64_t N, int64_t D, const float *x, int64_t T, float *y,
              int mode, int n_threads) {
    if (mode >= 1 && bn_peer_supported(type)) return bn_peer_matmul(type, w, N, D, x, T, y, mode == 2, n_threads);
    bn_mm c;
    int rc = bn_mm_setup(&c, type, w, N, D, x, T, y, mode, NULL);
    if (rc) return rc;
    if (N == 0 || T == 0) return 0;
    uint8_t *act = NULL;
    const size_t act_bytes = bn_mm_act_bytes(type, D, T, c.mode);
    if (act_bytes) {
        act = (uint8_t *)malloc(act_bytes);
        if (!act) return -3;
        bn_mm_setup(&c, type, w, N, D, x, T, y, mode, act);
        bn_mm_quantize(&c, 0, T);
    }
    if (n_threads < 1) n_threads = 1;
    if (n_threads > N) n_threads = (int)N;
    bn_parallel(mm_task, &c, n_threads);
    free(act);
    return c.failed ? -3 : 0;
}
