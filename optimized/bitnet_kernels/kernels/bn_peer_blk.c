/* bn_peer_blk.c: the block-type matmuls (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, TQ1_0, TQ2_0, I2_S) in
 * llama.cpp's order (see bn_peer_mm.c for the order itself).
 *
 * A weight row is read as unsigned bytes in element order (Q8_0 as w + 128, Q4_0 / Q5_0 as
 * their unsigned codes; the activation's bias lanes undo the offsets) plus float scales:
 * - scalar and NEON: the whole row unpacked first (unpack_row), then the cores;
 * - AVX2 / AVX-512: 32 weights at a time in a register (w32_*): a batch unpacks each row
 *   once into scratch and runs it against the tokens (two per AVX-512 register); one token
 *   (decode) streams two rows through the halves of an AVX-512 register with no scratch
 *   (the hot types with their own loads: Q4_0, Q4_1, Q8_0, TQ1_0, TQ2_0, I2_S).
 * Every variant computes the same integer lanes and the same float steps.
 */
#include "bn_peer.h"
#include "bn_api.h"

#include <stdlib.h>

static inline float h2f(const uint8_t *p) {
    bn_half h;
    memcpy(&h, p, 2);
    return bn_fp16_to_fp32(h);
}

/* ================================================================================= */
/* scalar unpacking and cores (the definition)                                        */

/* u8 (D), dw (nsb), mw (nsb) of weight row `row` */
static void unpack_row(const bn_peer_mm *c, int64_t row, uint8_t *u8, float *dw, float *mw) {
    bn_blk_geom g;
    bn_peer_geom(c->type, &g);
    const uint8_t *w = c->w + (size_t)row * c->w_row;
    const int64_t nsb = bn_peer_nsb(c->type, c->D);
    for (int64_t b = 0; b < nsb; b++) {
        const uint8_t *p = w + b * g.wbytes;
        uint8_t *o = u8 + b * g.sb;
        switch (c->type) {
        case BN_Q8_0:
            dw[b] = h2f(p);
            for (int j = 0; j < 32; j++) o[j] = (uint8_t)(p[2 + j] ^ 0x80);
            break;
        case BN_Q4_0:
        case BN_Q4_1: {
            const int hm = c->type == BN_Q4_1;
            dw[b] = h2f(p);
            if (hm) mw[b] = h2f(p + 2);
            const uint8_t *qs = p + (hm ? 4 : 2);
            for (int j = 0; j < 16; j++) {
                o[j] = qs[j] & 0x0F;
                o[j + 16] = qs[j] >> 4;
            }
            break;
        }
        case BN_Q5_0:
        case BN_Q5_1: {
            const int hm = c->type == BN_Q5_1;
            dw[b] = h2f(p);
            if (hm) mw[b] = h2f(p + 2);
            uint32_t qh;
            memcpy(&qh, p + (hm ? 4 : 2), 4);
            const uint8_t *qs = p + (hm ? 8 : 6);
            for (int j = 0; j < 16; j++) {
                o[j] = (uint8_t)((qs[j] & 0x0F) | (((qh >> j) & 1) << 4));
                o[j + 16] = (uint8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
            }
            break;
        }
        case BN_TQ2_0:
            dw[b] = h2f(p + 64);
            for (int cc = 0; cc < 2; cc++)
                for (int l = 0; l < 4; l++)
                    for (int k = 0; k < 32; k++) o[128 * cc + 32 * l + k] = (p[32 * cc + k] >> (2 * l)) & 3;
            break;
        case BN_TQ1_0: {
            static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
            dw[b] = h2f(p + 52);
            for (int l = 0; l < 5; l++)
                for (int m = 0; m < 32; m++) o[32 * l + m] = (uint8_t)(((uint16_t)(uint8_t)(p[m] * pow3[l]) * 3) >> 8);
            for (int l = 0; l < 5; l++)
                for (int m = 0; m < 16; m++)
                    o[160 + 16 * l + m] = (uint8_t)(((uint16_t)(uint8_t)(p[32 + m] * pow3[l]) * 3) >> 8);
            for (int l = 0; l < 4; l++)
                for (int j = 0; j < 4; j++)
                    o[240 + 4 * l + j] = (uint8_t)(((uint16_t)(uint8_t)(p[48 + j] * pow3[l]) * 3) >> 8);
            break;
        }
        case BN_I2_S: /* two bitnet.cpp blocks of 128: byte j holds elements j, j+32, j+64, j+96 */
            dw[b] = c->w_scale;
            for (int h = 0; h < 2 && 256 * b + 128 * h < c->D; h++)
                for (int l = 0; l < 4; l++)
                    for (int j = 0; j < 32; j++) o[128 * h + 32 * l + j] = (p[32 * h + j] >> (6 - 2 * l)) & 3;
            break;
        default: break;
        }
    }
}

static float core_ref(const uint8_t *w, const float *dw, const float *mw, bn_act_row a, int64_t D, const bn_blk_geom *g) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, summs = 0.0f;
    for (int64_t b = 0; b * g->sb < D; b++) {
        int32_t L[8];
        for (int j = 0; j < 8; j++) L[j] = a.bias[8 * b + j];
        for (int64_t e = b * g->sb; e < (b + 1) * g->sb && e < D; e++) L[(e % 32) / 4] += (int32_t)w[e] * a.codes[e];
        const float dd = dw[b] * a.da[b];
        for (int j = 0; j < 8; j++) acc[j] = fmaf(dd, (float)L[j], acc[j]);
        if (g->has_min) summs = fmaf(mw[b], a.sa[b], summs);
    }
    const float s = bn_hsum8(acc);
    return g->has_min ? s + summs : s;
}

/* q4_0_8x8 (repack.cpp GEMM and GEMV alike): one float accumulator, the block's whole
 * integer sum per step: acc = fma(float(isum), dw * dx, acc) */
