/* bn_api.h: the functions Python calls through cffi (build_kernels.py feeds this file to cdef).
 *
 * Shapes use the numpy order of bitnet.ops: a weight is (N, D) rows of D weights, activations
 * (T, D); outputs are caller-allocated. Return codes: 0 ok, -1 unsupported type, -2 bad shape
 * (row length not a multiple of the block), -3 out of memory.
 */
#ifndef BN_API_H
#define BN_API_H
#include <stddef.h>
#include <stdint.h>

/* ggml_rope_ext's arguments besides the tensor and the positions */
typedef struct {
    int n_dims;       /* rotated dims per head */
    int mode;         /* 0 NORMAL (pairs 2i, 2i+1), 2 NEOX (pairs i, i + n_dims/2) */
    int n_ctx_orig;   /* YaRN: original training context */
    float freq_base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow;
    const float *freq_factors; /* (n_dims/2,) divisors of theta, or NULL */
} bn_rope_params;

int bn_cpu_isa(void);
void bn_set_isa(int isa);  /* 99 = the best the CPU has */
int bn_isa_request(void);
int bn_isa_effective(void);
int bn_kernel_count(void);
const char *bn_kernel_name(int k);
int bn_kernel_variant(int k);
int bn_max_threads(void);

/* activation quantizers, as llama.cpp's x86 build runs them (quantize_row_q8_0 / q8_1,
 * quantize_row_q8_K_ref) into its block structs (bn_act_quant.c) */
int bn_quantize_row_q8_0(const float *x, void *y, int64_t n);
int bn_quantize_row_q8_1(const float *x, void *y, int64_t n);
int bn_quantize_row_q8_K(const float *x, void *y, int64_t n);

/* y (T, N) = x (T, D) @ w (N, D)^T. mode 0: float path (dequantize each weight row, f32 dot);
 * mode 1: llama.cpp's order (bn_peer_matmul, see bn_api_peer.h); mode 2: the same for a weight
 * outside llama.cpp's repack buffer. w is the whole tensor (I2_S: with its scale). */
int bn_matmul(int type, const void *w, int64_t N, int64_t D, const float *x, int64_t T, float *y,
              int mode, int n_threads);
/* ggml_get_rows: rows ids (T,) of w (n_rows, D) dequantized into y (T, D) */
int bn_dequantize_rows(int type, const void *w, int64_t n_rows, int64_t D, const int64_t *ids,
                       int64_t T, float *y);

void bn_rms_norm(const float *x, const float *weight, float *y, int64_t T, int64_t D, float eps);
void bn_softmax(const float *x, float *y, int64_t rows, int64_t K);
void bn_rope(const float *x, float *y, int64_t T, int64_t H, int64_t d, const float *cos_t,
             const float *sin_t, int64_t n_dims, int mode);
void bn_swiglu(const float *g, const float *u, float *y, int64_t n);
void bn_relu2_glu(const float *g, const float *u, float *y, int64_t n);

/* bn_membw.c: read `bytes` at p with n_threads (each its contiguous share, wide loads);
 * returns an xor of everything read (so nothing is optimized away). Times memory bandwidth. */
uint64_t bn_read_bytes(const void *p, size_t bytes, int n_threads);

/* bn_selftest.c: SIMD variants vs scalar on awkward shapes; returns the failure count */
int bn_selftest(int verbose);

#endif
