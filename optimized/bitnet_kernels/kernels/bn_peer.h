/* bn_peer.h: shared pieces of the peer-order kernels (llama.cpp's float order), internal.
 *
 * The reductions llama.cpp's x86 code ends its sums with, written as plain float adds in their
 * order so that every ISA variant (and the scalar one) reproduces them:
 *   hsum_float_8 (arch/x86/quants.c, sgemm.cpp's hsum(__m256)): (v4+v0, v5+v1, v6+v2, v7+v3)
 *       -> (r0 + r2) + (r1 + r3);
 *   _mm512_reduce_add_ps (GCC): a[i] = v[8+i] + v[i]; b[i] = a[4+i] + a[i];
 *       (b0 + b2) + (b1 + b3), which is hsum_float_8 of a.
 */
#ifndef BN_PEER_H
#define BN_PEER_H

#include "bn_common.h"
#include "bn_api_peer.h"

static inline float bn_hsum8(const float *v) {
    const float r0 = v[4] + v[0], r1 = v[5] + v[1], r2 = v[6] + v[2], r3 = v[7] + v[3];
    return (r0 + r2) + (r1 + r3);
}

/* the D % 64 tail of ggml_vec_dot_f32 as GCC compiled it (fold-left vectorization of
 * `sumf += x[i]*y[i]`): whole groups of 16, then one of 8, add their rounded products in
 * order; the last < 8 elements are contracted to fma. y[i] = get(ctx, i). */
static inline float bn_f32_dot_tail(float sum, const float *x, float (*get)(const void *, int64_t), const void *ctx,
                                    int64_t i, int64_t n) {
    const int64_t left = n - i, end = i + (left / 16) * 16 + (left % 16 >= 8 ? 8 : 0);
    for (; i < end; i++) sum = sum + x[i] * get(ctx, i);
    for (; i < n; i++) sum = fmaf(x[i], get(ctx, i), sum);
    return sum;
}

static inline float bn_reduce16(const float *v) {
    float a[8];
    for (int i = 0; i < 8; i++) a[i] = v[8 + i] + v[i];
    return bn_hsum8(a);
}

#if BN_X86
static inline BN_TARGET_AVX2 float bn_hsum8_avx2(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}
#endif

/* ---- attention's element access and dots (bn_peer_forward.c, bn_peer_fattn.c) ------------ */
static inline float round_f16(float x) { return bn_fp16_to_fp32(bn_fp32_to_fp16(x)); }

static inline float f32_at(const void *row, int64_t i) {
    float v;
    memcpy(&v, (const uint8_t *)row + 4 * i, 4);
    return v;
}

static inline float kv_at(const uint8_t *row, int f16, int64_t i) {
    if (f16) {
        bn_half h;
        memcpy(&h, row + 2 * i, 2);
        return bn_fp16_to_fp32(h);
    }
    float f;
    memcpy(&f, row + 4 * i, 4);
    return f;
}

/* one dot of length n in tinyBLAS (16 lanes) or ggml_vec_dot (4 x 16 per 64) order; the
 * F16 vec_dot adds its tail in double, the F32 one by fma in float */
static inline __attribute__((always_inline)) float peer_dot(const float *q, const uint8_t *kr, int f16, int64_t n,
                                                            int tiny) {
    if (tiny) {
        float l16[16] = {0};
        for (int64_t c = 0; c < n; c += 16)
            for (int l = 0; l < 16; l++) l16[l] = fmaf(q[c + l], kv_at(kr, f16, c + l), l16[l]);
        return bn_reduce16(l16);
    }
    const int64_t np = n - n % 64;
    float r4[4][16], x[16];
    memset(r4, 0, sizeof(r4));
    for (int64_t st = 0; st < np; st += 64)
        for (int r = 0; r < 4; r++)
            for (int l = 0; l < 16; l++) r4[r][l] = fmaf(q[st + 16 * r + l], kv_at(kr, f16, st + 16 * r + l), r4[r][l]);
    for (int l = 0; l < 16; l++) x[l] = (r4[0][l] + r4[2][l]) + (r4[1][l] + r4[3][l]);
    const float red = bn_reduce16(x);
    if (f16) {
        double total = (double)red;
        for (int64_t i = np; i < n; i++) total += (double)(q[i] * kv_at(kr, 1, i));
        return (float)total;
    }
    return bn_f32_dot_tail(red, q, f32_at, kr, np, n);
}

/* one row of ggml_v_expf / the softmax core / the SwiGLU row on the picked variant */
void bn_peer_softmax_row(const float *x, float *y, int64_t K);
void bn_peer_swiglu_row(const float *g, const float *u, float *y, int64_t F);
/* rotate one head row of d floats with a bn_peer_rope_cache table (y may alias x) */
void bn_peer_rope_row(const float *cache, const float *x, float *y, int64_t d, int n_dims, int mode);
/* the RMS norm of one row (y may alias x) */
void bn_peer_rms_norm_row(const float *x, const float *w, float *y, int64_t D, float eps);

/* ---- the peer matmul (bn_peer_mm.c) ------------------------------------------------------
 * Activations are quantized once per row into a buffer of bn_peer_act_row_bytes bytes per row
 * (llama.cpp's codes and scales, laid out for the kernels); then any (rows, tokens) tile is
 * computed, each output in llama.cpp's order for a matmul of `T` activation rows. */
typedef struct {
    int type, kind;       /* ggml type of the weight; activation kind (BN_ACT_*) */
    const uint8_t *w;     /* the whole tensor (I2_S: with its trailing scale) */
    int64_t N, D, T;      /* y (T, N) = x (T, D) @ w (N, D)^T */
    size_t w_row, a_row;  /* bytes per weight row / activation row */
    uint8_t *act;         /* (T, a_row) */
    float w_scale;        /* I2_S per-tensor scale */
    int64_t nsb;          /* super-blocks per row (block types) */
    int order;            /* BN_ORDER_* llama.cpp uses for this shape */
    int isa;              /* the variant picked at setup */
} bn_peer_mm;

