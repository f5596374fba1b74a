"""Dot products of float operands in llama.cpp's summation orders: F16 weights, K·q, V·p,
and F32 x F32 products.

ggml_compute_forward_mul_mat converts the activations to the weight's vec_dot_type (F16:
ggml_cpu_fp32_to_fp16, round to nearest even; F32: unchanged) and then:

- llamafile_sgemm's tinyBLAS<16, __m512, ...> (llamafile/sgemm.cpp) when the batch has
  n >= 2 columns, k % 16 == 0 and m % 4 == 0 (m = output features): per output,
  16 float32 lanes accumulate fma(a, b, acc) over k in steps of 16, then
  _mm512_reduce_add_ps (`reduce_add_16`).
- otherwise the type's vec_dot (vec.cpp, AVX-512): 4 registers x 16 lanes accumulate
  fma(a, b, acc) over steps of 64; the registers are added pairwise ((0+2), (1+3), then the
  two) and lane-reduced; the k % 64 leftovers follow one by one:
  ggml_vec_dot_f16 adds them in double (ggml_float) and rounds at the end (with
  AVX512-FP16 arithmetic or without: GGML_F16_DOT_* accumulate in float32 the same way);
  ggml_vec_dot_f32's `sumf += x[i]*y[i]` in float32 as GCC compiled it: vectorized 16 and
  then 8 wide with in-order adds of the rounded products, the last k % 8 by a contracted
  fma (measured against libggml).

A product of two F16 values is exact in float32, so for F16 each fma adds the exact
product; for F32 each is a true fma (`floats.fma_chain`).
"""

from __future__ import annotations

import numpy as np

from bitnet.numerics.floats import fma, fma_chain, reduce_add_16

_F32 = np.float32


def uses_tinyblas(n_cols: int, n_out: int, k: int) -> bool:
    """llamafile_sgemm takes an F16 x F16 or F32 x F32 product (instead of the vec_dot) with
    n_cols activation rows, n_out output features (m) and k summed elements."""
    return n_cols >= 2 and k % 16 == 0 and n_out % 4 == 0


def _lane_sums(a: np.ndarray, b: np.ndarray, width: int, exact_products: bool) -> np.ndarray:
    """Per lane of `width` (16 or 4 x 16) along the last axis, fma(a, b, acc) over the steps
    of `width` elements in order. (..., K) with K % width == 0 -> (..., width)."""
    lead = tuple(a.shape[:-1])
    if exact_products:  # F16 x F16: the fma is a float32 addition of the exact product
        steps = (a * b).astype(_F32).reshape(lead + (-1, width))
        acc = steps[..., 0, :].copy()
        for c in range(1, steps.shape[-2]):
            acc += steps[..., c, :]
        return acc
    sa = np.moveaxis(np.asarray(a, dtype=_F32).reshape(lead + (-1, width)), -2, 0)
    sb = np.moveaxis(np.asarray(b, dtype=_F32).reshape(lead + (-1, width)), -2, 0)
    return fma_chain(sa, sb)


def float_dot(a: np.ndarray, b: np.ndarray, *, tinyblas: bool, f16: bool = True) -> np.ndarray:
    """Dot products along the last axis of same-shape (..., K) float32 operands (holding
    f16 values when `f16`) in tinyBLAS's order (requires K % 16 == 0) or the vec_dot's
    (ggml_vec_dot_f16 / ggml_vec_dot_f32; see the module docstring). -> (...) float32."""
    a = np.asarray(a, dtype=_F32)
    b = np.asarray(b, dtype=_F32)
    lead = tuple(a.shape[:-1])
    k = a.shape[-1]
    if tinyblas:
        return reduce_add_16(_lane_sums(a, b, 16, f16))
    n_main = k - k % 64
    total: np.ndarray = np.zeros(lead, dtype=np.float64 if f16 else _F32)
    if n_main:
        acc = _lane_sums(a[..., :n_main], b[..., :n_main], 64, f16).reshape(lead + (4, 16))
        x0 = acc[..., 0, :] + acc[..., 2, :]
        x1 = acc[..., 1, :] + acc[..., 3, :]
        total = total + reduce_add_16(x0 + x1)
    left = k - n_main
    unfused = n_main + left // 16 * 16 + (8 if left % 16 >= 8 else 0)  # GCC's vector part
    for i in range(n_main, k):
        if f16:
            total = total + (a[..., i] * b[..., i]).astype(np.float64)  # exact products
        elif i < unfused:
            total = total + a[..., i] * b[..., i]  # in-order vector adds of the products
        else:
            total = fma(a[..., i], b[..., i], total)  # the scalar remainder, contracted
    return np.asarray(total).astype(_F32)


def f16_dot(a: np.ndarray, b: np.ndarray, *, tinyblas: bool) -> np.ndarray:
    """`float_dot` of F16-valued operands (F16 weights, attention's K·q and V·p)."""
    return float_dot(a, b, tinyblas=tinyblas, f16=True)
