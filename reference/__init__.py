"""bitnet: BitNet b1.58 and llama-family GGUF inference, compatible with llama.cpp.

The reference implementation lives here (readable Python + numpy); `bitnet.optimized`
holds the C kernels and `bitnet.harness` the conformance runner.
"""

__version__ = "0.1.0"
