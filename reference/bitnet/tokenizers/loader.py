"""One entry point for every tokenizer: `load(path)` for `.gguf` and `.tiktoken` files.

``engine=`` (here and in `from_gguf_kv`) is a tokenizer engine for the hot loops
(`bitnet.tokenizers.engine`; the API surfaces pass `bitnet.runtime.tokenizer_engine()`);
None, the default, is pure Python.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Union

from bitnet.errors import ModelNotFoundError, UnsupportedError
from bitnet.tokenizers.engine import TokenizerEngine
from bitnet.tokenizers.gguf_tokenizer import GGUFTokenizer
from bitnet.tokenizers.tiktoken_file import KNOWN_ENCODINGS, TiktokenTokenizer, load_tiktoken_ranks
from bitnet.tokenizers.vocab import Vocab


class Tokenizer(Protocol):
    """What every tokenizer here offers (GGUF vocabularies and tiktoken encodings)."""

    @property
    def vocab(self) -> Optional[Vocab]: ...

    @property
    def n_vocab(self) -> int: ...

    @property
    def bos_id(self) -> Optional[int]: ...

    @property
    def eos_id(self) -> Optional[int]: ...

    def tokenize(
        self, text: bytes, add_special: bool = True, parse_special: bool = False
    ) -> List[int]: ...

    def detokenize(
        self, ids: List[int], remove_special: bool = False, unparse_special: bool = False
    ) -> bytes: ...

    def detokenize_pieces(self, ids: List[int], special: bool = False) -> bytes: ...

    def token_to_piece(self, token_id: int, lstrip: int = 0, special: bool = False) -> bytes: ...


def from_gguf_kv(kv: Dict[str, Any], engine: Optional[TokenizerEngine] = None) -> GGUFTokenizer:
    """Tokenizer from an already parsed GGUF key/value dict (e.g. `bitnet.gguf.load(p).kv`)."""
    return GGUFTokenizer(Vocab.from_gguf_kv(kv), engine=engine)


def load(
    path: Union[str, os.PathLike[str]],
    *,
    pattern: Optional[str] = None,
    special_tokens: Optional[Dict[str, int]] = None,
    engine: Optional[TokenizerEngine] = None,
) -> Tokenizer:
    """Tokenizer of a `.gguf` file (its vocabulary, metadata auto-repaired by bitnet.gguf) or of a
    `.tiktoken` rank file (`pattern` / `special_tokens` default to the encoding named by the file
    stem, e.g. cl100k_base)."""
    p = Path(path)
    if not p.exists():
        raise ModelNotFoundError(f"no such file: {p}")
    if p.suffix == ".tiktoken":
        name = p.stem
        if pattern is None or special_tokens is None:
            if name not in KNOWN_ENCODINGS:
                raise UnsupportedError(
                    f"{p.name}: pass pattern= and special_tokens= (known by name: "
                    f"{', '.join(sorted(KNOWN_ENCODINGS))})"
                )
            known_pattern, known_special = KNOWN_ENCODINGS[name]
            pattern = known_pattern if pattern is None else pattern
            special_tokens = known_special if special_tokens is None else special_tokens
        return TiktokenTokenizer(
            load_tiktoken_ranks(p), pattern, special_tokens, name=name, engine=engine
        )
    if pattern is not None or special_tokens is not None:
        raise UnsupportedError("pattern= and special_tokens= apply to .tiktoken files only")
    from bitnet.gguf import load as gguf_load

    gf = gguf_load(p)
    try:
        return from_gguf_kv(gf.kv, engine=engine)
    finally:
        gf.close()
