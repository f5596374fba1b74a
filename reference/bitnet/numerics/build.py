"""Which llama.cpp builds `PeerBackend` reproduces bit for bit."""

from __future__ import annotations

_REQUIRED = ("AVX512 = 1", "FMA = 1", "REPACK = 1")


def emulates_llamacpp_build(system_info: str) -> bool:
    """True when the llama.cpp CPU build described by `system_info` (the text of
    llama_print_system_info()) runs the code paths `PeerBackend` reproduces: x86 AVX-512
    (16-lane ggml_v_expf, tinyBLAS<16> and vec_dot_f16), FMA (the fused and contracted
    steps), the CPU_REPACK buffer (Q4_0 / Q4_K kernels), and no AMX tiles (which would take
    the quantized matmuls).

    AVX512-FP16 (a -march=native build on a CPU with it; llama-cpp-python's cmake flags
    never enable it) changes only GGML_F16_VEC arithmetic, which llama.cpp uses in
    flash attention's F16 accumulators (ggml_vec_mad_f16 / ggml_vec_scale_f16), not
    emulated here and off by default: F16 dot products accumulate in float32 the same
    way with it or without. So it does not matter, whatever /proc/cpuinfo says."""
    return all(flag in system_info for flag in _REQUIRED) and "AMX_INT8 = 1" not in system_info
