/* bn_peer_f16.c: F16 and F32 weight matmuls in llama.cpp's order (see bn_peer_mm.c):
 * tinyBLAS<16> for batches (T >= 2, D % 16 == 0, N % 4 == 0: 16 lanes along D, one fma per
 * lane, _mm512_reduce_add_ps), else ggml_vec_dot_f16 / f32 (4 x 16 lanes per step of 64,
 * registers added (0+2)+(1+3), the lane reduction, the D % 64 tail in double (F16) or by fma
 * in float (F32)). Activations: f16-rounded values as float (F16) or the floats (F32).
 */
#include "bn_peer.h"
#include "bn_api.h"

static inline float h2f(const uint8_t *p) {
    bn_half h;
    memcpy(&h, p, 2);
    return bn_fp16_to_fp32(h);
}

static inline float wval(const bn_peer_mm *c, const uint8_t *row, int64_t i) {
    if (c->type == BN_F16) return h2f(row + 2 * i);
    float f;
    memcpy(&f, row + 4 * i, 4);
    return f;
}

/* products of two f16 values are exact in f32, so for F16 fmaf(w, x, acc) == acc + w*x */
static float fdot_ref(const bn_peer_mm *c, const uint8_t *row, const float *x) {
    const int64_t D = c->D;
    if (c->order == BN_ORDER_TINYBLAS) {
        float l16[16] = {0};
        for (int64_t k = 0; k < D; k += 16)
            for (int l = 0; l < 16; l++) l16[l] = fmaf(wval(c, row, k + l), x[k + l], l16[l]);
        return bn_reduce16(l16);
    }
    const int64_t np = D - D % 64;
    float r[4][16], s16[16];
    memset(r, 0, sizeof(r));
    for (int64_t k = 0; k < np; k += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++) r[j][l] = fmaf(wval(c, row, k + 16 * j + l), x[k + 16 * j + l], r[j][l]);
    for (int l = 0; l < 16; l++) s16[l] = (r[0][l] + r[2][l]) + (r[1][l] + r[3][l]);
    if (c->type == BN_F16) {
        double sum = (double)bn_reduce16(s16);
        for (int64_t k = np; k < D; k++) sum += (double)(wval(c, row, k) * x[k]);
        return (float)sum;
    }
    float sum = bn_reduce16(s16);
    return bn_f32_dot_tail(sum, x, f32_at, row, np, D);
}

#if BN_X86
static inline BN_TARGET_AVX512 __m512 wload16(int f16, const uint8_t *row, int64_t k) {
    if (f16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * k)));
    return _mm512_loadu_ps((const float *)(row + 4 * k));
}

/* tinyBLAS order: rows r0.. (nr <= 4) x tokens (nt <= 4), one 16-lane accumulator each */
static BN_TARGET_AVX512 void ftiny_avx512(const bn_peer_mm *c, int64_t r0, int nr, const float *const *x, int nt,
                                          float *out /* [nr][4] */) {
    const int f16 = c->type == BN_F16;
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    const uint8_t *rows[4];
    for (int i = 0; i < nr; i++) rows[i] = c->w + (size_t)(r0 + i) * c->w_row;
    for (int64_t k = 0; k < c->D; k += 16) {
        __m512 xv[4];
        for (int j = 0; j < nt; j++) xv[j] = _mm512_loadu_ps(x[j] + k);
        for (int i = 0; i < nr; i++) {
            const __m512 wv = wload16(f16, rows[i], k);
            for (int j = 0; j < nt; j++) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++) out[4 * i + j] = _mm512_reduce_add_ps(acc[i][j]);
}

/* ggml_vec_dot_f16 / f32 order, two rows against one token */
static BN_TARGET_AVX512 void fvec_avx512(const bn_peer_mm *c, int64_t r0, int nr, const float *x, float *out) {
    const int f16 = c->type == BN_F16;
    const int64_t D = c->D, np = D - D % 64;
    for (int i = 0; i < nr; i++) {
        const uint8_t *row = c->w + (size_t)(r0 + i) * c->w_row;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int64_t k = 0; k < np; k += 64) {
            s0 = _mm512_fmadd_ps(wload16(f16, row, k), _mm512_loadu_ps(x + k), s0);
            s1 = _mm512_fmadd_ps(wload16(f16, row, k + 16), _mm512_loadu_ps(x + k + 16), s1);
            s2 = _mm512_fmadd_ps(wload16(f16, row, k + 32), _mm512_loadu_ps(x + k + 32), s2);
            s3 = _mm512_fmadd_ps(wload16(f16, row, k + 48), _mm512_loadu_ps(x + k + 48), s3);
        }
        const float red = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3)));
        if (f16) {
            double sum = (double)red;
            for (int64_t k = np; k < D; k++) sum += (double)(h2f(row + 2 * k) * x[k]);
            out[i] = (float)sum;
        } else {
            out[i] = bn_f32_dot_tail(red, x, f32_at, row, np, D);
        }
    }
}
#endif

/* ================================================================================= */
/* the tile loop                                                                     */

void bn_peer_float_rows(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
#if BN_X86
    if (c->isa == BN_ISA_AVX512) {
        if (c->order == BN_ORDER_TINYBLAS) {
            for (int64_t tb = t0; tb < t1; tb += 4) {
                const int nt = (int)(t1 - tb < 4 ? t1 - tb : 4);
                const float *xs[4];
                for (int j = 0; j < nt; j++) xs[j] = (const float *)(c->act + (size_t)(tb + j) * c->a_row);
                for (int64_t n = n0; n < n1; n += 4) {
                    const int nr = (int)(n1 - n < 4 ? n1 - n : 4);
                    float out[16];
                    ftiny_avx512(c, n, nr, xs, nt, out);
                    for (int i = 0; i < nr; i++)
                        for (int j = 0; j < nt; j++) y[(tb + j) * ldy + n + i] = out[4 * i + j];
                }
            }
            return;
        }
        for (int64_t t = t0; t < t1; t++) {
            const float *x = (const float *)(c->act + (size_t)t * c->a_row);
            for (int64_t n = n0; n < n1; n += 2) {
                const int nr = n + 1 < n1 ? 2 : 1;
                float out[2];
                fvec_avx512(c, n, nr, x, out);
                for (int i = 0; i < nr; i++) y[t * ldy + n + i] = out[i];
            }
        }
        return;
    }
#endif
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *row = c->w + (size_t)n * c->w_row;
        for (int64_t t = t0; t < t1; t++) y[t * ldy + n] = fdot_ref(c, row, (const float *)(c->act + (size_t)t * c->a_row));
    }
}

