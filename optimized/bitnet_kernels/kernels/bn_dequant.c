/* bn_dequant.c: dequantize rows (ggml dequantize_row_*), the float matmul path and get_rows.
 *
 * Each row dequantizer performs the float32 operations of dequantize_row_* in the same
 * order (built with -ffp-contract=off), so results are bit-identical to bitnet.quants.
 * Scalar only: the float path is bound by the f32 dot that follows, which is vectorized.
 */
#include "bn_common.h"
#include "bn_api.h"

static void get_scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

#if BN_X86
/* AVX2 dequantizers for the hot types: the same float32 ops as the scalar code (a multiply,
 * then an add, never fused), so the results stay bit-identical. 0 = handled. */
static BN_TARGET_AVX2 int dequant_row_avx2(int type, const void *row, float *y, int64_t n, float tensor_scale) {
    switch (type) {
    case BN_F16: {
        const bn_half *x = (const bn_half *)row;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
        for (; i < n; i++) y[i] = bn_fp16_to_fp32(x[i]);
        return 0;
    }
    case BN_Q8_0: {
        const block_q8_0 *x = (const block_q8_0 *)row;
        for (int64_t i = 0; i < n / 32; i++) {
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d));
            for (int j = 0; j < 32; j += 8) {
                const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + j)));
                _mm256_storeu_ps(y + 32 * i + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
            }
        }
        return 0;
    }
    case BN_Q4_0:
    case BN_Q4_1: {
        const int is_q4_1 = type == BN_Q4_1;
        const size_t bs = is_q4_1 ? sizeof(block_q4_1) : sizeof(block_q4_0);
        const uint8_t *base = (const uint8_t *)row;
        for (int64_t i = 0; i < n / 32; i++) {
            const uint8_t *blk = base + (size_t)i * bs;
            bn_half dh, mh = 0;
            memcpy(&dh, blk, 2);
            if (is_q4_1) memcpy(&mh, blk + 2, 2);
            const uint8_t *qs = blk + (is_q4_1 ? 4 : 2);
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh)), m = _mm256_set1_ps(_cvtsh_ss(mh));
            const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
            const __m128i mask = _mm_set1_epi8(0x0F);
            __m128i lo = _mm_and_si128(raw, mask), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
            if (!is_q4_1) {
                lo = _mm_sub_epi8(lo, _mm_set1_epi8(8));
                hi = _mm_sub_epi8(hi, _mm_set1_epi8(8));
            }
            const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
            for (int k = 0; k < 4; k++) {
                __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k])), d);
                if (is_q4_1) v = _mm256_add_ps(v, m);
                _mm256_storeu_ps(y + 32 * i + 8 * k, v);
            }
        }
        return 0;
    }
    case BN_TQ2_0: {
        const block_tq2_0 *x = (const block_tq2_0 *)row;
        for (int64_t i = 0; i < n / QK_K; i++) {
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d));
            for (int c = 0; c < 2; c++)
                for (int l = 0; l < 4; l++)
                    for (int k = 0; k < 32; k += 8) {
                        const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 32 * c + k)));
                        const __m256i q = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(b, 2 * l), _mm256_set1_epi32(3)),
                                                           _mm256_set1_epi32(1));
                        _mm256_storeu_ps(y + QK_K * i + 128 * c + 32 * l + k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
                    }
        }
        return 0;
    }
    case BN_I2_S: {
        const uint8_t *x = (const uint8_t *)row;
        const __m256 s = _mm256_set1_ps(tensor_scale);
        for (int64_t b = 0; b < n / 128; b++)
            for (int l = 0; l < 4; l++)
                for (int k = 0; k < 32; k += 8) {
                    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x + 32 * b + k)));
                    const __m256i q = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(v, 6 - 2 * l), _mm256_set1_epi32(3)),
                                                       _mm256_set1_epi32(1));
                    _mm256_storeu_ps(y + 128 * b + 32 * l + k, _mm256_mul_ps(s, _mm256_cvtepi32_ps(q)));
                }
        return 0;
    }
    default:
        return -1;
    }
}
#endif

