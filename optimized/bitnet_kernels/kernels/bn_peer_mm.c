/* bn_peer_mm.c: matmuls in llama.cpp's float order (the "llama.cpp" numerics).
 *
 * What llama.cpp 0.3.36's x86 AVX-512 build computes for y = x @ w^T (ggml-cpu.c
 * ggml_compute_forward_mul_mat, arch/x86/quants.c, llamafile/sgemm.cpp):
 * - the activations are quantized per row by quantize_row_q8_0 / q8_1 (SIMD: d = amax/127,
 *   codes round-half-even(x * 127/amax)) or quantize_row_q8_K_ref, or rounded to f16;
 * - 32-blocks (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1 x Q8_0/Q8_1, ggml_vec_dot_*_q8_* AVX2 code, and
 *   tinyBLAS_Q0_AVX for batches, which sums identically): per block 8 int32 lanes, lane j the
 *   sum over bytes 4j..4j+3 of weight x activation codes; acc[j] = fma(d_w * d_x, lane_j,
 *   acc[j]) block after block; hsum_float_8(acc); plus, for Q4_1 / Q5_1, the float sum of
 *   m * s over the blocks in order;
 * - TQ1_0 / TQ2_0 x Q8_K (ggml_vec_dot_tq*_q8_K AVX2): per 256-block 8 int32 lanes, lane j
 *   the sum over the elements e with e % 32 in [4j, 4j+4) of trit(e) * x(e) minus
 *   bsums[2j] + bsums[2j+1]; acc[j] = fma(lane_j, x.d * w.d, acc[j]); hsum_float_8(acc).
 *   I2_S (no llama.cpp peer) gets the same treatment with its tensor scale as w.d: an I2_S
 *   copy of a TQ2_0 tensor (same ternary weights, scale exact in fp16) gives TQ2_0's bits;
 * - F16 / F32 weights: for a batch (T >= 2, D % 16 == 0, N % 4 == 0) tinyBLAS<16>: 16 lanes
 *   along D, fma per lane, _mm512_reduce_add_ps; else ggml_vec_dot_f16/f32: 4 x 16 lanes per
 *   step of 64, registers added (0+2)+(1+3), the lane reduction, the D % 64 tail added after
 *   (F16: in double; F32: by fma in float).
 * Only the float order is fixed: the integer lane sums are exact in any instruction, so each
 * variant uses its own (VNNI dpbusd, AVX2 maddubs, NEON widening multiplies) and puts two
 * (row, token) pairs in one AVX-512 register; every variant gives the same bits, and a
 * result depends on its row, its token and T only (never on tiling or threads).
 *
 * Layout: each weight row is first unpacked into unsigned bytes in element order (Q8_0 as
 * w + 128, Q4_0 / Q5_0 as their unsigned codes) with float scales; the activation row holds
 * int8 codes, float scales and per block 8 int32 "bias" lanes that undo the offsets
 * (-offset * sum of 4 codes) or subtract the Q8_K bsums, so the inner loop is one unsigned x
 * signed dot per 32 bytes for every type.
 */
#include "bn_peer.h"
#include "bn_api.h"

#include <stdlib.h>

/* ================================================================================= */
/* geometry                                                                          */

typedef struct {
    int sb;       /* weights per float step (super-block): 32 or 256 (I2_S: a last one may be 128) */
    int wbytes;   /* bytes per sb in the file (I2_S: 64 per 256) */
    int offset;   /* activation-side correction: bias = -offset * (sum of 4 codes) */
    int has_min;  /* Q4_1 / Q5_1: + sum of m * s */
    int q8k;      /* Q8_K activations (bias = -(bsums[2j] + bsums[2j+1])) */
    int kq;       /* K-quant (bn_peer_kq.c): the act row also holds the 16 bsums per block */
} blk_geom;

