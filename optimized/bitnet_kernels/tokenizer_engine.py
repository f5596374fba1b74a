"""The C tokenizer engine: `bitnet.tokenizers.engine.TokenizerEngine` over kernels/bn_tok_*.c.

    from bitnet_kernels.tokenizer_engine import default_engine
    tok = bitnet.tokenizers.load("model.gguf", engine=default_engine())

(The API surfaces get it from `bitnet.runtime.tokenizer_engine()`, which honours
BITNET_BACKEND=reference.) The C code mirrors the Python reference line for line and gives
identical ids (tests/test_tokenizer_fastpath.py). Every operation returns None where the C
path does not apply or fails (an input llama.cpp aborts on, a byte without a token, ...):
the tokenizer then runs its Python code, which raises the typed error.

What runs in C: the splitters (`split`), byte-level BPE per vocabulary (one word's merges,
or pre-tokenizer + merges + a per-call word cache in one call), SPM's merge loop, and
cl100k_base's whole encode_ordinary (its pattern split in C).

Handles: one C handle per vocabulary (`BPEHandle`, `SPMHandle`, `RankBPEHandle`), freed with
its Python object (cffi's ffi.gc); `CTokenizerEngine.live_handles()` counts the handles an
engine made that are still alive. Warm-up: building a BPE or tiktoken handle costs up to
~0.5 s (llama-bpe: 128k tokens, 280k merges), more than tokenizing a prompt in Python, so
the per-vocabulary objects `bpe()` and `tiktoken()` return build theirs once
`warm_up_bytes` of text went through them (until then they return None: the caller's Python
code runs); SPM handles are cheap and built at once.
"""

from __future__ import annotations

import threading
from array import array
from itertools import accumulate
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from bitnet.errors import TokenizationError
from bitnet.tokenizers import unicode as U

__all__ = [
    "ENGINE_AFTER_BYTES",
    "BPEHandle",
    "CTokenizerEngine",
    "RankBPEHandle",
    "SPMHandle",
    "available",
    "c_live_handles",
    "default_engine",
]

# a BPE or tiktoken vocabulary's C handle is built after this many bytes went through it
ENGINE_AFTER_BYTES = 1 << 14
# splitter names (bitnet.tokenizers.engine.SPLITTERS) -> bn_api_tokenize.h BN_SPLIT_*
SPLITTER_IDS = {"gpt2": 1, "llama3": 2, "qwen2": 3, "qwen35": 4, "newlines": 5, "digit": 6}

_lock = threading.Lock()
_state: Dict[str, Any] = {}  # "ffi"/"lib" once loaded, "reason" if not; "classes" once set


def _library() -> Tuple[Any, Any]:
    """(ffi, lib) of the extension with llama.cpp's Unicode table loaded (once per process);
    RuntimeError when the kernels are not available."""
    if "lib" not in _state:
        with _lock:
            if "lib" not in _state:
                import bitnet_kernels

                ffi, lib = bitnet_kernels._ffi, bitnet_kernels._lib
                if lib is None:
                    raise RuntimeError(f"C kernels unavailable: {bitnet_kernels.unavailable_reason()}")
                rc = lib.bn_tok_set_unicode(ffi.from_buffer("uint16_t[]", U._FLAGS), len(U._FLAGS))
                if rc != 0:
                    raise RuntimeError(f"bn_tok_set_unicode returned {rc}")
                _state["ffi"], _state["lib"] = ffi, lib
    return _state["ffi"], _state["lib"]


def available() -> bool:
    """True when the C tokenizer kernels are built and loadable (whatever BITNET_BACKEND says)."""
    try:
        _library()
    except RuntimeError:
        return False
    return True


_default: List[CTokenizerEngine] = []


def default_engine() -> Optional[CTokenizerEngine]:
    """The process-wide C engine (default warm-up), or None when the kernels are not built."""
    if not _default:
        if not available():
            return None
        with _lock:
            if not _default:
                _default.append(CTokenizerEngine())
    return _default[0]


def c_live_handles() -> int:
    """C tokenizer handles alive in this process, all engines together (the C counter)."""
    _, lib = _library()
    return int(lib.bn_tok_live_handles())


