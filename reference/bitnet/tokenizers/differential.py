"""Differential check of a GGUF tokenizer against llama.cpp through llama-cpp-python.

    llama = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    mismatch = compare_with_llamacpp(tok, llama, b"text", add_special=True, parse_special=False)

Compares token ids (llama_tokenize), llama_detokenize of those ids (all four
remove_special x unparse_special combinations) and llama-cpp-python's `Llama.detokenize`
(piece by piece). Input on which llama.cpp would abort the process (see gguf_tokenizer's
docstring) is not sent to it: the comparison returns None when our tokenizer raises
InvalidUTF8Error there.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, List, Optional

from bitnet.errors import InvalidUTF8Error


@dataclass
class Mismatch:
    """One disagreement: what was compared, the input, and both sides."""

    what: str  # "ids", "detokenize(...)" or "detokenize_pieces"
    text: bytes
    add_special: bool
    parse_special: bool
    ours: Any
    theirs: Any

    def __str__(self) -> str:
        return (
            f"{self.what} differ for {self.text!r} (add_special={self.add_special}, "
            f"parse_special={self.parse_special}):\n  ours:   {self.ours!r}\n"
            f"  llama.cpp: {self.theirs!r}"
        )


def llamacpp_detokenize(
    llama: Any, ids: List[int], remove_special: bool = False, unparse_special: bool = False
) -> bytes:
    """llama_detokenize through llama-cpp-python's C bindings."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = max(64, 8 * len(ids) + 64)
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(
            vocab, arr, len(ids), buf, size, remove_special, unparse_special
        )
        if n >= 0:
            return buf.raw[:n]
        size = -n + 1
    raise RuntimeError("llama_detokenize kept asking for a larger buffer")


def llamacpp_max_piece(llama: Any, ids: List[int]) -> int:
    """Longest piece among `ids` (llama-cpp-python's Llama.detokenize breaks past 32 bytes)."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    buf = ctypes.create_string_buffer(8)
    longest = 0
    for t in ids:
        n = llama_cpp.llama_token_to_piece(vocab, t, buf, 0, 0, False)
        longest = max(longest, abs(n))
    return longest


def compare_with_llamacpp(
    tok: Any, llama: Any, text: bytes, add_special: bool, parse_special: bool
) -> Optional[Mismatch]:
    """None when ours and llama.cpp agree on `text` (ids and both detokenizations)."""
    try:
        ours = tok.tokenize(text, add_special=add_special, parse_special=parse_special)
    except InvalidUTF8Error:
        return None  # llama.cpp aborts the whole process on this input
    theirs = llama.tokenize(text, add_bos=add_special, special=parse_special)
    if ours != theirs:
        return Mismatch("ids", text, add_special, parse_special, ours, theirs)
    for remove_special in (False, True):
        for unparse_special in (False, True):
            ours_text = tok.detokenize(theirs, remove_special, unparse_special)
            theirs_text = llamacpp_detokenize(llama, theirs, remove_special, unparse_special)
            if ours_text != theirs_text:
                what = f"detokenize({remove_special=}, {unparse_special=})"
                return Mismatch(what, text, add_special, parse_special, ours_text, theirs_text)
    if llamacpp_max_piece(llama, theirs) <= 32:
        ours_pieces = tok.detokenize_pieces(theirs)
        theirs_pieces = llama.detokenize(theirs)
        if ours_pieces != theirs_pieces:
            return Mismatch(
                "detokenize_pieces", text, add_special, parse_special, ours_pieces, theirs_pieces
            )
    return None
