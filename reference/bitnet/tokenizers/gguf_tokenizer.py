"""The tokenizer of a GGUF vocabulary, with llama.cpp's llama_tokenize / llama_detokenize /
llama_token_to_piece semantics (src/llama-vocab.cpp).

tokenize(text, add_special, parse_special):
  1. special-token partitioning: every CONTROL / USER_DEFINED / UNKNOWN token text (longest
     first; CONTROL and UNKNOWN only when `parse_special`) is cut out of the raw text, left
     neighbours losing trailing whitespace when the token has LSTRIP, right neighbours leading
     whitespace with RSTRIP;
  2. each remaining text fragment goes through the vocab type's tokenizer: SPM (a space
     prepended to the first fragment and to each one following a special token when
     add_space_prefix, spaces as '▁'), BPE (pre-tokenizer regexes + merges), WPM, UGM;
  3. add_special adds BOS/EOS as the vocab says (WPM: always [CLS] ... [SEP]).

Invalid UTF-8: llama.cpp never rejects it. SPM works on bytes (byte fallback); BPE/WPM decode
leniently (a bad byte is U+FFFD, see `unicode.py`); UGM replaces bad bytes by U+FFFD. The one
input llama.cpp dies on is a 4-byte sequence decoding past U+10FFFF (lead bytes F5..F7, or
F4 90+) in BPE/WPM text: its re-encoding throws and the process aborts. There, and only
there, `tokenize` raises `InvalidUTF8Error` (contract code -2).

detokenize(ids, remove_special, unparse_special) is llama_detokenize: pieces concatenated,
the first piece loses one leading space when add_space_prefix (unless a removed BOS came
first), then clean_spaces rules (" ?" -> "?", " ' " -> "'", " 's" -> "'s", ...).
`detokenize_pieces(ids, special)` is llama-cpp-python's `Llama.detokenize` instead (pieces
with lstrip=0, no cleaning, one leading space dropped after a BOS).

`engine=` a tokenizer engine (`engine.TokenizerEngine`, e.g. the C one) runs the BPE and SPM
hot loops there (same ids); None keeps everything in Python.

Known divergence (theoretical): llama.cpp orders special tokens of equal byte length with
std::sort (unstable, so the C++ library decides); here by id. Order matters only when two
same-length special texts overlap in the input (a suffix of one is a prefix of the other);
no vocabulary llama.cpp ships has such a pair.
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

from bitnet.errors import TokenizationError
from bitnet.tokenizers import pretokenizers as P
from bitnet.tokenizers import unicode as U
from bitnet.tokenizers.bpe import BPE
from bitnet.tokenizers.engine import SPMVocabEngine, TokenizerEngine
from bitnet.tokenizers.spm import isolated_bytes, spm_tokenize_chunked
from bitnet.tokenizers.ugm import UGM
from bitnet.tokenizers.vocab import (
    ATTR_BYTE,
    ATTR_CONTROL,
    ATTR_LSTRIP,
    ATTR_NORMAL,
    ATTR_RSTRIP,
    ATTR_UNKNOWN,
    ATTR_USER_DEFINED,
    Vocab,
)
from bitnet.tokenizers.wpm import wpm_tokenize

_SPACE_BYTES = b" \t\n\v\f\r"  # C isspace() in the "C" locale
_ESCAPED_SPACE = "\u2581".encode("utf-8")

Fragment = Union[int, Tuple[int, int]]  # a token id, or (offset, length) of raw text


class GGUFTokenizer:
    """Tokenizer for a GGUF vocabulary (`Vocab`), llama.cpp-exact."""

    def __init__(self, vocab: Vocab, engine: Optional[TokenizerEngine] = None) -> None:
        self.vocab = vocab
        self.engine = engine
        self._spm_engine: Optional[SPMVocabEngine] = None  # made on first SPM tokenization
        self._bpe: Optional[BPE] = None
        self._ugm: Optional[UGM] = None
        self._pieces: List[Optional[bytes]] = [None] * vocab.n_tokens
        if vocab.type == "bpe":
            exprs, byte_encode = P.REGEXES[vocab.pre_type]
            self._exprs = exprs
            self._bpe = BPE(
                vocab.token_to_id,
                lambda: vocab.merges,  # built when a merge first needs them
                byte_encode=byte_encode,
                ignore_merges=vocab.ignore_merges,
                whole_newline_words=vocab.pre_type == "gemma4",
                engine=engine,
            )
        elif vocab.type == "ugm":
            self._ugm = UGM(vocab)
        self._spm_isolated: Optional[bytes] = None  # made on first SPM tokenization
        vocab.nl_id = self._newline_id()

    def _isolated_bytes(self) -> bytes:
        """SPM: the bytes no merge crosses (`spm.isolated_bytes`), found on first use."""
        if self._spm_isolated is None:
            self._spm_isolated = isolated_bytes(list(self.vocab.bytes_to_id))
        return self._spm_isolated

    def _newline_id(self) -> Optional[int]:
        """llama.cpp's linefeed_id: SPM's byte token for '\\n', else the first token of "\\n"
        (WPM: none), falling back to the *default* pad id of the vocab type (llama.cpp
        computes it before reading the file's special ids)."""
        v = self.vocab
        default_pad = {"spm": None, "bpe": None, "wpm": 0, "ugm": 0}[v.type]
        if v.type == "spm":
            try:
                return v.byte_to_token(0x0A)
            except TokenizationError:
                return default_pad
        if v.type == "wpm":
            return default_pad
        ids = self._tokenize_fragments(b"\n", [(0, 1)], False)
        return ids[0] if ids else default_pad

    # --- the Tokenizer protocol --------------------------------------------------------
    @property
    def n_vocab(self) -> int:
        return self.vocab.n_tokens

    @property
    def bos_id(self) -> Optional[int]:
        return self.vocab.bos_id

    @property
    def eos_id(self) -> Optional[int]:
        return self.vocab.eos_id

    def tokenize(
        self, text: bytes, add_special: bool = True, parse_special: bool = False
    ) -> List[int]:
        """Token ids of `text` (llama_tokenize)."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        fragments: List[Fragment] = [(0, len(text))] if text else []
        fragments = self._partition(text, fragments, parse_special)
        return self._tokenize_fragments(text, fragments, add_special)

    def _tokenize_fragments(
        self, text: bytes, fragments: List[Fragment], add_special: bool
    ) -> List[int]:
        v = self.vocab
        out: List[int] = []
        if v.type == "spm":
            if add_special and v.add_bos:
                out.append(self._need(v.bos_id, "BOS"))
            prev_special = True
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                    prev_special = True
                    continue
                piece = text[frag[0] : frag[0] + frag[1]]
                if v.add_space_prefix and prev_special:
                    piece = b" " + piece
                piece = piece.replace(b" ", _ESCAPED_SPACE)
                out.extend(
                    spm_tokenize_chunked(
                        piece, v.bytes_to_id, v.scores, v.byte_to_token, self._isolated_bytes(),
                        self._spm_vocab_engine(),
                    )
                )
                prev_special = False
            if add_special and v.add_eos:
                out.append(self._need(v.eos_id, "EOS"))
        elif v.type == "bpe":
            if add_special and v.add_bos:
                out.append(self._need(v.bos_id, "BOS"))
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                    continue
                piece = text[frag[0] : frag[0] + frag[1]]
                if v.escape_whitespaces:
                    piece = piece.replace(b" ", _ESCAPED_SPACE)
                out.extend(self._bpe_tokenize(piece))
            if add_special and v.add_eos:
                out.append(self._need(v.eos_id, "EOS"))
        elif v.type == "wpm":
            if add_special:
                out.append(self._need(v.bos_id, "BOS ([CLS])"))
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                    continue
                piece = text[frag[0] : frag[0] + frag[1]]
                out.extend(
                    wpm_tokenize(
                        piece,
                        v.token_to_id,
                        v.max_token_len,
                        v.unk_id,
                        v.lowercase,
                        v.strip_accents,
                    )
                )
            if add_special:
                out.append(self._need(v.sep_id, "SEP"))
        elif v.type == "ugm":
            assert self._ugm is not None
            if add_special and v.add_bos:
                out.append(self._need(v.bos_id, "BOS"))
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                    continue
                out.extend(self._ugm.tokenize(text[frag[0] : frag[0] + frag[1]]))
            if add_special and v.add_eos:
                out.append(self._need(v.eos_id, "EOS"))
        return out

    def _spm_vocab_engine(self) -> Optional[SPMVocabEngine]:
        if self.engine is not None and self._spm_engine is None:
            v = self.vocab
            self._spm_engine = self.engine.spm(v.bytes_to_id, v.scores, v.byte_to_token)
        return self._spm_engine

    def _need(self, tid: Optional[int], what: str) -> int:
        if tid is None:
            raise TokenizationError(
                f"the vocabulary asks for a {what} token but has none "
                "(llama.cpp aborts on GGML_ASSERT here)"
            )
        return tid

    def _bpe_tokenize(self, text: bytes) -> List[int]:
        assert self._bpe is not None
        return self._bpe.tokenize(text, self._exprs)

    def _partition(
        self, text: bytes, fragments: List[Fragment], parse_special: bool
    ) -> List[Fragment]:
        """tokenizer_st_partition: cut special-token texts out of the raw-text fragments."""
        v = self.vocab
        for tid in v.special_tokens:
            if not fragments:
                break
            attr = v.attrs[tid]
            if not parse_special and attr & (ATTR_CONTROL | ATTR_UNKNOWN):
                continue
            needle = v.text_bytes(tid)
            new: List[Fragment] = []
            for frag in fragments:
                if isinstance(frag, int):
                    new.append(frag)
                    continue
                pos, end = frag[0], frag[0] + frag[1]
                while True:
                    m = text.find(needle, pos, end)
                    if m < 0:
                        if end > pos:
                            new.append((pos, end - pos))
                        break
                    if m > pos:
                        left_end = m
                        if attr & ATTR_LSTRIP:
                            while left_end > pos and text[left_end - 1] in _SPACE_BYTES:
                                left_end -= 1
                        if left_end > pos:
                            new.append((pos, left_end - pos))
                    new.append(tid)
                    pos = m + len(needle)
                    if pos >= end:
                        break
                    if attr & ATTR_RSTRIP:
                        while pos < end and text[pos] in _SPACE_BYTES:
                            pos += 1
                        if pos >= end:
                            break
            fragments = new
        return fragments

    # --- pieces and detokenization ----------------------------------------------------------
    def _piece(self, tid: int) -> bytes:
        """The token's text as llama.cpp's token-to-piece cache holds it (special=true)."""
        cached = self._pieces[tid]
        if cached is not None:
            return cached
        v = self.vocab
        attr = v.attrs[tid]
        text = v.tokens[tid]
        raw = v.text_bytes(tid)
        piece = b""
        if attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED):
            piece = raw
        elif attr & ATTR_NORMAL:
            if v.type == "bpe" and not v.escape_whitespaces:
                piece = _decode_byte_level(text, raw)
            else:
                piece = raw.replace(_ESCAPED_SPACE, b" ")
        elif attr & ATTR_BYTE:
            if v.type == "wpm":
                raise TokenizationError("WPM byte tokens have no piece (llama.cpp aborts)")
            piece = bytes((int(raw[3:5], 16) & 0xFF,))
        self._pieces[tid] = piece
        return piece

    def token_to_piece(self, token_id: int, lstrip: int = 0, special: bool = False) -> bytes:
        """llama_token_to_piece: the bytes of one token; control/unknown ones only if `special`."""
        v = self.vocab
        if not 0 <= token_id < v.n_tokens:
            raise TokenizationError(
                f"token id {token_id} is outside the vocabulary (0..{v.n_tokens - 1})"
            )
        if not special and v.attrs[token_id] & (ATTR_UNKNOWN | ATTR_CONTROL):
            return b""
        piece = self._piece(token_id)
        i = 0
        while i < lstrip and i < len(piece) and piece[i] == 0x20:
            i += 1
        return piece[i:]

    def detokenize(
        self, ids: List[int], remove_special: bool = False, unparse_special: bool = False
    ) -> bytes:
        """llama_detokenize."""
        v = self.vocab
        ids = list(ids)
        remove_space = v.add_space_prefix
        if remove_special and v.add_bos and ids and ids[0] == v.bos_id:
            remove_space = False
            ids = ids[1:]
        if remove_special and v.add_eos and ids and ids[-1] == v.eos_id:
            ids = ids[:-1]
        parts = []
        for tid in ids:
            parts.append(self.token_to_piece(tid, int(remove_space), unparse_special))
            remove_space = False
        text = b"".join(parts)
        return _clean_spaces(text) if v.clean_spaces else text

    def detokenize_pieces(self, ids: List[int], special: bool = False) -> bytes:
        """llama-cpp-python's `Llama.detokenize`: raw pieces, one leading space dropped after BOS.

        (llama-cpp-python reads each piece through a 32-byte buffer and mangles longer ones;
        this returns them whole.)"""
        out = b"".join(self.token_to_piece(t, 0, special) for t in ids)
        if ids and ids[0] == self.vocab.bos_id and out[:1] == b" ":
            return out[1:]
        return out


def _decode_byte_level(text: str, raw: bytes) -> bytes:
    """llama_decode_text: GPT-2 byte-level characters back to bytes."""
    out = bytearray()
    for cpt in U.cpts_from_utf8(raw):
        ch = chr(cpt) if cpt <= 0x10FFFF else None
        b = U.UNICODE_TO_BYTE.get(ch) if ch is not None else None
        if b is not None:
            out.append(b)
        else:
            utf8 = U.cpt_to_utf8(cpt)
            out += b"[UNK_BYTE_0x" + utf8.hex().encode("ascii") + raw + b"]"
    return bytes(out)


def _clean_spaces(text: bytes) -> bytes:
    """llama_detokenize's clean_up_tokenization_spaces passes, byte for byte as llama.cpp."""
    buf = bytearray(text)
    # pass 1: " ?", " !", " .", " ,"
    total1 = len(buf)
    total = 1 if total1 else 0
    for i in range(1, total1):
        x = buf[i]
        if buf[i - 1] == 0x20 and x in b"?!.,":
            total -= 1
        buf[total] = x
        total += 1
    # pass 2: " ' " -> "'"
    total2 = total
    total = 1 if total2 else 0
    i = 1
    while i < total2:
        x = buf[i]
        if x == 0x27 and i + 1 < total2 and buf[i - 1] == 0x20 and buf[i + 1] == 0x20:
            total -= 1
            i += 1
            buf[i] = 0
        buf[total] = x
        total += 1
        i += 1
    # pass 3: " 's", " 'm", " 're", " 've" lose the space
    total3 = total
    total = 1 if total3 else 0
    for i in range(1, total3):
        x = buf[i]
        if buf[i - 1] == 0x20 and x == 0x27 and i + 1 < total3:
            x1 = buf[i + 1]
            if x1 in b"sm":
                total -= 1
            elif x1 not in b"td" and i + 2 < total3:
                x2 = buf[i + 2]
                if (x1, x2) in ((0x72, 0x65), (0x76, 0x65)):
                    total -= 1
        buf[total] = x
        total += 1
    return bytes(buf[:total])