def _blob(strings: Sequence[bytes]) -> Tuple[bytes, array[int]]:
    offs = array("q", accumulate(map(len, strings), initial=0))
    return b"".join(strings), offs


def _chain(splitters: Sequence[str]) -> Optional[List[int]]:
    ids = [SPLITTER_IDS.get(name, 0) for name in splitters]
    return None if 0 in ids else ids


class CTokenizerEngine:
    """The C implementation of `bitnet.tokenizers.engine.TokenizerEngine` (see the module
    docstring); `warm_up_bytes=0` builds BPE and tiktoken handles on first use."""

    def __init__(self, warm_up_bytes: int = ENGINE_AFTER_BYTES) -> None:
        self._ffi, self._lib = _library()
        self.warm_up_bytes = warm_up_bytes
        # one entry per handle made / freed (list.append is atomic, also from a GC callback)
        self._made: List[None] = []
        self._freed: List[None] = []

    def live_handles(self) -> int:
        """Handles this engine made that are still alive."""
        return len(self._made) - len(self._freed)

    def own(self, handle: Any, free: Callable[[Any], None], what: str) -> Any:
        """`handle` (NULL: MemoryError) freed by `free` when its Python object goes."""
        if handle == self._ffi.NULL:
            raise MemoryError(f"{what}: out of memory")
        self._made.append(None)
        freed = self._freed

        def release(h: Any) -> None:
            free(h)
            freed.append(None)

        return self._ffi.gc(handle, release)

    # --- TokenizerEngine ---------------------------------------------------------------------
    def split(self, text: bytes, splitters: Sequence[str], byte_encode: bool) -> Optional[List[str]]:
        """`pretokenizers.pre_tokenize` for a chain of the C splitters."""
        kinds = _chain(splitters)
        if kinds is None:
            return None
        ffi = self._ffi
        n = len(text)
        raw = ffi.new("uint8_t[]", 3 * n + 1)
        ends = ffi.new("int64_t[]", n + 1)
        enc = ffi.new("uint8_t[]", 6 * n + 1) if byte_encode else ffi.NULL
        enc_len = ffi.new("int64_t *")
        n_words = self._lib.bn_tok_split(ffi.new("int32_t[]", kinds), len(kinds), text, n, raw,
                                         ends, enc, enc_len)
        if n_words < 0:
            return None
        bounds = ffi.unpack(ends, n_words)
        starts = [0] + bounds[:-1]
        if byte_encode:  # one character per raw byte: raw offsets index the encoded str
            s = ffi.unpack(ffi.cast("char *", enc), enc_len[0]).decode("utf-8")
            return [s[a:b] for a, b in zip(starts, bounds)]
        data = ffi.unpack(ffi.cast("char *", raw), bounds[-1] if bounds else 0)
        return [data[a:b].decode("utf-8", "surrogateescape") for a, b in zip(starts, bounds)]

    def bpe(
        self,
        token_to_id: Dict[str, int],
        ranks: Mapping[Tuple[str, str], int],
        *,
        byte_encode: bool,
        ignore_merges: bool,
        whole_newline_words: bool,
    ) -> WarmBPE:
        """This BPE vocabulary; its handle is built after `warm_up_bytes`."""
        return WarmBPE(self, token_to_id, ranks, (byte_encode, ignore_merges, whole_newline_words))

    def spm(
        self,
        bytes_to_id: Dict[bytes, int],
        scores: Sequence[float],
        byte_to_token: Callable[[int], int],
    ) -> SPMHandle:
        """This SentencePiece vocabulary's handle (built now)."""
        return SPMHandle(self, bytes_to_id, scores, byte_to_token)

    def tiktoken(self, ranks: Dict[bytes, int], pattern: str) -> Optional[WarmTiktoken]:
        """cl100k_base's encode_ordinary over `ranks`; None for any other pattern."""
        from bitnet.tokenizers.tiktoken_file import CL100K_PATTERN

        return WarmTiktoken(self, ranks) if pattern == CL100K_PATTERN else None

    # --- the regex module's classes, for cl100k's pattern --------------------------------
    def load_regex_classes(self) -> None:
        """Hand the C the `regex` module's \\p{L} / \\p{N} / \\s classes (once per process)."""
        if "classes" in _state:
            return
        with _lock:
            if "classes" not in _state:
                table, fold_cpt, fold_to = _regex_classes()
                ffi = self._ffi
                rc = self._lib.bn_tok_set_regex_classes(
                    table, len(table), ffi.new("uint32_t[]", fold_cpt),
                    ffi.new("uint8_t[]", fold_to), len(fold_cpt),
                )
                if rc != 0:
                    raise RuntimeError(f"bn_tok_set_regex_classes returned {rc}")
                _state["classes"] = True