static float core_repack_ref(const uint8_t *w, const float *dw, bn_act_row a, int64_t D) {
    float acc = 0.0f;
    for (int64_t b = 0; b < D / 32; b++) {
        int32_t isum = 0;
        for (int j = 0; j < 8; j++) isum += a.bias[8 * b + j];
        for (int64_t e = 32 * b; e < 32 * b + 32; e++) isum += (int32_t)w[e] * a.codes[e];
        acc = fmaf((float)isum, dw[b] * a.da[b], acc);
    }
    return acc;
}

/* ================================================================================= */
/* x86: 32 weights per register                                                       */
#if BN_X86

#define INLINE static inline __attribute__((always_inline))

/* 16 bytes of nibbles -> 32 bytes, low nibbles first */
INLINE BN_TARGET_AVX2 __m256i nib32(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

/* 0x10 in byte j where bit j of the 32-bit qh is set */
INLINE BN_TARGET_AVX2 __m256i bits32(const uint8_t *qh) {
    uint32_t x;
    memcpy(&x, qh, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_and_si256(_mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1)), _mm256_set1_epi8(0x10));
}

/* trits of bytes b: ((uint8)(b * pw) * 3) >> 8, pw per 16-bit lane */
INLINE BN_TARGET_AVX2 __m256i trits32(__m256i b, __m256i pw) {
    const __m256i lo_mask = _mm256_set1_epi16(0x00FF), three = _mm256_set1_epi16(3);
    const __m256i even = _mm256_and_si256(_mm256_mullo_epi16(b, pw), lo_mask);
    const __m256i odd = _mm256_slli_epi16(_mm256_mullo_epi16(_mm256_srli_epi16(b, 8), pw), 8);
    const __m256i v = _mm256_or_si256(even, odd);
    const __m256i t_even = _mm256_mulhi_epu16(_mm256_slli_epi16(v, 8), three);
    const __m256i t_odd = _mm256_mulhi_epu16(_mm256_andnot_si256(lo_mask, v), three);
    return _mm256_or_si256(t_even, _mm256_slli_epi16(t_odd, 8));
}

/* the 32 unsigned weight bytes of group g (elements 32g..32g+31) of a row */
INLINE BN_TARGET_AVX2 __m256i w32(int type, const uint8_t *row, int64_t g) {
    switch (type) {
    case BN_Q8_0:
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(row + 34 * g + 2)), _mm256_set1_epi8((char)0x80));
    case BN_Q4_0: return nib32(row + 18 * g + 2);
    case BN_Q4_1: return nib32(row + 20 * g + 4);
    case BN_Q5_0: return _mm256_or_si256(nib32(row + 22 * g + 6), bits32(row + 22 * g + 2));
    case BN_Q5_1: return _mm256_or_si256(nib32(row + 24 * g + 8), bits32(row + 24 * g + 4));
    case BN_TQ2_0: {
        const int64_t b = g / 8, c = (g % 8) / 4, l = g % 4;
        const __m256i v = _mm256_loadu_si256((const __m256i *)(row + 66 * b + 32 * c));
        return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128((int)(2 * l))), _mm256_set1_epi8(3));
    }
    case BN_I2_S: {
        const int64_t h = g / 4, l = g % 4;
        const __m256i v = _mm256_loadu_si256((const __m256i *)(row + 32 * h));
        return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128((int)(6 - 2 * l))), _mm256_set1_epi8(3));
    }
    case BN_TQ1_0: {
        static const int16_t pow3[6] = {1, 3, 9, 27, 81, 243};
        const int64_t b = g / 8, r = g % 8;
        const uint8_t *p = row + 54 * b;
        if (r < 5) return trits32(_mm256_loadu_si256((const __m256i *)p), _mm256_set1_epi16(pow3[r]));
        const __m256i q1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 32)));
        if (r < 7) {
            const int l = 2 * (r - 5);
            return trits32(q1, _mm256_set_m128i(_mm_set1_epi16(pow3[l + 1]), _mm_set1_epi16(pow3[l])));
        }
        uint32_t qh; /* elements 240 + 4l + j: qh[j] * 3^l, l = 0..3, next to qs[32..47] * 81 */
        memcpy(&qh, p + 48, 4);
        const __m128i hq = _mm_set1_epi32((int)qh);
        const __m256i bytes = _mm256_set_m128i(hq, _mm256_castsi256_si128(q1));
        const __m256i pw = _mm256_set_epi16(27, 27, 9, 9, 3, 3, 1, 1, 81, 81, 81, 81, 81, 81, 81, 81);
        return trits32(bytes, pw);
    }
    default: return _mm256_setzero_si256();
    }
}

/* the float scales of super-block b (elements sb*b..) of a row */
INLINE BN_TARGET_AVX2 float wd(int type, const uint8_t *row, int64_t b, float i2s_scale) {
    switch (type) {
    case BN_Q8_0: return _cvtsh_ss(*(const uint16_t *)(row + 34 * b));
    case BN_Q4_0: return _cvtsh_ss(*(const uint16_t *)(row + 18 * b));
    case BN_Q4_1: return _cvtsh_ss(*(const uint16_t *)(row + 20 * b));
    case BN_Q5_0: return _cvtsh_ss(*(const uint16_t *)(row + 22 * b));
    case BN_Q5_1: return _cvtsh_ss(*(const uint16_t *)(row + 24 * b));
    case BN_TQ2_0: return _cvtsh_ss(*(const uint16_t *)(row + 66 * b + 64));
    case BN_TQ1_0: return _cvtsh_ss(*(const uint16_t *)(row + 54 * b + 52));
    default: return i2s_scale;
    }
}

INLINE BN_TARGET_AVX2 float wm(int type, const uint8_t *row, int64_t b) {
    return _cvtsh_ss(*(const uint16_t *)(row + (type == BN_Q4_1 ? 20 : 24) * b + 2));
}

