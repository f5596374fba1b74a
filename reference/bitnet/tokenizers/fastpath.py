"""The C tokenizer hot path (optimized/bitnet_kernels/kernels/bn_tokenize.c) behind the reference tokenizers.

`bpe.py`, `spm.py` and `pretokenizers.py` call in here when the kernels are built and
`bitnet_kernels.backend_name()` says "optimized" (so `BITNET_BACKEND=reference` or
`BITNET_OPTIMIZED_DISABLE=1` give the pure-Python path); the C code mirrors the Python line
for line and gives identical ids (tests/test_tokenizer_fastpath.py). Every function here
returns None where the C path does not apply or fails (an input llama.cpp aborts on, a byte
without a token, ...): the caller then runs the reference code, which raises the typed error.

Used today: the C splitters (`split`, from `pretokenizers.pre_tokenize`), the BPE merge of
words missing from `bpe.BPE`'s cache, SPM's whole merge loop. Ready but needing a caller:
`bpe.BPE.tokenize` (pre-tokenizer + merges + word cache in one C call, for
`GGUFTokenizer._bpe_tokenize`) and `TiktokenAccel` (cl100k_base's pattern and merges in C, for
`TiktokenTokenizer._encode_ordinary`).

One C handle per vocabulary (`BPEEngine`, `SPMEngine`, `TiktokenEngine`), freed with it
(cffi's ffi.gc); the BPE and tiktoken ones are built only after ENGINE_AFTER_BYTES of text.
"""

from __future__ import annotations

import threading
import weakref
from array import array
from itertools import accumulate
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bitnet.errors import TokenizationError
from bitnet.tokenizers import unicode as U

# splitter kinds (bn_api_tokenize.h BN_SPLIT_*)
SPLIT_GPT2 = 1
SPLIT_LLAMA3 = 2
SPLIT_QWEN2 = 3
SPLIT_QWEN35 = 4
SPLIT_NEWLINES = 5
SPLIT_DIGIT = 6
_EUTF8 = -2

# a BPE vocabulary's C engine is built after this many bytes were tokenized in Python
# (building it costs up to ~0.5 s; tests set 0 to use it at once)
ENGINE_AFTER_BYTES = 1 << 14

_lock = threading.Lock()
_state: Dict[str, Any] = {}  # "lib", "ffi" once loaded; "failed" if the extension is missing


def _kernels() -> Optional[Tuple[Any, Any]]:
    """(ffi, lib) of bitnet_kernels._kernels with the Unicode table loaded, or None."""
    if "lib" in _state:
        return _state["ffi"], _state["lib"]
    if "failed" in _state:
        return None
    with _lock:
        if "lib" not in _state and "failed" not in _state:
            try:
                import bitnet_kernels as optimized

                if not optimized.available():  # not built, or BITNET_OPTIMIZED_DISABLE=1
                    raise ImportError(optimized.unavailable_reason())
                from bitnet_kernels._kernels import ffi, lib

                if not hasattr(lib, "bn_bpe_tokenize"):  # an extension built before this file
                    raise ImportError("no tokenizer kernels")
                rc = lib.bn_tok_set_unicode(ffi.from_buffer("uint16_t[]", U._FLAGS), len(U._FLAGS))
                if rc != 0:
                    raise ImportError(f"bn_tok_set_unicode returned {rc}")
            except ImportError:
                _state["failed"] = True
                return None
            _state["ffi"], _state["lib"] = ffi, lib
    return _state["ffi"], _state["lib"]


def available() -> bool:
    """True when the C tokenizer kernels are built and loaded (whatever BITNET_BACKEND says)."""
    return _kernels() is not None


def enabled() -> bool:
    """True when tokenizers should take the C path now (kernels built, backend "optimized")."""
    if _kernels() is None:
        return False
    from bitnet_kernels import backend_name

    return backend_name() == "optimized"


def _blob(strings: Sequence[bytes]) -> Tuple[bytes, array[int]]:
    offs = array("q", accumulate(map(len, strings), initial=0))
    return b"".join(strings), offs


