"""The k-quants: 256-weight super-blocks Q2_K Q3_K Q4_K Q5_K Q6_K, and Q8_K (activations)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from bitnet.ggml_types import (
    QK_K,
    GGMLType,
)
from bitnet.quants.base import BlockType, register
from bitnet.quants.conversions import (
    fp16_to_fp32,
    nearest_int,
    signed_absmax,
)
from bitnet.quants.kquant_search import (
    quantize_q2_k,
    quantize_q3_k,
    quantize_q4_k,
    quantize_q5_k,
    quantize_q6_k,
)


@register(GGMLType.Q2_K)
class Q2_K(BlockType):
    """block_q2_K {uint8 scales[16]; uint8 qs[64]; half d; half dmin} / dequantize_row_q2_K.

    Weight e (0..255): half h = e // 128, shift s = 2 * ((e % 128) // 32), l = e % 32;
    code = (qs[32h + l] >> s) & 3; sub-block e // 16 has scale byte sc:
    w = (d * (sc & 15)) * code - dmin * (sc >> 4).
    """

    fields = (("scales", QK_K // 16), ("qs", QK_K // 4), ("d", 2), ("dmin", 2))

    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        n = blocks.shape[0]
        scales, qs, d, dmin = cls.split(blocks)
        dl = (fp16_to_fp32(d) * (scales & 0xF).astype(np.float32))[:, :, None]  # (n, 16, 1)
        ml = (fp16_to_fp32(dmin) * (scales >> 4).astype(np.float32))[:, :, None]
        shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]
        q = (qs.reshape(n, 2, 1, 32) >> shifts) & 3  # (n, half, shift, l)
        q = q.reshape(n, 16, 16).astype(np.float32)
        return (dl * q - ml).reshape(n, QK_K)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return quantize_q2_k(x)


@register(GGMLType.Q3_K)
class Q3_K(BlockType):
    """block_q3_K {uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; half d} / dequantize_row_q3_K.

    Weight e: h = e // 128, j = (e % 128) // 32, l = e % 32;
    code = ((qs[32h + l] >> 2j) & 3) - (0 if hmask[l] bit (4h + j) else 4);
    w = (d * (scale[e // 16] - 32)) * code, with 6-bit scales packed as described below.
    """

    fields = (("hmask", QK_K // 8), ("qs", QK_K // 4), ("scales", 12), ("d", 2))

    @staticmethod
    def unpack_scales(scales: np.ndarray) -> np.ndarray:
        """(n, 12) -> (n, 16) int in [0, 64): scale i = low 4 bits from
        scales[i % 8] >> 4 * (i // 8), high 2 bits from scales[8 + i % 4] >> 2 * (i // 4)
        (the kmask1/kmask2 shuffle of dequantize_row_q3_K)."""
        i = np.arange(16)
        low = (scales[:, i % 8] >> (4 * (i // 8)).astype(np.uint8)) & 0xF
        high = (scales[:, 8 + i % 4] >> (2 * (i // 4)).astype(np.uint8)) & 3
        return (low | (high << 4)).astype(np.int32)

    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        n = blocks.shape[0]
        hmask, qs, scales, d = cls.split(blocks)
        dl = (fp16_to_fp32(d) * (cls.unpack_scales(scales) - 32).astype(np.float32))[:, :, None]
        j = np.arange(4, dtype=np.uint8)[None, None, :, None]
        low = (qs.reshape(n, 2, 1, 32) >> (2 * j)) & 3  # (n, h, j, l)
        hbit_index = (4 * np.arange(2, dtype=np.uint8)[None, :, None, None] + j)
        high = (hmask.reshape(n, 1, 1, 32) >> hbit_index) & 1
        q = low.astype(np.int8) - np.where(high == 1, 0, 4).astype(np.int8)
        return (dl * q.reshape(n, 16, 16).astype(np.float32)).reshape(n, QK_K)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return quantize_q3_k(x)


def _k4_scale_min(scales: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """get_scale_min_k4 for j = 0..7 on (n, 12) bytes -> (sc, m), each (n, 8) of 6-bit ints.

    j < 4:  sc = q[j] & 63,                          m = q[j + 4] & 63
    j >= 4: sc = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4, m = (q[j + 4] >> 4) | (q[j] >> 6) << 4
    """
    q = scales.astype(np.int32)
    sc_lo, m_lo = q[:, 0:4] & 63, q[:, 4:8] & 63
    sc_hi = (q[:, 8:12] & 0xF) | ((q[:, 0:4] >> 6) << 4)
    m_hi = (q[:, 8:12] >> 4) | ((q[:, 4:8] >> 6) << 4)
    return np.concatenate([sc_lo, sc_hi], axis=-1), np.concatenate([m_lo, m_hi], axis=-1)


@register(GGMLType.Q4_K)
class Q4_K(BlockType):
    """block_q4_K {half d; half dmin; uint8 scales[12]; uint8 qs[128]} / dequantize_row_q4_K.

    Weight e: chunk c = e // 64, l = e % 32; code = nibble ((e % 64) // 32) of qs[32c + l];
    sub-block e // 32 has (sc, m) from get_scale_min_k4; w = (d * sc) * code - dmin * m.
    """

    fields = (("d", 2), ("dmin", 2), ("scales", 12), ("qs", QK_K // 2))

    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        n = blocks.shape[0]
        d, dmin, scales, qs = cls.split(blocks)
        sc, m = _k4_scale_min(scales)
        d1 = (fp16_to_fp32(d) * sc.astype(np.float32))[:, :, None]  # (n, 8, 1)
        m1 = (fp16_to_fp32(dmin) * m.astype(np.float32))[:, :, None]
        nibbles = qs.reshape(n, 4, 1, 32) >> np.array([0, 4], dtype=np.uint8)[None, None, :, None]
        q = (nibbles & 0xF).reshape(n, 8, 32).astype(np.float32)
        return (d1 * q - m1).reshape(n, QK_K)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return quantize_q4_k(x)


@register(GGMLType.Q5_K)
class Q5_K(BlockType):
    """block_q5_K {half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]} /
    dequantize_row_q5_K. As Q4_K, plus 16 * bit (e // 32) of qh[e % 32]."""

    fields = (("d", 2), ("dmin", 2), ("scales", 12), ("qh", QK_K // 8), ("qs", QK_K // 2))

    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        n = blocks.shape[0]
        d, dmin, scales, qh, qs = cls.split(blocks)
        sc, m = _k4_scale_min(scales)
        d1 = (fp16_to_fp32(d) * sc.astype(np.float32))[:, :, None]
        m1 = (fp16_to_fp32(dmin) * m.astype(np.float32))[:, :, None]
        nibbles = qs.reshape(n, 4, 1, 32) >> np.array([0, 4], dtype=np.uint8)[None, None, :, None]
        low = (nibbles & 0xF).reshape(n, 8, 32)
        high = (qh.reshape(n, 1, 32) >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1
        q = (low | (high << 4)).astype(np.float32)
        return (d1 * q - m1).reshape(n, QK_K)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return quantize_q5_k(x)


@register(GGMLType.Q6_K)
class Q6_K(BlockType):
    """block_q6_K {uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d} / dequantize_row_q6_K.

    Weight e: h = e // 128, g = (e % 128) // 32, l = e % 32;
    low 4 bits: nibble (g // 2) of ql[64h + 32(g % 2) + l]; high 2 bits: (qh[32h + l] >> 2g) & 3;
    w = (d * scales[e // 16]) * (code - 32).
    """

    fields = (("ql", QK_K // 2), ("qh", QK_K // 4), ("scales", QK_K // 16), ("d", 2))

    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        n = blocks.shape[0]
        ql, qh, scales, d = cls.split(blocks)
        ql = ql.reshape(n, 2, 64)
        low = np.concatenate([ql & 0xF, ql >> 4], axis=-1)  # (n, h, 128) in g order 0..3
        shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]
        high = ((qh.reshape(n, 2, 1, 32) >> shifts) & 3).reshape(n, 2, 128)
        q = (low | (high << 4)).astype(np.int8) - np.int8(32)
        dl = (fp16_to_fp32(d) * scales.view(np.int8).astype(np.float32))[:, :, None]
        return (dl * q.reshape(n, 16, 16).astype(np.float32)).reshape(n, QK_K)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return quantize_q6_k(x)


@register(GGMLType.Q8_K)
class Q8_K(BlockType):
    """block_q8_K {float d; int8 qs[256]; int16 bsums[16]}: the activation type the k-quant
    and TQ dot products use. quantize_row_q8_K_ref / dequantize_row_q8_K: w = d * q."""

    fields = (("d", 4), ("qs", QK_K), ("bsums", QK_K // 8))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, qs, _bsums = cls.split(blocks)
        return np.ascontiguousarray(d).view("<f4") * qs.view(np.int8).astype(np.float32)

    @classmethod
    def quantize_fields(cls, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, 256) float32 -> (d (n, 1) float32, qs (n, 256) int8, bsums (n, 16) int16)."""
        mx = signed_absmax(x)
        zero = mx == 0  # `if (!amax)`: d = 0, all codes 0
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            iscale = np.float32(-127.0) / np.where(zero, np.float32(1), mx)
            v = nearest_int(iscale * x)
            d = (np.float32(1.0) / iscale).astype(np.float32)
        qs = np.minimum(127, v).astype(np.int8)  # MIN(127, v) stored to int8_t: low byte
        qs[zero[:, 0]] = 0
        d = np.where(zero, np.float32(0), d).astype(np.float32)
        bsums = qs.reshape(-1, 16, 16).astype(np.int32).sum(axis=-1).astype(np.int16)
        return d, qs, bsums

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        d, qs, bsums = cls.quantize_fields(x)
        return np.concatenate(
            [d.astype("<f4").view(np.uint8), qs.view(np.uint8), bsums.astype("<i2").view(np.uint8)],
            axis=-1,
        )
