"""`Vocab`: a GGUF vocabulary with llama.cpp's defaults and fix-ups (llama_vocab::impl::load).

Built from the GGUF key/value dict (`bitnet.gguf.load(path).kv`). Everything llama.cpp derives
at load is derived here the same way: per-model-type defaults (special ids, add_bos/add_eos,
add_space_prefix), the flags each `tokenizer.ggml.pre` value sets (clean_spaces,
ignore_merges, ...), token attributes from token types, the text-based detection of
EOT/EOM/FIM tokens (which also marks them CONTROL), "unused" control tokens, the EOG set and
the per-model LSTRIP/RSTRIP attributes (Phi-3, nomic-bert-moe, ...).

Known divergence: when several tokens match one of llama.cpp's EOT/FIM text lists and the
file names no id, llama.cpp keeps whichever its hash map (std::unordered_map iteration order)
yields first; here the first text in llama.cpp's list wins (e.g. '<|eot_id|>' before
'<|end_of_text|>', which is also what llama.cpp picks for Llama 3). Only `eot_id`/`fim_*_id`
can differ; tokenization and the EOG set do not depend on the pick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from bitnet.errors import TokenizationError, UnsupportedError
from bitnet.tokenizers import pretokenizers as P

# token types (llama_token_type) and attributes (llama_token_attr)
(
    TYPE_UNDEFINED,
    TYPE_NORMAL,
    TYPE_UNKNOWN,
    TYPE_CONTROL,
    TYPE_USER_DEFINED,
    TYPE_UNUSED,
    TYPE_BYTE,
) = range(7)
ATTR_UNDEFINED = 0
ATTR_UNKNOWN = 1 << 0
ATTR_UNUSED = 1 << 1
ATTR_NORMAL = 1 << 2
ATTR_CONTROL = 1 << 3
ATTR_USER_DEFINED = 1 << 4
ATTR_BYTE = 1 << 5
ATTR_NORMALIZED = 1 << 6
ATTR_LSTRIP = 1 << 7
ATTR_RSTRIP = 1 << 8
ATTR_SINGLE_WORD = 1 << 9
_TYPE_TO_ATTR = {
    TYPE_UNKNOWN: ATTR_UNKNOWN,
    TYPE_UNUSED: ATTR_UNUSED,
    TYPE_NORMAL: ATTR_NORMAL,
    TYPE_CONTROL: ATTR_CONTROL,
    TYPE_USER_DEFINED: ATTR_USER_DEFINED,
    TYPE_BYTE: ATTR_BYTE,
    TYPE_UNDEFINED: ATTR_UNDEFINED,
}
_TYPE_ATTRS = np.array([_TYPE_TO_ATTR[t] for t in range(len(_TYPE_TO_ATTR))], dtype=np.int64)

# tokenizer.ggml.model -> llama.cpp vocab type
MODEL_TYPES = {"llama": "spm", "gpt2": "bpe", "gemma4": "bpe", "bert": "wpm", "t5": "ugm"}
SUPPORTED_MODEL_TYPES: Tuple[str, ...] = tuple(sorted(MODEL_TYPES))
_KNOWN_UNSUPPORTED_MODELS = (
    "no_vocab",
    "none",
    "rwkv",
    "plamo2",
    "hybriddna",
    "whitespace",
    "test",
)

K = "tokenizer.ggml."
_SPECIAL_KEYS = (  # (key, attribute) in llama.cpp's order; later keys overwrite earlier ones
    ("bos_token_id", "bos_id"),
    ("eos_token_id", "eos_id"),
    ("eot_token_id", "eot_id"),
    ("eom_token_id", "eom_id"),
    ("unknown_token_id", "unk_id"),
    ("seperator_token_id", "sep_id"),
    ("padding_token_id", "pad_id"),
    ("mask_token_id", "mask_id"),
    ("fim_pre_token_id", "fim_pre_id"),
    ("fim_suf_token_id", "fim_suf_id"),
    ("fim_mid_token_id", "fim_mid_id"),
    ("fim_pad_token_id", "fim_pad_id"),
    ("fim_rep_token_id", "fim_rep_id"),
    ("fim_sep_token_id", "fim_sep_id"),
    ("prefix_token_id", "fim_pre_id"),
    ("suffix_token_id", "fim_suf_id"),
    ("middle_token_id", "fim_mid_id"),
)
# text-detected specials (llama.cpp's lists); each found token is also forced to CONTROL
_AUTO_SPECIALS = (
    (
        "eot_id",
        (
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|end_of_text|>",
            "<EOT>",
            "_<EOT>",
            "[EOT]",
            "<｜end▁of▁sentence｜>",
            "<end_of_utterance>",
        ),
    ),
    ("eom_id", ("<|eom_id|>",)),
    (
        "fim_pre_id",
        (
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<｜fim▁begin｜>",
            "<PRE>",
            "▁<PRE>",
            "<|code_prefix|>",
            "<|prefix|>",
        ),
    ),
    (
        "fim_suf_id",
        (
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<｜fim▁hole｜>",
            "<SUF>",
            "▁<SUF>",
            "<|code_suffix|>",
            "<|suffix|>",
        ),
    ),
    (
        "fim_mid_id",
        (
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<｜fim▁end｜>",
            "<MID>",
            "▁<MID>",
            "<|code_middle|>",
            "<|middle|>",
        ),
    ),
    ("fim_pad_id", ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]")),
    ("fim_rep_id", ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>")),
    ("fim_sep_id", ("<|file_sep|>",)),
)
_EOG_TEXTS = frozenset(
    (
        "<|eot_id|>",
        "<|im_end|>",
        "<|end|>",
        "<|return|>",
        "<|call|>",
        "<|flush|>",
        "<|calls|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "</s>",
        "<|eom_id|>",
        "<EOT>",
        "_<EOT>",
        "[EOT]",
        "[EOS]",
        "<|end_of_text|>",
        "<end_of_utterance>",
        "<eos>",
        "<turn|>",
        "<|tool_response>",
        "<｜end▁of▁sentence｜>",
        "[e~[",
    )
)


def _text_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def merge_ranks(merges: Sequence[str]) -> Dict[Tuple[str, str], int]:
    """BPE merge texts ("left right", split at the first space after the first character)
    -> rank; a text without that space is ("", ""); a repeated pair keeps its first rank
    (std::unordered_map::emplace)."""
    pairs = [(a, b) if a and sep else _merge_pair(w)
             for w, (a, sep, b) in zip(merges, [w.partition(" ") for w in merges])]
    ranks = dict(zip(pairs, range(len(pairs))))
    if len(ranks) != len(pairs):  # repeated pairs: the first rank wins
        ranks = {}
        for i, pair in enumerate(pairs):
            ranks.setdefault(pair, i)
    return ranks


def _merge_pair(word: str) -> Tuple[str, str]:
    pos = word.find(" ", 1)
    return (word[:pos], word[pos + 1 :]) if pos >= 0 else ("", "")


@dataclass
class Vocab:
    """A vocabulary as llama.cpp loads it. Token texts are `str` decoded from the GGUF bytes with
    errors="surrogateescape" (`text.encode("utf-8", "surrogateescape")` gives the bytes)."""

    model: str  # tokenizer.ggml.model
    type: str  # spm | bpe | wpm | ugm
    pre: str  # tokenizer.ggml.pre as used ('' for non-BPE)
    pre_type: str  # key of pretokenizers.REGEXES ('default' for non-BPE)
    tokens: List[str]
    scores: List[float]
    attrs: List[int]
    token_to_id: Dict[str, int]
    merge_texts: Sequence[str] = ()  # tokenizer.ggml.merges as read (BPE); see `merges`
    bos_id: Optional[int] = None
    eos_id: Optional[int] = None
    eot_id: Optional[int] = None
    eom_id: Optional[int] = None
    unk_id: Optional[int] = None
    sep_id: Optional[int] = None
    pad_id: Optional[int] = None
    mask_id: Optional[int] = None
    nl_id: Optional[int] = None
    fim_pre_id: Optional[int] = None
    fim_suf_id: Optional[int] = None
    fim_mid_id: Optional[int] = None
    fim_pad_id: Optional[int] = None
    fim_rep_id: Optional[int] = None
    fim_sep_id: Optional[int] = None
    add_bos: bool = False
    add_eos: bool = False
    add_sep: bool = False
    add_space_prefix: bool = False
    remove_extra_whitespaces: bool = False
    escape_whitespaces: bool = True
    treat_whitespace_as_suffix: bool = False
    ignore_merges: bool = False
    clean_spaces: bool = False
    byte_fallback: Optional[bool] = None  # informational: llama.cpp does not read the key
    lowercase: bool = True  # BERT normalizer
    strip_accents: bool = True
    eog_ids: Set[int] = field(default_factory=set)
    special_tokens: List[int] = field(default_factory=list)  # partition order (longest first)
    precompiled_charsmap: bytes = b""
    _bytes_to_id: Optional[Dict[bytes, int]] = field(default=None, repr=False, compare=False)
    _merges: Optional[Dict[Tuple[str, str], int]] = field(default=None, repr=False, compare=False)
    _max_token_len: Optional[int] = field(default=None, repr=False, compare=False)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def cls_id(self) -> Optional[int]:
        """llama.cpp has no separate CLS id: llama_vocab_cls() returns BOS ([CLS] in BERT)."""
        return self.bos_id

    @property
    def merges(self) -> Dict[Tuple[str, str], int]:
        """BPE merge ranks, (left, right) -> rank (built on first use from `merge_texts`)."""
        if self._merges is None:
            self._merges = merge_ranks(self.merge_texts)
        return self._merges

    @property
    def max_token_len(self) -> int:
        """The longest token text in bytes (computed on first use)."""
        if self._max_token_len is None:
            self._max_token_len = max(map(len, map(_text_bytes, self.tokens)), default=0)
        return self._max_token_len

    @property
    def bytes_to_id(self) -> Dict[bytes, int]:
        """Token bytes -> id (built on first use)."""
        if self._bytes_to_id is None:
            self._bytes_to_id = dict(zip(map(_text_bytes, self.tokens), range(self.n_tokens)))
        return self._bytes_to_id

    def text_bytes(self, token_id: int) -> bytes:
        return _text_bytes(self.tokens[token_id])

    def is_control(self, token_id: int) -> bool:
        return bool(self.attrs[token_id] & ATTR_CONTROL)

    def is_eog(self, token_id: int) -> bool:
        return token_id in self.eog_ids

    def byte_to_token(self, byte: int) -> int:
        """llama_vocab::byte_to_token for SPM/UGM vocabularies."""
        tid = self.token_to_id.get(f"<0x{byte:02X}>")
        if tid is None:
            tid = self.token_to_id.get(bytes((byte,)).decode("utf-8", "surrogateescape"))
        if tid is None:
            raise TokenizationError(
                f"vocabulary has no token for byte 0x{byte:02X} "
                "(llama.cpp throws std::out_of_range here)"
            )
        return tid

    # ---------------------------------------------------------------------------------------
    @classmethod
    def from_gguf_kv(cls, kv: Dict[str, Any]) -> Vocab:
        """Load like llama_vocab::impl::load."""
        model = kv.get(K + "model")
        if model is None:
            raise UnsupportedError("no tokenizer.ggml.model in the file: it has no vocabulary")
        model = str(model)
        if model not in MODEL_TYPES:
            known = " (llama.cpp knows it)" if model in _KNOWN_UNSUPPORTED_MODELS else ""
            raise UnsupportedError(
                f"tokenizer model {model!r}{known} is not supported; supported: "
                f"{', '.join(SUPPORTED_MODEL_TYPES)}"
            )
        tokens_raw = kv.get(K + "tokens")
        if not isinstance(tokens_raw, list):
            raise UnsupportedError("cannot find tokenizer vocab in model file")
        v = cls(
            model=model,
            type=MODEL_TYPES[model],
            pre=str(kv.get(K + "pre") or ""),
            pre_type="default",
            tokens=[],
            scores=[],
            attrs=[],
            token_to_id={},
        )
        v._type_defaults(kv)
        v._text_flags(kv)
        v._load_tokens(kv, tokens_raw)
        v._load_special_ids(kv)
        v._detect_specials()
        v._build_eog()
        v.special_tokens = sorted(
            v._ids_with(ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN),
            key=lambda i: -len(_text_bytes(v.tokens[i])),
        )
        v._per_model_attrs(kv)
        return v

    def _type_defaults(self, kv: Dict[str, Any]) -> None:
        """The vocab type's default special ids, UGM's charsmap, BPE's merges."""
        null = None
        if self.type == "spm":
            self.bos_id, self.eos_id, self.unk_id = 1, 2, 0
        elif self.type == "wpm":
            self.bos_id, self.eos_id, self.unk_id, self.sep_id, self.pad_id, self.mask_id = (
                101,
                null,
                100,
                102,
                0,
                103,
            )
            self.add_sep = True
        elif self.type == "ugm":
            self.bos_id, self.eos_id, self.unk_id, self.pad_id = null, 1, 2, 0
            pcm = kv.get(K + "precompiled_charsmap")
            if pcm is not None:
                self.precompiled_charsmap = bytes(bytearray(int(x) & 0xFF for x in pcm))
        elif self.model == "gpt2":
            self.bos_id, self.eos_id = 11, 11
        # gemma4: all special ids default to none
        if self.model in ("gpt2", "gemma4"):
            merges = kv.get(K + "merges")
            if merges is None:
                raise UnsupportedError("cannot find tokenizer merges in model file")
            self.merge_texts = merges  # the ranks are built on first use (`merges`)
            if not set(map(type, merges)) <= {str}:  # not text: fails now, as loading did
                self._merges = merge_ranks(merges)
        if self.model == "gemma4":
            self.pre = "gemma4"

    def _text_flags(self, kv: Dict[str, Any]) -> None:
        """The vocab type's (BPE: the pre-tokenizer's) text flags, then the file's keys."""
        if self.type == "bpe":
            self.add_space_prefix = False
            self.escape_whitespaces = False
            self.clean_spaces = True
            pre = self.pre
            if not pre:
                spec = P.PRE_TOKENIZERS["default"]  # llama.cpp warns and uses 'default'
            elif pre in P.PRE_TOKENIZERS:
                spec = P.PRE_TOKENIZERS[pre]
            else:
                raise UnsupportedError(
                    f"pre-tokenizer {pre!r} is not supported; supported: "
                    f"{', '.join(P.SUPPORTED_PRE_TOKENIZERS)}"
                )
            self.pre_type = spec.type
            for name, value in spec.overrides.items():
                if name == "special_bos_id":
                    self.bos_id = None
                elif name == "add_sep":
                    self.add_sep = bool(value)
                else:
                    setattr(self, name, value)
        elif self.type == "spm":
            self.add_space_prefix, self.clean_spaces, self.add_bos, self.add_eos = (
                True,
                False,
                True,
                False,
            )
        elif self.type == "wpm":
            self.add_space_prefix, self.clean_spaces, self.add_bos, self.add_eos, self.add_sep = (
                False,
                True,
                True,
                False,
                True,
            )
        elif self.type == "ugm":
            self.add_bos, self.add_eos = False, True
        if K + "add_space_prefix" in kv:
            self.add_space_prefix = bool(kv[K + "add_space_prefix"])
        if K + "remove_extra_whitespaces" in kv:
            self.remove_extra_whitespaces = bool(kv[K + "remove_extra_whitespaces"])
        if K + "byte_fallback" in kv:
            self.byte_fallback = bool(kv[K + "byte_fallback"])

    def _load_tokens(self, kv: Dict[str, Any], tokens_raw: List[str]) -> None:
        """Token texts, scores and attributes."""
        n = len(tokens_raw)
        scores = kv.get(K + "scores")
        if scores is not None and len(scores) < n:
            raise UnsupportedError(f"Index out of array bounds for scores ({len(scores)} < {n})")
        types = kv.get(K + "token_type")
        if types is not None and len(types) < n:
            raise UnsupportedError(f"Index out of array bounds for toktypes ({len(types)} < {n})")
        toks = list(tokens_raw)
        if "" in toks:
            for i, word in enumerate(toks):
                if word == "":
                    toks[i] = f"[EMPTY_{i}]"
        self.tokens = toks
        if scores is None:
            self.scores = [0.0] * n
        elif isinstance(scores, np.ndarray):  # as the GGUF reader gives numeric arrays
            self.scores = scores[:n].astype(np.float64).tolist()
        else:
            self.scores = [float(s) for s in scores[:n]]
        # token type -> attribute; a type out of range is ATTR_UNDEFINED
        if types is None:
            self.attrs = [ATTR_NORMAL] * n
        elif isinstance(types, np.ndarray) and types.dtype.kind in "iu":
            t = types[:n].astype(np.int64)
            known = (t >= 0) & (t < len(_TYPE_ATTRS))
            self.attrs = np.where(known, _TYPE_ATTRS[np.where(known, t, 0)], ATTR_UNDEFINED).tolist()
        else:
            self.attrs = [_TYPE_TO_ATTR.get(int(t), ATTR_UNDEFINED) for t in types[:n]]
        self.token_to_id = dict(zip(toks, range(n)))
        if len(self.token_to_id) != n:
            raise UnsupportedError("duplicate token texts in the vocabulary (llama.cpp asserts)")

    def _ids_with(self, attrs: int) -> List[int]:
        """Ids of the tokens with any of these attribute bits, ascending."""
        return np.flatnonzero(np.array(self.attrs, dtype=np.int64) & attrs).tolist()

    def _load_special_ids(self, kv: Dict[str, Any]) -> None:
        """Special ids (defaults out of range are disabled, then the file's keys), add_* flags,
        the BERT normalizer flags."""
        n = self.n_tokens
        for key, attr in _SPECIAL_KEYS:
            cur = getattr(self, attr)
            if cur is not None and cur >= n:
                setattr(self, attr, None)
                cur = None
            if K + key not in kv:
                continue
            new_id = int(kv[K + key]) & 0xFFFFFFFF  # read as uint32
            if new_id < n:
                setattr(self, attr, new_id)
        for key, attr in (
            ("add_bos_token", "add_bos"),
            ("add_eos_token", "add_eos"),
            ("add_sep_token", "add_sep"),
        ):
            if K + key in kv:
                setattr(self, attr, bool(kv[K + key]))
        if self.pre_type == "gemma4" and not self.add_bos:
            self.add_bos = True  # llama.cpp's Gemma 4 override
        if K + "normalizer.lowercase" in kv:
            self.lowercase = bool(kv[K + "normalizer.lowercase"])
        self.strip_accents = self.lowercase
        if K + "normalizer.strip_accents" in kv:
            self.strip_accents = bool(kv[K + "normalizer.strip_accents"])

    def _force_control(self, tid: int) -> None:
        self.attrs[tid] |= ATTR_CONTROL

    def _detect_specials(self) -> None:
        for attr, texts in _AUTO_SPECIALS:
            if getattr(self, attr) is not None:
                continue
            found = [self.token_to_id[t] for t in texts if t in self.token_to_id]
            if found:
                # subtle: with several candidates llama.cpp takes the first its hash map
                # yields (and forces only that one to CONTROL); here the first in its list
                setattr(self, attr, found[0])
                self._force_control(found[0])
        for tid in self._ids_with(ATTR_CONTROL):
            a = self.attrs[tid]
            if not a & ATTR_UNUSED and "unused" in self.tokens[tid]:
                self.attrs[tid] = a | ATTR_UNUSED

    def _build_eog(self) -> None:
        eog: Set[int] = set()
        for tid in (self.fim_pad_id, self.fim_rep_id, self.fim_sep_id):
            if tid is not None:
                eog.add(tid)
        for text in _EOG_TEXTS:
            tid = self.token_to_id.get(text)
            if tid is not None:
                eog.add(tid)
                self._force_control(tid)
        for text in ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"):  # gpt-oss hack
            if text in self.token_to_id:
                self.attrs[self.token_to_id[text]] = ATTR_USER_DEFINED
        for tid in (self.eos_id, self.eot_id, self.eom_id):
            if tid is not None:
                eog.add(tid)
        texts = {t: self.tokens[t] for t in eog if 0 <= t < self.n_tokens}
        has = set(texts.values())
        has_call = "<|call|>" in has or "<|calls|>" in has
        if "<|end|>" in has and has_call and ("<|return|>" in has or "<|flush|>" in has):
            end_id = next(t for t, s in texts.items() if s == "<|end|>")
            eog.discard(end_id)
            self.attrs[end_id] = ATTR_USER_DEFINED
        if ("<|tool_response>" in has or "<|plamo:eos|>" in has) and "</s>" in has:
            s_id = next(t for t, s in texts.items() if s == "</s>")
            eog.discard(s_id)
            self.attrs[s_id] = ATTR_NORMAL
        self.eog_ids = eog

    def _per_model_attrs(self, kv: Dict[str, Any]) -> None:
        name = str(kv.get("general.name", "")).lower()
        pre = str(kv.get(K + "pre", ""))
        arch = str(kv.get("general.architecture", ""))
        t2i = self.token_to_id

        def need(text: str) -> int:
            if text not in t2i:
                raise UnsupportedError(
                    f"token {text!r} is missing (llama.cpp's "
                    "token_to_id.at throws while loading this vocab)"
                )
            return t2i[text]

        if any(s in pre for s in ("jina-v2-de", "jina-v2-es", "jina-v2-code")) or any(
            s in arch for s in ("nomic-bert-moe", "jina-bert-v3")
        ):
            if "<mask>" in t2i:
                self.attrs[t2i["<mask>"]] |= ATTR_LSTRIP
        elif "phi-3" in name or "phi3" in name:
            for tid in self.special_tokens:
                self.attrs[tid] |= ATTR_RSTRIP
            self.attrs[need("</s>")] |= ATTR_RSTRIP
            for text in ("<unk>", "<s>", "<|endoftext|>"):
                self.attrs[need(text)] &= ~ATTR_RSTRIP
        elif "modern-bert" in name:
            if "[MASK]" in t2i:
                self.attrs[t2i["[MASK]"]] |= ATTR_LSTRIP
