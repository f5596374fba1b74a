"""Errors `Llama` raises where a llama-cpp-python user catches a builtin type.

Each subclasses the project's typed error (code, `bitnet.errors`) and the builtin exception
llama-cpp-python raises in the same situation, so `except RuntimeError` / `except
AssertionError` written for llama_cpp keeps working.
"""

from __future__ import annotations

from bitnet.errors import ContextLengthExceededError, InferenceError


class ContextOverflowError(ContextLengthExceededError, RuntimeError):
    """`eval` past n_ctx: a ValueError (the project's ContextLengthExceededError) and a
    RuntimeError (llama-cpp-python: "llama_decode returned 1")."""


class NoWeightsError(InferenceError, AssertionError):
    """Evaluating with a vocab_only model: a RuntimeError and an AssertionError
    (llama-cpp-python: AssertionError "Memory is not initialized")."""


NO_WEIGHTS_MESSAGE = (
    "Memory is not initialized: this Llama was created with vocab_only=True and has no weights "
    "to evaluate"
)