/* a row into scratch (u8 codes, scales): the batch form */
INLINE BN_TARGET_AVX2 void unpack_row_x86(int type, const uint8_t *row, int64_t D, int sb, float i2s, uint8_t *u8,
                                          float *dw, float *mw) {
    const int has_min = type == BN_Q4_1 || type == BN_Q5_1;
    for (int64_t g = 0; g * 32 < D; g++) _mm256_storeu_si256((__m256i *)(u8 + 32 * g), w32(type, row, g));
    for (int64_t b = 0; b * sb < D; b++) {
        dw[b] = wd(type, row, b, i2s);
        if (has_min) mw[b] = wm(type, row, b);
    }
}

#define FOR_BLOCK_TYPES(X) X(BN_Q8_0, q8_0) X(BN_Q4_0, q4_0) X(BN_Q5_0, q5_0) X(BN_Q4_1, q4_1) X(BN_Q5_1, q5_1) \
    X(BN_TQ1_0, tq1_0) X(BN_TQ2_0, tq2_0) X(BN_I2_S, i2_s)

#define UNPACK_FN(T, name)                                                                                         \
    static BN_TARGET_AVX2 void unpack_##name(const uint8_t *row, int64_t D, int sb, float i2s, uint8_t *u8, float *dw, \
                                             float *mw) {                                                          \
        unpack_row_x86(T, row, D, sb, i2s, u8, dw, mw);                                                            \
    }
FOR_BLOCK_TYPES(UNPACK_FN)

typedef void (*unpack_fn)(const uint8_t *, int64_t, int, float, uint8_t *, float *, float *);

static unpack_fn pick_unpack(int type) {
    switch (type) {
#define UNPACK_CASE(T, name) case T: return unpack_##name;
    FOR_BLOCK_TYPES(UNPACK_CASE)
    default: return NULL;
    }
}

/* AVX2: maddubs + madd (u8 x s8 pairs stay inside int16 for weights <= 127; the Q8_0 bytes,
 * up to 255, go in two parts: (w & 127) and the top bit) */
static BN_TARGET_AVX2 float core_avx2(const uint8_t *w, const float *dw, const float *mw, bn_act_row a, int64_t D,
                                      const bn_blk_geom *g, int wide) {
    const __m256i ones = _mm256_set1_epi16(1), low7 = _mm256_set1_epi8(0x7F);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t b = 0; b * g->sb < D; b++) {
        __m256i L = _mm256_loadu_si256((const __m256i *)(a.bias + 8 * b));
        for (int64_t e = b * g->sb; e < (b + 1) * g->sb && e < D; e += 32) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(w + e));
            const __m256i av = _mm256_loadu_si256((const __m256i *)(a.codes + e));
            if (wide) {
                const __m256i lo = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(wv, low7), av), ones);
                const __m256i top = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_srli_epi16(_mm256_andnot_si256(low7, wv), 7), av), ones);
                L = _mm256_add_epi32(L, _mm256_add_epi32(lo, _mm256_slli_epi32(top, 7)));
            } else {
                L = _mm256_add_epi32(L, _mm256_madd_epi16(_mm256_maddubs_epi16(wv, av), ones));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw[b] * a.da[b]), _mm256_cvtepi32_ps(L), acc);
        if (g->has_min) summs = fmaf(mw[b], a.sa[b], summs);
    }
    const float s = bn_hsum8_avx2(acc);
    return g->has_min ? s + summs : s;
}

static BN_TARGET_AVX2 float core_repack_avx2(const uint8_t *w, const float *dw, bn_act_row a, int64_t D) {
    const __m256i ones = _mm256_set1_epi16(1);
    float acc = 0.0f;
    for (int64_t b = 0; b < D / 32; b++) {
        __m256i L = _mm256_loadu_si256((const __m256i *)(a.bias + 8 * b));
        L = _mm256_add_epi32(L, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(w + 32 * b)),
                                                                       _mm256_loadu_si256((const __m256i *)(a.codes + 32 * b))),
                                                  ones));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(L), _mm256_extracti128_si256(L, 1));
        s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        acc = fmaf((float)_mm_cvtsi128_si32(s4), dw[b] * a.da[b], acc);
    }
    return acc;
}

INLINE BN_TARGET_AVX512 __m512i load_2x256(const void *lo, const void *hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
                              _mm256_loadu_si256((const __m256i *)hi), 1);
}

INLINE BN_TARGET_AVX512 void store_hsum_2(__m512 acc, float *s0, float *s1) {
    *s0 = bn_hsum8_avx2(_mm512_castps512_ps256(acc));
    *s1 = bn_hsum8_avx2(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
}

/* AVX-512 VNNI, one unpacked weight row against tokens t, t+1 (register halves), four at a
 * time when nt = 4: the weight bytes are loaded once per 32 */
static BN_TARGET_AVX512 void core_tok_avx512(const uint8_t *w, const float *dw, const float *mw, const bn_act_row *a,
                                             int nt, int64_t D, const bn_blk_geom *g, float *out) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    float summs[4] = {0, 0, 0, 0};
    const __mmask16 hi = 0xFF00;
    for (int64_t b = 0; b * g->sb < D; b++) {
        __m512i L0 = load_2x256(a[0].bias + 8 * b, a[1].bias + 8 * b), L1 = L0;
        if (nt == 4) L1 = load_2x256(a[2].bias + 8 * b, a[3].bias + 8 * b);
        for (int64_t e = b * g->sb; e < (b + 1) * g->sb && e < D; e += 32) {
            const __m512i wv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + e)));
            L0 = _mm512_dpbusd_epi32(L0, wv, load_2x256(a[0].codes + e, a[1].codes + e));
            if (nt == 4) L1 = _mm512_dpbusd_epi32(L1, wv, load_2x256(a[2].codes + e, a[3].codes + e));
        }
        const __m512 d = _mm512_set1_ps(dw[b]);
        const __m512 d0 = _mm512_mul_ps(d, _mm512_mask_blend_ps(hi, _mm512_set1_ps(a[0].da[b]), _mm512_set1_ps(a[1].da[b])));
        acc0 = _mm512_fmadd_ps(d0, _mm512_cvtepi32_ps(L0), acc0);
        if (nt == 4) {
            const __m512 d1 = _mm512_mul_ps(d, _mm512_mask_blend_ps(hi, _mm512_set1_ps(a[2].da[b]), _mm512_set1_ps(a[3].da[b])));
            acc1 = _mm512_fmadd_ps(d1, _mm512_cvtepi32_ps(L1), acc1);
        }
        if (g->has_min)
            for (int r = 0; r < nt; r++) summs[r] = fmaf(mw[b], a[r].sa[b], summs[r]);
    }
    store_hsum_2(acc0, &out[0], &out[1]);
    if (nt == 4) store_hsum_2(acc1, &out[2], &out[3]);
    if (g->has_min)
        for (int r = 0; r < nt; r++) out[r] += summs[r];
}

