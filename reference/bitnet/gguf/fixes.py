"""Auto-repair of GGUF metadata, applied in memory at load (never to the user's file).

Each repair is a `Fix(key, old, new, reason, as_llama_cpp)`; `apply_fixes` returns them so
users see what changed (`GGUFFile.fixes`, `bitnet inspect`, and the `bitnet.gguf` logger:
INFO for a repair that gives the behaviour llama.cpp has on the same file (its default for a
missing key), WARNING for one that changes behaviour compared with llama.cpp). Notes
(`Note`, a str) carry the same flag. The contract's list:

1. missing `tokenizer.ggml.pre` on a gpt2 vocabulary: detected from the vocabulary itself
   (fingerprints of the vocabularies llama.cpp ships, then special-token heuristics); only
   when nothing matches, llama.cpp's 'default' with a warning saying so;
2. missing `tokenizer.ggml.add_space_prefix`: llama.cpp's default for the tokenizer model;
3. missing `tokenizer.ggml.byte_fallback`: inferred from the presence of `<0xNN>` tokens;
4. missing BOS/EOS/PAD/UNK ids: inferred from token text and token type, never outside the
   vocabulary, nothing guessed when nothing fits;
5. vocabulary size mismatch (`{arch}.vocab_size` or token_embd rows vs the token count):
   a warning; the model stays usable (logits keep the embedding's row count).

Known limit of (1): qwen2 and qwen35 share a byte-identical vocabulary; the detector picks
qwen35 only when the architecture says so (`general.architecture` starting with 'qwen35'),
otherwise qwen2, and says so in the fix's reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

PRE_KEY = "tokenizer.ggml.pre"
MODEL_KEY = "tokenizer.ggml.model"
TOKENS_KEY = "tokenizer.ggml.tokens"
TYPES_KEY = "tokenizer.ggml.token_type"
MERGES_KEY = "tokenizer.ggml.merges"
ADD_SPACE_PREFIX_KEY = "tokenizer.ggml.add_space_prefix"
BYTE_FALLBACK_KEY = "tokenizer.ggml.byte_fallback"

# llama.cpp token types (llama_token_type)
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_UNKNOWN = 2
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
TOKEN_TYPE_BYTE = 6

# sha256 of the first FINGERPRINT_MERGES merges (joined by '\n'), first 16 hex digits ->
# pre-tokenizer. Computed from llama.cpp's ggml-vocab-*.gguf files and SmolLM2; regenerate
# with `bitnet.gguf.fixes.merges_fingerprint(kv[MERGES_KEY])`. Fine-tunes that append tokens
# keep their merges, so the fingerprint survives them.
FINGERPRINT_MERGES = 2000
MERGES_FINGERPRINTS: Dict[str, str] = {
    "d261d32825af55a8": "gpt-2",
    "7bc86d6579db7763": "mpt",  # gpt-neox-20b's vocabulary; MPT ships it
    "e10f8d1517af48ca": "llama-bpe",
    "23d2360f0cfbeb3f": "command-r",
    "dc3bc751adf931ae": "deepseek-coder",
    "06cdc60957ab25cf": "deepseek-llm",
    "c2ba2f0fe27cc849": "falcon",
    "1c87735c16ab33e8": "qwen2",  # also qwen35's (see module docstring)
    "10a1e201052b6ddf": "refact",
    "fd300098a50d229d": "starcoder",
    "c57da79ac92a2575": "smollm",
}

# Special-token texts that identify a vocabulary family when the fingerprint is unknown
# (e.g. a model that retrained a few merges). Checked in order; first hit wins.
SPECIAL_TOKEN_HINTS: Sequence[Tuple[str, str]] = (
    ("<|begin_of_text|>", "llama-bpe"),
    ("<|END_OF_TURN_TOKEN|>", "command-r"),
    ("<|im_start|>", "qwen2"),
    ("<｜begin▁of▁sentence｜>", "deepseek-llm"),
    (">>ABSTRACT<<", "falcon"),
)

# llama.cpp's add_space_prefix default per tokenizer model (llama_vocab::impl::load)
ADD_SPACE_PREFIX_DEFAULTS: Dict[str, bool] = {
    "llama": True, "gpt2": False, "bert": False, "t5": False, "rwkv": False, "gemma4": False,
}

SPECIAL_ID_CANDIDATES: Dict[str, Sequence[str]] = {
    "tokenizer.ggml.bos_token_id": (
        "<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", "<BOS_TOKEN>", "[CLS]",
        "<｜begin▁of▁sentence｜>", "<|endoftext|>"),
    "tokenizer.ggml.eos_token_id": (
        "</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<EOS_TOKEN>",
        "<｜end▁of▁sentence｜>", "<|im_end|>"),
    "tokenizer.ggml.padding_token_id": ("<pad>", "[PAD]", "<|pad|>", "<PAD>", "<|padding|>"),
    "tokenizer.ggml.unknown_token_id": ("<unk>", "[UNK]", "<|unk|>", "<UNK>"),
}

# llama.cpp's own default ids per tokenizer model when the key is missing (None: no token).
# A default that lands on a plausible special token is kept, so such files behave exactly as
# in llama.cpp; gpt2's default 11 is usually an ordinary token (',' in GPT-2), so it is not.
LLAMA_DEFAULT_IDS: Dict[str, Dict[str, Optional[int]]] = {
    "llama": {"bos": 1, "eos": 2, "unknown": 0, "padding": None},
    "bert": {"bos": 101, "eos": None, "unknown": 100, "padding": 0},
    "gpt2": {"bos": 11, "eos": 11, "unknown": None, "padding": None},
    "t5": {"bos": None, "eos": 1, "unknown": 2, "padding": 0},
}
# roles a tokenizer model has no use for: left alone, as llama.cpp leaves them
UNUSED_ROLES: Dict[str, Sequence[str]] = {"bert": ("eos",), "t5": ("bos",)}


@dataclass(frozen=True)
class Fix:
    """One in-memory repair: `key` went from `old` (None: missing) to `new`, and why;
    `as_llama_cpp`: llama.cpp behaves as if it had this value (its default for the key)."""

    key: str
    old: Any
    new: Any
    reason: str
    as_llama_cpp: bool = False

    def __str__(self) -> str:
        return f"{self.key}: {self.old!r} -> {self.new!r} ({self.reason})"


class Note(str):
    """A remark about a file's metadata (a str); `as_llama_cpp`: llama.cpp does the same."""

    as_llama_cpp: bool = False

    def __new__(cls, text: str, as_llama_cpp: bool = False) -> Note:
        note = super().__new__(cls, text)
        note.as_llama_cpp = as_llama_cpp
        return note


