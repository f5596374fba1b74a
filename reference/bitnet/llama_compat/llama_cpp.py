"""The `LLAMA_*` / `GGML_*` constants of `llama_cpp.llama_cpp`, with llama.cpp's values.

llama-cpp-python's `llama_cpp.llama_cpp` is its ctypes binding of llama.h: enum values plus
the C functions and structs. This module mirrors the values (so `type_k=GGML_TYPE_Q8_0`,
`pooling_type=LLAMA_POOLING_TYPE_MEAN`, `LLAMA_DEFAULT_SEED` work unchanged) and leaves out
the C functions, structs and pointer types: the C API of this project is `bitnet_ffi.h`
(see docs/COMPATIBILITY.md, "Python API", for the exception list).

`GGML_TYPE_*` derive from `bitnet.ggml_types.GGMLType` (the one type table; I2_S, bitnet.cpp's
id 36, and BF16 / TQ1_0 / TQ2_0 come along), `GGML_TYPE_COUNT` is llama.cpp's. Every other
value is written as llama.h declares it; tests/test_llama_api_surface.py compares each with
the installed llama_cpp.
"""

from __future__ import annotations

from typing import Dict

from bitnet.ggml_types import GGMLType


def _enum(prefix: str, names: str, start: int = 0) -> Dict[str, int]:
    """C enum numbering: `names` (whitespace-separated; NAME=V restarts at V) from `start`."""
    out: Dict[str, int] = {}
    value = start
    for item in names.split():
        name, _, explicit = item.partition("=")
        if explicit:
            value = int(explicit, 0)
        out[prefix + name] = value
        value += 1
    return out


_CONSTANTS: Dict[str, int] = {}
_CONSTANTS.update({f"GGML_TYPE_{t.name}": int(t) for t in GGMLType})
_CONSTANTS["GGML_TYPE_COUNT"] = 43  # ggml.h: one past GGML_TYPE_Q2_0 (42)

# llama.h defines
_CONSTANTS.update(
    LLAMA_MAX_DEVICES=16,
    LLAMA_DEFAULT_SEED=0xFFFFFFFF,
    LLAMA_TOKEN_NULL=-1,
    LLAMA_FILE_MAGIC_GGLA=0x67676C61,  # 'ggla'
    LLAMA_FILE_MAGIC_GGSN=0x6767736E,  # 'ggsn'
    LLAMA_FILE_MAGIC_GGSQ=0x67677371,  # 'ggsq'
    LLAMA_SESSION_MAGIC=0x6767736E,
    LLAMA_SESSION_VERSION=10,
    LLAMA_STATE_SEQ_MAGIC=0x67677371,
    LLAMA_STATE_SEQ_VERSION=3,
    LLAMA_STATE_SEQ_FLAGS_NONE=0,
    LLAMA_STATE_SEQ_FLAGS_SWA_ONLY=1,
    LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY=1,
    LLAMA_STATE_SEQ_FLAGS_ON_DEVICE=2,
)

# llama.h enums, in declaration order
_CONSTANTS.update(_enum("LLAMA_VOCAB_TYPE_", "NONE SPM BPE WPM UGM RWKV PLAMO2 TEST"))
_CONSTANTS.update(_enum(
    "LLAMA_VOCAB_PRE_TYPE_",
    "DEFAULT LLAMA3 DEEPSEEK_LLM DEEPSEEK_CODER FALCON MPT STARCODER GPT2 REFACT COMMAND_R "
    "STABLELM2 QWEN2 OLMO DBRX SMAUG PORO CHATGLM3 CHATGLM4 VIKING JAIS TEKKEN SMOLLM "
    "CODESHELL BLOOM GPT3_FINNISH EXAONE CHAMELEON MINERVA DEEPSEEK3_LLM GPT4O SUPERBPE "
    "TRILLION BAILINGMOE LLAMA4 PIXTRAL SEED_CODER",
))
for _prefix in ("LLAMA_ROPE_TYPE_", "GGML_ROPE_TYPE_"):
    _CONSTANTS.update({_prefix + k: v for k, v in
                       dict(NEOX=2, MROPE=8, IMROPE=40, VISION=24).items()})
_CONSTANTS.update(LLAMA_ROPE_TYPE_NONE=-1, LLAMA_ROPE_TYPE_NORM=0)
_CONSTANTS.update(_enum("LLAMA_TOKEN_TYPE_",
                        "UNDEFINED NORMAL UNKNOWN CONTROL USER_DEFINED UNUSED BYTE"))
_CONSTANTS["LLAMA_TOKEN_ATTR_UNDEFINED"] = 0
_CONSTANTS.update({f"LLAMA_TOKEN_ATTR_{name}": 1 << bit for bit, name in enumerate(
    "UNKNOWN UNUSED NORMAL CONTROL USER_DEFINED BYTE NORMALIZED LSTRIP RSTRIP SINGLE_WORD".split())})
