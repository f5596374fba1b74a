"""BPE pre-tokenizers: llama.cpp's regex sets per `tokenizer.ggml.pre` and its way of running them.

llama.cpp (src/unicode.cpp, unicode_regex_split) applies a *list* of regexes in turn, each one
splitting every piece the previous ones produced; text a regex does not match stays a piece
of its own. It does not run these regexes with a Unicode regex engine:

* a few well-known patterns (GPT-2's, Llama 3's, Qwen2's, Qwen3.5's, and ``[^\\n]+|[\\n]+``)
  have hand-written splitters; they are ported here function for function;
* any other pattern using ``\\p{..}`` runs as a C++ std::regex (ECMAScript) over a
  "collapsed" text where every non-ASCII code point is replaced by one byte standing for its
  category (0xD1 number, 0xD2 letter, 0xD3 punctuation, 0xD4 mark, 0xD5 symbol, 0xD0 other,
  0x0B whitespace) and each ``\\p{X}`` by that byte plus the ASCII members of X;
* patterns without ``\\p{..}`` run as std::wregex over code points, non-ASCII whitespace
  replaced by 0x0B.

Here both std::regex cases run on Python's `re` with ``re.ASCII`` (so ``\\s`` is the C
locale's six characters, like std::regex's) over the same substituted text. Code point
categories come from llama.cpp's own Unicode table (see `unicode.py`), not from Python's.

Given a tokenizer engine (`engine.TokenizerEngine`), chains of GPT-2's, Llama 3's, Qwen2's,
Qwen3.5's, the newline splitter and ``\\p{N}`` (so also starcoder's pair) run there (the C
engine: optimized/bitnet_kernels/kernels/bn_tok_split.c), with identical pieces.

Not implemented (raise UnsupportedError): pre-tokenizers needing llama.cpp's other custom
splitters (kimi-k2, afmoe, tiny_aya / cohere2moe) and the hybriddna / whitespace models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

from bitnet.tokenizers import unicode as U
from bitnet.tokenizers.engine import TokenizerEngine

# --- llama.cpp's regex sets, by pre-tokenizer type (llm_tokenizer_bpe constructor) --------

_LLAMA3 = (
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
_GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
_QWEN2 = (
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
_QWEN35 = (
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?"
    "[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
_NEWLINES = "[^\\n]+|[\\n]+"
_DEEPSEEK3 = (
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"  # noqa: E501
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
)
_GPT4O_WORDS = (
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]"
    "|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])"
    "([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)

# type -> (regexes, byte_encode)
REGEXES: Dict[str, Tuple[Tuple[str, ...], bool]] = {
    "llama3": ((_LLAMA3,), True),
    "jais2": (
        (
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"  # noqa: E501
            "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)"  # noqa: E501
            "|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)"  # noqa: E501
            "|\\s{1,2}(?!\\S)|\\s{1}",
        ),
        True,
    ),
    "dbrx": ((_LLAMA3,), True),
    "smaug": ((_LLAMA3,), True),
    "deepseek-llm": (
        (
            "[\r\n]",
            "\\s?[A-Za-z\xb5\xc0-\xd6\xd8-\xf6\xf8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+",  # noqa: E501
            "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
            "\\s+$",
            "[一-龥ࠀ-一가-퟿]+",
            "\\p{N}+",
        ),
        True,
    ),
    "deepseek3-llm": (_DEEPSEEK3, True),
    "spark2_5": (
        (
            "\\p{N}{1,3}",
            "[一-龥぀-ゟ゠-ヿ]+",
            "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"  # noqa: E501
            "| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+",
            "\\p{N}",
        ),
        True,
    ),
    "youtu": (
        (
            "[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"  # noqa: E501
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?"
            "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]"  # noqa: E501
            "|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+"  # noqa: E501
            "|\\s+(?!\\S)|\\s+",
        ),
        True,
    ),
    "deepseek-coder": (
        (
            "[\r\n]",
            "\\s?\\p{L}+",
            "\\s?\\p{P}+",
            "[一-龥ࠀ-一가-퟿]+",
            "\\p{N}",
        ),
        True,
    ),
    "falcon": (
        (
            "[\\p{P}\\$\\+<=>\\^~\\|`]+",
            _GPT2,
            "[0-9][0-9][0-9]",
        ),
        True,
    ),
    "starcoder": (("\\p{N}", _GPT2), True),  # also refact, command-r, smollm, codeshell, ...
    "gpt2": ((_GPT2,), True),  # also mpt, olmo, jais, trillion, granite-docling
    "qwen2": ((_QWEN2,), True),  # also stablelm2, hunyuan, solar-open
    "qwen35": ((_QWEN35,), True),
    "poro": ((" ?[^(\\s|.,!?…。，、।۔،)]+",), True),  # also bloom, gpt3-finnish
    "chatglm4": ((_LLAMA3,), True),
    "viking": ((" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"), True),
    "tekken": (
        (
            "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?"  # noqa: E501
            "((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
            "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        ),
        True,
    ),
    "chameleon": (
        (
            "<sentinel:[0-9]+>",
            "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
            "([\\t\\n]|    |  )",
            "\\p{N}",
            "[\\p{P}!-/:-@\\[-`{-~]",
            _GPT2,
        ),
        True,
    ),
    "gpt4o": ((_GPT4O_WORDS,), True),
    "granite-emb-multi": (
        (
            "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+(?:'[sS]"  # noqa: E501
            "|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])"  # noqa: E501
            "([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]"  # noqa: E501
            "|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        ),
        True,
    ),
    "superbpe": (("\\p{N}+", "(?=(\\d{3})+(?!\\d))"), True),
    "bailingmoe": (
        (
            "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
            "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
        ),
        True,
    ),
    "seed-coder": (
        (
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"  # noqa: E501
            "|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        ),
        True,
    ),
    "ufakzeka": (
        (
            "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+"
            "|\\s+(?!\\S)|\\s+",
        ),
        True,
    ),
    "grok-2": ((_QWEN2,), True),
    "laguna": ((_NEWLINES, _QWEN2), True),
    "exaone-moe": (
        (
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?"
            "(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]"  # noqa: E501
            "|\\s+(?!\\S)|\\s+",
        ),
        True,
    ),
    "gemma4": ((_NEWLINES,), False),  # SPM-style BPE on raw UTF-8, spaces already '▁'
    "sarvam-moe": ((_NEWLINES,), False),
    "minicpm5": (
        (
            "\\p{N}{1,3}",
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"  # noqa: E501
            "|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        ),
        True,
    ),
    "default": (
        (
            "[\\p{P}\\$\\+<=>\\^~\\|]+",
            _GPT2,
            "\\p{N}+",
            "[0-9][0-9][0-9]",
        ),
        True,
    ),
}
# pre-tokenizer types sharing another's regex set in llama.cpp
for _alias, _same in (
    ("refact", "starcoder"),
    ("command-r", "starcoder"),
    ("smollm", "starcoder"),
    ("codeshell", "starcoder"),
    ("exaone", "starcoder"),
    ("minerva", "starcoder"),
    ("mellum2", "starcoder"),
    ("mpt", "gpt2"),
    ("olmo", "gpt2"),
    ("jais", "gpt2"),
    ("trillion", "gpt2"),
    ("granite-docling", "gpt2"),
    ("stablelm2", "qwen2"),
    ("hunyuan", "qwen2"),
    ("solar-open", "qwen2"),
    ("bloom", "poro"),
    ("gpt3-finnish", "poro"),
    ("minimax-m2", "gpt4o"),
    ("hunyuan-dense", "deepseek3-llm"),
    ("joyai-llm", "deepseek3-llm"),
    ("hy-v4", "deepseek3-llm"),
):
    REGEXES[_alias] = REGEXES[_same]


@dataclass(frozen=True)
class PreSpec:
    """What a `tokenizer.ggml.pre` value selects in llama_vocab::impl::load."""

    type: str  # key of REGEXES
    overrides: Dict[str, object] = field(default_factory=dict)  # vocab flags it changes


def _p(type_: str, **overrides: object) -> PreSpec:
    return PreSpec(type_, dict(overrides))


_NOCLEAN = {"clean_spaces": False}

# `tokenizer.ggml.pre` value -> type + flag overrides, in llama.cpp's order
PRE_TOKENIZERS: Dict[str, PreSpec] = {
    "default": _p("default"),
    "minicpm5": _p("minicpm5", ignore_merges=True),
}
for _n in (
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
):
    PRE_TOKENIZERS[_n] = _p("llama3", ignore_merges=True, add_bos=True)
PRE_TOKENIZERS.update(
    {
        "deepseek-llm": _p("deepseek-llm", **_NOCLEAN),
        "deepseek-coder": _p("deepseek-coder", **_NOCLEAN),
        "deepseek-v3": _p("deepseek3-llm", **_NOCLEAN),
        "spark2_5": _p("spark2_5", **_NOCLEAN),
        "youtu": _p("youtu", clean_spaces=False, ignore_merges=True),
        "falcon": _p("falcon"),
        "mpt": _p("mpt"),
        "starcoder": _p("starcoder"),
    }
)
for _n in (
    "gpt-2",
    "phi-2",
    "jina-es",
    "jina-de",
    "gigachat",
    "jina-v2-es",
    "jina-v2-de",
    "a.x-4.0",
    "mellum",
    "modern-bert",
):
    PRE_TOKENIZERS[_n] = _p("gpt2")
PRE_TOKENIZERS.update(
    {
        "jais-2": _p("jais2"),
        "gemma4": _p("gemma4", escape_whitespaces=True),
        "granite-embed-multi-311m": _p("gemma4", escape_whitespaces=True),
        "sarvam-moe": _p("sarvam-moe", escape_whitespaces=True, clean_spaces=False),
        "jina-v1-en": _p("gpt2", add_sep=True),
        "jina-v2-code": _p("gpt2", add_sep=True),
        "roberta-bpe": _p("gpt2", add_sep=True),
        "refact": _p("refact"),
        "command-r": _p("command-r", **_NOCLEAN),
    }
)
for _n in ("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2"):
    PRE_TOKENIZERS[_n] = _p("qwen2", **_NOCLEAN)
PRE_TOKENIZERS.update(
    {
        "qwen35": _p("qwen35", **_NOCLEAN),
        "stablelm2": _p("stablelm2"),
        "olmo": _p("olmo"),
        "dbrx": _p("dbrx"),
        "smaug-bpe": _p("smaug"),
        "poro-chat": _p("poro", **_NOCLEAN),
        "chatglm-bpe": _p("chatglm4", special_bos_id=None),
        "glm4": _p("chatglm4", special_bos_id=None, ignore_merges=True),
        "glm5": _p("chatglm4", special_bos_id=None, ignore_merges=True),
        "viking": _p("viking", **_NOCLEAN),
        "jais": _p("jais"),
        "tekken": _p("tekken", clean_spaces=False, ignore_merges=True, add_bos=True),
        "smollm": _p("smollm", **_NOCLEAN),
        "codeshell": _p("codeshell"),
        "bloom": _p("bloom"),
        "gpt3-finnish": _p("gpt3-finnish"),
        "exaone": _p("exaone"),
        "exaone4": _p("gpt2"),
        "exaone-moe": _p("exaone-moe"),
        "chameleon": _p("chameleon", add_bos=True, clean_spaces=False),
        "minerva-7b": _p("minerva"),
        "megrez": _p("qwen2"),
    }
)
for _n in ("gpt-4o", "llama4", "kanana2", "talkie"):
    PRE_TOKENIZERS[_n] = _p("gpt4o", **_NOCLEAN)
PRE_TOKENIZERS.update(
    {
        "granite-embed-multi-97m": _p("granite-emb-multi", clean_spaces=False, ignore_merges=True),
        "superbpe": _p("superbpe", **_NOCLEAN),
        "trillion": _p("trillion", **_NOCLEAN),
        "granite-docling": _p("granite-docling", **_NOCLEAN),
        "bailingmoe": _p("bailingmoe", **_NOCLEAN),
        "bailingmoe2": _p("bailingmoe", **_NOCLEAN),
        "llada-moe": _p("bailingmoe", **_NOCLEAN),
        "seed-coder": _p("seed-coder", **_NOCLEAN),
        "hunyuan": _p("hunyuan", **_NOCLEAN),
        "hunyuan-dense": _p("hunyuan-dense", **_NOCLEAN),
        "hy_v4": _p("hy-v4", **_NOCLEAN),
        "joyai-llm": _p("joyai-llm", **_NOCLEAN),
        "ufakzeka": _p("ufakzeka", **_NOCLEAN),
        "grok-2": _p("grok-2", **_NOCLEAN),
        "laguna": _p("laguna", **_NOCLEAN),
        "minimax-m2": _p("minimax-m2", **_NOCLEAN),
        "solar-open": _p("solar-open", **_NOCLEAN),
        "mellum2": _p("mellum2"),
    }
)

# known to llama.cpp but needing custom splitters not ported here
UNSUPPORTED_PRE_TOKENIZERS = ("kimi-k2", "afmoe", "tiny_aya", "cohere2moe", "whitespace")

SUPPORTED_PRE_TOKENIZERS: Tuple[str, ...] = tuple(sorted(PRE_TOKENIZERS))


# --- running a regex set --------------------------------------------------------------------

_UCAT_ENUM = {  # \p{..} -> category flag (k_ucat_enum)
    "\\p{N}": U.NUMBER,
    "\\p{L}": U.LETTER,
    "\\p{P}": U.PUNCTUATION,
    "\\p{M}": U.ACCENT_MARK,
    "\\p{S}": U.SYMBOL,
    "\\p{Lu}": U.LETTER,
    "\\p{Ll}": U.LETTER,
    "\\p{Lt}": U.LETTER,
    "\\p{Lm}": U.LETTER,
    "\\p{Lo}": U.LETTER,
}
_UCAT_CPT = {
    U.NUMBER: "\xd1",
    U.LETTER: "\xd2",
    U.PUNCTUATION: "\xd3",
    U.ACCENT_MARK: "\xd4",
    U.SYMBOL: "\xd5",
}
_UCAT_MAP = {  # ASCII members of each category, as regex class text (k_ucat_map)
    U.NUMBER: "\x30-\x39",
    U.LETTER: "\x41-\x5a\x61-\x7a",
    U.PUNCTUATION: "\x21-\x23\x25-\x2a\x2c-\x2f\x3a-\x3b\x3f-\x40\\\x5b-\\\x5d\x5f\\\x7b\\\x7d",
    U.ACCENT_MARK: "",
    U.SYMBOL: "\\\x24\\\x2b\x3c-\x3e\x5e\x60\\\x7c\\\x7e",
}
_CUSTOM = {
    _GPT2: "gpt2",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "llama3",
    _LLAMA3: "llama3",
    _QWEN2: "qwen2",
    _QWEN35: "qwen35",
    _NEWLINES: "newlines",
}


def _uses_categories(expr: str) -> bool:
    return any(k in expr for k in _UCAT_ENUM)


def _collapse_regex(expr: str) -> str:
    """llama.cpp's rewrite of a \\p{..} regex for the collapsed text (unicode_regex_split)."""
    if any(ord(c) >= 128 for c in expr):
        raise ValueError("Regex includes both unicode categories and non-ASCII characters")
    out: List[str] = []
    inside = False
    i = 0
    n = len(expr)
    while i < n:
        c = expr[i]
        if c == "[" and (i == 0 or expr[i - 1] != "\\"):
            out.append("[")
            inside = True
            i += 1
            continue
        if inside and c == "]" and expr[i - 1] != "\\":
            out.append("]")
            inside = False
            i += 1
            continue
        if c == "\\" and i + 3 < n and expr[i + 1] == "p" and expr[i + 2] == "{":
            close = expr.find("}", i + 3)
            if close != -1 and close <= i + 10:
                pat = expr[i : close + 1]
                if pat in _UCAT_ENUM:
                    flag = _UCAT_ENUM[pat]
                    body = _UCAT_CPT[flag] + _UCAT_MAP[flag]
                    out.append(body if inside else "[" + body + "]")
                    i = close + 1
                    continue
        out.append(c)
        i += 1
    return "".join(out)


