"""SentencePiece BPE as llama.cpp runs it (llm_tokenizer_spm_session), for `llama` vocabularies.

The text (spaces already replaced by '▁' and, when the vocab says so, a '▁' prepended by the
caller) is cut into UTF-8 characters by their lead bytes, so invalid UTF-8 needs no decoding.
Adjacent symbols whose concatenation is a token are merged, highest token score first
(leftmost on ties), until nothing merges. A final symbol that is not a token becomes one
``<0xNN>`` byte token per byte (or the single-byte token when the vocab has no ``<0xNN>``).

Given the vocabulary on a tokenizer engine (`engine.SPMVocabEngine`, e.g. the C one, which
splits at symbols that are one isolated byte, exact for invalid UTF-8 too),
`spm_tokenize_chunked` runs the merge loop there: identical ids, about 10x faster in C.

Not done (as in llama.cpp): SentencePiece's unigram sampling, and `is_unused` pieces are
merged like any other.
"""

from __future__ import annotations

import heapq
import re
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from bitnet.tokenizers import unicode as U
from bitnet.tokenizers.engine import SPMVocabEngine


def spm_tokenize(
    text: bytes,
    bytes_to_id: Dict[bytes, int],
    scores: Sequence[float],
    byte_to_token: Callable[[int], int],
) -> List[int]:
    """Token ids of `text` (bytes, whitespace already escaped); `bytes_to_id`: token bytes."""
    n = len(text)
    starts: List[int] = []
    sizes: List[int] = []
    offs = 0
    while offs < n:
        size = min(U.utf8_len(text[offs]), n - offs)
        starts.append(offs)
        sizes.append(size)
        offs += size
    count = len(starts)
    if count == 0:
        return []
    nxt = list(range(1, count + 1))
    nxt[-1] = -1
    prv = list(range(-1, count - 1))
    # heap items: (-score, left << 32 | merged byte size); the pair's right symbol is always
    # nxt[left]: a symbol's right neighbour only changes when the symbol itself grows
    heap: List[Tuple[float, int]] = []

    def try_add(left: int, right: int) -> None:
        if left < 0 or right < 0:
            return
        size = sizes[left] + sizes[right]
        tid = bytes_to_id.get(text[starts[left] : starts[left] + size])
        if tid is None:
            return
        heapq.heappush(heap, (-scores[tid], (left << 32) | size))

    for i in range(1, count):
        try_add(i - 1, i)
    while heap:
        packed = heapq.heappop(heap)[1]
        left, size = packed >> 32, packed & 0xFFFFFFFF
        right = nxt[left]
        if sizes[left] == 0 or right < 0 or sizes[left] + sizes[right] != size:
            continue  # one of the symbols was merged since
        sizes[left] = size
        sizes[right] = 0
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prv[nxt[right]] = left
        try_add(prv[left], left)
        try_add(left, nxt[left])

    out: List[int] = []
    i = 0
    while i != -1:
        tid = bytes_to_id.get(text[starts[i] : starts[i] + sizes[i]])
        if tid is not None:
            out.append(tid)
        else:
            out.extend(byte_to_token(b) for b in text[starts[i] : starts[i] + sizes[i]])
        i = nxt[i]
    return out


def _is_utf8(text: bytes) -> bool:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def isolated_bytes(token_bytes: Sequence[bytes]) -> bytes:
    """ASCII bytes that occur in no token longer than one byte: no merge can cross them."""
    used: Set[int] = set()
    for tok in token_bytes:
        if len(tok) > 1:
            used.update(tok)
    return bytes(b for b in range(128) if b not in used)


def spm_tokenize_chunked(
    text: bytes,
    bytes_to_id: Dict[bytes, int],
    scores: Sequence[float],
    byte_to_token: Callable[[int], int],
    isolated: bytes,
    vocab_engine: Optional[SPMVocabEngine] = None,
) -> List[int]:
    """`spm_tokenize`, run separately between `isolated` bytes (same result, smaller queues);
    on `vocab_engine` (this vocabulary on a tokenizer engine) when given."""
    if vocab_engine is not None:
        ids = vocab_engine.tokenize(text)
        if ids is not None:
            return ids
    if not isolated or not _is_utf8(text):
        # subtle: in invalid UTF-8 a lead byte's symbol can swallow a following ASCII byte
        return spm_tokenize(text, bytes_to_id, scores, byte_to_token)
    out: List[int] = []
    splitter = re.compile(b"([" + re.escape(isolated) + b"])")
    for chunk in splitter.split(text):
        if chunk:
            out.extend(spm_tokenize(chunk, bytes_to_id, scores, byte_to_token))
    return out