def split(text: bytes, kinds: Sequence[int], byte_encode: bool) -> Optional[List[str]]:
    """`pretokenizers.pre_tokenize` for chains of the splitters the C knows (`kinds`)."""
    k = _kernels()
    if k is None:
        return None
    ffi, lib = k
    n = len(text)
    raw = ffi.new("uint8_t[]", 3 * n + 1)
    ends = ffi.new("int64_t[]", n + 1)
    enc = ffi.new("uint8_t[]", 6 * n + 1) if byte_encode else ffi.NULL
    enc_len = ffi.new("int64_t *")
    kind_arr = ffi.new("int32_t[]", list(kinds))
    n_words = lib.bn_tok_split(kind_arr, len(kinds), text, n, raw, ends, enc, enc_len)
    if n_words < 0:
        return None
    bounds = ffi.unpack(ends, n_words)
    starts = [0] + bounds[:-1]
    if byte_encode:  # one character per raw byte: raw offsets index the encoded str
        s = ffi.unpack(ffi.cast("char *", enc), enc_len[0]).decode("utf-8")
        return [s[a:b] for a, b in zip(starts, bounds)]
    data = ffi.unpack(ffi.cast("char *", raw), bounds[-1] if bounds else 0)
    return [data[a:b].decode("utf-8", "surrogateescape") for a, b in zip(starts, bounds)]


def _encode_vocab_str(s: str, byte_encode: bool) -> Optional[bytes]:
    if byte_encode:  # the C decodes byte-level text; anything else it drops
        return s.encode("utf-8", "surrogatepass")
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no raw text can produce
        return None


