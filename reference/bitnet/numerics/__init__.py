"""bitnet.numerics: llama.cpp's CPU float order, op by op (the reference of the default bits).

`PeerBackend` (in `peer`) is a `bitnet.ops.Backend` whose every op rounds as llama.cpp
0.3.36's CPU backend does; the building blocks (`v_expf`, `f16_dot`, ...) are exported for
tests that compare single ops.
"""

from bitnet.numerics.peer import (
    PeerBackend,
    emulates_llamacpp_build,
    f16_dot,
    int8_block_matmul,
    peer_backend_available,
    quantize_q8_simd,
    reduce_add_16,
    v_expf,
)

__all__ = [
    "PeerBackend", "emulates_llamacpp_build", "f16_dot", "int8_block_matmul", "peer_backend_available",
    "quantize_q8_simd", "reduce_add_16", "v_expf",
]
