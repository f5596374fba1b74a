"""bitnet.llama_compat: a drop-in for llama-cpp-python's `llama_cpp` package.

    from bitnet.llama_compat import Llama          # was: from llama_cpp import Llama

The module tree mirrors llama_cpp 0.3.36's: `llama_cpp.X` is `bitnet.llama_compat.X`
(`llama`, `llama_types`, `llama_chat_format`, `llama_grammar`, `llama_speculative`,
`llama_tokenizer`, `llama_cache`, and `llama_cpp` for the LLAMA_* / GGML_* constants). This
package re-exports the constants and the public names of `llama`, as llama_cpp does; the
low-level ctypes functions of `llama_cpp.llama_cpp` are not provided (the C API of this
project is `bitnet_ffi.h`). `__version__` is the llama-cpp-python API version mirrored.
"""

from bitnet.llama_compat.llama import *  # noqa: F403
from bitnet.llama_compat.llama import (  # noqa: F401 (explicit for readers and type checkers)
    BaseLlamaCache,
    BaseLlamaTokenizer,
    Llama,
    LlamaCache,
    LlamaDiskCache,
    LlamaDraftModel,
    LlamaGrammar,
    LlamaRAMCache,
    LlamaState,
    LlamaTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    MinTokensLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)
from bitnet.llama_compat.llama_cpp import *  # noqa: F403

__version__ = "0.3.36"