static int geom_of(int type, blk_geom *g) {
    switch (type) {
    case BN_Q8_0: *g = (blk_geom){32, 34, 128, 0, 0, 0}; return 0;
    case BN_Q4_0: *g = (blk_geom){32, 18, 8, 0, 0, 0}; return 0;
    case BN_Q5_0: *g = (blk_geom){32, 22, 16, 0, 0, 0}; return 0;
    case BN_Q4_1: *g = (blk_geom){32, 20, 0, 1, 0, 0}; return 0;
    case BN_Q5_1: *g = (blk_geom){32, 24, 0, 1, 0, 0}; return 0;
    case BN_TQ1_0: *g = (blk_geom){QK_K, 54, 0, 0, 1, 0}; return 0;
    case BN_TQ2_0: *g = (blk_geom){QK_K, 66, 0, 0, 1, 0}; return 0;
    case BN_I2_S: *g = (blk_geom){QK_K, 64, 0, 0, 1, 0}; return 0;
    case BN_Q4_K: *g = (blk_geom){QK_K, 144, 0, 0, 1, 1}; return 0;
    case BN_Q5_K: *g = (blk_geom){QK_K, 176, 0, 0, 1, 1}; return 0;
    case BN_Q6_K: *g = (blk_geom){QK_K, 210, 0, 0, 1, 1}; return 0;
    default: return -1;
    }
}

