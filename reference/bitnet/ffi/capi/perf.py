"""Performance counters of contexts (llama_perf_context*) and llama_print_system_info."""

from __future__ import annotations

import time
from typing import Any

from bitnet.ffi.capi.contexts import Perf, context_of
from bitnet.ffi.capi.core import LOG_INFO, RT, KeepAlive, export, log

_KEEP = KeepAlive()


@export
def llama_perf_context(out: Any, ctx: Any) -> None:
    if ctx == RT.ffi.NULL:
        return  # llama.cpp: zeros for NULL
    c = context_of(ctx)
    p = c.perf
    out.t_start_ms = c.model.t_start_ms
    out.t_load_ms = c.model.t_load_ms
    out.t_p_eval_ms, out.t_eval_ms = p.t_p_eval_ms, p.t_eval_ms
    out.n_p_eval, out.n_eval, out.n_reused = max(p.n_p_eval, 1), max(p.n_eval, 1), p.n_reused


@export
def llama_perf_context_print(ctx: Any) -> None:
    c = context_of(ctx)
    p = c.perf
    n_p, n_e = max(p.n_p_eval, 1), max(p.n_eval, 1)
    total = time.monotonic() * 1e3 - c.model.t_start_ms
    name = "llama_perf_context_print"
    log(LOG_INFO, f"{name}:        load time = {c.model.t_load_ms:10.2f} ms")
    log(LOG_INFO, f"{name}: prompt eval time = {p.t_p_eval_ms:10.2f} ms / {n_p:5d} tokens "
        f"({p.t_p_eval_ms / n_p:8.2f} ms per token, {_per_s(p.t_p_eval_ms, n_p):8.2f} tokens per second)")
    log(LOG_INFO, f"{name}:        eval time = {p.t_eval_ms:10.2f} ms / {n_e:5d} runs   "
        f"({p.t_eval_ms / n_e:8.2f} ms per token, {_per_s(p.t_eval_ms, n_e):8.2f} tokens per second)")
    log(LOG_INFO, f"{name}:       total time = {total:10.2f} ms / {n_p + n_e:5d} tokens")
    log(LOG_INFO, f"{name}:    graphs reused = {p.n_reused:10d}")


def _per_s(ms: float, n: int) -> float:
    return 1e3 / ms * n if ms > 0 else float("inf")


@export
def llama_perf_context_reset(ctx: Any) -> None:
    context_of(ctx).perf = Perf()


@export
def llama_print_system_info() -> Any:
    from bitnet import runtime

    try:
        import bitnet_kernels

        kernels = str(bitnet_kernels.backend_name()) if bitnet_kernels.available() \
            else "numpy reference"
    except ImportError:
        kernels = "numpy reference"
    text = f"CPU : {kernels} | numerics = {runtime.numerics_mode()} | bitnet-compat | "
    return _KEEP.cstr(("system_info", text), text.encode())
