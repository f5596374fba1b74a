"""Speculative decoding (`draft_model=`), checked against plain decoding and llama-cpp-python.

- `LlamaPromptLookupDecoding.find_candidate_pred_tokens` returns what llama-cpp-python's does
  (hypothesis over token arrays with repeats).
- Greedy generation with a prompt-lookup draft model gives the plain decoding's tokens, one
  for one, in fewer decode calls (counted, not timed: speed is `bitnet-compat bench
  speculative`). With numerics="float" the kernels are batch-invariant (a row's logits do not
  depend on the batch it is in: checked bit for bit here), so equality holds by construction;
  with llama.cpp's numerics a batch rounds like llama.cpp's batches, and the same texts come
  out on these prompts (measured).
- Sampling (temperature > 0, fixed seed) with a draft model gives the same tokens as without:
  one sampler run per position, the same RNG draws.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitnet.llama_compat import Llama
from bitnet.llama_compat.llama_speculative import LlamaDraftModel, LlamaPromptLookupDecoding
from bitnet_harness.corpora import corpus_path

SMOLLM2 = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "Repeat the list exactly.\nList: apple, banana, cherry, date, elderberry, fig, grape, honeydew, "
    "kiwi, lemon, mango.\nRepeated list: apple, banana,",
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n",
]


@settings(deadline=None)
@given(ids=st.lists(st.integers(0, 4), min_size=0, max_size=40), ngram=st.integers(1, 4),
       n_pred=st.integers(1, 12))
def test_prompt_lookup_matches_llama_cpp_python(ids: List[int], ngram: int, n_pred: int) -> None:
    ref = pytest.importorskip("llama_cpp.llama_speculative")
    arr = np.array(ids, dtype=np.intc)
    if arr.shape[0] < 1:
        return  # llama-cpp-python's sliding window needs one token
    ours = LlamaPromptLookupDecoding.find_candidate_pred_tokens(arr, ngram, n_pred)
    theirs = ref.LlamaPromptLookupDecoding.find_candidate_pred_tokens(arr, ngram, n_pred)
    assert np.array_equal(ours, theirs)
    assert isinstance(LlamaPromptLookupDecoding(), LlamaDraftModel)


class CountingDraft(LlamaDraftModel):
    """Prompt lookup that counts its proposals."""

    def __init__(self) -> None:
        self.inner = LlamaPromptLookupDecoding(num_pred_tokens=10)
        self.proposed = 0

    def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
        out = self.inner(input_ids)
        self.proposed += int(out.shape[0])
        return out


def _run(numerics: str, prompt: str, draft: Any, **kw: Any) -> Tuple[List[int], str, int]:
    """(generated ids, text, engine decode calls) of one completion."""
    llm = Llama(str(corpus_path(SMOLLM2)), n_ctx=512, verbose=False, numerics=numerics,
                draft_model=draft, seed=7)
    calls = [0]
    engine_eval = llm._ctx.ctx.eval

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return engine_eval(*args, **kwargs)

    llm._ctx.ctx.eval = counting
    ids: List[int] = []
    prompt_ids = llm.tokenize(prompt.encode("utf-8"))
    for token in llm.generate(prompt_ids, **kw):
        ids.append(token)
        if len(ids) == 32:
            break
    text = llm.detokenize(ids).decode("utf-8", errors="replace")
    llm.close()
    return ids, text, calls[0]


@pytest.mark.slow
@pytest.mark.parametrize("numerics", ["float", "llama.cpp"])
@pytest.mark.parametrize("prompt", range(len(PROMPTS)))
def test_greedy_with_draft_equals_plain(numerics: str, prompt: int) -> None:
    plain_ids, plain_text, plain_calls = _run(numerics, PROMPTS[prompt], None, temp=0.0)
    draft = CountingDraft()
    spec_ids, spec_text, spec_calls = _run(numerics, PROMPTS[prompt], draft, temp=0.0)
    assert spec_ids == plain_ids, (plain_text, spec_text)
    assert draft.proposed > 0
    # measured (32 tokens): 32 -> 20 (float) / 17 (llama.cpp) decode calls on the list prompt,
    # 32 -> 31 on the code prompt, where most proposals are wrong
    assert spec_calls < plain_calls


@pytest.mark.slow
def test_sampling_with_draft_equals_plain() -> None:
    kw = dict(temp=0.8, top_k=40, top_p=0.95)
    plain_ids, _, _ = _run("float", PROMPTS[0], None, **kw)
    spec_ids, _, _ = _run("float", PROMPTS[0], LlamaPromptLookupDecoding(), **kw)
    assert spec_ids == plain_ids


def test_float_numerics_are_batch_invariant() -> None:
    """The property the exact equality rests on: a row's logits do not depend on its batch."""
    llm = Llama(str(corpus_path(SMOLLM2)), n_ctx=256, verbose=False, numerics="float")
    ctx = llm._ctx.ctx
    toks = list(range(1000, 1016))
    ctx.eval(toks[:8], 0, all_logits=True)
    batch = np.array(ctx.eval(toks[8:16], 8, all_logits=True))  # (8, V)
    singles = np.array([ctx.eval([t], 8 + i, all_logits=True)[0] for i, t in enumerate(toks[8:16])])
    assert np.array_equal(batch, singles)
