"""State save / restore: llama_state_* (every sequence's KV cache) and llama_state_seq_* (one
sequence's), in memory and in llama.cpp's session files.

As in llama.cpp 0.3.36 the state is the model's architecture and the memory (no logits: a
program replays its last token after a restore). The bytes are this library's own format,
little-endian:

    state:  b"BNST" u32 version | model | u32 n_seq | n_seq x (i32 seq_id, sequence) | u32 crc32
    seq:    b"BNSQ" u32 version | model | sequence | u32 crc32
    model:  u32 len, architecture | u32 n_layer, n_head_kv, head_dim, kv dtype (0 f32, 1 f16)
    sequence: u32 n_cells | i32 positions[n_cells] | K then V: [n_layer][n_cells][n_head_kv][head_dim]

Files: llama.cpp's headers (b"ggsn" v10 / b"ggsq" v3, u32 n_tokens, the tokens) then a blob.
A restore checks everything (checksum included) before it changes anything: a corrupt,
truncated or foreign state restores nothing (a failed sequence restore leaves that sequence
empty, as llama.cpp) and returns 0 / false.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, List, Tuple

import numpy as np

from bitnet import errors as E
from bitnet.ffi.capi.contexts import Context, context_of
from bitnet.ffi.capi.core import RT, CAPIError, c_str, export

VERSION = 1
STATE_MAGIC, SEQ_MAGIC = b"BNST", b"BNSQ"
SESSION_MAGIC, SESSION_VERSION = 0x6767736E, 10  # LLAMA_SESSION_MAGIC / _VERSION
SEQ_FILE_MAGIC, SEQ_FILE_VERSION = 0x67677371, 3  # LLAMA_STATE_SEQ_MAGIC / _VERSION
DTYPES = {0: np.float32, 1: np.float16}
SIZE_MAX = 2**64 - 1


def _model_header(c: Context) -> bytes:
    hp = c.check_model().hparams
    arch = c.model.arch.encode()
    dtype = 1 if c.kv_type == "f16" else 0
    return struct.pack("<I", len(arch)) + arch + struct.pack(
        "<4I", hp.n_layer, hp.n_head_kv, hp.n_embd_head_k, dtype)


def _seq_bytes(c: Context, seq_id: int) -> bytes:
    cache = c.seqs.get(seq_id)
    if cache is None:
        return struct.pack("<I", 0)
    kv = cache.cache
    cells = np.nonzero(kv.pos >= 0)[0]
    parts = [struct.pack("<I", cells.size), kv.pos[cells].astype("<i4").tobytes()]
    parts += [np.ascontiguousarray(kv.k[:, cells]).tobytes(),
              np.ascontiguousarray(kv.v[:, cells]).tobytes()]
    return b"".join(parts)


def _seal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def state_bytes(c: Context) -> bytes:
    seqs = sorted(c.seqs)
    body = [STATE_MAGIC, struct.pack("<I", VERSION), _model_header(c), struct.pack("<I", len(seqs))]
    for s in seqs:
        body += [struct.pack("<i", s), _seq_bytes(c, s)]
    return _seal(b"".join(body))


def seq_state_bytes(c: Context, seq_id: int) -> bytes:
    c.seq_ids(seq_id)
    return _seal(SEQ_MAGIC + struct.pack("<I", VERSION) + _model_header(c) + _seq_bytes(c, seq_id))


# ---- reading ---------------------------------------------------------------------------------


class Reader:
    """Sequential reads from a C buffer of `size` bytes (SIZE_MAX: unknown, as llama.cpp's
    deprecated llama_set_state_data passes)."""

    def __init__(self, src: Any, size: int) -> None:
        if src == RT.ffi.NULL:
            raise CAPIError(E.GENERIC_ERROR, "src is NULL")
        self.src = src
        self.size = size
        self.pos = 0

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise CAPIError(E.GENERIC_ERROR, f"the state is truncated (needs {self.pos + n} bytes, "
                            f"has {self.size})")
        data = bytes(RT.ffi.buffer(self.src + self.pos, n))
        self.pos += n
        return data

    def u32(self) -> int:
        return int(struct.unpack("<I", self.read(4))[0])


def _read_model(r: Reader, c: Context) -> None:
    arch = r.read(r.u32()).decode("utf-8", "replace")
    dims = struct.unpack("<4I", r.read(16))
    hp = c.check_model().hparams
    want = (hp.n_layer, hp.n_head_kv, hp.n_embd_head_k, 1 if c.kv_type == "f16" else 0)
    if arch != c.model.arch or dims != want:
        raise CAPIError(E.GENERIC_ERROR, f"the state is of another model or cache: {arch} {dims}, "
                        f"this context: {c.model.arch} {want}")


def _read_seq(r: Reader, c: Context) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = r.u32()
    hp = c.check_model().hparams
    pos = np.frombuffer(r.read(4 * n), dtype="<i4").astype(np.int64)
    dtype = np.dtype(DTYPES[1 if c.kv_type == "f16" else 0])
    shape = (hp.n_layer, n, hp.n_head_kv, hp.n_embd_head_k)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    k = np.frombuffer(r.read(nbytes), dtype=dtype).reshape(shape)
    v = np.frombuffer(r.read(nbytes), dtype=dtype).reshape(shape)
    if n and (int(np.min(pos)) < 0 or int(np.max(pos)) >= c.n_ctx_seq or np.unique(pos).size != n):
        raise CAPIError(E.GENERIC_ERROR, "the state's positions do not fit this context")
    return pos, k, v


def _check_crc(r: Reader) -> None:
    body_len = r.pos
    body = bytes(RT.ffi.buffer(r.src, body_len))
    if r.u32() != zlib.crc32(body) & 0xFFFFFFFF:
        raise CAPIError(E.GENERIC_ERROR, "the state is corrupt (checksum mismatch)")


def _install(c: Context, seq_id: int, pos: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    c.seqs.pop(seq_id, None)
    if pos.size == 0:
        return
    kv = c.seq(seq_id).cache
    kv.k[:, pos] = k
    kv.v[:, pos] = v
    kv.pos[pos] = pos


def read_state(c: Context, r: Reader) -> int:
    if r.read(4) != STATE_MAGIC or r.u32() != VERSION:
        raise CAPIError(E.GENERIC_ERROR, "not a state of this library (magic/version)")
    _read_model(r, c)
    seqs: List[Tuple[int, Tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
    for _ in range(r.u32()):
        s = int(struct.unpack("<i", r.read(4))[0])
        if not 0 <= s < c.n_seq_max:
            raise CAPIError(E.GENERIC_ERROR, f"the state holds sequence {s}; n_seq_max = {c.n_seq_max}")
        seqs.append((s, _read_seq(r, c)))
    _check_crc(r)
    c.seqs.clear()
    for s, (pos, k, v) in seqs:
        _install(c, s, pos, k, v)
    return r.pos


def read_seq_state(c: Context, r: Reader, seq_id: int) -> int:
    c.seq_ids(seq_id)
    try:
        if r.read(4) != SEQ_MAGIC or r.u32() != VERSION:
            raise CAPIError(E.GENERIC_ERROR, "not a sequence state of this library (magic/version)")
        _read_model(r, c)
        pos, k, v = _read_seq(r, c)
        _check_crc(r)
    except CAPIError:
        c.seqs.pop(seq_id, None)  # llama.cpp: a failed restore leaves the sequence empty
        raise
    _install(c, seq_id, pos, k, v)
    return r.pos


def _copy_out(data: bytes, dst: Any, size: int) -> int:
    if dst == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "dst is NULL")
    if len(data) > size:
        raise CAPIError(E.GENERIC_ERROR, f"the state needs {len(data)} bytes, dst has {size}")
    RT.ffi.memmove(dst, data, len(data))
    return len(data)


# ---- llama.h ---------------------------------------------------------------------------------


@export
def llama_state_get_size(ctx: Any) -> int:
    return len(state_bytes(context_of(ctx)))


@export
def llama_state_get_data(ctx: Any, dst: Any, size: int) -> int:
    return _copy_out(state_bytes(context_of(ctx)), dst, int(size))


@export
def llama_state_set_data(ctx: Any, src: Any, size: int) -> int:
    return read_state(context_of(ctx), Reader(src, int(size)))


@export
def llama_state_seq_get_size_ext(ctx: Any, seq_id: int, flags: int) -> int:
    return len(seq_state_bytes(context_of(ctx), int(seq_id)))


@export
def llama_state_seq_get_data_ext(ctx: Any, dst: Any, size: int, seq_id: int, flags: int) -> int:
    return _copy_out(seq_state_bytes(context_of(ctx), int(seq_id)), dst, int(size))


@export
def llama_state_seq_set_data_ext(ctx: Any, src: Any, size: int, seq_id: int, flags: int) -> int:
    return read_seq_state(context_of(ctx), Reader(src, int(size)), int(seq_id))


def _tokens(tokens: Any, n: int) -> bytes:
    if n and tokens == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "tokens is NULL")
    if n > 2**32 - 1:
        raise CAPIError(E.GENERIC_ERROR, f"{n} tokens do not fit the file header")
    return bytes(RT.ffi.buffer(tokens, 4 * n)) if n else b""


def _write(path: str, data: bytes) -> None:
    from bitnet.safe_write import write_bytes

    try:
        write_bytes(path, data)
    except OSError as exc:
        raise CAPIError(E.GENERIC_ERROR, f"cannot write {path}: {exc}") from exc


def _read_file(path: Any) -> Tuple[str, bytes]:
    name = c_str(path, "path")
    try:
        with open(name, "rb") as fh:
            return name, fh.read()
    except OSError as exc:
        raise CAPIError(E.GENERIC_ERROR, f"cannot read {name}: {exc}") from exc


@export
def llama_state_save_file(ctx: Any, path: Any, tokens: Any, n_token_count: int) -> bool:
    c = context_of(ctx)
    head = struct.pack("<3I", SESSION_MAGIC, SESSION_VERSION, int(n_token_count))
    _write(c_str(path, "path_session"), head + _tokens(tokens, int(n_token_count)) + state_bytes(c))
    return True


def _file_tokens(data: bytes, magic: int, version: int, what: str) -> Tuple[int, int]:
    """(n_tokens, offset of the blob) of a session / sequence file."""
    if len(data) < 12:
        raise CAPIError(E.GENERIC_ERROR, f"the {what} file is truncated")
    m, ver, n = struct.unpack("<3I", data[:12])
    if m != magic or ver != version:
        raise CAPIError(E.GENERIC_ERROR, f"unknown (magic, version) for {what} file: {m:08x}, {ver:08x}")
    if 12 + 4 * n > len(data):
        raise CAPIError(E.GENERIC_ERROR, f"the token count of the {what} file exceeds its size")
    return n, 12 + 4 * n


def _copy_tokens(data: bytes, n: int, tokens_out: Any, capacity: int, n_out: Any) -> None:
    if n > capacity:
        raise CAPIError(E.GENERIC_ERROR, f"token count in the file exceeded capacity! {n} > {capacity}")
    if n and tokens_out == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "tokens_out is NULL")
    if n:
        RT.ffi.memmove(tokens_out, data[12:12 + 4 * n], 4 * n)
    if n_out != RT.ffi.NULL:
        n_out[0] = n


@export
def llama_state_load_file(ctx: Any, path: Any, tokens_out: Any, capacity: int, n_out: Any) -> bool:
    c = context_of(ctx)
    _, data = _read_file(path)
    n, off = _file_tokens(data, SESSION_MAGIC, SESSION_VERSION, "session")
    if n > capacity:
        raise CAPIError(E.GENERIC_ERROR, f"token count in the file exceeded capacity! {n} > {capacity}")
    blob = RT.ffi.from_buffer(data)
    if read_state(c, Reader(blob + off, len(data) - off)) != len(data) - off:
        raise CAPIError(E.GENERIC_ERROR, "did not read all of the session file data")
    _copy_tokens(data, n, tokens_out, int(capacity), n_out)
    return True


@export
def llama_state_seq_save_file(ctx: Any, path: Any, seq_id: int, tokens: Any, n_token_count: int) -> int:
    c = context_of(ctx)
    head = struct.pack("<3I", SEQ_FILE_MAGIC, SEQ_FILE_VERSION, int(n_token_count))
    data = head + _tokens(tokens, int(n_token_count)) + seq_state_bytes(c, int(seq_id))
    _write(c_str(path, "filepath"), data)
    return len(data)


@export
def llama_state_seq_load_file(ctx: Any, path: Any, seq_id: int, tokens_out: Any, capacity: int,
                              n_out: Any) -> int:
    c = context_of(ctx)
    _, data = _read_file(path)
    n, off = _file_tokens(data, SEQ_FILE_MAGIC, SEQ_FILE_VERSION, "sequence state")
    if tokens_out == RT.ffi.NULL:  # llama.cpp: report the token count only
        if n_out != RT.ffi.NULL:
            n_out[0] = n
        return off
    if n > capacity:
        raise CAPIError(E.GENERIC_ERROR, f"token count in the file exceeded capacity! {n} > {capacity}")
    blob = RT.ffi.from_buffer(data)
    used = read_seq_state(c, Reader(blob + off, len(data) - off), int(seq_id))
    _copy_tokens(data, n, tokens_out, int(capacity), n_out)
    return off + used

