"""Tokenizers: every vocabulary type llama.cpp ships (SPM, byte-level BPE with its
pre-tokenizers, WPM, UGM, Gemma 4's BPE), llama.cpp-exact, plus tiktoken rank files.

    from bitnet.tokenizers import load
    tok = load("model.gguf")            # or "cl100k_base.tiktoken"
    ids = tok.tokenize(b"Hello world", add_special=True, parse_special=False)
    tok.detokenize(ids)                 # llama_detokenize semantics

Pure Python unless built with ``engine=`` (`engine.TokenizerEngine`: the hot loops on another
implementation, e.g. `bitnet.runtime.tokenizer_engine()`, the C one when built).
"""

from bitnet.tokenizers.differential import Mismatch, compare_with_llamacpp
from bitnet.tokenizers.engine import TokenizerEngine
from bitnet.tokenizers.gguf_tokenizer import GGUFTokenizer
from bitnet.tokenizers.loader import Tokenizer, from_gguf_kv, load
from bitnet.tokenizers.pretokenizers import SUPPORTED_PRE_TOKENIZERS
from bitnet.tokenizers.tiktoken_file import TiktokenTokenizer
from bitnet.tokenizers.vocab import SUPPORTED_MODEL_TYPES, Vocab

__all__ = [
    "load",
    "from_gguf_kv",
    "Tokenizer",
    "TokenizerEngine",
    "GGUFTokenizer",
    "TiktokenTokenizer",
    "Vocab",
    "SUPPORTED_PRE_TOKENIZERS",
    "SUPPORTED_MODEL_TYPES",
    "compare_with_llamacpp",
    "Mismatch",
]
