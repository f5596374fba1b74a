"""Self-test of the loaded C kernels: the C-level bn_selftest (every SIMD variant against
the scalar *_ref, guard floats around outputs), then every kernel against the numpy
reference under each ISA variant in turn.

Run as `python -m bitnet_kernels.selftest` (exit status = number of failures, 0 = pass).
The sanitizer test runs it in a subprocess against an ASan/UBSan build; the optional
aarch64 qemu script runs it on the NEON build. Shapes are odd on purpose (N and T not
multiples of any SIMD width, a single block, D = 3 blocks for the 2-blocks-per-register
AVX-512 loops). Thresholds as tests/test_optimized_kernels.py (reasons there).
"""

from __future__ import annotations

import os
import sys
from typing import List

import numpy as np

from bitnet import quants
from bitnet.ggml_types import GGML_TYPES_BY_NAME
from bitnet.metrics import nmse_total
from bitnet.ops import ROPE_NEOX, ROPE_NORMAL, NumpyBackend, QTensor, RopeParams
from bitnet_kernels.bench import DEFAULT_TYPES, random_weight_bytes

NMSE_FLOAT_PATH = 1e-9
NMSE_PEER = 5e-4  # vs the float truth, outputs of >= 32 values
NMSE_NORM = 1e-7
NMSE_SOFTMAX = 1e-6


def run_selftest(verbose: bool = True) -> int:
    """Number of failed checks (0 = all pass)."""
    import bitnet_kernels as opt

    if not opt.available():
        print(f"bitnet_kernels unavailable: {opt.unavailable_reason()}")
        return 1
    rng = np.random.default_rng(1234)
    failures: List[str] = []
    c_failures = opt._lib.bn_selftest(1 if verbose else 0)  # SIMD vs scalar, in C, with guards
    if c_failures:
        failures.append(f"C self-test (bn_selftest): {c_failures} failures")
    ref = NumpyBackend()
    saved = os.environ.get("BITNET_ISA")
    saved_macs, opt.PARALLEL_MIN_MACS = opt.PARALLEL_MIN_MACS, 0  # thread the small shapes too
    try:
        for isa in opt.supported_isas():
            os.environ["BITNET_ISA"] = isa
            for name in DEFAULT_TYPES:
                t = GGML_TYPES_BY_NAME[name]
                for n, blocks, tt in ((1, 1, 1), (7, 3, 5), (33, 2, 2)):
                    d = blocks * t.block_size if t.block_size > 1 else 37 * blocks
                    w = QTensor("w", t.id, (d, n), random_weight_bytes(name, n, d, rng))
                    wf = quants.dequantize(w.data, t.id, (n, d)).astype(np.float64)
                    x = rng.standard_normal((tt, d)).astype(np.float32)
                    want = x.astype(np.float64) @ wf.T
                    for aq, limit in (("none", NMSE_FLOAT_PATH), ("peer", NMSE_PEER)):
                        got = opt.OptimizedBackend(activation_quant=aq, n_threads=3).matmul(w, x)
                        e = nmse_total(got, want)
                        if n * tt >= 32 and not e <= limit:  # NMSE of a few dots is noise
                            failures.append(f"matmul {name} {isa} {aq} N={n} D={d} T={tt}: nmse {e:.3g}")
                        # every SIMD variant computes what the scalar *_ref computes
                        os.environ["BITNET_ISA"] = "scalar"
                        base = opt.OptimizedBackend(activation_quant=aq).matmul(w, x)
                        os.environ["BITNET_ISA"] = isa
                        e = nmse_total(got, base)
                        if not e <= (NMSE_FLOAT_PATH if n * tt >= 32 else 1e-6):
                            failures.append(f"matmul {name} {isa} {aq} N={n} D={d} T={tt}: vs scalar {e:.3g}")
                    rows = rng.integers(0, n, size=4)
                    got_rows = opt.OptimizedBackend().get_rows(w, rows)
                    if not np.array_equal(got_rows, wf.astype(np.float32)[rows]):
                        failures.append(f"get_rows {name} {isa}: not bit-identical")
            be = opt.OptimizedBackend()
            for d in (1, 7, 64, 577):
                x = (rng.standard_normal((3, d)) * 3).astype(np.float32)
                g = rng.standard_normal(d).astype(np.float32)
                checks = [
                    ("rms_norm", be.rms_norm(x, g, 1e-6), ref.rms_norm(x, g, 1e-6), NMSE_NORM),
                    ("softmax", be.softmax(x), ref.softmax(x), NMSE_SOFTMAX),
                    ("swiglu", be.swiglu(x, x[::-1]), ref.swiglu(x, x[::-1]), NMSE_SOFTMAX),
                    ("relu2_glu", be.relu2_glu(x, x[::-1]), ref.relu2_glu(x, x[::-1]), NMSE_NORM),
                ]
                for mode in (ROPE_NORMAL, ROPE_NEOX):
                    p = RopeParams(n_dims=4, mode=mode)
                    xr = rng.standard_normal((2, 3, 6)).astype(np.float32)
                    pos = np.array([0, 17])
                    checks.append((f"rope{mode}", be.rope(xr, pos, p), ref.rope(xr, pos, p), NMSE_NORM))
                for what, got, want, limit in checks:
                    e = nmse_total(got, want)
                    if not e <= limit:
                        failures.append(f"{what} {isa} D={d}: nmse {e:.3g}")
    finally:
        opt.PARALLEL_MIN_MACS = saved_macs
        if saved is None:
            os.environ.pop("BITNET_ISA", None)
        else:
            os.environ["BITNET_ISA"] = saved
    if verbose:
        for f in failures:
            print("FAIL", f)
        print(f"selftest: {len(failures)} failures over ISAs {opt.supported_isas()}")
    return len(failures)


if __name__ == "__main__":
    sys.exit(min(run_selftest(), 125))
