"""llama_sampler_chain, and the chain llama-cpp-python's `Llama` builds (`make_chain`)."""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

import numpy as np

from bitnet.sampling.candidates import TokenDataArray
from bitnet.sampling.samplers import (
    LLAMA_DEFAULT_SEED,
    Dist,
    Greedy,
    LogitBias,
    MinP,
    Mirostat,
    MirostatV2,
    Penalties,
    Sampler,
    Temp,
    TopK,
    TopP,
    Typical,
)


class SamplerChain(Sampler):
    """llama_sampler_chain: apply samplers in order; accept/reset/clone reach all of them."""

    name = "chain"

    def __init__(self, samplers: Optional[Sequence[Sampler]] = None) -> None:
        self.samplers: List[Sampler] = list(samplers or [])
        self.n_sample = 0

    def add(self, sampler: Sampler) -> SamplerChain:
        self.samplers.append(sampler)
        return self

    def apply(self, cur: TokenDataArray) -> None:
        for s in self.samplers:
            s.apply(cur)

    def accept(self, token: int) -> None:
        for s in self.samplers:
            s.accept(token)
        self.n_sample += 1

    def reset(self) -> None:
        for s in self.samplers:
            s.reset()

    def get_seed(self) -> int:
        for s in reversed(self.samplers):
            seed = s.get_seed()
            if seed != LLAMA_DEFAULT_SEED:
                return seed
        return LLAMA_DEFAULT_SEED

    def sample(self, logits: np.ndarray) -> int:
        """llama_sampler_sample: candidates from logits [n_vocab], apply, accept, return id."""
        cur = TokenDataArray.from_logits(logits)
        self.apply(cur)
        token = cur.selected_token()
        self.accept(token)
        return token

    def __len__(self) -> int:
        return len(self.samplers)

    def __repr__(self) -> str:
        return "SamplerChain([" + ", ".join(repr(s) for s in self.samplers) + "])"


def make_chain(
    *,
    n_vocab: int = 0,
    top_k: int = 40,
    top_p: float = 0.95,
    min_p: float = 0.05,
    typical_p: float = 1.0,
    temp: float = 0.80,
    repeat_penalty: float = 1.0,
    frequency_penalty: float = 0.0,
    presence_penalty: float = 0.0,
    penalty_last_n: int = 64,
    mirostat_mode: int = 0,
    mirostat_tau: float = 5.0,
    mirostat_eta: float = 0.1,
    logit_bias: Optional[Mapping[int, float]] = None,
    seed: int = LLAMA_DEFAULT_SEED,
) -> SamplerChain:
    """The chain llama-cpp-python's `Llama._init_sampler` builds, in the same order.

    penalties(last_n = Llama's last_n_tokens_size), then temp < 0: dist; temp == 0: greedy;
    mirostat 1 (m = 100, needs n_vocab) / 2; else top_k, typical, top_p, min_p (min_keep 1),
    temp, dist. `logit_bias` (not part of `_init_sampler`; llama-cpp-python applies it as a
    logits processor, which sits first in its chain) adds a LogitBias sampler in front.
    """
    chain = SamplerChain()
    if logit_bias:
        chain.add(LogitBias(n_vocab, list(logit_bias.items())))
    chain.add(Penalties(penalty_last_n, repeat_penalty, frequency_penalty, presence_penalty))
    if temp < 0.0:
        chain.add(Dist(seed))
    elif temp == 0.0:
        chain.add(Greedy())
    elif mirostat_mode == 1:
        chain.add(Mirostat(n_vocab, seed, mirostat_tau, mirostat_eta, 100))
    elif mirostat_mode == 2:
        chain.add(MirostatV2(seed, mirostat_tau, mirostat_eta))
    else:
        min_keep = 1
        chain.add(TopK(top_k))
        chain.add(Typical(typical_p, min_keep))
        chain.add(TopP(top_p, min_keep))
        chain.add(MinP(min_p, min_keep))
        chain.add(Temp(temp))
        chain.add(Dist(seed))
    return chain
