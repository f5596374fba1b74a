"""Unigram (SentencePiece `t5` model) as llama.cpp runs it (llm_tokenizer_ugm_session).

The input is normalized first: user-defined tokens pass through untouched, other prefixes are
looked up in the vocabulary's precompiled charsmap (SentencePiece's XOR-compressed double
array of normalization rules) and replaced, invalid UTF-8 bytes become U+FFFD; spaces become
'▁', one is prepended when add_space_prefix, runs collapse when remove_extra_whitespaces.
Then a Viterbi search picks the tokenization with the highest total score (user-defined
tokens score 0, an unknown code point scores min(score) - 10); runs of unknowns merge into one.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from typing import Dict, List, Set, Tuple

import numpy as np

from bitnet.errors import TokenizationError
from bitnet.tokenizers import unicode as U


class UGM:
    """A Unigram tokenizer over a loaded `Vocab` (type 'ugm')."""

    def __init__(self, vocab: object) -> None:
        from bitnet.tokenizers.vocab import ATTR_NORMAL, ATTR_UNUSED, ATTR_USER_DEFINED, Vocab

        assert isinstance(vocab, Vocab)
        self.vocab = vocab
        pcm = vocab.precompiled_charsmap
        self.xcda: Tuple[int, ...] = ()
        self.replacements = b""
        if pcm:
            (blob,) = struct.unpack_from("<I", pcm, 0)
            if blob + 4 >= len(pcm):
                raise TokenizationError("Index out of array bounds in precompiled charsmap!")
            self.xcda = struct.unpack_from(f"<{blob // 4}I", pcm, 4)
            self.replacements = pcm[4 + blob :]
        self.matcher: Dict[bytes, int] = {}
        self.user_defined: Set[int] = set()
        self.user_prefixes: Set[bytes] = set()
        min_score = np.float32(np.finfo(np.float32).max)
        for tid in range(vocab.n_tokens):
            attr = vocab.attrs[tid]
            if attr & ATTR_NORMAL:
                min_score = min(min_score, np.float32(vocab.scores[tid]))
            if attr & (ATTR_NORMAL | ATTR_USER_DEFINED | ATTR_UNUSED):
                self.matcher[vocab.text_bytes(tid)] = tid
            if attr & ATTR_USER_DEFINED:
                self.user_defined.add(tid)
                raw = vocab.text_bytes(tid)
                self.user_prefixes.update(raw[:i] for i in range(1, len(raw) + 1))
        self.max_len = max((len(k) for k in self.matcher), default=0)
        self._sorted = sorted(self.matcher)  # "is this a prefix of some token" (the trie walk)
        self.unknown_score = float(np.float32(min_score - np.float32(10.0)))

    # --- normalization -------------------------------------------------------------------
    def _node(self, index: int) -> int:
        if index >= len(self.xcda):
            raise TokenizationError("Index out of array bounds in XCDA array!")
        return self.xcda[index]

    def _base(self, index: int) -> int:
        node = self._node(index)
        return (node >> 10) << ((node & (1 << 9)) >> 6)

    def _normalize_prefix(self, text: bytes, offset: int) -> Tuple[bytes, int]:
        """(replacement, bytes consumed) at `offset` (normalize_prefix)."""
        # longest path through the user-defined tokens' trie (not necessarily a whole token)
        length = 0
        while (
            offset + length < len(text) and text[offset : offset + length + 1] in self.user_prefixes
        ):
            length += 1
        if length > 0:
            return text[offset : offset + length], length
        longest_len = 0
        longest_off = 0
        if self.xcda:
            node = self._base(0)
            for pos in range(offset, len(text)):
                c = text[pos]
                if c == 0:
                    break
                node ^= c
                packed = self._node(node)
                if packed & ((1 << 31) | 0xFF) != c:
                    break
                is_leaf = (packed >> 8) & 1
                node ^= self._base(node)
                if is_leaf:
                    longest_len = pos - offset + 1
                    longest_off = self._node(node) & ((1 << 31) - 1)
        if longest_len > 0:
            if longest_off >= len(self.replacements):
                raise TokenizationError("Index out of array bounds in precompiled charsmap!")
            end = self.replacements.find(b"\0", longest_off)
            if end < 0:
                raise TokenizationError("Unterminated string in precompiled charsmap!")
            return self.replacements[longest_off:end], longest_len
        try:
            _, nxt = U.cpt_from_utf8(text, offset)
            return text[offset:nxt], nxt - offset
        except ValueError:
            return b"\xef\xbf\xbd", 1

    def normalize(self, text: bytes) -> bytes:
        v = self.vocab
        space = "\u2581".encode("utf-8") if v.escape_whitespaces else b" "
        prepend = not v.treat_whitespace_as_suffix and v.add_space_prefix
        append = v.treat_whitespace_as_suffix and v.add_space_prefix
        merge = v.remove_extra_whitespaces
        out = bytearray()
        space_prepended = False
        non_ws = False
        offset = 0
        while offset < len(text):
            norm, consumed = self._normalize_prefix(text, offset)
            for c in norm:
                if c != 0x20:
                    if not non_ws:
                        non_ws = True
                        if (prepend and not space_prepended) or merge:
                            out += space
                            space_prepended = True
                    out.append(c)
                else:
                    non_ws = False
                    if not merge:
                        out += space
            offset += consumed
        if append:
            out += space
        return bytes(out)

    # --- Viterbi ---------------------------------------------------------------------------
    def tokenize(self, text: bytes) -> List[int]:
        norm = self.normalize(text)
        n = len(norm)
        if n == 0:
            return []
        unk = self.vocab.unk_id if self.vocab.unk_id is not None else -1
        best_id: List[int] = [unk] * (n + 1)
        best_from: List[int] = [0] * (n + 1)
        best_score: List[float] = [-1.7976931348623157e308] * (n + 1)
        best_score[0] = 0.0
        scores = self.vocab.scores
        offset = 0
        while offset < n:
            n_units = min(U.utf8_len(norm[offset]), n - offset)
            base = best_score[offset]
            single_found = False
            for length in range(1, min(self.max_len, n - offset) + 1):
                prefix = norm[offset : offset + length]
                tid = self.matcher.get(prefix)
                if tid is None:
                    i = bisect_left(self._sorted, prefix)
                    if i == len(self._sorted) or not self._sorted[i].startswith(prefix):
                        break  # no token continues this path in the trie
                    continue
                if length == n_units:
                    single_found = True
                score = base + (0.0 if tid in self.user_defined else scores[tid])
                end = offset + length
                if score > best_score[end]:
                    best_id[end], best_from[end], best_score[end] = tid, offset, score
            if not single_found:
                score = base + self.unknown_score
                end = offset + n_units
                if score > best_score[end]:
                    best_id[end], best_from[end], best_score[end] = unk, offset, score
            offset += n_units
        out: List[int] = []
        prev_unknown = False
        pos = n
        while True:
            tid = best_id[pos]
            is_unknown = tid == unk
            if not (prev_unknown and is_unknown):
                out.append(tid)
            if best_from[pos] == 0:
                break
            prev_unknown = is_unknown
            pos = best_from[pos]
        out.reverse()
        return out
