"""Block layouts of the ggml tensor types: dequantize many, quantize some, in numpy.

Role: the readable definition of what the bytes of a GGUF tensor mean. Every type is one
small class registered by its ggml type id; it implements only the block-level math
(`dequantize_blocks`, optionally `quantize_blocks`) on arrays shaped (n_blocks, ...), and
the base class owns reshapes and size checks. Block and byte sizes come from
`bitnet.ggml_types.GGML_TYPES`; each class names the llama.cpp struct and functions it
mirrors (ggml/src/ggml-common.h, ggml/src/ggml-quants.c).

Exactness: dequantization performs the same float32 operations in the same order as
`dequantize_row_*` (so results are bit-identical to llama.cpp and to gguf-py); the
quantizers mirror the `quantize_row_*_ref` reference quantizers that llama.cpp uses when
writing model files (no importance matrix), float32 op for float32 op, so their bytes are
identical. Conversions of out-of-range floats to integers are undefined in C; where a
degenerate block (a scale that overflows to inf, e.g. all weights subnormal) reaches one,
this module does what llama.cpp's x86-64 build does and says so next to the line.
NaN inputs to the quantizers are not mirrored (the C's running max then depends on how
the compiler vectorized the loop); the float conversions (F16, BF16) do handle NaN as ggml.

I2_S (type 36) is bitnet.cpp's ternary format: one float32 scale per *tensor*, stored
after all the packed 2-bit codes, so it overrides the tensor-level methods.

The k-quant quantizers (Q2_K..Q6_K) mirror `quantize_row_q*_K_ref` and the scale searches
they call (make_qkx2_quants, make_qx_quants, make_q3_quants) without an importance matrix,
as llama_model_quantize runs them.

Left out: the IQ* grid types, MXFP4/NVFP4, Q1_0/Q2_0, Q8_1 (raise UnsupportedError), and
the IQ quantizers.
"""

from __future__ import annotations

import math
from typing import Callable, ClassVar, Dict, FrozenSet, List, Sequence, Tuple, Type, Union

import numpy as np

from bitnet.errors import GGUFError, UnsupportedError
from bitnet.ggml_types import (
    GGML_TYPES,
    I2_S_SCALE_BYTES,
    QK_K,
    REMOVED_TYPE_NAMES,
    GGMLType,
    tensor_nbytes,
)

__all__ = [
    "Buffer",
    "SUPPORTED_DEQUANT",
    "SUPPORTED_QUANT",
    "BlockType",
    "block_type",
    "dequantize",
    "dequantize_rows",
    "quantize",
    "row_nbytes",
    "quantize_activations_q8_k",
    "quantize_activations_i8_per_token",
    "fp32_to_fp16_bits",
]

# raw tensor bytes: a uint8 view (bitnet.gguf's tensor_bytes), any contiguous array, or bytes
Buffer = Union[np.ndarray, bytes, bytearray, memoryview]



# ---------------------------------------------------------------------------------------
# Scalar conversions, as ggml does them
# ---------------------------------------------------------------------------------------


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


def _fp16_bytes(x: np.ndarray) -> np.ndarray:
    """float32 (..., 1) -> the 2 bytes of its ggml fp16, (..., 2) uint8."""
    return fp32_to_fp16_bits(x).astype("<u2").view(np.uint8)


def fp32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """ggml_compute_fp32_to_bf16 (ggml-impl.h): NaN forced quiet, else round to nearest even."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    is_nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
    quiet = (u >> 16) | 64
    return np.where(is_nan, quiet, rounded).astype(np.uint16)


def _roundf(x: np.ndarray) -> np.ndarray:
    """C roundf / lroundf on float32: nearest integer, halves away from zero.

    subtle: not np.trunc(x + 0.5): 0.49999997f + 0.5f rounds up to 1.0f in float32.
    a - floor(a) is exact in float32, so the tie test is exact.
    """
    a = np.abs(x)
    f = np.floor(a)
    return np.copysign(np.where(a - f >= 0.5, f + 1, f), x).astype(np.float32)


def _nearest_int(x: np.ndarray) -> np.ndarray:
    """ggml's nearest_int (ggml-quants.c): float32 -> int32 via the 1.5 * 2**23 trick.

    For |x| <= 4194303 this is round-half-to-even; beyond (and for inf/NaN) it is the
    same bit arithmetic the C does, so degenerate inputs give the C's (garbage) values.
    """
    val = (np.asarray(x, dtype=np.float32) + np.float32(12582912.0)).view(np.int32)
    return (val & 0x007FFFFF) - 0x00400000


def _c_float_to_int32(v: np.ndarray) -> np.ndarray:
    """(int)v for float32 v, as x86-64 does it (cvttss2si): truncate toward zero;
    NaN, inf and out-of-range give INT32_MIN. (Undefined behaviour in C.)"""
    t = np.trunc(np.asarray(v, dtype=np.float64))
    in_range = np.isfinite(t) & (t >= -(2.0**31)) & (t < 2.0**31)
    return np.where(in_range, t, -(2.0**31)).astype(np.int64).astype(np.int32)


def _c_float_to_int8(v: np.ndarray) -> np.ndarray:
    """(int8_t)v for float32 v as llama.cpp's x86-64 build computes it: the low byte of
    (int)v. For the sane range (-128, 128) that is plain truncation toward zero."""
    return _c_float_to_int32(v).astype(np.int8)  # numpy int32 -> int8 keeps the low byte


def _inverse(d: np.ndarray) -> np.ndarray:
    """`const float id = d ? 1.0f/d : 0.0f;` in float32 (1/subnormal may overflow to inf)."""
    nonzero = d != 0
    with np.errstate(over="ignore"):
        inv = np.float32(1.0) / np.where(nonzero, d, np.float32(1.0))
    return np.where(nonzero, inv, np.float32(0.0)).astype(np.float32)


def _signed_absmax(x: np.ndarray) -> np.ndarray:
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


def _first_min_max(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per row (min, max) as the C loop `if (v < min) min = v; if (v > max) max = v;`
    finds them: the first of equal extremes, which matters only for the sign of a zero
    (np.min may return 0.0 for [-0.0, 0.0]; the C returns -0.0). (n, k) -> 2 x (n, 1)."""
    lo = np.take_along_axis(x, np.argmin(x, axis=-1)[:, None], axis=-1)
    hi = np.take_along_axis(x, np.argmax(x, axis=-1)[:, None], axis=-1)
    return lo, hi


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """(n, 32) codes < 16 -> (n, 16) bytes: byte j = q[j] | q[j + 16] << 4 (block_q4_0.qs)."""
    return (q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)


