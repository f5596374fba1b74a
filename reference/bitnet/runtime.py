"""Where the API surfaces (Llama, the C API, the server, the CLI) pick their kernels.

The reference core (gguf, quants, tokenizers, ops, model, sampling, numerics) never imports
the C kernels: a model takes a `bitnet.ops.Backend` and a tokenizer an engine where they are
built. This module is the one place that chooses them:

- `make_backend(numerics)`: the Backend for a numerics mode, from the keyword or
  $BITNET_NUMERICS:
    "llama.cpp"  (the default) llama.cpp 0.3.36's CPU float order, its bits: the C kernels'
                 peer order (bitnet_kernels, activation_quant="peer"), or without them the
                 numpy reference of the same bits (bitnet.numerics.PeerBackend);
    "float"      unquantized float32 activations (the C float path, or NumpyBackend);
    "reference"  the numpy reference kernels (NumpyBackend, float activations).
  llama.cpp's bits also need llama.cpp's schedule: a prompt in n_batch evals, then one token
  per eval, as llama-cpp-python runs it (see bitnet.model.model).
- `tokenizer_engine()`: the C tokenizer engine when the kernels are built, else None (the
  pure-Python tokenizers).

`load_model` / `tokenizer_from_kv` build a model / tokenizer with those choices. A missing or
failed kernel build is reported once (a RuntimeWarning naming the reason) and the numpy code
runs; BITNET_BACKEND=optimized turns that into an error, BITNET_BACKEND=reference asks for
numpy without loading the C library.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, Dict, Optional

from bitnet.ops import Backend, NumpyBackend

if TYPE_CHECKING:
    from bitnet.tokenizers.engine import TokenizerEngine

NUMERICS = ("llama.cpp", "float", "reference")
NUMERICS_ENV = "BITNET_NUMERICS"
DEFAULT_NUMERICS = "llama.cpp"
# numpy vs C, SmolLM2 decode CPU time, 1 thread: llama.cpp numerics 1065 vs 15 ms/token (70x),
# float 421 ms (28x); measured on the 2-core project machine
NUMPY_SLOWDOWN = 70


def numerics_mode(numerics: Optional[str] = None) -> str:
    """The numerics mode: `numerics` if given, else $BITNET_NUMERICS, else the default.

    BITNET_BACKEND=reference (the older knob) means "reference" when nothing else is set."""
    mode = numerics if numerics is not None else os.environ.get(NUMERICS_ENV, "").strip()
    if not mode:
        legacy = os.environ.get("BITNET_BACKEND", "").strip().lower()
        mode = "reference" if legacy == "reference" else DEFAULT_NUMERICS
    if mode not in NUMERICS:
        raise ValueError(f"numerics={mode!r}; expected one of {', '.join(NUMERICS)}")
    return mode


def make_backend(numerics: Optional[str] = None, *, n_threads: Optional[int] = None,
                 n_threads_batch: Optional[int] = None, arch: str = "") -> Backend:
    """The Backend that computes in the given numerics mode (see the module docstring).

    The C kernels run "llama.cpp" and "float" when they are built; without them the numpy
    code of the same numerics runs (`bitnet.numerics.PeerBackend`, the same bits, or
    `NumpyBackend`) after a one-time warning. BITNET_BACKEND=optimized makes missing
    kernels an error; BITNET_BACKEND=reference picks numpy without loading them. n_threads /
    n_threads_batch: the C pool for one token / a batch (llama.cpp's context parameters;
    default $BITNET_THREADS, else every core; no bit depends on them). arch: the model's
    architecture (which weights llama.cpp keeps out of its repack buffer)."""
    mode = numerics_mode(numerics)
    if mode == "reference":
        return NumpyBackend()
    kernels = _kernels()
    if mode == "llama.cpp":
        from bitnet.numerics import PeerBackend, plain_weights

        if kernels is None:
            return PeerBackend(plain=plain_weights(arch))
        return kernels.OptimizedBackend(activation_quant="peer", n_threads=n_threads,
                                        n_threads_batch=n_threads_batch, plain=plain_weights(arch))
    if kernels is None:
        return NumpyBackend()
    return kernels.OptimizedBackend(activation_quant="none", n_threads=n_threads,
                                    n_threads_batch=n_threads_batch)


_warned = False


def _kernels() -> Optional[Any]:
    """The `bitnet_kernels` module when its C extension is usable, else None (warned once).

    BITNET_BACKEND=reference: None without importing it; =optimized: RuntimeError when the
    extension is missing."""
    global _warned
    want = os.environ.get("BITNET_BACKEND", "").strip().lower()
    if want not in ("", "optimized", "reference"):
        raise ValueError(f"BITNET_BACKEND={want!r}; expected 'optimized' or 'reference'")
    if want == "reference":
        return None
    try:
        import bitnet_kernels
    except ImportError as e:  # the package itself missing: a broken install
        reason = f"the bitnet_kernels package is not importable ({e})"
    else:
        if bitnet_kernels.available():
            return bitnet_kernels
        reason = bitnet_kernels.unavailable_reason()
    if want == "optimized":
        raise RuntimeError(f"BITNET_BACKEND=optimized but the C kernels are unavailable: {reason}")
    if not _warned:
        _warned = True
        warnings.warn(f"bitnet: C kernels unavailable ({reason}); using the numpy reference, "
                      f"~{NUMPY_SLOWDOWN}x slower", RuntimeWarning, stacklevel=3)
    return None


def tokenizer_engine() -> Optional[TokenizerEngine]:
    """The C tokenizer engine (bitnet_kernels), or None for the pure-Python tokenizers
    (BITNET_BACKEND=reference, or the kernels not built)."""
    if os.environ.get("BITNET_BACKEND", "").strip().lower() == "reference":
        return None  # without loading the C library
    import bitnet_kernels

    if bitnet_kernels.backend_name() != "optimized":
        return None
    from bitnet_kernels.tokenizer_engine import default_engine

    return default_engine()


def preload() -> None:
    """Load the C kernels and their tokenizer and grammar engines now (as importing llama_cpp
    loads its library), so that the first model load does not; nothing under
    BITNET_BACKEND=reference. What each function here picks is unchanged."""
    tokenizer_engine()
    grammar_engine()


def grammar_engine() -> Optional[Any]:
    """The C grammar engine (bitnet_kernels.grammar_engine), or None for the Python reference
    recognizer (BITNET_BACKEND=reference, or the kernels not built)."""
    if os.environ.get("BITNET_BACKEND", "").strip().lower() == "reference":
        return None  # without loading the C library
    import bitnet_kernels

    if bitnet_kernels.backend_name() != "optimized":
        return None
    from bitnet_kernels.grammar_engine import default_engine

    return default_engine()


def load_model(gguf: Any, *, numerics: Optional[str] = None, n_threads: Optional[int] = None,
               n_threads_batch: Optional[int] = None) -> Any:
    """A `bitnet.model.Model` over an opened GGUF file (`bitnet.gguf.load`) or a path, on
    `make_backend(numerics, n_threads=..., n_threads_batch=...)`."""
    from bitnet.gguf import load
    from bitnet.model import Model

    gf = load(gguf) if isinstance(gguf, (str, os.PathLike)) else gguf
    arch = str(gf.kv.get("general.architecture", ""))
    return Model(gf, backend=make_backend(numerics, n_threads=n_threads, n_threads_batch=n_threads_batch,
                                          arch=arch))


def tokenizer_from_kv(kv: Dict[str, Any]) -> Any:
    """The GGUF tokenizer of these metadata, on the engine `tokenizer_engine()` picks."""
    from bitnet.tokenizers import from_gguf_kv

    return from_gguf_kv(kv, engine=tokenizer_engine())
