"""Matmuls of 32-weight-block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) in llama.cpp's order.

Two float orders exist on llama.cpp's x86 AVX-512 build:

1. `lanes8_matmul`: ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0 / ggml_vec_dot_{q4_1,q5_1}_q8_1
   (arch/x86/quants.c, the __AVX2__ code, which the AVX-512 build runs), and llamafile's
   tinyBLAS_Q0_AVX (sgemm.cpp: batched Q8_0 / Q4_0 / Q5_0) which sums the same way.
   For one output (row t, feature n):

       acc[0..7] = 0                                   8 float32 lanes (one __m256)
       for each block b in order:
           lane[L] = sum_{k<4} xq[32b+4L+k] * wq[32b+4L+k]      exact int32
           acc[L]  = fma(dx[b] * dw[b], float(lane[L]), acc[L])  (dx*dw exact: 2 halves)
           summs   = summs + m[b] * s[b]           Q4_1/Q5_1 only (exact product)
       y = hsum_float_8(acc) (+ summs)

2. `q4_0_8x8_matmul`: repack.cpp's q4_0_8x8 GEMV/GEMM (arch/x86/repack.cpp
   gemv_q4_b32_8x8_q8_0_lut_avx / gemm_q4_b32_8x8_q8_0_lut_avx, AVX-512 and AVX2 parts
   alike), used for Q4_0 weights llama.cpp holds in its CPU_REPACK buffer (ne[1] % 8 ==
   0). One float32 accumulator per output, no lanes:

       acc = 0
       for each block b in order:
           acc = fma(float(sum_{e<32} xq[32b+e] * wq[32b+e]), dw[b] * dx[b], acc)
       y = acc

   The GEMM (4-row groups of activations quantized by ggml_quantize_mat_q8_0_4x8, same
   codes as quantize_row_q8_0) and the GEMV (the T % 4 remaining rows) sum identically.

Activations: `quantize_q8_0` (Q8_1 for Q4_1 / Q5_1). Codes: `weight_codes`.
"""

from __future__ import annotations

import numpy as np

from bitnet.ggml_types import GGMLType
from bitnet.numerics.activations import quantize_q8_0
from bitnet.numerics.codes import WeightCodes
from bitnet.numerics.floats import fma_chain, hsum_float_8
from bitnet.numerics.intsums import by_row_chunks, group_sums, quad_sums

_F32 = np.float32

LANES8_TYPES = frozenset({GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0})
_WITH_SUM = frozenset({GGMLType.Q4_1, GGMLType.Q5_1})  # vec_dot_type Q8_1, m * s term


def lanes8_matmul(w: WeightCodes, x: np.ndarray) -> np.ndarray:
    """y = x @ w.T as ggml_vec_dot_*_q8_0 / _q8_1 and tinyBLAS_Q0_AVX sum it (see the
    module docstring, order 1). w: codes of an (N, D) Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weight;
    x: (T, D) float32 -> (T, N) float32."""
    with_sum = w.type_id in _WITH_SUM
    a = quantize_q8_0(x, with_sum=with_sum)
    t, nb = a.d.shape
    xq = a.codes.reshape(t, nb * 32)
    n = w.q.shape[0]

    def chunk(n0: int, n1: int) -> np.ndarray:
        lanes = quad_sums(xq, w.q[n0:n1]).reshape(t, n1 - n0, nb, 8)
        d = a.d[:, None, :] * w.d[None, n0:n1, :]  # (T, n, nb), exact
        acc = fma_chain(np.moveaxis(d, 2, 0)[..., None], np.moveaxis(lanes, 2, 0))  # (T, n, 8)
        y = hsum_float_8(acc)
        if not with_sum:
            return y
        assert w.dmin is not None
        ms = w.dmin[None, n0:n1, :] * a.s[:, None, :]  # (T, n, nb), exact
        summs = np.zeros((t, n1 - n0), dtype=_F32)
        for b in range(nb):
            summs = summs + ms[:, :, b]
        return y + summs

    return by_row_chunks(chunk, n, t, nb * 8)


def q4_0_8x8_matmul(w: WeightCodes, x: np.ndarray) -> np.ndarray:
    """y = x @ w.T as llama.cpp's repacked q4_0_8x8 GEMV/GEMM sum it (module docstring,
    order 2). w: codes of an (N, D) Q4_0 weight; x: (T, D) float32 -> (T, N) float32."""
    a = quantize_q8_0(x)
    t, nb = a.d.shape
    xq = a.codes.reshape(t, nb * 32)
    n = w.q.shape[0]

    def chunk(n0: int, n1: int) -> np.ndarray:
        isum = group_sums(xq, w.q[n0:n1], 32)  # (T, n, nb)
        d = w.d[None, n0:n1, :] * a.d[:, None, :]  # (T, n, nb), exact
        return fma_chain(np.moveaxis(isum, 2, 0), np.moveaxis(d, 2, 0))

    return by_row_chunks(chunk, n, t, nb)
