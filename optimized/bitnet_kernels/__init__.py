"""bitnet_kernels: hand-vectorized C kernels behind the `bitnet.ops` Backend interface.

The C library (optimized/bitnet_kernels/kernels/, one file per kernel family, built by cffi
through setup.py's build hook) holds a scalar, an AVX2 and an AVX-512 (VNNI) variant of each
kernel in ONE binary (per-function target attributes, no -march=native) and picks per call
from CPUID; aarch64 builds get NEON variants (checked under qemu by qemu_aarch64_selftest.sh).
`BITNET_ISA=scalar|avx2|avx512` forces a variant (read on every call, so tests switch it);
`kernel_info()` says which variant each kernel runs (a kernel without a variant for the
requested ISA runs the next lower one). When the extension is missing (no compiler, no cffi,
failed build) `available()` is False, `unavailable_reason()` says why, and `backend_name()` /
`make_backend()` give the numpy reference; `BITNET_BACKEND=reference|optimized` overrides.

Modules: `backend` (OptimizedBackend: the ops, in llama.cpp's float order with
activation_quant="peer" or the float path), `fused` (every layer of a batch in one C call),
`bench` (GFLOP/s per type and ISA), `selftest` (every variant against the scalar one and the
numpy reference; `python -m bitnet_kernels.selftest`), `tokenizer_engine` and
`grammar_engine` (the tokenizer and grammar hot paths).

The llama.cpp order (kernels/bn_peer_*.c) is exact whatever the ISA: every variant, scalar
included, gives llama.cpp 0.3.36's x86 AVX-512 bits (tests/test_peer_exact_engine.py checks
them against libggml itself and against bitnet.numerics.PeerBackend).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from bitnet.ggml_types import GGML_TYPES, GGMLType
from bitnet.ops import NumpyBackend

__all__ = [
    "ISA_NAMES",
    "OptimizedBackend",
    "available",
    "unavailable_reason",
    "backend_name",
    "make_backend",
    "kernel_info",
    "supported_isas",
    "cpu_isa",
]

ISA_NAMES = ("scalar", "avx2", "avx512", "neon")  # index = the C enum
PARALLEL_MIN_MACS = 4_000_000  # smaller matmuls run on the calling thread (backend.py)
T = GGMLType
_STRUCTS = {  # C struct -> the ggml type whose bytes-per-block it must equal
    "block_q8_0": T.Q8_0, "block_q4_0": T.Q4_0, "block_q4_1": T.Q4_1, "block_q4_K": T.Q4_K,
    "block_q6_K": T.Q6_K, "block_q8_K": T.Q8_K, "block_tq1_0": T.TQ1_0, "block_tq2_0": T.TQ2_0,
    "block_i2_s": T.I2_S,
}
del T

_ffi: Any = None
_lib: Any = None
_reason = ""


def _load() -> None:
    global _ffi, _lib, _reason
    if os.environ.get("BITNET_OPTIMIZED_DISABLE", "") == "1":
        _reason = "disabled by BITNET_OPTIMIZED_DISABLE=1"
        return
    try:
        from bitnet_kernels._kernels import ffi, lib
    except ImportError as e:
        _reason = (
            f"the C extension bitnet_kernels._kernels is not importable ({e}); to build it, "
            "reinstall where a C compiler and cffi are available: "
            "`pip install --force-reinstall --no-binary bitnet-compat bitnet-compat`"
        )
        return
    for struct, type_ in _STRUCTS.items():
        if ffi.sizeof(struct) != GGML_TYPES[type_].type_size:
            _reason = (
                f"C struct {struct} is {ffi.sizeof(struct)} bytes but ggml_types says "
                f"{type_.name} blocks are {GGML_TYPES[type_].type_size}"
            )
            return
    _ffi, _lib = ffi, lib


_load()


def available() -> bool:
    """True when the C kernels are built and loaded."""
    return _lib is not None


def unavailable_reason() -> str:
    """Why `available()` is False ("" when it is True)."""
    return _reason


def backend_name() -> str:
    """"optimized" or "reference": BITNET_BACKEND if set, else optimized when available.

    BITNET_BACKEND=optimized on a machine without the extension gives "reference" (the
    reason is in `unavailable_reason()`); any other value raises ValueError.
    """
    want = os.environ.get("BITNET_BACKEND", "").strip().lower()
    if want not in ("", "optimized", "reference"):
        raise ValueError(f"BITNET_BACKEND={want!r}; expected 'optimized' or 'reference'")
    if want == "reference" or not available():
        return "reference"
    return "optimized"


def make_backend(*, activation_quant: str = "none", n_threads: Optional[int] = None) -> NumpyBackend:
    """The backend `backend_name()` selects, built with these options."""
    if backend_name() == "optimized":
        return OptimizedBackend(activation_quant=activation_quant, n_threads=n_threads)
    return NumpyBackend(activation_quant=activation_quant)


# --------------------------------------------------------------------------------------
# ISA selection

_applied_isa: Optional[str] = None


def cpu_isa() -> str:
    """The best variant this CPU runs ("scalar" when the extension is missing)."""
    return ISA_NAMES[_lib.bn_cpu_isa()] if available() else "scalar"


def supported_isas() -> List[str]:
    """The variants this CPU can run, lowest first (BITNET_ISA accepts these)."""
    best = cpu_isa()
    if best == "neon":
        return ["scalar", "neon"]
    return list(ISA_NAMES[: ISA_NAMES.index(best) + 1])


def _sync_isa() -> None:
    """Apply BITNET_ISA (unset = best) to the library if it changed since the last call."""
    global _applied_isa
    want = os.environ.get("BITNET_ISA", "").strip().lower()
    if want == _applied_isa:
        return
    if want and want not in ISA_NAMES:
        raise ValueError(f"BITNET_ISA={want!r}; expected one of {', '.join(ISA_NAMES)}")
    if want and want not in supported_isas():
        raise ValueError(f"BITNET_ISA={want}: this CPU runs only {', '.join(supported_isas())}")
    _lib.bn_set_isa(ISA_NAMES.index(want) if want else 99)
    _applied_isa = want


def kernel_info() -> Dict[str, str]:
    """Kernel name -> the ISA variant it runs now (honours BITNET_ISA); plus "cpu" and
    "threads". Without the extension every entry says "reference (numpy)"."""
    if not available():
        return {"backend": "reference (numpy)", "reason": _reason}
    _sync_isa()
    info = {
        _ffi.string(_lib.bn_kernel_name(k)).decode(): ISA_NAMES[_lib.bn_kernel_variant(k)]
        for k in range(_lib.bn_kernel_count())
    }
    info["cpu"] = cpu_isa()
    info["threads"] = "pthreads pool, output rows split across n_threads"
    return info



from bitnet_kernels.backend import OptimizedBackend  # noqa: E402  (needs the loader above)
