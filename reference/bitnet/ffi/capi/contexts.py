"""Contexts and their memory: llama.cpp's KV cache streams.

kv_unified = true: one stream of n_ctx cells that every sequence shares (a cell may belong
to several sequences; a ubatch mixes sequences). kv_unified = false: a stream per sequence
(n_ctx / n_seq_max cells each, padded to 256), made on first use. Each stream is a
`bitnet.model.Context` whose `KVCache` keeps llama.cpp's cell bookkeeping (which cell holds
which position of which sequences, where the next search starts); the llama_memory_* calls
act on it with llama.cpp's semantics.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from bitnet import errors as E
from bitnet.ffi.capi.core import (
    HANDLES,
    LOG_INFO,
    RT,
    CAPIError,
    as_ptr,
    export,
    get,
    handle_id,
    log,
    new_handle,
)
from bitnet.ffi.capi.models import Model, model_of

LLAMA_MAX_SEQ = 256
KV_TYPES = {0: "f32", 1: "f16"}  # ggml_type -> bitnet.model.Context kv_type
POOLING = {-1: "unspecified", 0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


def pad(n: int, to: int = 256) -> int:
    return (n + to - 1) // to * to


class Perf:
    """llama_perf_context_data's counters."""

    def __init__(self) -> None:
        self.t_p_eval_ms = 0.0
        self.t_eval_ms = 0.0
        self.n_p_eval = 0
        self.n_eval = 0
        self.n_reused = 0