def _ecmascript_to_python(expr: str) -> str:
    """The few ECMAScript spellings `re` reads differently: an unescaped '$' is end of input."""
    out: List[str] = []
    inside = False
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == "\\":
            out.append(expr[i : i + 2])
            i += 2
            continue
        if c == "[":
            inside = True
        elif c == "]":
            inside = False
        elif c == "$" and not inside:
            c = "\\Z"
        out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=None)
def _compiled(expr: str) -> re.Pattern[str]:
    body = _collapse_regex(expr) if _uses_categories(expr) else expr
    return re.compile(_ecmascript_to_python(body), re.ASCII)


def _collapsed_text(cpts: Sequence[int], flags: Sequence[int]) -> str:
    out = []
    for c, f in zip(cpts, flags):
        if c < 128:
            out.append(chr(c))
        elif f & U.WHITESPACE:
            out.append("\x0b")
        else:
            out.append(_UCAT_CPT.get(f & U.MASK_CATEGORIES, "\xd0"))
    return "".join(out)


def _wide_text(cpts: Sequence[int], flags: Sequence[int]) -> str:
    return "".join(
        [
            "\x0b" if (c > 0x7F and f & U.WHITESPACE) else chr(min(c, 0x10FFFF))
            for c, f in zip(cpts, flags)
        ]
    )


