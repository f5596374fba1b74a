"""Defensive, mmap-based GGUF reader (versions 2 and 3, little- and big-endian).

Parsing touches only the header, the key/value section and the tensor infos; tensor data
stay in the mapped file and are handed out as zero-copy numpy views. Every count and length
read from the file is checked against the bytes that remain *before* anything is allocated,
so a hostile file cannot make the reader allocate more than O(file size), loop for long, or
crash: it raises `bitnet.errors.GGUFError` naming the field and its byte offset.

Mirrors llama.cpp's `gguf_init_from_file_impl` (ggml/src/gguf.cpp), with two deliberate
divergences that the compatibility contract asks for:
  * an invalid `general.alignment` (0, not a power of two, not a u32) is clamped to 32 with
    a warning instead of failing the load;
  * a tensor whose offset is not a multiple of the alignment loads with a warning (llama.cpp
    rejects the file); a tensor whose bytes fall outside the file is still an error.
Warnings go to the `bitnet.gguf` logger (WARNING) and to `GGUFFile.warnings`, never through
Python's warnings module (so `-W error` cannot turn them into failed loads).
Not supported: GGUF v1 (u32 counts, 2023) and versions above 3; both are rejected by name.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from bitnet.errors import GGUFError, ModelNotFoundError
from bitnet.ggml_types import GGML_TYPES, REMOVED_TYPE_NAMES, GGMLType, TensorSpec, tensor_nbytes

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NAME = 64  # GGML_MAX_NAME: a tensor name must be shorter than this
MAX_ARRAY_DEPTH = 4  # arrays of arrays; deeper nesting is rejected

# GGUF value types: id -> (name, numpy dtype char or None for string/array)
VALUE_TYPES: Dict[int, Tuple[str, Optional[str]]] = {
    0: ("UINT8", "u1"),
    1: ("INT8", "i1"),
    2: ("UINT16", "u2"),
    3: ("INT16", "i2"),
    4: ("UINT32", "u4"),
    5: ("INT32", "i4"),
    6: ("FLOAT32", "f4"),
    7: ("BOOL", "u1"),
    8: ("STRING", None),
    9: ("ARRAY", None),
    10: ("UINT64", "u8"),
    11: ("INT64", "i8"),
    12: ("FLOAT64", "f8"),
}
TYPE_STRING = 8
TYPE_ARRAY = 9
TYPE_BOOL = 7
TYPE_UINT32 = 4
INT64_MAX = 2**63 - 1


LOG = logging.getLogger("bitnet.gguf")


class GGUFWarning(UserWarning):
    """A recoverable problem in a GGUF file (the file still loads). Kept for callers that
    filter it; the reader and the repairs report through the `bitnet.gguf` logger instead."""


@dataclass(frozen=True)
class TensorInfo(TensorSpec):
    """One tensor's header entry. `shape` is ggml order (ne0 first); `offset` is absolute."""

    offset: int
    nbytes: int
    info_offset: int  # where this tensor's info starts in the file


@dataclass(frozen=True)
class KVType:
    """A value's GGUF type; for arrays, `element` is the element type (nested: `inner`)."""

    type_id: int
    element: Optional[KVType] = None

    @property
    def name(self) -> str:
        base = VALUE_TYPES[self.type_id][0]
        return f"{base}[{self.element.name}]" if self.element is not None else base


