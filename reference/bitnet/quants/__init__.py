"""Block layouts of the ggml tensor types: dequantize many, quantize some, in numpy.

Role: the readable definition of what the bytes of a GGUF tensor mean. Every type is one
small class registered by its ggml type id (`base.register`); it implements only the
block-level math (`dequantize_blocks`, optionally `quantize_blocks`) on arrays shaped
(n_blocks, ...), and the base class (`base.BlockType`) owns reshapes and size checks.
Block and byte sizes come from `bitnet.ggml_types.GGML_TYPES`; each class names the
llama.cpp struct and functions it mirrors (ggml/src/ggml-common.h, ggml/src/ggml-quants.c).

Exactness: dequantization performs the same float32 operations in the same order as
`dequantize_row_*` (so results are bit-identical to llama.cpp and to gguf-py); the
quantizers mirror the `quantize_row_*_ref` reference quantizers that llama.cpp uses when
writing model files (no importance matrix), float32 op for float32 op, so their bytes are
identical. Conversions of out-of-range floats to integers are undefined in C; where a
degenerate block (a scale that overflows to inf, e.g. all weights subnormal) reaches one,
these modules do what llama.cpp's x86-64 build does and say so next to the line.
NaN inputs to the quantizers are not mirrored (the C's running max then depends on how
the compiler vectorized the loop); the float conversions (F16, BF16) do handle NaN as ggml.

I2_S (type 36) is bitnet.cpp's ternary format: one float32 scale per *tensor*, stored
after all the packed 2-bit codes, so it overrides the tensor-level methods.

The k-quant quantizers (Q2_K..Q6_K) mirror `quantize_row_q*_K_ref` and the scale searches
they call (make_qkx2_quants, make_qx_quants, make_q3_quants) without an importance matrix,
as llama_model_quantize runs them.

Modules: `base` (the registry), `conversions` (fp16/bf16, C rounding and casts), the types
by family (`floats`, `blocks32`, `kquants` with the quantizer searches in `kquant_search`,
`ternary`), and `tensors` (whole tensors by type id, activation quantizers). Every public
name is importable from `bitnet.quants`.

Left out: the IQ* grid types, MXFP4/NVFP4, Q1_0/Q2_0, Q8_1 (raise UnsupportedError), and
the IQ quantizers.
"""

from __future__ import annotations

from bitnet.quants.base import BlockType, Buffer, block_type
from bitnet.quants.conversions import fp16_to_fp32, fp32_to_bf16_bits, fp32_to_fp16_bits
from bitnet.quants.tensors import (
    I8_ABSMAX_FLOOR,
    SUPPORTED_DEQUANT,
    SUPPORTED_QUANT,
    dequantize,
    dequantize_rows,
    quantize,
    quantize_activations_i8_per_token,
    quantize_activations_q8_k,
    row_nbytes,
)
from bitnet.quants.ternary import I2_S_ZERO_THRESHOLD

__all__ = [
    "Buffer",
    "SUPPORTED_DEQUANT",
    "SUPPORTED_QUANT",
    "BlockType",
    "block_type",
    "dequantize",
    "dequantize_rows",
    "quantize",
    "row_nbytes",
    "quantize_activations_q8_k",
    "quantize_activations_i8_per_token",
    "fp16_to_fp32",
    "fp32_to_fp16_bits",
    "fp32_to_bf16_bits",
    "I2_S_ZERO_THRESHOLD",
    "I8_ABSMAX_FLOOR",
]