int bn_peer_supported(int type) {
    blk_geom g;
    return type == BN_F16 || type == BN_F32 || geom_of(type, &g) == 0;
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* rows of D weights: the super-blocks (I2_S rows of 128-blocks may end with half of one) */
static int64_t n_sb(int type, int64_t D, const blk_geom *g) {
    return type == BN_I2_S ? (D + QK_K - 1) / QK_K : D / g->sb;
}

static int row_ok(int type, int64_t D, const blk_geom *g) {
    return D > 0 && D % (type == BN_I2_S ? 128 : g->sb) == 0;
}

/* activation row: codes (D bytes) | da (nsb floats) | sa (nsb floats) | bias (8 nsb int32)
 * [| bsums (16 nsb int32), K-quants] */
size_t bn_peer_act_row_bytes(int type, int64_t D) {
    blk_geom g;
    if (type == BN_F16 || type == BN_F32) return round64((size_t)D * 4);
    if (geom_of(type, &g) || !row_ok(type, D, &g)) return 0;
    const size_t nsb = (size_t)n_sb(type, D, &g);
    return round64((size_t)D + nsb * 8 + nsb * 32 + (g.kq ? nsb * 64 : 0));
}

int bn_peer_is_kquant(int type) {
    blk_geom g;
    return geom_of(type, &g) == 0 && g.kq;
}

typedef struct {
    const int8_t *codes;
    const float *da, *sa;
    const int32_t *bias;
} act_row;

static act_row act_at(const bn_peer_mm *c, int64_t t) {
    blk_geom g;
    geom_of(c->type, &g);
    const int64_t nsb = n_sb(c->type, c->D, &g);
    const uint8_t *p = c->act + (size_t)t * c->a_row;
    act_row r;
    r.codes = (const int8_t *)p;
    r.da = (const float *)(p + c->D);
    r.sa = r.da + nsb;
    r.bias = (const int32_t *)(r.sa + nsb);
    return r;
}

void bn_peer_mm_set_plain(bn_peer_mm *c) {
    if (c->order != BN_ORDER_REPACK) return;
    c->order = bn_peer_is_kquant(c->type) && c->T >= 8 ? BN_ORDER_TILED : BN_ORDER_VEC_DOT;
}

int bn_peer_mm_setup(bn_peer_mm *c, int type, const void *w, int64_t N, int64_t D, int64_t T, void *act) {
    memset(c, 0, sizeof(*c));
    if (N < 0 || D <= 0 || T < 0) return -2;
    blk_geom g;
    c->type = type;
    c->w = (const uint8_t *)w;
    c->N = N; c->D = D; c->T = T;
    c->act = (uint8_t *)act;
    if (type == BN_F16 || type == BN_F32) {
        c->kind = type == BN_F16 ? BN_ACT_F16 : BN_ACT_F32;
        c->w_row = (size_t)D * (type == BN_F16 ? 2 : 4);
        c->order = (T >= 2 && D % 16 == 0 && N % 4 == 0) ? BN_ORDER_TINYBLAS : BN_ORDER_VEC_DOT;
    } else {
        if (geom_of(type, &g)) return -1;
        if (!row_ok(type, D, &g)) return -2;
        c->kind = g.q8k ? BN_ACT_Q8_K : (g.has_min ? BN_ACT_Q8_1 : BN_ACT_Q8_0);
        c->w_row = type == BN_I2_S ? (size_t)(D / 128) * 32 : (size_t)(D / g.sb) * (size_t)g.wbytes;
        c->order = BN_ORDER_VEC_DOT;
        if ((type == BN_Q4_0 || type == BN_Q4_K) && N % 8 == 0) c->order = BN_ORDER_REPACK;
        else if (g.kq && T >= 8) c->order = BN_ORDER_TILED;
        if (type == BN_I2_S && w) memcpy(&c->w_scale, c->w + (size_t)N * c->w_row, sizeof(float));
    }
    c->a_row = bn_peer_act_row_bytes(type, D);
    c->isa = bn_pick(K_PEER_MATMUL);
    return 0;
}

/* ================================================================================= */
/* activation quantization (llama.cpp's codes and scales, exact)                     */

static void quantize_row(const bn_peer_mm *c, const float *x, uint8_t *out) {
    const int64_t D = c->D;
    if (c->kind == BN_ACT_F16 || c->kind == BN_ACT_F32) {
        float *y = (float *)out;
        for (int64_t i = 0; i < D; i++) y[i] = c->kind == BN_ACT_F16 ? bn_fp16_to_fp32(bn_fp32_to_fp16(x[i])) : x[i];
        return;
    }
    blk_geom g;
    geom_of(c->type, &g);
    const int64_t nsb = n_sb(c->type, D, &g);
    int8_t *q = (int8_t *)out;
    float *da = (float *)(out + D), *sa = da + nsb;
    int32_t *bias = (int32_t *)(sa + nsb);
    for (int64_t b = 0; b < nsb; b++) {
        const float *xb = x + b * g.sb;
        int8_t *qb = q + b * g.sb;
        int32_t *bb = bias + 8 * b;
        if (g.q8k) { /* quantize_row_q8_K_ref (an I2_S row's last half block: its 128) */
            const int bl = D - b * QK_K < QK_K ? (int)(D - b * QK_K) : QK_K;
            float max = 0.0f, amax = 0.0f;
            for (int j = 0; j < bl; j++) {
                const float ax = fabsf(xb[j]);
                if (ax > amax) { amax = ax; max = xb[j]; }
            }
            for (int j = 0; j < 8; j++) bb[j] = 0;
            if (!amax) { /* (llama.cpp leaves the bsums stale: they meet d = 0, no bit changes) */
                da[b] = 0.0f;
                memset(qb, 0, (size_t)bl);
                if (g.kq) memset(bias + 8 * nsb + 16 * b, 0, 16 * sizeof(int32_t));
                continue;
            }
            const float iscale = -127.0f / max;
            for (int j = 0; j < bl; j++) {
                const int v = bn_nearest_int(iscale * xb[j]);
                qb[j] = (int8_t)(v < 127 ? v : 127);
            }
            for (int j = 0; j < bl / 32; j++) { /* -(bsums[2j] + bsums[2j+1]): codes 32j..32j+31 */
                int s = 0;
                for (int k = 0; k < 32; k++) s += qb[32 * j + k];
                bb[j] = -s;
            }
            if (g.kq) { /* the bsums themselves (sums of 16 codes) */
                int32_t *bs = bias + 8 * nsb + 16 * b;
                for (int j = 0; j < 16; j++) {
                    int s = 0;
                    for (int k = 0; k < 16; k++) s += qb[16 * j + k];
                    bs[j] = s;
                }
            }
            da[b] = 1.0f / iscale;
            continue;
        }
        /* quantize_row_q8_0 / q8_1, the SIMD versions (127/amax, round half to even) */
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            qb[j] = (int8_t)bn_nearest_int(xb[j] * id);
            sum += qb[j];
        }
        da[b] = bn_fp16_to_fp32(bn_fp32_to_fp16(d));
        sa[b] = g.has_min ? bn_fp16_to_fp32(bn_fp32_to_fp16(d * (float)sum)) : 0.0f;
        for (int j = 0; j < 8; j++) {
            const int s4 = qb[4 * j] + qb[4 * j + 1] + qb[4 * j + 2] + qb[4 * j + 3];
            bb[j] = -g.offset * s4;
        }
    }
}

