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

int bn_peer_geom(int type, bn_blk_geom *g) {
    switch (type) {
    case BN_Q8_0: *g = (bn_blk_geom){32, 34, 128, 0, 0, 0}; return 0;
    case BN_Q4_0: *g = (bn_blk_geom){32, 18, 8, 0, 0, 0}; return 0;
    case BN_Q5_0: *g = (bn_blk_geom){32, 22, 16, 0, 0, 0}; return 0;
    case BN_Q4_1: *g = (bn_blk_geom){32, 20, 0, 1, 0, 0}; return 0;
    case BN_Q5_1: *g = (bn_blk_geom){32, 24, 0, 1, 0, 0}; return 0;
    case BN_TQ1_0: *g = (bn_blk_geom){QK_K, 54, 0, 0, 1, 0}; return 0;
    case BN_TQ2_0: *g = (bn_blk_geom){QK_K, 66, 0, 0, 1, 0}; return 0;
    case BN_I2_S: *g = (bn_blk_geom){QK_K, 64, 0, 0, 1, 0}; return 0;
    case BN_Q4_K: *g = (bn_blk_geom){QK_K, 144, 0, 0, 1, 1}; return 0;
    case BN_Q5_K: *g = (bn_blk_geom){QK_K, 176, 0, 0, 1, 1}; return 0;
    case BN_Q6_K: *g = (bn_blk_geom){QK_K, 210, 0, 0, 1, 1}; return 0;
    default: return -1;
    }
}

int bn_peer_supported(int type) {
    bn_blk_geom g;
    return type == BN_F16 || type == BN_F32 || bn_peer_geom(type, &g) == 0;
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* rows of D weights: the super-blocks (I2_S rows of 128-blocks may end with half of one) */
int64_t bn_peer_nsb(int type, int64_t D) {
    bn_blk_geom g;
    if (bn_peer_geom(type, &g)) return 0;
    return type == BN_I2_S ? (D + QK_K - 1) / QK_K : D / g.sb;
}

static int row_ok(int type, int64_t D, const bn_blk_geom *g) {
    return D > 0 && D % (type == BN_I2_S ? 128 : g->sb) == 0;
}

/* activation row: codes (D bytes) | da (nsb floats) | sa (nsb floats) | bias (8 nsb int32)
 * [| bsums (16 nsb int32), K-quants] */
size_t bn_peer_act_row_bytes(int type, int64_t D) {
    bn_blk_geom g;
    if (type == BN_F16 || type == BN_F32) return round64((size_t)D * 4);
    if (bn_peer_geom(type, &g) || !row_ok(type, D, &g)) return 0;
    const size_t nsb = (size_t)bn_peer_nsb(type, D);
    return round64((size_t)D + nsb * 8 + nsb * 32 + (g.kq ? nsb * 64 : 0));
}

int bn_peer_is_kquant(int type) {
    bn_blk_geom g;
    return bn_peer_geom(type, &g) == 0 && g.kq;
}

void bn_peer_mm_set_plain(bn_peer_mm *c) {
    if (c->order != BN_ORDER_REPACK) return;
    c->order = bn_peer_is_kquant(c->type) && c->T >= 8 ? BN_ORDER_TILED : BN_ORDER_VEC_DOT;
}

int bn_peer_mm_setup(bn_peer_mm *c, int type, const void *w, int64_t N, int64_t D, int64_t T, void *act) {
    memset(c, 0, sizeof(*c));
    if (N < 0 || D <= 0 || T < 0) return -2;
    bn_blk_geom g;
    c->type = type;
    c->w = (const uint8_t *)w;
    c->N = N; c->D = D; c->T = T;
    c->act = (uint8_t *)act;
    if (type == BN_F16 || type == BN_F32) {
        c->kind = type == BN_F16 ? BN_ACT_F16 : BN_ACT_F32;
        c->w_row = (size_t)D * (type == BN_F16 ? 2 : 4);
        c->order = (T >= 2 && D % 16 == 0 && N % 4 == 0) ? BN_ORDER_TINYBLAS : BN_ORDER_VEC_DOT;
    } else {
        if (bn_peer_geom(type, &g)) return -1;
        if (!row_ok(type, D, &g)) return -2;
        c->nsb = bn_peer_nsb(type, D);
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
    bn_blk_geom g;
    bn_peer_geom(c->type, &g);
    const int64_t nsb = bn_peer_nsb(c->type, D);
    int8_t *q = (int8_t *)out;
    float *da = (float *)(out + D), *sa = da + nsb;
    int32_t *bias = (int32_t *)(sa + nsb);
    for (int64_t b = 0; b < nsb; b++) {
        const float *xb = x + b * g.sb;
        int8_t *qb = q + b * g.sb;
        int32_t *bb = bias + 8 * b;
        if (g.q8k) { /* quantize_row_q8_K_ref (an I2_S row's last half block: its 128) */
            const int bl = D - b * QK_K < QK_K ? (int)(D - b * QK_K) : QK_K;
            /* (all-zero x: zero codes and sums; llama.cpp leaves its bsums stale, they meet d = 0) */
            da[b] = bn_q8k_block(xb, bl, qb);
            for (int j = 0; j < 8; j++) bb[j] = 0;
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
            continue;
        }
        /* quantize_row_q8_0 / q8_1, the SIMD versions (127/amax, round half to even) */
        int sum;
        const float d = bn_q8_block32(xb, qb, &sum);
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
/* dispatch                                                                          */

void bn_peer_mm_rows(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
    if (n1 > c->N) n1 = c->N;
    if (t1 > c->T) t1 = c->T;
    if (n0 >= n1 || t0 >= t1) return;
    if (c->kind == BN_ACT_F16 || c->kind == BN_ACT_F32) bn_peer_float_rows(c, y, ldy, n0, n1, t0, t1);
    else if (bn_peer_is_kquant(c->type)) bn_peer_kq_rows(c, y, ldy, n0, n1, t0, t1);
    else bn_peer_blk_rows(c, y, ldy, n0, n1, t0, t1);
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
