"""Whole tensors by ggml type id: dequantize, quantize, row sizes, selected rows, and the
activation quantizers of the integer matmul paths (Q8_K, bitnet.cpp's per-token int8)."""

from __future__ import annotations

from typing import FrozenSet, Sequence, Tuple

import numpy as np

from bitnet.ggml_types import (
    QK_K,
)
from bitnet.quants import blocks32, floats, ternary  # noqa: F401 - importing registers the types
from bitnet.quants.base import Buffer, block_type, supported_types, unsupported
from bitnet.quants.conversions import (
    nearest_int,
    roundf,
)
from bitnet.quants.kquants import Q8_K

SUPPORTED_DEQUANT: FrozenSet[int] = supported_types()
SUPPORTED_QUANT: FrozenSet[int] = supported_types("quantization")


def dequantize(data: Buffer, type_id: int, shape: Sequence[int]) -> np.ndarray:
    """Raw bytes of a whole tensor -> float32 array of `shape` (numpy order, ne0 last).

    Raises GGUFError when the byte count does not match the shape or ne0 is not a
    multiple of the block size, UnsupportedError for types without a dequantizer.
    """
    return block_type(type_id).dequantize_tensor(data, shape)


def quantize(x: np.ndarray, type_id: int) -> np.ndarray:
    """float32 (rows..., ne0) -> 1-D uint8 bytes of the whole tensor, byte-identical to
    llama.cpp's reference quantizer (bitnet.cpp's quantize_i2_s for I2_S)."""
    cls = block_type(type_id, "quantization")
    if not cls.can_quantize:
        raise unsupported(int(type_id), "quantization")
    return cls.quantize_tensor(x)


def row_nbytes(type_id: int, ne0: int) -> int:
    """Bytes of one row of ne0 weights (without I2_S's per-tensor scale)."""
    return block_type(type_id).row_nbytes(ne0)


def dequantize_rows(
    data: Buffer, type_id: int, shape: Sequence[int], rows: Sequence[int]
) -> np.ndarray:
    """Dequantize only `rows` (indices over the flattened leading dims) of a whole
    tensor's bytes, e.g. an embedding lookup -> float32 (len(rows), ne0)."""
    return block_type(type_id).dequantize_rows(data, shape, rows)


def quantize_activations_q8_k(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """quantize_row_q8_K_ref per 256-block: x (..., ne0) float32 ->
    (q int8 (..., ne0), d float32 (..., ne0 // 256)) with x ~= d * q.

    d = max / -127 where max is the signed value of largest magnitude (so d < 0 when that
    value is positive); q = min(127, nearest_int(x * (-127 / max))).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] % QK_K != 0:
        raise ValueError(
            f"Q8_K quantizes rows of a multiple of {QK_K} weights, got shape {x.shape}"
        )
    d, qs, _ = Q8_K.quantize_fields(x.reshape(-1, QK_K))
    return qs.reshape(x.shape), d.reshape(x.shape[:-1] + (x.shape[-1] // QK_K,))


I8_ABSMAX_FLOOR = 1e-5  # bitnet.cpp quantize_row_i8_s: max|x| starts at 0.00001


def quantize_activations_i8_per_token(
    x: np.ndarray, *, ties: str = "even"
) -> Tuple[np.ndarray, np.ndarray]:
    """bitnet.cpp's quantize_row_i8_s per row: x (..., n) float32 ->
    (q int8 (..., n), scale float32 (...)) with x ~= q / scale.

    scale = (float)(127 / max(1e-5, max|x|)) computed in double as the C does; it is the
    multiplier bitnet.cpp stores in act_scales (the I2_S matmul divides by it).
    q = clamp(round(x * scale), -128, 127) with x * scale in float32. `ties="even"` is
    nearest_int (current bitnet.cpp); `ties="away"` is the older `round((double)(x*s))`.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 0:
        raise ValueError("quantize_activations_i8_per_token needs at least one axis")
    if ties not in ("even", "away"):
        raise ValueError(f"ties must be 'even' or 'away', got {ties!r}")
    amax = np.fmax.reduce(np.abs(x.astype(np.float64)), axis=-1, initial=I8_ABSMAX_FLOOR)
    scale = (127.0 / amax).astype(np.float32)
    prod = x * scale[..., None]
    v = nearest_int(prod) if ties == "even" else roundf(prod)
    q = np.clip(v, -128, 127).astype(np.int8)
    return q, scale