_CONSTANTS.update(_enum(
    "LLAMA_FTYPE_",
    "ALL_F32 MOSTLY_F16 MOSTLY_Q4_0 MOSTLY_Q4_1 MOSTLY_Q8_0=7 MOSTLY_Q5_0 MOSTLY_Q5_1 "
    "MOSTLY_Q2_K MOSTLY_Q3_K_S MOSTLY_Q3_K_M MOSTLY_Q3_K_L MOSTLY_Q4_K_S MOSTLY_Q4_K_M "
    "MOSTLY_Q5_K_S MOSTLY_Q5_K_M MOSTLY_Q6_K MOSTLY_IQ2_XXS MOSTLY_IQ2_XS MOSTLY_Q2_K_S "
    "MOSTLY_IQ3_XS MOSTLY_IQ3_XXS MOSTLY_IQ1_S MOSTLY_IQ4_NL MOSTLY_IQ3_S MOSTLY_IQ3_M "
    "MOSTLY_IQ2_S MOSTLY_IQ2_M MOSTLY_IQ4_XS MOSTLY_IQ1_M MOSTLY_BF16 MOSTLY_TQ1_0=36 "
    "MOSTLY_TQ2_0 MOSTLY_MXFP4_MOE MOSTLY_NVFP4 MOSTLY_Q1_0 MOSTLY_Q2_0 GUESSED=1024",
))
_CONSTANTS.update(_enum("LLAMA_ROPE_SCALING_TYPE_", "UNSPECIFIED NONE LINEAR YARN LONGROPE", -1))
_CONSTANTS["LLAMA_ROPE_SCALING_TYPE_MAX_VALUE"] = _CONSTANTS["LLAMA_ROPE_SCALING_TYPE_LONGROPE"]
_CONSTANTS.update(_enum("LLAMA_POOLING_TYPE_", "UNSPECIFIED NONE MEAN CLS LAST RANK", -1))
_CONSTANTS.update(_enum("LLAMA_ATTENTION_TYPE_", "UNSPECIFIED CAUSAL NON_CAUSAL", -1))
_CONSTANTS.update(_enum("LLAMA_FLASH_ATTN_TYPE_", "AUTO DISABLED ENABLED", -1))
_CONSTANTS.update(_enum("LLAMA_SPLIT_MODE_", "NONE LAYER ROW TENSOR"))
_CONSTANTS.update(_enum("LLAMA_LOAD_MODE_", "AUTO NONE MMAP MLOCK MMAP_MLOCK DIRECT_IO", -1))
_CONSTANTS.update(_enum("LLAMA_LAZY_MODE_", "OFF AUTO ON"))
_CONSTANTS.update(_enum("LLAMA_CONTEXT_TYPE_", "DEFAULT MTP"))
_CONSTANTS.update(_enum("LLAMA_KV_OVERRIDE_TYPE_", "INT FLOAT BOOL STR"))
_CONSTANTS.update(_enum(
    "LLAMA_MODEL_META_KEY_SAMPLING_",
    "SEQUENCE TOP_K TOP_P MIN_P XTC_PROBABILITY XTC_THRESHOLD TEMP PENALTY_LAST_N "
    "PENALTY_REPEAT MIROSTAT MIROSTAT_TAU MIROSTAT_ETA",
))
_CONSTANTS.update(_enum("LLAMA_PROCESS_TYPE_", "ENCODE DECODE"))
_CONSTANTS.update(_enum("GGML_NUMA_STRATEGY_", "DISABLED DISTRIBUTE ISOLATE NUMACTL MIRROR COUNT"))

globals().update(_CONSTANTS)

# the names used in this package's signatures, spelled out for readers and type checkers
LLAMA_DEFAULT_SEED: int = _CONSTANTS["LLAMA_DEFAULT_SEED"]
LLAMA_SPLIT_MODE_LAYER: int = _CONSTANTS["LLAMA_SPLIT_MODE_LAYER"]
LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED: int = _CONSTANTS["LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED"]
LLAMA_POOLING_TYPE_UNSPECIFIED: int = _CONSTANTS["LLAMA_POOLING_TYPE_UNSPECIFIED"]
LLAMA_POOLING_TYPE_NONE: int = _CONSTANTS["LLAMA_POOLING_TYPE_NONE"]
LLAMA_POOLING_TYPE_MEAN: int = _CONSTANTS["LLAMA_POOLING_TYPE_MEAN"]
LLAMA_POOLING_TYPE_CLS: int = _CONSTANTS["LLAMA_POOLING_TYPE_CLS"]
LLAMA_POOLING_TYPE_LAST: int = _CONSTANTS["LLAMA_POOLING_TYPE_LAST"]
LLAMA_POOLING_TYPE_RANK: int = _CONSTANTS["LLAMA_POOLING_TYPE_RANK"]
LLAMA_ATTENTION_TYPE_UNSPECIFIED: int = _CONSTANTS["LLAMA_ATTENTION_TYPE_UNSPECIFIED"]
GGML_TYPE_F32: int = _CONSTANTS["GGML_TYPE_F32"]
GGML_TYPE_F16: int = _CONSTANTS["GGML_TYPE_F16"]

__all__ = sorted(_CONSTANTS)
