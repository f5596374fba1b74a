"""bitnet.numerics: llama.cpp's CPU float order, op by op (the reference of the default bits).

`PeerBackend` (in `backend`) is a `bitnet.ops.Backend` whose every op rounds as llama.cpp
0.3.36's x86 CPU backend does. The modules, from the bottom up:

    floats       fma, horizontal sums, ggml_v_expf, libm: single SIMD steps
    activations  quantize_row_q8_0 / q8_1 / q8_K (the matmul inputs)
    codes        a quantized weight as integer codes + scales
    intsums      exact integer partial sums (which products share a SIMD lane)
    dots32       Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 matmul orders (vec_dot / tinyBLAS_Q0, q4_0_8x8)
    dotsk        Q4_K Q5_K Q6_K TQ1_0 TQ2_0 (and I2_S) orders (vec_dot, tiled, q4_K_8x8)
    floatdot     F16 / F32 dot products (tinyBLAS, vec_dot_f16 / _f32)
    flash        flash attention (ggml_flash_attn_ext: one-chunk, tiled, split-KV paths)
    matmul       which kernel llama.cpp picks for a matmul
    backend      PeerBackend: the ops of a forward pass
    build        which llama.cpp builds these orders describe

Each function's docstring states its float order and the llama.cpp symbol it mirrors.
Nothing here imports the C kernels (bitnet_kernels) or cffi.
"""

from bitnet.numerics.backend import PeerBackend, plain_weights
from bitnet.numerics.build import emulates_llamacpp_build
from bitnet.numerics.floatdot import f16_dot
from bitnet.numerics.floats import v_expf
from bitnet.numerics.matmul import EXACT_TYPES, kernel_name, quantized_matmul

__all__ = [
    "EXACT_TYPES", "PeerBackend", "emulates_llamacpp_build", "f16_dot", "kernel_name", "plain_weights",
    "quantized_matmul", "v_expf",
]
