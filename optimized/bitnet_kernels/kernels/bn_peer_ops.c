/* bn_peer_ops.c: RMSNorm, softmax, SwiGLU, RoPE and ggml_v_expf in llama.cpp's float order.
 *
 * llama.cpp 0.3.36, ggml/src/ggml-cpu (x86 AVX-512 build):
 * - ggml_v_expf (vec.h): z = fma(x, log2e, 0x1.8p23); n = z - 0x1.8p23;
 *   b = fma(-n, ln2_lo, fma(-n, ln2_hi, x)); u = b*b; a degree-5 polynomial in fmas;
 *   vscalefps(j, n); |n| > 192 gives 0 (n <= 0) or inf.  vscalefps rounds once: the AVX2 and
 *   NEON variants scale in two exact-then-rounding steps to get the same bits, the scalar one
 *   calls ldexpf.
 * - ggml_compute_forward_rms_norm_f32 (ops.cpp): sum += (double)(x*x) in order; mean =
 *   (float)(sum/D); scale = 1.0f/sqrtf(mean + eps); y = x*scale, then (ggml_mul) y*w.
 * - ggml_vec_soft_max_f32 (vec.cpp): max; per 16 lanes v_expf(x - max) reduced with
 *   _mm512_reduce_add_ps and added in double; the K % 16 tail with libm expf; then
 *   ggml_vec_scale_f32 by (float)(1.0/sum).
 * - ggml_vec_swiglu_f32: per 16 lanes x / (1 + v_expf(0 - x)) * g; the tail x/(1+expf(-x))*g.
 * - ggml_rope_cache_init / rope_yarn / rotate_pairs (ops.cpp): theta_scale = powf(base,
 *   -2.0f/n_dims); theta = pos, times theta_scale in float per pair; cosf/sinf (glibc);
 *   rotation compiled with FMA contraction: fma(x0, cos, -(x1*sin)), fma(x0, sin, x1*cos)
 *   (checked against libggml-cpu for both modes and n_dims 8..128).
 * Built with -ffp-contract=off: the only fused operations are the explicit fmaf / fma
 * intrinsics, as in llama.cpp's binary.
 */
#include "bn_peer.h"
#include "bn_api.h"

#define BN_PI 3.14159265358979323846

/* ggml_v_expf constants */
#define EXP_R 0x1.8p23f
#define EXP_LOG2E 0x1.715476p+0f
#define EXP_LN2_HI 0x1.62e4p-1f
#define EXP_LN2_LO 0x1.7f7d1cp-20f
#define EXP_C0 0x1.ffffecp-1f
#define EXP_C1 0x1.fffdb6p-2f
#define EXP_C2 0x1.555e66p-3f
#define EXP_C3 0x1.573e2ep-5f
#define EXP_C4 0x1.0e4020p-7f

/* ================================================================================= */
/* scalar                                                                            */

