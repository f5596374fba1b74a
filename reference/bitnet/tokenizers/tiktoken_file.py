"""Tiktoken-style byte-level BPE from a `.tiktoken` rank file (one "base64-token rank" a line).

Encoding follows the `tiktoken` library: the pattern (run with the `regex` module) splits the
text, each piece is looked up whole, else its bytes are merged pairwise by lowest rank of the
merged bytes (leftmost on ties). With `parse_special`, special-token texts are cut out first
(leftmost match, the longest at a position); without it they are ordinary text (tiktoken's
``disallowed_special=()``). `cl100k_base`'s pattern and specials are known by name.

Limits: ``\\p{L}`` / ``\\p{N}`` follow the `regex` module's Unicode tables (17.0 for regex
2025+); tiktoken's Rust regex has Unicode 16.0, so text with code points assigned or
reclassified in Unicode 17.0 (e.g. U+18D80, Tangut) can split differently. The input must be
valid UTF-8 (tiktoken takes `str`): anything else raises InvalidUTF8Error. No BOS/EOS is
ever added (add_special only matters for GGUF vocabularies).

Given a tokenizer engine (`engine.TokenizerEngine`) that knows the pattern (the C one knows
cl100k_base's), `encode_ordinary` runs there: identical ids.
"""

from __future__ import annotations

import base64
import heapq
import os
from collections import OrderedDict
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union

import regex

from bitnet.errors import InvalidUTF8Error, TokenizationError
from bitnet.tokenizers.engine import TiktokenVocabEngine, TokenizerEngine

if TYPE_CHECKING:
    from bitnet.tokenizers.vocab import Vocab

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
    r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL_TOKENS: Dict[str, int] = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
KNOWN_ENCODINGS: Dict[str, Tuple[str, Dict[str, int]]] = {
    "cl100k_base": (CL100K_PATTERN, CL100K_SPECIAL_TOKENS),
}


def load_tiktoken_ranks(path: Union[str, os.PathLike[str]]) -> Dict[bytes, int]:
    """token bytes -> rank, from a `.tiktoken` file."""
    ranks: Dict[bytes, int] = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
            except ValueError as e:
                raise TokenizationError(f"{path}:{lineno}: not 'base64 rank': {line[:60]!r}") from e
    return ranks


class TiktokenTokenizer:
    """A tiktoken encoding: `ranks` (bytes -> id), `pattern`, `special_tokens` (text -> id)."""

    def __init__(
        self,
        ranks: Dict[bytes, int],
        pattern: str,
        special_tokens: Dict[str, int],
        name: str = "",
        cache_size: int = 65536,
        engine: Optional[TokenizerEngine] = None,
    ) -> None:
        self.name = name
        self.ranks = ranks
        self.pattern = pattern
        self._regex = regex.compile(pattern)
        self.special_tokens = dict(special_tokens)
        self._decoder: Dict[int, bytes] = {r: b for b, r in ranks.items()}
        for text, tid in self.special_tokens.items():
            self._decoder[tid] = text.encode("utf-8")
        self._special_bytes = sorted(
            ((t.encode("utf-8"), i) for t, i in self.special_tokens.items()),
            key=lambda p: -len(p[0]),
        )
        self._cache: OrderedDict[bytes, List[int]] = OrderedDict()
        self._cache_size = cache_size
        self.vocab: Optional[Vocab] = None  # no GGUF vocabulary
        self.engine = engine
        self._vocab_engine: Optional[TiktokenVocabEngine] = (
            engine.tiktoken(ranks, pattern) if engine is not None else None
        )

    @property
    def n_vocab(self) -> int:
        return max(self._decoder) + 1 if self._decoder else 0

    @property
    def bos_id(self) -> Optional[int]:
        return None

    @property
    def eos_id(self) -> Optional[int]:
        return self.special_tokens.get("<|endoftext|>")

    # --- encoding ------------------------------------------------------------------------
    def _merge(self, piece: bytes) -> List[int]:
        rank = self.ranks.get(piece)
        if rank is not None:
            return [rank]
        cached = self._cache.get(piece)
        if cached is not None:
            self._cache.move_to_end(piece)
            return cached
        parts: List[Optional[bytes]] = [bytes((b,)) for b in piece]
        n = len(parts)
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        prv = list(range(-1, n - 1))
        heap: List[Tuple[int, int, bytes]] = []

        def push(left: int, right: int) -> None:
            if left < 0 or right < 0:
                return
            merged = parts[left] + parts[right]  # type: ignore[operator]
            r = self.ranks.get(merged)
            if r is not None:
                heapq.heappush(heap, (r, left, merged))

        for i in range(n - 1):
            push(i, i + 1)
        while heap:
            _, left, merged = heapq.heappop(heap)
            right = nxt[left]
            if parts[left] is None or right < 0 or parts[left] + parts[right] != merged:  # type: ignore[operator]
                continue
            parts[left] = merged
            parts[right] = None
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prv[nxt[right]] = left
            push(prv[left], left)
            push(left, nxt[left])
        ids = []
        for p in parts:
            if p is not None:
                if p not in self.ranks:
                    raise TokenizationError(f"byte {p!r} has no rank in {self.name or 'the file'}")
                ids.append(self.ranks[p])
        self._cache[piece] = ids
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ids

    def _encode_ordinary(self, text: str) -> List[int]:
        if self._vocab_engine is not None:
            fast = self._vocab_engine.encode_ordinary(text)
            if fast is not None:
                return fast
        out: List[int] = []
        for m in self._regex.finditer(text):
            out.extend(self._merge(m.group().encode("utf-8")))
        return out

    def tokenize(
        self, text: bytes, add_special: bool = True, parse_special: bool = False
    ) -> List[int]:
        """Token ids of `text` (UTF-8 bytes); `add_special` adds nothing for tiktoken."""
        if isinstance(text, str):
            text = text.encode("utf-8", "surrogatepass")
        try:
            s = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidUTF8Error(f"tiktoken encodings take valid UTF-8 text: {e}") from e
        if not parse_special or not self.special_tokens:
            return self._encode_ordinary(s)
        out: List[int] = []
        raw = s.encode("utf-8")
        pos = 0
        while pos <= len(raw):
            best: Optional[Tuple[int, int, int]] = None  # (start, -len, id)
            for needle, tid in self._special_bytes:
                m = raw.find(needle, pos)
                if m >= 0 and (best is None or (m, -len(needle)) < best[:2]):
                    best = (m, -len(needle), tid)
            end = best[0] if best is not None else len(raw)
            out.extend(self._encode_ordinary(raw[pos:end].decode("utf-8")))
            if best is None:
                break
            out.append(best[2])
            pos = end - best[1]
        return out

    # --- decoding ------------------------------------------------------------------------
    def token_to_piece(self, token_id: int, lstrip: int = 0, special: bool = False) -> bytes:
        """Bytes of one token (special tokens' text included: tiktoken has no control tokens)."""
        try:
            piece = self._decoder[token_id]
        except KeyError:
            raise TokenizationError(
                f"token id {token_id} is not in {self.name or 'the encoding'}"
            ) from None
        i = 0
        while i < lstrip and i < len(piece) and piece[i] == 0x20:
            i += 1
        return piece[i:]

    def detokenize(
        self, ids: List[int], remove_special: bool = False, unparse_special: bool = False
    ) -> bytes:
        """Concatenated token bytes, like `tiktoken.Encoding.decode_bytes`."""
        return b"".join(self.token_to_piece(t) for t in ids)

    def detokenize_pieces(self, ids: List[int], special: bool = False) -> bytes:
        return self.detokenize(ids)
