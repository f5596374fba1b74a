"""Draft models for speculative decoding (`llama_cpp.llama_speculative`).

`Llama(..., draft_model=LlamaPromptLookupDecoding())`: after each sampled token the draft
model proposes continuation tokens; Llama evaluates them in the same batch and keeps the
ones the sampler would have chosen anyway (see `Llama.generate`), so at temperature 0 the
output is the same as without a draft model, in fewer decode calls.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import numpy.typing as npt


class LlamaDraftModel(abc.ABC):
    """A draft model: the ids so far (int32 [n]) -> proposed next ids (int32 [k], k >= 0)."""

    @abc.abstractmethod
    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: Any) -> npt.NDArray[np.intc]:
        raise NotImplementedError()


class LlamaPromptLookupDecoding(LlamaDraftModel):
    """Prompt lookup decoding (apoorvumang/prompt-lookup-decoding): propose the tokens that
    followed the first occurrence of the last n-gram, for n from `max_ngram_size` down to 1;
    at most `num_pred_tokens` of them.

        find_candidate_pred_tokens([1, 2, 3, 1, 2, 3, 1, 2, 3], 3, 2) -> [1, 2]
        (the trigram 1 2 3 first occurs at 0, followed by 1 2)
    """

    def __init__(self, max_ngram_size: int = 2, num_pred_tokens: int = 10) -> None:
        self.max_ngram_size = max_ngram_size
        self.num_pred_tokens = num_pred_tokens

    @staticmethod
    def find_candidate_pred_tokens(
        input_ids: npt.NDArray[np.intc], max_ngram_size: int, num_pred_tokens: int
    ) -> npt.NDArray[np.intc]:
        """Tokens after the first earlier match of the longest matching suffix n-gram."""
        ids = np.asarray(input_ids)
        n = ids.shape[0]
        for size in range(min(max_ngram_size, n - 1), 0, -1):
            windows = np.lib.stride_tricks.sliding_window_view(ids, (size,))  # [n - size + 1, size]
            hits = np.nonzero(np.all(windows == ids[-size:], axis=1))[0]
            for start in (hits + size).tolist():
                end = min(start + num_pred_tokens, n)
                if start < end:
                    return ids[start:end]
        return np.array([], dtype=np.intc)

    def __call__(self, input_ids: npt.NDArray[np.intc], /, **kwargs: Any) -> npt.NDArray[np.intc]:
        return self.find_candidate_pred_tokens(
            input_ids=input_ids,
            max_ngram_size=self.max_ngram_size,
            num_pred_tokens=self.num_pred_tokens,
        )


__all__ = ["LlamaDraftModel", "LlamaPromptLookupDecoding"]
