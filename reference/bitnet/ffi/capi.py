"""The Python side of libbitnet_ffi.so: one function per exported C function.

Handles handed to C are small integers cast to pointers (keys of `_HANDLES`), never Python
addresses; every entry point checks its handle's kind, so NULL, freed or foreign pointers
give the documented error value. Each call sets the last error (0 on success); exceptions
never cross into C.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

import numpy as np

from bitnet import errors as E

INT32_MIN = -(2**31)
LLAMA_TOKEN_NULL = -1
LLAMA_DEFAULT_SEED = 0xFFFFFFFF
DEFAULT_N_BATCH = 512

_LOCK = threading.RLock()
_HANDLES: Dict[int, Any] = {}
_NEXT_ID = itertools.count(0x1000, 0x10)
_last_code = 0
_last_message = b""
_ffi: Any = None
_err_buf: Any = None
_VOID = object()  # error value of void functions
_in_callback = False  # True while a user callback (progress_callback) runs


class CAPIError(Exception):
    """An error to report through bitnet_last_error with `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Model:
    def __init__(self, gguf: Any, tokenizer: Any, engine: Any) -> None:
        self.gguf = gguf
        self.tokenizer = tokenizer
        self.engine = engine
        self.vocab_handle = 0


class _Vocab:
    def __init__(self, model: _Model) -> None:
        self.model = model


class _Context:
    def __init__(self, model: _Model, ctx: Any, logits_all: bool, embeddings: bool,
                 seed: int) -> None:
        self.model = model
        self.ctx = ctx
        self.logits_all = logits_all
        self.embeddings = embeddings  # llama.cpp: every token is an output then
        self.logits: Optional[np.ndarray] = None  # (n_out, V) float32, C-contiguous
        self.logits_ptr: Any = None
        self.embd: Optional[np.ndarray] = None  # (n_out, n_embd) float32, C-contiguous
        self.embd_ptr: Any = None
        self.out_rows: Dict[int, int] = {}  # batch index -> row of `logits`
        self.n_batch_last = 0
        self.memory_handle = 0
        from bitnet.sampling import MT19937, _rng_seed

        self.rng = MT19937(_rng_seed(seed))  # the legacy llama_sample_token's generator


class _Memory:
    def __init__(self, context: _Context) -> None:
        self.context = context


class _Sampler:
    def __init__(self, impl: Any, is_chain: bool = False) -> None:
        self.impl = impl  # a bitnet.sampling.Sampler (SamplerChain for a chain)
        self.is_chain = is_chain
        self.children: List[int] = []  # handles owned by a chain


T = TypeVar("T")


def _set_error(code: int, message: str = "") -> None:
    global _last_code, _last_message
    _last_code = code
    _last_message = message.encode("utf-8", "replace").replace(b"\0", b" ")


def _new_handle(obj: Any) -> int:
    hid = next(_NEXT_ID)
    _HANDLES[hid] = obj
    return hid


def _get(ptr: Any, kind: Type[T], what: str) -> T:
    """The object behind handle `ptr` if it is a live `kind`, else CAPIError(-9)."""
    hid = int(_ffi.cast("uintptr_t", ptr)) if ptr is not None else 0
    obj = _HANDLES.get(hid)
    if not isinstance(obj, kind):
        raise CAPIError(E.INVALID_MODEL_ID, f"invalid {what} handle 0x{hid:x}")
    return obj


def _code_of(exc: BaseException) -> int:
    if isinstance(exc, CAPIError):
        return exc.code
    if isinstance(exc, E.BitNetError):
        return int(exc.code)
    if isinstance(exc, MemoryError):
        return E.OUT_OF_MEMORY
    return E.GENERIC_ERROR


def _entry(error_value: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap an entry point: serialize, reset the last error, map exceptions to `error_value`."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any) -> Any:
            with _LOCK:
                if _in_callback:  # re-entered from a user callback on this thread
                    _set_error(E.THREAD_SAFETY_ERROR, f"{fn.__name__} called from inside a "
                               "callback of another bitnet_ffi call; not re-entrant")
                    if error_value is _VOID:
                        return None
                    return _ffi.NULL if error_value is None else error_value
                _set_error(0)
                try:
                    return fn(*args)
                except BaseException as exc:  # noqa: B036 - nothing may unwind into C
                    _set_error(_code_of(exc), f"{type(exc).__name__}: {exc}")
                    value = error_value
                    if isinstance(exc, CAPIError) and getattr(exc, "value", None) is not None:
                        value = exc.value  # type: ignore[attr-defined]
                    if value is _VOID:
                        return None
                    return _ffi.NULL if value is None else value

        return wrapper

    return deco


def _fail(code: int, message: str, value: Any = None) -> CAPIError:
    exc = CAPIError(code, message)
    exc.value = value  # type: ignore[attr-defined]
    return exc


# ---------------------------------------------------------------------------------------------
# errors, backend


def bitnet_last_error() -> int:
    return _last_code


def bitnet_last_error_message() -> Any:
    global _err_buf
    _err_buf = _ffi.new("char[]", _last_message)
    return _err_buf


def llama_backend_init() -> None:
    return None


def llama_backend_free() -> None:
    return None


# ---------------------------------------------------------------------------------------------
# models and contexts


@_entry(None)
def bitnet__load_model(path: Any, params: Any) -> Any:
    if path == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "path_model is NULL")
    fname = os.fsdecode(_ffi.string(path))
    if not os.path.isfile(fname):
        raise CAPIError(E.MODEL_NOT_FOUND, f"model file not found: {fname}")
    vocab_only = bool(params.vocab_only) if params != _ffi.NULL else False
    from bitnet import runtime
    from bitnet.gguf import load

    _progress(params, 0.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gf = load(fname)
            tok = runtime.tokenizer_from_kv(gf.kv)
            engine = runtime.load_model(gf) if not vocab_only else None
    except E.BitNetError as exc:
        code = exc.code if exc.code in (E.MODEL_LOAD_FAILED, E.OUT_OF_MEMORY) else E.MODEL_LOAD_FAILED
        raise CAPIError(code, f"cannot load {fname}: {exc}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise CAPIError(E.MODEL_LOAD_FAILED, f"cannot load {fname}: {exc}") from exc
    _progress(params, 1.0)
    model = _Model(gf, tok, engine)
    mid = _new_handle(model)
    model.vocab_handle = _new_handle(_Vocab(model))
    return _ffi.cast("struct llama_model *", mid)


def _progress(params: Any, value: float) -> None:
    """Call params.progress_callback as llama.cpp does; False from it cancels the load."""
    global _in_callback
    if params == _ffi.NULL or params.progress_callback == _ffi.NULL:
        return
    _in_callback = True
    try:
        go = bool(params.progress_callback(value, params.progress_callback_user_data))
    finally:
        _in_callback = False
        _set_error(0)  # what a (refused) inner call set belongs to that call
    if not go:
        raise CAPIError(E.MODEL_LOAD_FAILED, "model load cancelled by the progress callback")


def _free_model(ptr: Any) -> None:
    if ptr == _ffi.NULL:
        return
    model = _get(ptr, _Model, "model")
    hid = int(_ffi.cast("uintptr_t", ptr))
    _HANDLES.pop(model.vocab_handle, None)
    _HANDLES.pop(hid, None)
    if hasattr(model.gguf, "close"):
        try:
            model.gguf.close()
        except Exception:  # noqa: BLE001 - contexts may still hold views
            pass


@_entry(_VOID)
def llama_free_model(ptr: Any) -> None:
    _free_model(ptr)


@_entry(_VOID)
def llama_model_free(ptr: Any) -> None:
    _free_model(ptr)


@_entry(None)
def bitnet__new_context(model_ptr: Any, params: Any) -> Any:
    model = _get(model_ptr, _Model, "model")
    if model.engine is None:
        raise CAPIError(E.MODEL_LOAD_FAILED, "model was loaded with vocab_only; no context")
    if params == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "params is NULL")
    n_ctx = int(params.n_ctx) or int(model.engine.hparams.n_ctx_train)
    n_batch = int(params.n_batch) or DEFAULT_N_BATCH
    from bitnet.model import Context

    hp = model.engine.hparams
    kv_bytes = 2 * hp.n_layer * n_ctx * hp.n_head_kv * hp.n_embd_head_k * 2  # f16 lower bound
    phys = _physical_memory()
    if phys and kv_bytes > phys:
        raise CAPIError(E.OUT_OF_MEMORY, f"a KV cache of n_ctx={n_ctx} needs at least "
                        f"{kv_bytes} bytes; this machine has {phys}")
    try:
        ctx = Context(model.engine, n_ctx=n_ctx, n_batch=n_batch)
    except ValueError as exc:
        raise CAPIError(E.GENERIC_ERROR, str(exc)) from exc
    c = _Context(model, ctx, bool(params.logits_all), bool(params.embeddings), int(params.seed))
    return _ffi.cast("struct llama_context *", _new_handle(c))


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


@_entry(_VOID)
def llama_free(ptr: Any) -> None:
    if ptr == _ffi.NULL:
        return
    c = _get(ptr, _Context, "context")
    _HANDLES.pop(c.memory_handle, None)
    _HANDLES.pop(int(_ffi.cast("uintptr_t", ptr)), None)


@_entry(0)
def llama_n_vocab(model_ptr: Any) -> int:
    return int(_get(model_ptr, _Model, "model").tokenizer.vocab.n_tokens)


@_entry(0)
def llama_n_ctx(ctx_ptr: Any) -> int:
    return int(_get(ctx_ptr, _Context, "context").ctx.n_ctx)


@_entry(0)
def llama_n_batch(ctx_ptr: Any) -> int:
    return int(_get(ctx_ptr, _Context, "context").ctx.n_batch)


def _special(tok: Any, name: str) -> int:
    value = getattr(tok.vocab, name, None)
    return LLAMA_TOKEN_NULL if value is None else int(value)


@_entry(LLAMA_TOKEN_NULL)
def llama_token_bos(model_ptr: Any) -> int:
    return _special(_get(model_ptr, _Model, "model").tokenizer, "bos_id")


@_entry(LLAMA_TOKEN_NULL)
def llama_token_eos(model_ptr: Any) -> int:
    return _special(_get(model_ptr, _Model, "model").tokenizer, "eos_id")


@_entry(LLAMA_TOKEN_NULL)
def llama_token_nl(model_ptr: Any) -> int:
    return _special(_get(model_ptr, _Model, "model").tokenizer, "nl_id")


# ---------------------------------------------------------------------------------------------
# tokenization


def _tokenize(tok: Any, text: Any, text_len: int, tokens: Any, n_max: int, add_special: bool,
              parse_special: bool) -> int:
    if text_len < 0:
        raise CAPIError(E.GENERIC_ERROR, f"text_len={text_len} is negative")
    if text == _ffi.NULL and text_len > 0:
        raise CAPIError(E.GENERIC_ERROR, "text is NULL")
    data = bytes(_ffi.buffer(text, text_len)) if text_len else b""
    try:
        ids = tok.tokenize(data, bool(add_special), bool(parse_special))
    except E.BitNetError:
        raise
    except (ValueError, KeyError) as exc:
        raise CAPIError(E.TOKENIZATION_FAILED, str(exc)) from exc
    n = len(ids)
    if n > n_max:
        return -n  # llama.cpp: -(tokens needed); not an error
    if n and tokens == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "tokens is NULL")
    if n:
        _ffi.memmove(tokens, np.asarray(ids, dtype=np.int32).tobytes(), 4 * n)
    return n


@_entry(INT32_MIN)
def llama_tokenize(model_ptr: Any, text: Any, text_len: int, tokens: Any, n_max: int,
                   add_bos: bool, special: bool) -> int:
    tok = _get(model_ptr, _Model, "model").tokenizer
    return _tokenize(tok, text, text_len, tokens, n_max, add_bos, special)


@_entry(INT32_MIN)
def bitnet_vocab_tokenize(vocab_ptr: Any, text: Any, text_len: int, tokens: Any, n_max: int,
                          add_special: bool, parse_special: bool) -> int:
    tok = _get(vocab_ptr, _Vocab, "vocab").model.tokenizer
    return _tokenize(tok, text, text_len, tokens, n_max, add_special, parse_special)


def _token_to_piece(tok: Any, token: int, buf: Any, length: int, lstrip: int, special: bool) -> int:
    if not 0 <= token < tok.vocab.n_tokens:
        raise CAPIError(E.TOKENIZATION_FAILED,
                        f"token {token} out of range [0, {tok.vocab.n_tokens})")
    piece = tok.token_to_piece(int(token), int(lstrip), bool(special))
    n = len(piece)
    if n > length:
        return -n
    if n and buf == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "buf is NULL")
    if n:
        _ffi.memmove(buf, piece, n)
    return n


@_entry(INT32_MIN)
def llama_token_to_piece(model_ptr: Any, token: int, buf: Any, length: int, lstrip: int,
                         special: bool) -> int:
    tok = _get(model_ptr, _Model, "model").tokenizer
    return _token_to_piece(tok, token, buf, length, lstrip, special)


@_entry(INT32_MIN)
def bitnet_vocab_token_to_piece(vocab_ptr: Any, token: int, buf: Any, length: int, lstrip: int,
                                special: bool) -> int:
    tok = _get(vocab_ptr, _Vocab, "vocab").model.tokenizer
    return _token_to_piece(tok, token, buf, length, lstrip, special)


def _detokenize(tok: Any, tokens: Any, n_tokens: int, text: Any, text_len_max: int,
                remove_special: bool, unparse_special: bool) -> int:
    if n_tokens < 0:
        raise CAPIError(E.GENERIC_ERROR, f"n_tokens={n_tokens} is negative")
    if n_tokens and tokens == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "tokens is NULL")
    ids = np.frombuffer(_ffi.buffer(tokens, 4 * n_tokens), dtype=np.int32).tolist() \
        if n_tokens else []
    bad = [t for t in ids if not 0 <= t < tok.vocab.n_tokens]
    if bad:
        raise CAPIError(E.TOKENIZATION_FAILED,
                        f"token {bad[0]} out of range [0, {tok.vocab.n_tokens})")
    data = tok.detokenize(ids, bool(remove_special), bool(unparse_special))
    n = len(data)
    if n > text_len_max:
        return -n  # llama.cpp: -(bytes needed)
    if n and text == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "text is NULL")
    if n:
        _ffi.memmove(text, data, n)
    return n


@_entry(INT32_MIN)
def llama_detokenize(model_ptr: Any, tokens: Any, n_tokens: int, text: Any, text_len_max: int,
                     remove_special: bool, unparse_special: bool) -> int:
    tok = _get(model_ptr, _Model, "model").tokenizer
    return _detokenize(tok, tokens, n_tokens, text, text_len_max, remove_special, unparse_special)


@_entry(INT32_MIN)
def bitnet_vocab_detokenize(vocab_ptr: Any, tokens: Any, n_tokens: int, text: Any,
                            text_len_max: int, remove_special: bool, unparse_special: bool) -> int:
    tok = _get(vocab_ptr, _Vocab, "vocab").model.tokenizer
    return _detokenize(tok, tokens, n_tokens, text, text_len_max, remove_special, unparse_special)


@_entry(None)
def llama_model_get_vocab(model_ptr: Any) -> Any:
    model = _get(model_ptr, _Model, "model")
    return _ffi.cast("struct llama_vocab *", model.vocab_handle)


@_entry(0)
def llama_vocab_n_tokens(vocab_ptr: Any) -> int:
    return int(_get(vocab_ptr, _Vocab, "vocab").model.tokenizer.vocab.n_tokens)


@_entry(LLAMA_TOKEN_NULL)
def llama_vocab_bos(vocab_ptr: Any) -> int:
    return _special(_get(vocab_ptr, _Vocab, "vocab").model.tokenizer, "bos_id")


@_entry(LLAMA_TOKEN_NULL)
def llama_vocab_eos(vocab_ptr: Any) -> int:
    return _special(_get(vocab_ptr, _Vocab, "vocab").model.tokenizer, "eos_id")


@_entry(LLAMA_TOKEN_NULL)
def llama_vocab_nl(vocab_ptr: Any) -> int:
    return _special(_get(vocab_ptr, _Vocab, "vocab").model.tokenizer, "nl_id")


@_entry(False)
def llama_vocab_is_eog(vocab_ptr: Any, token: int) -> bool:
    return bool(_get(vocab_ptr, _Vocab, "vocab").model.tokenizer.vocab.is_eog(int(token)))


# ---------------------------------------------------------------------------------------------
# evaluation and logits


def _run(c: _Context, ids: np.ndarray, n_past: int, rows: Optional[np.ndarray]) -> None:
    """Eval `ids` at n_past.. and keep the logits of batch indices `rows` (None: last)."""
    c.logits = None
    c.logits_ptr = None
    c.embd = c.embd_ptr = None
    c.out_rows = {}
    logits = c.ctx.eval(ids.tolist(), n_past, all_logits=rows is not None)
    if rows is None:
        rows = np.array([ids.size - 1])
        kept = logits[-1:]
    else:
        kept = logits[rows]
    c.logits = np.ascontiguousarray(kept, dtype=np.float32)
    c.logits_ptr = _ffi.from_buffer("float[]", c.logits)
    c.embd = c.embd_ptr = None
    if c.embeddings and c.ctx.embeddings is not None:
        c.embd = np.ascontiguousarray(np.asarray(c.ctx.embeddings)[rows], dtype=np.float32)
        c.embd_ptr = _ffi.from_buffer("float[]", c.embd)
    c.out_rows = {int(b): r for r, b in enumerate(rows)}
    c.n_batch_last = int(ids.size)


def _ids(tokens: Any, n_tokens: int) -> np.ndarray:
    if n_tokens <= 0:
        raise CAPIError(E.GENERIC_ERROR, f"n_tokens={n_tokens}; need at least one token")
    if tokens == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "tokens is NULL")
    return np.frombuffer(_ffi.buffer(tokens, 4 * n_tokens), dtype=np.int32).copy()


@_entry(1)
def llama_eval(ctx_ptr: Any, tokens: Any, n_tokens: int, n_past: int, n_threads: int) -> int:
    c = _get(ctx_ptr, _Context, "context")
    ids = _ids(tokens, n_tokens)
    if n_past < 0:
        raise CAPIError(E.GENERIC_ERROR, f"n_past={n_past} is negative")
    rows = np.arange(ids.size) if c.logits_all or c.embeddings else None
    _run(c, ids, int(n_past), rows)
    return 0


@_entry(-1)
def bitnet__decode(ctx_ptr: Any, batch: Any) -> int:
    c = _get(ctx_ptr, _Context, "context")
    if batch == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "batch is NULL")
    if batch.embd != _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "embedding input (batch.embd) is not supported")
    ids = _ids(batch.token, int(batch.n_tokens))
    n = ids.size
    if n > c.ctx.n_batch:
        raise _fail(E.GENERIC_ERROR, f"n_tokens={n} > n_batch={c.ctx.n_batch} (llama.cpp "
                    "asserts here)", -1)
    if batch.n_seq_id != _ffi.NULL and batch.seq_id != _ffi.NULL:
        for i in range(n):
            ns = int(batch.n_seq_id[i])
            if ns < 1 or batch.seq_id[i] == _ffi.NULL:
                raise CAPIError(E.GENERIC_ERROR, f"batch token {i} has no sequence id")
            for j in range(ns):
                if int(batch.seq_id[i][j]) != 0:
                    raise CAPIError(E.GENERIC_ERROR, f"invalid seq_id[{i}][{j}] = "
                                    f"{int(batch.seq_id[i][j])} >= n_seq_max = 1")
    if batch.pos != _ffi.NULL:
        pos = np.frombuffer(_ffi.buffer(batch.pos, 4 * n), dtype=np.int32)
        if np.any(np.diff(pos) != 1):
            raise CAPIError(E.GENERIC_ERROR, "batch positions must be consecutive (one sequence)")
        n_past = int(pos[0])
    else:
        n_past = int(c.ctx.n_past)
    rows: Optional[np.ndarray] = None
    if batch.logits != _ffi.NULL:
        flags = np.frombuffer(_ffi.buffer(batch.logits, n), dtype=np.int8)
        rows = np.nonzero(flags)[0]
        if rows.size == 0:
            rows = None  # llama.cpp still computes the last token; keep that row
    if c.embeddings:
        rows = np.arange(n)  # llama.cpp: with embeddings on, every token is an output
    if n_past + n > c.ctx.n_ctx:
        raise _fail(E.CONTEXT_LENGTH_EXCEEDED,
                    f"positions {n_past}..{n_past + n - 1} do not fit n_ctx={c.ctx.n_ctx}", 1)
    try:
        _run(c, ids, n_past, rows)
    except E.InferenceError as exc:
        raise _fail(E.INFERENCE_FAILED, str(exc), -1) from exc
    except E.BitNetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a compute failure
        raise _fail(E.INFERENCE_FAILED, f"{type(exc).__name__}: {exc}", -3) from exc
    return 0


@_entry(None)
def llama_get_logits(ctx_ptr: Any) -> Any:
    c = _get(ctx_ptr, _Context, "context")
    if c.logits_ptr is None:
        raise CAPIError(E.GENERIC_ERROR, "no logits: nothing evaluated yet")
    return c.logits_ptr


def _row(c: _Context, i: int) -> int:
    if c.logits is None:
        raise CAPIError(E.GENERIC_ERROR, "no logits: nothing evaluated yet")
    if i < 0:
        r = c.logits.shape[0] + i
        if r < 0:
            raise CAPIError(E.GENERIC_ERROR, f"invalid logits index {i}")
        return r
    if i not in c.out_rows:
        raise CAPIError(E.GENERIC_ERROR, f"batch index {i} produced no logits")
    return c.out_rows[i]


@_entry(None)
def llama_get_logits_ith(ctx_ptr: Any, i: int) -> Any:
    c = _get(ctx_ptr, _Context, "context")
    r = _row(c, int(i))
    return c.logits_ptr + r * c.logits.shape[1]  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# embeddings


def _need_embd(c: _Context) -> None:
    if not c.embeddings:
        raise CAPIError(E.GENERIC_ERROR, "no embeddings: the context was created with "
                        "embeddings = false (llama.cpp returns NULL too)")
    if c.embd_ptr is None:
        raise CAPIError(E.GENERIC_ERROR, "no embeddings: nothing decoded yet")


@_entry(None)
def llama_get_embeddings(ctx_ptr: Any) -> Any:
    c = _get(ctx_ptr, _Context, "context")
    _need_embd(c)
    return c.embd_ptr


@_entry(None)
def llama_get_embeddings_ith(ctx_ptr: Any, i: int) -> Any:
    c = _get(ctx_ptr, _Context, "context")
    _need_embd(c)
    r = _row(c, int(i))
    return c.embd_ptr + r * c.embd.shape[1]  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# KV cache (one sequence): legacy llama_kv_cache_* on the context, current llama_memory_*


def _seq_ok(seq_id: int) -> None:
    if seq_id > 0:
        raise CAPIError(E.GENERIC_ERROR, f"seq_id={seq_id}: this context holds sequence 0 only")


def _seq_rm(c: _Context, seq_id: int, p0: int, p1: int) -> bool:
    _seq_ok(int(seq_id))
    c.ctx.kv_cache_seq_rm(max(int(p0), 0), int(p1))
    return True


def _pos_range(c: _Context) -> Tuple[int, int]:
    used = np.nonzero(c.ctx.cache.pos >= 0)[0]
    return (int(used[0]), int(used[-1])) if used.size else (-1, -1)


@_entry(None)
def llama_get_memory(ctx_ptr: Any) -> Any:
    c = _get(ctx_ptr, _Context, "context")
    if not c.memory_handle:
        c.memory_handle = _new_handle(_Memory(c))
    return _ffi.cast("llama_memory_t", c.memory_handle)


def _mem(mem_ptr: Any) -> _Context:
    ctx = _get(mem_ptr, _Memory, "memory").context
    if _HANDLES.get(ctx.memory_handle) is None:
        raise CAPIError(E.INVALID_MODEL_ID, "the memory's context was freed")
    return ctx


@_entry(_VOID)
def llama_memory_clear(mem_ptr: Any, data: bool) -> None:
    _mem(mem_ptr).ctx.reset()


@_entry(False)
def llama_memory_seq_rm(mem_ptr: Any, seq_id: int, p0: int, p1: int) -> bool:
    return _seq_rm(_mem(mem_ptr), seq_id, p0, p1)


@_entry(-1)
def llama_memory_seq_pos_min(mem_ptr: Any, seq_id: int) -> int:
    c = _mem(mem_ptr)
    return _pos_range(c)[0] if seq_id <= 0 else -1


@_entry(-1)
def llama_memory_seq_pos_max(mem_ptr: Any, seq_id: int) -> int:
    c = _mem(mem_ptr)
    return _pos_range(c)[1] if seq_id <= 0 else -1


@_entry(_VOID)
def llama_kv_cache_clear(ctx_ptr: Any) -> None:
    _get(ctx_ptr, _Context, "context").ctx.reset()


@_entry(False)
def llama_kv_cache_seq_rm(ctx_ptr: Any, seq_id: int, p0: int, p1: int) -> bool:
    return _seq_rm(_get(ctx_ptr, _Context, "context"), seq_id, p0, p1)


@_entry(-1)
def llama_kv_cache_seq_pos_max(ctx_ptr: Any, seq_id: int) -> int:
    c = _get(ctx_ptr, _Context, "context")
    return _pos_range(c)[1] if seq_id <= 0 else -1


# ---------------------------------------------------------------------------------------------
# model information


def _hp_kv(model: _Model, key: str) -> int:
    arch = model.gguf.kv.get("general.architecture", "")
    value = model.gguf.kv.get(f"{arch}.{key}")
    if value is None:
        raise CAPIError(E.GENERIC_ERROR, f"the model has no {arch}.{key}")
    return int(value)


@_entry(0)
def llama_model_n_ctx_train(model_ptr: Any) -> int:
    return _hp_kv(_get(model_ptr, _Model, "model"), "context_length")


@_entry(0)
def llama_model_n_embd(model_ptr: Any) -> int:
    return _hp_kv(_get(model_ptr, _Model, "model"), "embedding_length")


def _meta_str(value: Any) -> str:
    """gguf_kv_to_str as llama.cpp prints a metadata value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:f}"  # std::to_string
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if items and isinstance(items[0], (str, bytes)):
            return "[" + ", ".join(f'"{_meta_str(v)}"' for v in items) + "]"
        return "[" + ", ".join(_meta_str(v) for v in items) + "]"
    return str(value)


@_entry(-1)
def llama_model_meta_val_str(model_ptr: Any, key: Any, buf: Any, buf_size: int) -> int:
    model = _get(model_ptr, _Model, "model")
    if key == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "key is NULL")
    name = _ffi.string(key).decode("utf-8", "surrogateescape")
    if name not in model.gguf.raw_kv:
        _set_error(0)
        return -1  # llama.cpp: -1, not found (not an error of the call)
    data = _meta_str(model.gguf.raw_kv[name]).encode("utf-8", "surrogateescape")
    if buf_size > 0:  # snprintf: truncated, always NUL-terminated
        if buf == _ffi.NULL:
            raise CAPIError(E.GENERIC_ERROR, "buf is NULL")
        n = min(len(data), int(buf_size) - 1)
        _ffi.memmove(buf, data[:n] + b"\0", n + 1)
    return len(data)


# ---------------------------------------------------------------------------------------------
# samplers: the current llama_sampler_* objects and the legacy llama_sample_* functions over a
# caller-owned llama_token_data_array; both run bitnet.sampling (llama.cpp's samplers, exact)

_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


def _new_sampler(impl: Any, is_chain: bool = False) -> Any:
    return _ffi.cast("struct llama_sampler *", _new_handle(_Sampler(impl, is_chain)))


@_entry(None)
def bitnet__sampler_chain_init() -> Any:
    from bitnet.sampling import SamplerChain

    return _new_sampler(SamplerChain(), True)


@_entry(None)
def llama_sampler_init_greedy() -> Any:
    from bitnet.sampling import Greedy

    return _new_sampler(Greedy())


@_entry(None)
def llama_sampler_init_dist(seed: int) -> Any:
    from bitnet.sampling import Dist

    return _new_sampler(Dist(int(seed)))


@_entry(None)
def llama_sampler_init_top_k(k: int) -> Any:
    from bitnet.sampling import TopK

    return _new_sampler(TopK(int(k)))


@_entry(None)
def llama_sampler_init_top_p(p: float, min_keep: int) -> Any:
    from bitnet.sampling import TopP

    return _new_sampler(TopP(p, int(min_keep)))


@_entry(None)
def llama_sampler_init_min_p(p: float, min_keep: int) -> Any:
    from bitnet.sampling import MinP

    return _new_sampler(MinP(p, int(min_keep)))


@_entry(None)
def llama_sampler_init_typical(p: float, min_keep: int) -> Any:
    from bitnet.sampling import Typical

    return _new_sampler(Typical(p, int(min_keep)))


@_entry(None)
def llama_sampler_init_temp(t: float) -> Any:
    from bitnet.sampling import Temp

    return _new_sampler(Temp(t))


@_entry(None)
def llama_sampler_init_temp_ext(t: float, delta: float, exponent: float) -> Any:
    from bitnet.sampling import TempExt

    return _new_sampler(TempExt(t, delta, exponent))


@_entry(None)
def llama_sampler_init_penalties(n_vocab: int, last_n: int, repeat: float, freq: float,
                                 present: float) -> Any:
    from bitnet.sampling import Penalties

    return _new_sampler(Penalties(int(last_n), repeat, freq, present))


@_entry(_VOID)
def llama_sampler_chain_add(chain_ptr: Any, smpl_ptr: Any) -> None:
    chain = _get(chain_ptr, _Sampler, "sampler")
    child = _get(smpl_ptr, _Sampler, "sampler")
    if not chain.is_chain:
        raise CAPIError(E.GENERIC_ERROR, "llama_sampler_chain_add on a non-chain sampler")
    hid = int(_ffi.cast("uintptr_t", smpl_ptr))
    if hid == int(_ffi.cast("uintptr_t", chain_ptr)) or hid in chain.children:
        raise CAPIError(E.GENERIC_ERROR, "a sampler cannot be added to a chain twice")
    chain.impl.add(child.impl)
    chain.children.append(hid)  # the chain owns it now


@_entry(-1)
def llama_sampler_chain_n(chain_ptr: Any) -> int:
    chain = _get(chain_ptr, _Sampler, "sampler")
    if not chain.is_chain:
        raise CAPIError(E.GENERIC_ERROR, "not a sampler chain")
    return len(chain.children)


@_entry(None)
def llama_sampler_chain_get(chain_ptr: Any, i: int) -> Any:
    chain = _get(chain_ptr, _Sampler, "sampler")
    if not chain.is_chain:
        raise CAPIError(E.GENERIC_ERROR, "not a sampler chain")
    if i == -1:
        return chain_ptr
    if not 0 <= i < len(chain.children):
        raise CAPIError(E.GENERIC_ERROR, f"chain index {i} out of range")
    return _ffi.cast("struct llama_sampler *", chain.children[i])


def _read_cur(cur_p: Any) -> Any:
    """A TokenDataArray copied from a C llama_token_data_array."""
    from bitnet.sampling import TokenDataArray

    if cur_p == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "candidates (llama_token_data_array *) is NULL")
    n = int(cur_p.size)
    if n > 2**31 - 1:
        raise CAPIError(E.GENERIC_ERROR, f"candidates size {n} is too large")
    if n and cur_p.data == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "candidates->data is NULL")
    arr = np.frombuffer(_ffi.buffer(cur_p.data, _TOKEN_DATA.itemsize * n), dtype=_TOKEN_DATA) \
        if n else np.zeros(0, _TOKEN_DATA)
    return TokenDataArray(arr["id"], arr["logit"], arr["p"], int(cur_p.selected),
                          bool(cur_p.sorted))


def _write_cur(cur_p: Any, cur: Any) -> None:
    """Write `cur` back in place (samplers only shrink the array)."""
    n = cur.size
    if n > int(cur_p.size):
        raise CAPIError(E.GENERIC_ERROR, "sampler grew the candidate array")
    if n:
        out = np.empty(n, _TOKEN_DATA)
        out["id"], out["logit"], out["p"] = cur.ids, cur.logits, cur.p
        _ffi.memmove(cur_p.data, out.tobytes(), out.nbytes)
    cur_p.size = n
    cur_p.selected = int(cur.selected)
    cur_p.sorted = bool(cur.sorted)


def _checked(fn: Callable[[], Any]) -> Any:
    """Run a sampler step; its own errors (e.g. softmax of nothing) are inference errors."""
    try:
        return fn()
    except (E.BitNetError, CAPIError):
        raise
    except (ValueError, IndexError, FloatingPointError) as exc:
        raise CAPIError(E.INFERENCE_FAILED, f"sampler failed: {exc}") from exc


@_entry(_VOID)
def llama_sampler_apply(smpl_ptr: Any, cur_p: Any) -> None:
    smpl = _get(smpl_ptr, _Sampler, "sampler")
    cur = _read_cur(cur_p)
    _checked(lambda: smpl.impl.apply(cur))
    _write_cur(cur_p, cur)


@_entry(_VOID)
def llama_sampler_accept(smpl_ptr: Any, token: int) -> None:
    _get(smpl_ptr, _Sampler, "sampler").impl.accept(int(token))


@_entry(_VOID)
def llama_sampler_reset(smpl_ptr: Any) -> None:
    _get(smpl_ptr, _Sampler, "sampler").impl.reset()


@_entry(LLAMA_DEFAULT_SEED)
def llama_sampler_get_seed(smpl_ptr: Any) -> int:
    return int(_get(smpl_ptr, _Sampler, "sampler").impl.get_seed()) & 0xFFFFFFFF


@_entry(LLAMA_TOKEN_NULL)
def llama_sampler_sample(smpl_ptr: Any, ctx_ptr: Any, idx: int) -> int:
    from bitnet.sampling import TokenDataArray

    smpl = _get(smpl_ptr, _Sampler, "sampler")
    c = _get(ctx_ptr, _Context, "context")
    row = c.logits[_row(c, int(idx))]  # type: ignore[index]
    cur = TokenDataArray.from_logits(row)
    _checked(lambda: smpl.impl.apply(cur))
    if not 0 <= cur.selected < cur.size:
        raise CAPIError(E.INFERENCE_FAILED, "the sampler chain selected no token (end the "
                        "chain with greedy, dist or mirostat)")
    token = int(cur.ids[cur.selected])
    smpl.impl.accept(token)
    return token


@_entry(_VOID)
def llama_sampler_free(smpl_ptr: Any) -> None:
    if smpl_ptr == _ffi.NULL:
        return
    smpl = _get(smpl_ptr, _Sampler, "sampler")
    for h in smpl.children:
        _HANDLES.pop(h, None)
    _HANDLES.pop(int(_ffi.cast("uintptr_t", smpl_ptr)), None)


# legacy llama.h (before llama_sampler): functions over the caller's candidates; ctx may be
# NULL (llama.cpp used it for timings only) except for llama_sample_token, whose generator is
# the context's (seeded by llama_context_params.seed / llama_set_rng_seed)


def _legacy_ctx(ctx_ptr: Any) -> None:
    if ctx_ptr != _ffi.NULL:
        _get(ctx_ptr, _Context, "context")


def _legacy(ctx_ptr: Any, cur_p: Any, step: Callable[[Any], None]) -> None:
    _legacy_ctx(ctx_ptr)
    cur = _read_cur(cur_p)
    _checked(lambda: step(cur))
    _write_cur(cur_p, cur)


@_entry(_VOID)
def llama_sample_softmax(ctx_ptr: Any, cur_p: Any) -> None:
    from bitnet.sampling import _softmax

    _legacy(ctx_ptr, cur_p, lambda cur: _softmax(cur, True) if cur.size else None)


@_entry(_VOID)
def llama_sample_top_k(ctx_ptr: Any, cur_p: Any, k: int, min_keep: int) -> None:
    from bitnet.sampling import _top_k

    def step(cur: Any) -> None:
        kk = cur.size if k <= 0 else int(k)  # legacy: k <= 0 means "all", sorted
        _top_k(cur, max(kk, int(min_keep)))

    _legacy(ctx_ptr, cur_p, step)


@_entry(_VOID)
def llama_sample_top_p(ctx_ptr: Any, cur_p: Any, p: float, min_keep: int) -> None:
    from bitnet.sampling import TopP, _softmax

    def step(cur: Any) -> None:
        if p >= 1.0 or cur.size == 0:
            return
        _softmax(cur, True)  # legacy: llama_sample_softmax first (full sort)
        TopP(p, int(min_keep)).apply(cur)

    _legacy(ctx_ptr, cur_p, step)


@_entry(_VOID)
def llama_sample_min_p(ctx_ptr: Any, cur_p: Any, p: float, min_keep: int) -> None:
    from bitnet.sampling import MinP

    _legacy(ctx_ptr, cur_p, MinP(p, int(min_keep)).apply)


@_entry(_VOID)
def llama_sample_typical(ctx_ptr: Any, cur_p: Any, p: float, min_keep: int) -> None:
    from bitnet.sampling import Typical

    _legacy(ctx_ptr, cur_p, lambda cur: Typical(p, int(min_keep)).apply(cur) if cur.size else None)


@_entry(_VOID)
def llama_sample_temp(ctx_ptr: Any, cur_p: Any, temp: float) -> None:
    from bitnet.sampling import Temp

    _legacy(ctx_ptr, cur_p, Temp(temp).apply)


@_entry(_VOID)
def llama_sample_repetition_penalties(ctx_ptr: Any, cur_p: Any, last_tokens: Any, last_n: int,
                                      repeat: float, freq: float, present: float) -> None:
    from bitnet.sampling import Penalties

    pen = Penalties(int(last_n), repeat, freq, present)
    if pen.disabled:
        _legacy_ctx(ctx_ptr)
        return
    if last_tokens == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "last_tokens is NULL")
    if int(last_n) > 2**31 - 1:
        raise CAPIError(E.GENERIC_ERROR, f"penalty_last_n {last_n} is too large")
    for t in np.frombuffer(_ffi.buffer(last_tokens, 4 * int(last_n)), dtype=np.int32).tolist():
        pen.accept(t)
    _legacy(ctx_ptr, cur_p, pen.apply)


@_entry(LLAMA_TOKEN_NULL)
def llama_sample_token_greedy(ctx_ptr: Any, cur_p: Any) -> int:
    _legacy_ctx(ctx_ptr)
    cur = _read_cur(cur_p)
    if cur.size == 0:
        raise CAPIError(E.INFERENCE_FAILED, "greedy sampling of an empty candidate array")
    return int(cur.ids[int(np.argmax(cur.logits))])  # std::max_element: the first maximum


@_entry(LLAMA_TOKEN_NULL)
def llama_sample_token(ctx_ptr: Any, cur_p: Any) -> int:
    from bitnet.sampling import _discrete_sample, _softmax

    c = _get(ctx_ptr, _Context, "context")
    cur = _read_cur(cur_p)
    if cur.size == 0:
        raise CAPIError(E.INFERENCE_FAILED, "sampling from an empty candidate array")
    _checked(lambda: _softmax(cur, True))
    idx = _discrete_sample(cur.p, c.rng)  # std::discrete_distribution over p, ctx's mt19937
    cur.selected = idx
    _write_cur(cur_p, cur)
    return int(cur.ids[idx])


@_entry(_VOID)
def llama_set_rng_seed(ctx_ptr: Any, seed: int) -> None:
    from bitnet.sampling import MT19937, _rng_seed

    _get(ctx_ptr, _Context, "context").rng = MT19937(_rng_seed(int(seed)))


# ---------------------------------------------------------------------------------------------
# quantization (bitnet.tools.quantize underneath; llama.cpp's semantics and return codes)

GGML_TYPE_COUNT = 43  # ggml.h of llama.cpp 0.3.36: "use the default"


@_entry(1)
def llama_model_quantize(fname_inp: Any, fname_out: Any, params: Any) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # llama.cpp prints no repair/ternary warnings either
        return _quantize(fname_inp, fname_out, params)


# LLAMA_FTYPE_MOSTLY_Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_M: llama.cpp upgrades some tensors of
# these files (llama-quant.cpp llama_tensor_get_type); Q5_K_S (16) and Q6_K (18) are one type
K_QUANT_MIXTURE_FTYPES = frozenset({10, 11, 12, 13, 14, 15, 17})


def _quantize(fname_inp: Any, fname_out: Any, params: Any) -> int:
    from bitnet.ggml_types import GGML_TYPES
    from bitnet.tools import quantize as Q

    if fname_inp == _ffi.NULL or fname_out == _ffi.NULL or params == _ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "fname_inp, fname_out and params must not be NULL")
    src = os.fsdecode(_ffi.string(fname_inp))
    dst = os.fsdecode(_ffi.string(fname_out))
    if not os.path.isfile(src):
        raise CAPIError(E.MODEL_NOT_FOUND, f"input file not found: {src}")
    unsupported = [name for name, on in (
        ("only_copy", params.only_copy), ("pure", params.pure),
        ("imatrix", params.imatrix != _ffi.NULL), ("kv_overrides", params.kv_overrides != _ffi.NULL),
        ("tt_overrides", params.tt_overrides != _ffi.NULL),
        ("prune_layers", params.prune_layers != _ffi.NULL)) if on]
    if unsupported:
        raise CAPIError(E.GENERIC_ERROR, f"unsupported quantize params: {', '.join(unsupported)}")
    by_ftype = {ft: tid for tid, ft in Q.FILE_TYPES.items()}
    ftype = int(params.ftype)
    if ftype in K_QUANT_MIXTURE_FTYPES:
        # subtle: llama.cpp gives these ftypes per-tensor mixtures (e.g. Q4_K_S puts attn_v and
        # the first ffn_down layers in Q5_K); `bitnet quantize` writes one type, so refuse
        # rather than silently produce a different file.
        raise CAPIError(E.GENERIC_ERROR, f"file type {ftype} is one of llama.cpp's K-quant mixtures "
                        "(not reproduced); use 16 (Q5_K_S) or 18 (Q6_K), or `bitnet quantize --type`")
    if ftype not in by_ftype:
        raise CAPIError(E.GENERIC_ERROR, f"invalid output file type {ftype} (supported: "
                        f"{sorted(set(by_ftype) - K_QUANT_MIXTURE_FTYPES)})")
    qtype = GGML_TYPES[by_ftype[ftype]].name

    def type_name(t: int) -> Optional[str]:
        if t == GGML_TYPE_COUNT:
            return None
        if t not in GGML_TYPES:
            raise CAPIError(E.GENERIC_ERROR, f"invalid ggml type {t}")
        return GGML_TYPES[t].name

    out_type = type_name(int(params.output_tensor_type))
    embd_type = type_name(int(params.token_embedding_type))
    from bitnet.gguf import load

    try:
        gf = load(src)
    except (E.BitNetError, OSError, ValueError) as exc:
        raise CAPIError(E.MODEL_LOAD_FAILED, f"cannot read {src}: {exc}") from exc
    tensors = list(gf.tensors.values())
    if not params.quantize_output_tensor and out_type is None:
        out_t = gf.tensors.get("output.weight")
        if out_t is not None:
            out_type = GGML_TYPES[int(out_t.type_id)].name
    plans = Q.plan_tensors(tensors, Q.type_id(qtype),
                           output_type=Q.type_id(out_type) if out_type else None,
                           embd_type=Q.type_id(embd_type) if embd_type else None)
    if not params.allow_requantize:
        plain = {0, 1, 30}  # F32, F16, BF16
        for pl in plans:
            if pl.dst_type != pl.src_type and pl.src_type not in plain:
                raise CAPIError(E.GENERIC_ERROR, f"requantizing from type "
                                f"{GGML_TYPES[pl.src_type].name} is disabled")
    if params.dry_run:
        return 0
    Q.quantize_file(src, dst, qtype, output_type=out_type, embeddings_type=embd_type)
    return 0


# ---------------------------------------------------------------------------------------------


def install(ffi: Any, lib: Any) -> None:
    """Bind every exported function to its implementation (called by the embedding init code)."""
    global _ffi
    from bitnet.ffi.build_ffi import embedded_names

    _ffi = ffi
    g = globals()
    for name in embedded_names():
        ffi.def_extern(name=name)(g[name])
