"""The one table of ggml tensor types: id, name, weights per block, bytes per block.

Everything that needs a block size (the GGUF reader's validation, dequantization,
quantization, the C kernels' struct checks) derives it from `GGML_TYPES`. Sizes are
written as field arithmetic so the block layout reads off the table (as gguf-py does).
I2_S (id 36) is bitnet.cpp's ternary type: 128 weights in 32 bytes, plus ONE float32
scale per tensor stored after the packed data (a tensor's bytes = n/4 + 32, see
`tensor_nbytes`). Mainline ggml reuses id 36 for a removed type; these files are
bitnet.cpp's.
"""

from __future__ import annotations

from typing import Dict, NamedTuple

QK_K = 256


class GGMLType(NamedTuple):
    id: int
    name: str
    block_size: int  # weights per block
    type_size: int  # bytes per block


def _t(id: int, name: str, block_size: int, type_size: int) -> GGMLType:
    return GGMLType(id, name, block_size, type_size)


_TABLE = [
    _t(0, "F32", 1, 4),
    _t(1, "F16", 1, 2),
    _t(2, "Q4_0", 32, 2 + 16),
    _t(3, "Q4_1", 32, 2 + 2 + 16),
    _t(6, "Q5_0", 32, 2 + 4 + 16),
    _t(7, "Q5_1", 32, 2 + 2 + 4 + 16),
    _t(8, "Q8_0", 32, 2 + 32),
    _t(9, "Q8_1", 32, 2 + 2 + 32),
    _t(10, "Q2_K", QK_K, 2 + 2 + QK_K // 16 + QK_K // 4),
    _t(11, "Q3_K", QK_K, 2 + QK_K // 4 + QK_K // 8 + 12),
    _t(12, "Q4_K", QK_K, 2 + 2 + QK_K // 2 + 12),
    _t(13, "Q5_K", QK_K, 2 + 2 + QK_K // 2 + QK_K // 8 + 12),
    _t(14, "Q6_K", QK_K, 2 + QK_K // 2 + QK_K // 4 + QK_K // 16),
    _t(15, "Q8_K", QK_K, 4 + QK_K + QK_K // 8),
    _t(16, "IQ2_XXS", QK_K, 2 + QK_K // 4),
    _t(17, "IQ2_XS", QK_K, 2 + QK_K // 4 + QK_K // 32),
    _t(18, "IQ3_XXS", QK_K, 2 + QK_K // 4 + QK_K // 8),
    _t(19, "IQ1_S", QK_K, 2 + QK_K // 8 + QK_K // 16),
    _t(20, "IQ4_NL", 32, 2 + 16),
    _t(21, "IQ3_S", QK_K, 2 + QK_K // 4 + QK_K // 8 + QK_K // 32 + 4),
    _t(22, "IQ2_S", QK_K, 2 + QK_K // 4 + QK_K // 16),
    _t(23, "IQ4_XS", QK_K, 2 + 2 + QK_K // 2 + QK_K // 64),
    _t(24, "I8", 1, 1),
    _t(25, "I16", 1, 2),
    _t(26, "I32", 1, 4),
    _t(27, "I64", 1, 8),
    _t(28, "F64", 1, 8),
    _t(29, "IQ1_M", QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32),
    _t(30, "BF16", 1, 2),
    _t(34, "TQ1_0", QK_K, 2 + 4 * 13),
    _t(35, "TQ2_0", QK_K, 2 + 64),
    _t(36, "I2_S", 128, 128 // 4),  # + one f32 scale per tensor, see tensor_nbytes
    _t(39, "MXFP4", 32, 1 + 16),
    _t(40, "NVFP4", 64, 4 + 32),
    _t(41, "Q1_0", 128, 2 + 16),
    _t(42, "Q2_0", 64, 2 + 16),
]

GGML_TYPES: Dict[int, GGMLType] = {t.id: t for t in _TABLE}
GGML_TYPES_BY_NAME: Dict[str, GGMLType] = {t.name: t for t in _TABLE}

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

I2_S = 36
I2_S_SCALE_BYTES = 32  # the f32 scale, padded to 32 bytes as bitnet.cpp allocates it


def tensor_nbytes(type_id: int, n_elements: int) -> int:
    """Bytes a tensor of `n_elements` weights occupies; n_elements must fill whole blocks."""
    t = GGML_TYPES[type_id]
    nbytes = (n_elements // t.block_size) * t.type_size
    if type_id == I2_S:
        nbytes += I2_S_SCALE_BYTES
    return nbytes