static float expf_ref(float x) {
    const float z = fmaf(x, EXP_LOG2E, EXP_R);
    const float n = z - EXP_R;
    const float b = fmaf(-n, EXP_LN2_LO, fmaf(-n, EXP_LN2_HI, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(EXP_C4, b, EXP_C3), u, fmaf(EXP_C2, b, EXP_C1)), u, fmaf(EXP_C0, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    if (n != n) return n; /* vscalefps(NaN, NaN) */
    return ldexpf(j, (int)n);
}

static void softmax_row_ref(const float *x, float *y, int64_t K) {
    float max = -INFINITY;
    for (int64_t i = 0; i < K; i++) max = x[i] > max ? x[i] : max;
    if (!isfinite(max)) max = 0.0f; /* an all-masked row gives zeros (llama.cpp: NaN) */
    double sum = 0.0;
    int64_t i = 0;
    for (; i + 16 <= K; i += 16) {
        float v[16];
        for (int l = 0; l < 16; l++) v[l] = y[i + l] = expf_ref(x[i + l] - max);
        sum += (double)bn_reduce16(v);
    }
    for (; i < K; i++) {
        const float v = expf(x[i] - max);
        sum += (double)v;
        y[i] = v;
    }
    const float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
    for (i = 0; i < K; i++) y[i] *= inv;
}

static void swiglu_row_ref(const float *g, const float *u, float *y, int64_t F) {
    int64_t i = 0;
    for (; i + 16 <= F; i += 16)
        for (int l = 0; l < 16; l++) {
            const float x = g[i + l];
            y[i + l] = (x / (1.0f + expf_ref(0.0f - x))) * u[i + l];
        }
    for (; i < F; i++) y[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

/* ================================================================================= */
/* AVX2 (+FMA) and AVX-512                                                           */
#if BN_X86

static inline BN_TARGET_AVX2 __m256 expf_avx2(__m256 x) {
    const __m256 r = _mm256_set1_ps(EXP_R);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(EXP_LOG2E), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(EXP_C4), b, _mm256_set1_ps(EXP_C3)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(EXP_C2), b, _mm256_set1_ps(EXP_C1))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(EXP_C0), b, _mm256_set1_ps(1.0f)));
    /* vscalefps(j, n) = j * 2^n rounded once: 2^n is a normal float for -126 <= n <= 127; past
     * that, scale exactly by 2^(n+126) or 2^(n-127) first, then round once by 2^-126 / 2^127 */
    const __m256i ni = _mm256_cvttps_epi32(n);
    const __m256i lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(-126), ni);
    const __m256i hi = _mm256_cmpgt_epi32(ni, _mm256_set1_epi32(127));
    __m256i e1 = _mm256_blendv_epi8(ni, _mm256_add_epi32(ni, _mm256_set1_epi32(126)), lo);
    e1 = _mm256_blendv_epi8(e1, _mm256_sub_epi32(ni, _mm256_set1_epi32(127)), hi);
    const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e1, _mm256_set1_epi32(127)), 23));
    __m256 f2 = _mm256_blendv_ps(_mm256_set1_ps(1.0f), _mm256_set1_ps(0x1p-126f), _mm256_castsi256_ps(lo));
    f2 = _mm256_blendv_ps(f2, _mm256_set1_ps(0x1p127f), _mm256_castsi256_ps(hi));
    const __m256 res = _mm256_mul_ps(_mm256_mul_ps(j, f1), f2);
    const __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n), _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 alt = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(),
                                        _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
    return _mm256_blendv_ps(res, alt, big);
}

/* ggml_v_expf, AVX-512: llama.cpp's code */
static inline BN_TARGET_AVX512 __m512 expf_avx512(__m512 x) {
    const __m512 r = _mm512_set1_ps(EXP_R);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(EXP_LOG2E), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x));
    const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(EXP_C4), b, _mm512_set1_ps(EXP_C3)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(EXP_C2), b, _mm512_set1_ps(EXP_C1))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(EXP_C0), b, _mm512_set1_ps(1.0F)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (_mm512_kortestz(d, d)) return res;
    const __m512 zero = _mm512_setzero_ps();
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
    return _mm512_mask_blend_ps(d, res, alt);
}

static BN_TARGET_AVX2 void softmax_row_avx2(const float *x, float *y, int64_t K) {
    float max = -INFINITY;
    for (int64_t i = 0; i < K; i++) max = x[i] > max ? x[i] : max;
    if (!isfinite(max)) max = 0.0f;
    const __m256 mv = _mm256_set1_ps(max);
    double sum = 0.0;
    int64_t i = 0;
    for (; i + 16 <= K; i += 16) {
        const __m256 a = expf_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        const __m256 b = expf_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv));
        _mm256_storeu_ps(y + i, a);
        _mm256_storeu_ps(y + i + 8, b);
        sum += (double)bn_hsum8_avx2(_mm256_add_ps(b, a)); /* = _mm512_reduce_add_ps */
    }
    for (; i < K; i++) {
        const float v = expf(x[i] - max);
        sum += (double)v;
        y[i] = v;
    }
    const float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
    const __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= K; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), iv));
    for (; i < K; i++) y[i] *= inv;
}

