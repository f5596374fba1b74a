"""Deliberate faults for mutation checks of the harness itself.

`bitnet-compat run --inject-fault NAME` (or BITNET_INJECT_FAULT=NAME in a pytest run with
the `bitnet_harness.pytest_faults` plugin) patches one piece of the implementation before
the checks run; the contract that piece serves must then turn red. The test suite proves
it does (tests/test_harness.py).
"""

from __future__ import annotations

from typing import Any, Callable, Dict


def _missing_gguf_fix() -> None:
    """Auto-repair forgets the pre-tokenizer fingerprints (fix 1 silently degrades)."""
    from bitnet.gguf import fixes

    fixes.MERGES_FINGERPRINTS.clear()
    fixes.SPECIAL_TOKEN_HINTS = ()


def _wrong_error_code() -> None:
    """A missing model file reports the generic code instead of -4."""
    from bitnet import errors

    errors.ModelNotFoundError.code = errors.GENERIC_ERROR


def _wrong_tokenizer_merge() -> None:
    """BPE forgets one common merge ('Ġ t', GPT-2's second) in every vocabulary it builds."""
    from bitnet.tokenizers import bpe

    original = bpe.BPE.__init__

    def init(self: bpe.BPE, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.ranks = {k: v for k, v in self.ranks.items() if k != ("Ġ", "t")}

    setattr(bpe.BPE, "__init__", init)  # noqa: B010 - patching a method on purpose


def _flipped_kernel_sign() -> None:
    """The C matmul kernel returns its result with the sign flipped."""
    import numpy as np

    from bitnet_kernels import OptimizedBackend

    original = OptimizedBackend.matmul

    def matmul(self: OptimizedBackend, *args: Any, **kwargs: Any) -> np.ndarray:
        out = original(self, *args, **kwargs)
        np.negative(out, out=out)
        return out

    setattr(OptimizedBackend, "matmul", matmul)  # noqa: B010 - patching a method on purpose


FAULTS: Dict[str, Callable[[], None]] = {
    "flipped-kernel-sign": _flipped_kernel_sign,
    "wrong-tokenizer-merge": _wrong_tokenizer_merge,
    "missing-gguf-fix": _missing_gguf_fix,
    "wrong-error-code": _wrong_error_code,
}

# which contract each fault must turn red
EXPECTED_RED: Dict[str, str] = {
    "flipped-kernel-sign": "kernels.optimized-vs-reference",
    "wrong-tokenizer-merge": "tokenizer.gpt2-bpe",
    "missing-gguf-fix": "gguf.fix.pre",
    "wrong-error-code": "errors.codes",
}


def inject(name: str) -> None:
    """Apply the named fault in this process."""
    try:
        FAULTS[name]()
    except KeyError:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}") from None