def merges_fingerprint(merges: Sequence[str]) -> str:
    """Stable id of a BPE vocabulary: sha256 of its first merges, 16 hex digits."""
    head = "\n".join(merges[:FINGERPRINT_MERGES]).encode("utf-8", "surrogateescape")
    return hashlib.sha256(head).hexdigest()[:16]


def detect_pre_tokenizer(kv: Dict[str, Any]) -> Tuple[Optional[str], str]:
    """(pre-tokenizer name or None, how it was found) for a gpt2 vocabulary."""
    merges = kv.get(MERGES_KEY) or []
    tokens = kv.get(TOKENS_KEY) or []
    if merges:
        name = MERGES_FINGERPRINTS.get(merges_fingerprint(merges))
        if name == "qwen2" and str(kv.get("general.architecture", "")).startswith("qwen35"):
            return "qwen35", "merges fingerprint of the Qwen vocabulary + qwen35 architecture"
        if name == "qwen2":
            return name, ("merges fingerprint of the Qwen vocabulary (qwen35 shares it; "
                          "architecture is not qwen35)")
        if name:
            return name, "merges fingerprint matches llama.cpp's vocabulary for it"
    present = set(tokens[-4096:]) | set(tokens[:512])
    for text, name in SPECIAL_TOKEN_HINTS:
        if text in present:
            if name == "deepseek-llm" and len(tokens) < 50000:
                name = "deepseek-coder"
            return name, f"special token {text!r} identifies the family"
    return None, "no fingerprint or special-token hint matched"


def _token_types(kv: Dict[str, Any], n: int) -> np.ndarray:
    types = kv.get(TYPES_KEY)
    if types is None or len(types) != n:
        return np.full(n, TOKEN_TYPE_NORMAL, dtype=np.int32)
    return np.asarray(types)


def _find_special(tokens: List[str], present: Set[str], types: np.ndarray,
                  candidates: Sequence[str]) -> Optional[int]:
    """First candidate present in the vocabulary (`present`: the set of `tokens`), special-typed
    tokens before normal ones."""
    special = (TOKEN_TYPE_CONTROL, TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_USER_DEFINED)
    hits = [tokens.index(text) for text in candidates if text in present]  # first occurrences
    for i in hits:
        if types[i] in special:
            return i
    return hits[0] if hits else None


