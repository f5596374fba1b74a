"""WordPiece as llama.cpp runs it (llm_tokenizer_wpm_session), for `bert` vocabularies.

Normalization is llama.cpp's simplified BERT normalizer: optional accent stripping (first code
point of the NFD form, combining marks dropped), optional lowercasing (simple case mapping),
control characters, NUL and U+FFFD dropped, whitespace splits words, and punctuation, ASCII
symbols and CJK ideographs become one-character words. Each word, prefixed with '▁', is cut
greedily into the longest vocabulary tokens; a word that cannot be fully cut becomes [UNK].
Decoding does not undo any of this (lowercase, stripped accents and spacing are lost).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from bitnet.tokenizers import unicode as U

_PHANTOM_SPACE = "\u2581".encode("utf-8")


def _is_chinese_char(cpt: int) -> bool:
    return (
        0x4E00 <= cpt <= 0x9FFF
        or 0x3400 <= cpt <= 0x4DBF
        or 0x20000 <= cpt <= 0x2A6DF
        or 0x2A700 <= cpt <= 0x2B73F
        or 0x2B740 <= cpt <= 0x2B81F
        or 0x2B920 <= cpt <= 0x2CEAF  # sic: 0x2B820 in Unicode, 0x2B920 in HF's code
        or 0xF900 <= cpt <= 0xFAFF
        or 0x2F800 <= cpt <= 0x2FA1F
    )


def wpm_preprocess(text: bytes, lowercase: bool, strip_accents: bool) -> List[bytes]:
    """Normalized words of `text` (llm_tokenizer_wpm_session::preprocess)."""
    cpts = U.cpts_from_utf8(text)
    if strip_accents:
        cpts = [U.nfd_first(c) for c in cpts]
    words: List[bytes] = [b""]
    for cpt in cpts:
        flags = U.cpt_flags(cpt)
        if flags & U.WHITESPACE:
            if words[-1]:
                words.append(b"")
            continue
        if cpt == 0 or cpt == 0xFFFD or flags & U.CONTROL:
            continue
        if strip_accents and flags & U.ACCENT_MARK:
            continue
        s = U.cpt_to_utf8(U.tolower(cpt) if lowercase else cpt)
        if flags & U.PUNCTUATION or (cpt < 0x7F and flags & U.SYMBOL) or _is_chinese_char(cpt):
            if words[-1]:
                words.append(b"")
            words[-1] = s
            words.append(b"")
        else:
            words[-1] += s
    if not words[-1]:
        words.pop()
    return words


def wpm_tokenize(
    text: bytes,
    token_to_id: Dict[str, int],
    max_token_len: int,
    unk_id: Optional[int],
    lowercase: bool,
    strip_accents: bool,
) -> List[int]:
    """Token ids of `text` (no [CLS]/[SEP]; the caller adds those)."""
    out: List[int] = []
    for word in wpm_preprocess(text, lowercase, strip_accents):
        if not word:
            continue
        word1 = _PHANTOM_SPACE + word
        n = len(word1)
        start = len(out)
        i = 0
        while i < n:
            match = False
            for j in range(min(n, i + max_token_len + 1), i, -1):
                tid = token_to_id.get(word1[i:j].decode("utf-8", "surrogateescape"))
                if tid is not None:
                    out.append(tid)
                    match = True
                    i = j - 1
                    break
            if not match:
                del out[start:]
                break
            i += 1
        if len(out) == start:
            out.append(-1 if unk_id is None else unk_id)
    return out
