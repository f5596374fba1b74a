"""Which kernel llama.cpp runs for a matmul, and that kernel's float order in numpy.

ggml_compute_forward_mul_mat (ggml-cpu.c) on the x86 AVX-512 build llama-cpp-python is
built with, for a weight W (N output features x D inputs) and T activation rows (the
rows of this matmul: in the last layer's FFN llama.cpp keeps only its output rows,
inp_out_ids, so T can be smaller there than the batch):

1. Weights llama.cpp holds in its CPU_REPACK buffer take repack.cpp's kernels
   (ggml_repack_get_optimal_repack_type): Q4_0 with N % 8 == 0 -> q4_0_8x8 (GEMM for
   the first 4*floor(T/4) rows, GEMV for the rest, one order: `dots32.q4_0_8x8_matmul`);
   Q4_K with N % 8 == 0 -> q4_K_8x8 (GEMM per sub-block pair, GEMV per block:
   `dotsk.q4_k_8x8_matmul`). A weight is in that buffer when its graph op is MUL_MAT: not
   the token embedding that the `bitnet` arch multiplies directly as its output matrix
   (the llama arch duplicates a tied embedding into the output buffer, so it repacks).
2. Q4_K (not repacked), Q5_K, Q6_K with T >= 8 rows: the tiled matmul
   (`dotsk.tiled_kquant`).
3. F16, F32 with T >= 2, D % 16 == 0, N % 4 == 0; Q8_0, Q4_0, Q5_0 with T >= 2:
   llamafile's tinyBLAS (`floatdot`, `dots32.lanes8_matmul`: tinyBLAS_Q0_AVX sums like the
   vec_dot).
4. Otherwise type_traits_cpu[type].vec_dot per output: `floatdot` (vec_dot_f16 / _f32),
   `dots32.lanes8_matmul`, `dotsk.vec_dot_kquant`, `dotsk.vec_dot_ternary`.

Threads split outputs, never a sum, so the thread count changes no bit. The AVX-512
build runs the __AVX2__ vec_dot code of arch/x86/quants.c (only mul_sum_us8_pairs uses a
VNNI instruction, an exact integer sum).
"""

from __future__ import annotations

import numpy as np

from bitnet.ggml_types import GGMLType
from bitnet.numerics import dots32, dotsk
from bitnet.numerics.codes import WeightCodes
from bitnet.numerics.floatdot import float_dot, uses_tinyblas

_F32 = np.float32

TILED_MIN_ROWS = 8  # ggml_tiled_min_batch
REPACK_TYPES = frozenset({GGMLType.Q4_0, GGMLType.Q4_K})  # x86 repacks among our types
FLOAT_TYPES = frozenset({GGMLType.F16, GGMLType.F32})
EXACT_TYPES = FLOAT_TYPES | dots32.LANES8_TYPES | dotsk.KQUANT_TYPES | dotsk.TERNARY_TYPES


def repacked(type_id: int, n_out: int) -> bool:
    """llama.cpp repacks a weight of this type with n_out output features when it is in
    its repack buffer (x86 with AVX2 or better)."""
    return type_id in REPACK_TYPES and n_out % 8 == 0


