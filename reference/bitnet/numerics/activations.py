"""Activations quantized as llama.cpp quantizes a matmul's input (its `vec_dot_type`).

ggml_compute_forward_mul_mat converts the float32 activations row by row with
`type_traits_cpu[vec_dot_type].from_float` before any integer dot product:

- Q8_0 (for Q4_0, Q5_0, Q8_0 weights; also the repacked q4_0_8x8 path, whose
  ggml_quantize_mat_q8_0_4x8 rounds identically): arch/x86/quants.c quantize_row_q8_0.
- Q8_1 (for Q4_1, Q5_1): quantize_row_q8_1, plus the block sum s.
- Q8_K (for Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0; our I2_S): quantize_row_q8_K, which on x86
  is ggml-quants.c quantize_row_q8_K_ref. The repacked q4_K_8x8 path's
  ggml_quantize_mat_q8_K_4x8 may flip the sign of a whole block (when +max|x| and -max|x|
  both occur); codes and scale flip together, so every product it feeds is the same.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bitnet.ggml_types import QK_K
from bitnet.numerics.floats import f16

_F32 = np.float32


class Q8Blocks(NamedTuple):
    """Activations in 32-blocks. T rows of D values: codes (T, D/32, 32) int32 in
    [-127, 127]; d (T, D/32) float32 holding the f16 scale; s (T, D/32) float32 holding
    the f16 d * sum(codes) (Q8_1 only, zeros for Q8_0)."""

    codes: np.ndarray
    d: np.ndarray
    s: np.ndarray


class Q8KBlocks(NamedTuple):
    """Activations in 256-blocks. codes (T, D/256, 256) int32; d (T, D/256) float32 (a
    full float32, negative when the block's largest magnitude is positive); bsums
    (T, D/256, 16) int32: the sums of each 16 codes."""

    codes: np.ndarray
    d: np.ndarray
    bsums: np.ndarray


def quantize_q8_0(x: np.ndarray, *, with_sum: bool = False) -> Q8Blocks:
    """quantize_row_q8_0 (with_sum: quantize_row_q8_1), the AVX2 code, per 32-block:
    amax = max|x|; d = amax / 127 (stored f16); codes = round-half-even(x * (127 / amax))
    with the product in float32 (0 when amax = 0); Q8_1's s = f16(d * sum(codes)) with
    the unrounded d. x: (T, D) float32, D % 32 == 0."""
    x = np.asarray(x, dtype=_F32)
    t, dim = x.shape
    blocks = x.reshape(t, dim // 32, 32)
    amax = np.max(np.abs(blocks), axis=-1)  # (T, nb)
    d = (amax / _F32(127.0)).astype(_F32)
    safe = np.where(amax != 0, amax, _F32(1.0))
    inv = np.where(amax != 0, _F32(127.0) / safe, _F32(0.0)).astype(_F32)
    codes = np.clip(np.rint(blocks * inv[..., None]), -128, 127).astype(np.int32)
    if with_sum:
        s = f16(d * codes.sum(-1).astype(_F32))
    else:
        s = np.zeros_like(d)
    return Q8Blocks(codes, f16(d), s)


def quantize_q8_k(x: np.ndarray) -> Q8KBlocks:
    """quantize_row_q8_K_ref per 256-block: max = the first value of largest magnitude;
    iscale = -127 / max; codes = min(127, round-half-even(iscale * x)) (float32 product);
    d = 1 / iscale; all zero when max = 0. x: (T, D) float32, D % 256 == 0."""
    x = np.asarray(x, dtype=_F32)
    t, dim = x.shape
    blocks = x.reshape(t, dim // QK_K, QK_K)
    first = np.argmax(np.abs(blocks), axis=-1)  # the first index of the largest |x|
    mx = np.take_along_axis(blocks, first[..., None], axis=-1)[..., 0]  # (T, nb)
    zero = mx == 0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        iscale = (_F32(-127.0) / np.where(zero, _F32(1.0), mx)).astype(_F32)
        codes = np.minimum(127, np.rint(blocks * iscale[..., None])).astype(np.int32)
        d = (_F32(1.0) / iscale).astype(_F32)
    codes = np.where(zero[..., None], 0, codes)
    d = np.where(zero, _F32(0.0), d).astype(_F32)
    bsums = codes.reshape(t, dim // QK_K, 16, 16).sum(axis=-1)
    return Q8KBlocks(codes, d, bsums)
