/* bn_common.h: block structs, fp16 conversions, ISA dispatch plumbing shared by the kernels.
 *
 * Block structs mirror ggml-common.h (and bitnet.cpp for I2_S); the Python loader checks
 * sizeof of each against bitnet.ggml_types at import. Every kernel family is written as a
 * scalar `*_ref` first, then x86 variants compiled with per-function target attributes so
 * one binary holds scalar + AVX2 + AVX-512 code; NEON variants sit under __aarch64__.
 */
#ifndef BN_COMMON_H
#define BN_COMMON_H

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define BN_X86 1
#include <immintrin.h>
#define BN_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define BN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#else
#define BN_X86 0
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

/* ISA levels, in increasing order; a request above what the CPU has is clamped. */
enum { BN_ISA_SCALAR = 0, BN_ISA_AVX2 = 1, BN_ISA_AVX512 = 2, BN_ISA_NEON = 3 };

/* ggml type ids */
enum {
    BN_F32 = 0, BN_F16 = 1, BN_Q4_0 = 2, BN_Q4_1 = 3, BN_Q5_0 = 6, BN_Q5_1 = 7, BN_Q8_0 = 8, BN_Q4_K = 12, BN_Q5_K = 13,
    BN_Q6_K = 14, BN_Q8_K = 15, BN_TQ1_0 = 34, BN_TQ2_0 = 35, BN_I2_S = 36
};

#define QK_K 256
typedef uint16_t bn_half;

typedef struct { bn_half d; int8_t qs[32]; } block_q8_0;
typedef struct { bn_half d; bn_half s; int8_t qs[32]; } block_q8_1; /* s = d * sum(qs) */
typedef struct { bn_half d; uint8_t qs[16]; } block_q4_0;
typedef struct { bn_half d; bn_half m; uint8_t qs[16]; } block_q4_1;
typedef struct { bn_half d; bn_half dmin; uint8_t scales[12]; uint8_t qs[128]; } block_q4_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; bn_half d; } block_q6_K;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;
typedef struct { uint8_t qs[48]; uint8_t qh[4]; bn_half d; } block_tq1_0;
typedef struct { uint8_t qs[64]; bn_half d; } block_tq2_0;
typedef struct { uint8_t qs[32]; } block_i2_s; /* + one f32 scale per tensor after the data */

static inline float bn_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t bn_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* GGML_FP16_TO_FP32 (ggml_compute_fp16_to_fp32): exact; NaNs come out quiet. */
static inline float bn_fp16_to_fp32(bn_half h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normalized = bn_bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = bn_bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t result = sign | (two_w < (1u << 27) ? bn_f32_bits(denormalized) : bn_f32_bits(normalized));
    return bn_bits_f32(result);
}

/* GGML_FP32_TO_FP16 (ggml_compute_fp32_to_fp16): round to nearest even; NaN -> sign|0x7E00. */
static inline bn_half bn_fp32_to_fp16(float f) {
    float base = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = bn_f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = bn_bits_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = bn_f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (bn_half)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

/* ggml's nearest_int: round half to even via the 1.5 * 2^23 trick. */
static inline int bn_nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* dispatch state (bn_dispatch.c). Each kernel has a mask of the variants compiled in
 * (bit i = ISA i); bn_pick returns the best one not above the effective ISA. */
enum {
    K_DOT_F32, K_DEQUANT,
    K_RMS_NORM, K_SOFTMAX, K_ROPE, K_SWIGLU, K_RELU2_GLU, K_ATTENTION, K_PEER_OPS, K_PEER_MATMUL, K_COUNT
};
extern const int bn_kernel_masks[K_COUNT];
int bn_isa_effective(void); /* the requested ISA clamped to what the CPU has */
int bn_pick(int kernel);

/* thread pool (bn_dispatch.c): run fn(ctx, ith, nth) for ith in [0, nth) and wait. */
typedef void (*bn_task_fn)(void *ctx, int ith, int nth);
void bn_parallel(bn_task_fn fn, void *ctx, int nth);

/* a spin-then-sleep barrier for the threads of one bn_parallel region (bn_dispatch.c) */
typedef struct {
    int count, phase, sleepers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} bn_barrier;
void bn_barrier_init(bn_barrier *b);
void bn_barrier_destroy(bn_barrier *b);
void bn_barrier_wait(bn_barrier *b, int nth);

/* dequantizers (bn_dequant.c): one row of n weights -> float (bit-identical to bitnet.quants) */
int bn_dequant_row(int type, const void *row, float *y, int64_t n, float tensor_scale);
/* bytes of a row of D weights of a type the float path reads: 0, -1 unknown type, -2 bad D */
int bn_row_bytes(int type, int64_t D, size_t *row_bytes);

/* the float path's matmul y (T, N) = x (T, D) @ w (N, D)^T (bn_float_mm.c): each weight row
 * dequantized, f32 dots. bn_matmul splits the rows over the pool; the fused forward
 * (bn_forward.c) calls bn_mm_rows inside its own parallel region. */
float bn_dot_f32(const float *a, const float *b, int64_t n);
typedef struct {
    int type;
    const uint8_t *w;
    int64_t N, D, T;
    size_t w_row;        /* bytes per weight row */
    const float *x;      /* (T, D) */
    float w_scale;       /* I2_S per-tensor scale */
    float *y;            /* (T, N) */
    int failed;
} bn_mm;
int bn_mm_setup(bn_mm *c, int type, const void *w, int64_t N, int64_t D, const float *x, int64_t T, float *y);
void bn_mm_rows(bn_mm *c, int64_t n0, int64_t n1); /* output features n0..n1 */

#endif