@dataclass
class GGUFFile:
    """A parsed GGUF file: metadata, tensor index and the mapped bytes behind the tensors."""

    path: Path
    version: int
    byte_order: str  # '<' or '>'
    alignment: int
    data_offset: int
    file_size: int
    kv: Dict[str, Any]
    kv_types: Dict[str, KVType]
    tensors: Dict[str, TensorInfo]
    warnings: List[str] = field(default_factory=list)
    fixes: List[Any] = field(default_factory=list)  # List[bitnet.gguf.fixes.Fix]
    raw_kv: Dict[str, Any] = field(default_factory=dict)  # kv before auto-repair
    _buffer: Any = None  # the mmap (or bytes for empty files)

    def get(self, key: str, default: Any = None) -> Any:
        return self.kv.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.kv.get("general.architecture", ""))

    def tensor_bytes(self, name: str) -> np.ndarray:
        """Zero-copy uint8 view of a tensor's raw bytes."""
        info = self.tensors[name]
        return np.frombuffer(self._buffer, dtype=np.uint8, count=info.nbytes, offset=info.offset)

    def tensor_array(self, name: str) -> np.ndarray:
        """F32/F16/BF16/integer tensors as a numpy array in numpy order (zero-copy where possible)."""
        info = self.tensors[name]
        T = GGMLType
        dtypes: Dict[int, str] = {T.F32: "f4", T.F16: "f2", T.I8: "i1", T.I16: "i2", T.I32: "i4",
                                  T.I64: "i8", T.F64: "f8"}
        if info.type_id in dtypes:
            dt = np.dtype(self.byte_order + dtypes[info.type_id])
            arr = np.frombuffer(self._buffer, dtype=dt, count=info.n_elements, offset=info.offset)
            return arr.reshape(info.np_shape)
        if info.type_id == GGMLType.BF16:  # the high half of an f32
            raw = np.frombuffer(self._buffer, dtype=self.byte_order + "u2", count=info.n_elements,
                                offset=info.offset)
            return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info.np_shape)
        raise TypeError(f"tensor {name} is {info.type_name}: dequantize it with bitnet.quants")

    def close(self) -> None:
        """Release the mapping (views handed out earlier must no longer be used)."""
        if isinstance(self._buffer, mmap.mmap):
            try:
                self._buffer.close()
            except BufferError:  # views still alive; the GC closes it with them
                pass
        self._buffer = None

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Cursor:
    """Bounds-checked reads from a buffer. Every read names the field it is reading."""

    def __init__(self, buf: Union[mmap.mmap, bytes], size: int, order: str) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0
        self.order = order

    def remaining(self) -> int:
        return self.size - self.pos

    def need(self, n: int, field: str) -> None:
        if n < 0 or n > self.remaining():
            raise GGUFError(
                f"file truncated: {field} needs {n} bytes but only {self.remaining()} remain",
                field=field, offset=self.pos)

    def take(self, n: int, field: str) -> bytes:
        self.need(n, field)
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def scalar(self, fmt: str, field: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size, field)
        (value,) = struct.unpack_from(self.order + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self, field: str) -> int:
        return int(self.scalar("I", field))

    def u64(self, field: str) -> int:
        return int(self.scalar("Q", field))

    def i64(self, field: str) -> int:
        return int(self.scalar("q", field))

    def string(self, field: str) -> str:
        start = self.pos
        n = self.u64(field + ".length")
        if n > self.remaining():
            raise GGUFError(f"string length {n} exceeds the {self.remaining()} bytes that remain",
                            field=field, offset=start)
        raw = self.take(n, field)
        return raw.decode("utf-8", errors="surrogateescape")


def _read_strings(cur: _Cursor, count: int, field: str) -> List[str]:
    """`count` strings; the hot loop of vocabulary parsing (see `_read_strings_bulk`)."""
    if count and cur.order == "<":
        out = _read_strings_bulk(cur, count)
        if out is not None:
            return out
    return _read_strings_checked(cur, count, field)


def _read_strings_checked(cur: _Cursor, count: int, field: str) -> List[str]:
    """`count` strings one by one, each bound checked (raises GGUFError naming the string)."""
    buf, pos, end = cur.buf, cur.pos, cur.size
    length_of = struct.Struct(cur.order + "Q").unpack_from
    out = []
    for i in range(count):
        if end - pos < 8:
            cur.pos = pos
            cur.need(8, f"{field}[{i}].length")
        (n,) = length_of(buf, pos)
        pos += 8
        if n > end - pos:
            raise GGUFError(f"string length {n} exceeds the {end - pos} bytes that remain",
                            field=f"{field}[{i}]", offset=pos - 8)
        out.append(buf[pos:pos + n].decode("utf-8", "surrogateescape"))
        pos += n
    cur.pos = pos
    return out


def _read_strings_bulk(cur: _Cursor, count: int) -> Optional[List[str]]:
    """`count` little-endian strings in bulk, or None where this path does not apply (a length
    of 64 KiB or more, invalid UTF-8, no free separator byte, a truncated array): the caller
    then reads them one by one, which gives the same strings or the typed error.

    Only the lengths are walked in Python; the length prefixes are then overwritten with a
    byte that occurs in no string, the whole array decoded once and split at those
    separators: one str per string, made in C."""
    walked = _walk_lengths(cur.buf, cur.pos, cur.size, count)
    if walked is None:
        return None
    at, end = walked
    joined = _joined_text(np.frombuffer(cur.buf, dtype=np.uint8, count=end - cur.pos,
                                        offset=cur.pos), at)
    del at
    if joined is None:
        return None
    text, sep = joined
    out = text.split(sep * 8)
    del text
    if len(out) != count + 1:
        return None
    del out[0]  # before the first prefix
    cur.pos = end
    return out


