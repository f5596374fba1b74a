"""llama_sampler_*: llama.cpp's samplers (bitnet.sampling, exact) as C struct llama_sampler
objects, chains that may mix them with a program's own samplers, and llama_sampler_sample.

A built-in sampler is a C struct whose ctx is a handle of `Builtin` here; the C part
dispatches llama_sampler_apply/accept/... through its iface to the bitnet__py_sampler_*
callbacks below. A chain holds C pointers: built-in children run in Python directly, a
program's own samplers through their C iface.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, List, Optional

import numpy as np

from bitnet import errors as E
from bitnet.ffi.capi.contexts import context_of
from bitnet.ffi.capi.core import (
    HANDLES,
    LLAMA_DEFAULT_SEED,
    LOG_INFO,
    RT,
    CAPIError,
    KeepAlive,
    code_of,
    export,
    log,
    new_handle,
    set_error,
)
from bitnet.ffi.capi.decode import logits_row

TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class Builtin:
    """A built-in sampler: a bitnet.sampling sampler (or a chain) behind a C struct."""

    def __init__(self, impl: Any, name: str) -> None:
        self.impl = impl
        self.name = name
        self.ptr = 0  # address of the C struct
        self.keep = KeepAlive()


class Empty:
    """llama.cpp's empty sampler ("?top-k", ...): what a disabled sampler becomes."""

    def apply(self, cur: Any) -> None:
        return None

    def accept(self, token: int) -> None:
        return None

    def reset(self) -> None:
        return None

    def get_seed(self) -> int:
        return LLAMA_DEFAULT_SEED

    def clone(self) -> Empty:
        return self


class Chain:
    """llama_sampler_chain: C pointers of its samplers, applied in order; perf counters."""

    def __init__(self, no_perf: bool) -> None:
        self.children: List[int] = []
        self.no_perf = no_perf
        self.t_sample_ms = 0.0
        self.n_sample = 0

    def apply(self, cur: Any) -> None:
        t0 = time.monotonic()
        for ptr in self.children:
            apply_any(ptr, cur)
        if not self.no_perf:
            self.t_sample_ms += (time.monotonic() - t0) * 1e3

    def accept(self, token: int) -> None:
        for ptr in self.children:
            accept_any(ptr, token)
        self.n_sample += 1

    def reset(self) -> None:
        for ptr in self.children:
            b = builtin_of(ptr)
            if b is not None:
                b.impl.reset()
            else:
                RT.lib.llama_sampler_reset(RT.ffi.cast("struct llama_sampler *", ptr))

    def get_seed(self) -> int:
        for ptr in reversed(self.children):
            b = builtin_of(ptr)
            seed = b.impl.get_seed() if b is not None else LLAMA_DEFAULT_SEED
            if seed != LLAMA_DEFAULT_SEED:
                return int(seed)
        return LLAMA_DEFAULT_SEED


def new_sampler(impl: Any, name: str) -> Any:
    """A C struct llama_sampler for `impl`."""
    obj = Builtin(impl, name)
    hid = new_handle(obj)
    ptr = RT.lib.bitnet__sampler_new_builtin(hid)
    if ptr == RT.ffi.NULL:
        HANDLES.pop(hid, None)
        raise CAPIError(E.OUT_OF_MEMORY, "cannot allocate a sampler")
    obj.ptr = int(RT.ffi.cast("uintptr_t", ptr))
    return ptr


def _addr(ptr: Any) -> int:
    return ptr if isinstance(ptr, int) else int(RT.ffi.cast("uintptr_t", ptr))


def builtin_of(ptr: Any) -> Optional[Builtin]:
    """The Builtin behind a live C sampler, None for a program's own sampler."""
    hid = int(RT.lib.bitnet__sampler_builtin_handle(RT.ffi.cast("struct llama_sampler *", _addr(ptr))))
    obj = HANDLES.get(hid) if hid else None
    return obj if isinstance(obj, Builtin) else None


def check_live(ptr: Any, what: str = "sampler") -> int:
    addr = _addr(ptr)
    if not RT.lib.bitnet__sampler_is_live(RT.ffi.cast("struct llama_sampler *", addr)):
        raise CAPIError(E.INVALID_MODEL_ID, f"invalid {what} 0x{addr:x} (NULL, freed or not a sampler)")
    return addr


def chain_of(ptr: Any) -> Chain:
    check_live(ptr)
    b = builtin_of(ptr)
    if b is None or not isinstance(b.impl, Chain):
        raise CAPIError(E.GENERIC_ERROR, "not a sampler chain (llama_sampler_chain_init)")
    return b.impl


# ---- candidates between C and Python ---------------------------------------------------------