static BN_TARGET_AVX512 void softmax_row_avx512(const float *x, float *y, int64_t K) {
    float max = -INFINITY;
    for (int64_t i = 0; i < K; i++) max = x[i] > max ? x[i] : max;
    if (!isfinite(max)) max = 0.0f;
    const __m512 mv = _mm512_set1_ps(max);
    double sum = 0.0;
    int64_t i = 0;
    for (; i + 16 <= K; i += 16) {
        const __m512 v = expf_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
        _mm512_storeu_ps(y + i, v);
        sum += (double)_mm512_reduce_add_ps(v);
    }
    for (; i < K; i++) {
        const float v = expf(x[i] - max);
        sum += (double)v;
        y[i] = v;
    }
    const float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
    const __m512 iv = _mm512_set1_ps(inv);
    for (i = 0; i + 16 <= K; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), iv));
    for (; i < K; i++) y[i] *= inv;
}

static BN_TARGET_AVX2 void swiglu_row_avx2(const float *g, const float *u, float *y, int64_t F) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= F; i += 8) { /* whole groups of 16, as llama.cpp's 16-lane loop */
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, expf_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    if (i % 16) { /* the second half of the last group of 16 */
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, expf_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
        i += 8;
    }
    for (; i < F; i++) y[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

static BN_TARGET_AVX512 void swiglu_row_avx512(const float *g, const float *u, float *y, int64_t F) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= F; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 s = _mm512_div_ps(x, _mm512_add_ps(one, expf_avx512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        _mm512_storeu_ps(y + i, _mm512_mul_ps(s, _mm512_loadu_ps(u + i)));
    }
    for (; i < F; i++) y[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

static BN_TARGET_AVX512 void expf_n_avx512(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, expf_avx512(_mm512_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = expf_ref(x[i]);
}

static BN_TARGET_AVX2 void expf_n_avx2(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, expf_avx2(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = expf_ref(x[i]);
}
#endif /* BN_X86 */

/* ================================================================================= */
/* NEON                                                                              */
#if defined(__aarch64__)
static inline float32x4_t expf_neon(float32x4_t x) {
    const float32x4_t r = vdupq_n_f32(EXP_R);
    const float32x4_t z = vfmaq_f32(r, x, vdupq_n_f32(EXP_LOG2E));
    const float32x4_t n = vsubq_f32(z, r);
    const float32x4_t b = vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(EXP_LN2_HI)), n, vdupq_n_f32(EXP_LN2_LO));
    const float32x4_t u = vmulq_f32(b, b);
    const float32x4_t j = vfmaq_f32(vfmaq_f32(vdupq_n_f32(1.0f), vdupq_n_f32(EXP_C0), b), u,
                                    vfmaq_f32(vfmaq_f32(vdupq_n_f32(EXP_C1), vdupq_n_f32(EXP_C2), b), u,
                                              vfmaq_f32(vdupq_n_f32(EXP_C3), vdupq_n_f32(EXP_C4), b)));
    const int32x4_t ni = vcvtq_s32_f32(n);
    const uint32x4_t lo = vcltq_s32(ni, vdupq_n_s32(-126));
    const uint32x4_t hi = vcgtq_s32(ni, vdupq_n_s32(127));
    int32x4_t e1 = vbslq_s32(lo, vaddq_s32(ni, vdupq_n_s32(126)), ni);
    e1 = vbslq_s32(hi, vsubq_s32(ni, vdupq_n_s32(127)), e1);
    const float32x4_t f1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(e1, vdupq_n_s32(127)), 23));
    float32x4_t f2 = vbslq_f32(lo, vdupq_n_f32(0x1p-126f), vdupq_n_f32(1.0f));
    f2 = vbslq_f32(hi, vdupq_n_f32(0x1p127f), f2);
    const float32x4_t res = vmulq_f32(vmulq_f32(j, f1), f2);
    const uint32x4_t big = vcgtq_f32(vabsq_f32(n), vdupq_n_f32(192.0f));
    const float32x4_t alt = vbslq_f32(vcleq_f32(n, vdupq_n_f32(0.0f)), vdupq_n_f32(0.0f), vdupq_n_f32(INFINITY));
    return vbslq_f32(big, alt, res);
}

static void softmax_row_neon(const float *x, float *y, int64_t K) {
    float max = -INFINITY;
    for (int64_t i = 0; i < K; i++) max = x[i] > max ? x[i] : max;
    if (!isfinite(max)) max = 0.0f;
    const float32x4_t mv = vdupq_n_f32(max);
    double sum = 0.0;
    int64_t i = 0;
    for (; i + 16 <= K; i += 16) {
        float32x4_t v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = expf_neon(vsubq_f32(vld1q_f32(x + i + 4 * k), mv));
            vst1q_f32(y + i + 4 * k, v[k]);
        }
        /* a = hi8 + lo8; r = a_hi4 + a_lo4; (r0 + r2) + (r1 + r3) */
        const float32x4_t r = vaddq_f32(vaddq_f32(v[3], v[1]), vaddq_f32(v[2], v[0]));
        sum += (double)((vgetq_lane_f32(r, 0) + vgetq_lane_f32(r, 2)) + (vgetq_lane_f32(r, 1) + vgetq_lane_f32(r, 3)));
    }
    for (; i < K; i++) {
        const float v = expf(x[i] - max);
        sum += (double)v;
        y[i] = v;
    }
    const float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
    for (i = 0; i < K; i++) y[i] *= inv;
}

static void swiglu_row_neon(const float *g, const float *u, float *y, int64_t F) {
    int64_t i = 0;
    for (; i + 16 <= F; i += 4) {
        const float32x4_t x = vld1q_f32(g + i);
        const float32x4_t s = vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), expf_neon(vsubq_f32(vdupq_n_f32(0.0f), x))));
        vst1q_f32(y + i, vmulq_f32(s, vld1q_f32(u + i)));
    }
    for (; i % 16; i += 4) { /* finish the group of 16 the loop entered */
        const float32x4_t x = vld1q_f32(g + i);
        const float32x4_t s = vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), expf_neon(vsubq_f32(vdupq_n_f32(0.0f), x))));
        vst1q_f32(y + i, vmulq_f32(s, vld1q_f32(u + i)));
    }
    for (; i < F; i++) y[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}