def _walk_lengths(buf: Union[mmap.mmap, bytes], start: int, size: int, count: int
                  ) -> Optional[Tuple[np.ndarray, int]]:
    """(where each of `count` length prefixes is, relative to `start`; where the last string
    ends), reading each length's low two bytes only and checking the other six after; None if
    a length has them set or the strings run past `size`."""
    pos = start
    length_of = struct.Struct("<Q").unpack_from
    starts = array("q")  # int64s: 8 bytes per string, no int objects
    append = starts.append
    try:
        for _ in range(count):
            n = buf[pos]
            if buf[pos + 1]:
                (n,) = length_of(buf, pos)
            append(pos)
            pos += 8 + n
    except (IndexError, struct.error):  # truncated: the checked reader names the field
        return None
    if pos > size:
        return None
    at = np.frombuffer(starts, dtype=np.int64) - start
    region = np.frombuffer(buf, dtype=np.uint8, count=pos - start, offset=start)
    for k in range(2, 8):
        if region[at + k].any():
            return None
    return at, pos


def _joined_text(region: np.ndarray, at: np.ndarray) -> Optional[Tuple[str, str]]:
    """(`region` decoded with each 8-byte length prefix at `at` replaced by a separator
    character, that character), or None if the strings are not all UTF-8 or leave no ASCII
    byte free for the separator."""
    joined = region.copy()
    joined[at] = 0
    joined[at + 1] = 0  # bytes 2..7 are 0 already
    sep = 0
    if np.count_nonzero(joined) != joined.size - 8 * at.size:  # a string holds NUL
        counts = np.bincount(joined, minlength=256)
        counts[0] -= 8 * at.size
        free = np.flatnonzero(counts[1:128] == 0)
        if not free.size:
            return None
        sep = int(free[0]) + 1
        for k in range(8):
            joined[at + k] = sep
    try:
        return joined.tobytes().decode("utf-8"), chr(sep)
    except UnicodeDecodeError:  # some string is not UTF-8: surrogateescape them one by one
        return None


def _read_value(cur: _Cursor, type_id: int, field: str, depth: int = 0) -> Tuple[Any, KVType]:
    start = cur.pos
    if type_id not in VALUE_TYPES:
        raise GGUFError(f"unknown value type id {type_id} (known: 0..12)", field=field,
                        offset=start - 4)
    if type_id == TYPE_STRING:
        return cur.string(field), KVType(type_id)
    if type_id == TYPE_ARRAY:
        elem = cur.u32(field + ".element_type")
        if elem not in VALUE_TYPES:
            raise GGUFError(f"unknown array element type id {elem} (known: 0..12)", field=field,
                            offset=cur.pos - 4)
        count_at = cur.pos
        count = cur.u64(field + ".count")
        dtype = VALUE_TYPES[elem][1]
        if dtype is not None:
            itemsize = np.dtype(dtype).itemsize
            if count > cur.remaining() // itemsize:
                raise GGUFError(
                    f"array of {count} {VALUE_TYPES[elem][0]} needs {count * itemsize} bytes but only "
                    f"{cur.remaining()} remain", field=field, offset=count_at)
            arr = np.frombuffer(cur.take(count * itemsize, field), dtype=cur.order + dtype)
            arr = arr.astype(np.dtype(dtype).newbyteorder("="))  # native-order copy
            if elem == TYPE_BOOL:
                arr = arr != 0
            return arr, KVType(type_id, KVType(elem))
        # strings need >= 8 bytes each (their length), nested arrays >= 12 (type + count)
        min_size = 8 if elem == TYPE_STRING else 12
        if count > cur.remaining() // min_size:
            raise GGUFError(
                f"array of {count} {VALUE_TYPES[elem][0]} needs at least {count * min_size} bytes "
                f"but only {cur.remaining()} remain", field=field, offset=count_at)
        if elem == TYPE_STRING:
            return _read_strings(cur, count, field), KVType(type_id, KVType(elem))
        if depth + 1 >= MAX_ARRAY_DEPTH:
            raise GGUFError(f"arrays nested deeper than {MAX_ARRAY_DEPTH}", field=field, offset=start)
        items = []
        inner: KVType = KVType(TYPE_ARRAY)
        for i in range(count):
            sub_type = cur.u32(f"{field}[{i}].type")
            if sub_type != TYPE_ARRAY:
                cur.pos -= 4
                raise GGUFError("nested array element is not an array", field=f"{field}[{i}]",
                                offset=cur.pos)
            value, inner = _read_value(cur, TYPE_ARRAY, f"{field}[{i}]", depth + 1)
            items.append(value)
        return items, KVType(type_id, inner)
    dtype = VALUE_TYPES[type_id][1]
    assert dtype is not None
    value = cur.scalar({"u1": "B", "i1": "b", "u2": "H", "i2": "h", "u4": "I", "i4": "i",
                        "f4": "f", "u8": "Q", "i8": "q", "f8": "d"}[dtype], field)
    if type_id == TYPE_BOOL:
        value = value != 0
    return value, KVType(type_id)