class Context:
    """A llama_context: parameters, per-sequence caches, the outputs of the last decode."""

    def __init__(self, model: Model, params: Any) -> None:
        self.model = model
        self.model_freed = False
        n_ctx_train = model.hp("context_length", 4096)
        n_ctx_asked = int(params.n_ctx) or n_ctx_train
        n_ctx = pad(n_ctx_asked)
        self.n_seq_max = max(1, int(params.n_seq_max))
        if self.n_seq_max > LLAMA_MAX_SEQ:
            raise CAPIError(E.GENERIC_ERROR, f"n_seq_max must be <= {LLAMA_MAX_SEQ}")
        self.kv_unified = bool(params.kv_unified)
        if self.kv_unified:
            self.n_ctx_seq = n_ctx
        else:
            self.n_ctx_seq = pad(n_ctx // self.n_seq_max)
            n_ctx = self.n_ctx_seq * self.n_seq_max
        self.n_ctx = n_ctx
        # llama.cpp: causal attention limits the batch to the context asked for (before padding)
        self.n_batch = min(n_ctx_asked, int(params.n_batch) or n_ctx_asked)
        self.n_ubatch = min(self.n_batch, int(params.n_ubatch) or self.n_batch)
        type_k, type_v = int(params.type_k), int(params.type_v)
        if type_k != type_v or type_k not in KV_TYPES:
            raise CAPIError(E.GENERIC_ERROR, f"KV cache types type_k={type_k}, type_v={type_v}: "
                            "F16 (1) or F32 (0), the same for both, are supported")
        self.kv_type = KV_TYPES[type_k]
        pooling = int(params.pooling_type)
        self.pooling = "none" if pooling == -1 else POOLING.get(pooling, "")
        if self.pooling not in ("none", "mean", "cls", "last"):
            raise CAPIError(E.GENERIC_ERROR, f"pooling_type {pooling} is not supported")
        if int(params.attention_type) == 1:
            raise CAPIError(E.GENERIC_ERROR, "non-causal attention is not supported")
        if params.samplers != RT.ffi.NULL and int(params.n_samplers) > 0:
            raise CAPIError(E.GENERIC_ERROR, "backend samplers (llama_context_params.samplers) "
                            "are not supported")
        self.embeddings = bool(params.embeddings)
        self.logits_all = False  # the legacy flag (bitnet_set_logits_all)
        self.n_threads = int(params.n_threads)
        self.n_threads_batch = int(params.n_threads_batch)
        # AUTO resolves to ENABLED on CPU (llama_init_from_model): llama.cpp's flash attention
        self.flash_attn = int(params.flash_attn_type) != 0
        self.abort_callback = params.abort_callback
        self.abort_data = params.abort_callback_data
        self.no_perf = bool(params.no_perf)
        self.seqs: Dict[int, Any] = {}  # seq_id -> its stream (kv_unified = false)
        self.shared: Optional[Any] = None  # the one stream (kv_unified = true)
        self.memory_handle = 0
        self.outputs = Outputs()
        self.perf = Perf()
        from bitnet.sampling import MT19937, rng_seed

        self.rng = MT19937(rng_seed(0xFFFFFFFF))  # the legacy llama_sample_token's generator

    # ---- caches ----

    def check_model(self) -> Any:
        """The engine, or CAPIError when there is none (vocab-only or freed model)."""
        if self.model_freed:
            raise CAPIError(E.INVALID_MODEL_ID, "the context's model was freed")
        if self.model.engine is None:
            raise CAPIError(E.MODEL_LOAD_FAILED, "the model was loaded with vocab_only: it has "
                            "no weights to decode with (llama.cpp aborts here)")
        return self.model.engine

    def seq(self, seq_id: int) -> Any:
        """The stream (a `bitnet.model.Context`) holding `seq_id`, made on first use."""
        if self.kv_unified:
            if self.shared is None:
                self.shared = self.new_cache(self.n_ctx)
            cache = self.shared
        else:
            cache = self.seqs.get(seq_id)
            if cache is None:
                cache = self.new_cache(self.n_ctx_seq)
                cache.seq_id = seq_id
                self.seqs[seq_id] = cache
        cache.n_threads, cache.n_threads_batch = self.n_threads, self.n_threads_batch
        return cache

    def new_cache(self, n_cells: Optional[int] = None) -> Any:
        """A `bitnet.model.Context` of n_cells (default n_ctx_seq) in this context's cache
        type and attention."""
        from bitnet.model import Context as EngineContext

        return EngineContext(self.check_model(), n_ctx=n_cells or self.n_ctx_seq, n_batch=self.n_ubatch,
                             kv_type=self.kv_type, flash_attn=self.flash_attn, n_threads=self.n_threads,
                             n_threads_batch=self.n_threads_batch, n_seq=self.n_seq_max)

    def streams(self) -> List[Any]:
        """The streams made so far."""
        if self.kv_unified:
            return [] if self.shared is None else [self.shared]
        return [self.seqs[s] for s in sorted(self.seqs)]

    def clear(self) -> None:
        self.seqs.clear()
        self.shared = None

    def used_cells(self) -> int:
        return sum(int(np.count_nonzero(s.cache.pos >= 0)) for s in self.streams())

    def pos_range(self, seq_id: int) -> Tuple[int, int]:
        """(min, max) cached position of a sequence, (-1, -1) when empty."""
        stream = self.shared if self.kv_unified else self.seqs.get(seq_id)
        return (-1, -1) if stream is None else stream.cache.seq_pos_range(seq_id)

    def seq_ids(self, seq_id: int) -> List[int]:
        """The sequences a memory call addresses (seq_id < 0: all that hold cells)."""
        if seq_id < 0:
            held = [np.flatnonzero(s.cache.seq.any(axis=0)) for s in self.streams()]
            return sorted({int(x) for h in held for x in h})
        if seq_id >= self.n_seq_max:
            raise CAPIError(E.GENERIC_ERROR, f"seq_id {seq_id} outside [0, {self.n_seq_max})")
        return [seq_id]

    def aborted(self) -> bool:
        """Poll abort_callback (llama.cpp polls it between graph nodes)."""
        if self.abort_callback == RT.ffi.NULL:
            return False
        from bitnet.ffi.capi.core import callback

        with callback():
            return bool(self.abort_callback(self.abort_data))


class Outputs:
    """Logits and embeddings of the last decode: rows in batch order of the output tokens."""

    def __init__(self) -> None:
        self.logits: Optional[np.ndarray] = None  # (n_out, n_vocab) float32
        self.logits_ptr: Any = None
        self.embd: Optional[np.ndarray] = None  # (n_out, n_embd) float32
        self.embd_ptr: Any = None
        self.rows: Dict[int, int] = {}  # batch index -> row
        self.seq_embd: Dict[int, Tuple[np.ndarray, Any]] = {}  # pooled, per sequence

    def set(self, logits: np.ndarray, embd: Optional[np.ndarray], rows: List[int]) -> None:
        self.logits = np.ascontiguousarray(logits, dtype=np.float32)
        self.logits_ptr = RT.ffi.from_buffer("float[]", self.logits)
        self.embd = self.embd_ptr = None
        if embd is not None:
            self.embd = np.ascontiguousarray(embd, dtype=np.float32)
            self.embd_ptr = RT.ffi.from_buffer("float[]", self.embd)
        self.rows = {int(b): r for r, b in enumerate(rows)}
        self.seq_embd = {}

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]


def context_of(ptr: Any) -> Context:
    c = get(ptr, Context, "context")
    if c.model_freed:
        raise CAPIError(E.INVALID_MODEL_ID, "the context's model was freed")
    return c


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


