"""Scalar conversions as ggml does them: fp16 / bf16 bits, C's rounding and float -> int
casts (with x86-64's out-of-range results), and the small block helpers every type shares."""

from __future__ import annotations

from typing import Tuple

import numpy as np


def fp16_to_fp32(raw: np.ndarray) -> np.ndarray:
    """GGML_FP16_TO_FP32: (..., 2) little-endian uint8 -> (..., 1) float32, exact.

    subtle: ggml's conversion goes through a float multiply, which quiets signaling NaNs
    (sets bit 22); numpy's cast (and so gguf-py) keeps them signaling. We follow ggml.
    """
    f = np.ascontiguousarray(raw).view("<f2").astype(np.float32)
    bits = f.view(np.uint32)
    return np.where(np.isnan(f), bits | np.uint32(0x00400000), bits).view(np.float32)


def fp32_to_fp16_bits(x: np.ndarray) -> np.ndarray:
    """GGML_FP32_TO_FP16 (ggml-impl.h): float32 -> uint16 bits, round to nearest even.

    numpy's float32 -> float16 cast is the same correctly rounded conversion (subnormals,
    overflow to inf included); only NaN differs: ggml returns sign | 0x7E00 whatever the
    payload, numpy keeps payload bits.
    """
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):  # overflow to inf is the conversion's defined result
        bits = x.astype("<f2").view(np.uint16)
    sign = (x.view(np.uint32) >> np.uint32(16)).astype(np.uint16) & np.uint16(0x8000)
    return np.where(np.isnan(x), sign | np.uint16(0x7E00), bits).astype(np.uint16)


def fp16_bytes(x: np.ndarray) -> np.ndarray:
    """float32 (..., 1) -> the 2 bytes of its ggml fp16, (..., 2) uint8."""
    return fp32_to_fp16_bits(x).astype("<u2").view(np.uint8)


def fp32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """ggml_compute_fp32_to_bf16 (ggml-impl.h): NaN forced quiet, else round to nearest even."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    is_nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
    quiet = (u >> 16) | 64
    return np.where(is_nan, quiet, rounded).astype(np.uint16)


def roundf(x: np.ndarray) -> np.ndarray:
    """C roundf / lroundf on float32: nearest integer, halves away from zero.

    subtle: not np.trunc(x + 0.5): 0.49999997f + 0.5f rounds up to 1.0f in float32.
    a - floor(a) is exact in float32, so the tie test is exact.
    """
    a = np.abs(x)
    f = np.floor(a)
    return np.copysign(np.where(a - f >= 0.5, f + 1, f), x).astype(np.float32)


def nearest_int(x: np.ndarray) -> np.ndarray:
    """ggml's nearest_int (ggml-quants.c): float32 -> int32 via the 1.5 * 2**23 trick.

    For |x| <= 4194303 this is round-half-to-even; beyond (and for inf/NaN) it is the
    same bit arithmetic the C does, so degenerate inputs give the C's (garbage) values.
    """
    val = (np.asarray(x, dtype=np.float32) + np.float32(12582912.0)).view(np.int32)
    return (val & 0x007FFFFF) - 0x00400000


def c_float_to_int32(v: np.ndarray) -> np.ndarray:
    """(int)v for float32 v, as x86-64 does it (cvttss2si): truncate toward zero;
    NaN, inf and out-of-range give INT32_MIN. (Undefined behaviour in C.)"""
    t = np.trunc(np.asarray(v, dtype=np.float64))
    in_range = np.isfinite(t) & (t >= -(2.0**31)) & (t < 2.0**31)
    return np.where(in_range, t, -(2.0**31)).astype(np.int64).astype(np.int32)


def c_float_to_int8(v: np.ndarray) -> np.ndarray:
    """(int8_t)v for float32 v as llama.cpp's x86-64 build computes it: the low byte of
    (int)v. For the sane range (-128, 128) that is plain truncation toward zero."""
    return c_float_to_int32(v).astype(np.int8)  # numpy int32 -> int8 keeps the low byte


def inverse(d: np.ndarray) -> np.ndarray:
    """`const float id = d ? 1.0f/d : 0.0f;` in float32 (1/subnormal may overflow to inf)."""
    nonzero = d != 0
    with np.errstate(over="ignore"):
        inv = np.float32(1.0) / np.where(nonzero, d, np.float32(1.0))
    return np.where(nonzero, inv, np.float32(0.0)).astype(np.float32)


def signed_absmax(x: np.ndarray) -> np.ndarray:
    """The value with the largest |v| per row, the first one on ties: the C loop
    `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }`. (n, k) -> (n, 1).

    subtle: max starts at +0.0f and only a nonzero |v| replaces it, so a block of -0.0
    gives +0.0 (and d = -0.0 in Q4_0); NaNs never win the comparison.
    """
    a = np.abs(x)
    a = np.where(np.isnan(a), -1, a)
    idx = np.argmax(a, axis=-1)[:, None]
    found = np.take_along_axis(a, idx, axis=-1) > 0
    return np.where(found, np.take_along_axis(x, idx, axis=-1), np.float32(0)).astype(np.float32)


def first_min_max(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per row (min, max) as the C loop `if (v < min) min = v; if (v > max) max = v;`
    finds them: the first of equal extremes, which matters only for the sign of a zero
    (np.min may return 0.0 for [-0.0, 0.0]; the C returns -0.0). (n, k) -> 2 x (n, 1)."""
    lo = np.take_along_axis(x, np.argmin(x, axis=-1)[:, None], axis=-1)
    hi = np.take_along_axis(x, np.argmax(x, axis=-1)[:, None], axis=-1)
    return lo, hi


def pack_nibbles(q: np.ndarray) -> np.ndarray:
    """(n, 32) codes < 16 -> (n, 16) bytes: byte j = q[j] | q[j + 16] << 4 (block_q4_0.qs)."""
    return (q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)


def unpack_nibbles(qs: np.ndarray) -> np.ndarray:
    """(n, 16) bytes -> (n, 32) codes: low nibbles are weights 0..15, high ones 16..31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