def read_cur(cur_p: Any) -> Any:
    """A TokenDataArray copied from a C llama_token_data_array."""
    from bitnet.sampling import TokenDataArray

    if cur_p == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "candidates (llama_token_data_array *) is NULL")
    n = int(cur_p.size)
    if n > 2**31 - 1:
        raise CAPIError(E.GENERIC_ERROR, f"candidates size {n} is too large")
    if n and cur_p.data == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "candidates->data is NULL")
    arr = np.frombuffer(RT.ffi.buffer(cur_p.data, TOKEN_DATA.itemsize * n), dtype=TOKEN_DATA) \
        if n else np.zeros(0, TOKEN_DATA)
    return TokenDataArray(arr["id"], arr["logit"], arr["p"], int(cur_p.selected), bool(cur_p.sorted))


def write_cur(cur_p: Any, cur: Any) -> None:
    """Write `cur` back in place (samplers only shrink the array)."""
    n = cur.size
    if n > int(cur_p.size):
        raise CAPIError(E.GENERIC_ERROR, "sampler grew the candidate array")
    if n:
        out = np.empty(n, TOKEN_DATA)
        out["id"], out["logit"], out["p"] = cur.ids, cur.logits, cur.p
        RT.ffi.memmove(cur_p.data, out.tobytes(), out.nbytes)
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


def apply_any(ptr: Any, cur: Any) -> None:
    """Apply a sampler given by its C pointer to a TokenDataArray."""
    b = builtin_of(ptr)
    if b is not None:
        _checked(lambda: b.impl.apply(cur))
        return
    from bitnet.sampling import TokenDataArray

    n = cur.size
    buf = RT.ffi.new("llama_token_data[]", max(n, 1))
    if n:
        out = np.empty(n, TOKEN_DATA)
        out["id"], out["logit"], out["p"] = cur.ids, cur.logits, cur.p
        RT.ffi.memmove(buf, out.tobytes(), out.nbytes)
    arr = RT.ffi.new("llama_token_data_array *", {"data": buf, "size": n, "selected": cur.selected,
                                                  "sorted": cur.sorted})
    RT.lib.llama_sampler_apply(RT.ffi.cast("struct llama_sampler *", _addr(ptr)), arr)
    got = read_cur(arr)
    cur.__dict__.update(TokenDataArray(got.ids.copy(), got.logits.copy(), got.p.copy(),
                                       got.selected, got.sorted).__dict__)


def accept_any(ptr: Any, token: int) -> None:
    b = builtin_of(ptr)
    if b is not None:
        b.impl.accept(int(token))
    else:
        RT.lib.llama_sampler_accept(RT.ffi.cast("struct llama_sampler *", _addr(ptr)), int(token))


# ---- the built-in iface (called from csrc/sampler.c) -----------------------------------------


