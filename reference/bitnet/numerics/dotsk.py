"""Matmuls of 256-weight-block types (Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0, I2_S) in llama.cpp's
order. Activations: `quantize_q8_k` (x codes xq, block scale dy, 16-sums bsums).

Notation per output (row t, feature n) and block b: q = weight codes, sc/mn = 6-bit
sub-block scales/mins (Q4_K/Q5_K, sub-blocks of 32), sc = int8 scales (Q6_K, sub-blocks
of 16), dx/dmin = the weight's f16 scales, dy = the activation's float32 scale,
S[s] = sum of xq over sub-block s, lane P[c, L] = sum_{k<4} xq*q over elements
32c + 4L + k (one int32 lane of a 32-byte register c). Integer sums are exact; float32
steps are listed in order.

`vec_dot_kquant` -- ggml_vec_dot_{q4_K,q5_K,q6_K}_q8_K (arch/x86/quants.c, __AVX2__):

    Q4_K/Q5_K: d = dy * dx; dm = -dy * dmin
        sumi[L] = sum_s sc[s] * P[s, L]                       8 int32 lanes
        acc[L]  = fma(d, float(sumi[L]), acc[L])
        Q4_K: pm[k] = mn[2k] S[2k] + mn[2k+1] S[2k+1] (k<4); accm[k] = fma(dm, pm[k], accm[k])
        Q5_K: summs = fma(dm, float(sum_s mn[s] S[s]), summs)  (the C's `summs += dmin *`)
      y = hsum_float_8(acc) + (Q4_K: hsum_float_4(accm), Q5_K: summs)
    Q6_K: d = dy * dx
        sumi[L] = sum_c sc[2c + L//4] P[c, L] - 32 (sc[2L] bsums[2L] + sc[2L+1] bsums[2L+1])
        acc[L]  = fma(d, float(sumi[L]), acc[L]);  y = hsum_float_8(acc)

`tiled_kquant` -- tiled/tiled.cpp + tiled-kernel.cpp, the AVX-512 VNNI microkernel
(tiled_run_micro_vnni_8x16), which ggml_compute_forward_mul_mat runs for Q4_K/Q5_K/Q6_K
weights not in the repack buffer once the batch has >= 8 rows:

    s1 = sum_s sc[s] * (raw[s] - BIAS * S[s])     raw[s] = sum over the sub-block of xq*q
    s2 = sum_s mn[s] * S[s]                       (Q4_K/Q5_K; BIAS = 0. Q6_K: BIAS = 32)
    r  = float(s1) * dx;  r = fma(-dmin, float(s2), r)   (the second step Q4_K/Q5_K only)
    buf = fma(r, dy, buf)   per block, buf starting at 0;  y = buf

`q4_k_8x8_matmul` -- repack.cpp q4_K_8x8 (arch/x86/repack.cpp ggml_gemv_q4_K_8x8_q8_K /
ggml_gemm_q4_K_8x8_q8_K) for Q4_K weights in the repack buffer (ne[1] % 8 == 0):

    GEMV (the T % 4 last rows), per block:  i = sum_s sc[s] raw[s];  m = sum_s mn[s] S[s]
    GEMM (4-row groups), per PAIR of sub-blocks (2p, 2p+1), p = 0..3:
                                            i = sc[2p] raw[2p] + sc[2p+1] raw[2p+1]; m alike
        acc = fma(float(i), dx * dy, acc);  accm = fma(float(m), dmin * dy, accm)
    y = acc - accm

`vec_dot_ternary` -- ggml_vec_dot_tq1_0_q8_K / ggml_vec_dot_tq2_0_q8_K (__AVX2__), codes
q in {0, 1, 2} (trit + 1):

    lane[L] = sum_c P[c, L] - (bsums[2L] + bsums[2L+1])      int16 sums, exact
    sumf[L] = fma(float(lane[L]), dy * dx, sumf[L]);  y = hsum_float_8(sumf)

I2_S (bitnet.cpp's type, no llama.cpp kernel) is given TQ2_0's treatment: Q8_K
activations and exactly the TQ2_0 order above with dx = the tensor's float32 scale, so
the same ternary weights stored as I2_S or as TQ2_0 (with a scale exact in f16) give the
same bits.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from bitnet.ggml_types import QK_K, GGMLType
from bitnet.numerics.activations import Q8KBlocks, quantize_q8_k
from bitnet.numerics.codes import WeightCodes
from bitnet.numerics.floats import fma, fma_chain, hsum_float_4, hsum_float_8
from bitnet.numerics.intsums import by_row_chunks, group_sums, quad_sums, strided_lane_sums

_F32 = np.float32
_F64 = np.float64

KQUANT_TYPES = frozenset({GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K})
TERNARY_TYPES = frozenset({GGMLType.TQ1_0, GGMLType.TQ2_0, GGMLType.I2_S})


def _activations(x: np.ndarray) -> Tuple[Q8KBlocks, np.ndarray]:
    """x (T, D) quantized to Q8_K, and its codes as (T, D)."""
    a = quantize_q8_k(x)
    return a, a.codes.reshape(x.shape[0], -1)


def _sub_sums(a: Q8KBlocks, size: int) -> np.ndarray:
    """S: sums of the activation codes over sub-blocks of `size` (16 or 32) elements.
    -> (T, nb, 256/size) int64."""
    t, nb, _ = a.bsums.shape
    return a.bsums.reshape(t, nb, QK_K // size, size // 16).sum(-1).astype(np.int64)


def _kquant_lane_sums(w: WeightCodes, a: Q8KBlocks, xq: np.ndarray, n0: int, n1: int) -> np.ndarray:
    """sumi[t, n, b, L]: the 8 int32 lanes of ggml_vec_dot_q{4,5,6}_K_q8_K before the float
    steps, as exact float64 integers. -> (T, n, nb, 8)."""
    t, nb = a.d.shape
    p = quad_sums(xq, w.q[n0:n1]).astype(_F64).reshape(t, n1 - n0, nb, 8, 8)  # (.., c, L)
    assert w.scales is not None
    if w.type_id == GGMLType.Q6_K:
        sc = w.scales[n0:n1].astype(_F64).reshape(n1 - n0, nb, 8, 2)  # sc[n, b, i, j] = scale 2i+j
        sumi = np.einsum("tnbcl,nbcl->tnbl", p, np.repeat(sc, 4, axis=-1))  # sc[2c + L // 4]
        bs = a.bsums.astype(_F64).reshape(t, 1, nb, 8, 2)  # bsums[2L + j]
        return sumi - 32.0 * (sc[None] * bs).sum(-1)  # q8sclsub: lane L, scales 2L, 2L+1
    sc = w.scales[n0:n1].astype(_F64)  # (n, b, s): sub-block s = register c
    return np.einsum("tnbcl,nbc->tnbl", p, sc)


def _steps_first(v: np.ndarray) -> np.ndarray:
    """(T, n, nb, steps) -> (nb * steps, T, n): the accumulation steps in order first."""
    t, n, nb, steps = v.shape
    return v.reshape(t, n, nb * steps).transpose(2, 0, 1)


def vec_dot_kquant(w: WeightCodes, x: np.ndarray) -> np.ndarray:
    """y = x @ w.T as ggml_vec_dot_{q4_K,q5_K,q6_K}_q8_K sums it (module docstring).
    w: codes of an (N, D) Q4_K/Q5_K/Q6_K weight; x: (T, D) -> (T, N) float32."""
    a, xq = _activations(x)
    t, nb = a.d.shape
    n = w.q.shape[0]
    s32 = _sub_sums(a, 32)  # (T, nb, 8)

    def chunk(n0: int, n1: int) -> np.ndarray:
        sumi = _kquant_lane_sums(w, a, xq, n0, n1).astype(_F32)  # cvtepi32_ps
        d = a.d[:, None, :] * w.d[None, n0:n1, :]  # (T, n, nb): y[i].d * x[i].d
        acc = fma_chain(np.moveaxis(d, 2, 0)[..., None], np.moveaxis(sumi, 2, 0))  # (T, n, 8)
        if w.type_id == GGMLType.Q6_K:
            return hsum_float_8(acc)
        assert w.dmin is not None and w.mins is not None
        dm = (-a.d)[:, None, :] * w.dmin[None, n0:n1, :]  # -y[i].d * x[i].dmin
        pm = s32[:, None, :, :] * w.mins[None, n0:n1].astype(np.int64)  # (T, n, nb, 8)
        if w.type_id == GGMLType.Q4_K:
            pairs = (pm[..., 0::2] + pm[..., 1::2]).astype(_F32)  # _mm_madd_epi16: 4 lanes
            accm = fma_chain(np.moveaxis(dm, 2, 0)[..., None], np.moveaxis(pairs, 2, 0))
            return hsum_float_8(acc) + hsum_float_4(accm)
        summs = fma_chain(np.moveaxis(dm, 2, 0), np.moveaxis(pm.sum(-1).astype(_F32), 2, 0))
        return hsum_float_8(acc) + summs

    return by_row_chunks(chunk, n, t, nb * 64)


def tiled_kquant(w: WeightCodes, x: np.ndarray) -> np.ndarray:
    """y = x @ w.T as llama.cpp's tiled K-quant matmul (VNNI microkernel) sums it (module
    docstring). w: codes of an (N, D) Q4_K/Q5_K/Q6_K weight; x: (T, D) -> (T, N)."""
    a, xq = _activations(x)
    t, nb = a.d.shape
    n = w.q.shape[0]
    q6 = w.type_id == GGMLType.Q6_K
    size, bias = (16, 32) if q6 else (32, 0)
    s = _sub_sums(a, size)[:, None]  # (T, 1, nb, subs)
    scales, mins, dmin = w.scales, w.mins, w.dmin
    assert scales is not None

    def chunk(n0: int, n1: int) -> np.ndarray:
        raw = group_sums(xq, w.q[n0:n1], size).astype(np.int64).reshape(t, n1 - n0, nb, -1)
        s1 = (scales[None, n0:n1].astype(np.int64) * (raw - bias * s)).sum(-1)
        r = s1.astype(_F32) * w.d[None, n0:n1, :]  # (T, n, nb)
        if not q6:
            assert dmin is not None and mins is not None
            s2 = (mins[None, n0:n1].astype(np.int64) * s).sum(-1).astype(_F32)
            r = fma(-dmin[None, n0:n1, :], s2, r)  # _mm512_fnmadd_ps
        return fma_chain(np.moveaxis(r, 2, 0), a.d.T[:, :, None])  # buf, per block

    return by_row_chunks(chunk, n, t, nb * QK_K // size)


def q4_k_8x8_matmul(w: WeightCodes, x: np.ndarray, *, gemm: bool) -> np.ndarray:
    """y = x @ w.T as the repacked q4_K_8x8 GEMM (gemm=True: accumulates per pair of
    sub-blocks) or GEMV (per block) sums it (module docstring). w: codes of an (N, D)
    Q4_K weight; x: (T, D) -> (T, N) float32."""
    a, xq = _activations(x)
    t, nb = a.d.shape
    n = w.q.shape[0]
    s32 = _sub_sums(a, 32)[:, None]  # (T, 1, nb, 8)
    steps = 4 if gemm else 1  # float accumulations per block
    scales, mins, dmin = w.scales, w.mins, w.dmin
    assert scales is not None and mins is not None and dmin is not None

    def chunk(n0: int, n1: int) -> np.ndarray:
        raw = group_sums(xq, w.q[n0:n1], 32).astype(np.int64).reshape(t, n1 - n0, nb, 8)
        iacc = (scales[None, n0:n1].astype(np.int64) * raw).reshape(t, n1 - n0, nb, steps, -1).sum(-1)
        imin = (mins[None, n0:n1].astype(np.int64) * s32).reshape(t, n1 - n0, nb, steps, -1).sum(-1)
        dd = w.d[None, n0:n1, :] * a.d[:, None, :]  # col_scale * row_scale
        dm = dmin[None, n0:n1, :] * a.d[:, None, :]
        # steps in order: (block, pair) flattened
        acc = fma_chain(_steps_first(iacc.astype(_F32)), _steps_first(np.repeat(dd[..., None], steps, -1)))
        accm = fma_chain(_steps_first(imin.astype(_F32)), _steps_first(np.repeat(dm[..., None], steps, -1)))
        return acc - accm

    return by_row_chunks(chunk, n, t, nb * 8)


def vec_dot_ternary(w: WeightCodes, x: np.ndarray) -> np.ndarray:
    """y = x @ w.T as ggml_vec_dot_tq{1,2}_0_q8_K sum it (module docstring); I2_S alike.
    w: codes of an (N, D) TQ1_0/TQ2_0/I2_S weight; x: (T, D) -> (T, N) float32."""
    a, xq = _activations(x)
    t, nb = a.d.shape
    n = w.q.shape[0]
    ysum = a.bsums.reshape(t, nb, 8, 2).sum(-1).astype(_F32)[:, None]  # (T, 1, nb, 8)

    def chunk(n0: int, n1: int) -> np.ndarray:
        lanes = strided_lane_sums(xq, w.q[n0:n1]) - ysum  # (T, n, nb, 8), exact
        d = a.d[:, None, :] * w.d[None, n0:n1, :]  # y[i].d * x[i].d
        sumf = fma_chain(np.moveaxis(lanes, 2, 0), np.moveaxis(d, 2, 0)[..., None])  # (T, n, 8)
        return hsum_float_8(sumf)

    return by_row_chunks(chunk, n, t, nb * 8)