def _read_header(cur: _Cursor) -> Tuple[int, int, int]:
    """Returns (version, n_tensors, n_kv); sets the cursor's byte order."""
    if cur.size == 0:
        raise GGUFError("empty file (0 bytes): not a GGUF file", field="magic", offset=0)
    magic = cur.take(4, "magic")
    if magic != GGUF_MAGIC:
        raise GGUFError(f"bad magic {magic!r}, expected b'GGUF'", field="magic", offset=0)
    raw = cur.take(4, "version")
    le = struct.unpack("<I", raw)[0]
    be = struct.unpack(">I", raw)[0]
    if le in SUPPORTED_VERSIONS:
        cur.order, version = "<", le
    elif be in SUPPORTED_VERSIONS:
        cur.order, version = ">", be
    else:
        version = le if le & 0xFFFF else be
        hint = " (GGUF v1 files from 2023 must be re-converted)" if version == 1 else ""
        raise GGUFError(f"unsupported GGUF version {version}: supported versions are "
                        f"{', '.join(map(str, SUPPORTED_VERSIONS))}{hint}", field="version", offset=4)
    n_tensors = cur.u64("n_tensors")
    n_kv = cur.u64("n_kv")
    # each KV needs >= 8 (key length) + 4 (type) + 1 bytes; each tensor info >= 8 + 4 + 4 + 8
    if n_kv > cur.remaining() // 13:
        raise GGUFError(f"n_kv = {n_kv} cannot fit in the {cur.remaining()} bytes that remain",
                        field="n_kv", offset=16)
    if n_tensors > cur.remaining() // 24:
        raise GGUFError(f"n_tensors = {n_tensors} cannot fit in the {cur.remaining()} bytes that "
                        "remain", field="n_tensors", offset=8)
    return version, n_tensors, n_kv


def _alignment(kv: Dict[str, Any], kv_types: Dict[str, KVType], notes: List[str]) -> int:
    if "general.alignment" not in kv:
        return DEFAULT_ALIGNMENT
    value, vtype = kv["general.alignment"], kv_types["general.alignment"]
    if vtype.type_id != TYPE_UINT32:
        notes.append(f"general.alignment has type {vtype.name}, expected UINT32: using "
                     f"{DEFAULT_ALIGNMENT}")
        return DEFAULT_ALIGNMENT
    if value == 0 or value & (value - 1):
        notes.append(f"general.alignment = {value} is not a power of two: using {DEFAULT_ALIGNMENT}")
        return DEFAULT_ALIGNMENT
    return int(value)


