"""llama_sampler_init_*: one built-in sampler each, with llama.cpp's parameters, names and its
empty sampler ("?top-k", ...) where llama.cpp makes one for a disabled setting."""

from __future__ import annotations

from typing import Any

import numpy as np

from bitnet import errors as E
from bitnet.ffi.capi.core import RT, CAPIError, export
from bitnet.ffi.capi.samplers import Empty, new_sampler


def _empty(name: str) -> Any:
    return new_sampler(Empty(), "?" + name)


@export
def llama_sampler_init_greedy() -> Any:
    from bitnet.sampling import Greedy

    return new_sampler(Greedy(), "greedy")


@export
def llama_sampler_init_dist(seed: int) -> Any:
    from bitnet.sampling import Dist

    return new_sampler(Dist(int(seed)), "dist")


@export
def llama_sampler_init_top_k(k: int) -> Any:
    from bitnet.sampling import TopK

    return _empty("top-k") if k <= 0 else new_sampler(TopK(int(k)), "top-k")


@export
def llama_sampler_init_top_p(p: float, min_keep: int) -> Any:
    from bitnet.sampling import TopP

    return _empty("top-p") if p >= 1.0 else new_sampler(TopP(p, int(min_keep)), "top-p")


@export
def llama_sampler_init_min_p(p: float, min_keep: int) -> Any:
    from bitnet.sampling import MinP

    return _empty("min-p") if p <= 0.0 else new_sampler(MinP(p, int(min_keep)), "min-p")


@export
def llama_sampler_init_typical(p: float, min_keep: int) -> Any:
    from bitnet.sampling import Typical

    return _empty("typical") if p >= 1.0 else new_sampler(Typical(p, int(min_keep)), "typical")


@export
def llama_sampler_init_temp(t: float) -> Any:
    from bitnet.sampling import Temp

    return _empty("temp") if np.float32(t) == 1.0 else new_sampler(Temp(t), "temp")


@export
def llama_sampler_init_temp_ext(t: float, delta: float, exponent: float) -> Any:
    from bitnet.sampling import TempExt

    if np.float32(t) == 1.0 and delta <= 0.0:
        return _empty("temp-ext")
    return new_sampler(TempExt(t, delta, exponent), "temp-ext")


@export
def llama_sampler_init_xtc(p: float, t: float, min_keep: int, seed: int) -> Any:
    from bitnet.sampling import XTC

    if p <= 0.0 or t > 0.5:
        return _empty("xtc")
    return new_sampler(XTC(p, t, int(min_keep), int(seed)), "xtc")


@export
def llama_sampler_init_top_n_sigma(n: float) -> Any:
    from bitnet.sampling import TopNSigma

    return _empty("top-n-sigma") if n <= 0.0 else new_sampler(TopNSigma(n), "top-n-sigma")


@export
def llama_sampler_init_mirostat(n_vocab: int, seed: int, tau: float, eta: float, m: int) -> Any:
    from bitnet.sampling import Mirostat

    return new_sampler(Mirostat(int(n_vocab), int(seed), tau, eta, int(m)), "mirostat")


@export
def llama_sampler_init_mirostat_v2(seed: int, tau: float, eta: float) -> Any:
    from bitnet.sampling import MirostatV2

    return new_sampler(MirostatV2(int(seed), tau, eta), "mirostat-v2")


@export
def llama_sampler_init_penalties(n_vocab: int, last_n: int, repeat: float, freq: float,
                                 present: float) -> Any:
    from bitnet.sampling import Penalties

    pen = Penalties(int(last_n), repeat, freq, present)
    return _empty("penalties") if pen.disabled else new_sampler(pen, "penalties")


@export
def llama_sampler_init_logit_bias(n_vocab: int, n_logit_bias: int, logit_bias: Any) -> Any:
    from bitnet.sampling import LogitBias

    if n_logit_bias <= 0:
        return _empty("logit-bias")
    if logit_bias == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "logit_bias is NULL")
    pairs = [(int(logit_bias[i].token), float(logit_bias[i].bias)) for i in range(n_logit_bias)]
    return new_sampler(LogitBias(int(n_vocab), pairs), "logit-bias")


@export
def llama_sampler_init_dry(vocab: Any, multiplier: float, base: float, allowed_length: int,
                           penalty_last_n: int, seq_breakers: Any, num_breakers: int) -> Any:
    """Disabled settings give llama.cpp's empty "?dry" sampler; an enabled DRY sampler is
    not implemented (NULL, last error -1)."""
    if multiplier == 0.0 or base < 1.0 or max(int(penalty_last_n), 0) == 0:
        return _empty("dry")
    raise CAPIError(E.GENERIC_ERROR, "the DRY sampler is not supported (only disabled settings: "
                    "dry_multiplier 0, dry_base < 1 or dry_penalty_last_n 0)")
