"""Matmul micro-benchmark: GFLOP/s of the C kernels per weight type and ISA vs numpy.

Not a test (timings are never asserted). `matmul_bench()` prints one table and returns its
rows; the harness wires it into `bitnet-compat bench`. Run alone:
    python -m bitnet_kernels.bench
numpy's figure is `x @ W.T` on the weight already dequantized to float32 (BLAS, what
`bitnet.ops.NumpyBackend` does after its first call), i.e. the reference's best case.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bitnet import quants
from bitnet.ggml_types import GGML_TYPES_BY_NAME
from bitnet.ops import QTensor

__all__ = ["random_weight_bytes", "matmul_bench", "read_bandwidth", "DEFAULT_TYPES"]

DEFAULT_TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K", "TQ2_0", "TQ1_0", "I2_S")
TERNARY = ("TQ1_0", "TQ2_0", "I2_S")
# types without a quantizer in bitnet.quants: random bytes with the fp16 scales rewritten.
# (offset of each fp16 scale field in the block, its magnitude)
_SCALE_FIELDS = {"Q4_K": ((0, 2e-2), (2, 2e-3)), "Q6_K": ((208, 2e-3),)}


def random_weight_bytes(type_name: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """The bytes of a random (n, d) weight of `type_name`.

    Quantizable types quantize N(0, 1) floats (ternary types: {-1, 0, +1} * 0.7, the
    shape of BitNet weights); Q4_K / Q6_K are random blocks whose d/dmin are small
    positive fp16 values, so every code and sub-scale pattern occurs.
    """
    t = GGML_TYPES_BY_NAME[type_name]
    if type_name in _SCALE_FIELDS:
        blocks = rng.integers(0, 256, size=(n * d // t.block_size, t.type_size), dtype=np.uint8)
        for off, mag in _SCALE_FIELDS[type_name]:
            scale = np.asarray(rng.uniform(0.5, 1.5, size=blocks.shape[0]) * mag, dtype=np.float16)
            blocks[:, off : off + 2] = scale.view(np.uint8).reshape(-1, 2)
        return blocks.reshape(-1)
    w = rng.standard_normal((n, d)).astype(np.float32)
    if type_name in TERNARY:
        w = (np.sign(w) * (np.abs(w) > 0.6) * 0.7).astype(np.float32)
    return quants.quantize(w, t.id)


def _time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (and the numpy backend's dequantization cache)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_bench(
    types: Sequence[str] = DEFAULT_TYPES,
    shapes: Sequence[Tuple[int, int, int]] = ((2048, 2048, 1), (2048, 2048, 64)),
    isas: Optional[Sequence[str]] = None,
    n_threads: Optional[int] = None,
    repeat: int = 5,
    activation_quant: str = "peer",
) -> List[Dict[str, object]]:
    """Print and return GFLOP/s (2*N*D*T / best time) per type, shape (N, D, T) and ISA,
    beside numpy's float32 BLAS matmul on the dequantized weight."""
    import bitnet_kernels as opt

    rng = np.random.default_rng(0)
    rows: List[Dict[str, object]] = []
    if not opt.available():
        print(f"bitnet_kernels unavailable: {opt.unavailable_reason()}")
        return rows
    isas = list(isas) if isas else opt.supported_isas()
    saved = os.environ.get("BITNET_ISA")
    header = f"{'type':6} {'N x D x T':>18} " + " ".join(f"{i:>8}" for i in isas) + f" {'numpy':>8}  GFLOP/s"
    print(header)
    try:
        for name in types:
            for n, d, t in shapes:
                tid = GGML_TYPES_BY_NAME[name].id
                w = QTensor("bench", tid, (d, n), random_weight_bytes(name, n, d, rng))
                x = rng.standard_normal((t, d)).astype(np.float32)
                flop = 2.0 * n * d * t
                row: Dict[str, object] = {"type": name, "N": n, "D": d, "T": t}
                for isa in isas:
                    os.environ["BITNET_ISA"] = isa
                    be = opt.OptimizedBackend(activation_quant=activation_quant, n_threads=n_threads)
                    row[isa] = flop / _time(partial(be.matmul, w, x), repeat) / 1e9
                wf = quants.dequantize(w.data, w.type_id, (n, d))
                row["numpy"] = flop / _time(partial(np.matmul, x, wf.T), repeat) / 1e9
                rows.append(row)
                cells = " ".join(f"{row[i]:8.1f}" for i in isas)
                print(f"{name:6} {f'{n}x{d}x{t}':>18} {cells} {row['numpy']:8.1f}")
    finally:
        if saved is None:
            os.environ.pop("BITNET_ISA", None)
        else:
            os.environ["BITNET_ISA"] = saved
    return rows


def read_bandwidth(n_threads: int = 1, megabytes: int = 512, repeat: int = 5) -> float:
    """GB/s of reading a `megabytes` buffer (larger than any cache) with n_threads, best of
    `repeat`: how fast memory delivers weights to the kernels on this machine."""
    import bitnet_kernels as opt

    if not opt.available():
        raise RuntimeError(f"bitnet_kernels unavailable: {opt.unavailable_reason()}")
    buf = np.ones(megabytes << 20, dtype=np.uint8)  # written: every page really mapped
    ptr = opt._ffi.from_buffer(buf)
    seconds = _time(lambda: opt._lib.bn_read_bytes(ptr, buf.nbytes, n_threads), repeat)
    return buf.nbytes / seconds / 1e9


if __name__ == "__main__":
    matmul_bench()
