"""Where the API surfaces (Llama, the C API, the server, the CLI) pick their kernels.

The reference core (gguf, quants, tokenizers, ops, model, sampling, numerics) never imports
the C kernels: a model takes a `bitnet.ops.Backend` and a tokenizer an engine where they are
built. This module is the one place that chooses them:

- `make_backend(numerics)`: the Backend for a numerics mode, from the keyword or
  $BITNET_NUMERICS:
    "llama.cpp"  llama.cpp 0.3.36's CPU float order (the peer's bits),
    "float"      unquantized float32 activations (the C kernels when built),
    "reference"  the numpy reference kernels.
- `tokenizer_engine()`: the C tokenizer engine when the kernels are built, else None (the
  pure-Python tokenizers).

`load_model` / `tokenizer_from_kv` build a model / tokenizer with those choices.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Optional

from bitnet.ops import Backend, NumpyBackend

if TYPE_CHECKING:
    from bitnet.tokenizers.engine import TokenizerEngine

NUMERICS = ("llama.cpp", "float", "reference")
NUMERICS_ENV = "BITNET_NUMERICS"
DEFAULT_NUMERICS = "float"


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


def make_backend(numerics: Optional[str] = None, *, n_threads: Optional[int] = None) -> Backend:
    """The Backend that computes in the given numerics mode (see the module docstring)."""
    mode = numerics_mode(numerics)
    if mode == "reference":
        return NumpyBackend()
    import bitnet_kernels

    if mode == "llama.cpp":
        from bitnet.numerics import PeerBackend

        return PeerBackend(n_threads=n_threads)
    return bitnet_kernels.make_backend(activation_quant="none", n_threads=n_threads)


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


def load_model(gguf: Any, *, numerics: Optional[str] = None, n_threads: Optional[int] = None) -> Any:
    """A `bitnet.model.Model` over an opened GGUF file (`bitnet.gguf.load`) or a path."""
    from bitnet.model import Model

    backend = make_backend(numerics, n_threads=n_threads)
    if isinstance(gguf, (str, os.PathLike)):
        return Model.load(gguf, backend=backend)
    return Model(gguf, backend=backend)


def tokenizer_from_kv(kv: Dict[str, Any]) -> Any:
    """The GGUF tokenizer of these metadata, on the engine `tokenizer_engine()` picks."""
    from bitnet.tokenizers import from_gguf_kv

    return from_gguf_kv(kv, engine=tokenizer_engine())
