"""State save / restore: llama_state_* (every sequence's KV cache) and llama_state_seq_* (one
sequence's), in memory and in llama.cpp's session files.

As in llama.cpp 0.3.36 the state is the model's architecture and the memory (no logits: a
program replays its last token after a restore). The bytes are this library's own format,
little-endian:

    state:  b"BNST" u32 version | model | u32 n_streams | n_streams x (i32 seq_id, cells) | u32 crc32
    seq:    b"BNSQ" u32 version | model | cells | u32 crc32
    model:  u32 len, architecture | u32 n_layer, n_head_kv, head_dim, kv dtype (0 f32, 1 f16),
            n_seq_max
    cells:  u32 n_cells | i32 positions[n_cells] | u8 sequences[n_cells][n_seq_max] | K then V:
            [n_layer][n_cells][n_head_kv][head_dim]

A state holds each stream's used cells in cell order (seq_id -1: the unified stream); as in
llama.cpp they are restored from cell 0 on. A sequence's cells are restored into the cells its
stream's search finds (llama.cpp's find_slot).

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

VERSION = 2
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
        "<5I", hp.n_layer, hp.n_head_kv, hp.n_embd_head_k, dtype, c.n_seq_max)


def _cells_bytes(kv: Any, cells: np.ndarray) -> bytes:
    parts = [struct.pack("<I", cells.size), kv.pos[cells].astype("<i4").tobytes(),
             kv.seq[cells].astype(np.uint8).tobytes()]
    parts += [np.ascontiguousarray(kv.k[:, cells]).tobytes(),
              np.ascontiguousarray(kv.v[:, cells]).tobytes()]
    return b"".join(parts)


def _seal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def _stream_ids(c: Context) -> List[int]:
    return ([-1] if c.shared is not None else []) if c.kv_unified else sorted(c.seqs)


def _stream(c: Context, sid: int) -> Any:
    return c.seq(max(sid, 0))


def state_bytes(c: Context) -> bytes:
    sids = _stream_ids(c)
    body = [STATE_MAGIC, struct.pack("<I", VERSION), _model_header(c), struct.pack("<I", len(sids))]
    for sid in sids:
        kv = _stream(c, sid).cache
        body += [struct.pack("<i", sid), _cells_bytes(kv, kv.seq_cells(-1))]
    return _seal(b"".join(body))


def seq_state_bytes(c: Context, seq_id: int) -> bytes:
    c.seq_ids(seq_id)
    kv = c.seq(seq_id).cache
    body = _cells_bytes(kv, kv.seq_cells(seq_id))
    return _seal(SEQ_MAGIC + struct.pack("<I", VERSION) + _model_header(c) + body)


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
    dims = struct.unpack("<5I", r.read(20))
    hp = c.check_model().hparams
    want = (hp.n_layer, hp.n_head_kv, hp.n_embd_head_k, 1 if c.kv_type == "f16" else 0, c.n_seq_max)
    if arch != c.model.arch or dims != want:
        raise CAPIError(E.GENERIC_ERROR, f"the state is of another model or cache: {arch} {dims}, "
                        f"this context: {c.model.arch} {want}")


Cells = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # positions, sequences, K, V


def _read_cells(r: Reader, c: Context, n_cells: int) -> Cells:
    n = r.u32()
    hp = c.check_model().hparams
    pos = np.frombuffer(r.read(4 * n), dtype="<i4").astype(np.int64)
    seqs = np.frombuffer(r.read(n * c.n_seq_max), dtype=np.uint8).reshape(n, c.n_seq_max) != 0
    dtype = np.dtype(DTYPES[1 if c.kv_type == "f16" else 0])
    shape = (hp.n_layer, n, hp.n_head_kv, hp.n_embd_head_k)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    k = np.frombuffer(r.read(nbytes), dtype=dtype).reshape(shape)
    v = np.frombuffer(r.read(nbytes), dtype=dtype).reshape(shape)
    if n > n_cells or (n and (int(np.min(pos)) < 0 or int(np.max(pos)) >= c.n_ctx_seq
                              or not seqs.any(axis=1).all())):
        raise CAPIError(E.GENERIC_ERROR, "the state's cells do not fit this context")
    return pos, seqs, k, v


def _check_crc(r: Reader) -> None:
    body_len = r.pos
    body = bytes(RT.ffi.buffer(r.src, body_len))
    if r.u32() != zlib.crc32(body) & 0xFFFFFFFF:
        raise CAPIError(E.GENERIC_ERROR, "the state is corrupt (checksum mismatch)")


def read_state(c: Context, r: Reader) -> int:
    """Restore every stream: its cells from cell 0 in the saved order, head 0 (llama.cpp's
    whole-state read)."""
    if r.read(4) != STATE_MAGIC or r.u32() != VERSION:
        raise CAPIError(E.GENERIC_ERROR, "not a state of this library (magic/version)")
    _read_model(r, c)
    streams: List[Tuple[int, Cells]] = []
    for _ in range(r.u32()):
        sid = int(struct.unpack("<i", r.read(4))[0])
        if not (sid == -1 if c.kv_unified else 0 <= sid < c.n_seq_max):
            raise CAPIError(E.GENERIC_ERROR, f"the state holds stream {sid}; this context has "
                            f"{'one unified stream' if c.kv_unified else f'n_seq_max = {c.n_seq_max}'}")
        cells = _read_cells(r, c, c.n_ctx if c.kv_unified else c.n_ctx_seq)
        own = cells[1][:, sid].all() and int(cells[1].sum()) == cells[0].size
        if not c.kv_unified and cells[0].size and not own:
            raise CAPIError(E.GENERIC_ERROR, f"stream {sid} holds cells of other sequences")
        streams.append((sid, cells))
    _check_crc(r)
    c.clear()
    for sid, (pos, seqs, k, v) in streams:
        kv = _stream(c, sid).cache
        n = pos.size
        kv.pos[:n], kv.seq[:n] = pos, seqs
        kv.k[:, :n], kv.v[:, :n] = k, v
    return r.pos


def read_seq_state(c: Context, r: Reader, seq_id: int) -> int:
    """Restore one sequence into the cells its stream's search finds (llama.cpp:
    seq_rm, find_slot, apply_ubatch)."""
    c.seq_ids(seq_id)
    kv = c.seq(seq_id).cache
    try:
        if r.read(4) != SEQ_MAGIC or r.u32() != VERSION:
            raise CAPIError(E.GENERIC_ERROR, "not a sequence state of this library (magic/version)")
        _read_model(r, c)
        pos, _, k, v = _read_cells(r, c, kv.n_ctx)
        _check_crc(r)
        kv.seq_rm(seq_id, -1, -1)
        cells = kv.find_slot(pos.size) if pos.size else np.zeros(0, dtype=np.int64)
        if cells is None:
            raise CAPIError(E.GENERIC_ERROR, f"no {pos.size} free cells for sequence {seq_id}")
    except CAPIError:
        kv.seq_rm(seq_id, -1, -1)  # llama.cpp: a failed restore leaves the sequence empty
        raise
    if pos.size:
        kv.place(cells, pos, [(seq_id,)] * pos.size)
        kv.k[:, cells], kv.v[:, cells] = k, v
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

