"""bitnet.llama_compat: a drop-in for llama-cpp-python's `llama_cpp` package.

    from bitnet.llama_compat import Llama          # was: from llama_cpp import Llama

The module tree mirrors llama_cpp's: `llama_cpp.X` is `bitnet.llama_compat.X`
(`llama`, `llama_chat_format`, ...). This package re-exports the public names of `llama`.
"""

from bitnet.llama_compat.llama import (
    BaseLlamaCache,
    Llama,
    LlamaCache,
    LlamaDiskCache,
    LlamaRAMCache,
    LlamaState,
    LlamaTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    MinTokensLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)

__all__ = [
    "Llama",
    "LlamaState",
    "LlamaTokenizer",
    "LogitsProcessor",
    "LogitsProcessorList",
    "StoppingCriteria",
    "StoppingCriteriaList",
    "MinTokensLogitsProcessor",
    "BaseLlamaCache",
    "LlamaCache",
    "LlamaRAMCache",
    "LlamaDiskCache",
]