@export
def llama_init_from_model(model_ptr: Any, params: Any) -> Any:
    model = model_of(model_ptr)
    if params == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "params is NULL")
    c = Context(model, params)
    if model.engine is not None:
        hp = model.engine.hparams
        itemsize = 2 if c.kv_type == "f16" else 4
        kv_bytes = 2 * hp.n_layer * c.n_ctx * hp.n_head_kv * hp.n_embd_head_k * itemsize
        phys = _physical_memory()
        if phys and kv_bytes > phys:
            raise CAPIError(E.OUT_OF_MEMORY, f"a KV cache of n_ctx={c.n_ctx} needs {kv_bytes} "
                            f"bytes; this machine has {phys}")
    log(LOG_INFO, f"llama_context: n_ctx = {c.n_ctx}, n_ctx_seq = {c.n_ctx_seq}, n_batch = "
        f"{c.n_batch}, n_ubatch = {c.n_ubatch}, n_seq_max = {c.n_seq_max}, kv_unified = "
        f"{str(c.kv_unified).lower()}, type_k = type_v = {c.kv_type}")
    return as_ptr("struct llama_context *", new_handle(c))


@export
def llama_free(ptr: Any) -> None:
    if ptr == RT.ffi.NULL:
        return
    c = get(ptr, Context, "context")
    HANDLES.pop(c.memory_handle, None)
    HANDLES.pop(handle_id(ptr), None)


@export
def bitnet_set_logits_all(ptr: Any, value: bool) -> None:
    context_of(ptr).logits_all = bool(value)


# ---- parameters as the context uses them -----------------------------------------------------


@export
def llama_n_ctx(ptr: Any) -> int:
    return context_of(ptr).n_ctx


@export
def llama_n_ctx_seq(ptr: Any) -> int:
    return context_of(ptr).n_ctx_seq


@export
def llama_n_batch(ptr: Any) -> int:
    return context_of(ptr).n_batch


@export
def llama_n_ubatch(ptr: Any) -> int:
    return context_of(ptr).n_ubatch


@export
def llama_n_seq_max(ptr: Any) -> int:
    return context_of(ptr).n_seq_max


@export
def llama_n_rs_seq(ptr: Any) -> int:
    context_of(ptr)
    return 0  # no recurrent state


@export
def llama_get_model(ptr: Any) -> Any:
    c = context_of(ptr)
    for hid, obj in HANDLES.items():
        if obj is c.model:
            return as_ptr("struct llama_model *", hid)
    raise CAPIError(E.INVALID_MODEL_ID, "the context's model was freed")


@export
def llama_pooling_type(ptr: Any) -> int:
    return {v: k for k, v in POOLING.items()}[context_of(ptr).pooling]


@export
def llama_set_n_threads(ptr: Any, n_threads: int, n_threads_batch: int) -> None:
    c = context_of(ptr)
    c.n_threads, c.n_threads_batch = int(n_threads), int(n_threads_batch)


@export
def llama_n_threads(ptr: Any) -> int:
    return context_of(ptr).n_threads


@export
def llama_n_threads_batch(ptr: Any) -> int:
    return context_of(ptr).n_threads_batch


@export
def llama_set_embeddings(ptr: Any, value: bool) -> None:
    context_of(ptr).embeddings = bool(value)


@export
def llama_set_causal_attn(ptr: Any, value: bool) -> None:
    context_of(ptr)
    if not value:
        raise CAPIError(E.GENERIC_ERROR, "non-causal attention is not supported")


@export
def llama_get_causal_attn(ptr: Any) -> bool:
    context_of(ptr)
    return True


@export
def llama_set_warmup(ptr: Any, value: bool) -> None:
    context_of(ptr)


@export
def llama_set_abort_callback(ptr: Any, fn: Any, data: Any) -> None:
    c = context_of(ptr)
    c.abort_callback, c.abort_data = fn, data


@export
def llama_synchronize(ptr: Any) -> None:
    context_of(ptr)  # every call completes before returning


# ---- memory ----------------------------------------------------------------------------------


class Memory:
    def __init__(self, context: Context) -> None:
        self.context = context


@export
def llama_get_memory(ptr: Any) -> Any:
    c = context_of(ptr)
    if not c.memory_handle:
        c.memory_handle = new_handle(Memory(c))
    return as_ptr("llama_memory_t", c.memory_handle)


def memory_of(ptr: Any) -> Context:
    c = get(ptr, Memory, "memory").context
    if HANDLES.get(c.memory_handle) is None:
        raise CAPIError(E.INVALID_MODEL_ID, "the memory's context was freed")
    return c


@export
def llama_memory_clear(mem: Any, data: bool) -> None:
    memory_of(mem).clear()


