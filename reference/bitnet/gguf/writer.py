"""Write GGUF v3 files from parsed metadata: repaired copies (`bitnet fix`) and test fixtures.

Tensor bytes are copied verbatim, so a repaired copy differs from its source only in the
key/value section (and in padding). Values keep the GGUF type they were read with; new keys
take the type `infer_type` picks (str -> STRING, bool -> BOOL, int -> UINT32/INT64,
float -> FLOAT32, list of str -> ARRAY[STRING]).
"""

from __future__ import annotations

import os
import struct
from typing import IO, Any, Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

from bitnet.gguf.reader import (
    DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    TYPE_ARRAY,
    TYPE_BOOL,
    TYPE_STRING,
    VALUE_TYPES,
    GGUFFile,
    KVType,
)
from bitnet.safe_write import atomic_output

_SCALAR_FORMATS = {"u1": "B", "i1": "b", "u2": "H", "i2": "h", "u4": "I", "i4": "i", "f4": "f",
                   "u8": "Q", "i8": "q", "f8": "d"}


def infer_type(value: Any) -> KVType:
    """The GGUF type a new Python value is written with."""
    if isinstance(value, bool):
        return KVType(TYPE_BOOL)
    if isinstance(value, str):
        return KVType(TYPE_STRING)
    if isinstance(value, int):
        return KVType(4) if 0 <= value < 2**32 else KVType(11)
    if isinstance(value, float):
        return KVType(6)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return KVType(TYPE_ARRAY, KVType(TYPE_STRING))
    raise TypeError(f"cannot infer a GGUF type for {type(value).__name__}")


def _string(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogateescape")
    return struct.pack("<Q", len(raw)) + raw


def _value(value: Any, vtype: KVType) -> bytes:
    if vtype.type_id == TYPE_STRING:
        return _string(value)
    if vtype.type_id == TYPE_ARRAY:
        assert vtype.element is not None
        elem = vtype.element
        head = struct.pack("<IQ", elem.type_id, len(value))
        dtype = VALUE_TYPES[elem.type_id][1]
        if dtype is not None:
            return head + np.asarray(value).astype("<" + dtype).tobytes()
        return head + b"".join(_value(v, elem) for v in value)
    dtype = VALUE_TYPES[vtype.type_id][1]
    assert dtype is not None
    return struct.pack("<" + _SCALAR_FORMATS[dtype], value)


def header_bytes(kv: Dict[str, Any], kv_types: Dict[str, KVType],
                 tensors: Iterable[Tuple[str, Tuple[int, ...], int, int]],
                 alignment: int = DEFAULT_ALIGNMENT) -> bytes:
    """A GGUF v3 header, padded to `alignment`. `tensors`: (name, ggml shape, type id, nbytes);
    their data follow in that order, each padded to `alignment` (so a writer can stream them)."""
    tensor_list = list(tensors)
    header = bytearray(GGUF_MAGIC + struct.pack("<IQQ", 3, len(tensor_list), len(kv)))
    for key, value in kv.items():
        vtype = kv_types.get(key) or infer_type(value)
        header += _string(key) + struct.pack("<I", vtype.type_id) + _value(value, vtype)
    offset = 0
    for name, shape, type_id, nbytes in tensor_list:
        header += _string(name) + struct.pack("<I", len(shape))
        header += struct.pack(f"<{len(shape)}q", *shape) + struct.pack("<IQ", type_id, offset)
        offset += -(-nbytes // alignment) * alignment
    header += b"\0" * (-len(header) % alignment)
    return bytes(header)


def write_gguf(path: Union[str, os.PathLike], kv: Dict[str, Any], kv_types: Dict[str, KVType],
               tensors: Iterable[Tuple[str, Tuple[int, ...], int, Any]],
               alignment: int = DEFAULT_ALIGNMENT, *, inputs: Sequence[Union[str, os.PathLike]] = (),
               on_tensor: Optional[Callable[[str], None]] = None) -> None:
    """Write a little-endian GGUF v3 file. `tensors`: (name, ggml shape, type id, raw bytes).

    Written through `bitnet.safe_write.atomic_output`: refused when `path` is one of `inputs`
    or not a regular file; `path` is untouched unless the whole file was written.
    `on_tensor(name)` is called after each tensor's bytes are written (progress)."""
    tensor_list = list(tensors)
    infos = [(name, shape, type_id, len(data)) for name, shape, type_id, data in tensor_list]
    with atomic_output(path, inputs=inputs) as fh:
        fh.write(header_bytes(kv, kv_types, infos, alignment))
        for name, _, _, data in tensor_list:
            _write_aligned(fh, data, alignment)
            if on_tensor is not None:
                on_tensor(name)


def _write_aligned(fh: IO[bytes], data: bytes, alignment: int) -> None:
    fh.write(data)
    fh.write(b"\0" * (-len(data) % alignment))


def write_repaired_copy(gf: GGUFFile, out: Union[str, os.PathLike],
                        kv: Optional[Dict[str, Any]] = None,
                        on_tensor: Optional[Callable[[str], None]] = None) -> None:
    """Write `gf` with its repaired metadata (or `kv`) to `out`; refuses to overwrite the
    input (UnsafeOutputError), also through a hard link or symlink."""
    values = dict(gf.kv if kv is None else kv)
    if gf.alignment != DEFAULT_ALIGNMENT or "general.alignment" in values:
        values["general.alignment"] = gf.alignment  # a clamped alignment is written as fixed
    types = {k: t for k, t in gf.kv_types.items() if k in values}
    types["general.alignment"] = KVType(4)
    tensors = [(t.name, t.shape, t.type_id, gf.tensor_bytes(t.name)) for t in gf.tensors.values()]
    write_gguf(out, values, types, tensors, gf.alignment, inputs=[gf.path], on_tensor=on_tensor)
