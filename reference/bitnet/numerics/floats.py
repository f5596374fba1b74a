"""The float32 building blocks llama.cpp's x86 kernels are made of, rounded as the CPU does.

Every function here is one instruction sequence of ggml's CPU backend (AVX2 / AVX-512
intrinsics, libm calls), written in numpy so that its float32 result carries the same
bits:

- `fma`: one fused multiply-add (_mm256_fmadd_ps / _mm512_fmadd_ps / a contracted a*b+c),
  rounded once; exact, not a float64 approximation (see its docstring). `fma_chain`: a
  loop of them, the accumulation of a SIMD dot product.
- `hsum_float_8`: arch/x86/quants.c hsum_float_8, also llamafile's hsum(__m256).
- `hsum_float_4`: the 4-lane tail of hsum_float_8 (_mm_movehl_ps + _mm_movehdup_ps).
- `reduce_add_16`: GCC's _mm512_reduce_add_ps (llamafile's hsum(__m512), vec_dot_f16).
- `v_expf`: vec.h ggml_v_expf, AVX-512 variant.
- `cosf`, `sinf`, `powf`, `logf`, `expf`: the C library's, as ggml_rope_cache_init and the
  scalar tails of ggml's vector loops call them.
- `f16`: round to IEEE half and back (F16C _mm512_cvtps_ph with round-to-nearest-even).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Optional

import numpy as np

_F32 = np.float32
_F64 = np.float64

# --------------------------------------------------------------------------------------
# libm (cosf, sinf, powf as ggml calls them)


def _load_libm() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("m")
    try:
        lib = ctypes.CDLL(name or "libm.so.6")
    except OSError:
        return None
    for fn, nargs in (("cosf", 1), ("sinf", 1), ("powf", 2), ("expf", 1), ("logf", 1)):
        f = getattr(lib, fn)
        f.restype = ctypes.c_float
        f.argtypes = [ctypes.c_float] * nargs
    return lib


_libm = _load_libm()


def cosf(x: float) -> float:
    """libm cosf (float64 cos rounded to float32 where libm cannot be loaded)."""
    return float(_libm.cosf(x)) if _libm is not None else float(_F32(np.cos(_F64(x))))


def sinf(x: float) -> float:
    """libm sinf (float64 sin rounded to float32 where libm cannot be loaded)."""
    return float(_libm.sinf(x)) if _libm is not None else float(_F32(np.sin(_F64(x))))


def logf(x: float) -> float:
    """libm logf (float64 log rounded to float32 where libm cannot be loaded)."""
    return float(_libm.logf(x)) if _libm is not None else float(_F32(np.log(_F64(x))))


def expf(x: np.ndarray) -> np.ndarray:
    """libm expf elementwise (for the scalar tails of ggml's vector loops; slow: one call
    per element). float64 exp rounded to float32 where libm cannot be loaded."""
    x = np.asarray(x, dtype=_F32)
    if _libm is None:
        return np.exp(x.astype(_F64)).astype(_F32)
    f = _libm.expf
    return np.array([f(float(v)) for v in x.reshape(-1)], dtype=_F32).reshape(x.shape)


def powf(x: float, y: float) -> float:
    """libm powf (float64 pow rounded to float32 where libm cannot be loaded)."""
    if _libm is not None:
        return float(_libm.powf(x, y))
    return float(_F32(_F64(x) ** _F64(y)))


# --------------------------------------------------------------------------------------
# rounding


def f16(x: np.ndarray) -> np.ndarray:
    """x rounded to IEEE half (nearest, ties to even) and back to float32."""
    return np.asarray(x, dtype=_F32).astype(np.float16).astype(_F32)


def _add_exact(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32(p + c) rounded once, for float64 p (an exact product) and float32 c: the
    float64 sum is made round-to-odd (TwoSum gives its rounding error; an inexact sum
    with an even last bit moves one ulp towards the exact value), and a round-to-odd
    float64 rounds to the correctly rounded float32 (53 >= 2 * 24 + 2)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = p + c  # float64
        t = s - p
        err = (p - (s - t)) + (c - t)  # exact: s + err == p + c (NaN when s is not finite)
        if np.any(np.abs(err) > 0):
            fix = (np.abs(err) > 0) & ((np.asarray(s).view(np.int64) & 1) == 0)
            s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return np.asarray(s).astype(_F32)


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 a*b + c rounded once (broadcasting), as the FMA instruction computes it:
    exact (the float32 product is exact in float64, the sum see `_add_exact`), not ~2^-29
    off as a plain float64 a*b + c is on double-rounding ties."""
    p = np.asarray(a, dtype=_F64) * np.asarray(b, dtype=_F64)
    return _add_exact(p, np.asarray(c, dtype=_F32))