def seq_rm(c: Context, seq_id: int, p0: int, p1: int) -> bool:
    """llama_memory_seq_rm: seq_id < 0 removes the range from every stream."""
    if seq_id >= 0:
        c.seq_ids(seq_id)
    streams = c.streams() if seq_id < 0 or c.kv_unified else [c.seqs[seq_id]] if seq_id in c.seqs else []
    for stream in streams:
        stream.cache.seq_rm(int(seq_id), int(p0), int(p1))
    return True


@export
def llama_memory_seq_rm(mem: Any, seq_id: int, p0: int, p1: int) -> bool:
    return seq_rm(memory_of(mem), seq_id, p0, p1)


@export
def llama_memory_seq_cp(mem: Any, src: int, dst: int, p0: int, p1: int) -> None:
    """In one stream the cells gain dst (no data moves); across streams (kv_unified = false)
    dst's stream becomes a copy of src's cells in [p0, p1) (llama.cpp copies only whole
    streams and asserts the range is everything)."""
    c = memory_of(mem)
    c.seq_ids(src), c.seq_ids(dst)
    if src == dst:
        return
    if c.kv_unified:
        if c.shared is not None:
            c.shared.cache.seq_cp(int(src), int(dst), int(p0), int(p1))
        return
    if src not in c.seqs:
        return
    s_kv, d_kv = c.seqs[src].cache, c.seq(dst).cache
    cells = s_kv.seq_cells(src, int(p0), int(p1))
    d_kv.clear()
    d_kv.k[:, cells] = s_kv.k[:, cells]
    d_kv.v[:, cells] = s_kv.v[:, cells]
    if cells.size:
        d_kv.place(cells, s_kv.pos[cells], [(int(dst),)] * cells.size)
    d_kv.head = s_kv.head


@export
def llama_memory_seq_keep(mem: Any, seq_id: int) -> None:
    """Drop every other sequence from seq_id's stream (kv_unified = false: the stream holds
    only seq_id already, and llama.cpp leaves the other streams as they are)."""
    c = memory_of(mem)
    c.seq_ids(seq_id)
    if c.kv_unified and c.shared is not None:
        c.shared.cache.seq_keep(int(seq_id))


@export
def llama_memory_seq_add(mem: Any, seq_id: int, p0: int, p1: int, delta: int) -> None:
    """Shift positions [p0, p1) of seq_id by delta, re-rotating the cached keys (llama.cpp's
    K-shift); cells moved below 0 are freed."""
    c = memory_of(mem)
    if delta == 0 or p0 == p1:
        return
    from bitnet.model.graphs import rope_params

    for s in c.seq_ids(seq_id):
        stream = c.shared if c.kv_unified else c.seqs.get(s)
        if stream is None:
            continue
        kv = stream.cache
        cells = kv.seq_cells(s, int(p0), int(p1))
        if cells.size == 0:
            continue
        new = kv.pos[cells] + int(delta)
        if int(new.max()) >= c.n_ctx_seq:
            raise CAPIError(E.CONTEXT_LENGTH_EXCEEDED, f"positions up to {int(new.max())} do not "
                            f"fit n_ctx_seq={c.n_ctx_seq}")
        engine = stream.model
        rope = rope_params(engine.hparams, engine.weights.rope_freqs)
        keep = new >= 0
        kv.pos[cells] = new
        gone = cells[~keep]
        kv.unplace(gone)
        kv.head = int(gone[0]) if gone.size else 0  # llama.cpp: the first freed cell, else 0
        moved = cells[keep]
        shift = np.full(moved.size, int(delta), dtype=np.int64)
        for il in range(kv.k.shape[0]):
            k = kv.k[il, moved].astype(np.float32)
            kv.k[il, moved] = engine.backend.rope(k, shift, rope).astype(kv.k.dtype)


@export
def llama_memory_seq_pos_min(mem: Any, seq_id: int) -> int:
    c = memory_of(mem)
    ranges = [c.pos_range(s) for s in c.seq_ids(seq_id)]
    mins = [lo for lo, _ in ranges if lo >= 0]
    return min(mins) if mins else -1


@export
def llama_memory_seq_pos_max(mem: Any, seq_id: int) -> int:
    c = memory_of(mem)
    return max([c.pos_range(s)[1] for s in c.seq_ids(seq_id)], default=-1)


@export
def llama_memory_can_shift(mem: Any) -> bool:
    memory_of(mem)
    return True


def timed_eval(c: Context, n_tokens: int, t0: float) -> None:
    """Account a decode in the perf counters (prompt: more than one token)."""
    if c.no_perf:
        return
    ms = (time.monotonic() - t0) * 1e3
    if n_tokens > 1:
        c.perf.t_p_eval_ms += ms
        c.perf.n_p_eval += n_tokens
    else:
        c.perf.t_eval_ms += ms
        c.perf.n_eval += n_tokens
