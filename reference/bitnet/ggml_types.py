"""The one table of ggml tensor types: `GGMLType` (the ids) and their block layouts.

Everything that needs a block size (the GGUF reader's validation, dequantization,
quantization, the C kernels' struct checks) derives it from `GGML_TYPES`. Sizes are
written as field arithmetic so the block layout reads off the table (as gguf-py does).
I2_S (id 36) is bitnet.cpp's ternary type: 128 weights in 32 bytes, plus ONE float32
scale per tensor stored after the packed data (a tensor's bytes = n/4 + 32, see
`tensor_nbytes`). Mainline ggml reuses id 36 for a removed type; these files are
bitnet.cpp's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Dict, NamedTuple, Tuple

QK_K = 256


class GGMLType(IntEnum):
    """ggml's tensor type ids (ggml.h `enum ggml_type`); I2_S is bitnet.cpp's id 36."""

    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    IQ2_XXS = 16
    IQ2_XS = 17
    IQ3_XXS = 18
    IQ1_S = 19
    IQ4_NL = 20
    IQ3_S = 21
    IQ2_S = 22
    IQ4_XS = 23
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    IQ1_M = 29
    BF16 = 30
    TQ1_0 = 34
    TQ2_0 = 35
    I2_S = 36
    MXFP4 = 39
    NVFP4 = 40
    Q1_0 = 41
    Q2_0 = 42


class TypeTraits(NamedTuple):
    """A type's block layout: weights per block and bytes per block."""

    type: GGMLType
    block_size: int  # weights per block
    type_size: int  # bytes per block

    @property
    def id(self) -> int:
        return int(self.type)

    @property
    def name(self) -> str:
        return self.type.name


T = GGMLType
_TABLE = [
    TypeTraits(T.F32, 1, 4),
    TypeTraits(T.F16, 1, 2),
    TypeTraits(T.Q4_0, 32, 2 + 16),
    TypeTraits(T.Q4_1, 32, 2 + 2 + 16),
    TypeTraits(T.Q5_0, 32, 2 + 4 + 16),
    TypeTraits(T.Q5_1, 32, 2 + 2 + 4 + 16),
    TypeTraits(T.Q8_0, 32, 2 + 32),
    TypeTraits(T.Q8_1, 32, 2 + 2 + 32),
    TypeTraits(T.Q2_K, QK_K, 2 + 2 + QK_K // 16 + QK_K // 4),
    TypeTraits(T.Q3_K, QK_K, 2 + QK_K // 4 + QK_K // 8 + 12),
    TypeTraits(T.Q4_K, QK_K, 2 + 2 + QK_K // 2 + 12),
    TypeTraits(T.Q5_K, QK_K, 2 + 2 + QK_K // 2 + QK_K // 8 + 12),
    TypeTraits(T.Q6_K, QK_K, 2 + QK_K // 2 + QK_K // 4 + QK_K // 16),
    TypeTraits(T.Q8_K, QK_K, 4 + QK_K + QK_K // 8),
    TypeTraits(T.IQ2_XXS, QK_K, 2 + QK_K // 4),
    TypeTraits(T.IQ2_XS, QK_K, 2 + QK_K // 4 + QK_K // 32),
    TypeTraits(T.IQ3_XXS, QK_K, 2 + QK_K // 4 + QK_K // 8),
    TypeTraits(T.IQ1_S, QK_K, 2 + QK_K // 8 + QK_K // 16),
    TypeTraits(T.IQ4_NL, 32, 2 + 16),
    TypeTraits(T.IQ3_S, QK_K, 2 + QK_K // 4 + QK_K // 8 + QK_K // 32 + 4),
    TypeTraits(T.IQ2_S, QK_K, 2 + QK_K // 4 + QK_K // 16),
    TypeTraits(T.IQ4_XS, QK_K, 2 + 2 + QK_K // 2 + QK_K // 64),
    TypeTraits(T.I8, 1, 1),
    TypeTraits(T.I16, 1, 2),
    TypeTraits(T.I32, 1, 4),
    TypeTraits(T.I64, 1, 8),
    TypeTraits(T.F64, 1, 8),
    TypeTraits(T.IQ1_M, QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32),
    TypeTraits(T.BF16, 1, 2),
    TypeTraits(T.TQ1_0, QK_K, 2 + 4 * 13),
    TypeTraits(T.TQ2_0, QK_K, 2 + 64),
    TypeTraits(T.I2_S, 128, 128 // 4),  # + one f32 scale per tensor, see tensor_nbytes
    TypeTraits(T.MXFP4, 32, 1 + 16),
    TypeTraits(T.NVFP4, 64, 4 + 32),
    TypeTraits(T.Q1_0, 128, 2 + 16),
    TypeTraits(T.Q2_0, 64, 2 + 16),
]
del T

GGML_TYPES: Dict[int, TypeTraits] = {t.type: t for t in _TABLE}
GGML_TYPES_BY_NAME: Dict[str, TypeTraits] = {t.type.name: t for t in _TABLE}

# Ids that once existed and were removed from ggml; named in error messages.
REMOVED_TYPE_NAMES: Dict[int, str] = {
    4: "Q4_2",
    5: "Q4_3",
    31: "Q4_0_4_4",
    32: "Q4_0_4_8",
    33: "Q4_0_8_8",
    37: "IQ4_NL_4_8",
    38: "IQ4_NL_8_8",
}

I2_S_SCALE_BYTES = 32  # the f32 scale, padded to 32 bytes as bitnet.cpp allocates it


def tensor_nbytes(type_id: int, n_elements: int) -> int:
    """Bytes a tensor of `n_elements` weights occupies; n_elements must fill whole blocks."""
    t = GGML_TYPES[type_id]
    nbytes = (n_elements // t.block_size) * t.type_size
    if type_id == GGMLType.I2_S:
        nbytes += I2_S_SCALE_BYTES
    return nbytes


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's name, ggml type and shape; the base of the GGUF header entry
    (`bitnet.gguf.TensorInfo`) and of a weight with its bytes (`bitnet.ops.QTensor`)."""

    name: str
    type_id: int
    shape: Tuple[int, ...]  # ggml order: ne0 (the contiguous row length) first

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def np_shape(self) -> Tuple[int, ...]:
        """numpy order (reversed ggml order): a matmul weight is (N, D)."""
        return tuple(reversed(self.shape))

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.type_id].name
