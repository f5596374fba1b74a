"""llama.cpp's sampler chain in numpy, token-for-token (src/llama-sampler.cpp).

Role: turn a logits vector into a token exactly as llama.cpp's CPU samplers do, so a seeded
generation picks the same tokens as llama.cpp / llama-cpp-python. A candidate list is a
`TokenDataArray` (mirror of `llama_token_data_array`); each sampler mutates it in place; a
`SamplerChain` runs them in order and `make_chain` builds the chain `Llama.sample()` builds.

Exactness, and how it is obtained:
- Order of equal logits. llama.cpp sorts with `std::partial_sort` / `std::sort` (and its own
  bucket pre-sort) and the order of ties depends on those algorithms. `libstdcxx` re-implements
  libstdc++'s introsort and heap selection (GCC 12, `bits/stl_algo.h`, `bits/stl_heap.h`) and
  they are used whenever ties could matter; when the values are distinct any correct sort gives
  the same result and numpy's is used.
- Float arithmetic. Sums run sequentially in the precision the C code uses (float, or double
  where it says double); `expf`, `logf`, `log2f`, `powf` and `exp` are glibc's (the functions
  libllama calls, `glibc`), reached through ctypes where numpy's own versions differ in the
  last bit.
- Randomness. `std::mt19937` seeded with the seed; `std::uniform_real_distribution` and
  `std::discrete_distribution` through libstdc++'s `generate_canonical` (two 32-bit draws per
  double, one per float).

llama.cpp's quirks are kept on purpose: its bucket pre-sort puts +inf and logits above ~3.4e8
in the lowest bucket (so a "sorted" array may not start with the maximum), temperature 0 keeps
only the first maximum, typical sampling turns NaN when a probability underflows to 0.

Modules: `candidates` (TokenDataArray, softmax, top-k, the bucket pre-sort), `samplers` (one
class per llama.cpp sampler), `chain` (SamplerChain, make_chain), and the C library emulation:
`glibc` (math), `libstdcxx` (mt19937, discrete_distribution, std::sort / std::partial_sort).
Every name is importable from `bitnet.sampling`.

Limits: NaN logits are not a supported input (llama.cpp's own result is then arbitrary); the
GPU/"backend" sampling path, grammar, DRY, infill and adaptive-p samplers are not mirrored. On a
platform without glibc the math functions fall back to correctly rounded float64 results, which
differ from glibc's in the last bit (measured: expf 0.07%, logf 0.7%, log2f 0.6% of inputs).
Speed (128k vocab, one token, 2-core box): ~15 ms with top-k first (the default chain); a few
hundred ms when the whole vocabulary must be sorted (top_k=0, mirostat), most of it in the
pure-Python libstdc++ sort, which runs only on buckets that contain equal logits.
"""

from __future__ import annotations

from bitnet.sampling.candidates import TokenDataArray, softmax, top_k
from bitnet.sampling.chain import SamplerChain, make_chain
from bitnet.sampling.glibc import expf
from bitnet.sampling.libstdcxx import MT19937, discrete_sample
from bitnet.sampling.samplers import (
    LLAMA_DEFAULT_SEED,
    XTC,
    Custom,
    Dist,
    Greedy,
    LogitBias,
    MinP,
    Mirostat,
    MirostatV2,
    Penalties,
    Sampler,
    Temp,
    TempExt,
    TopK,
    TopNSigma,
    TopP,
    Typical,
    rng_seed,
)

# the names the C API (bitnet.ffi) imports from here, kept
_rng_seed = rng_seed
_softmax = softmax
_top_k = top_k
_discrete_sample = discrete_sample

__all__ = [
    "LLAMA_DEFAULT_SEED",
    "MT19937",
    "TokenDataArray",
    "Sampler",
    "Greedy",
    "Dist",
    "TopK",
    "TopP",
    "MinP",
    "Typical",
    "Temp",
    "TempExt",
    "XTC",
    "TopNSigma",
    "Mirostat",
    "MirostatV2",
    "Penalties",
    "LogitBias",
    "Custom",
    "SamplerChain",
    "make_chain",
    "expf",
]