int bn_dequant_row(int type, const void *row, float *y, int64_t n, float tensor_scale) {
#if BN_X86
    if (bn_pick(K_DEQUANT) >= BN_ISA_AVX2 && dequant_row_avx2(type, row, y, n, tensor_scale) == 0) return 0;
#endif
    switch (type) {
    case BN_F32:
        memcpy(y, row, sizeof(float) * (size_t)n);
        return 0;
    case BN_F16: {
        const bn_half *x = (const bn_half *)row;
        for (int64_t i = 0; i < n; i++) y[i] = bn_fp16_to_fp32(x[i]);
        return 0;
    }
    case BN_Q8_0: {
        const block_q8_0 *x = (const block_q8_0 *)row;
        for (int64_t i = 0; i < n / 32; i++) {
            const float d = bn_fp16_to_fp32(x[i].d);
            for (int j = 0; j < 32; j++) y[32 * i + j] = (float)x[i].qs[j] * d;
        }
        return 0;
    }
    case BN_Q4_0: {
        const block_q4_0 *x = (const block_q4_0 *)row;
        for (int64_t i = 0; i < n / 32; i++) {
            const float d = bn_fp16_to_fp32(x[i].d);
            for (int j = 0; j < 16; j++) {
                y[32 * i + j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
                y[32 * i + j + 16] = (float)((x[i].qs[j] >> 4) - 8) * d;
            }
        }
        return 0;
    }
    case BN_Q4_1: {
        const block_q4_1 *x = (const block_q4_1 *)row;
        for (int64_t i = 0; i < n / 32; i++) {
            const float d = bn_fp16_to_fp32(x[i].d), m = bn_fp16_to_fp32(x[i].m);
            for (int j = 0; j < 16; j++) {
                y[32 * i + j] = (float)(x[i].qs[j] & 0x0F) * d + m;
                y[32 * i + j + 16] = (float)(x[i].qs[j] >> 4) * d + m;
            }
        }
        return 0;
    }
    case BN_Q4_K: {
        const block_q4_K *x = (const block_q4_K *)row;
        for (int64_t i = 0; i < n / QK_K; i++) {
            const float d = bn_fp16_to_fp32(x[i].d), dmin = bn_fp16_to_fp32(x[i].dmin);
            float *yb = y + QK_K * i;
            for (int j = 0; j < 8; j++) {
                int sc, m;
                get_scale_min_k4(j, x[i].scales, &sc, &m);
                const float d1 = d * (float)sc, m1 = dmin * (float)m;
                const uint8_t *q = x[i].qs + 32 * (j / 2);
                const int shift = 4 * (j % 2);
                for (int l = 0; l < 32; l++) yb[32 * j + l] = d1 * (float)((q[l] >> shift) & 0xF) - m1;
            }
        }
        return 0;
    }
    case BN_Q6_K: {
        const block_q6_K *x = (const block_q6_K *)row;
        for (int64_t i = 0; i < n / QK_K; i++) {
            const float d = bn_fp16_to_fp32(x[i].d);
            for (int e = 0; e < QK_K; e++) {
                const int h = e / 128, g = (e % 128) / 32, l = e % 32;
                const uint8_t lbyte = x[i].ql[64 * h + 32 * (g % 2) + l];
                const int low = (g / 2) ? (lbyte >> 4) : (lbyte & 0xF);
                const int high = (x[i].qh[32 * h + l] >> (2 * g)) & 3;
                const float dl = d * (float)x[i].scales[e / 16];
                y[QK_K * i + e] = dl * (float)((low | (high << 4)) - 32);
            }
        }
        return 0;
    }
    case BN_TQ1_0: {
        static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
        const block_tq1_0 *x = (const block_tq1_0 *)row;
        for (int64_t i = 0; i < n / QK_K; i++) {
            const float d = bn_fp16_to_fp32(x[i].d);
            float *yb = y + QK_K * i;
            for (int l = 0; l < 5; l++)
                for (int m = 0; m < 32; m++) {
                    const uint8_t q = (uint8_t)(x[i].qs[m] * pow3[l]);
                    yb[32 * l + m] = (float)((((uint16_t)q * 3) >> 8) - 1) * d;
                }
            for (int l = 0; l < 5; l++)
                for (int m = 0; m < 16; m++) {
                    const uint8_t q = (uint8_t)(x[i].qs[32 + m] * pow3[l]);
                    yb[160 + 16 * l + m] = (float)((((uint16_t)q * 3) >> 8) - 1) * d;
                }
            for (int l = 0; l < 4; l++)
                for (int j = 0; j < 4; j++) {
                    const uint8_t q = (uint8_t)(x[i].qh[j] * pow3[l]);
                    yb[240 + 4 * l + j] = (float)((((uint16_t)q * 3) >> 8) - 1) * d;
                }
        }
        return 0;
    }
    case BN_TQ2_0: {
        const block_tq2_0 *x = (const block_tq2_0 *)row;
        for (int64_t i = 0; i < n / QK_K; i++) {
            const float d = bn_fp16_to_fp32(x[i].d);
            for (int c = 0; c < 2; c++)
                for (int l = 0; l < 4; l++)
                    for (int k = 0; k < 32; k++)
                        y[QK_K * i + 128 * c + 32 * l + k] = (float)(((x[i].qs[32 * c + k] >> (2 * l)) & 3) - 1) * d;
        }
        return 0;
    }
    case BN_I2_S: {
        const uint8_t *x = (const uint8_t *)row;
        for (int64_t b = 0; b < n / 128; b++)
            for (int j = 0; j < 32; j++) {
                const uint8_t v = x[32 * b + j];
                float *yb = y + 128 * b + j;
                yb[0] = tensor_scale * (float)((v >> 6) - 1);
                yb[32] = tensor_scale * (float)(((v >> 4) & 3) - 1);
                yb[64] = tensor_scale * (float)(((v >> 2) & 3) - 1);
                yb[96] = tensor_scale * (float)((v & 3) - 1);
            }
        return 0;
    }
    default:
        return -1;
    }
}

int bn_row_bytes(int type, int64_t D, size_t *row_bytes) {
    int block, size;
    switch (type) {
    case BN_F32: block = 1; size = 4; break;
    case BN_F16: block = 1; size = 2; break;
    case BN_Q8_0: block = 32; size = 34; break;
    case BN_Q4_0: block = 32; size = 18; break;
    case BN_Q4_1: block = 32; size = 20; break;
    case BN_Q4_K: block = QK_K; size = 144; break;
    case BN_Q6_K: block = QK_K; size = 210; break;
    case BN_TQ1_0: block = QK_K; size = 54; break;
    case BN_TQ2_0: block = QK_K; size = 66; break;
    case BN_I2_S: block = 128; size = 32; break;
    default: return -1;
    }
    if (D < 0 || D % block) return -2;
    *row_bytes = (size_t)(D / block) * (size_t)size;
    return 0;
}

int bn_dequantize_rows(int type, const void *w, int64_t n_rows, int64_t D, const int64_t *ids,
                       int64_t T, float *y) {
    size_t rb;
    const int err = bn_row_bytes(type, D, &rb);
    if (err) return err;
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= n_rows) return -2;
    float scale = 0.0f;
    if (type == BN_I2_S) memcpy(&scale, (const uint8_t *)w + (size_t)n_rows * rb, sizeof(float));
    for (int64_t t = 0; t < T; t++)
        bn_dequant_row(type, (const uint8_t *)w + (size_t)ids[t] * rb, y + t * D, D, scale);
    return 0;
}