enum { BN_ACT_F16 = 1, BN_ACT_Q8_0 = 2, BN_ACT_Q8_1 = 3, BN_ACT_Q8_K = 4, BN_ACT_F32 = 5 };
enum {
    BN_ORDER_VEC_DOT = 0, /* ggml_vec_dot_* of arch/x86/quants.c (and tinyBLAS_Q0, the same sums) */
    BN_ORDER_TINYBLAS = 1, /* llamafile tinyBLAS<16> (F16/F32 weights, batches) */
    BN_ORDER_REPACK = 2,   /* repack.cpp q4_0_8x8 / q4_K_8x8 GEMM and GEMV (Q4_0, Q4_K, N % 8 == 0) */
    BN_ORDER_TILED = 3     /* tiled/tiled.cpp, the VNNI microkernel (Q4_K, Q5_K, Q6_K, T >= 8) */
};

/* the geometry of a block type (bn_peer_mm.c) */
typedef struct {
    int sb;       /* weights per float step (super-block): 32 or 256 (I2_S: a last one may be 128) */
    int wbytes;   /* bytes per sb in the file (I2_S: 64 per 256) */
    int offset;   /* activation-side correction: bias = -offset * (sum of 4 codes) */
    int has_min;  /* Q4_1 / Q5_1: + sum of m * s */
    int q8k;      /* Q8_K activations (bias = -(bsums[2j] + bsums[2j+1])) */
    int kq;       /* K-quant (bn_peer_kq.c): the act row also holds the 16 bsums per block */
} bn_blk_geom;
int bn_peer_geom(int type, bn_blk_geom *g); /* -1: not a block type */
int64_t bn_peer_nsb(int type, int64_t D);   /* super-blocks per row */

/* one block of activations (bn_act_quant.c): quantize_row_q8_0/q8_1's 32 codes (returns d
 * before its f16 rounding, *sum = sum of the codes); quantize_row_q8_K_ref's n codes (returns d) */
float bn_q8_block32(const float *x, int8_t *q, int *sum);
float bn_q8k_block(const float *x, int n, int8_t *q);

/* one activation row: codes (D), da, sa (per super-block), bias (8 int32 per super-block) */
typedef struct {
    const int8_t *codes;
    const float *da, *sa;
    const int32_t *bias;
} bn_act_row;

int bn_peer_supported(int type);
size_t bn_peer_act_row_bytes(int type, int64_t D);
/* plain: the weight is not in llama.cpp's CPU_REPACK buffer although its type repacks (the
 * bitnet arch's token_embd, multiplied directly as its output matrix) */
int bn_peer_mm_setup(bn_peer_mm *c, int type, const void *w, int64_t N, int64_t D, int64_t T, void *act);
void bn_peer_mm_set_plain(bn_peer_mm *c);
void bn_peer_mm_quantize(const bn_peer_mm *c, const float *x, int64_t t0, int64_t t1);
void bn_peer_mm_rows(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1);
static inline bn_act_row bn_peer_act_at(const bn_peer_mm *c, int64_t t) {
    const uint8_t *p = c->act + (size_t)t * c->a_row;
    bn_act_row r;
    r.codes = (const int8_t *)p;
    r.da = (const float *)(p + c->D);
    r.sa = r.da + c->nsb;
    r.bias = (const int32_t *)(r.sa + c->nsb);
    return r;
}
/* the kernels per family (bn_peer_blk.c, bn_peer_f16.c, bn_peer_kq.c), same arguments */
void bn_peer_blk_rows(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1);
void bn_peer_float_rows(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1);

/* ---- K-quants (bn_peer_kq.c) ----------------------------------------------------------------
 * A K-quant activation row also holds the Q8_K bsums (16 int32 per block) after the bias lanes. */
int bn_peer_is_kquant(int type);
void bn_peer_kq_rows(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1);

/* ---- attention and the fused forward (bn_peer_forward.c) ---------------------------------- */
typedef struct {
    const uint8_t *k, *v;   /* one layer's cache: (K, Hkv, d) f16 or f32 */
    int kv_f16;
    int64_t T, H, Hkv, d, K;
    const int64_t *q_pos, *kv_pos;
    int64_t kv_stride;      /* kv_pos of query t: kv_pos + t * kv_stride (0: one row for all) */
    float scale;
    float *out;             /* (T, H*d) */
    int flash;              /* 1: llama.cpp's flash-attention kernel (bn_peer_fattn.c) */
    int fa_threads;         /* flash: llama.cpp's thread count for the op (split-KV chunks) */
    int64_t n_view;         /* flash: llama.cpp's KV view length (its 256-padded n_kv) */
} bn_peer_attn;

int64_t bn_peer_attn_scratch(int64_t K, int64_t d);
/* query (t, h) with its roped q row qr; scratch: bn_peer_attn_scratch(K, d) floats */
void bn_peer_attn_one(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *scratch);
void bn_peer_fattn_one(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *scratch);

struct bn_model_s;
int bn_peer_forward(const struct bn_model_s *m, float *x, int64_t T, const int64_t *positions,
                    const int64_t *cells, void *k_cache, void *v_cache, int kv_f16, int64_t n_ctx,
                    const int64_t *kv_pos, int64_t kv_stride, int64_t n_kv, int n_threads, int64_t n_out, float *out);
int bn_peer_forward_tail(const struct bn_model_s *m, float *x, int64_t T, int n_threads);

#endif
