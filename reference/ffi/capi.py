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
from typing import Any, Callable, Dict, List, Optional, Type, TypeVar

import numpy as np

from bitnet import errors as E

INT32_MIN = -(2**31)
LLAMA_TOKEN_NULL = -1
DEFAULT_N_BATCH = 512

_LOCK = threading.RLock()
_HANDLES: Dict[int, Any] = {}
_NEXT_ID = itertools.count(0x1000, 0x10)
_last_code = 0
_last_message = b""
_ffi: Any = None
_err_buf: Any = None
_VOID = object()  # error value of void functions


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
    def __init__(self, model: _Model, ctx: Any, logits_all: bool) -> None:
        self.model = model
        self.ctx = ctx
        self.logits_all = logits_all
        self.logits: Optional[np.ndarray] = None  # (n_out, V) float32, C-contiguous
        self.logits_ptr: Any = None
        self.out_rows: Dict[int, int] = {}  # batch index -> row of `logits`
        self.n_batch_last = 0


class _Sampler:
    def __init__(self, kind: str) -> None:
        self.kind = kind  # "chain" | "greedy"
        self.children: List[int] = []


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
    from bitnet.gguf import load
    from bitnet.tokenizers import from_gguf_kv

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gf = load(fname)
            tok = from_gguf_kv(gf.kv)
            engine = None
            if not vocab_only:
                from bitnet.model import Model

                engine = Model(gf)
    except E.BitNetError as exc:
        code = exc.code if exc.code in (E.MODEL_LOAD_FAILED, E.OUT_OF_MEMORY) else E.MODEL_LOAD_FAILED
        raise CAPIError(code, f"cannot load {fname}: {exc}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise CAPIError(E.MODEL_LOAD_FAILED, f"cannot load {fname}: {exc}") from exc
    model = _Model(gf, tok, engine)
    mid = _new_handle(model)
    model.vocab_handle = _new_handle(_Vocab(model))
    return _ffi.cast("struct llama_model *", mid)


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

    try:
        ctx = Context(model.engine, n_ctx=n_ctx, n_batch=n_batch)
    except ValueError as exc:
        raise CAPIError(E.GENERIC_ERROR, str(exc)) from exc
    return _ffi.cast("struct llama_context *", _new_handle(_Context(model, ctx, bool(params.logits_all))))


@_entry(_VOID)
def llama_free(ptr: Any) -> None:
    if ptr == _ffi.NULL:
        return
    _get(ptr, _Context, "context")
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
        raise CAPIError(E.GENERIC_ERROR, f"token {token} out of range [0, {tok.vocab.n_tokens})")
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
    c.out_rows = {}
    logits = c.ctx.eval(ids.tolist(), n_past, all_logits=rows is not None)
    if rows is None:
        rows = np.array([ids.size - 1])
        kept = logits[-1:]
    else:
        kept = logits[rows]
    c.logits = np.ascontiguousarray(kept, dtype=np.float32)
    c.logits_ptr = _ffi.from_buffer("float[]", c.logits)
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
    rows = np.arange(ids.size) if c.logits_all else None
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
# samplers (greedy only)


@_entry(None)
def bitnet__sampler_chain_init() -> Any:
    return _ffi.cast("struct llama_sampler *", _new_handle(_Sampler("chain")))


@_entry(None)
def llama_sampler_init_greedy() -> Any:
    return _ffi.cast("struct llama_sampler *", _new_handle(_Sampler("greedy")))


@_entry(_VOID)
def llama_sampler_chain_add(chain_ptr: Any, smpl_ptr: Any) -> None:
    chain = _get(chain_ptr, _Sampler, "sampler")
    _get(smpl_ptr, _Sampler, "sampler")
    if chain.kind != "chain":
        raise CAPIError(E.GENERIC_ERROR, "llama_sampler_chain_add on a non-chain sampler")
    chain.children.append(int(_ffi.cast("uintptr_t", smpl_ptr)))  # the chain owns it now


@_entry(LLAMA_TOKEN_NULL)
def llama_sampler_sample(smpl_ptr: Any, ctx_ptr: Any, idx: int) -> int:
    smpl = _get(smpl_ptr, _Sampler, "sampler")
    c = _get(ctx_ptr, _Context, "context")
    row = c.logits[_row(c, int(idx))]  # type: ignore[index]
    kinds = [_HANDLES[h].kind for h in smpl.children] if smpl.kind == "chain" else [smpl.kind]
    if kinds != ["greedy"]:
        raise CAPIError(E.GENERIC_ERROR, f"unsupported sampler chain {kinds}; only greedy")
    return int(np.argmax(row))


@_entry(_VOID)
def llama_sampler_free(smpl_ptr: Any) -> None:
    if smpl_ptr == _ffi.NULL:
        return
    smpl = _get(smpl_ptr, _Sampler, "sampler")
    for h in smpl.children:
        _HANDLES.pop(h, None)
    _HANDLES.pop(int(_ffi.cast("uintptr_t", smpl_ptr)), None)


# ---------------------------------------------------------------------------------------------

EXPORTED = [
    "bitnet_last_error", "bitnet_last_error_message", "llama_backend_init", "llama_backend_free",
    "bitnet__load_model", "llama_free_model", "llama_model_free", "bitnet__new_context",
    "llama_free", "llama_tokenize", "llama_eval", "llama_get_logits", "llama_n_vocab",
    "llama_n_ctx", "llama_n_batch", "llama_token_bos", "llama_token_eos", "llama_token_nl",
    "llama_token_to_piece", "llama_model_get_vocab", "llama_vocab_n_tokens", "llama_vocab_bos",
    "llama_vocab_eos", "llama_vocab_nl", "llama_vocab_is_eog", "bitnet_vocab_tokenize",
    "bitnet_vocab_token_to_piece", "bitnet__decode", "llama_get_logits_ith",
    "bitnet__sampler_chain_init", "llama_sampler_chain_add", "llama_sampler_init_greedy",
    "llama_sampler_sample", "llama_sampler_free",
]


def install(ffi: Any, lib: Any) -> None:
    """Bind every exported function to its implementation (called by the embedding init code)."""
    global _ffi
    _ffi = ffi
    g = globals()
    for name in EXPORTED:
        ffi.def_extern(name=name)(g[name])