def _split_stl(text: str, expr: str, offsets: List[int]) -> List[int]:
    """unicode_regex_split_stl: matches and the gaps between them, within each piece."""
    pattern = _compiled(expr)
    out: List[int] = []
    start = 0
    for offset in offsets:
        piece = text[start : start + offset]
        start_idx = 0
        for m in pattern.finditer(piece):
            if m.start() > start_idx:
                out.append(m.start() - start_idx)
            out.append(m.end() - m.start())
            start_idx = m.end()
        if start_idx < offset:
            out.append(offset - start_idx)
        start += offset
    return out


_APOS = 0x27
_SPACE = 0x20
_CR = 0x0D
_LF = 0x0A
_OUT = 0xFFFFFFFF
_ONE_CHAR_CONTRACTIONS = (ord("s"), ord("t"), ord("m"), ord("d"))
_TWO_CHAR_CONTRACTIONS = ((ord("r"), ord("e")), (ord("v"), ord("e")), (ord("l"), ord("l")))


def _split_custom_gpt2(cpts: Sequence[int], flags: Sequence[int], offsets: List[int]) -> List[int]:
    """unicode_regex_split_custom_gpt2: 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"""  # noqa: E501
    L, N, W = U.LETTER, U.NUMBER, U.WHITESPACE
    out: List[int] = []
    start = 0
    for offset in offsets:
        ini, end = start, start + offset
        start = end

        def fl(p: int, ini: int = ini, end: int = end) -> int:
            return flags[p] if ini <= p < end else 0

        def cp(p: int, ini: int = ini, end: int = end) -> int:
            return cpts[p] if ini <= p < end else _OUT

        prev = ini
        pos = ini
        while pos < end:
            cpt = cpts[pos]
            f = flags[pos]
            if cpt == _APOS and pos + 1 < end:
                nxt = cpts[pos + 1]
                if nxt in _ONE_CHAR_CONTRACTIONS:
                    pos += 2
                    out.append(pos - prev)
                    prev = pos
                    continue
                if pos + 2 < end and (nxt, cpts[pos + 2]) in _TWO_CHAR_CONTRACTIONS:
                    pos += 3
                    out.append(pos - prev)
                    prev = pos
                    continue
            f2 = fl(pos + 1) if cpt == _SPACE else f
            if f2 & L:
                pos += cpt == _SPACE
                while f2 & L:
                    pos += 1
                    f2 = fl(pos)
            elif f2 & N:
                pos += cpt == _SPACE
                while f2 & N:
                    pos += 1
                    f2 = fl(pos)
            elif not (f2 & (W | L | N)) and f2:
                pos += cpt == _SPACE
                while not (f2 & (W | L | N)) and f2:
                    pos += 1
                    f2 = fl(pos)
            else:
                nws = 0
                while fl(pos + nws) & W:
                    nws += 1
                if nws > 1 and cp(pos + nws) != _OUT:
                    pos += nws - 1  # \s+(?!\S)
                elif nws > 0:
                    pos += nws  # \s+
                else:
                    pos += 1  # no match
            if pos > prev:
                out.append(pos - prev)
            prev = pos
    return out


