/* bn_act_quant.c: activation quantization as llama.cpp's x86 build does it.
 *
 * quantize_row_q8_0 / q8_1 (arch/x86/quants.c, the SIMD versions, not *_ref): per 32-block
 * d = amax / 127, codes round-half-even(x * 127/amax), d stored as f16, Q8_1 also
 * s = f16(d * sum(codes)); quantize_row_q8_K_ref (which x86 llama.cpp runs): per 256-block the
 * signed max, iscale = -127/max, codes nearest(iscale * x) capped at 127, d = 1/iscale. The
 * block helpers here are the one implementation: the exported row quantizers (llama.cpp's
 * block structs) and the peer matmuls' activation rows (bn_peer_mm.c) both call them.
 */
#include "bn_peer.h"
#include "bn_api.h"

float bn_q8_block32(const float *x, int8_t *q, int *sum) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int j = 0; j < 32; j++) {
        q[j] = (int8_t)bn_nearest_int(x[j] * id);
        s += q[j];
    }
    *sum = s;
    return d;
}

float bn_q8k_block(const float *x, int n, int8_t *q) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < n; j++) {
        const float ax = fabsf(x[j]);
        if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (!amax) {
        memset(q, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < n; j++) {
        const int v = bn_nearest_int(iscale * x[j]);
        q[j] = (int8_t)(v < 127 ? v : 127);
    }
    return 1.0f / iscale;
}

int bn_quantize_row_q8_0(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = (block_q8_0 *)vy;
    if (n % 32) return -2;
    for (int64_t i = 0; i < n / 32; i++) {
        int sum;
        y[i].d = bn_fp32_to_fp16(bn_q8_block32(x + 32 * i, y[i].qs, &sum));
    }
    return 0;
}

int bn_quantize_row_q8_1(const float *x, void *vy, int64_t n) {
    block_q8_1 *y = (block_q8_1 *)vy;
    if (n % 32) return -2;
    for (int64_t i = 0; i < n / 32; i++) {
        int sum;
        const float d = bn_q8_block32(x + 32 * i, y[i].qs, &sum);
        y[i].d = bn_fp32_to_fp16(d);
        y[i].s = bn_fp32_to_fp16(d * (float)sum); /* fp16: the rounding llama.cpp's dot sees */
    }
    return 0;
}

int bn_quantize_row_q8_K(const float *x, void *vy, int64_t n) {
    block_q8_K *y = (block_q8_K *)vy;
    if (n % QK_K) return -2;
    for (int64_t i = 0; i < n / QK_K; i++) {
        y[i].d = bn_q8k_block(x + QK_K * i, QK_K, y[i].qs);
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int k = 0; k < 16; k++) sum += y[i].qs[16 * j + k];
            y[i].bsums[j] = (int16_t)sum;
        }
    }
    return 0;
}
