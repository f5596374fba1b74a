"""The legacy sampling API (before llama_sampler): llama_sample_* over a caller-owned
llama_token_data_array, and llama_set_rng_seed. ctx may be NULL (llama.cpp used it for timings
only) except for llama_sample_token, whose generator is the context's std::mt19937."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from bitnet import errors as E
from bitnet.ffi.capi.contexts import Context, context_of
from bitnet.ffi.capi.core import RT, CAPIError, export, get
from bitnet.ffi.capi.samplers import _checked, read_cur, write_cur


def _legacy_ctx(ctx_ptr: Any) -> None:
    if ctx_ptr != RT.ffi.NULL:
        get(ctx_ptr, Context, "context")


def _legacy(ctx_ptr: Any, cur_p: Any, step: Callable[[Any], None]) -> None:
    _legacy_ctx(ctx_ptr)
    cur = read_cur(cur_p)
    _checked(lambda: step(cur))
    write_cur(cur_p, cur)


@export
def llama_sample_softmax(ctx_ptr: Any, cur_p: Any) -> None:
    from bitnet.sampling import softmax

    _legacy(ctx_ptr, cur_p, lambda cur: softmax(cur, True) if cur.size else None)


@export
def llama_sample_top_k(ctx_ptr: Any, cur_p: Any, k: int, min_keep: int) -> None:
    from bitnet.sampling import top_k

    def step(cur: Any) -> None:
        kk = cur.size if k <= 0 else int(k)  # legacy: k <= 0 means "all", sorted
        top_k(cur, max(kk, int(min_keep)))

    _legacy(ctx_ptr, cur_p, step)


@export
def llama_sample_top_p(ctx_ptr: Any, cur_p: Any, p: float, min_keep: int) -> None:
    from bitnet.sampling import TopP, softmax

    def step(cur: Any) -> None:
        if p >= 1.0 or cur.size == 0:
            return
        softmax(cur, True)  # legacy: llama_sample_softmax first (full sort)
        TopP(p, int(min_keep)).apply(cur)

    _legacy(ctx_ptr, cur_p, step)


@export
def llama_sample_min_p(ctx_ptr: Any, cur_p: Any, p: float, min_keep: int) -> None:
    from bitnet.sampling import MinP

    _legacy(ctx_ptr, cur_p, MinP(p, int(min_keep)).apply)


@export
def llama_sample_typical(ctx_ptr: Any, cur_p: Any, p: float, min_keep: int) -> None:
    from bitnet.sampling import Typical

    _legacy(ctx_ptr, cur_p, lambda cur: Typical(p, int(min_keep)).apply(cur) if cur.size else None)


@export
def llama_sample_temp(ctx_ptr: Any, cur_p: Any, temp: float) -> None:
    from bitnet.sampling import Temp

    _legacy(ctx_ptr, cur_p, Temp(temp).apply)


@export
def llama_sample_repetition_penalties(ctx_ptr: Any, cur_p: Any, last_tokens: Any, last_n: int,
                                      repeat: float, freq: float, present: float) -> None:
    from bitnet.sampling import Penalties

    pen = Penalties(int(last_n), repeat, freq, present)
    if pen.disabled:
        _legacy_ctx(ctx_ptr)
        return
    if last_tokens == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "last_tokens is NULL")
    if int(last_n) > 2**31 - 1:
        raise CAPIError(E.GENERIC_ERROR, f"penalty_last_n {last_n} is too large")
    for t in np.frombuffer(RT.ffi.buffer(last_tokens, 4 * int(last_n)), dtype=np.int32).tolist():
        pen.accept(t)
    _legacy(ctx_ptr, cur_p, pen.apply)


@export
def llama_sample_token_greedy(ctx_ptr: Any, cur_p: Any) -> int:
    _legacy_ctx(ctx_ptr)
    cur = read_cur(cur_p)
    if cur.size == 0:
        raise CAPIError(E.INFERENCE_FAILED, "greedy sampling of an empty candidate array")
    return int(cur.ids[int(np.argmax(cur.logits))])  # std::max_element: the first maximum


@export
def llama_sample_token(ctx_ptr: Any, cur_p: Any) -> int:
    from bitnet.sampling import discrete_sample, softmax

    c = context_of(ctx_ptr)
    cur = read_cur(cur_p)
    if cur.size == 0:
        raise CAPIError(E.INFERENCE_FAILED, "sampling from an empty candidate array")
    _checked(lambda: softmax(cur, True))
    idx = discrete_sample(cur.p, c.rng)  # std::discrete_distribution over p, ctx's mt19937
    cur.selected = idx
    write_cur(cur_p, cur)
    return int(cur.ids[idx])


@export
def llama_set_rng_seed(ctx_ptr: Any, seed: int) -> None:
    from bitnet.sampling import MT19937, rng_seed

    context_of(ctx_ptr).rng = MT19937(rng_seed(int(seed)))