class BPEEngine:
    """A C byte-level BPE handle for one vocabulary (see `bpe.BPE`)."""

    def __init__(
        self,
        token_to_id: Dict[str, int],
        ranks: Dict[Tuple[str, str], int],
        *,
        byte_encode: bool,
        ignore_merges: bool,
        whole_newline_words: bool,
    ) -> None:
        k = _kernels()
        if k is None:
            raise RuntimeError("the C tokenizer kernels are not built")
        ffi, lib = k
        self._ffi, self._lib = ffi, lib
        tok_ids = array("i", token_to_id.values())
        merge_ranks = array("i", ranks.values())
        strings = list(token_to_id)
        strings += [side for pair in ranks for side in pair]
        if byte_encode:  # one encode; the C finds where each string's bytes end
            blob = "".join(strings).encode("utf-8", "surrogatepass")
            counts = array("q", map(len, strings))
            offs = array("q", bytes(8 * (len(strings) + 1)))
            if lib.bn_tok_utf8_offsets(
                blob, len(blob), ffi.from_buffer("int64_t[]", counts), len(strings),
                ffi.from_buffer("int64_t[]", offs),
            ) != 0:
                raise RuntimeError("bn_tok_utf8_offsets: inconsistent UTF-8")
        else:
            encoded = [_encode_vocab_str(s, byte_encode) for s in strings]
            n_tok = len(tok_ids)
            for i, e in enumerate(encoded):
                if e is None and i < n_tok:
                    tok_ids[i] = -1
                elif e is None:
                    merge_ranks[(i - n_tok) // 2] = -1
            blob, offs = _blob([e or b"" for e in encoded])
        fallback = array("i", [-1] * 256)
        for byte in range(256):
            key = (
                bytes((byte,)).decode("utf-8", "surrogateescape")
                if byte_encode
                else f"<0x{byte:02X}>"
            )
            fallback[byte] = token_to_id.get(key, -1)
        flags = (1 if ignore_merges else 0) | (2 if whole_newline_words else 0)
        handle = lib.bn_bpe_new(
            len(tok_ids), len(merge_ranks), blob, ffi.from_buffer("int64_t[]", offs),
            ffi.from_buffer("int32_t[]", tok_ids), ffi.from_buffer("int32_t[]", merge_ranks),
            int(byte_encode), ffi.from_buffer("int32_t[]", fallback), flags,
        )
        if handle == ffi.NULL:
            raise MemoryError("bn_bpe_new: out of memory")
        self._h = ffi.gc(handle, lib.bn_bpe_free)

    def encode_word(self, raw: bytes) -> Optional[List[int]]:
        """Ids of one pre-tokenized word given as raw bytes."""
        out = self._ffi.new("int32_t[]", 2 * len(raw) + 1)
        n = self._lib.bn_bpe_encode_word(self._h, raw, len(raw), out)
        return None if n < 0 else self._ffi.unpack(out, n)

    def tokenize(self, text: bytes, kinds: Sequence[int]) -> Optional[List[int]]:
        """Pre-tokenize `text` with the splitters `kinds` and encode every word, all in C."""
        ffi = self._ffi
        out = ffi.new("int32_t[]", 6 * len(text) + 1)
        kind_arr = ffi.new("int32_t[]", list(kinds))
        n = self._lib.bn_bpe_tokenize(self._h, kind_arr, len(kinds), text, len(text), out)
        return None if n < 0 else ffi.unpack(out, n)


class SPMEngine:
    """A C SentencePiece handle for one vocabulary (see `spm.spm_tokenize`)."""

    def __init__(
        self,
        bytes_to_id: Dict[bytes, int],
        scores: Sequence[float],
        byte_to_token: Callable[[int], int],
    ) -> None:
        k = _kernels()
        if k is None:
            raise RuntimeError("the C tokenizer kernels are not built")
        ffi, lib = k
        self._ffi, self._lib = ffi, lib
        blob, offs = _blob(list(bytes_to_id))
        ids = array("i", bytes_to_id.values())
        score_arr = array("d", scores)
        byte_tok = array("i", [-1] * 256)
        for byte in range(256):
            try:
                byte_tok[byte] = byte_to_token(byte)
            except TokenizationError:
                pass  # the reference raises when it needs this byte: so will we (via it)
        handle = lib.bn_spm_new(
            len(ids), blob, ffi.from_buffer("int64_t[]", offs), ffi.from_buffer("int32_t[]", ids),
            ffi.from_buffer("double[]", score_arr) if len(score_arr) else ffi.NULL,
            len(score_arr), ffi.from_buffer("int32_t[]", byte_tok),
        )
        if handle == ffi.NULL:
            raise MemoryError("bn_spm_new: out of memory")
        self._h = ffi.gc(handle, lib.bn_spm_free)

    def tokenize(self, text: bytes) -> Optional[List[int]]:
        """Ids of `text` (whitespace already escaped); None if a byte has no token."""
        out = self._ffi.new("int32_t[]", len(text) + 1)
        n = self._lib.bn_spm_tokenize(self._h, text, len(text), out)
        return None if n < 0 else self._ffi.unpack(out, n)


def _regex_classes() -> Tuple[bytes, List[int], List[int]]:
    """The `regex` module's \\p{L} (1), \\p{N} (2) and \\s (4) per code point, and the code
    points that match one of the letters of cl100k's contractions under (?i)."""
    import regex

    everything = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
    cls = bytearray(len(everything))
    for bit, pattern in ((1, r"\p{L}+"), (2, r"\p{N}+"), (4, r"\s+")):
        for m in regex.finditer(pattern, everything):
            cls[m.start() : m.end()] = bytes((bit,)) * (m.end() - m.start())
    fold_cpt: List[int] = []
    fold_to: List[int] = []
    for letter in "sdmtlver":
        for m in regex.finditer(f"(?i:{letter})", everything):
            fold_cpt.append(ord(m.group()))
            fold_to.append(ord(letter))
    table = bytes(cls[:0xD800]) + bytes(0x800) + bytes(cls[0xD800:])  # surrogates: none
    return table, fold_cpt, fold_to


class TiktokenEngine:
    """A C handle for a tiktoken rank file (see `tiktoken_file.TiktokenTokenizer`): the merge
    of one piece, and cl100k_base's whole encode_ordinary (its pattern split in C)."""

    def __init__(self, ranks: Dict[bytes, int]) -> None:
        k = _kernels()
        if k is None:
            raise RuntimeError("the C tokenizer kernels are not built")
        ffi, lib = k
        self._ffi, self._lib = ffi, lib
        blob, offs = _blob(list(ranks))
        rank_arr = array("i", ranks.values())
        handle = lib.bn_rank_bpe_new(
            len(rank_arr), blob, ffi.from_buffer("int64_t[]", offs),
            ffi.from_buffer("int32_t[]", rank_arr),
        )
        if handle == ffi.NULL:
            raise MemoryError("bn_rank_bpe_new: out of memory")
        self._h = ffi.gc(handle, lib.bn_bpe_free)

    def merge(self, piece: bytes) -> Optional[List[int]]:
        """Ids of one pre-split piece; None if a byte has no rank (the reference raises)."""
        out = self._ffi.new("int32_t[]", len(piece) + 1)
        n = self._lib.bn_bpe_encode_word(self._h, piece, len(piece), out)
        return None if n < 0 else self._ffi.unpack(out, n)

    def encode_cl100k(self, text: bytes) -> Optional[List[int]]:
        """encode_ordinary of valid UTF-8 `text` with cl100k_base's pattern, all in C."""
        ffi, lib = self._ffi, self._lib
        if "classes" not in _state:
            with _lock:
                if "classes" not in _state:
                    table, fold_cpt, fold_to = _regex_classes()
                    rc = lib.bn_tok_set_regex_classes(
                        table, len(table), ffi.new("uint32_t[]", fold_cpt),
                        ffi.new("uint8_t[]", fold_to), len(fold_cpt),
                    )
                    if rc != 0:
                        raise RuntimeError(f"bn_tok_set_regex_classes returned {rc}")
                    _state["classes"] = True
        out = ffi.new("int32_t[]", len(text) + 1)
        n = lib.bn_tiktoken_cl100k(self._h, text, len(text), out)
        return None if n < 0 else ffi.unpack(out, n)


class TiktokenAccel:
    """What `tiktoken_file.TiktokenTokenizer` needs from C: `encode_ordinary(text)` gives the
    ids (cl100k_base's pattern run in C) or None (C path off, another pattern, the engine not
    built yet: the caller runs its own code). The engine is built once ENGINE_AFTER_BYTES of
    text went through Python (building it and the class table takes ~0.3-1 s)."""

    def __init__(self, ranks: Dict[bytes, int], pattern: str) -> None:
        from bitnet.tokenizers.tiktoken_file import CL100K_PATTERN  # tiktoken_file may import this module

        self._ranks = ranks
        self._cl100k = pattern == CL100K_PATTERN
        self._engine: Optional[TiktokenEngine] = None
        self._work = 0

    def encode_ordinary(self, text: str) -> Optional[List[int]]:
        """encode_ordinary in C, or None."""
        if not self._cl100k:
            return None
        if self._engine is None:
            self._work += len(text)
            if self._work < ENGINE_AFTER_BYTES:
                return None
        if not enabled():
            return None
        if self._engine is None:
            self._engine = TiktokenEngine(self._ranks)
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: the caller's business
            return None
        return self._engine.encode_cl100k(raw)


# spm_tokenize_chunked gets the vocabulary as (bytes_to_id, scores, byte_to_token), the last
# normally a bound method of the Vocab: its engine lives as long as that object does
_SPM_ENGINES: Dict[int, Tuple[int, int, SPMEngine]] = {}  # id(owner) -> (ids of the args, engine)


def spm_engine(
    bytes_to_id: Dict[bytes, int], scores: Sequence[float], byte_to_token: Callable[[int], int]
) -> Optional[SPMEngine]:
    """The SPM engine of this vocabulary when the C path is on, else None. Kept while the
    object `byte_to_token` is bound to lives; built anew per call without one (a plain
    function)."""
    if not enabled():
        return None
    owner = getattr(byte_to_token, "__self__", None)
    ids = (id(bytes_to_id), id(scores))
    if owner is not None:
        hit = _SPM_ENGINES.get(id(owner))
        if hit is not None and hit[:2] == ids:
            return hit[2]
    engine = SPMEngine(bytes_to_id, scores, byte_to_token)
    if owner is not None:
        try:
            weakref.finalize(owner, _SPM_ENGINES.pop, id(owner), None)
        except TypeError:  # not weakly referenceable: no caching
            return engine
        _SPM_ENGINES[id(owner)] = (ids[0], ids[1], engine)
    return engine


def live_handles() -> int:
    """C handles alive (BPE + SPM engines), 0 without the kernels; for leak tests."""
    k = _kernels()
    return int(k[1].bn_tok_live_handles()) if k is not None else 0
