"""Handles, errors and the entry-point decorator shared by the C API modules.

Handles handed to C are small integers cast to pointers (keys of `HANDLES`), never Python
addresses; every entry point checks its handle's kind, so NULL, freed or foreign pointers give
the documented error value. Each call sets the calling thread's last error (0 on success, in
the C part of the library); exceptions never cross into C. Samplers are C structs (llama.h
defines them) whose `ctx` holds a handle of this table.
"""

from __future__ import annotations

import functools
import itertools
import threading
from typing import Any, Callable, Dict, Iterator, Optional, Type, TypeVar

from bitnet import errors as E

INT32_MIN = -(2**31)
LLAMA_TOKEN_NULL = -1
LLAMA_DEFAULT_SEED = 0xFFFFFFFF

LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR = 1, 2, 3, 4

LOCK = threading.RLock()
HANDLES: Dict[int, Any] = {}
_NEXT_ID = itertools.count(0x1000, 0x10)
# name -> (implementation, failure value): filled by @export, bound by bitnet.ffi.capi.install
EXPORTS: Dict[str, Callable[..., Any]] = {}


class _Runtime:
    """The cffi objects of the running library (set by install)."""

    ffi: Any = None
    lib: Any = None
    in_callback = False  # True while a program's callback runs (progress, abort, log)


RT = _Runtime()
T = TypeVar("T")


class CAPIError(Exception):
    """An error reported through bitnet_last_error with `code`; `value` overrides the
    function's failure value (e.g. llama_decode's 1 for a full cache)."""

    def __init__(self, code: int, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.value = value


def set_error(code: int, message: str = "") -> None:
    RT.lib.bitnet__set_error(int(code), message.encode("utf-8", "replace").replace(b"\0", b" "))


def log(level: int, text: str) -> None:
    """One line through llama_log_set's callback (stderr by default)."""
    if not text.endswith("\n"):
        text += "\n"
    with callback():
        RT.lib.bitnet__log(level, text.encode("utf-8", "replace"))


class callback:
    """Context manager around a call into the program: calls back into the library from there
    fail with -8 (not re-entrant); what such a call set is not this call's error."""

    def __enter__(self) -> None:
        self.outer = RT.in_callback
        RT.in_callback = True

    def __exit__(self, *exc: Any) -> None:
        RT.in_callback = self.outer
        set_error(0)


def new_handle(obj: Any) -> int:
    hid = next(_NEXT_ID)
    HANDLES[hid] = obj
    return hid


def handle_id(ptr: Any) -> int:
    return int(RT.ffi.cast("uintptr_t", ptr)) if ptr is not None else 0


def get(ptr: Any, kind: Type[T], what: str) -> T:
    """The object behind handle `ptr` if it is a live `kind`, else CAPIError(-9)."""
    hid = handle_id(ptr)
    obj = HANDLES.get(hid)
    if not isinstance(obj, kind):
        raise CAPIError(E.INVALID_MODEL_ID, f"invalid {what} handle 0x{hid:x}")
    return obj


def as_ptr(ctype: str, hid: int) -> Any:
    return RT.ffi.cast(ctype, hid)


def code_of(exc: BaseException) -> int:
    if isinstance(exc, CAPIError):
        return exc.code
    if isinstance(exc, E.BitNetError):
        return int(exc.code)
    if isinstance(exc, MemoryError):
        return E.OUT_OF_MEMORY
    return E.GENERIC_ERROR


def _c_value(value: Any) -> Any:
    return RT.ffi.NULL if value is None else value


def export(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register `fn` as the implementation of the C function of its name: the wrapper
    serializes, clears the last error, refuses calls from inside a program's callback (-8) and
    maps every exception to the function's failure value (bitnet.ffi.surface)."""
    from bitnet.ffi import surface

    name = fn.__name__
    c_fn = _functions()[name]
    failure = None if c_fn.ret == "void" or c_fn.returns_struct else \
        surface.python_value(surface.failure_value(c_fn))

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        with LOCK:
            if RT.in_callback:
                set_error(E.THREAD_SAFETY_ERROR, f"{name} called from inside a callback of "
                          "another libbitnet_ffi call; the library is not re-entrant")
                return _c_value(failure)
            set_error(0)
            try:
                return fn(*args)
            except BaseException as exc:  # noqa: B036 - nothing may unwind into C
                code = code_of(exc)
                text = f"{exc}" if isinstance(exc, CAPIError) else f"{type(exc).__name__}: {exc}"
                set_error(code, f"{name}: {text}" if code else "")
                value = exc.value if isinstance(exc, CAPIError) and exc.value is not None \
                    else failure
                return _c_value(value)

    EXPORTS[name] = wrapper
    return fn


@functools.lru_cache(maxsize=1)
def _functions() -> Dict[str, Any]:
    from bitnet.ffi import surface

    return surface.parse_header()


def c_string(data: bytes, buf: Any, size: int) -> int:
    """snprintf into buf[size]: the full length, the copy truncated and NUL-terminated."""
    if size > 0:
        if buf == RT.ffi.NULL:
            raise CAPIError(E.GENERIC_ERROR, "buf is NULL")
        n = min(len(data), int(size) - 1)
        RT.ffi.memmove(buf, data[:n] + b"\0", n + 1)
    return len(data)


def out_bytes(data: bytes, buf: Any, length: int, what: str) -> int:
    """llama.cpp's copy-out convention: bytes written, or -(needed) when `length` is short."""
    n = len(data)
    if n > length:
        return -n
    if n and buf == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, f"{what} is NULL")
    if n:
        RT.ffi.memmove(buf, data, n)
    return n


def c_str(ptr: Any, what: str) -> str:
    """A C string argument (NULL is an error), decoded as a path would be."""
    import os

    if ptr == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, f"{what} is NULL")
    return os.fsdecode(RT.ffi.string(ptr))


def live_objects(kind: Type[T]) -> Iterator[T]:
    return (o for o in list(HANDLES.values()) if isinstance(o, kind))


class KeepAlive:
    """C strings and arrays handed to a program, owned by the object they belong to."""

    def __init__(self) -> None:
        self._items: Dict[Any, Any] = {}

    def cstr(self, key: Any, text: Optional[bytes]) -> Any:
        if text is None:
            return RT.ffi.NULL
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = RT.ffi.new("char[]", text)
        return item

    def array(self, key: Any, ctype: str, values: Any) -> Any:
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = RT.ffi.new(ctype, list(values))
        return item