def fma_chain(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """acc = fma(a[i], b[i], acc) for i = 0, 1, ... along the first axis, from acc = 0:
    the accumulation loop of a SIMD dot product. a, b: (steps, ...) broadcastable float32
    -> (...) float32."""
    p = np.asarray(a, dtype=_F64) * np.asarray(b, dtype=_F64)  # every step's exact product
    acc = np.zeros(p.shape[1:], dtype=_F32)
    for i in range(p.shape[0]):
        acc = _add_exact(p[i], acc)
    return acc


# --------------------------------------------------------------------------------------
# horizontal reductions


def hsum_float_4(v: np.ndarray) -> np.ndarray:
    """(v0 + v2) + (v1 + v3) over the last axis (4 lanes): _mm_add_ps(x, _mm_movehl_ps(x, x))
    then _mm_add_ss(x, _mm_movehdup_ps(x)). (..., 4) -> (...)."""
    v = np.asarray(v, dtype=_F32)
    return (v[..., 0] + v[..., 2]) + (v[..., 1] + v[..., 3])


def hsum_float_8(v: np.ndarray) -> np.ndarray:
    """hsum_float_8 (arch/x86/quants.c) and llamafile's hsum(__m256): the high 128-bit half
    added to the low one, then `hsum_float_4`. (..., 8) -> (...)."""
    v = np.asarray(v, dtype=_F32)
    return hsum_float_4(v[..., 4:8] + v[..., 0:4])


def reduce_add_16(v: np.ndarray) -> np.ndarray:
    """GCC's _mm512_reduce_add_ps over the last axis (16 lanes): halves added 256-bit,
    128-bit, then 64-bit and the last pair. (..., 16) -> (...)."""
    v = np.asarray(v, dtype=_F32)
    a = v[..., 8:16] + v[..., 0:8]
    b = a[..., 4:8] + a[..., 0:4]
    c = b[..., 2:4] + b[..., 0:2]
    return c[..., 1] + c[..., 0]


# --------------------------------------------------------------------------------------
# ggml_v_expf

# constants of vec.h ggml_v_expf (AVX-512 variant)
_EXP_R = _F32(float.fromhex("0x1.8p23"))
_EXP_LOG2E = _F32(float.fromhex("0x1.715476p+0"))
_EXP_LN2_HI = _F32(float.fromhex("0x1.62e4p-1"))
_EXP_LN2_LO = _F32(float.fromhex("0x1.7f7d1cp-20"))
_EXP_C = [_F32(float.fromhex(c)) for c in ("0x1.ffffecp-1", "0x1.fffdb6p-2", "0x1.555e66p-3",
                                           "0x1.573e2ep-5", "0x1.0e4020p-7")]


def v_expf(x: np.ndarray) -> np.ndarray:
    """ggml_v_expf (vec.h, AVX-512): exp(x) in float32 as llama.cpp's vector code computes
    it (a polynomial after range reduction, _mm512_scalef_ps; not libm's expf)."""
    x = np.asarray(x, dtype=_F32)
    with np.errstate(invalid="ignore", over="ignore"):
        z = fma(x, _EXP_LOG2E, _EXP_R)
        n = z - _EXP_R
        b = fma(-n, _EXP_LN2_LO, fma(-n, _EXP_LN2_HI, x))
        u = b * b
        c0, c1, c2, c3, c4 = _EXP_C
        j = fma(fma(fma(c4, b, c3), u, fma(c2, b, c1)), u, fma(c0, b, _F32(1.0)))
        big = ~(np.abs(n) <= 192)  # also NaN n (x = -inf gives n = -inf: big, -> 0)
        n_int = np.where(big, 0, n).astype(np.int32)
        res = np.ldexp(j, n_int).astype(_F32)  # _mm512_scalef_ps(j, n)
        alt = np.where(n <= 0, _F32(0.0), _F32(np.inf)).astype(_F32)
    return np.where(big, alt, res)
