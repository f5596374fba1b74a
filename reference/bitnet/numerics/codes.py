"""A quantized weight as llama.cpp's integer dot products see it: integer codes + scales.

llama.cpp never dequantizes a weight for a matmul: its kernels multiply the stored integer
codes by the activation codes and apply the block scales in float32 afterwards. So the
reference keeps the same split. The codes come from `bitnet.quants` (one copy of every
block layout): a block dequantized with its scales set to 1 (and its offsets to 0) IS its
integer codes, exactly; the scales are read from the block's own fields.

Codes per type, as the x86 kernels multiply them (unsigned ones pair with a separate
offset term):

    Q4_0  nibble - 8            Q4_1  nibble (+ m)        Q8_0  int8
    Q5_0  5-bit - 16            Q5_1  5-bit (+ m)
    Q4_K  nibble (0..15)        Q5_K  5-bit (0..31)       Q6_K  6-bit (0..63), bias 32
    TQ1_0, TQ2_0, I2_S  trit + 1 in {0, 1, 2} (I2_S code 3 stays 3, as bitnet.cpp reads it)
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from bitnet import quants
from bitnet.ggml_types import QK_K, GGMLType
from bitnet.ops import QTensor

_F32 = np.float32

# field values that turn a block's dequantization into its integer codes
_ONE_F16 = np.array([1.0], dtype="<f2").view(np.uint8)
_ZERO_F16 = np.zeros(2, dtype=np.uint8)
# get_scale_min_k4 bytes giving sc = 1 and m = 0 for all 8 sub-blocks
_K4_UNIT_SCALES = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1], dtype=np.uint8)
_UNIT_FIELDS: Dict[int, Dict[str, np.ndarray]] = {
    GGMLType.Q4_0: {"d": _ONE_F16},
    GGMLType.Q4_1: {"d": _ONE_F16, "m": _ZERO_F16},
    GGMLType.Q5_0: {"d": _ONE_F16},
    GGMLType.Q5_1: {"d": _ONE_F16, "m": _ZERO_F16},
    GGMLType.Q8_0: {"d": _ONE_F16},
    GGMLType.Q4_K: {"d": _ONE_F16, "dmin": _ZERO_F16, "scales": _K4_UNIT_SCALES},
    GGMLType.Q5_K: {"d": _ONE_F16, "dmin": _ZERO_F16, "scales": _K4_UNIT_SCALES},
    GGMLType.Q6_K: {"d": _ONE_F16, "scales": np.ones(16, dtype=np.uint8)},
    GGMLType.TQ1_0: {"d": _ONE_F16},
    GGMLType.TQ2_0: {"d": _ONE_F16},
}
# what dequantizing with unit scales leaves to add back: Q6_K's (code - 32), trit - 1
_CODE_OFFSET = {GGMLType.Q6_K: 32, GGMLType.TQ1_0: 1, GGMLType.TQ2_0: 1}

SUPPORTED = frozenset(_UNIT_FIELDS) | {GGMLType.I2_S}


class WeightCodes(NamedTuple):
    """A (N, D) weight split into integer codes and float32 scales (f16 values, except
    I2_S's float32 tensor scale). nb = number of blocks per row.

    q: (N, D) int8 codes (see the module docstring). d: (N, nb) block scale. dmin: (N, nb)
    Q4_K/Q5_K min scale, or Q4_1/Q5_1's m; else None. scales: (N, nb, 8) Q4_K/Q5_K
    6-bit sub-block scales, (N, nb, 16) Q6_K int8 ones; else None. mins: (N, nb, 8) Q4_K/
    Q5_K 6-bit sub-block mins; else None."""

    type_id: int
    q: np.ndarray
    d: np.ndarray
    dmin: Optional[np.ndarray] = None
    scales: Optional[np.ndarray] = None
    mins: Optional[np.ndarray] = None


def _field(cls: type, blocks: np.ndarray, name: str) -> np.ndarray:
    """The bytes of struct field `name` of every block: (n_blocks, field bytes)."""
    names = [f for f, _ in cls.fields]  # type: ignore[attr-defined]
    return cls.split(blocks)[names.index(name)]  # type: ignore[attr-defined]


def _f16_field(cls: type, blocks: np.ndarray, name: str) -> np.ndarray:
    return np.ascontiguousarray(_field(cls, blocks, name)).view("<f2")[:, 0].astype(_F32)


def scale_min_k4(scales: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """get_scale_min_k4 (the `utmp` unpacking of ggml_vec_dot_q4_K_q8_K) for j = 0..7 of
    (..., 12) bytes -> (sc, m), each (..., 8) int32 in 0..63:
    j < 4: sc = q[j] & 63, m = q[j+4] & 63;
    j >= 4: sc = (q[j+4] & 15) | (q[j-4] >> 6) << 4, m = (q[j+4] >> 4) | (q[j] >> 6) << 4."""
    q = scales.astype(np.int32)
    sc_lo, m_lo = q[..., 0:4] & 63, q[..., 4:8] & 63
    sc_hi = (q[..., 8:12] & 0xF) | ((q[..., 0:4] >> 6) << 4)
    m_hi = (q[..., 8:12] >> 4) | ((q[..., 4:8] >> 6) << 4)
    return np.concatenate([sc_lo, sc_hi], axis=-1), np.concatenate([m_lo, m_hi], axis=-1)


def _i2s_codes(w: QTensor) -> WeightCodes:
    """bitnet.cpp I2_S: codes 0..3 in TQ2_0's element order; d = the tensor scale for
    every 256-block."""
    n, dim = w.np_shape
    buf = np.asarray(w.data, dtype=np.uint8).reshape(-1)
    cls = quants.block_type(GGMLType.I2_S)
    codes = cls.codes(buf[: n * dim // 4].reshape(-1, 32))  # type: ignore[attr-defined]
    scale = _F32(buf[n * dim // 4 : n * dim // 4 + 4].view("<f4")[0])
    d = np.full((n, dim // QK_K), scale, dtype=_F32)
    return WeightCodes(GGMLType.I2_S, codes.reshape(n, dim).astype(np.int8), d)


def weight_codes(w: QTensor) -> WeightCodes:
    """The integer codes and scales of a 2-D weight (N, D) of a type in `SUPPORTED`."""
    t = GGMLType(w.type_id)
    if t == GGMLType.I2_S:
        return _i2s_codes(w)
    n, dim = w.np_shape
    cls = quants.block_type(t)
    blocks = np.asarray(w.data, dtype=np.uint8).reshape(-1, cls.type_size)
    unit = blocks.copy()
    names = [f for f, _ in cls.fields]
    offsets = np.concatenate([[0], np.cumsum([size for _, size in cls.fields])])
    for name, value in _UNIT_FIELDS[t].items():
        i = names.index(name)
        unit[:, offsets[i] : offsets[i + 1]] = value
    q = cls.dequantize_blocks(unit).reshape(n, dim) + _F32(_CODE_OFFSET.get(t, 0))
    nb = dim // cls.block_size
    d = _f16_field(cls, blocks, "d").reshape(n, nb)
    if t in (GGMLType.Q4_1, GGMLType.Q5_1):
        return WeightCodes(t, q.astype(np.int8), d, dmin=_f16_field(cls, blocks, "m").reshape(n, nb))
    if t in (GGMLType.Q4_K, GGMLType.Q5_K):
        sc, m = scale_min_k4(_field(cls, blocks, "scales"))
        return WeightCodes(t, q.astype(np.int8), d, dmin=_f16_field(cls, blocks, "dmin").reshape(n, nb),
                           scales=sc.reshape(n, nb, 8), mins=m.reshape(n, nb, 8))
    if t == GGMLType.Q6_K:
        sc = np.ascontiguousarray(_field(cls, blocks, "scales")).view(np.int8).astype(np.int32)
        return WeightCodes(t, q.astype(np.int8), d, scales=sc.reshape(n, nb, 16))
    return WeightCodes(t, q.astype(np.int8), d)
