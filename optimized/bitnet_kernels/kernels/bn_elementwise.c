/* bn_elementwise.c: RMSNorm, softmax, RoPE (normal + NEOX), SwiGLU, ReLU^2 gating.
 *
 * Semantics of bitnet.ops.NumpyBackend (ggml's CPU ops). The SIMD exp is the Cephes-style
 * polynomial (about 2 ulp; the range clamp makes exp(x) 0 below -88.37); the scalar
 * variants call expf.
 */
#include "bn_common.h"
#include "bn_api.h"

/* ---------------- scalar references ---------------- */

static void rms_norm_ref(const float *x, const float *w, float *y, int64_t D, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < D; i++) sum += (double)x[i] * (double)x[i];
    const double scale = 1.0 / sqrt(sum / (double)D + (double)eps);
    for (int64_t i = 0; i < D; i++) y[i] = (float)(x[i] * scale);
    if (w)
        for (int64_t i = 0; i < D; i++) y[i] = y[i] * w[i];
}

static void softmax_ref(const float *x, float *y, int64_t K) {
    float m = -INFINITY;
    for (int64_t i = 0; i < K; i++) m = x[i] > m ? x[i] : m;
    if (!isfinite(m)) m = 0.0f;
    double s = 0.0;
    for (int64_t i = 0; i < K; i++) {
        y[i] = expf(x[i] - m);
        s += y[i];
    }
    const float inv = s > 0 ? (float)(1.0 / s) : 0.0f;
    for (int64_t i = 0; i < K; i++) y[i] *= inv;
}

static void swiglu_ref(const float *g, const float *u, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void relu2_glu_ref(const float *g, const float *u, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float r = g[i] > 0.0f ? g[i] : 0.0f;
        y[i] = r * r * u[i];
    }
}

/* ---------------- AVX2 ---------------- */
#if BN_X86

static inline BN_TARGET_AVX2 __m256 exp_avx2(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

static inline BN_TARGET_AVX2 float hsum8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline BN_TARGET_AVX2 float hmax8(__m256 x) {
    __m128 r = _mm_max_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static BN_TARGET_AVX2 void rms_norm_avx2(const float *x, const float *w, float *y, int64_t D, float eps) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= D; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    double sum = hsum8(acc);
    for (; i < D; i++) sum += (double)x[i] * (double)x[i];
    const float scale = (float)(1.0 / sqrt(sum / (double)D + (double)eps));
    const __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= D; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < D; i++) y[i] = w ? (x[i] * scale) * w[i] : x[i] * scale;
}

static BN_TARGET_AVX2 void softmax_avx2(const float *x, float *y, int64_t K) {
    __m256 vm = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= K; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    float m = hmax8(vm);
    for (; i < K; i++) m = x[i] > m ? x[i] : m;
    if (!isfinite(m)) m = 0.0f;
    const __m256 mv = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= K; i += 8) {
        const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    double s = hsum8(acc);
    for (; i < K; i++) {
        y[i] = expf(x[i] - m);
        s += y[i];
    }
    const float inv = s > 0 ? (float)(1.0 / s) : 0.0f;
    const __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= K; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), iv));
    for (; i < K; i++) y[i] *= inv;
}

static BN_TARGET_AVX2 void swiglu_avx2(const float *g, const float *u, float *y, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    swiglu_ref(g + i, u + i, y + i, n - i);
}

static BN_TARGET_AVX2 void relu2_glu_avx2(const float *g, const float *u, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 r = _mm256_max_ps(_mm256_loadu_ps(g + i), _mm256_setzero_ps());
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(u + i)));
    }
    relu2_glu_ref(g + i, u + i, y + i, n - i);
}

/* ---------------- AVX-512 ---------------- */

static inline BN_TARGET_AVX512 __m512 exp_avx512(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-88.3762626647949f);
    const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 fx = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
                                     _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(fx), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps((__mmask16)~under, p, _mm512_castsi512_ps(e));
}

static inline BN_TARGET_AVX512 __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

static BN_TARGET_AVX512 void rms_norm_avx512(const float *x, const float *w, float *y, int64_t D, float eps) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < D; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(tail_mask(D - i), x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    const double sum = _mm512_reduce_add_ps(acc);
    const __m512 vs = _mm512_set1_ps((float)(1.0 / sqrt(sum / (double)D + (double)eps)));
    for (int64_t i = 0; i < D; i += 16) {
        const __mmask16 m = tail_mask(D - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
        if (w) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static BN_TARGET_AVX512 void softmax_avx512(const float *x, float *y, int64_t K) {
    __m512 vm = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < K; i += 16)
        vm = _mm512_mask_max_ps(vm, tail_mask(K - i), vm, _mm512_maskz_loadu_ps(tail_mask(K - i), x + i));
    float m = _mm512_reduce_max_ps(vm);
    if (!isfinite(m)) m = 0.0f;
    const __m512 mv = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < K; i += 16) {
        const __mmask16 k = tail_mask(K - i);
        const __m512 e = _mm512_maskz_mov_ps(k, exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mv)));
        _mm512_mask_storeu_ps(y + i, k, e);
        acc = _mm512_add_ps(acc, e);
    }
    const double s = _mm512_reduce_add_ps(acc);
    const __m512 iv = _mm512_set1_ps(s > 0 ? (float)(1.0 / s) : 0.0f);
    for (int64_t i = 0; i < K; i += 16) {
        const __mmask16 k = tail_mask(K - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), iv));
    }
}