#endif

/* ================================================================================= */
/* entry points                                                                      */

void bn_peer_expf(const float *x, float *y, int64_t n) {
    switch (bn_pick(K_PEER_OPS)) {
#if BN_X86
    case BN_ISA_AVX512: expf_n_avx512(x, y, n); return;
    case BN_ISA_AVX2: expf_n_avx2(x, y, n); return;
#endif
#if defined(__aarch64__)
    case BN_ISA_NEON: {
        int64_t i = 0;
        for (; i + 4 <= n; i += 4) vst1q_f32(y + i, expf_neon(vld1q_f32(x + i)));
        for (; i < n; i++) y[i] = expf_ref(x[i]);
        return;
    }
#endif
    default:
        for (int64_t i = 0; i < n; i++) y[i] = expf_ref(x[i]);
    }
}

void bn_peer_softmax_row(const float *x, float *y, int64_t K) {
    switch (bn_pick(K_PEER_OPS)) {
#if BN_X86
    case BN_ISA_AVX512: softmax_row_avx512(x, y, K); return;
    case BN_ISA_AVX2: softmax_row_avx2(x, y, K); return;
#endif
#if defined(__aarch64__)
    case BN_ISA_NEON: softmax_row_neon(x, y, K); return;
#endif
    default: softmax_row_ref(x, y, K);
    }
}

void bn_peer_softmax(const float *x, float *y, int64_t rows, int64_t K) {
    for (int64_t r = 0; r < rows; r++) bn_peer_softmax_row(x + r * K, y + r * K, K);
}

void bn_peer_swiglu_row(const float *g, const float *u, float *y, int64_t F) {
    switch (bn_pick(K_PEER_OPS)) {
#if BN_X86
    case BN_ISA_AVX512: swiglu_row_avx512(g, u, y, F); return;
    case BN_ISA_AVX2: swiglu_row_avx2(g, u, y, F); return;
#endif
#if defined(__aarch64__)
    case BN_ISA_NEON: swiglu_row_neon(g, u, y, F); return;
#endif
    default: swiglu_row_ref(g, u, y, F);
    }
}

void bn_peer_swiglu(const float *g, const float *u, float *y, int64_t rows, int64_t F) {
    for (int64_t r = 0; r < rows; r++) bn_peer_swiglu_row(g + r * F, u + r * F, y + r * F, F);
}

