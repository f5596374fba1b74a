"""The quant registry: `BlockType` (one subclass per ggml type, registered by type id with
`register`) and `block_type(type_id)`."""

from __future__ import annotations

import math
from typing import Callable, ClassVar, Dict, FrozenSet, List, Sequence, Tuple, Type, Union

import numpy as np

from bitnet.errors import GGUFError, UnsupportedError
from bitnet.ggml_types import (
    GGML_TYPES,
    REMOVED_TYPE_NAMES,
    tensor_nbytes,
)

# raw tensor bytes: a uint8 view (bitnet.gguf's tensor_bytes), any contiguous array, or bytes
Buffer = Union[np.ndarray, bytes, bytearray, memoryview]


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
        raise unsupported(cls.type_id, "quantization")

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
        buf = as_bytes(data)
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


def register(type_id: int) -> Callable[[Type[BlockType]], Type[BlockType]]:
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


def supported_types(what: str = "dequantization") -> FrozenSet[int]:
    """Type ids registered with a dequantizer (what="quantization": with a quantizer)."""
    if what == "quantization":
        return frozenset(i for i, c in _REGISTRY.items() if c.can_quantize)
    return frozenset(_REGISTRY)


def unsupported(type_id: int, what: str) -> UnsupportedError:
    ok = supported_types(what)
    names = ", ".join(GGML_TYPES[i].name for i in sorted(ok))
    label = _type_label(type_id)
    return UnsupportedError(f"{what} of {label} is not supported; supported: {names}")


def as_bytes(data: Buffer) -> np.ndarray:
    """Any contiguous array or buffer -> 1-D uint8 view of its bytes (no copy if possible)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def block_type(type_id: int, what: str = "dequantization") -> Type[BlockType]:
    """The BlockType class for a ggml type id; UnsupportedError naming it otherwise."""
    cls = _REGISTRY.get(int(type_id))
    if cls is None:
        raise unsupported(int(type_id), what)
    return cls
