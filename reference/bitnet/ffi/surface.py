"""The C API's surface: every function bitnet_ffi.h declares, where it is implemented and
what it returns when it fails.

A function is implemented in one of three places:
- C (`csrc/*.c`): defaults, name tables, batches, the sampler objects, aliases, the runtime;
- UNSUPPORTED (below): a generated C stub that returns llama.cpp's documented failure value
  and sets the last error - the features this CPU engine cannot honour (docs/COMPATIBILITY.md
  lists them; tests/test_capi_surface.py checks that list against this table);
- Python (`bitnet.ffi.capi`): everything else, behind a generated C wrapper that starts the
  interpreter and passes structs by pointer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
HEADER = HERE / "include" / "bitnet_ffi.h"
CSRC = HERE / "csrc"

INT32_MIN = -(2**31)


@dataclass(frozen=True)
class Param:
    type: str  # e.g. "const char *", "struct llama_context_params"
    name: str


@dataclass(frozen=True)
class Function:
    name: str
    ret: str
    params: Tuple[Param, ...]

    @property
    def by_value_structs(self) -> List[int]:
        """Indices of parameters passed as structs by value."""
        return [i for i, p in enumerate(self.params) if is_struct_value(p.type)]

    @property
    def returns_struct(self) -> bool:
        return is_struct_value(self.ret)


def is_struct_value(ctype: str) -> bool:
    return ctype.startswith("struct ") and "*" not in ctype or ctype in STRUCT_TYPEDEFS


# typedef names of structs used by value in the header
STRUCT_TYPEDEFS = {"llama_batch", "llama_model_quantize_params", "llama_sampler_chain_params"}


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", re.sub(r"//[^\n]*", " ", text), flags=re.S)


def _param(decl: str) -> Param:
    decl = " ".join(decl.split())
    m = re.match(r"^(.*?)(\w+)$", decl)
    if m is None or not m.group(1).strip():
        raise ValueError(f"cannot parse parameter {decl!r}")
    ctype = m.group(1).strip()
    ctype = re.sub(r"\s*\*\s*", " *", ctype).replace("* *", "**").strip()
    return Param(ctype.replace(" *", " *"), m.group(2))


def header_text() -> str:
    """bitnet_ffi.h with its parts (`#include "bitnet_ffi_*.h"`) inlined."""

    def inline(m: re.Match[str]) -> str:
        return (HEADER.parent / m.group(1)).read_text()

    return re.sub(r'^#include "(bitnet_ffi_\w+\.h)"$', inline, HEADER.read_text(), flags=re.M)


def parse_header(text: Optional[str] = None) -> Dict[str, Function]:
    """name -> Function for every LLAMA_API declaration of bitnet_ffi.h and its parts (their
    own consistent style: `LLAMA_API <ret> <name>(<params>);`, no function-pointer
    parameters)."""
    src = _strip_comments(header_text() if text is None else text)
    src = src.replace("BITNET_FFI_TOKENIZER_", "struct llama_vocab")
    out: Dict[str, Function] = {}
    for m in re.finditer(r"LLAMA_API\s+([^;{}()]*?)\b(\w+)\s*\(([^;{}]*?)\)\s*;", src):
        ret = " ".join(m.group(1).split())
        ret = re.sub(r"\s*\*", " *", ret).strip()
        raw = m.group(3).strip()
        params = () if raw in ("", "void") else tuple(_param(p) for p in raw.split(","))
        out[m.group(2)] = Function(m.group(2), ret, params)
    return out


def c_implemented() -> List[str]:
    """Names of the functions defined in csrc/*.c (including the alias macros' expansions)."""
    names: List[str] = []
    for path in sorted(CSRC.glob("*.c")):
        text = re.sub(r"^#define(?:[^\n]*\\\n)*[^\n]*$", "", _strip_comments(path.read_text()),
                      flags=re.M)
        names += re.findall(r"LLAMA_API\s+[^;{}()]*?\b(\w+)\s*\([^;{}]*\)\s*\{", text)
        names += re.findall(r"^TOKEN_ALIAS2?\(\s*[^,]+,\s*(\w+)\s*,", text, flags=re.M)
        names += ["bitnet_model_" + n for n in
                  re.findall(r"^MODEL_FORM2?\(\s*[^,]+,\s*(\w+)\s*,", text, flags=re.M)]
    return names


# name -> (C failure value, why it is not supported). llama.cpp's documented failure values.
UNSUPPORTED: Dict[str, Tuple[str, str]] = {
    "llama_model_init_from_user": ("NULL", "models from user-supplied tensors are not supported"),
    "llama_model_load_from_file_ptr": ("NULL", "loading from a FILE* is not supported (use a path)"),
    "llama_adapter_lora_init": ("NULL", "LoRA adapters are not supported"),
    "llama_adapter_lora_init_from_file_ptr": ("NULL", "LoRA adapters are not supported"),
    "llama_adapter_meta_val_str": ("-1", "LoRA adapters are not supported"),
    "llama_adapter_meta_count": ("-1", "LoRA adapters are not supported"),
    "llama_adapter_meta_key_by_index": ("-1", "LoRA adapters are not supported"),
    "llama_adapter_meta_val_str_by_index": ("-1", "LoRA adapters are not supported"),
    "llama_adapter_get_alora_n_invocation_tokens": ("0", "LoRA adapters are not supported"),
    "llama_adapter_get_alora_invocation_tokens": ("NULL", "LoRA adapters are not supported"),
    "llama_sampler_init_grammar": ("NULL", "grammars are not supported (the spec's truth table: "
                                   "not planned; use the constraints API)"),
    "llama_sampler_init_grammar_lazy": ("NULL", "grammars are not supported (the spec's truth "
                                        "table: not planned; use the constraints API)"),
    "llama_sampler_init_grammar_lazy_patterns": ("NULL", "grammars are not supported (the spec's "
                                                 "truth table: not planned; use the constraints API)"),
    "llama_sampler_init_adaptive_p": ("NULL", "the adaptive-p sampler is not supported"),
    "llama_sampler_init_infill": ("NULL", "the infill sampler is not supported"),
    "llama_set_sampler": ("false", "backend sampling is not supported"),
    "llama_batch_ext_add_embd": ("-2", "embedding input is not supported"),
    "llama_batch_ext_set_embd_token": ("false", "embedding input is not supported"),
    "llama_memory_seq_div": ("", "dividing positions (merging cells) is not supported"),
    "llama_opt_init": ("", "training is not supported"),
    "llama_opt_epoch": ("", "training is not supported"),
}

# C parts that fail for everything but a trivial argument (documented with the list above)
PARTIAL: Dict[str, str] = {
    "llama_set_adapters_lora": "returns -1 unless n_adapters == 0",
    "llama_set_adapter_cvec": "returns -1 unless data == NULL (clear)",
    "llama_adapter_lora_free": "no adapter can exist: NULL is a no-op, anything else -9",
    "llama_batch_init": "embd != 0 (embedding input) gives an empty batch",
    "llama_model_load_from_splits": "one path only",
    "llama_sampler_init_dry": "disabled settings only (the empty \"?dry\" sampler); enabled: NULL",
    "llama_set_causal_attn": "false (non-causal attention) has no effect and sets -1",
    "llama_load_mode_from_str": "an unknown name gives LLAMA_LOAD_MODE_AUTO and -1 (llama.cpp throws)",
}

# failure values of the Python-implemented functions that differ from the type's default
FAILURE: Dict[str, str] = {
    "llama_tokenize": "INT32_MIN",
    "llama_token_to_piece": "INT32_MIN",
    "llama_detokenize": "INT32_MIN",
    "llama_eval": "1",
    "llama_decode": "-1",
    "llama_encode": "-1",
    "llama_model_quantize": "1",
    "llama_model_meta_val_str": "-1",
    "llama_model_meta_count": "-1",
    "llama_model_meta_key_by_index": "-1",
    "llama_model_meta_val_str_by_index": "-1",
    "llama_model_desc": "-1",
    "llama_chat_apply_template": "-1",
    "llama_sampler_chain_n": "-1",
    "llama_sampler_get_seed": "LLAMA_DEFAULT_SEED",
    "llama_vocab_type": "LLAMA_VOCAB_TYPE_NONE",
    "llama_model_rope_type": "LLAMA_ROPE_TYPE_NONE",
    "llama_pooling_type": "LLAMA_POOLING_TYPE_UNSPECIFIED",
    "llama_model_ftype": "LLAMA_FTYPE_GUESSED",
    "llama_vocab_get_attr": "LLAMA_TOKEN_ATTR_UNDEFINED",
    "llama_vocab_get_score": "0.0f",
}


def failure_value(fn: Function) -> str:
    """The C expression a Python-implemented function returns when it fails ('' for void)."""
    if fn.name in FAILURE:
        return FAILURE[fn.name]
    ret = fn.ret
    if ret == "void":
        return ""
    if ret.endswith("*"):
        return "NULL"
    if ret == "bool":
        return "false"
    if ret in ("llama_token", "llama_pos"):
        return "-1"
    if ret.startswith("enum "):
        return "0"
    if is_struct_value(ret):
        return "{0}"
    return "0"


def python_value(c_value: str) -> object:
    """The Python value of a failure expression (what bitnet.ffi.capi returns into C)."""
    table = {"NULL": None, "false": False, "true": True, "INT32_MIN": INT32_MIN,
             "LLAMA_DEFAULT_SEED": 0xFFFFFFFF, "LLAMA_VOCAB_TYPE_NONE": 0,
             "LLAMA_ROPE_TYPE_NONE": -1, "LLAMA_POOLING_TYPE_UNSPECIFIED": -1,
             "LLAMA_FTYPE_GUESSED": 1024, "LLAMA_TOKEN_ATTR_UNDEFINED": 0, "0.0f": 0.0}
    if c_value in table:
        return table[c_value]
    return int(c_value)


def python_implemented(functions: Optional[Dict[str, Function]] = None) -> Dict[str, Function]:
    """The functions bitnet.ffi.capi implements: the header minus C and UNSUPPORTED."""
    functions = parse_header() if functions is None else functions
    in_c = set(c_implemented())
    return {n: f for n, f in functions.items() if n not in in_c and n not in UNSUPPORTED}
