"""The objects behind a `Llama`, named as llama-cpp-python's `llama_cpp._internals` names them.

`Llama._model` (`LlamaModel`) holds the GGUF file, its tokenizer and, unless vocab_only, the
engine model (`bitnet.model.Model`); `Llama._ctx` (`LlamaContext`) holds the evaluation
context. `.model` / `.ctx` are what llama-cpp-python's are (a llama_model* / llama_context*):
set while the Llama is open, None once closed. A vocab-only Llama has a context too (as in
llama.cpp), whose evaluation raises `NoWeightsError`.
"""

from __future__ import annotations

from typing import Any, List, Optional

from bitnet.llama_compat._errors import NO_WEIGHTS_MESSAGE, NoWeightsError


class LlamaModel:
    """The loaded file: `gguf` (bitnet.gguf), `vocab` (tokenizer), `model` (engine or None)."""

    def __init__(self, gguf: Any, vocab: Any, model: Optional[Any]) -> None:
        self.gguf = gguf
        self.vocab = vocab
        self.model = model

    def close(self) -> None:
        self.model = None
        if hasattr(self.gguf, "close"):
            self.gguf.close()


class VocabOnlyContext:
    """The context of a vocab-only model: it has no KV cache and cannot evaluate."""

    n_ctx = 0

    def eval(self, tokens: Any, n_past: Optional[int] = None, *, all_logits: bool = True) -> Any:
        raise NoWeightsError(NO_WEIGHTS_MESSAGE)

    def kv_cache_seq_rm(self, p0: int, p1: int = -1) -> None:
        raise NoWeightsError(NO_WEIGHTS_MESSAGE)

    def reset(self) -> None:
        raise NoWeightsError(NO_WEIGHTS_MESSAGE)


class LlamaContext:
    """`ctx`: a bitnet.model.Context (or VocabOnlyContext); None once closed."""

    def __init__(self, ctx: Any) -> None:
        self.ctx: Optional[Any] = ctx

    @property
    def has_weights(self) -> bool:
        return self.ctx is not None and not isinstance(self.ctx, VocabOnlyContext)

    def require(self) -> Any:
        """The engine context (NoWeightsError for vocab-only, RuntimeError once closed)."""
        if self.ctx is None:
            raise RuntimeError("this Llama is closed")
        if isinstance(self.ctx, VocabOnlyContext):
            raise NoWeightsError(NO_WEIGHTS_MESSAGE)
        return self.ctx

    def close(self) -> None:
        self.ctx = None


def normalize_embedding(embedding: List[float]) -> List[float]:
    """L2-normalized copy (llama-cpp-python's normalize_embedding); zero vectors unchanged."""
    import numpy as np

    norm = float(np.linalg.norm(embedding))
    if norm == 0.0:
        return embedding
    return [v / norm for v in embedding]