/* AVX-512 VNNI, the batch tile: nr (<= 4) unpacked weight rows x 4 tokens (two register
 * halves per accumulator, two accumulators per row). The tokens' codes, bias lanes and
 * scales are loaded once per block for all rows; each (row, token) keeps its own float
 * chain, the bits of core_ref. zero_bias: the type has no bias lanes (Q4_1, Q5_1). */
INLINE BN_TARGET_AVX512 void tile4_body(int zero_bias, int has_min, int sb, const uint8_t *const *w,
                                        const float *const *dw, const float *const *mw, int nr,
                                        const bn_act_row *a, int64_t D, float out[4][4]) {
    const __mmask16 hi = 0xFF00;
    __m512 acc[4][2];
    __m128 summs[4];
    for (int r = 0; r < 4; r++) {
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        summs[r] = _mm_setzero_ps();
    }
    for (int64_t b = 0; b * sb < D; b++) {
        __m512i b01 = _mm512_setzero_si512(), b23 = b01;
        if (!zero_bias) {
            b01 = load_2x256(a[0].bias + 8 * b, a[1].bias + 8 * b);
            b23 = load_2x256(a[2].bias + 8 * b, a[3].bias + 8 * b);
        }
        __m512i L[4][2];
        for (int r = 0; r < nr; r++) {
            L[r][0] = b01;
            L[r][1] = b23;
        }
        for (int64_t e = b * sb; e < (b + 1) * sb && e < D; e += 32) {
            const __m512i c01 = load_2x256(a[0].codes + e, a[1].codes + e);
            const __m512i c23 = load_2x256(a[2].codes + e, a[3].codes + e);
            for (int r = 0; r < nr; r++) {
                const __m512i wv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w[r] + e)));
                L[r][0] = _mm512_dpbusd_epi32(L[r][0], wv, c01);
                L[r][1] = _mm512_dpbusd_epi32(L[r][1], wv, c23);
            }
        }
        const __m512 da01 = _mm512_mask_blend_ps(hi, _mm512_set1_ps(a[0].da[b]), _mm512_set1_ps(a[1].da[b]));
        const __m512 da23 = _mm512_mask_blend_ps(hi, _mm512_set1_ps(a[2].da[b]), _mm512_set1_ps(a[3].da[b]));
        __m128 sa = _mm_setzero_ps();
        if (has_min) sa = _mm_setr_ps(a[0].sa[b], a[1].sa[b], a[2].sa[b], a[3].sa[b]);
        for (int r = 0; r < nr; r++) {
            const __m512 d = _mm512_set1_ps(dw[r][b]);
            acc[r][0] = _mm512_fmadd_ps(_mm512_mul_ps(d, da01), _mm512_cvtepi32_ps(L[r][0]), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(_mm512_mul_ps(d, da23), _mm512_cvtepi32_ps(L[r][1]), acc[r][1]);
            if (has_min) summs[r] = _mm_fmadd_ps(_mm_set1_ps(mw[r][b]), sa, summs[r]);
        }
    }
    for (int r = 0; r < nr; r++) {
        store_hsum_2(acc[r][0], &out[r][0], &out[r][1]);
        store_hsum_2(acc[r][1], &out[r][2], &out[r][3]);
        if (has_min) {
            float s[4];
            _mm_storeu_ps(s, summs[r]);
            for (int k = 0; k < 4; k++) out[r][k] += s[k];
        }
    }
}

static BN_TARGET_AVX512 void tile4_plain(int sb, const uint8_t *const *w, const float *const *dw, const float *const *mw,
                                         int nr, const bn_act_row *a, int64_t D, float out[4][4]) {
    tile4_body(0, 0, sb, w, dw, mw, nr, a, D, out);
}

static BN_TARGET_AVX512 void tile4_min(int sb, const uint8_t *const *w, const float *const *dw, const float *const *mw,
                                       int nr, const bn_act_row *a, int64_t D, float out[4][4]) {
    tile4_body(1, 1, sb, w, dw, mw, nr, a, D, out);
}

/* AVX-512 VNNI, two weight rows (register halves) streamed straight from the file against
 * one token: the decode form, no scratch */