def _unpack_nibbles(qs: np.ndarray) -> np.ndarray:
    """(n, 16) bytes -> (n, 32) codes: low nibbles are weights 0..15, high ones 16..31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


# ---------------------------------------------------------------------------------------
# The registry: one class per type
# ---------------------------------------------------------------------------------------


class BlockType:
    """A ggml tensor type. Subclasses implement block math on (n_blocks, ...) arrays."""

    type_id: ClassVar[int]
    name: ClassVar[str]
    block_size: ClassVar[int]  # weights per block
    type_size: ClassVar[int]  # bytes per block
    # the C struct, in order: (field name, bytes); "d"/"m"/"dmin" of 2 bytes are ggml_half
    fields: ClassVar[Tuple[Tuple[str, int], ...]]
    can_quantize: ClassVar[bool] = False

    @classmethod
    def split(cls, blocks: np.ndarray) -> List[np.ndarray]:
        """Cut (n_blocks, type_size) bytes into the struct's fields, in declaration order."""
        offsets = np.cumsum([size for _, size in cls.fields])[:-1]
        return np.split(blocks, offsets, axis=-1)

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        """(n_blocks, type_size) uint8 -> (n_blocks, block_size) float32."""
        raise NotImplementedError

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        """(n_blocks, block_size) float32 -> (n_blocks, type_size) uint8."""
        raise _unsupported(cls.type_id, "quantization")

    # -- tensor level: reshapes and checks ----------------------------------------------

    @classmethod
    def check_shape(cls, shape: Sequence[int]) -> Tuple[int, int]:
        """Validate a numpy-order shape; returns (n_elements, ne0)."""
        shape = tuple(int(s) for s in shape)
        if len(shape) == 0 or any(s < 0 for s in shape):
            raise GGUFError(f"{cls.name} tensor: invalid shape {shape}")
        ne0 = shape[-1]
        if ne0 % cls.block_size != 0:
            raise GGUFError(
                f"{cls.name} rows must hold a multiple of {cls.block_size} weights, "
                f"got ne0={ne0} (shape {shape})"
            )
        return math.prod(shape), ne0

    size_note: ClassVar[str] = ""  # explains the byte count in error messages

    @classmethod
    def checked_bytes(cls, data: Buffer, shape: Sequence[int]) -> Tuple[np.ndarray, int, int]:
        """The tensor's bytes as 1-D uint8, checked against its shape -> (buf, n, ne0)."""
        n, ne0 = cls.check_shape(shape)
        buf = _as_bytes(data)
        expected = tensor_nbytes(cls.type_id, n)
        if buf.size != expected:
            raise GGUFError(
                f"{cls.name} tensor of shape {tuple(shape)} ({n} weights) needs {expected} "
                f"bytes{cls.size_note}, got {buf.size}"
            )
        return buf, n, ne0

    @classmethod
    def dequantize_tensor(cls, data: Buffer, shape: Sequence[int]) -> np.ndarray:
        """Raw bytes of a whole tensor -> float32 array of `shape` (numpy order)."""
        buf, n, _ = cls.checked_bytes(data, shape)
        blocks = buf.reshape(n // cls.block_size, cls.type_size)
        with np.errstate(invalid="ignore", over="ignore"):  # inf/NaN scales: as the C, silently
            out = cls.dequantize_blocks(blocks)
        assert out.dtype == np.float32 and out.shape == (blocks.shape[0], cls.block_size)
        return out.reshape(tuple(shape))

    @classmethod
    def quantize_tensor(cls, x: np.ndarray) -> np.ndarray:
        """float32 (rows..., ne0) -> 1-D uint8 bytes of the whole tensor."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 0 or x.shape[-1] % cls.block_size != 0:
            raise ValueError(
                f"{cls.name} quantizes rows of a multiple of {cls.block_size} weights, "
                f"got shape {x.shape}"
            )
        blocks = x.reshape(-1, cls.block_size)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # degenerate blocks
            out = cls.quantize_blocks(blocks)
        assert out.dtype == np.uint8 and out.shape == (blocks.shape[0], cls.type_size)
        return out.reshape(-1)

    @classmethod
    def row_nbytes(cls, ne0: int) -> int:
        """Bytes of one row of ne0 weights (llama.cpp's ggml_row_size)."""
        return (ne0 // cls.block_size) * cls.type_size

    @classmethod
    def gather_rows(cls, buf: np.ndarray, n: int, ne0: int, idx: np.ndarray) -> np.ndarray:
        """The bytes of a smaller tensor made of rows `idx` of this one."""
        rb = cls.row_nbytes(ne0)
        return buf[: (n // ne0) * rb].reshape(n // ne0, rb)[idx].reshape(-1)

    @classmethod
    def dequantize_rows(cls, data: Buffer, shape: Sequence[int], rows: Sequence[int]) -> np.ndarray:
        """Selected rows (indices into the flattened leading dims) -> (len(rows), ne0)."""
        buf, n, ne0 = cls.checked_bytes(data, shape)
        n_rows = n // ne0 if ne0 else 0
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
            raise IndexError(f"row index out of range for {n_rows} rows: {idx.min()}..{idx.max()}")
        if n == 0:
            return np.zeros((idx.size, ne0), dtype=np.float32)
        return cls.dequantize_tensor(cls.gather_rows(buf, n, ne0, idx), (idx.size, ne0))


_REGISTRY: Dict[int, Type[BlockType]] = {}


def _register(type_id: int) -> Callable[[Type[BlockType]], Type[BlockType]]:
    """Class decorator: bind a BlockType to its row of GGML_TYPES."""

    def wrap(cls: Type[BlockType]) -> Type[BlockType]:
        t = GGML_TYPES[type_id]
        cls.type_id, cls.name = t.id, t.name
        cls.block_size, cls.type_size = t.block_size, t.type_size
        layout = sum(size for _, size in cls.fields)
        assert layout == t.type_size, f"{t.name}: fields sum to {layout}, table: {t.type_size}"
        assert type_id not in _REGISTRY
        _REGISTRY[type_id] = cls
        return cls

    return wrap


def _type_label(type_id: int) -> str:
    if type_id in GGML_TYPES:
        return f"{GGML_TYPES[type_id].name} (type {type_id})"
    if type_id in REMOVED_TYPE_NAMES:
        return f"{REMOVED_TYPE_NAMES[type_id]} (type {type_id}, removed from ggml)"
    return f"unknown ggml type {type_id}"


def _unsupported(type_id: int, what: str) -> UnsupportedError:
    ok = SUPPORTED_QUANT if what == "quantization" else SUPPORTED_DEQUANT
    names = ", ".join(GGML_TYPES[i].name for i in sorted(ok))
    label = _type_label(type_id)
    return UnsupportedError(f"{what} of {label} is not supported; supported: {names}")


def _as_bytes(data: Buffer) -> np.ndarray:
    """Any contiguous array or buffer -> 1-D uint8 view of its bytes (no copy if possible)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def block_type(type_id: int, what: str = "dequantization") -> Type[BlockType]:
    """The BlockType class for a ggml type id; UnsupportedError naming it otherwise."""
    cls = _REGISTRY.get(int(type_id))
    if cls is None:
        raise _unsupported(int(type_id), what)
    return cls


# ---------------------------------------------------------------------------------------
# Float types
# ---------------------------------------------------------------------------------------


@_register(GGMLType.F32)
class _F32(BlockType):
    fields = (("value", 4),)
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        return blocks.view("<f4").astype(np.float32)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return x.astype("<f4").view(np.uint8)


@_register(GGMLType.F16)
class _F16(BlockType):
    """ggml_fp16_to_fp32_row / ggml_fp32_to_fp16_row."""

    fields = (("value", 2),)
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        return fp16_to_fp32(blocks)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        return _fp16_bytes(x)


@_register(GGMLType.BF16)
class _BF16(BlockType):
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


# ---------------------------------------------------------------------------------------
# 32-weight blocks: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0
# ---------------------------------------------------------------------------------------


@_register(GGMLType.Q4_0)
class _Q4_0(BlockType):
    """block_q4_0 {half d; uint8 qs[16]}: w = (nibble - 8) * d; weight j in the low nibble
    of qs[j], weight j + 16 in the high nibble. dequantize_row_q4_0 / quantize_row_q4_0_ref."""

    fields = (("d", 2), ("qs", 16))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, qs = cls.split(blocks)
        q = _unpack_nibbles(qs).astype(np.int32) - 8
        return q.astype(np.float32) * fp16_to_fp32(d)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        d = _signed_absmax(x) / np.float32(-8)
        xi = _c_float_to_int8(x * _inverse(d) + np.float32(8.5))  # (int8_t)(x0 + 8.5f)
        q = np.minimum(15, xi.astype(np.int32)).astype(np.uint8)  # MIN(15, ...) -> uint8_t
        return np.concatenate([_fp16_bytes(d), _pack_nibbles(q)], axis=-1)


@_register(GGMLType.Q4_1)
class _Q4_1(BlockType):
    """block_q4_1 {half d; half m; uint8 qs[16]}: w = nibble * d + m.
    dequantize_row_q4_1 / quantize_row_q4_1_ref."""

    fields = (("d", 2), ("m", 2), ("qs", 16))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, m, qs = cls.split(blocks)
        q = _unpack_nibbles(qs).astype(np.float32)
        return q * fp16_to_fp32(d) + fp16_to_fp32(m)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        lo, hi = _first_min_max(x)
        with np.errstate(over="ignore", invalid="ignore"):
            d = (hi - lo) / np.float32(15)
            xi = _c_float_to_int8((x - lo) * _inverse(d) + np.float32(0.5))
        q = np.minimum(15, xi.astype(np.int32)).astype(np.uint8)
        return np.concatenate([_fp16_bytes(d), _fp16_bytes(lo), _pack_nibbles(q)], axis=-1)


def _q5_high_bits(qh: np.ndarray) -> np.ndarray:
    """(n, 4) bytes of a little-endian uint32 -> (n, 32) bit j (the 5th bit of weight j)."""
    return np.unpackbits(qh, axis=-1, bitorder="little")


def _pack_q5(q: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(n, 32) 5-bit codes -> (qh (n, 4), qs (n, 16)) as block_q5_0/1 store them."""
    qh = np.packbits((q >> 4) & 1, axis=-1, bitorder="little")
    return qh, _pack_nibbles(q)


@_register(GGMLType.Q5_0)
class _Q5_0(BlockType):
    """block_q5_0 {half d; uint8 qh[4]; uint8 qs[16]}: w = ((nibble | bit << 4) - 16) * d.
    dequantize_row_q5_0 / quantize_row_q5_0_ref."""

    fields = (("d", 2), ("qh", 4), ("qs", 16))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, qh, qs = cls.split(blocks)
        q = (_unpack_nibbles(qs) | (_q5_high_bits(qh) << 4)).astype(np.int32) - 16
        return q.astype(np.float32) * fp16_to_fp32(d)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        d = _signed_absmax(x) / np.float32(-16)
        xi = _c_float_to_int8(x * _inverse(d) + np.float32(16.5))
        q = np.minimum(31, xi.astype(np.int32)).astype(np.uint8)
        qh, qs = _pack_q5(q)
        return np.concatenate([_fp16_bytes(d), qh, qs], axis=-1)


@_register(GGMLType.Q5_1)
class _Q5_1(BlockType):
    """block_q5_1 {half d; half m; uint8 qh[4]; uint8 qs[16]}: w = (nibble | bit << 4) * d + m.
    dequantize_row_q5_1 / quantize_row_q5_1_ref."""

    fields = (("d", 2), ("m", 2), ("qh", 4), ("qs", 16))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        d, m, qh, qs = cls.split(blocks)
        q = (_unpack_nibbles(qs) | (_q5_high_bits(qh) << 4)).astype(np.float32)
        return q * fp16_to_fp32(d) + fp16_to_fp32(m)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        lo, hi = _first_min_max(x)
        with np.errstate(over="ignore", invalid="ignore"):
            d = (hi - lo) / np.float32(31)
            # (uint8_t)(x0 + 0.5f): no MIN here in the C; the value never exceeds 31.5
            q = _c_float_to_int8((x - lo) * _inverse(d) + np.float32(0.5)).view(np.uint8)
        qh, qs = _pack_q5(q)
        return np.concatenate([_fp16_bytes(d), _fp16_bytes(lo), qh, qs], axis=-1)


@_register(GGMLType.Q8_0)
class _Q8_0(BlockType):
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
            q = _c_float_to_int8(_roundf(x * _inverse(d)))  # qs[j] = roundf(x0)
        return np.concatenate([_fp16_bytes(d), q.view(np.uint8)], axis=-1)


# ---------------------------------------------------------------------------------------
# k-quant quantizers (quantize_row_q{2,3,4,5,6}_K_ref, no importance matrix)
# ---------------------------------------------------------------------------------------
#
# Mirrored float32 op for float32 op, in the C's evaluation order. The C loops over one
# sub-block's weights sequentially, accumulating sums; here every sub-block of the tensor is
# processed at once (arrays of shape (m,) per weight position) and the positions are walked
# in the same order, so every sum is formed exactly as in the C. llama-cpp-python's
# libggml-base (where these reference quantizers live) is compiled for baseline x86-64: SSE
# scalar arithmetic, no FMA contraction (checked: no vfmadd in its disassembly), so the
# results are platform-independent on x86-64 builds of that kind.

_F0, _F1 = np.float32(0), np.float32(1)
GROUP_MAX_EPS = np.float32(1e-15)


def _f(v: float) -> np.float32:
    return np.float32(v)


def _make_qkx2_quants(x: np.ndarray, w: np.ndarray, nmax: int, rmin: float, rdelta: float,
                      nstep: int, use_mad: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """make_qkx2_quants on m sub-blocks at once: x, w (m, n) float32 ->
    (scale (m,), the_min (m,) = -min, L (m, n) int32 codes in [0, nmax])."""
    m, n = x.shape
    xt, wt = np.ascontiguousarray(x.T), np.ascontiguousarray(w.T)
    lo, hi = _first_min_max(x)
    lo, hi = lo[:, 0], hi[:, 0]
    sum_w = wt[0].copy()
    sum_x = sum_w * xt[0]
    for i in range(1, n):
        sum_w = sum_w + wt[i]
        sum_x = sum_x + wt[i] * xt[i]
    lo = np.where(lo > 0, _F0, lo).astype(np.float32)  # `if (min > 0) min = 0;`
    flat = hi == lo
    fnmax = _f(nmax)
    iscale = fnmax / (hi - lo)
    scale = _F1 / iscale
    L = np.empty((n, m), dtype=np.int32)
    best = np.zeros(m, dtype=np.float32)
    for i in range(n):
        L[i] = np.clip(_nearest_int(iscale * (xt[i] - lo)), 0, nmax)
        diff = scale * L[i].astype(np.float32) + lo - xt[i]
        diff = np.abs(diff) if use_mad else diff * diff
        best = best + wt[i] * diff
    the_min = lo.copy()  # the C's `min`: each step's codes use the best one so far
    if nstep >= 1:
        laux = np.empty((n, m), dtype=np.int32)
        for step in range(nstep + 1):
            iscale = (_f(rmin) + _f(rdelta) * _f(step) + fnmax) / (hi - the_min)
            sum_l = np.zeros(m, dtype=np.float32)
            sum_l2 = np.zeros(m, dtype=np.float32)
            sum_xl = np.zeros(m, dtype=np.float32)
            for i in range(n):
                laux[i] = np.clip(_nearest_int(iscale * (xt[i] - the_min)), 0, nmax)
                fl = laux[i].astype(np.float32)
                wl = wt[i] * fl
                sum_l = sum_l + wl
                sum_l2 = sum_l2 + wl * fl
                sum_xl = sum_xl + wl * xt[i]
            big_d = sum_w * sum_l2 - sum_l * sum_l
            ok = big_d > 0
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / big_d
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / big_d
            pos = this_min > 0
            this_min = np.where(pos, _F0, this_min).astype(np.float32)
            this_scale = np.where(pos, sum_xl / sum_l2, this_scale).astype(np.float32)
            cur = np.zeros(m, dtype=np.float32)
            for i in range(n):
                diff = this_scale * laux[i].astype(np.float32) + this_min - xt[i]
                diff = np.abs(diff) if use_mad else diff * diff
                cur = cur + wt[i] * diff
            better = ok & (cur < best)
            L = np.where(better[None, :], laux, L)
            best = np.where(better, cur, best).astype(np.float32)
            scale = np.where(better, this_scale, scale).astype(np.float32)
            the_min = np.where(better, this_min, the_min).astype(np.float32)
    # `if (max == min)`: all codes 0, scale 0, min as found
    L[:, flat] = 0
    scale = np.where(flat, _F0, scale).astype(np.float32)
    the_min = np.where(flat, lo, the_min).astype(np.float32)
    return scale, (-the_min).astype(np.float32), np.ascontiguousarray(L.T)


def _make_qx_quants_rmse1(x: np.ndarray, nmax: int) -> Tuple[np.ndarray, np.ndarray]:
    """make_qx_quants(n, nmax, x, L, rmse_type=1, qw=NULL) on m sub-blocks:
    x (m, n) -> (scale (m,), L (m, n) int32 codes in [0, 2 nmax))."""
    m, n = x.shape
    xt = np.ascontiguousarray(x.T)
    mx = _signed_absmax(x)[:, 0]
    zero = np.abs(mx) < GROUP_MAX_EPS
    fnmax = _f(nmax)
    w = xt * xt  # rmse_type 1: w = x[i] * x[i]
    wx = w * xt

    def sums(iscale: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        sumlx = np.zeros(m, dtype=np.float32)
        suml2 = np.zeros(m, dtype=np.float32)
        L = np.empty((n, m), dtype=np.int32)
        for i in range(n):
            lv = np.clip(_nearest_int(iscale * xt[i]), -nmax, nmax - 1)
            L[i] = lv + nmax
            fl = lv.astype(np.float32)
            sumlx = sumlx + wx[i] * fl
            suml2 = suml2 + w[i] * fl * fl
        return sumlx, suml2, L

    iscale = -fnmax / mx
    sumlx, suml2, L = sums(iscale)
    scale = np.where(suml2 != 0, sumlx / suml2, _F0).astype(np.float32)
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = -(fnmax + _f(0.1) * _f(step)) / mx
        sumlx, suml2, L2 = sums(iscale)
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        L = np.where(better[None, :], L2, L)
        scale = np.where(better, sumlx / suml2, scale).astype(np.float32)
        best = np.where(better, scale * sumlx, best).astype(np.float32)
    L[:, zero] = 0
    scale = np.where(zero, _F0, scale).astype(np.float32)
    return scale, np.ascontiguousarray(L.T)


def _make_q3_quants_rmse(x: np.ndarray, nmax: int) -> Tuple[np.ndarray, np.ndarray]:
    """make_q3_quants(n, nmax, x, L, do_rmse=true) on m sub-blocks:
    x (m, n) -> (scale (m,), L (m, n) int32 codes in [0, 2 nmax); 0 for all-zero blocks)."""
    m, n = x.shape
    xt = np.ascontiguousarray(x.T)
    mx = _signed_absmax(x)[:, 0]
    zero = np.abs(mx) < GROUP_MAX_EPS
    iscale = -_f(nmax) / mx
    w = xt * xt
    wx = w * xt
    L = np.empty((n, m), dtype=np.int32)
    sumlx = np.zeros(m, dtype=np.float32)
    suml2 = np.zeros(m, dtype=np.float32)
    for i in range(n):
        L[i] = np.clip(_nearest_int(iscale * xt[i]), -nmax, nmax - 1)
        fl = L[i].astype(np.float32)
        sumlx = sumlx + wx[i] * fl
        suml2 = suml2 + w[i] * fl * fl
    active = ~zero
    for _ in range(5):
        changed = np.zeros(m, dtype=bool)
        for i in range(n):
            fl = L[i].astype(np.float32)
            slx = sumlx - wx[i] * fl
            go = active & (slx > 0)
            sl2 = suml2 - w[i] * fl * fl
            new_l = np.clip(_nearest_int(xt[i] * sl2 / slx), -nmax, nmax - 1)
            go &= new_l != L[i]
            fn = new_l.astype(np.float32)
            slx = slx + wx[i] * fn
            sl2 = sl2 + w[i] * fn * fn
            take = go & (sl2 > 0) & (slx * slx * suml2 > sumlx * sumlx * sl2)
            L[i] = np.where(take, new_l, L[i])
            sumlx = np.where(take, slx, sumlx).astype(np.float32)
            suml2 = np.where(take, sl2, suml2).astype(np.float32)
            changed |= take
        active &= changed
        if not active.any():
            break
    L = L + nmax
    L[:, zero] = 0
    scale = np.where(suml2 > 0, sumlx / suml2, _F0).astype(np.float32)
    scale = np.where(zero, _F0, scale).astype(np.float32)
    return scale, np.ascontiguousarray(L.T)


def _pack_k4_scales(ls: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(nb, 8) 6-bit scales and mins -> the 12 bytes get_scale_min_k4 reads."""
    out = np.zeros((ls.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = ls[:, 0:4] | ((ls[:, 4:8] >> 4) << 6)
    out[:, 4:8] = lm[:, 0:4] | ((lm[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (ls[:, 4:8] & 0xF) | ((lm[:, 4:8] & 0xF) << 4)
    return out


def _k4_super_block(x: np.ndarray, nmax: int, rmin: float, nstep: int
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shared body of quantize_row_q4_K_ref / q5_K_ref for x (nb, 256):
    -> (d bytes (nb, 2), dmin bytes (nb, 2), scales (nb, 12), L (nb, 256) codes)."""
    nb = x.shape[0]
    sub = x.reshape(nb * 8, 32)
    sub_t = np.ascontiguousarray(sub.T)
    sum_x2 = np.zeros(nb * 8, dtype=np.float32)
    for i in range(32):
        sum_x2 = sum_x2 + sub_t[i] * sub_t[i]
    av_x = np.sqrt(sum_x2 / _f(32))
    weights = av_x[:, None] + np.abs(sub)
    scales, mins, L = _make_qkx2_quants(sub, weights, nmax, rmin, 0.1, nstep, False)
    scales, mins, L = scales.reshape(nb, 8), mins.reshape(nb, 8), L.reshape(nb, 256)
    # `if (scale > max_scale) max_scale = scale;` from 0: NaNs and non-positives never win
    max_scale = np.fmax.reduce(np.where(scales > 0, scales, _F0), axis=1)
    max_min = np.fmax.reduce(np.where(mins > 0, mins, _F0), axis=1)
    inv_scale = np.where(max_scale > 0, _f(63) / np.where(max_scale > 0, max_scale, _F1), _F0)
    inv_min = np.where(max_min > 0, _f(63) / np.where(max_min > 0, max_min, _F1), _F0)
    ls = np.minimum(63, _nearest_int(inv_scale[:, None].astype(np.float32) * scales) & 0xFF)
    lm = np.minimum(63, _nearest_int(inv_min[:, None].astype(np.float32) * mins) & 0xFF)
    d16 = _fp16_bytes((max_scale / _f(63))[:, None])
    dmin16 = _fp16_bytes((max_min / _f(63))[:, None])
    d = fp16_to_fp32(d16)[:, 0][:, None] * ls.astype(np.float32)  # (nb, 8)
    dm = fp16_to_fp32(dmin16)[:, 0][:, None] * lm.astype(np.float32)
    xs = x.reshape(nb, 8, 32)
    requant = np.clip(_nearest_int((xs + dm[:, :, None]) / d[:, :, None]), 0, nmax)
    L = np.where((d != 0)[:, :, None], requant, L.reshape(nb, 8, 32)).reshape(nb, 256)
    return d16, dmin16, _pack_k4_scales(ls.astype(np.uint8), lm.astype(np.uint8)), L


def _quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """quantize_row_q4_K_ref: (nb, 256) -> (nb, 144) bytes."""
    nb = x.shape[0]
    d16, dmin16, scales, L = _k4_super_block(x, 15, -1.0, 20)
    q = L.reshape(nb, 4, 2, 32).astype(np.uint8)
    qs = (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(nb, 128)
    return np.concatenate([d16, dmin16, scales, qs], axis=-1)


def _quantize_q5_k(x: np.ndarray) -> np.ndarray:
    """quantize_row_q5_K_ref: (nb, 256) -> (nb, 176) bytes."""
    nb = x.shape[0]
    d16, dmin16, scales, L = _k4_super_block(x, 31, -0.5, 15)
    q = L.reshape(nb, 4, 2, 32).astype(np.uint8)
    qs = ((q[:, :, 0] & 0xF) | ((q[:, :, 1] & 0xF) << 4)).reshape(nb, 128)
    high = (L.reshape(nb, 8, 32) >> 4).astype(np.uint8)  # bit k of qh[j]: weight 32k + j
    qh = np.zeros((nb, 32), dtype=np.uint8)
    for k in range(8):
        qh |= high[:, k] << k
    return np.concatenate([d16, dmin16, scales, qh, qs], axis=-1)


def _quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """quantize_row_q6_K_ref: (nb, 256) -> (nb, 210) bytes."""
    nb = x.shape[0]
    scales, L = _make_qx_quants_rmse1(x.reshape(nb * 16, 16), 32)
    scales, L = scales.reshape(nb, 16), L.reshape(nb, 16, 16)
    max_scale = _signed_absmax(scales)[:, 0]
    zero = np.abs(max_scale) < GROUP_MAX_EPS
    iscale = _f(-128) / max_scale
    d16 = _fp16_bytes((_F1 / iscale)[:, None])
    sc = np.minimum(127, _nearest_int(iscale[:, None] * scales)).astype(np.int8)
    d = fp16_to_fp32(d16)[:, 0][:, None] * sc.astype(np.float32)  # (nb, 16)
    requant = np.clip(_nearest_int(x.reshape(nb, 16, 16) / d[:, :, None]), -32, 31) + 32
    L = np.where((d != 0)[:, :, None], requant, L).reshape(nb, 2, 4, 32).astype(np.uint8)
    ql = np.concatenate([L[:, :, 0] & 0xF | ((L[:, :, 2] & 0xF) << 4),
                         L[:, :, 1] & 0xF | ((L[:, :, 3] & 0xF) << 4)], axis=-1)  # (nb, 2, 64)
    qh = (L[:, :, 0] >> 4) | ((L[:, :, 1] >> 4) << 2) | ((L[:, :, 2] >> 4) << 4) \
        | ((L[:, :, 3] >> 4) << 6)
    out = np.concatenate([ql.reshape(nb, 128), qh.reshape(nb, 64), sc.view(np.uint8), d16],
                         axis=-1)
    out[zero] = 0  # memset(&y[i], 0, ...); d = fp16(0.f)
    return out


def _pack_2bit(L: np.ndarray) -> np.ndarray:
    """(nb, 256) codes < 4 -> (nb, 64): qs[32h + l] holds 128h + l + 32s in bits 2s+1:2s."""
    q = L.reshape(L.shape[0], 2, 4, 32).astype(np.uint8)
    return (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).reshape(-1, 64)


def _quantize_q2_k(x: np.ndarray) -> np.ndarray:
    """quantize_row_q2_K_ref: (nb, 256) -> (nb, 84) bytes."""
    nb = x.shape[0]
    sub = x.reshape(nb * 16, 16)
    scales, mins, L = _make_qkx2_quants(sub, np.abs(sub), 3, -0.5, 0.1, 15, True)
    scales, mins, L = scales.reshape(nb, 16), mins.reshape(nb, 16), L.reshape(nb, 16, 16)
    max_scale = np.fmax.reduce(np.where(scales > 0, scales, _F0), axis=1)
    max_min = np.fmax.reduce(np.where(mins > 0, mins, _F0), axis=1)
    q4 = _f(15)
    has_s, has_m = max_scale > 0, max_min > 0
    isc = q4 / np.where(has_s, max_scale, _F1)
    imn = q4 / np.where(has_m, max_min, _F1)
    sc = np.where(has_s[:, None], _nearest_int(isc[:, None] * scales), 0)
    sc = (sc | np.where(has_m[:, None], _nearest_int(imn[:, None] * mins) << 4, 0)) & 0xFF
    d16 = _fp16_bytes(np.where(has_s, max_scale / q4, _F0)[:, None])
    dmin16 = _fp16_bytes(np.where(has_m, max_min / q4, _F0)[:, None])
    d = fp16_to_fp32(d16)[:, 0][:, None] * (sc & 0xF).astype(np.float32)
    dm = fp16_to_fp32(dmin16)[:, 0][:, None] * (sc >> 4).astype(np.float32)
    requant = np.clip(_nearest_int((x.reshape(nb, 16, 16) + dm[:, :, None]) / d[:, :, None]), 0, 3)
    L = np.where((d != 0)[:, :, None], requant, L).reshape(nb, 256)
    return np.concatenate([sc.astype(np.uint8), _pack_2bit(L), d16, dmin16], axis=-1)


def _quantize_q3_k(x: np.ndarray) -> np.ndarray:
    """quantize_row_q3_K_ref: (nb, 256) -> (nb, 110) bytes."""
    nb = x.shape[0]
    scales, L = _make_q3_quants_rmse(x.reshape(nb * 16, 16), 4)
    scales, L = scales.reshape(nb, 16), L.reshape(nb, 16, 16)
    max_scale = _signed_absmax(scales)[:, 0]
    nonzero = max_scale != 0
    iscale = _f(-32) / np.where(nonzero, max_scale, _F1)
    ls = np.clip(_nearest_int(iscale[:, None] * scales).astype(np.int8), -32, 31) + 32
    ls = np.where(nonzero[:, None], ls, 0).astype(np.uint8)  # scales memset to 0
    packed = np.zeros((nb, 12), dtype=np.uint8)
    packed[:, :8] = (ls[:, :8] & 0xF) | ((ls[:, 8:] & 0xF) << 4)
    hi = ls >> 4
    for j in range(16):
        packed[:, 8 + j % 4] |= hi[:, j] << (2 * (j // 4))
    d16 = _fp16_bytes(np.where(nonzero, _F1 / iscale, _F0)[:, None])
    sc = np.where(nonzero[:, None], ls.astype(np.int32) - 32, -32)  # what the C reads back
    d = fp16_to_fp32(d16)[:, 0][:, None] * sc.astype(np.float32)
    requant = np.clip(_nearest_int(x.reshape(nb, 16, 16) / d[:, :, None]), -4, 3) + 4
    L = np.where((d != 0)[:, :, None], requant, L).reshape(nb, 256)
    hmask = np.zeros((nb, 32), dtype=np.uint8)
    high = (L > 3).reshape(nb, 8, 32).astype(np.uint8)  # bit k of hmask[m]: weight 32k + m
    for k in range(8):
        hmask |= high[:, k] << k
    L = np.where(L > 3, L - 4, L)
    return np.concatenate([hmask, _pack_2bit(L), packed, d16], axis=-1)


# ---------------------------------------------------------------------------------------
# k-quants: 256-weight super-blocks
# ---------------------------------------------------------------------------------------


@_register(GGMLType.Q2_K)
class _Q2_K(BlockType):
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
        return _quantize_q2_k(x)


@_register(GGMLType.Q3_K)
class _Q3_K(BlockType):
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
        return _quantize_q3_k(x)


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


@_register(GGMLType.Q4_K)
class _Q4_K(BlockType):
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
        return _quantize_q4_k(x)


@_register(GGMLType.Q5_K)
class _Q5_K(BlockType):
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
        return _quantize_q5_k(x)


@_register(GGMLType.Q6_K)
class _Q6_K(BlockType):
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
        return _quantize_q6_k(x)


@_register(GGMLType.Q8_K)
class _Q8_K(BlockType):
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
        mx = _signed_absmax(x)
        zero = mx == 0  # `if (!amax)`: d = 0, all codes 0
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            iscale = np.float32(-127.0) / np.where(zero, np.float32(1), mx)
            v = _nearest_int(iscale * x)
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


# ---------------------------------------------------------------------------------------
# Ternary types: TQ1_0, TQ2_0 (llama.cpp) and I2_S (bitnet.cpp)
# ---------------------------------------------------------------------------------------


def _ternary_codes(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The shared head of quantize_row_tq{1,2}_0_ref: d = max|x| per block, and
    codes xi = lroundf(x * (1/d)) + 1 in {0, 1, 2}. Returns (d (n, 1), xi (n, 256) int32)."""
    d = np.abs(x).max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        r = _roundf(x * _inverse(d))
    # lroundf of NaN (0 * inf when d is subnormal, or an inf weight): x86-64 glibc returns
    # LONG_MIN, and `int xi = LONG_MIN + 1` keeps the low 32 bits: 1.
    xi = np.where(np.isfinite(r), r + 1, 1).astype(np.int32)
    return d, xi


_POW3 = np.array([1, 3, 9, 27, 81, 243], dtype=np.uint8)


@_register(GGMLType.TQ1_0)
class _TQ1_0(BlockType):
    """block_tq1_0 {uint8 qs[48]; uint8 qh[4]; half d}: 5 trits per byte (4 in qh), stored
    as ceil(value * 256 / 243) so that trit n is ((uint8)(byte * 3**n) * 3) >> 8.
    dequantize_row_tq1_0 / quantize_row_tq1_0_ref; w = (trit - 1) * d.

    Weights 0..159: qs[m] for m < 32 holds weights m + 32n (n = 0..4, most significant first);
    weights 160..239: qs[32 + m] (m < 16) holds 160 + m + 16n;
    weights 240..255: qh[j] holds 240 + j + 4n (n = 0..3), then one more * 3.
    """

    fields = (("qs", 48), ("qh", 4), ("d", 2))
    can_quantize = True

    @staticmethod
    def _trits(packed: np.ndarray, n_trits: int) -> np.ndarray:
        """(n, k) bytes -> (n, n_trits, k): trit t of byte b is ((uint8)(b * 3**t) * 3) >> 8."""
        q = packed[:, None, :] * _POW3[None, :n_trits, None]  # uint8 multiply wraps mod 256
        return ((q.astype(np.uint16) * 3) >> 8).astype(np.int8)

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        n = blocks.shape[0]
        qs, qh, d = cls.split(blocks)
        t = np.concatenate(
            [
                cls._trits(qs[:, :32], 5).reshape(n, 160),
                cls._trits(qs[:, 32:], 5).reshape(n, 80),
                cls._trits(qh, 4).reshape(n, 16),
            ],
            axis=-1,
        )
        return (t - np.int8(1)).astype(np.float32) * fp16_to_fp32(d)

    @staticmethod
    def _pack(xi: np.ndarray, width: int, n_trits: int, extra_shift: bool) -> np.ndarray:
        """(n, n_trits * width) codes -> (n, width) bytes; byte m packs xi[m + width * t],
        t = 0 first (most significant trit)."""
        n = xi.shape[0]
        q = np.zeros((n, width), dtype=np.int32)
        for t in range(n_trits):
            q = (q * 3 + xi[:, t * width : (t + 1) * width]) & 0xFF  # uint8_t q arithmetic
        if extra_shift:
            q = (q * 3) & 0xFF  # "shift the first value to the most significant trit"
        return ((q * 256 + (243 - 1)) // 243).astype(np.uint8)  # ceiling division

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        d, xi = _ternary_codes(x)
        qs0 = cls._pack(xi[:, :160], 32, 5, False)
        qs1 = cls._pack(xi[:, 160:240], 16, 5, False)
        qh = cls._pack(xi[:, 240:], 4, 4, True)
        return np.concatenate([qs0, qs1, qh, _fp16_bytes(d)], axis=-1)


@_register(GGMLType.TQ2_0)
class _TQ2_0(BlockType):
    """block_tq2_0 {uint8 qs[64]; half d}: byte 32c + m (c = 0, 1; m < 32) holds weights
    128c + m + 32n (n = 0..3) in bits 2n+1:2n; w = (code - 1) * d.
    dequantize_row_tq2_0 / quantize_row_tq2_0_ref."""

    fields = (("qs", QK_K // 4), ("d", 2))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        n = blocks.shape[0]
        qs, d = cls.split(blocks)
        shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]
        q = (qs.reshape(n, 2, 1, 32) >> shifts) & 3  # (n, c, n-th pair, m)
        q = q.reshape(n, QK_K).astype(np.int8) - np.int8(1)
        return q.astype(np.float32) * fp16_to_fp32(d)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        d, xi = _ternary_codes(x)
        q = (xi & 3).reshape(n, 2, 4, 32) << np.array([0, 2, 4, 6])[None, None, :, None]
        qs = q.sum(axis=2).astype(np.uint8).reshape(n, QK_K // 4)
        return np.concatenate([qs, _fp16_bytes(d)], axis=-1)


I2_S_ZERO_THRESHOLD = 1e-6  # bitnet.cpp: |w| < 1e-6 is stored as 0


@_register(GGMLType.I2_S)
class _I2_S(BlockType):
    """bitnet.cpp's I2_S: 2-bit codes 0/1/2 = -1/0/+1, blocks of 128 weights in 32 bytes,
    byte b of a block holds weights b, b + 32, b + 64, b + 96 in bits 7:6, 5:4, 3:2, 1:0
    (the reverse of TQ2_0's order); ONE float32 scale for the whole tensor, in the first 4
    of 32 bytes after all the packed data (tensor bytes = n/4 + 32). w = scale * (code - 1).

    Mirrors `quantize_i2_s` (microsoft/BitNet src/ggml-bitnet-mad.cpp, x86 / ACT_PARALLEL
    layout): scale = max|W| over the tensor (in double, stored as float32); each weight
    with |w| < 1e-6 gets code 1 (zero), others code 2 if w > 0 else 0. The weights are
    expected to be ternary already (BitNet b1.58 checkpoints store {-s, 0, +s}); this
    is a sign quantizer, not an absmean one. Code 3 is never written; as bitnet.cpp's dot
    kernel computes sum(code * y) - sum(y), it counts as +2 here too.

    FIXME(layout variants): bitnet.cpp's ARM build packs 64-weight blocks (byte b holds
    b, b+16, b+32, b+48) and some x86 builds without ACT_PARALLEL interleave 4 rows per
    byte; the GGUF type id is 36 for all of them and nothing in the file says which. This
    class reads the 128-block x86 layout that the published GGUF files use.
    """

    fields = (("qs", 32),)  # + the per-tensor float32 scale after all blocks
    size_note = f" (n/4 packed + {I2_S_SCALE_BYTES} for the scale)"
    can_quantize = True

    @classmethod
    def codes(cls, packed: np.ndarray) -> np.ndarray:
        """(n_blocks, 32) bytes -> (n_blocks, 128) codes 0..3."""
        n = packed.shape[0]
        shifts = np.array([6, 4, 2, 0], dtype=np.uint8)[None, :, None]
        return ((packed.reshape(n, 1, 32) >> shifts) & 3).reshape(n, 128)

    @classmethod
    def pack(cls, codes: np.ndarray) -> np.ndarray:
        """(n_blocks, 128) codes -> (n_blocks, 32) bytes."""
        c = codes.astype(np.uint8).reshape(-1, 4, 32)
        return (c[:, 0] << 6) | (c[:, 1] << 4) | (c[:, 2] << 2) | c[:, 3]

    @classmethod
    def dequantize_tensor(cls, data: Buffer, shape: Sequence[int]) -> np.ndarray:
        buf, n, _ = cls.checked_bytes(data, shape)
        scale = np.float32(buf[n // 4 : n // 4 + 4].view("<f4")[0])
        codes = cls.codes(buf[: n // 4].reshape(-1, 32))
        q = (codes.astype(np.int8) - np.int8(1)).astype(np.float32)
        with np.errstate(invalid="ignore"):
            return (scale * q).reshape(tuple(shape))

    @classmethod
    def quantize_tensor(cls, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 0 or x.shape[-1] % 128 != 0:
            raise ValueError(
                f"I2_S quantizes rows of a multiple of 128 weights, got shape {x.shape}"
            )
        w = x.reshape(-1).astype(np.float64)
        scale = float(np.fmax.reduce(np.abs(w), initial=0.0))  # fmax: NaN ignored, as in C
        with np.errstate(invalid="ignore"):
            codes = np.where(np.abs(w) < I2_S_ZERO_THRESHOLD, 1, np.where(w * scale > 0, 2, 0))
        tail = np.zeros(I2_S_SCALE_BYTES, dtype=np.uint8)
        tail[:4] = np.array([scale], dtype="<f4").view(np.uint8)
        return np.concatenate([cls.pack(codes.reshape(-1, 128)).reshape(-1), tail])

    @classmethod
    def row_nbytes(cls, ne0: int) -> int:
        return ne0 // 4

    @classmethod
    def gather_rows(cls, buf: np.ndarray, n: int, ne0: int, idx: np.ndarray) -> np.ndarray:
        """Picked rows' packed bytes followed by this tensor's 32-byte scale tail."""
        packed = buf[: n // 4].reshape(n // ne0, ne0 // 4)[idx].reshape(-1)
        return np.concatenate([packed, buf[n // 4 :]])


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------

SUPPORTED_DEQUANT: FrozenSet[int] = frozenset(_REGISTRY)
SUPPORTED_QUANT: FrozenSet[int] = frozenset(i for i, c in _REGISTRY.items() if c.can_quantize)


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
        raise _unsupported(int(type_id), "quantization")
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
    d, qs, _ = _Q8_K.quantize_fields(x.reshape(-1, QK_K))
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
    v = _nearest_int(prod) if ties == "even" else _roundf(prod)
    q = np.clip(v, -128, 127).astype(np.int8)
    return q, scale
