"""The sampler chain of one Llama call, and the constraints that ride on it.

`init_sampler` builds what llama-cpp-python's `Llama._init_sampler` builds, in its order:
logits processors (a custom sampler), penalties, the grammar (llama_sampler_init_grammar's
place), then greedy / dist / mirostat / top-k..dist (`bitnet.sampling.make_chain`). The
grammar is `bitnet.constraints.GrammarSampler`, told how many candidates the rest of the chain
reads (`need`) so that it can stop checking early without changing the outcome.

`JSONOutput` markers in `logits_processor` (a bitnet extension) are taken out of the list and
become a `JSONConstraint`, applied by reject-and-resample in `sample_constrained`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence

import numpy as np

from bitnet import sampling
from bitnet.constraints import JSONConstraint, JSONOutput
from bitnet.constraints.grammar_constraint import GrammarConstraint, GrammarSampler
from bitnet.errors import InferenceError

if TYPE_CHECKING:  # pragma: no cover
    from bitnet.llama_compat.llama import Llama
    from bitnet.llama_compat.llama_grammar import LlamaGrammar


def grammar_need(temp: float, top_k: int, mirostat_mode: int) -> Optional[int]:
    """How many of the best candidates the samplers after the grammar read: 1 for greedy,
    k for top-k sampling, None (all) for dist or mirostat."""
    if temp == 0.0:
        return 1
    if temp > 0.0 and mirostat_mode not in (1, 2) and top_k > 0:
        return int(top_k)
    return None


def init_sampler(
    llm: Llama,
    *,
    top_k: int,
    top_p: float,
    min_p: float,
    typical_p: float,
    temp: float,
    repeat_penalty: float,
    frequency_penalty: float,
    presence_penalty: float,
    mirostat_mode: int,
    mirostat_eta: float,
    mirostat_tau: float,
    logits_processor: Optional[Sequence[Any]],
    grammar: Optional[LlamaGrammar],
) -> sampling.SamplerChain:
    """The chain of llama-cpp-python's `_init_sampler` (tfs_z / penalize_nl: no-ops there too)."""
    chain = sampling.make_chain(
        n_vocab=llm._n_vocab,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        typical_p=typical_p,
        temp=temp,
        repeat_penalty=repeat_penalty,
        frequency_penalty=frequency_penalty,
        presence_penalty=presence_penalty,
        penalty_last_n=llm.last_n_tokens_size,
        mirostat_mode=mirostat_mode,
        mirostat_tau=mirostat_tau,
        mirostat_eta=mirostat_eta,
        seed=llm._seed,
    )
    if grammar is not None:
        at = 1 + next(i for i, s in enumerate(chain.samplers) if isinstance(s, sampling.Penalties))
        chain.samplers.insert(at, grammar_sampler(llm, grammar, grammar_need(temp, top_k, mirostat_mode)))
    processors = [p for p in logits_processor or [] if not isinstance(p, JSONOutput)]
    if processors:

        def apply_func(cur: sampling.TokenDataArray) -> None:
            # the candidates are the whole vocabulary in id order here (chain start)
            logits = cur.logits
            for processor in processors:
                logits = np.asarray(processor(llm._input_ids, logits), dtype=np.single)
            cur.logits = np.array(logits, dtype=np.single)

        chain.samplers.insert(0, sampling.Custom(apply_func))
    return chain


def grammar_sampler(llm: Llama, grammar: LlamaGrammar, need: Optional[int]) -> GrammarSampler:
    """A fresh grammar state for one generation (llama_sampler_init_grammar)."""
    vocab = llm._grammar_vocab()
    compiled = grammar.compile(vocab, llm._special_token_ids)
    constraint = GrammarConstraint(compiled, vocab, engine=llm._grammar_engine)
    return GrammarSampler(constraint, need)


def json_constraint(llm: Llama, logits_processor: Optional[Sequence[Any]]) -> Optional[JSONConstraint]:
    """A fresh JSONConstraint if `logits_processor` holds a JSONOutput marker."""
    marker = next((p for p in logits_processor or [] if isinstance(p, JSONOutput)), None)
    if marker is None:
        return None
    tok = llm._vocab_tok
    return JSONConstraint(
        # llama.cpp's grammar matches a token by its piece with special=true (a control token
        # like <|im_start|> is the text "<|im_start|>"); end-of-generation tokens only end a
        # complete text
        piece=lambda t: tok.token_to_piece(t, 0, True),
        is_eog=llm._is_eog,
        top=marker.top,
        max_ws=marker.max_ws,
        leading_ws=marker.leading_ws,
        schema=marker.schema,
        choices=marker.choices,
        compact=marker.compact,
    )


def sample_constrained(sampler: sampling.SamplerChain, logits: np.ndarray,
                       constraint: JSONConstraint) -> int:
    """Reject-and-resample: run the chain, and while its token breaks the constraint mask it
    to -inf and run the chain again (bitnet extension, the outcome of a llama.cpp grammar).

    logits: [n_vocab]. Each rejection also masks the invalid tokens among the `batch` most
    likely ones (64, doubling per rejection), so a model that wants anything but JSON costs a
    few chain runs, not one per rejected token. Greedy: exactly the argmax over allowed tokens.
    Sampling: a draw from the chain applied to logits with only disallowed tokens masked
    (llama.cpp's grammar masks all of them first, so with top-k/top-p truncation a draw may
    differ; each chain run draws from the RNG, and mirostat updates mu per run).
    """
    masked = np.array(logits, dtype=np.single)  # [n_vocab]
    n_vocab = masked.shape[0]
    batch = 64
    while True:
        cur = sampling.TokenDataArray.from_logits(masked)
        sampler.apply(cur)
        token = int(cur.selected_token())
        if constraint.allows(token):
            break
        if masked[token] == -np.inf:
            raise InferenceError(
                f"JSON-constrained sampling: no token of the vocabulary continues {constraint.state!r}")
        masked[token] = -np.inf
        top: List[int] = (np.argpartition(-masked, batch - 1)[:batch] if batch < n_vocab
                          else np.arange(n_vocab)).tolist()
        for t in top:
            if masked[t] != -np.inf and not constraint.allows(t):
                masked[t] = -np.inf
        batch = min(2 * batch, n_vocab)
    sampler.accept(token)
    constraint.accept(token)
    return token