INLINE BN_TARGET_AVX512 void rows2_body(int type, const uint8_t *rA, const uint8_t *rB, bn_act_row a, int64_t D,
                                        int sb, float i2s, float *out) {
    const int has_min = type == BN_Q4_1 || type == BN_Q5_1;
    const __mmask16 hi = 0xFF00;
    __m512 acc = _mm512_setzero_ps();
    float sA = 0.0f, sB = 0.0f;
    for (int64_t b = 0; b * sb < D; b++) {
        __m512i L = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a.bias + 8 * b)));
        for (int64_t e = b * sb; e < (b + 1) * sb && e < D; e += 32) {
            const __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(w32(type, rA, e / 32)), w32(type, rB, e / 32), 1);
            L = _mm512_dpbusd_epi32(L, wv, _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a.codes + e))));
        }
        const __m512 dw = _mm512_mask_blend_ps(hi, _mm512_set1_ps(wd(type, rA, b, i2s)), _mm512_set1_ps(wd(type, rB, b, i2s)));
        acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a.da[b])), _mm512_cvtepi32_ps(L), acc);
        if (has_min) {
            sA = fmaf(wm(type, rA, b), a.sa[b], sA);
            sB = fmaf(wm(type, rB, b), a.sa[b], sB);
        }
    }
    store_hsum_2(acc, &out[0], &out[1]);
    if (has_min) {
        out[0] += sA;
        out[1] += sB;
    }
}

#define ROWS2_FN(T, name)                                                                                         \
    static BN_TARGET_AVX512 void rows2_##name(const uint8_t *rA, const uint8_t *rB, bn_act_row a, int64_t D, int sb, \
                                              float i2s, float *out) {                                            \
        rows2_body(T, rA, rB, a, D, sb, i2s, out);                                                                \
    }
#define GENERIC_ROWS2_TYPES(X) X(BN_Q5_0, q5_0) X(BN_Q5_1, q5_1)
GENERIC_ROWS2_TYPES(ROWS2_FN)

/* the hot 32-block types with the two rows' bytes and scales fetched together: nibbles of
 * both rows in one register ([A lo | B lo | A hi | B hi], then qword-permuted to A lo A hi
 * B lo B hi), the f16 d (and m) of both rows converted by one vcvtph2ps */
INLINE BN_TARGET_AVX512 void rows2_q4(int has_min, int bsz, const uint8_t *rA, const uint8_t *rB, bn_act_row a,
                                     int64_t D, float *out) {
    const __m512i order = _mm512_set_epi64(7, 6, 3, 2, 5, 4, 1, 0);
    const __m512i d_idx = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    const int qoff = has_min ? 4 : 2;
    __m512 acc = _mm512_setzero_ps();
    __m128 summs = _mm_setzero_ps(); /* lanes 1 and 3: row A's and row B's sum of m * s */
    for (int64_t b = 0; b < D / 32; b++) {
        const uint8_t *pA = rA + bsz * b, *pB = rB + bsz * b;
        uint32_t hA, hB;
        memcpy(&hA, pA, 4);
        memcpy(&hB, pB, 4);
        const __m128 f = _mm_cvtph_ps(_mm_unpacklo_epi32(_mm_cvtsi32_si128((int)hA), _mm_cvtsi32_si128((int)hB)));
        const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(pA + qoff))),
                                                  _mm_loadu_si128((const __m128i *)(pB + qoff)), 1);
        __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
        wv = _mm512_permutexvar_epi64(order, _mm512_and_si512(wv, _mm512_set1_epi8(0x0F)));
        const __m512i L = _mm512_dpbusd_epi32(_mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a.bias + 8 * b))),
                                              wv, _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a.codes + 32 * b))));
        const __m512 dw = _mm512_permutexvar_ps(d_idx, _mm512_castps128_ps512(f));
        acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a.da[b])), _mm512_cvtepi32_ps(L), acc);
        if (has_min) summs = _mm_fmadd_ps(f, _mm_set1_ps(a.sa[b]), summs);
    }
    store_hsum_2(acc, &out[0], &out[1]);
    if (has_min) {
        out[0] += _mm_cvtss_f32(_mm_shuffle_ps(summs, summs, 1));
        out[1] += _mm_cvtss_f32(_mm_shuffle_ps(summs, summs, 3));
    }
}

static BN_TARGET_AVX512 void rows2_q4_1_fast(const uint8_t *rA, const uint8_t *rB, bn_act_row a, int64_t D, int sb,
                                             float i2s, float *out) {
    (void)sb;
    (void)i2s;
    rows2_q4(1, 20, rA, rB, a, D, out);
}

static BN_TARGET_AVX512 void rows2_q4_0_fast(const uint8_t *rA, const uint8_t *rB, bn_act_row a, int64_t D, int sb,
                                             float i2s, float *out) {
    (void)sb;
    (void)i2s;
    rows2_q4(0, 18, rA, rB, a, D, out);
}

static BN_TARGET_AVX512 void rows2_q8_0_fast(const uint8_t *rA, const uint8_t *rB, bn_act_row a, int64_t D, int sb,
                                             float i2s, float *out) {
    (void)sb;
    (void)i2s;
    const __m512i d_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < D / 32; b++) {
        const uint8_t *pA = rA + 34 * b, *pB = rB + 34 * b;
        uint16_t hA, hB;
        memcpy(&hA, pA, 2);
        memcpy(&hB, pB, 2);
        const __m128 f = _mm_cvtph_ps(_mm_insert_epi16(_mm_cvtsi32_si128(hA), hB, 1));
        const __m512i wv = _mm512_xor_si512(load_2x256(pA + 2, pB + 2), _mm512_set1_epi8((char)0x80));
        const __m512i L = _mm512_dpbusd_epi32(_mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a.bias + 8 * b))),
                                              wv, _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a.codes + 32 * b))));
        const __m512 dw = _mm512_permutexvar_ps(d_idx, _mm512_castps128_ps512(f));
        acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a.da[b])), _mm512_cvtepi32_ps(L), acc);
    }
    store_hsum_2(acc, &out[0], &out[1]);
}

/* 2-bit codes (TQ2_0: byte k of half c holds elements 128c + 32l + k at bits 2l; I2_S: byte j
 * of 128-block h holds elements 128h + 32l + j at bits 6 - 2l): each 64 bytes of a row loaded
 * once per 256-block, the two rows' halves paired in one register; code l is only masked in
 * place (v & 3 << 2s, s its shift: 4^s times the code, at most 192 for vpdpbusd), so chain l
 * sums 4^s times its exact products and is shifted back (exactly) once per block, the bias
 * lanes in the chain with s = 0; prefetch 2 KB ahead per row, as in rows2_tq1_0_fast */
