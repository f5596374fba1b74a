"""llama_chat_apply_template and llama_chat_builtin_templates (formats: chat_templates)."""

from __future__ import annotations

from typing import Any, List, Tuple

from bitnet import errors as E
from bitnet.ffi.capi import chat_templates as T
from bitnet.ffi.capi.core import RT, CAPIError, KeepAlive, export

_KEEP = KeepAlive()


def _text(ptr: Any, what: str) -> str:
    if ptr == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, f"{what} is NULL")
    return RT.ffi.string(ptr).decode("utf-8", "surrogateescape")


@export
def llama_chat_apply_template(tmpl: Any, chat: Any, n_msg: int, add_ass: bool, buf: Any,
                              length: int) -> int:
    """The whole prompt's length (it may exceed `length`); the buffer gets strncpy's copy
    (NUL-padded, not terminated when cut). -1 for a template no built-in format matches."""
    text = "chatml" if tmpl == RT.ffi.NULL else _text(tmpl, "tmpl")
    name = T.detect(text)
    if name is None:
        raise CAPIError(E.GENERIC_ERROR, "the template matches none of llama.cpp's built-in "
                        "formats (llama_chat_builtin_templates)")
    if n_msg and chat == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "chat is NULL")
    messages: List[Tuple[str, str]] = [(_text(chat[i].role, f"chat[{i}].role"),
                                        _text(chat[i].content, f"chat[{i}].content"))
                                       for i in range(int(n_msg))]
    data = T.apply(name, messages, bool(add_ass)).encode("utf-8", "surrogateescape")
    if buf != RT.ffi.NULL and length > 0:
        n = min(len(data), int(length))
        RT.ffi.memmove(buf, data[:n] + b"\0" * (int(length) - n), int(length))
    return len(data)


@export
def llama_chat_builtin_templates(output: Any, length: int) -> int:
    for i, name in enumerate(T.BUILTIN[:int(length)]):
        if output == RT.ffi.NULL:
            raise CAPIError(E.GENERIC_ERROR, "output is NULL")
        output[i] = _KEEP.cstr(("builtin", name), name.encode())
    return len(T.BUILTIN)
