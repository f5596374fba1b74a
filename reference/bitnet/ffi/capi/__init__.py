"""The Python side of libbitnet_ffi: one function per C function the library implements in
Python (bitnet.ffi.surface lists them), bound by `install` when the embedded interpreter
starts.

Modules: core (handles, errors, the entry wrapper), models, vocab, contexts (parameters and
the per-sequence memory), decode, samplers / sampler_inits / legacy (sampling), state, chat /
chat_templates, perf, quantize.
"""

from __future__ import annotations

import logging
from typing import Any

from bitnet.ffi.capi import (  # noqa: F401
    chat,
    contexts,
    decode,
    legacy,
    models,
    perf,
    quantize,
    sampler_inits,
    samplers,
    state,
    vocab,
)
from bitnet.ffi.capi.core import EXPORTS, HANDLES, RT, callback


class _LogBridge(logging.Handler):
    """The package's log records (GGUF repairs, ...) go to llama_log_set's callback."""

    LEVELS = ((logging.ERROR, 4), (logging.WARNING, 3), (logging.INFO, 2), (0, 1))

    def emit(self, record: logging.LogRecord) -> None:
        level = next(code for floor, code in self.LEVELS if record.levelno >= floor)
        text = f"{record.name}: {record.getMessage()}\n".encode("utf-8", "replace")
        with callback():
            RT.lib.bitnet__log(level, text)


def shutdown() -> None:
    """Before the interpreter is finalized: free the samplers chains own (the program frees
    the samplers it holds; after this they are plain C structs), drop every handle."""
    for obj in list(HANDLES.values()):
        if isinstance(obj, samplers.Builtin) and isinstance(obj.impl, samplers.Chain):
            children, obj.impl.children = obj.impl.children, []
            for ptr in children:
                RT.lib.llama_sampler_free(RT.ffi.cast("struct llama_sampler *", ptr))
    for obj in list(HANDLES.values()):
        gguf = getattr(obj, "gguf", None)
        if gguf is not None and hasattr(gguf, "close"):
            gguf.close()
    HANDLES.clear()


def install(ffi: Any, lib: Any) -> None:
    """Bind every Python-implemented function of the library (the embedding's init code)."""
    from bitnet.ffi import surface

    RT.ffi, RT.lib = ffi, lib
    missing = sorted(set(surface.python_implemented()) - set(EXPORTS))
    if missing:
        raise ImportError(f"bitnet.ffi.capi lacks {len(missing)} functions: {', '.join(missing[:8])}")
    for name in surface.python_implemented():
        ffi.def_extern(name=f"bitnet__py_{name}")(EXPORTS[name])
    for name, fn in samplers.CALLBACKS.items():
        ffi.def_extern(name=name)(fn)
    ffi.def_extern(name="bitnet__py_shutdown")(shutdown)
    logger = logging.getLogger("bitnet")
    logger.addHandler(_LogBridge())
    logger.setLevel(logging.INFO)
    logger.propagate = False
