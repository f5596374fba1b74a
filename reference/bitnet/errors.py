"""Typed errors carrying the locked error codes of the compatibility contract.

Codes (spec "Error Code Table"): 0 success, -1 generic, -2 invalid UTF-8, -3 tokenization
failed, -4 model not found, -5 model load failed, -6 inference failed, -7 out of memory,
-8 thread safety, -9 invalid model id, -10 context length exceeded. The C API returns
these codes; Python callers catch the classes (which also subclass the builtin exception
a llama-cpp-python user would catch, e.g. ValueError or FileNotFoundError).
"""

from __future__ import annotations

from typing import Optional

SUCCESS = 0
GENERIC_ERROR = -1
INVALID_UTF8 = -2
TOKENIZATION_FAILED = -3
MODEL_NOT_FOUND = -4
MODEL_LOAD_FAILED = -5
INFERENCE_FAILED = -6
OUT_OF_MEMORY = -7
THREAD_SAFETY_ERROR = -8
INVALID_MODEL_ID = -9
CONTEXT_LENGTH_EXCEEDED = -10


class BitNetError(Exception):
    """Base class: every error this package raises on purpose."""

    code: int = GENERIC_ERROR


class InvalidUTF8Error(BitNetError, ValueError):
    code = INVALID_UTF8


class TokenizationError(BitNetError, ValueError):
    code = TOKENIZATION_FAILED


class ModelNotFoundError(BitNetError, FileNotFoundError):
    code = MODEL_NOT_FOUND


class ModelLoadError(BitNetError):
    code = MODEL_LOAD_FAILED


class UnsupportedError(ModelLoadError, NotImplementedError):
    """Something well-formed that this project does not implement; says what is."""


class GGUFError(ModelLoadError, ValueError):
    """A malformed GGUF file. Names the field being read and its byte offset."""

    def __init__(self, message: str, *, field: str = "", offset: Optional[int] = None) -> None:
        self.field = field
        self.offset = offset
        where = ""
        if field:
            where += f" field={field}"
        if offset is not None:
            where += f" offset={offset}"
        super().__init__(f"{message}{' (' + where.strip() + ')' if where else ''}")


class InferenceError(BitNetError, RuntimeError):
    code = INFERENCE_FAILED


class OutOfMemoryError(BitNetError, MemoryError):
    code = OUT_OF_MEMORY


class ThreadSafetyError(BitNetError, RuntimeError):
    code = THREAD_SAFETY_ERROR


class InvalidModelIdError(BitNetError, KeyError):
    code = INVALID_MODEL_ID


class ContextLengthExceededError(BitNetError, ValueError):
    code = CONTEXT_LENGTH_EXCEEDED