INLINE BN_TARGET_AVX512 void rows2_2bit(int i2s_layout, const uint8_t *rA, const uint8_t *rB, bn_act_row a, int64_t D,
                                        float i2s, float *out) {
    const __mmask16 hi = 0xFF00;
    __m512 acc = _mm512_setzero_ps();
    const int bsz = i2s_layout ? 64 : 66;
    for (int64_t b = 0; b * 256 < D; b++) {
        const uint8_t *pA = rA + bsz * b, *pB = rB + bsz * b;
        _mm_prefetch((const char *)(pA + 2048), _MM_HINT_T0);
        _mm_prefetch((const char *)(pB + 2048), _MM_HINT_T0);
        const int halves = D - 256 * b >= 256 ? 2 : 1; /* an I2_S row may end with half a block */
        /* integer sums: four independent chains (any order gives the same integers) */
        const __m512i bias = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a.bias + 8 * b)));
        __m512i L[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        L[i2s_layout ? 3 : 0] = bias;
        for (int c = 0; c < halves; c++) {
            const __m512i v = load_2x256(pA + 32 * c, pB + 32 * c);
            const int8_t *x = a.codes + 256 * b + 128 * c;
            for (int l = 0; l < 4; l++) {
                const int sh = i2s_layout ? 6 - 2 * l : 2 * l;
                const __m512i wv = _mm512_and_si512(v, _mm512_set1_epi8((char)(3 << sh)));
                L[l] = _mm512_dpbusd_epi32(L[l], wv, _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 32 * l))));
            }
        }
        for (int l = 0; l < 4; l++) L[l] = _mm512_srai_epi32(L[l], (unsigned)(i2s_layout ? 6 - 2 * l : 2 * l));
        L[0] = _mm512_add_epi32(_mm512_add_epi32(L[0], L[1]), _mm512_add_epi32(L[2], L[3]));
        float dA = i2s, dB = i2s;
        if (!i2s_layout) {
            dA = _cvtsh_ss(*(const uint16_t *)(pA + 64));
            dB = _cvtsh_ss(*(const uint16_t *)(pB + 64));
        }
        const __m512 dw = _mm512_mask_blend_ps(hi, _mm512_set1_ps(dA), _mm512_set1_ps(dB));
        acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a.da[b])), _mm512_cvtepi32_ps(L[0]), acc);
    }
    store_hsum_2(acc, &out[0], &out[1]);
}

static BN_TARGET_AVX512 void rows2_tq2_0_fast(const uint8_t *rA, const uint8_t *rB, bn_act_row a, int64_t D, int sb,
                                              float i2s, float *out) {
    (void)sb;
    rows2_2bit(0, rA, rB, a, D, i2s, out);
}

static BN_TARGET_AVX512 void rows2_i2_s_fast(const uint8_t *rA, const uint8_t *rB, bn_act_row a, int64_t D, int sb,
                                             float i2s, float *out) {
    (void)sb;
    rows2_2bit(1, rA, rB, a, D, i2s, out);
}

/* TQ1_0 (qs[0..31]: elements 32l + m = trit l of byte m, l = 0..4; qs[32..47]: elements
 * 160 + 16l + m, l = 0..4; qh[0..3]: elements 240 + 4l + j, l = 0..3; trit l of a byte q is
 * ((uint8)(q * 3^l) * 3) >> 8): the two rows' bytes side by side, every power of 3 taken as
 * byte adds on a whole register (llama.cpp's shifts, masks and adds), the trit as 64 * trit =
 * avg(q', avg(q', 0)) & 0xC0 with q' = q -sat 1 (llama.cpp's halving adds, the shift left
 * out): the four integer chains sum 64x the products and 64x the bias lanes, shifted back
 * exactly at the end of the block. */
INLINE BN_TARGET_AVX512 __m512i tq1_x9(__m512i x) { /* x * 9 mod 256 per byte */
    return _mm512_add_epi8(_mm512_and_si512(_mm512_slli_epi16(x, 3), _mm512_set1_epi8((char)0xF8)), x);
}

INLINE BN_TARGET_AVX512 __m512i tq1_trit64(__m512i q) {
    const __m512i q1 = _mm512_subs_epu8(q, _mm512_set1_epi8(1));
    return _mm512_and_si512(_mm512_avg_epu8(q1, _mm512_avg_epu8(q1, _mm512_setzero_si512())), _mm512_set1_epi8((char)0xC0));
}

INLINE BN_TARGET_AVX512 __m512i tq1_dot(__m512i L, __m512i q, const int8_t *x) {
    return _mm512_dpbusd_epi32(L, tq1_trit64(q), _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x)));
}