void bn_peer_mm_quantize(const bn_peer_mm *c, const float *x, int64_t t0, int64_t t1) {
    if (t1 > c->T) t1 = c->T;
    for (int64_t t = t0; t < t1; t++) quantize_row(c, x + t * c->D, c->act + (size_t)t * c->a_row);
}

/* ================================================================================= */
/* weight unpacking: a row -> unsigned bytes in element order + float scales         */

static inline float h2f(const uint8_t *p) {
    bn_half h;
    memcpy(&h, p, 2);
    return bn_fp16_to_fp32(h);
}

/* u8 (D), dw (nsb), mw (nsb) of weight row `row` */
static void unpack_row(const bn_peer_mm *c, int64_t row, uint8_t *u8, float *dw, float *mw) {
    blk_geom g;
    geom_of(c->type, &g);
    const uint8_t *w = c->w + (size_t)row * c->w_row;
    const int64_t nsb = n_sb(c->type, c->D, &g);
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

/* ================================================================================= */
/* block cores: one unpacked weight row x activation rows                            */

/* scalar: the definition */
static float core_ref(const uint8_t *w, const float *dw, const float *mw, act_row a, int64_t D, const blk_geom *g) {
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
static float core_repack_ref(const uint8_t *w, const float *dw, act_row a, int64_t D) {
    float acc = 0.0f;
    for (int64_t b = 0; b < D / 32; b++) {
        int32_t isum = 0;
        for (int j = 0; j < 8; j++) isum += a.bias[8 * b + j];
        for (int64_t e = 32 * b; e < 32 * b + 32; e++) isum += (int32_t)w[e] * a.codes[e];
        acc = fmaf((float)isum, dw[b] * a.da[b], acc);
    }
    return acc;
}

#if BN_X86
static BN_TARGET_AVX2 float core_repack_avx2(const uint8_t *w, const float *dw, act_row a, int64_t D) {
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

/* AVX2: maddubs + madd (u8 x s8 pairs stay inside int16 for weights <= 127; the Q8_0 bytes,
 * up to 255, go in two parts: (w & 127) and the top bit) */
static BN_TARGET_AVX2 float core_avx2(const uint8_t *w, const float *dw, const float *mw, act_row a, int64_t D,
                                      const blk_geom *g, int wide) {
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

static inline BN_TARGET_AVX512 __m512i load_2x256(const void *lo, const void *hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
                              _mm256_loadu_si256((const __m256i *)hi), 1);
}

static inline BN_TARGET_AVX512 void store_hsum_2(__m512 acc, float *s0, float *s1) {
    *s0 = bn_hsum8_avx2(_mm512_castps512_ps256(acc));
    *s1 = bn_hsum8_avx2(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
}

/* AVX-512 VNNI, one weight row against tokens t, t+1 (zmm halves), four at a time when
 * asked (nt = 2 or 4): the weight bytes are loaded once per 32 */
static BN_TARGET_AVX512 void core_avx512_tok(const uint8_t *w, const float *dw, const float *mw, const act_row *a,
                                             int nt, int64_t D, const blk_geom *g, float *out) {
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

/* AVX-512 VNNI, two weight rows (their bytes interleaved per 32: wp = A0 B0 A1 B1 ...)
 * against one token: the decode form. dwp: per block 8 x dw_A then 8 x dw_B. */
static BN_TARGET_AVX512 void core_avx512_rows(const uint8_t *wp, const float *dwp, const float *mwA, const float *mwB,
                                              act_row a, int64_t D, const blk_geom *g, float *out) {
    __m512 acc = _mm512_setzero_ps();
    float sA = 0.0f, sB = 0.0f;
    for (int64_t b = 0; b * g->sb < D; b++) {
        __m512i L = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a.bias + 8 * b)));
        for (int64_t e = b * g->sb; e < (b + 1) * g->sb && e < D; e += 32)
            L = _mm512_dpbusd_epi32(L, _mm512_loadu_si512((const void *)(wp + 2 * e)),
                                    _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a.codes + e))));
        const __m512 dd = _mm512_mul_ps(_mm512_loadu_ps(dwp + 16 * b), _mm512_set1_ps(a.da[b]));
        acc = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(L), acc);
        if (g->has_min) {
            sA = fmaf(mwA[b], a.sa[b], sA);
            sB = fmaf(mwB[b], a.sa[b], sB);
        }
    }
    store_hsum_2(acc, &out[0], &out[1]);
    if (g->has_min) {
        out[0] += sA;
        out[1] += sB;
    }
}
#endif

