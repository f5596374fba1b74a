"""Request bodies of the server: llama-cpp-python's `server/types.py` field for field (same
names and defaults; note the server's repeat_penalty default 1.1 and temperature 0.8 differ
from `Llama.create_completion`'s), plus what OpenAI's SDK sends: content parts, `tool` and
`developer` messages, `response_format` of type json_schema, `tool_choice` "required",
`n`, `stream_options`, embeddings' `encoding_format` / `dimensions`.

Bounds that llama-cpp-python lacks and OpenAI states: `max_tokens` >= 0 (0 and null: up to the
context), `temperature` >= 0, `n` in 1..16 (OpenAI allows 128; each choice is a whole
generation here), finite `logit_bias` values. Wrong types and out-of-bound values answer 422.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

_temperature = Field(default=0.8, ge=0.0, description="Sampling temperature (0: greedy).")
_top_p = Field(default=0.95, ge=0.0, le=1.0)
_min_p = Field(default=0.05, ge=0.0, le=1.0)
_top_k = Field(default=40, ge=0)
_repeat_penalty = Field(default=1.1, ge=0.0)
_penalty = Field(default=0.0, ge=-2.0, le=2.0)
_model = Field(default=None, description="Model alias (any name when one model is served).")
MAX_CHOICES = 16


class _Sampling(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: Optional[str] = _model
    max_tokens: Optional[int] = Field(default=16, ge=0)
    min_tokens: int = Field(default=0, ge=0)
    temperature: float = _temperature
    top_p: float = _top_p
    min_p: float = _min_p
    stop: Optional[Union[str, List[str]]] = None
    stream: bool = False
    stream_options: Optional[Dict[str, Any]] = None
    presence_penalty: Optional[float] = _penalty
    frequency_penalty: Optional[float] = _penalty
    logit_bias: Optional[Dict[str, float]] = None
    seed: Optional[int] = Field(default=None, ge=-(2**63), le=2**64 - 1)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    user: Optional[str] = None
    top_k: int = _top_k
    repeat_penalty: float = _repeat_penalty
    logit_bias_type: Optional[Literal["input_ids", "tokens"]] = None
    mirostat_mode: int = Field(default=0, ge=0, le=2)
    mirostat_tau: float = Field(default=5.0, ge=0.0, le=10.0)
    mirostat_eta: float = Field(default=0.1, ge=0.001, le=1.0)
    grammar: Optional[str] = None


class CreateCompletionRequest(_Sampling):
    prompt: Union[str, List[str], List[int], List[List[int]]] = Field(
        default="", description="The prompt: text, texts, token ids or lists of token ids."
    )
    suffix: Optional[str] = None
    echo: bool = False
    logprobs: Optional[int] = Field(default=None, ge=0)
    best_of: Optional[int] = Field(default=1, ge=1)


class ChatCompletionRequestMessage(BaseModel):
    """One chat message; extra keys (name, tool_calls, tool_call_id, ...) pass through."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "function", "tool", "developer"]
    content: Optional[Union[str, List[Dict[str, Any]]]] = None


class CreateChatCompletionRequest(_Sampling):
    messages: List[ChatCompletionRequestMessage] = Field(default_factory=list)
    functions: Optional[List[Dict[str, Any]]] = None
    function_call: Optional[Union[str, Dict[str, Any]]] = None
    tools: Optional[List[Dict[str, Any]]] = None
    tool_choice: Optional[Union[str, Dict[str, Any]]] = None
    parallel_tool_calls: Optional[bool] = None
    max_tokens: Optional[int] = Field(default=None, ge=0)
    max_completion_tokens: Optional[int] = Field(default=None, ge=0)
    logprobs: Optional[bool] = False
    top_logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    response_format: Optional[Dict[str, Any]] = None


class CreateEmbeddingRequest(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: Optional[str] = _model
    input: Union[str, List[str], List[int], List[List[int]]] = Field(description="Text(s) to embed.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[int] = Field(default=None, ge=1)
    user: Optional[str] = None


class TokenizeInputRequest(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: Optional[str] = _model
    input: str = Field(description="Text to tokenize.")


class DetokenizeInputRequest(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: Optional[str] = _model
    tokens: List[int] = Field(description="Token ids to detokenize.")
