/* bn_api_peer.h: the elementwise ops in llama.cpp's float order (bn_peer_ops.c).
 *
 * "Peer order" is what llama.cpp 0.3.36's CPU backend computes in its x86 AVX-512 build (the
 * build llama-cpp-python makes on such a CPU), down to the rounding of every float step; the
 * numpy reference of the same bits is bitnet.numerics.PeerBackend. Every ISA variant (scalar,
 * AVX2, AVX-512, NEON) gives the same bits: the order is fixed, the instructions are free.
 */
#ifndef BN_API_PEER_H
#define BN_API_PEER_H
#include <stdint.h>

#include "bn_api.h" /* bn_rope_params */

/* ggml_v_expf (vec.h, the AVX-512 polynomial) on n floats */
void bn_peer_expf(const float *x, float *y, int64_t n);
/* ggml_rms_norm (+ ggml_mul by w, NULL = none): squares summed in double, in order */
void bn_peer_rms_norm(const float *x, const float *w, float *y, int64_t T, int64_t D, float eps);
/* the core of ggml_soft_max_ext on rows already scaled and masked (-inf = masked): max,
 * ggml_v_expf per 16 lanes (libm expf for the K % 16 tail) summed in double, times 1/sum */
void bn_peer_softmax(const float *x, float *y, int64_t rows, int64_t K);
/* ggml_swiglu_split: per row of F, silu(g) * u with ggml_v_silu per 16, libm for the tail */
void bn_peer_swiglu(const float *g, const float *u, float *y, int64_t rows, int64_t F);
/* ggml_rope_cache_init: (cos, sin) pairs for one position into cache (n_dims floats) */
void bn_peer_rope_cache(const bn_rope_params *p, int64_t pos, float *cache);
/* ggml_rope_ext: x, y (T, H, d), y may alias x; positions (T,) */
int bn_peer_rope(const float *x, float *y, int64_t T, int64_t H, int64_t d, const int64_t *positions,
                 const bn_rope_params *p);

/* y (T, N) = x (T, D) @ w (N, D)^T in llama.cpp's order for a batch of T rows (bn_peer_mm.c,
 * bn_peer_kq.c): F16, F32, Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0,
 * I2_S (as TQ2_0). plain: the weight is outside llama.cpp's repack buffer (Q4_0 / Q4_K then
 * take the non-repacked order). Rows split over n_threads; the thread count changes no bit. */
int bn_peer_matmul(int type, const void *w, int64_t N, int64_t D, const float *x, int64_t T, float *y,
                   int plain, int n_threads);

#endif