class BPEHandle:
    """A C byte-level BPE handle for one vocabulary (the arguments of `bpe.BPE`)."""

    def __init__(
        self,
        engine: CTokenizerEngine,
        token_to_id: Dict[str, int],
        ranks: Mapping[Tuple[str, str], int],
        *,
        byte_encode: bool,
        ignore_merges: bool,
        whole_newline_words: bool,
    ) -> None:
        ffi, lib = self._ffi, self._lib = engine._ffi, engine._lib
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
            blob, offs = _raw_strings(strings, tok_ids, merge_ranks)
        fallback = array("i", [-1] * 256)
        for byte in range(256):
            key = bytes((byte,)).decode("utf-8", "surrogateescape") if byte_encode else f"<0x{byte:02X}>"
            fallback[byte] = token_to_id.get(key, -1)
        flags = (1 if ignore_merges else 0) | (2 if whole_newline_words else 0)
        handle = lib.bn_bpe_new(
            len(tok_ids), len(merge_ranks), blob, ffi.from_buffer("int64_t[]", offs),
            ffi.from_buffer("int32_t[]", tok_ids), ffi.from_buffer("int32_t[]", merge_ranks),
            int(byte_encode), ffi.from_buffer("int32_t[]", fallback), flags,
        )
        self._h = engine.own(handle, lib.bn_bpe_free, "bn_bpe_new")

    def encode_word(self, raw: bytes) -> Optional[List[int]]:
        """Ids of one pre-tokenized word given as raw bytes."""
        out = self._ffi.new("int32_t[]", 2 * len(raw) + 1)
        n = self._lib.bn_bpe_encode_word(self._h, raw, len(raw), out)
        return None if n < 0 else self._ffi.unpack(out, n)

    def tokenize(self, text: bytes, splitters: Sequence[str]) -> Optional[List[int]]:
        """Pre-tokenize `text` with the `splitters` chain and encode every word, all in C."""
        kinds = _chain(splitters)
        if kinds is None:
            return None
        ffi = self._ffi
        out = ffi.new("int32_t[]", 6 * len(text) + 1)
        n = self._lib.bn_bpe_tokenize(self._h, ffi.new("int32_t[]", kinds), len(kinds), text,
                                      len(text), out)
        return None if n < 0 else ffi.unpack(out, n)