def _split_custom_llama3(
    cpts: Sequence[int], flags: Sequence[int], offsets: List[int], variant: str
) -> List[int]:
    """unicode_regex_split_custom_llama3 / _qwen2 / _qwen35 (they differ in the digit rule and
    in whether combining marks join letter runs)."""
    L, N, W, M = U.LETTER, U.NUMBER, U.WHITESPACE, U.ACCENT_MARK
    word = L | M if variant == "qwen35" else L  # what a letter run consumes
    not_punct = W | L | N | (M if variant == "qwen35" else 0)
    out: List[int] = []
    start = 0
    for offset in offsets:
        ini, end = start, start + offset
        start = end

        def fl(p: int, ini: int = ini, end: int = end) -> int:
            return flags[p] if ini <= p < end else 0

        def cp(p: int, ini: int = ini, end: int = end) -> int:
            return cpts[p] if ini <= p < end else _OUT

        prev = ini
        pos = ini
        while pos < end:
            cpt = cpts[pos]
            f = flags[pos]
            if cpt == _APOS and pos + 1 < end:  # (?i:'s|'t|'re|'ve|'m|'ll|'d)
                nxt = U.tolower(cpts[pos + 1])
                if nxt in _ONE_CHAR_CONTRACTIONS:
                    pos += 2
                    out.append(pos - prev)
                    prev = pos
                    continue
                if pos + 2 < end and (nxt, U.tolower(cpts[pos + 2])) in _TWO_CHAR_CONTRACTIONS:
                    pos += 3
                    out.append(pos - prev)
                    prev = pos
                    continue
            if not (cpt == _CR or cpt == _LF or f & N):  # [^\r\n\p{L}\p{N}]?\p{L}+
                if f & word or fl(pos + 1) & word:
                    pos += 1
                    while fl(pos) & word:
                        pos += 1
                    out.append(pos - prev)
                    prev = pos
                    continue
            if f & N:
                if variant == "llama3":  # \p{N}{1,3}
                    ini_n = pos
                    while fl(pos) & N:
                        pos += 1
                        if pos - ini_n >= 3:
                            out.append(pos - prev)
                            prev = pos
                            ini_n = pos
                    if pos > prev:
                        out.append(pos - prev)
                    prev = pos
                else:  # \p{N}
                    pos += 1
                    out.append(pos - prev)
                    prev = pos
                continue
            f2 = fl(pos + 1) if cpt == _SPACE else f
            if not (f2 & not_punct) and f:  # ' ?[^\s\p{L}\p{N}]+[\r\n]*'
                pos += cpt == _SPACE
                while not (f2 & not_punct) and f2:
                    pos += 1
                    f2 = fl(pos)
                c2 = cp(pos)
                while c2 == _CR or c2 == _LF:
                    pos += 1
                    c2 = cp(pos)
                out.append(pos - prev)
                prev = pos
                continue
            nws = 0
            last_rn = 0
            while fl(pos + nws) & W:
                c2 = cp(pos + nws)
                if c2 == _CR or c2 == _LF:
                    last_rn = pos + nws + 1
                nws += 1
            if last_rn > 0:  # \s*[\r\n]+
                pos = last_rn
            elif nws > 1 and cp(pos + nws) != _OUT:  # \s+(?!\S)
                pos += nws - 1
            elif nws > 0:  # \s+
                pos += nws
            else:
                pos += 1
            if pos > prev:
                out.append(pos - prev)
            prev = pos
    return out


