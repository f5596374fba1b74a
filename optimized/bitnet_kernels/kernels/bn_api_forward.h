/* bn_api_forward.h: attention over a KV cache and the fused transformer forward (bn_forward.c).
 *
 * Layouts follow bitnet.model.graphs: a KV cache is (n_layer, n_ctx, Hkv, d), f32 or f16 bits;
 * activations are (T, width) rows. Return codes as bn_api.h (0 ok, -1 unsupported type, -2 bad
 * shape or position, -3 out of memory).
 */
#ifndef BN_API_FORWARD_H
#define BN_API_FORWARD_H
#include <stdint.h>

/* Causal GQA attention (llama.cpp build_attn_mha without flash attention).
 * q (T, H, d) f32; k, v (K, Hkv, d) f32 (kv_f16 = 0) or f16 (kv_f16 = 1); q_pos (T,);
 * kv_pos (K,) with -1 = empty cell; query t sees cells with 0 <= kv_pos <= q_pos[t].
 * peer_f16: round q and the probabilities to f16 as llama.cpp does with an F16 cache.
 * out (T, H*d). Heads split over n_threads. */
int bn_attention(const float *q, const void *k, const void *v, int kv_f16, int64_t T, int64_t H,
                 int64_t Hkv, int64_t d, int64_t K, const int64_t *q_pos, const int64_t *kv_pos,
                 float scale, int peer_f16, float *out, int n_threads);

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

typedef struct {
    int n_layer;
    int64_t n_embd, n_head, n_head_kv, head_dim, n_ff;
    int64_t rope_dims;
    int rope_mode;      /* 0 NORMAL, 2 NEOX */
    int ffn_relu2;      /* 1: relu(gate)^2 * up (bitnet-b1.58), 0: silu(gate) * up */
    float eps, kq_scale;
    int mode;           /* matmul mode of bn_matmul: 0 float, 1 peer integer path */
    const bn_layer *layers;
} bn_model;

/* All layers of graphs.forward over one batch, in place: x (T, n_embd) holds the embeddings on
 * entry and the residual stream after the last layer on return (output_norm not applied).
 * positions (T,) are the cache cells written; kv_pos (n_kv,) the cells' positions as attention
 * sees them (this batch included); cos_t, sin_t (T, rope_dims/2) from bitnet.ops.rope_cos_sin.
 * One parallel region of n_threads for the whole batch (spin barriers between steps). */
int bn_forward(const bn_model *m, float *x, int64_t T, const int64_t *positions, void *k_cache,
               void *v_cache, int kv_f16, int64_t n_ctx, const int64_t *kv_pos, int64_t n_kv,
               const float *cos_t, const float *sin_t, int n_threads);

#endif
