"""bitnet: BitNet b1.58 and llama-family GGUF inference, compatible with llama.cpp.

The reference implementation lives here (readable Python + numpy); `bitnet_kernels`
holds the C kernels and `bitnet_harness` the conformance runner.
"""

__version__ = "0.1.0"
