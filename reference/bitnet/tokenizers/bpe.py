"""Byte-level BPE (llama.cpp's llm_tokenizer_bpe_session): merge ranks over pre-tokenized words.

Each word is split into UTF-8 characters (of the byte-encoded text for GPT-2 style vocabs,
of the raw text for Gemma 4's SPM-style BPE); the adjacent pair with the lowest merge rank
(leftmost on ties) is merged until no pair has a rank. A final symbol missing from the
vocabulary falls back to one token per byte: the single-byte token (GPT-2 style; bytes with
no such token are dropped, as in llama.cpp) or ``<0xNN>`` (Gemma 4).

Results are cached per word (an LRU dict), as llama.cpp's users and tiktoken do.

Given a tokenizer engine (`engine.TokenizerEngine`, e.g. the C one), cache misses are merged
there, and `tokenize(text, exprs)` hands pre-tokenizer and merges to it in one call when
`exprs` is a chain of its splitters: identical ids, several times faster.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, ValuesView

from bitnet.tokenizers import pretokenizers as P
from bitnet.tokenizers import unicode as U
from bitnet.tokenizers.engine import BPEVocabEngine, TokenizerEngine

Ranks = Dict[Tuple[str, str], int]


class BPE:
    """Merge engine over `token_to_id` (str keys) and `ranks` ((left, right) -> rank, or a
    function that makes them: called once, when a merge or the engine first needs them)."""

    def __init__(
        self,
        token_to_id: Dict[str, int],
        ranks: Union[Ranks, Callable[[], Ranks]],
        *,
        byte_encode: bool = True,
        ignore_merges: bool = False,
        whole_newline_words: bool = False,
        cache_size: int = 65536,
        engine: Optional[TokenizerEngine] = None,
    ) -> None:
        self.token_to_id = token_to_id
        self._ranks: Optional[Ranks] = None
        self._make_ranks: Optional[Callable[[], Ranks]] = None
        if callable(ranks):
            self._make_ranks = ranks
        else:
            self._ranks = ranks
        self.byte_encode = byte_encode
        self.ignore_merges = ignore_merges
        self.whole_newline_words = (
            whole_newline_words  # gemma4: a run of '\n' is one token if it can be
        )
        self._cache: OrderedDict[str, List[int]] = OrderedDict()
        self._cache_size = cache_size
        self.engine = engine
        self._vocab_engine: Optional[BPEVocabEngine] = None

    @property
    def ranks(self) -> Ranks:
        """(left, right) -> merge rank."""
        if self._ranks is None:
            assert self._make_ranks is not None
            self._ranks = self._make_ranks()
        return self._ranks

    @ranks.setter
    def ranks(self, ranks: Ranks) -> None:
        self._ranks = ranks

    def vocab_engine(self) -> Optional[BPEVocabEngine]:
        """This vocabulary on the engine (made on first use, from the current tables), or None."""
        if self.engine is not None and self._vocab_engine is None:
            self._vocab_engine = self.engine.bpe(
                self.token_to_id,
                _RanksView(self),  # the engine reads the ranks when it builds its handle
                byte_encode=self.byte_encode,
                ignore_merges=self.ignore_merges,
                whole_newline_words=self.whole_newline_words,
            )
        return self._vocab_engine

    def tokenize(self, text: bytes, exprs: Sequence[str]) -> List[int]:
        """Token ids of `text`: pre-tokenized with the regex list `exprs`, each word encoded
        (all on the engine when there is one and `exprs` is a chain of its splitters)."""
        fast = self.vocab_engine()
        chain = P.splitter_chain(tuple(exprs))
        if fast is not None and chain is not None:
            ids = fast.tokenize(text, chain)
            if ids is not None:
                return ids
        out: List[int] = []
        for word in P.pre_tokenize(text, exprs, self.byte_encode, self.engine):
            out.extend(self.encode_word(word))
        return out

    def _symbols(self, word: str) -> List[str]:
        if self.byte_encode:
            return list(word)  # byte-encoded text: every char is a valid code point
        # raw UTF-8 (as surrogateescape str): llama.cpp cuts at unicode_len_utf8 of lead bytes
        raw = word.encode("utf-8", "surrogateescape")
        out = []
        i = 0
        while i < len(raw):
            n = min(U.utf8_len(raw[i]), len(raw) - i)
            out.append(raw[i : i + n].decode("utf-8", "surrogateescape"))
            i += n
        return out

    def merge(self, word: str) -> List[str]:
        """The word's final symbols after all merges."""
        if self.ignore_merges and word in self.token_to_id:
            return [word]
        if (
            self.whole_newline_words
            and word
            and word.strip("\n") == ""
            and word in self.token_to_id
        ):
            return [word]
        syms: List[Optional[str]] = list(self._symbols(word))
        n = len(syms)
        if n < 2:
            return [s for s in syms if s]
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        prv = list(range(-1, n - 1))
        ranks = self.ranks
        heap: List[Tuple[int, int, int, str]] = []  # (rank, left, right, merged text)

        def push(left: int, right: int) -> None:
            if left < 0 or right < 0:
                return
            a, b = syms[left], syms[right]
            rank = ranks.get((a, b))  # type: ignore[arg-type]
            if rank is not None:
                heapq.heappush(heap, (rank, left, right, a + b))  # type: ignore[operator]

        for i in range(n - 1):
            push(i, i + 1)
        while heap:
            _, left, right, text = heapq.heappop(heap)
            a, b = syms[left], syms[right]
            if not a or not b or a + b != text:
                continue  # outdated bigram
            syms[left] = text
            syms[right] = None
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prv[nxt[right]] = left
            push(prv[left], left)
            push(left, nxt[left])
        return [s for s in syms if s]

    def encode_word(self, word: str) -> List[int]:
        """Token ids of one pre-tokenized word (cached)."""
        cached = self._cache.get(word)
        if cached is not None:
            self._cache.move_to_end(word)
            return cached
        ids = self._encode_word_fast(word)
        if ids is None:
            ids = self._encode_word_reference(word)
        self._cache[word] = ids
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ids

    def _encode_word_fast(self, word: str) -> Optional[List[int]]:
        fast = self.vocab_engine()
        if fast is None:
            return None
        if self.byte_encode:
            raw = bytearray()
            for ch in word:
                b = U.UNICODE_TO_BYTE.get(ch)
                if b is None:  # not byte-level text: only the reference knows
                    return None
                raw.append(b)
            return fast.encode_word(bytes(raw))
        try:
            return fast.encode_word(word.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            return None

    def _encode_word_reference(self, word: str) -> List[int]:
        ids: List[int] = []
        t2i = self.token_to_id
        for sym in self.merge(word):
            tid = t2i.get(sym)
            if tid is not None:
                ids.append(tid)
                continue
            for byte in sym.encode("utf-8", "surrogateescape"):
                if self.byte_encode:
                    key = bytes((byte,)).decode("utf-8", "surrogateescape")
                else:
                    key = f"<0x{byte:02X}>"
                tid = t2i.get(key)
                if tid is not None:
                    ids.append(tid)
        return ids


class _RanksView(Mapping[Tuple[str, str], int]):
    """`bpe.ranks` read when first used (an engine's vocabulary object holds it from the
    first tokenization on, but reads it only once warmed up)."""

    def __init__(self, bpe: BPE) -> None:
        self._bpe = bpe

    def __getitem__(self, pair: Tuple[str, str]) -> int:
        return self._bpe.ranks[pair]

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self._bpe.ranks)

    def __len__(self) -> int:
        return len(self._bpe.ranks)

    def values(self) -> ValuesView[int]:  # the dict's own view: no lookup per key
        return self._bpe.ranks.values()
