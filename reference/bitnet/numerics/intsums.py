"""Exact integer partial sums of activation codes times weight codes.

Every x86 dot product llama.cpp runs first sums integer products in SIMD lanes: an int32
lane of _mm256_maddubs_epi16 + _mm256_madd_epi16 (or one VNNI _mm256_dpbusd_epi32) holds
the sum of 4 consecutive byte products. Integer sums are exact whatever instruction
computes them, so only WHICH products share a lane matters; these helpers return those
sums (as float32 or float64 holding exact integers) for the kernels in `dots32` and
`dotsk` to scale and accumulate in llama.cpp's float order.

Shapes: x (T, D) activation codes, q (n, D) weight codes -> sums (T, n, ...).
"""

from __future__ import annotations

from typing import Callable, Iterator, Tuple

import numpy as np

_F32 = np.float32

# work size of one chunk of output features: about this many partial sums at once
_CHUNK_ELEMS = 1 << 23


def row_chunks(n: int, t: int, per_row: int) -> Iterator[Tuple[int, int]]:
    """[n0, n1) ranges over n output features so that t * (n1 - n0) * per_row stays near
    _CHUNK_ELEMS (memory bound for the (T, n, ...) partial sums)."""
    step = max(1, _CHUNK_ELEMS // max(1, t * per_row))
    for n0 in range(0, n, step):
        yield n0, min(n, n0 + step)


def by_row_chunks(fn: Callable[[int, int], np.ndarray], n: int, t: int, per_row: int) -> np.ndarray:
    """Concatenate fn(n0, n1) -> (T, n1 - n0) over `row_chunks` into (T, n)."""
    out = np.empty((t, n), dtype=_F32)
    for n0, n1 in row_chunks(n, t, per_row):
        out[:, n0:n1] = fn(n0, n1)
    return out


def quad_sums(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """sum_{k<4} x[t, 4g+k] * q[n, 4g+k]: one int32 SIMD lane per group of 4 consecutive
    elements. (T, D), (n, D) -> (T, n, D/4) float32 (exact: |sum| <= 4*128*128)."""
    t, dim = x.shape
    xs = np.asarray(x, dtype=_F32).reshape(t, dim // 4, 4)
    qs = np.asarray(q, dtype=_F32).reshape(q.shape[0], dim // 4, 4)
    if t < 4:  # few rows: einsum's loop beats one tiny BLAS call per group
        return np.einsum("tgk,ngk->tng", xs, qs)
    return np.matmul(qs.transpose(1, 0, 2), xs.transpose(1, 2, 0)).transpose(2, 1, 0)


def group_sums(x: np.ndarray, q: np.ndarray, group: int) -> np.ndarray:
    """sum over each `group` consecutive elements (a quant block or sub-block) of
    x[t, e] * q[n, e]. (T, D), (n, D) -> (T, n, D/group) float32, exact: every partial
    sum is an integer below 2^24 (group <= 256, codes below 128), so BLAS's order does
    not matter."""
    t, dim = x.shape
    g = dim // group
    xg = np.asarray(x, dtype=_F32).reshape(t, g, group).transpose(1, 0, 2)  # (G, T, group)
    qg = np.asarray(q, dtype=_F32).reshape(q.shape[0], g, group).transpose(1, 2, 0)  # (G, group, n)
    return np.matmul(xg, qg).transpose(1, 2, 0)  # (T, n, G)


def strided_lane_sums(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per 256-block and lane L = 0..7: the sum of x*q over the elements e of the block
    with (e % 32) // 4 == L, i.e. byte lanes 4L..4L+3 of each of the block's eight 32-byte
    registers (how the TQ1_0 / TQ2_0 kernels fill their 8 int32 lanes).
    (T, D), (n, D) -> (T, n, D/256, 8) float32 (exact)."""
    t, dim = x.shape
    nb = dim // 256

    def lanes_last(v: np.ndarray) -> np.ndarray:  # (rows, D) -> (rows, nb*8 lanes, 32)
        r = v.shape[0]
        return v.reshape(r, nb, 8, 8, 4).transpose(0, 1, 3, 2, 4).reshape(r, nb * 8 * 32)

    sums = group_sums(lanes_last(np.asarray(x, dtype=_F32)), lanes_last(np.asarray(q, dtype=_F32)), 32)
    return sums.reshape(t, q.shape[0], nb, 8)