static BN_TARGET_AVX512 void rows2_tq1_0_fast(const uint8_t *rA, const uint8_t *rB, bn_act_row a, int64_t D, int sb,
                                              float i2s, float *out) {
    (void)sb;
    (void)i2s;
    const __mmask16 hi = 0xFF00;
    /* qword picks: [lo of x, lo of y | hi of x, hi of y] with x, y = two registers of 128-bit
     * lanes [A | B | ...]; the qh words: lanes 2 and 3 of the second register */
    const __m512i pair = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    const __m512i pair_qh = _mm512_set_epi64(15, 14, 3, 2, 13, 12, 1, 0);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < D / 256; b++) {
        const uint8_t *pA = rA + 54 * b, *pB = rB + 54 * b;
        const int8_t *x = a.codes + 256 * b;
        /* the pair's rows are one stream (A, then B, then the next pair): ~38 blocks ahead */
        _mm_prefetch((const char *)(pA + 2048), _MM_HINT_T0);
        _mm_prefetch((const char *)(pB + 2048), _MM_HINT_T0);
        /* qs[0..31] of A | of B */
        const __m512i v0 = load_2x256(pA, pB), v1 = _mm512_add_epi8(v0, _mm512_add_epi8(v0, v0));
        const __m512i v2 = tq1_x9(v0), v3 = tq1_x9(v1), v4 = tq1_x9(v2);
        /* 128-bit lanes: qs[32..47] of A | of B | qh of A four times | qh of B four times */
        const __m256i qs = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(pA + 32))),
                                                   _mm_loadu_si128((const __m128i *)(pB + 32)), 1);
        uint32_t hA, hB;
        memcpy(&hA, pA + 48, 4);
        memcpy(&hB, pB + 48, 4);
        const __m256i qh = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi32((int)hA)), _mm_set1_epi32((int)hB), 1);
        const __m512i h0 = _mm512_inserti64x4(_mm512_castsi256_si512(qs), qh, 1);
        const __m512i h1 = _mm512_add_epi8(h0, _mm512_add_epi8(h0, h0));
        const __m512i h2 = tq1_x9(h0), h3 = tq1_x9(h1), h4 = tq1_x9(h2);
        /* qh's trit l sits in dword l of each lane */
        __m512i q4 = _mm512_mask_blend_epi32(0x2222, h0, h1);
        q4 = _mm512_mask_blend_epi32(0x8888, _mm512_mask_blend_epi32(0x4444, q4, h2), h3);
        const __m256i bias = _mm256_loadu_si256((const __m256i *)(a.bias + 8 * b));
        const __m512i bias64 = _mm512_slli_epi32(_mm512_broadcast_i64x4(bias), 6);
        __m512i L0 = tq1_dot(bias64, v0, x), L1 = tq1_dot(_mm512_setzero_si512(), v1, x + 32);
        __m512i L2 = tq1_dot(_mm512_setzero_si512(), v2, x + 64), L3 = tq1_dot(_mm512_setzero_si512(), v3, x + 96);
        L0 = tq1_dot(L0, v4, x + 128);
        L1 = tq1_dot(L1, _mm512_permutex2var_epi64(h0, pair, h1), x + 160);
        L2 = tq1_dot(L2, _mm512_permutex2var_epi64(h2, pair, h3), x + 192);
        L3 = tq1_dot(L3, _mm512_permutex2var_epi64(h4, pair_qh, q4), x + 224);
        const __m512i L = _mm512_srai_epi32(_mm512_add_epi32(_mm512_add_epi32(L0, L1), _mm512_add_epi32(L2, L3)), 6);
        const float dA = _cvtsh_ss(*(const uint16_t *)(pA + 52)), dB = _cvtsh_ss(*(const uint16_t *)(pB + 52));
        const __m512 dw = _mm512_mask_blend_ps(hi, _mm512_set1_ps(dA), _mm512_set1_ps(dB));
        acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a.da[b])), _mm512_cvtepi32_ps(L), acc);
    }
    store_hsum_2(acc, &out[0], &out[1]);
}

typedef void (*rows2_fn)(const uint8_t *, const uint8_t *, bn_act_row, int64_t, int, float, float *);

static rows2_fn pick_rows2(int type) {
    switch (type) {
    case BN_Q4_1: return rows2_q4_1_fast;
    case BN_Q4_0: return rows2_q4_0_fast;
    case BN_Q8_0: return rows2_q8_0_fast;
    case BN_TQ2_0: return rows2_tq2_0_fast;
    case BN_I2_S: return rows2_i2_s_fast;
    case BN_TQ1_0: return rows2_tq1_0_fast;
#define ROWS2_CASE(T, name) case T: return rows2_##name;
    GENERIC_ROWS2_TYPES(ROWS2_CASE)
    default: return NULL;
    }
}
#endif /* BN_X86 */

/* ================================================================================= */
/* NEON (aarch64): widening 16-bit products (u8 <= 255 times s8 fits int16)            */
#if defined(__aarch64__)
static float core_neon(const uint8_t *w, const float *dw, const float *mw, bn_act_row a, int64_t D, const bn_blk_geom *g) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    float summs = 0.0f;
    for (int64_t b = 0; b * g->sb < D; b++) {
        int32x4_t L0 = vld1q_s32(a.bias + 8 * b), L1 = vld1q_s32(a.bias + 8 * b + 4);
        for (int64_t e = b * g->sb; e < (b + 1) * g->sb && e < D; e += 32) {
            int32x4_t part[2];
            for (int h = 0; h < 2; h++) { /* bytes 16h .. 16h+15: lanes 4h .. 4h+3 */
                const uint8x16_t wv = vld1q_u8(w + e + 16 * h);
                const int8x16_t av = vld1q_s8(a.codes + e + 16 * h);
                const int16x8_t p0 = vmulq_s16(vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(wv))), vmovl_s8(vget_low_s8(av)));
                const int16x8_t p1 = vmulq_s16(vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(wv))), vmovl_s8(vget_high_s8(av)));
                part[h] = vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1));
            }
            L0 = vaddq_s32(L0, part[0]);
            L1 = vaddq_s32(L1, part[1]);
        }
        const float32x4_t dd = vdupq_n_f32(dw[b] * a.da[b]);
        acc0 = vfmaq_f32(acc0, dd, vcvtq_f32_s32(L0));
        acc1 = vfmaq_f32(acc1, dd, vcvtq_f32_s32(L1));
        if (g->has_min) summs = fmaf(mw[b], a.sa[b], summs);
    }
    const float32x4_t r = vaddq_f32(acc1, acc0);
    const float s = (vgetq_lane_f32(r, 0) + vgetq_lane_f32(r, 2)) + (vgetq_lane_f32(r, 1) + vgetq_lane_f32(r, 3));
    return g->has_min ? s + summs : s;
}
#endif

