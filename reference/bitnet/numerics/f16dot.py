"""Dot products of F16 operands in llama.cpp's summation orders (F16 weights, K·q, V·p).

ggml_compute_forward_mul_mat converts the activations to F16 (vec_dot_type of F16;
ggml_cpu_fp32_to_fp16, round to nearest even) and then:

- llamafile_sgemm's tinyBLAS<16, __m512, ...> (llamafile/sgemm.cpp) when the batch has
  n >= 2 columns, k % 16 == 0 and m % 4 == 0 (m = output features): per output,
  16 float32 lanes accumulate fma(a, b, acc) over k in steps of 16, then
  _mm512_reduce_add_ps (`reduce_add_16`).
- otherwise ggml_vec_dot_f16 (vec.cpp, AVX-512 without AVX512-FP16 arithmetic, or with
  it: GGML_F16_DOT_* accumulate in float32 the same way): 4 registers x 16 lanes over
  steps of 64, the registers added pairwise ((0+2), (1+3), then the two), the lane
  reduction, then the k % 64 leftovers one by one in double (ggml_float), rounded to
  float32 at the end.

A product of two F16 values is exact in float32, so each fma adds the exact product.
"""

from __future__ import annotations

import numpy as np

from bitnet.numerics.floats import reduce_add_16

_F32 = np.float32


def uses_tinyblas(n_cols: int, n_out: int, k: int) -> bool:
    """llamafile_sgemm takes an F16 x F16 product (instead of ggml_vec_dot_f16) with n_cols
    activation rows, n_out output features (m) and k summed elements."""
    return n_cols >= 2 and k % 16 == 0 and n_out % 4 == 0


def f16_dot(a: np.ndarray, b: np.ndarray, *, tinyblas: bool) -> np.ndarray:
    """Dot products along the last axis of F16-valued operands (float32 arrays holding f16
    values, same shape (..., K)) in tinyBLAS's order (requires K % 16 == 0) or
    ggml_vec_dot_f16's (see the module docstring). -> (...) float32."""
    prod = (a * b).astype(_F32)  # (..., K), exact
    lead = tuple(prod.shape[:-1])
    k = prod.shape[-1]
    if tinyblas:
        lanes = prod.reshape(lead + (-1, 16))  # (..., K/16, 16)
        acc = lanes[..., 0, :].copy()
        for c in range(1, lanes.shape[-2]):
            acc += lanes[..., c, :]
        return reduce_add_16(acc)
    n_main = k - k % 64
    total = np.zeros(lead, dtype=np.float64)
    if n_main:
        steps = prod[..., :n_main].reshape(lead + (-1, 4, 16))  # (..., K/64, 4, 16)
        acc = steps[..., 0, :, :].copy()  # (..., 4, 16)
        for i in range(1, steps.shape[-3]):
            acc += steps[..., i, :, :]
        x0 = acc[..., 0, :] + acc[..., 2, :]
        x1 = acc[..., 1, :] + acc[..., 3, :]
        total += reduce_add_16(x0 + x1)
    for i in range(n_main, k):
        total += prod[..., i]
    return total.astype(_F32)