def _read_tensor_info(cur: _Cursor, index: int) -> Tuple[str, Tuple[int, ...], int, int, int]:
    start = cur.pos
    label = f"tensor[{index}]"
    name = cur.string(f"{label}.name")
    label = f"tensor[{index}] '{name[:80]}'"
    if len(name.encode("utf-8", "surrogateescape")) >= MAX_NAME:
        raise GGUFError(f"tensor name is {len(name)} bytes, the limit is {MAX_NAME - 1}",
                        field=f"{label}.name", offset=start)
    n_dims_at = cur.pos
    n_dims = cur.u32(f"{label}.n_dims")
    if n_dims > MAX_DIMS:
        raise GGUFError(f"n_dims = {n_dims}, at most {MAX_DIMS} are supported",
                        field=f"{label}.n_dims", offset=n_dims_at)
    shape = []
    for d in range(n_dims):
        at = cur.pos
        ne = cur.i64(f"{label}.ne[{d}]")
        if ne < 0:
            raise GGUFError(f"dimension ne[{d}] = {ne} is negative", field=f"{label}.ne[{d}]",
                            offset=at)
        shape.append(ne)
    n = 1
    for d, ne in enumerate(shape):
        if ne and n > INT64_MAX // ne:
            raise GGUFError(f"shape {shape}: element count overflows int64",
                            field=f"{label}.ne[{d}]", offset=n_dims_at + 4 + 8 * d)
        n *= ne
    type_at = cur.pos
    type_id = cur.u32(f"{label}.type")
    if type_id not in GGML_TYPES:
        known = REMOVED_TYPE_NAMES.get(type_id)
        what = f"{type_id} ({known}, removed from ggml)" if known else str(type_id)
        raise GGUFError(f"unknown tensor type {what}", field=f"{label}.type", offset=type_at)
    gtype = GGML_TYPES[type_id]
    ne0 = shape[0] if shape else 1
    if ne0 % gtype.block_size:
        raise GGUFError(f"ne[0] = {ne0} is not a multiple of {gtype.name}'s block size "
                        f"{gtype.block_size}", field=f"{label}.ne[0]", offset=n_dims_at + 4)
    offset = cur.u64(f"{label}.offset")
    return name, tuple(shape), type_id, offset, start


def parse(path: Union[str, os.PathLike]) -> GGUFFile:
    """Parse a GGUF file's header and index without repairing anything."""
    p = Path(path)
    if not p.exists():
        raise ModelNotFoundError(f"model file not found: {p}")
    if p.is_dir():
        raise GGUFError(f"{p} is a directory, not a GGUF file")
    with open(p, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        buf: Union[mmap.mmap, bytes] = (
            mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b"")
    try:
        return _parse_buffer(p, buf, size)
    except BaseException:
        if isinstance(buf, mmap.mmap):
            buf.close()
        raise


def _parse_buffer(path: Path, buf: Union[mmap.mmap, bytes], size: int) -> GGUFFile:
    cur = _Cursor(buf, size, "<")
    version, n_tensors, n_kv = _read_header(cur)
    notes: List[str] = []

    kv: Dict[str, Any] = {}
    kv_types: Dict[str, KVType] = {}
    for i in range(n_kv):
        start = cur.pos
        key = cur.string(f"kv[{i}].key")
        if not key:
            raise GGUFError("empty key", field=f"kv[{i}].key", offset=start)
        if key in kv:
            raise GGUFError(f"duplicate key '{key}'", field=f"kv[{i}].key", offset=start)
        type_id = cur.u32(f"kv '{key}'.type")
        kv[key], kv_types[key] = _read_value(cur, type_id, f"kv '{key}'")

    alignment = _alignment(kv, kv_types, notes)

    infos = []
    seen = set()
    for i in range(n_tensors):
        info = _read_tensor_info(cur, i)
        if info[0] in seen:
            raise GGUFError(f"duplicate tensor name '{info[0]}'", field=f"tensor[{i}].name",
                            offset=info[4])
        seen.add(info[0])
        infos.append(info)

    data_offset = -(-cur.pos // alignment) * alignment
    tensors: Dict[str, TensorInfo] = {}
    for name, shape, type_id, rel, info_at in infos:
        n = 1
        for ne in shape:
            n *= ne
        nbytes = tensor_nbytes(type_id, n)
        if rel % alignment:
            notes.append(f"tensor '{name}' offset {rel} is not a multiple of the alignment "
                         f"{alignment}")
        absolute = data_offset + rel
        if rel > size or nbytes > size - min(absolute, size) or absolute > size:
            raise GGUFError(
                f"tensor '{name}' ({nbytes} bytes at data offset {rel}) extends past the end of "
                f"the file ({size} bytes, data section at {data_offset})",
                field=f"tensor '{name}'.offset", offset=info_at)
        tensors[name] = TensorInfo(name, type_id, shape, absolute, nbytes, info_at)

    for note in notes:
        LOG.warning("%s: %s", path.name, note)
    return GGUFFile(path=path, version=version, byte_order=cur.order, alignment=alignment,
                    data_offset=data_offset, file_size=size, kv=kv, kv_types=kv_types,
                    tensors=tensors, warnings=notes, raw_kv=dict(kv), _buffer=buf)