static BN_TARGET_AVX512 void swiglu_avx512(const float *g, const float *u, float *y, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(k, u + i)));
    }
}

static BN_TARGET_AVX512 void relu2_glu_avx512(const float *g, const float *u, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        const __m512 r = _mm512_max_ps(_mm512_maskz_loadu_ps(k, g + i), _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_mul_ps(r, r), _mm512_maskz_loadu_ps(k, u + i)));
    }
}
#endif /* BN_X86 */

/* ---------------- NEON ---------------- */
#if defined(__aarch64__)
static void rms_norm_neon(const float *x, const float *w, float *y, int64_t D, float eps) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= D; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        acc = vfmaq_f32(acc, v, v);
    }
    double sum = vaddvq_f32(acc);
    for (; i < D; i++) sum += (double)x[i] * (double)x[i];
    const float scale = (float)(1.0 / sqrt(sum / (double)D + (double)eps));
    for (i = 0; i + 4 <= D; i += 4) {
        float32x4_t v = vmulq_n_f32(vld1q_f32(x + i), scale);
        if (w) v = vmulq_f32(v, vld1q_f32(w + i));
        vst1q_f32(y + i, v);
    }
    for (; i < D; i++) y[i] = w ? (x[i] * scale) * w[i] : x[i] * scale;
}

static void relu2_glu_neon(const float *g, const float *u, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t r = vmaxq_f32(vld1q_f32(g + i), vdupq_n_f32(0.0f));
        vst1q_f32(y + i, vmulq_f32(vmulq_f32(r, r), vld1q_f32(u + i)));
    }
    relu2_glu_ref(g + i, u + i, y + i, n - i);
}
#endif

/* ---------------- entry points ---------------- */

void bn_rms_norm(const float *x, const float *weight, float *y, int64_t T, int64_t D, float eps) {
    const int isa = bn_pick(K_RMS_NORM);
    for (int64_t t = 0; t < T; t++) {
#if BN_X86
        if (isa == BN_ISA_AVX512) { rms_norm_avx512(x + t * D, weight, y + t * D, D, eps); continue; }
        if (isa == BN_ISA_AVX2) { rms_norm_avx2(x + t * D, weight, y + t * D, D, eps); continue; }
#endif
#if defined(__aarch64__)
        if (isa == BN_ISA_NEON) { rms_norm_neon(x + t * D, weight, y + t * D, D, eps); continue; }
#endif
        (void)isa;
        rms_norm_ref(x + t * D, weight, y + t * D, D, eps);
    }
}

void bn_softmax(const float *x, float *y, int64_t rows, int64_t K) {
    const int isa = bn_pick(K_SOFTMAX);
    for (int64_t r = 0; r < rows; r++) {
#if BN_X86
        if (isa == BN_ISA_AVX512) { softmax_avx512(x + r * K, y + r * K, K); continue; }
        if (isa == BN_ISA_AVX2) { softmax_avx2(x + r * K, y + r * K, K); continue; }
#endif
        (void)isa;
        softmax_ref(x + r * K, y + r * K, K);
    }
}

void bn_swiglu(const float *g, const float *u, float *y, int64_t n) {
    switch (bn_pick(K_SWIGLU)) {
#if BN_X86
    case BN_ISA_AVX512: swiglu_avx512(g, u, y, n); return;
    case BN_ISA_AVX2: swiglu_avx2(g, u, y, n); return;
#endif
    default: swiglu_ref(g, u, y, n);
    }
}

void bn_relu2_glu(const float *g, const float *u, float *y, int64_t n) {
    switch (bn_pick(K_RELU2_GLU)) {
#if BN_X86
    case BN_ISA_AVX512: relu2_glu_avx512(g, u, y, n); return;
    case BN_ISA_AVX2: relu2_glu_avx2(g, u, y, n); return;
#endif
#if defined(__aarch64__)
    case BN_ISA_NEON: relu2_glu_neon(g, u, y, n); return;
#endif
    default: relu2_glu_ref(g, u, y, n);
    }
}

/* ggml_rope_ext given the cos/sin tables (T, n_dims/2) of bitnet.ops.rope_cos_sin.
 * mode 0 (NORMAL) rotates (x[2i], x[2i+1]); mode 2 (NEOX) rotates (x[i], x[i + n_dims/2]);
 * dims >= n_dims pass through. x, y: (T, H, d); y may alias x. */
void bn_rope(const float *x, float *y, int64_t T, int64_t H, int64_t d, const float *cos_t,
             const float *sin_t, int64_t n_dims, int mode) {
    const int64_t half = n_dims / 2;
    for (int64_t t = 0; t < T; t++) {
        const float *c = cos_t + t * half, *s = sin_t + t * half;
        for (int64_t h = 0; h < H; h++) {
            const float *xr = x + (t * H + h) * d;
            float *yr = y + (t * H + h) * d;
            for (int64_t i = 0; i < half; i++) {
                const int64_t i0 = mode == 2 ? i : 2 * i, i1 = mode == 2 ? i + half : 2 * i + 1;
                const float x0 = xr[i0], x1 = xr[i1];
                yr[i0] = x0 * c[i] - x1 * s[i];
                yr[i1] = x0 * s[i] + x1 * c[i];
            }
            if (yr != xr)
                for (int64_t i = n_dims; i < d; i++) yr[i] = xr[i];
        }
    }
}