/* ================================================================================= */
/* the tile loop                                                                     */

#define SCRATCH_STACK 49152

void bn_peer_blk_rows(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
    bn_blk_geom g;
    bn_peer_geom(c->type, &g);
    const int64_t D = c->D, nsb = bn_peer_nsb(c->type, D);
    const int isa = c->isa;
#if BN_X86
    if (isa == BN_ISA_AVX512 && t1 - t0 == 1 && c->order != BN_ORDER_REPACK) { /* decode */
        const rows2_fn two = pick_rows2(c->type);
        const bn_act_row a = bn_peer_act_at(c, t0);
        int64_t n = n0;
        for (; n + 1 < n1; n += 2) {
            float out[2];
            two(c->w + (size_t)n * c->w_row, c->w + (size_t)(n + 1) * c->w_row, a, D, g.sb, c->w_scale, out);
            y[t0 * ldy + n] = out[0];
            y[t0 * ldy + n + 1] = out[1];
        }
        if (n == n1) return;
        n0 = n; /* the last odd row: below */
    }
#endif
    const size_t row_bytes = (size_t)((D + 63) & ~(int64_t)63) + sizeof(float) * (size_t)(2 * nsb + 16);
    const size_t need = 4 * row_bytes + 64;
    uint8_t stack_buf[SCRATCH_STACK];
    uint8_t *buf = need <= sizeof(stack_buf) ? stack_buf : (uint8_t *)malloc(need);
    if (!buf) return; /* bn_peer_mm_rows is only reached with sane sizes */
    uint8_t *u8 = buf;
    float *dw = (float *)(buf + ((D + 63) & ~(int64_t)63)), *mw = dw + nsb;
#if BN_X86
    const unpack_fn unpack = isa >= BN_ISA_AVX2 && isa != BN_ISA_NEON ? pick_unpack(c->type) : NULL;
    if (isa == BN_ISA_AVX512 && t1 - t0 >= 4 && c->order != BN_ORDER_REPACK) { /* batches: 4 rows x 4 tokens */
        const uint8_t *ws[4];
        const float *dws[4], *mws[4];
        for (int r = 0; r < 4; r++) {
            uint8_t *base = buf + (size_t)r * row_bytes;
            ws[r] = base;
            dws[r] = (const float *)(base + ((D + 63) & ~(int64_t)63));
            mws[r] = dws[r] + nsb;
        }
        const int zero_bias = g.offset == 0 && !g.q8k;
        for (int64_t nb = n0; nb < n1; nb += 4) {
            const int nr = (int)(n1 - nb < 4 ? n1 - nb : 4);
            for (int r = 0; r < nr; r++)
                unpack(c->w + (size_t)(nb + r) * c->w_row, D, g.sb, c->w_scale, (uint8_t *)ws[r], (float *)dws[r],
                       (float *)mws[r]);
            int64_t t = t0;
            for (; t + 4 <= t1; t += 4) {
                bn_act_row a[4];
                float out[4][4];
                for (int k = 0; k < 4; k++) a[k] = bn_peer_act_at(c, t + k);
                if (g.has_min && zero_bias) tile4_min(g.sb, ws, dws, mws, nr, a, D, out);
                else tile4_plain(g.sb, ws, dws, mws, nr, a, D, out);
                for (int r = 0; r < nr; r++)
                    for (int k = 0; k < 4; k++) y[(t + k) * ldy + nb + r] = out[r][k];
            }
            for (; t < t1; t++) /* the T % 4 last tokens */
                for (int r = 0; r < nr; r++)
                    y[t * ldy + nb + r] = core_avx2(ws[r], dws[r], mws[r], bn_peer_act_at(c, t), D, &g, c->type == BN_Q8_0);
        }
        if (buf != stack_buf) free(buf);
        return;
    }
#endif
    for (int64_t n = n0; n < n1; n++) {
#if BN_X86
        if (unpack) unpack(c->w + (size_t)n * c->w_row, D, g.sb, c->w_scale, u8, dw, mw);
        else unpack_row(c, n, u8, dw, mw);
#else
        unpack_row(c, n, u8, dw, mw);
#endif
        int64_t t = t0;
        if (c->order == BN_ORDER_REPACK) { /* Q4_0 as q4_0_8x8 */
            for (; t < t1; t++)
#if BN_X86
                y[t * ldy + n] = isa >= BN_ISA_AVX2 && isa != BN_ISA_NEON ? core_repack_avx2(u8, dw, bn_peer_act_at(c, t), D)
                                                                          : core_repack_ref(u8, dw, bn_peer_act_at(c, t), D);
#else
                y[t * ldy + n] = core_repack_ref(u8, dw, bn_peer_act_at(c, t), D);
#endif
            continue;
        }
#if BN_X86
        if (isa == BN_ISA_AVX512)
            while (t + 2 <= t1) {
                const int nt = t + 4 <= t1 ? 4 : 2;
                bn_act_row a[4];
                float out[4];
                for (int r = 0; r < nt; r++) a[r] = bn_peer_act_at(c, t + r);
                core_tok_avx512(u8, dw, mw, a, nt, D, &g, out);
                for (int r = 0; r < nt; r++) y[(t + r) * ldy + n] = out[r];
                t += nt;
            }
#endif
        for (; t < t1; t++) {
            const bn_act_row a = bn_peer_act_at(c, t);
            float v;
            switch (isa) {
#if BN_X86
            case BN_ISA_AVX512:
            case BN_ISA_AVX2: v = core_avx2(u8, dw, mw, a, D, &g, c->type == BN_Q8_0); break;
#endif
#if defined(__aarch64__)
            case BN_ISA_NEON: v = core_neon(u8, dw, mw, a, D, &g); break;
#endif
            default: v = core_ref(u8, dw, mw, a, D, &g);
            }
            y[t * ldy + n] = v;
        }
    }
    if (buf != stack_buf) free(buf);
}