def kernel_name(type_id: int, n_out: int, n_in: int, n_rows: int, *, repack: bool) -> str:
    """The llama.cpp kernel (its C symbol) that computes this matmul; `repack` = the weight
    is in the repack buffer (see `repacked`)."""
    t = GGMLType(type_id)
    name = t.name.lower().replace("_k", "_K")  # ggml's spelling: q4_K, tq2_0
    if repack and repacked(t, n_out):
        kinds = (["gemm"] if n_rows >= 4 else []) + (["gemv"] if n_rows % 4 else [])  # gemv: T % 4 rows
        act = "K" if t == GGMLType.Q4_K else "0"
        return " + ".join(f"ggml_{k}_{name}_8x8_q8_{act}" for k in kinds)
    if t in dotsk.KQUANT_TYPES and n_rows >= TILED_MIN_ROWS:
        return "ggml_compute_forward_mul_mat_tiled"
    if t in FLOAT_TYPES:
        return "tinyBLAS" if uses_tinyblas(n_rows, n_out, n_in) else f"ggml_vec_dot_{name}"
    if t in (GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q5_0) and n_rows >= 2:
        return "tinyBLAS_Q0_AVX"
    if t == GGMLType.I2_S:
        return "ggml_vec_dot_tq2_0_q8_K (I2_S: TQ2_0's order)"
    vec_dot_type = {GGMLType.Q4_1: "q8_1", GGMLType.Q5_1: "q8_1"}.get(
        t, "q8_K" if t in dotsk.KQUANT_TYPES | dotsk.TERNARY_TYPES else "q8_0")
    return f"ggml_vec_dot_{name}_{vec_dot_type}"


def float_matmul(wf: np.ndarray, x: np.ndarray, *, f16: bool) -> np.ndarray:
    """ggml_mul_mat of an F16 (f16=True: x rounded to f16 first) or F32 weight, summed as
    tinyBLAS or the vec_dot (`floatdot`). wf: (N, D) float32 (f16 values when f16);
    x: (T, D) -> (T, N)."""
    x = np.asarray(x, dtype=_F32)
    if f16:
        x = x.astype(np.float16).astype(_F32)  # (T, D)
    t, n = x.shape[0], wf.shape[0]
    tiny = uses_tinyblas(t, n, wf.shape[1])
    y = np.empty((t, n), dtype=_F32)
    step = max(1, (1 << 22) // max(1, t * wf.shape[1]))  # bound the (T, n, D) products
    for n0 in range(0, n, step):
        a, b = np.broadcast_arrays(x[:, None, :], wf[None, n0 : n0 + step, :])
        y[:, n0 : n0 + step] = float_dot(a, b, tinyblas=tiny, f16=f16)
    return y


def _kquant(w: WeightCodes, x: np.ndarray, repack: bool) -> np.ndarray:
    """A Q4_K/Q5_K/Q6_K matmul: q4_K_8x8 GEMM + GEMV when repacked, else tiled or vec_dot."""
    t = x.shape[0]
    if repack:
        n4 = t - t % 4  # repack.cpp forward_mul_mat_one_chunk: gemm rows, then gemv rows
        parts = []
        if n4:
            parts.append(dotsk.q4_k_8x8_matmul(w, x[:n4], gemm=True))
        if t > n4:
            parts.append(dotsk.q4_k_8x8_matmul(w, x[n4:], gemm=False))
        return np.concatenate(parts, axis=0)
    if t >= TILED_MIN_ROWS:
        return dotsk.tiled_kquant(w, x)
    return dotsk.vec_dot_kquant(w, x)


def quantized_matmul(w: WeightCodes, x: np.ndarray, *, repack: bool) -> np.ndarray:
    """ggml_mul_mat(W, x) for a quantized weight, in the order of the kernel llama.cpp picks
    (module docstring). w: `weight_codes` of an (N, D) weight; x: (T, D) float32;
    repack: the weight is in llama.cpp's repack buffer. -> (T, N) float32."""
    t = GGMLType(w.type_id)
    x = np.asarray(x, dtype=_F32)
    rp = repack and repacked(t, w.q.shape[0])
    if t == GGMLType.Q4_0 and rp:
        return dots32.q4_0_8x8_matmul(w, x)
    if t in dots32.LANES8_TYPES:
        return dots32.lanes8_matmul(w, x)
    if t in dotsk.KQUANT_TYPES:
        return _kquant(w, x, rp)
    if t in dotsk.TERNARY_TYPES:
        return dotsk.vec_dot_ternary(w, x)
    raise ValueError(f"no llama.cpp float order for {t.name} weights")