def _raw_strings(
    strings: List[str], tok_ids: array[int], merge_ranks: array[int]
) -> Tuple[bytes, array[int]]:
    """Blob of raw-UTF-8 vocabulary strings (surrogateescape); a string with a lone surrogate
    no raw text can produce gets its token (or merge) id -1."""
    encoded: List[bytes] = []
    n_tok = len(tok_ids)
    for i, s in enumerate(strings):
        try:
            encoded.append(s.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            encoded.append(b"")
            if i < n_tok:
                tok_ids[i] = -1
            else:
                merge_ranks[(i - n_tok) // 2] = -1
    return _blob(encoded)


class WarmBPE:
    """`CTokenizerEngine.bpe`: a `BPEHandle` built once `warm_up_bytes` went through."""

    def __init__(self, engine: CTokenizerEngine, token_to_id: Dict[str, int],
                 ranks: Mapping[Tuple[str, str], int], flags: Tuple[bool, bool, bool]) -> None:
        self._engine = engine
        self._tables = (token_to_id, ranks)
        self._flags = flags  # byte_encode, ignore_merges, whole_newline_words
        self._work = 0
        self.handle: Optional[BPEHandle] = None

    def _ready(self, work: int) -> Optional[BPEHandle]:
        if self.handle is None:
            self._work += work
            if self._work < self._engine.warm_up_bytes:
                return None
            byte_encode, ignore_merges, whole_newline_words = self._flags
            self.handle = BPEHandle(self._engine, *self._tables, byte_encode=byte_encode,
                                    ignore_merges=ignore_merges,
                                    whole_newline_words=whole_newline_words)
        return self.handle

    def encode_word(self, raw: bytes) -> Optional[List[int]]:
        """Ids of one word (raw bytes), or None while warming up."""
        h = self._ready(len(raw))
        return None if h is None else h.encode_word(raw)

    def tokenize(self, text: bytes, splitters: Sequence[str]) -> Optional[List[int]]:
        """Ids of `text` split by `splitters`, or None while warming up."""
        h = self._ready(len(text))
        return None if h is None else h.tokenize(text, splitters)


class SPMHandle:
    """A C SentencePiece handle for one vocabulary (the arguments of `spm.spm_tokenize`)."""

    def __init__(
        self,
        engine: CTokenizerEngine,
        bytes_to_id: Dict[bytes, int],
        scores: Sequence[float],
        byte_to_token: Callable[[int], int],
    ) -> None:
        ffi, lib = self._ffi, self._lib = engine._ffi, engine._lib
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
        self._h = engine.own(handle, lib.bn_spm_free, "bn_spm_new")

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


class RankBPEHandle:
    """A C handle for a tiktoken rank file (`tiktoken_file.TiktokenTokenizer`): the merge of
    one piece, and cl100k_base's whole encode_ordinary (its pattern split in C)."""

    def __init__(self, engine: CTokenizerEngine, ranks: Dict[bytes, int]) -> None:
        ffi, lib = self._ffi, self._lib = engine._ffi, engine._lib
        self._engine = engine
        blob, offs = _blob(list(ranks))
        rank_arr = array("i", ranks.values())
        handle = lib.bn_rank_bpe_new(
            len(rank_arr), blob, ffi.from_buffer("int64_t[]", offs),
            ffi.from_buffer("int32_t[]", rank_arr),
        )
        self._h = engine.own(handle, lib.bn_bpe_free, "bn_rank_bpe_new")

    def merge(self, piece: bytes) -> Optional[List[int]]:
        """Ids of one pre-split piece; None if a byte has no rank (the reference raises)."""
        out = self._ffi.new("int32_t[]", len(piece) + 1)
        n = self._lib.bn_bpe_encode_word(self._h, piece, len(piece), out)
        return None if n < 0 else self._ffi.unpack(out, n)

    def encode_cl100k(self, text: bytes) -> Optional[List[int]]:
        """encode_ordinary of `text` with cl100k_base's pattern, all in C (None: not UTF-8)."""
        self._engine.load_regex_classes()
        out = self._ffi.new("int32_t[]", len(text) + 1)
        n = self._lib.bn_tiktoken_cl100k(self._h, text, len(text), out)
        return None if n < 0 else self._ffi.unpack(out, n)


class WarmTiktoken:
    """`CTokenizerEngine.tiktoken`: cl100k_base's encode_ordinary in C, its `RankBPEHandle`
    (and the class table, ~0.3-1 s together) built once `warm_up_bytes` went through."""

    def __init__(self, engine: CTokenizerEngine, ranks: Dict[bytes, int]) -> None:
        self._engine = engine
        self._ranks = ranks
        self._work = 0
        self.handle: Optional[RankBPEHandle] = None

    def encode_ordinary(self, text: str) -> Optional[List[int]]:
        """The ids, or None while warming up (or for text with lone surrogates)."""
        if self.handle is None:
            self._work += len(text)
            if self._work < self._engine.warm_up_bytes:
                return None
            self.handle = RankBPEHandle(self._engine, self._ranks)
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: the caller's business
            return None
        return self.handle.encode_cl100k(raw)