def _split_custom_newlines(cpts: Sequence[int], offsets: List[int]) -> List[int]:
    """unicode_regex_split_custom_newlines: runs of '\\n' and runs of everything else."""
    out: List[int] = []
    start = 0
    for offset in offsets:
        pos, end = start, start + offset
        start = end
        while pos < end:
            nl = cpts[pos] == _LF
            run = pos
            while pos < end and (cpts[pos] == _LF) == nl:
                pos += 1
            out.append(pos - run)
    return out


def regex_split(text: bytes, exprs: Sequence[str]) -> Tuple[List[int], List[int]]:
    """(code points of `text`, piece lengths in code points) after applying `exprs` in turn."""
    cpts = U.cpts_from_utf8(text)
    flags = [U.cpt_flags(c) for c in cpts]
    offsets = [len(cpts)]
    collapsed: Optional[str] = None
    wide: Optional[str] = None
    for expr in exprs:
        custom = _CUSTOM.get(expr)
        if custom == "gpt2":
            offsets = _split_custom_gpt2(cpts, flags, offsets)
        elif custom in ("llama3", "qwen2", "qwen35"):
            offsets = _split_custom_llama3(cpts, flags, offsets, custom)
        elif custom == "newlines":
            offsets = _split_custom_newlines(cpts, offsets)
        elif _uses_categories(expr):
            if collapsed is None:
                collapsed = _collapsed_text(cpts, flags)
            offsets = _split_stl(collapsed, expr, offsets)
        else:
            if wide is None:
                wide = _wide_text(cpts, flags)
            offsets = _split_stl(wide, expr, offsets)
    return cpts, offsets


