"""The tokenizer engine hook: the few operations an accelerated implementation may take over.

The tokenizers here are complete in Python. A tokenizer built with ``engine=`` an object
following `TokenizerEngine` (the C one is `bitnet_kernels.tokenizer_engine`; the API
surfaces pick it in `bitnet.runtime.tokenizer_engine`) hands these hot loops to it:

- `split`: the pre-tokenizer, for chains of the splitters named in `SPLITTERS` (llama.cpp's
  hand-written ones and the ``\\p{N}`` case; `pretokenizers.splitter_chain` names them);
- `bpe`: per byte-level BPE vocabulary, one word's merges and whole-text tokenization;
- `spm`: per SentencePiece vocabulary, the score-driven merge loop;
- `tiktoken`: per tiktoken rank file, `encode_ordinary` (None for patterns it does not know).

Contract: the same ids as the Python code, or None where the engine does not apply or
declines (input the reference rejects, not warmed up yet, ...); the caller then runs its own
code, which gives those ids or raises the typed error. ``engine=None`` is pure Python.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

# the splitters an engine may run: llama.cpp's custom ones (unicode_regex_split_custom_*),
# the newline splitter, and "\p{N}" on the category-collapsed text (one piece per digit)
SPLITTERS = ("gpt2", "llama3", "qwen2", "qwen35", "newlines", "digit")


class BPEVocabEngine(Protocol):
    """One byte-level BPE vocabulary (`bpe.BPE`) in the engine."""

    def encode_word(self, raw: bytes) -> Optional[List[int]]:
        """Ids of one pre-tokenized word given as raw bytes."""
        ...

    def tokenize(self, text: bytes, splitters: Sequence[str]) -> Optional[List[int]]:
        """Pre-tokenize `text` with the `splitters` chain and encode every word."""
        ...


class SPMVocabEngine(Protocol):
    """One SentencePiece vocabulary (`spm.spm_tokenize`) in the engine."""

    def tokenize(self, text: bytes) -> Optional[List[int]]:
        """Ids of `text` (whitespace already escaped); None if a byte has no token."""
        ...


class TiktokenVocabEngine(Protocol):
    """One tiktoken encoding (`tiktoken_file.TiktokenTokenizer`) in the engine."""

    def encode_ordinary(self, text: str) -> Optional[List[int]]:
        """tiktoken's encode_ordinary of `text`."""
        ...


class TokenizerEngine(Protocol):
    """What a tokenizer built with ``engine=`` calls (see the module docstring)."""

    def split(self, text: bytes, splitters: Sequence[str], byte_encode: bool) -> Optional[List[str]]:
        """`pretokenizers.pre_tokenize` for a chain of `SPLITTERS`."""
        ...

    def bpe(
        self,
        token_to_id: Dict[str, int],
        ranks: Mapping[Tuple[str, str], int],
        *,
        byte_encode: bool,
        ignore_merges: bool,
        whole_newline_words: bool,
    ) -> BPEVocabEngine:
        """The engine side of `bpe.BPE` over this vocabulary (same arguments)."""
        ...

    def spm(
        self,
        bytes_to_id: Dict[bytes, int],
        scores: Sequence[float],
        byte_to_token: Callable[[int], int],
    ) -> SPMVocabEngine:
        """The engine side of `spm.spm_tokenize` over this vocabulary (same arguments)."""
        ...

    def tiktoken(self, ranks: Dict[bytes, int], pattern: str) -> Optional[TiktokenVocabEngine]:
        """The engine side of a tiktoken encoding, or None when it cannot run `pattern`."""
        ...