/* The sum is one chain of double adds in element order: no variant can reorder it, so one C
 * loop serves all (vectorizing happens across rows, never within one). */
void bn_peer_rms_norm_row(const float *x, const float *w, float *y, int64_t D, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < D; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)D);
    const float scale = 1.0f / sqrtf(mean + eps);
    if (w)
        for (int64_t i = 0; i < D; i++) y[i] = (x[i] * scale) * w[i];
    else
        for (int64_t i = 0; i < D; i++) y[i] = x[i] * scale;
}

void bn_peer_rms_norm(const float *x, const float *w, float *y, int64_t T, int64_t D, float eps) {
    for (int64_t t = 0; t < T; t++) bn_peer_rms_norm_row(x + t * D, w, y + t * D, D, eps);
}

/* ggml_rope_yarn_corr_dim(s) (ggml.c) */
static float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)BN_PI)) / (2.0f * logf(base));
}

void bn_peer_rope_cache(const bn_rope_params *p, int64_t pos, float *cache) {
    const float theta_scale = powf(p->freq_base, -2.0f / (float)p->n_dims);
    float corr[2] = {0.0f, 0.0f};
    float mscale = p->attn_factor;
    if (p->ext_factor != 0.0f) {
        const float start = floorf(yarn_corr_dim(p->n_dims, p->n_ctx_orig, p->beta_fast, p->freq_base));
        const float end = ceilf(yarn_corr_dim(p->n_dims, p->n_ctx_orig, p->beta_slow, p->freq_base));
        corr[0] = start > 0.0f ? start : 0.0f;
        corr[1] = end < (float)(p->n_dims - 1) ? end : (float)(p->n_dims - 1);
        mscale = p->attn_factor * fmaf(0.1f, logf(1.0f / p->freq_scale), 1.0f);
    }
    float theta = (float)pos;
    for (int i0 = 0; i0 < p->n_dims; i0 += 2) {
        const float ff = p->freq_factors ? p->freq_factors[i0 / 2] : 1.0f;
        const float theta_extrap = theta / ff;
        float th = p->freq_scale * theta_extrap;
        if (p->ext_factor != 0.0f) { /* rope_yarn's ramp */
            const float y = ((float)(i0 / 2) - corr[0]) / fmaxf(0.001f, corr[1] - corr[0]);
            const float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, y));
            const float mix = ramp * p->ext_factor;
            th = fmaf(th, 1.0f - mix, theta_extrap * mix); /* contracted as GCC does: first product fused */
        }
        cache[i0] = cosf(th) * mscale;
        cache[i0 + 1] = sinf(th) * mscale;
        theta *= theta_scale;
    }
}

void bn_peer_rope_row(const float *cache, const float *x, float *y, int64_t d, int n_dims, int mode) {
    const int64_t half = n_dims / 2;
    for (int64_t i = 0; i < half; i++) {
        const int64_t i0 = mode == 2 ? i : 2 * i, i1 = mode == 2 ? i + half : 2 * i + 1;
        const float c = cache[2 * i], s = cache[2 * i + 1];
        const float x0 = x[i0], x1 = x[i1];
        y[i0] = fmaf(x0, c, -(x1 * s));
        y[i1] = fmaf(x0, s, x1 * c);
    }
    if (y != x)
        for (int64_t i = n_dims; i < d; i++) y[i] = x[i];
}

int bn_peer_rope(const float *x, float *y, int64_t T, int64_t H, int64_t d, const int64_t *positions,
                 const bn_rope_params *p) {
    if (p->n_dims % 2 || p->n_dims < 0 || p->n_dims > d || (p->mode != 0 && p->mode != 2)) return -2;
    float cache[1024];
    if (p->n_dims > 1024) return -2;
    for (int64_t t = 0; t < T; t++) {
        bn_peer_rope_cache(p, positions[t], cache);
        for (int64_t h = 0; h < H; h++)
            bn_peer_rope_row(cache, x + (t * H + h) * d, y + (t * H + h) * d, d, p->n_dims, p->mode);
    }
    return 0;
}