#if defined(__aarch64__)
/* NEON: widening 16-bit products (u8 <= 255 times s8 fits int16), pairwise adds to lanes */
static float core_neon(const uint8_t *w, const float *dw, const float *mw, act_row a, int64_t D, const blk_geom *g) {
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
/* F16 / F32 weights                                                                 */

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
    for (int64_t k = np; k < D; k++) sum = fmaf(wval(c, row, k), x[k], sum);
    return sum;
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
            float sum = red;
            for (int64_t k = np; k < D; k++) sum = fmaf(wval(c, row, k), x[k], sum);
            out[i] = sum;
        }
    }
}
#endif

/* ================================================================================= */
/* the tile loop                                                                     */

static void mm_rows_float(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
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

#define SCRATCH_STACK 40960

void bn_peer_mm_rows(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
    if (n1 > c->N) n1 = c->N;
    if (t1 > c->T) t1 = c->T;
    if (n0 >= n1 || t0 >= t1) return;
    if (c->kind == BN_ACT_F16 || c->kind == BN_ACT_F32) {
        mm_rows_float(c, y, ldy, n0, n1, t0, t1);
        return;
    }
    if (bn_peer_is_kquant(c->type)) {
        bn_peer_kq_rows(c, y, ldy, n0, n1, t0, t1);
        return;
    }
    blk_geom g;
    geom_of(c->type, &g);
    const int64_t D = c->D, nsb = n_sb(c->type, D, &g);
    /* scratch: two unpacked rows (2D), their interleaving (2D), scales 16 nsb + 2 x 2 nsb */
    const size_t need = (size_t)(4 * D) + sizeof(float) * (size_t)(20 * nsb) + 128;
    uint8_t stack_buf[SCRATCH_STACK];
    uint8_t *buf = need <= sizeof(stack_buf) ? stack_buf : (uint8_t *)malloc(need);
    if (!buf) return; /* the caller's output stays unwritten: bn_peer_mm_rows is only reached with sane sizes */
    uint8_t *uA = buf;
    float *dA = (float *)(buf + 4 * D), *mA = dA + 2 * nsb;
#if BN_X86
    uint8_t *uB = buf + D, *pair = buf + 2 * D;
    float *dB = dA + nsb, *mB = mA + nsb, *dpair = mB + nsb;
#endif
    const int isa = c->isa;
    if (c->order == BN_ORDER_REPACK) { /* Q4_0 as q4_0_8x8 */
        for (int64_t n = n0; n < n1; n++) {
            unpack_row(c, n, uA, dA, mA);
            for (int64_t t = t0; t < t1; t++)
#if BN_X86
                y[t * ldy + n] = isa >= BN_ISA_AVX2 ? core_repack_avx2(uA, dA, act_at(c, t), D)
                                                    : core_repack_ref(uA, dA, act_at(c, t), D);
#else
                y[t * ldy + n] = core_repack_ref(uA, dA, act_at(c, t), D);
#endif
        }
        if (buf != stack_buf) free(buf);
        return;
    }
    for (int64_t n = n0; n < n1;) {
#if BN_X86
        if (isa == BN_ISA_AVX512 && t1 - t0 == 1 && n + 1 < n1) { /* decode: two rows per register */
            unpack_row(c, n, uA, dA, mA);
            unpack_row(c, n + 1, uB, dB, mB);
            for (int64_t e = 0; e < D; e += 32) {
                memcpy(pair + 2 * e, uA + e, 32);
                memcpy(pair + 2 * e + 32, uB + e, 32);
            }
            for (int64_t b = 0; b < nsb; b++)
                for (int l = 0; l < 8; l++) {
                    dpair[16 * b + l] = dA[b];
                    dpair[16 * b + 8 + l] = dB[b];
                }
            float out[2];
            core_avx512_rows(pair, dpair, mA, mB, act_at(c, t0), D, &g, out);
            y[t0 * ldy + n] = out[0];
            y[t0 * ldy + n + 1] = out[1];
            n += 2;
            continue;
        }
#endif
        unpack_row(c, n, uA, dA, mA);
        int64_t t = t0;
#if BN_X86
        if (isa == BN_ISA_AVX512)
            for (; t + 2 <= t1; ) {
                const int nt = t + 4 <= t1 ? 4 : 2;
                act_row a[4];
                float out[4];
                for (int r = 0; r < nt; r++) a[r] = act_at(c, t + r);
                core_avx512_tok(uA, dA, mA, a, nt, D, &g, out);
                for (int r = 0; r < nt; r++) y[(t + r) * ldy + n] = out[r];
                t += nt;
            }
#endif
        for (; t < t1; t++) {
            const act_row a = act_at(c, t);
            float v;
            switch (isa) {
#if BN_X86
            case BN_ISA_AVX512:
            case BN_ISA_AVX2: v = core_avx2(uA, dA, mA, a, D, &g, c->type == BN_Q8_0); break;
#endif
#if defined(__aarch64__)
            case BN_ISA_NEON: v = core_neon(uA, dA, mA, a, D, &g); break;
#endif
            default: v = core_ref(uA, dA, mA, a, D, &g);
            }
            y[t * ldy + n] = v;
        }
        n++;
    }
    if (buf != stack_buf) free(buf);
}

/* ================================================================================= */
/* the standalone matmul                                                             */

typedef struct {
    const bn_peer_mm *c;
    const float *x;
    float *y;
} peer_task;

static void peer_quant_task(void *vctx, int ith, int nth) {
    const peer_task *p = (const peer_task *)vctx;
    const int64_t chunk = (p->c->T + nth - 1) / nth;
    bn_peer_mm_quantize(p->c, p->x, chunk * ith, chunk * ith + chunk);
}

static void peer_rows_task(void *vctx, int ith, int nth) {
    const peer_task *p = (const peer_task *)vctx;
    const int64_t chunk = (p->c->N + nth - 1) / nth;
    bn_peer_mm_rows(p->c, p->y, p->c->N, chunk * ith, chunk * ith + chunk, 0, p->c->T);
}

int bn_peer_matmul(int type, const void *w, int64_t N, int64_t D, const float *x, int64_t T, float *y,
                   int plain, int n_threads) {
    bn_peer_mm c;
    int rc = bn_peer_mm_setup(&c, type, w, N, D, T, NULL);
    if (rc) return rc;
    if (plain) bn_peer_mm_set_plain(&c);
    if (N == 0 || T == 0) return 0;
    uint8_t *act = (uint8_t *)malloc(c.a_row * (size_t)T + 64);
    if (!act) return -3;
    c.act = act;
    peer_task p = {&c, x, y};
    if (n_threads < 1) n_threads = 1;
    bn_parallel(peer_quant_task, &p, n_threads > T ? (int)T : n_threads);
    bn_parallel(peer_rows_task, &p, n_threads > N ? (int)N : n_threads);
    free(act);
    return 0;
}
