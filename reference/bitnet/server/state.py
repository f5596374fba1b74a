"""What one `bitnet serve` process holds: its settings, the served models (`ModelEntry`: slots,
a vocab-only Llama for tokenizing, facts read once at startup), the metrics, and the requests
in flight (for the SIGTERM drain).

Model routing (`ServerState.resolve`): with one model, any `model` name is served by it
(llama-cpp-python's rule; clients often send a fixed name such as "gpt-3.5-turbo"); with
several, a request names one by alias or by path, and an unknown name is a 404
`model_not_found` (llama-cpp-python would serve its first model); no name means the first.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Optional, Set

from bitnet.server.errors import APIError, context_exceeded
from bitnet.server.metrics import ServerMetrics
from bitnet.server.pool import ModelPool
from bitnet.server.settings import ModelSettings, ServerSettings
from bitnet.server.slots import Work, make_llama, slot_class

LLAMA_POOLING_TYPE_NONE = 0
LLAMA_POOLING_TYPE_MEAN = 1
# tokenizers whose token count is at least (prompt bytes) / (longest token's bytes + 1): they
# never drop input bytes (byte-level BPE, SentencePiece with byte fallback)
_BOUNDED_TOKENIZERS = ("gpt2", "llama")


class ModelEntry:
    """One served model: its slots and what the routes need to know about it."""

    def __init__(self, settings: ModelSettings, server: ServerSettings, llama_class: type) -> None:
        self.settings = settings
        self.alias = settings.alias
        self.vocab = make_llama(llama_class, settings, vocab_only=True, verbose=False)
        self.n_vocab = int(self.vocab.n_vocab())
        self.embedding = settings.embedding
        pooling = settings.pooling_type
        if pooling is None and self.vocab.pooling_type() == LLAMA_POOLING_TYPE_NONE:
            pooling = LLAMA_POOLING_TYPE_MEAN  # OpenAI's shape: one vector per input
        extra: Dict[str, Any] = {} if pooling is None else {"pooling_type": pooling}
        cls = slot_class(llama_class)
        self.pool = ModelPool(settings, server.queue_size, lambda: make_llama(cls, settings, **extra))
        first = self.pool.slots[0]
        self.n_ctx = int(first.n_ctx())
        self.template = self._template(first)
        self.max_token_bytes: Optional[int] = None
        if self.vocab.metadata.get("tokenizer.ggml.model") in _BOUNDED_TOKENIZERS:
            longest = max(len(self.vocab.detokenize([i], special=True)) for i in range(self.n_vocab))
            self.max_token_bytes = longest + 1

    @staticmethod
    def _template(llama: Any) -> Optional[str]:
        """The GGUF chat template in use (None for a built-in chat_format or a handler)."""
        name = getattr(llama, "chat_format", None) or ""
        if getattr(llama, "chat_handler", None) is not None or not name.startswith("chat_template."):
            return None
        key = "tokenizer.chat_template" if name == "chat_template.default" else "tokenizer." + name
        return llama.metadata.get(key)

    def check_prompt_size(self, n_bytes: int, max_tokens: Optional[int], chat: bool) -> None:
        """400 context_length_exceeded, without tokenizing, when `n_bytes` of prompt text must
        exceed the context: every token stands for at most `max_token_bytes` bytes."""
        if self.max_token_bytes is None:
            return
        at_least = math.ceil(n_bytes / self.max_token_bytes)
        if at_least >= self.n_ctx:
            raise context_exceeded(at_least, self.n_ctx, max_tokens, chat)

    def check_token_ids(self, ids: List[int], param: str) -> None:
        bad = [i for i in ids if not 0 <= i < self.n_vocab]
        if bad:
            raise APIError(
                400,
                f"{param}: token id(s) {bad[:5]} outside the vocabulary (0..{self.n_vocab - 1})",
                param=param,
                code="invalid_token_id",
            )


class ServerState:
    """The process-wide state of the app (see the module docstring)."""

    def __init__(self, settings: ServerSettings, models: List[ModelSettings], llama_class: type) -> None:
        self.settings = settings
        self.api_key = settings.resolved_api_key()
        self.entries: Dict[str, ModelEntry] = {}
        for ms in models:
            self.entries[ms.alias] = ModelEntry(ms, settings, llama_class)
        self.default = self.entries[models[0].alias]
        self.by_path = {ms.model: ms.alias for ms in models}
        self.metrics = ServerMetrics()
        self.metrics.watch_pools({alias: e.pool for alias, e in self.entries.items()})
        self.works: Set[Work] = set()
        self.in_flight = 0
        self.draining = False
        self.started = time.time()

    def resolve(self, model: Optional[str]) -> ModelEntry:
        """The entry serving `model` (see the module docstring)."""
        if model is None or len(self.entries) == 1:
            return self.default
        if model in self.entries:
            return self.entries[model]
        if model in self.by_path:
            return self.entries[self.by_path[model]]
        raise APIError(404, f"The model `{model}` does not exist", param="model", code="model_not_found")

    def close(self) -> None:
        for entry in self.entries.values():
            entry.pool.close()
            close = getattr(entry.vocab, "close", None)
            if close is not None:
                close()
