"""Tokenizer wrappers (`llama_cpp.llama_tokenizer`).

`LlamaTokenizer` is a Llama's own GGUF vocabulary; `LlamaHFTokenizer` wraps a Hugging Face
tokenizer (needs `transformers`) for `Llama(tokenizer=...)`: then `Llama.tokenize` /
`detokenize` go through it. `LlamaHFTokenizer.from_pretrained` loads from a local directory
only (no hub downloads here: pass a path holding tokenizer.json / tokenizer_config.json).
"""

from __future__ import annotations

import abc
import os
from typing import TYPE_CHECKING, Any, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    from bitnet.llama_compat.llama import Llama


class BaseLlamaTokenizer(abc.ABC):
    """What `Llama(tokenizer=...)` needs: bytes <-> token ids."""

    @abc.abstractmethod
    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = True) -> List[int]:
        """Token ids of UTF-8 `text`; `special` parses special-token texts."""
        raise NotImplementedError

    @abc.abstractmethod
    def detokenize(
        self, tokens: List[int], prev_tokens: Optional[List[int]] = None, special: bool = False
    ) -> bytes:
        """Bytes of `tokens` (after `prev_tokens`, when the tokenizer needs context)."""
        raise NotImplementedError


class LlamaTokenizer(BaseLlamaTokenizer):
    """The GGUF vocabulary of a Llama."""

    def __init__(self, llama: Llama) -> None:
        self._llama = llama

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = True) -> List[int]:
        return self._llama._vocab_tokenize(text, add_bos, special)

    def detokenize(
        self, tokens: List[int], prev_tokens: Optional[List[int]] = None, special: bool = False
    ) -> bytes:
        return self._llama._vocab_detokenize(tokens, special)

    def encode(self, text: str, add_bos: bool = True, special: bool = True) -> List[int]:
        return self.tokenize(text.encode("utf-8", errors="ignore"), add_bos=add_bos, special=special)

    def decode(self, tokens: List[int]) -> str:
        return self.detokenize(tokens).decode("utf-8", errors="ignore")

    @classmethod
    def from_ggml_file(cls, path: str) -> LlamaTokenizer:
        from bitnet.llama_compat.llama import Llama

        return cls(Llama(model_path=path, vocab_only=True, verbose=False))


class LlamaHFTokenizer(BaseLlamaTokenizer):
    """A Hugging Face tokenizer (anything with encode / decode like transformers')."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self.hf_tokenizer = hf_tokenizer

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = True) -> List[int]:
        return list(self.hf_tokenizer.encode(text.decode("utf-8", errors="ignore"),
                                             add_special_tokens=special))

    def detokenize(
        self, tokens: List[int], prev_tokens: Optional[List[int]] = None, special: bool = False
    ) -> bytes:
        skip = not special
        if prev_tokens is None:
            return self.hf_tokenizer.decode(tokens, skip_special_tokens=skip).encode("utf-8", errors="ignore")
        text = self.hf_tokenizer.decode(prev_tokens + tokens, skip_special_tokens=skip)
        prev = self.hf_tokenizer.decode(prev_tokens, skip_special_tokens=skip)
        return text.encode("utf-8", errors="ignore")[len(prev.encode("utf-8", errors="ignore")) :]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str) -> LlamaHFTokenizer:
        """transformers.AutoTokenizer from a local directory (ValueError for a hub id)."""
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ImportError(
                "The `transformers` library is required to use the `HFTokenizer`."
                "You can install it with `pip install transformers`."
            ) from None
        if not os.path.isdir(pretrained_model_name_or_path):
            raise ValueError(
                f"{pretrained_model_name_or_path!r} is not a local directory: bitnet.llama_compat "
                "loads Hugging Face tokenizers from local files only (no hub downloads)")
        hf_tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, local_files_only=True)
        return cls(hf_tokenizer)


__all__ = ["BaseLlamaTokenizer", "LlamaTokenizer", "LlamaHFTokenizer"]
