"""The C library functions libllama's samplers call, bit for bit: glibc's expf / logf / log2f /
powf / exp (through ctypes where numpy's versions differ in the last bit) and x86's
float -> int conversion.

On a platform without glibc (`LIBM` is None) the math functions fall back to correctly
rounded float64 results, which differ from glibc's in the last bit (measured: expf 0.07%,
logf 0.7%, log2f 0.6% of inputs).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from typing import Optional, SupportsFloat

import numpy as np

f32 = np.float32
INT_MIN = -(2**31)


def _load_libm() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        for fn in ("expf", "logf", "log2f"):
            getattr(lib, fn).restype = ctypes.c_float
            getattr(lib, fn).argtypes = [ctypes.c_float]
        lib.powf.restype = ctypes.c_float
        lib.powf.argtypes = [ctypes.c_float, ctypes.c_float]
    except (OSError, AttributeError):
        return None
    return lib


LIBM = _load_libm()


def logf(x: SupportsFloat) -> np.float32:
    """glibc logf of a float32 scalar."""
    if LIBM is None:
        return f32(np.log(np.float64(f32(x))))
    return f32(LIBM.logf(float(x)))


def log2f(x: SupportsFloat) -> np.float32:
    """glibc log2f of a float32 scalar."""
    if LIBM is None:
        return f32(np.log2(np.float64(f32(x))))
    return f32(LIBM.log2f(float(x)))


def powf(x: SupportsFloat, y: SupportsFloat) -> np.float32:
    """glibc powf of float32 scalars."""
    if LIBM is None:
        with np.errstate(all="ignore"):
            return f32(np.power(np.float64(f32(x)), np.float64(f32(y))))
    return f32(LIBM.powf(float(x), float(y)))


def logf_vec(x: np.ndarray) -> np.ndarray:
    """glibc logf over a float32 array (shape kept)."""
    if LIBM is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x.astype(np.float64)).astype(np.float32)
    fn = LIBM.logf
    return np.array([fn(v) for v in x.tolist()], dtype=np.float32).reshape(x.shape)


def log2f_vec(x: np.ndarray) -> np.ndarray:
    """glibc log2f over a float32 array (shape kept)."""
    if LIBM is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log2(x.astype(np.float64)).astype(np.float32)
    fn = LIBM.log2f
    return np.array([fn(v) for v in x.tolist()], dtype=np.float32).reshape(x.shape)


def expf(x: np.ndarray) -> np.ndarray:
    """glibc expf over a float32 array, bit for bit.

    numpy's float64 exp rounded to float32 is the correctly rounded result; glibc's expf is
    within 1.7 * 2^-34 (relative) of exp before its final rounding, so the two can only differ
    when exp(x) lies near a float32 rounding midpoint. Those elements (a fraction of a percent),
    and the overflow/subnormal ranges, are recomputed with glibc itself.
    """
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        e64 = np.exp(x.astype(np.float64))
        r = e64.astype(np.float32)
        if LIBM is None:
            return r
        r64 = r.astype(np.float64)
        lo = np.nextafter(r, f32(-np.inf)).astype(np.float64)
        hi = np.nextafter(r, f32(np.inf)).astype(np.float64)
        dist = np.minimum(np.abs(e64 - (r64 + lo) * 0.5), np.abs(e64 - (r64 + hi) * 0.5))
        hard = (dist <= np.abs(e64) * 2.0**-31) | (x > 88.0) | ((x < -87.0) & (x > -104.0))
    idx = np.nonzero(hard)[0]
    if idx.size:
        r = r.copy()
        r[idx] = [LIBM.expf(v) for v in x[idx].tolist()]
    return r


def exp_double(v: float) -> float:
    """glibc exp of a double (Python's math.exp), with C's overflow to +inf."""
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def c_int(v: float) -> int:
    """C `int(v)` for a float on x86 (cvttss2si): truncation; NaN/out of range -> INT_MIN."""
    if not math.isfinite(v) or v >= 2.0**31 or v < -(2.0**31):
        return INT_MIN
    return int(v)