def _callback(name: str, failure: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap an iface callback: errors become the last error, never an exception into C."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            try:
                return fn(*args)
            except BaseException as exc:  # noqa: B036 - nothing may unwind into C
                set_error(code_of(exc), f"{name}: {exc}")
                return failure

        CALLBACKS[name] = wrapper
        return fn

    return deco


CALLBACKS: dict = {}


def _obj(handle: int) -> Builtin:
    obj = HANDLES.get(int(handle))
    if not isinstance(obj, Builtin):
        raise CAPIError(E.INVALID_MODEL_ID, f"sampler handle 0x{int(handle):x} is gone")
    return obj


@_callback("bitnet__py_sampler_name", None)
def _py_name(handle: int) -> Any:
    obj = _obj(handle)
    return obj.keep.cstr("name", obj.name.encode())


@_callback("bitnet__py_sampler_accept", None)
def _py_accept(handle: int, token: int) -> None:
    _obj(handle).impl.accept(int(token))


@_callback("bitnet__py_sampler_apply", None)
def _py_apply(handle: int, cur_p: Any) -> None:
    obj = _obj(handle)
    cur = read_cur(cur_p)
    _checked(lambda: obj.impl.apply(cur))
    write_cur(cur_p, cur)


@_callback("bitnet__py_sampler_reset", None)
def _py_reset(handle: int) -> None:
    _obj(handle).impl.reset()


def clone_impl(impl: Any) -> Any:
    if isinstance(impl, Chain):
        twin = Chain(impl.no_perf)
        for ptr in impl.children:
            child = RT.lib.llama_sampler_clone(RT.ffi.cast("struct llama_sampler *", ptr))
            if child == RT.ffi.NULL:
                raise CAPIError(E.GENERIC_ERROR, "a sampler of the chain cannot be cloned")
            twin.children.append(_addr(child))
        return twin
    return impl.clone() if hasattr(impl, "clone") else copy.deepcopy(impl)


@_callback("bitnet__py_sampler_clone", 0)
def _py_clone(handle: int) -> int:
    obj = _obj(handle)
    twin = Builtin(clone_impl(obj.impl), obj.name)
    return new_handle(twin)


@_callback("bitnet__py_sampler_free", None)
def _py_free(handle: int) -> None:
    obj = HANDLES.pop(int(handle), None)
    if isinstance(obj, Builtin) and isinstance(obj.impl, Chain):
        for ptr in obj.impl.children:
            RT.lib.llama_sampler_free(RT.ffi.cast("struct llama_sampler *", ptr))


@_callback("bitnet__py_sampler_copy", None)
def _py_copy(src: int, dst: int) -> None:
    s, d = _obj(src), _obj(dst)
    if isinstance(s.impl, Chain) and isinstance(d.impl, Chain):
        if len(s.impl.children) != len(d.impl.children):
            raise CAPIError(E.GENERIC_ERROR, "llama_sampler_copy: chains of different lengths")
        for a, b in zip(s.impl.children, d.impl.children):
            RT.lib.llama_sampler_copy(RT.ffi.cast("struct llama_sampler *", a),
                                      RT.ffi.cast("struct llama_sampler *", b))
        d.impl.t_sample_ms, d.impl.n_sample = s.impl.t_sample_ms, s.impl.n_sample
    elif type(s.impl) is type(d.impl):
        d.impl.__dict__.update(copy.deepcopy(s.impl.__dict__))
    else:
        raise CAPIError(E.GENERIC_ERROR, "llama_sampler_copy: samplers of different types")


# ---- chains ----------------------------------------------------------------------------------


@export
def llama_sampler_chain_init(params: Any) -> Any:
    return new_sampler(Chain(bool(params.no_perf)), "chain")


@export
def llama_sampler_chain_add(chain_ptr: Any, smpl_ptr: Any) -> None:
    chain = chain_of(chain_ptr)
    child = check_live(smpl_ptr)
    if child == _addr(chain_ptr) or child in chain.children:
        raise CAPIError(E.GENERIC_ERROR, "a sampler cannot be added to a chain twice")
    for other in HANDLES.values():
        if isinstance(other, Builtin) and isinstance(other.impl, Chain) and child in other.impl.children:
            raise CAPIError(E.GENERIC_ERROR, "the sampler already belongs to a chain")
    chain.children.append(child)  # the chain owns it now


@export
def llama_sampler_chain_n(chain_ptr: Any) -> int:
    return len(chain_of(chain_ptr).children)


@export
def llama_sampler_chain_get(chain_ptr: Any, i: int) -> Any:
    check_live(chain_ptr)
    b = builtin_of(chain_ptr)
    if b is None or not isinstance(b.impl, Chain):
        set_error(0)
        return RT.ffi.NULL  # llama.cpp: NULL for a sampler that is not a chain
    if i == -1:
        return chain_ptr
    if not 0 <= i < len(b.impl.children):
        raise CAPIError(E.GENERIC_ERROR, f"chain index {i} out of range")
    return RT.ffi.cast("struct llama_sampler *", b.impl.children[i])


@export
def llama_sampler_chain_remove(chain_ptr: Any, i: int) -> Any:
    chain = chain_of(chain_ptr)
    if not 0 <= i < len(chain.children):
        raise CAPIError(E.GENERIC_ERROR, f"chain index {i} out of range")
    return RT.ffi.cast("struct llama_sampler *", chain.children.pop(i))


@export
def llama_sampler_get_seed(smpl_ptr: Any) -> int:
    check_live(smpl_ptr)
    b = builtin_of(smpl_ptr)
    return int(b.impl.get_seed()) & 0xFFFFFFFF if b is not None else LLAMA_DEFAULT_SEED


@export
def llama_sampler_sample(smpl_ptr: Any, ctx_ptr: Any, idx: int) -> int:
    from bitnet.sampling import TokenDataArray

    check_live(smpl_ptr)
    c = context_of(ctx_ptr)
    cur = TokenDataArray.from_logits(logits_row(c, int(idx)))
    apply_any(smpl_ptr, cur)
    if not 0 <= cur.selected < cur.size:
        raise CAPIError(E.INFERENCE_FAILED, "the sampler selected no token (end the chain with "
                        "greedy, dist or mirostat)")
    token = int(cur.ids[cur.selected])
    accept_any(smpl_ptr, token)
    return token


# ---- performance -----------------------------------------------------------------------------


def _chain_or_fail(ptr: Any) -> Chain:
    try:
        return chain_of(ptr)
    except CAPIError as exc:
        raise CAPIError(exc.code, f"{exc} - requires a sampler created with "
                        "llama_sampler_chain_init()") from exc


@export
def llama_perf_sampler(out: Any, chain_ptr: Any) -> None:
    chain = _chain_or_fail(chain_ptr)
    out.t_sample_ms = chain.t_sample_ms
    out.n_sample = chain.n_sample


@export
def llama_perf_sampler_print(chain_ptr: Any) -> None:
    chain = _chain_or_fail(chain_ptr)
    log(LOG_INFO, f"llama_perf_sampler_print:    samplers time = {chain.t_sample_ms:10.2f} ms / "
        f"{chain.n_sample:5d} runs")


@export
def llama_perf_sampler_reset(chain_ptr: Any) -> None:
    chain = _chain_or_fail(chain_ptr)
    chain.t_sample_ms, chain.n_sample = 0.0, 0
