"""Byte-level GGUF builder for tests: writes valid files and every malformed variant.

Unlike a real writer it lets each field be anything (counts that lie, bad type ids, huge
dims), which is what the bad-file corpus needs. Little-endian unless `order='>'`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

SCALAR_FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}


@dataclass
class KV:
    key: str
    type_id: int
    value: Any
    elem_type: Optional[int] = None  # for arrays
    raw_key_len: Optional[int] = None  # lie about the key length


@dataclass
class Tensor:
    name: str
    shape: Sequence[int]
    type_id: int
    data: bytes
    offset: Optional[int] = None  # relative offset override
    n_dims: Optional[int] = None  # lie about the number of dims


@dataclass
class Builder:
    version: int = 3
    order: str = "<"
    kvs: List[KV] = field(default_factory=list)
    tensors: List[Tensor] = field(default_factory=list)
    alignment: int = 32
    n_kv: Optional[int] = None
    n_tensors: Optional[int] = None
    magic: bytes = b"GGUF"
    sections: List[Tuple[str, int]] = field(default_factory=list)  # (name, end offset)

    def p(self, fmt: str, *values: Any) -> bytes:
        return struct.pack(self.order + fmt, *values)

    def string(self, s: str, length: Optional[int] = None) -> bytes:
        raw = s.encode("utf-8")
        return self.p("Q", len(raw) if length is None else length) + raw

    def value(self, type_id: int, value: Any, elem_type: Optional[int]) -> bytes:
        if type_id == 8:
            return self.string(value)
        if type_id == 9:
            assert elem_type is not None
            out = self.p("IQ", elem_type, len(value))
            if elem_type == 8:
                return out + b"".join(self.string(v) for v in value)
            if elem_type == 9:
                raise NotImplementedError
            return out + b"".join(self.p(SCALAR_FMT[elem_type], v) for v in value)
        return self.p(SCALAR_FMT.get(type_id, "B"), value)  # unknown types: one byte

    def build(self) -> bytes:
        out = bytearray(self.magic)
        self.sections = [("magic", len(out))]
        out += self.p("I", self.version)
        self.sections.append(("version", len(out)))
        out += self.p("Q", len(self.tensors) if self.n_tensors is None else self.n_tensors)
        self.sections.append(("n_tensors", len(out)))
        out += self.p("Q", len(self.kvs) if self.n_kv is None else self.n_kv)
        self.sections.append(("n_kv", len(out)))
        for kv in self.kvs:
            out += self.string(kv.key, kv.raw_key_len)
            out += self.p("I", kv.type_id)
            out += self.value(kv.type_id, kv.value, kv.elem_type)
            self.sections.append((f"kv {kv.key}", len(out)))
        offset = 0
        offsets = []
        for t in self.tensors:
            offsets.append(offset if t.offset is None else t.offset)
            offset += -(-len(t.data) // self.alignment) * self.alignment
        for t, off in zip(self.tensors, offsets):
            out += self.string(t.name)
            out += self.p("I", len(t.shape) if t.n_dims is None else t.n_dims)
            out += b"".join(self.p("q", d) for d in t.shape)
            out += self.p("IQ", t.type_id, off)
            self.sections.append((f"tensor info {t.name}", len(out)))
        if self.tensors:
            out += b"\0" * (-len(out) % self.alignment)
            for t in self.tensors:
                out += t.data + b"\0" * (-len(t.data) % self.alignment)
                self.sections.append((f"tensor data {t.name}", len(out)))
        return bytes(out)


def valid_builder(order: str = "<", version: int = 3) -> Builder:
    """A small valid file: one KV of every scalar type, arrays, and three tensors."""
    b = Builder(version=version, order=order)
    b.kvs = [
        KV("general.architecture", 8, "llama"),
        KV("general.name", 8, "tiny"),
        KV("test.u8", 0, 200), KV("test.i8", 1, -5), KV("test.u16", 2, 60000),
        KV("test.i16", 3, -3000), KV("test.u32", 4, 4000000000), KV("test.i32", 5, -7),
        KV("test.f32", 6, 0.5), KV("test.bool", 7, True), KV("test.u64", 10, 2**40),
        KV("test.i64", 11, -(2**40)), KV("test.f64", 12, 0.25),
        KV("test.arr_i32", 9, [1, -2, 3], elem_type=5),
        KV("test.arr_str", 9, ["a", "bc", ""], elem_type=8),
        KV("test.arr_empty", 9, [], elem_type=6),
    ]
    f32 = np.arange(8, dtype=np.float32).astype(order + "f4").tobytes()
    f16 = np.arange(64, dtype=np.float16).astype(order + "f2").tobytes()
    q8 = bytes(range(34)) * 2  # two Q8_0 blocks
    b.tensors = [
        Tensor("a.weight", [8], 0, f32),
        Tensor("b.weight", [32, 2], 1, f16),
        Tensor("c.weight", [64], 8, q8),
    ]
    return b