@lru_cache(maxsize=None)
def splitter_chain(exprs: Tuple[str, ...]) -> Optional[Tuple[str, ...]]:
    """The regex list `exprs` as a chain of `engine.SPLITTERS`, or None if one has no name."""
    chain = []
    for expr in exprs:
        if expr == "\\p{N}":  # std::regex on the collapsed text: one piece per digit
            chain.append("digit")
            continue
        custom = _CUSTOM.get(expr)
        if custom is None:
            return None
        chain.append(custom)
    return tuple(chain)


def pre_tokenize(
    text: bytes, exprs: Sequence[str], byte_encode: bool, engine: Optional[TokenizerEngine] = None
) -> List[str]:
    """Words for BPE (unicode_regex_split): GPT-2 byte-encoded text when `byte_encode`, else
    the words' UTF-8 bytes as str (decoded with surrogateescape, like the vocabulary).
    Runs on `engine` when given and every regex is one of its splitters."""
    if engine is not None:
        chain = splitter_chain(tuple(exprs))
        fast = engine.split(text, chain, byte_encode) if chain is not None else None
        if fast is not None:
            return fast
    cpts, offsets = regex_split(text, exprs)
    words: List[str] = []
    start = 0
    for offset in offsets:
        raw = U.cpts_to_utf8(cpts[start : start + offset])
        start += offset
        words.append(U.byte_encode(raw) if byte_encode else raw.decode("utf-8", "surrogateescape"))
    return words
