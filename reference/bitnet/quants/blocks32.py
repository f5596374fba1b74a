"""The 32-weight block types: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 (dequantize_row_* /
quantize_row_*_ref)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from bitnet.ggml_types import (
    GGMLType,
)
from bitnet.quants.base import BlockType, register
from bitnet.quants.conversions import (
    c_float_to_int8,
    first_min_max,
    fp16_bytes,
    fp16_to_fp32,
    inverse,
    pack_nibbles,
    roundf,
    signed_absmax,
    unpack_nibbles,
)


@register(GGMLType.Q4_0)
class Q4_0(BlockType):
    """block_q4_0 {half d; uint8 qs[16]}: w = (nibble - 8) * d; weight j in the low nibble
    of qs[j], weight j + 16 in the high nibble. dequantize_row_q4_0 / quantize_row_q4_0_ref."""

    fields = (("d", 2), ("qs", 16))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, qs = cls.split(blocks)
        q = unpack_nibbles(qs).astype(np.int32) - 8
        return q.astype(np.float32) * fp16_to_fp32(d)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        d = signed_absmax(x) / np.float32(-8)
        xi = c_float_to_int8(x * inverse(d) + np.float32(8.5))  # (int8_t)(x0 + 8.5f)
        q = np.minimum(15, xi.astype(np.int32)).astype(np.uint8)  # MIN(15, ...) -> uint8_t
        return np.concatenate([fp16_bytes(d), pack_nibbles(q)], axis=-1)


@register(GGMLType.Q4_1)
class Q4_1(BlockType):
    """block_q4_1 {half d; half m; uint8 qs[16]}: w = nibble * d + m.
    dequantize_row_q4_1 / quantize_row_q4_1_ref."""

    fields = (("d", 2), ("m", 2), ("qs", 16))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, m, qs = cls.split(blocks)
        q = unpack_nibbles(qs).astype(np.float32)
        return q * fp16_to_fp32(d) + fp16_to_fp32(m)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        lo, hi = first_min_max(x)
        with np.errstate(over="ignore", invalid="ignore"):
            d = (hi - lo) / np.float32(15)
            xi = c_float_to_int8((x - lo) * inverse(d) + np.float32(0.5))
        q = np.minimum(15, xi.astype(np.int32)).astype(np.uint8)
        return np.concatenate([fp16_bytes(d), fp16_bytes(lo), pack_nibbles(q)], axis=-1)


def _q5_high_bits(qh: np.ndarray) -> np.ndarray:
    """(n, 4) bytes of a little-endian uint32 -> (n, 32) bit j (the 5th bit of weight j)."""
    return np.unpackbits(qh, axis=-1, bitorder="little")


def _pack_q5(q: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(n, 32) 5-bit codes -> (qh (n, 4), qs (n, 16)) as block_q5_0/1 store them."""
    qh = np.packbits((q >> 4) & 1, axis=-1, bitorder="little")
    return qh, pack_nibbles(q)


@register(GGMLType.Q5_0)
class Q5_0(BlockType):
    """block_q5_0 {half d; uint8 qh[4]; uint8 qs[16]}: w = ((nibble | bit << 4) - 16) * d.
    dequantize_row_q5_0 / quantize_row_q5_0_ref."""

    fields = (("d", 2), ("qh", 4), ("qs", 16))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, qh, qs = cls.split(blocks)
        q = (unpack_nibbles(qs) | (_q5_high_bits(qh) << 4)).astype(np.int32) - 16
        return q.astype(np.float32) * fp16_to_fp32(d)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        d = signed_absmax(x) / np.float32(-16)
        xi = c_float_to_int8(x * inverse(d) + np.float32(16.5))
        q = np.minimum(31, xi.astype(np.int32)).astype(np.uint8)
        qh, qs = _pack_q5(q)
        return np.concatenate([fp16_bytes(d), qh, qs], axis=-1)


@register(GGMLType.Q5_1)
class Q5_1(BlockType):
    """block_q5_1 {half d; half m; uint8 qh[4]; uint8 qs[16]}: w = (nibble | bit << 4) * d + m.
    dequantize_row_q5_1 / quantize_row_q5_1_ref."""

    fields = (("d", 2), ("m", 2), ("qh", 4), ("qs", 16))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, m, qh, qs = cls.split(blocks)
        q = (unpack_nibbles(qs) | (_q5_high_bits(qh) << 4)).astype(np.float32)
        return q * fp16_to_fp32(d) + fp16_to_fp32(m)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        lo, hi = first_min_max(x)
        with np.errstate(over="ignore", invalid="ignore"):
            d = (hi - lo) / np.float32(31)
            # (uint8_t)(x0 + 0.5f): no MIN here in the C; the value never exceeds 31.5
            q = c_float_to_int8((x - lo) * inverse(d) + np.float32(0.5)).view(np.uint8)
        qh, qs = _pack_q5(q)
        return np.concatenate([fp16_bytes(d), fp16_bytes(lo), qh, qs], axis=-1)


@register(GGMLType.Q8_0)
class Q8_0(BlockType):
    """block_q8_0 {half d; int8 qs[32]}: w = q * d. dequantize_row_q8_0 / quantize_row_q8_0_ref."""

    fields = (("d", 2), ("qs", 32))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, qs = cls.split(blocks)
        return qs.view(np.int8).astype(np.float32) * fp16_to_fp32(d)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        d = np.abs(x).max(axis=-1, keepdims=True) / np.float32(127)
        with np.errstate(invalid="ignore"):
            q = c_float_to_int8(roundf(x * inverse(d)))  # qs[j] = roundf(x0)
        return np.concatenate([fp16_bytes(d), q.view(np.uint8)], axis=-1)