def apply_fixes(kv: Dict[str, Any], tensor_rows: Optional[Dict[str, int]] = None
                ) -> Tuple[Dict[str, Any], List[Fix], List[str]]:
    """Repair `kv` in a copy. Returns (repaired kv, fixes applied, warnings).

    `tensor_rows` maps tensor names to their row counts (ne[1]) for the vocab-size check.
    """
    out = dict(kv)
    fixes: List[Fix] = []
    notes: List[str] = []  # Note instances
    model = out.get(MODEL_KEY)
    tokens = out.get(TOKENS_KEY)
    if model is None or not isinstance(tokens, list):
        return out, fixes, notes  # no vocabulary: nothing to repair

    def fix(key: str, new: Any, reason: str, as_llama_cpp: bool) -> None:
        fixes.append(Fix(key, out.get(key), new, reason, as_llama_cpp))
        out[key] = new

    token_set: Optional[Set[str]] = None  # set(tokens), made when first needed

    # 1. pre-tokenizer (llama.cpp: 'default' with a warning when the key is missing)
    if model == "gpt2" and not out.get(PRE_KEY):
        name, how = detect_pre_tokenizer(out)
        if name is None:
            fix(PRE_KEY, "default", f"{how}: falling back to llama.cpp's 'default' "
                "pre-tokenizer; tokenization may differ from the original model's", True)
            notes.append(Note(f"could not detect {PRE_KEY}: {how}; using 'default' "
                              "(tokenization quality may be degraded)"))
        else:
            fix(PRE_KEY, name, f"detected: {how}", False)

    # 2. add_space_prefix
    if ADD_SPACE_PREFIX_KEY not in out and model in ADD_SPACE_PREFIX_DEFAULTS:
        fix(ADD_SPACE_PREFIX_KEY, ADD_SPACE_PREFIX_DEFAULTS[model],
            f"llama.cpp's default for tokenizer model '{model}'", True)

    # 3. byte_fallback (llama.cpp reads no such key: it falls back to <0xNN> tokens exactly
    #    when they exist, which is what this value says)
    if BYTE_FALLBACK_KEY not in out:
        token_set = set(tokens)
        byte_tokens = sum(f"<0x{b:02X}>" in token_set for b in range(256))
        fix(BYTE_FALLBACK_KEY, byte_tokens == 256,
            f"{byte_tokens} of the 256 <0xNN> byte tokens are in the vocabulary", True)

    # 4. special token ids
    n = len(tokens)
    types = _token_types(out, n)
    defaults = LLAMA_DEFAULT_IDS.get(str(model), {})
    for key, candidates in SPECIAL_ID_CANDIDATES.items():
        role = key[len("tokenizer.ggml."):-len("_token_id")]
        current = out.get(key)
        if current is not None:
            if not 0 <= int(current) < n:
                notes.append(Note(f"{key} = {current} is outside the vocabulary (0..{n - 1})"))
            continue
        if role in UNUSED_ROLES.get(str(model), ()):
            continue
        default = defaults.get(role)
        if default is not None and 0 <= default < n and tokens[default] in candidates:
            fix(key, default, f"llama.cpp's default for '{model}', token {tokens[default]!r}",
                True)
            continue
        if token_set is None:
            token_set = set(tokens)
        found = _find_special(tokens, token_set, types, candidates)
        if found is None:
            notes.append(Note(f"{key} is missing and no token text fits it; left unset",
                              as_llama_cpp=default is None))
            continue
        fix(key, found, f"token {found} is {tokens[found]!r}", found == default)

    # 5. vocabulary size mismatches (warning only)
    arch = out.get("general.architecture")
    declared = out.get(f"{arch}.vocab_size") if arch else None
    if declared is not None and int(declared) != n:
        notes.append(Note(f"{arch}.vocab_size = {declared} but the vocabulary has {n} tokens; "
                          "using the token list"))
    rows = (tensor_rows or {}).get("token_embd.weight")
    if rows is not None and rows != n:
        notes.append(Note(
            f"token_embd.weight has {rows} rows but the vocabulary has {n} tokens; "
            f"logits keep {rows} entries, ids >= {n} are never produced by the tokenizer"
            if rows > n else
            f"token_embd.weight has {rows} rows but the vocabulary has {n} tokens; "
            f"ids >= {rows} cannot be embedded"))
    return out, fixes, notes
