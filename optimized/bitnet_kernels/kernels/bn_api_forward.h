/* bn_api_forward.h: attention over a KV cache and the fused transformer forward (bn_forward.c).
 *
 * Layouts follow bitnet.model.graphs: a KV cache is (n_layer, n_ctx, Hkv, d), f32 or f16 bits;
 * activations are (T, width) rows. Return codes as bn_api.h (0 ok, -1 unsupported type, -2 bad
 * shape or position, -3 out of memory).
 */
#ifndef BN_API_FORWARD_H
#define BN_API_FORWARD_H
#include <stdint.h>

#include "bn_api.h" /* bn_rope_params */

/* Causal GQA attention (llama.cpp build_attn_mha without flash attention).
 * q (T, H, d) f32; k, v (K, Hkv, d) f32 (kv_f16 = 0) or f16 (kv_f16 = 1); q_pos (T,);
 * kv_pos (K,) with -1 = empty cell; query t sees cells with 0 <= kv_pos <= q_pos[t]. kv_stride 0:
 * one kv_pos row for every query; K: a row per query (T, K), the cells of its sequence (llama.cpp's
 * KQ mask over a cache several sequences share).
 * peer: llama.cpp's order for a batch of T queries (bn_peer_forward.c: q and p rounded to
 * f16 with an F16 cache, tinyBLAS / ggml_vec_dot sums, ggml's softmax); 0: the float path.
 * out (T, H*d). Heads split over n_threads. */
int bn_attention(const float *q, const void *k, const void *v, int kv_f16, int64_t T, int64_t H,
                 int64_t Hkv, int64_t d, int64_t K, const int64_t *q_pos, const int64_t *kv_pos,
                 int64_t kv_stride, float scale, int peer, float *out, int n_threads);

/* bn_attention with llama.cpp's flash-attention kernel, in its order (bn_peer_fattn.c):
 * n_view is llama.cpp's KV view length (its 256-padded n_kv) and fa_threads its thread count
 * for the op; both pick the split-KV order of one query over >= 512 cells. */
int bn_flash_attention(const float *q, const void *k, const void *v, int kv_f16, int64_t T, int64_t H,
                       int64_t Hkv, int64_t d, int64_t K, const int64_t *q_pos, const int64_t *kv_pos,
                       int64_t kv_stride, float scale, int64_t n_view, int fa_threads, float *out, int n_threads);

/* one matmul of a layer: y = (x @ w^T) * scale (scale 0: none) + bias (NULL: none) */
typedef struct {
    int type;
    const void *w;      /* the whole tensor (I2_S: with its trailing scale) */
    int64_t n_out, n_in;
    float scale;
    const float *bias;  /* (n_out,) or NULL */
} bn_linear;

typedef struct {
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm; /* sub norms: NULL = none */
    bn_linear wq, wk, wv, wo, gate, up, down;
} bn_layer;

typedef struct bn_model_s {
    int n_layer;
    int64_t n_embd, n_head, n_head_kv, head_dim, n_ff;
    int64_t rope_dims;
    int rope_mode;      /* 0 NORMAL, 2 NEOX */
    int ffn_relu2;      /* 1: relu(gate)^2 * up (bitnet-b1.58), 0: silu(gate) * up */
    float eps, kq_scale;
    int mode;           /* 0: the float path; 1: llama.cpp's order (bn_peer_forward.c) */
    const bn_layer *layers;
    bn_rope_params rope; /* mode 1: RoPE as ggml_rope_ext (n_dims, mode = rope_dims, rope_mode) */
    int flash_attn;     /* mode 1: attention by llama.cpp's flash-attention kernel (set per call) */
    int fa_threads;     /* flash_attn: llama.cpp's thread count for the ubatch (split-KV order) */
    int64_t fa_view;    /* flash_attn: llama.cpp's KV view length, its 256-padded n_kv */
} bn_model;

/* All layers of graphs.forward over one batch: x (T, n_embd) holds the embeddings on entry.
 * The output rows are the last n_out of the batch (llama.cpp's outputs: all of them, the last
 * one, or none); their final residual stream (output_norm not applied) goes to out (n_out,
 * n_embd). On return x holds, when n_out < T, the last layer's FFN input (the residual after
 * its attention) of every row, which bn_forward_tail completes; else the final residual.
 * positions (T,) are the tokens' positions (RoPE, causal mask); cells (T,) the cache cells their
 * keys and values go to (NULL: the positions); kv_pos the cells' positions as attention sees them
 * (this batch included, -1 = not visible): (n_kv,) for all tokens (kv_stride 0) or (T, n_kv)
 * per token (kv_stride n_kv); cos_t, sin_t (T, rope_dims/2) from bitnet.ops.rope_cos_sin
 * (mode 0; mode 1 computes RoPE from m->rope). One parallel region of n_threads for the whole
 * batch (spin barriers between steps). */
int bn_forward(const bn_model *m, float *x, int64_t T, const int64_t *positions, const int64_t *cells,
               void *k_cache, void *v_cache, int kv_f16, int64_t n_ctx, const int64_t *kv_pos,
               int64_t kv_stride, int64_t n_kv, const float *cos_t, const float *sin_t, int n_threads,
               int64_t n_out, float *out);

/* mode 1: the last layer's FFN for T rows of its FFN input x (T, n_embd), in place: the
 * rows bn_forward left out, computed as llama.cpp computes them when all T are outputs */
int bn_forward_tail(const bn_model *m, float *x, int64_t T, int n_threads);

#endif
