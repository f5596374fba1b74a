"""The float types: F32, F16 (ggml_half) and BF16."""

from __future__ import annotations

import numpy as np

from bitnet.ggml_types import (
    GGMLType,
)
from bitnet.quants.base import BlockType, register
from bitnet.quants.conversions import (
    fp16_bytes,
    fp16_to_fp32,
    fp32_to_bf16_bits,
)


@register(GGMLType.F32)
class F32(BlockType):
    fields = (("value", 4),)
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        return blocks.view("<f4").astype(np.float32)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return x.astype("<f4").view(np.uint8)


@register(GGMLType.F16)
class F16(BlockType):
    """ggml_fp16_to_fp32_row / ggml_fp32_to_fp16_row."""

    fields = (("value", 2),)
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        return fp16_to_fp32(blocks)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return fp16_bytes(x)


@register(GGMLType.BF16)
class BF16(BlockType):
    """ggml_bf16_to_fp32_row / ggml_fp32_to_bf16_row_ref: the top 16 bits of a float32."""

    fields = (("value", 2),)
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        hi = np.ascontiguousarray(blocks).view("<u2").astype(np.uint32) << np.uint32(16)
        return hi.view(np.float32)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return fp32_to_bf16_bits(x).astype("<u2").view(np.uint8)
