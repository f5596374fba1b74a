"""Text completions reshaped into chat completions (llama-cpp-python's `_convert_*` helpers).

A `text_completion` dict becomes a `chat.completion` (the text as the assistant message,
logprobs in the chat layout); its stream chunks become `chat.completion.chunk`s (a role chunk
first, the finish reason with an empty delta last); a forced tool call's arguments become a
message with one `tool_calls` entry ("call__0_<name>_<completion id>", finish_reason
"tool_calls"), streamed as llama-cpp-python streams it.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Union


def _whole(result: Union[Dict[str, Any], Iterator[Dict[str, Any]]]) -> Dict[str, Any]:
    """The dict of a create_completion(stream=False) call."""
    if not isinstance(result, dict):
        raise TypeError("expected a whole completion (stream=False), got a stream")
    return result


def _convert_text_completion_logprobs_to_chat(logprobs: Optional[Dict[str, Any]]) -> Any:
    if logprobs is None:
        return None
    return {
        "content": [
            {
                "token": token,
                "bytes": None,
                "logprob": logprob,
                "top_logprobs": [
                    {"token": top_token, "logprob": top_logprob, "bytes": None}
                    for top_token, top_logprob in top_logprobs.items()
                ],
            }
            for (token, logprob, top_logprobs) in zip(
                logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"]
            )
        ],
        "refusal": None,
    }


def _convert_text_completion_to_chat(completion: Dict[str, Any]) -> Dict[str, Any]:
    assert "usage" in completion
    choice = completion["choices"][0]
    return {
        "id": "chat" + completion["id"],
        "object": "chat.completion",
        "created": completion["created"],
        "model": completion["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": choice["text"]},
                "logprobs": _convert_text_completion_logprobs_to_chat(choice["logprobs"]),
                "finish_reason": choice["finish_reason"],
            }
        ],
        "usage": completion["usage"],
    }


def _convert_text_completion_chunks_to_chat(
    chunks: Iterator[Dict[str, Any]],
) -> Iterator[Dict[str, Any]]:
    for i, chunk in enumerate(chunks):
        if i == 0:
            yield {
                "id": "chat" + chunk["id"],
                "model": chunk["model"],
                "created": chunk["created"],
                "object": "chat.completion.chunk",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant"},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        choice = chunk["choices"][0]
        yield {
            "id": "chat" + chunk["id"],
            "model": chunk["model"],
            "created": chunk["created"],
            "object": "chat.completion.chunk",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": choice["text"]} if choice["finish_reason"] is None else {},
                    "logprobs": _convert_text_completion_logprobs_to_chat(choice["logprobs"]),
                    "finish_reason": choice["finish_reason"],
                }
            ],
        }


def _convert_completion_to_chat(completion_or_chunks: Any, stream: bool = False) -> Any:
    if stream:
        return _convert_text_completion_chunks_to_chat(completion_or_chunks)
    return _convert_text_completion_to_chat(completion_or_chunks)


def _one_tool_call_response(completion: Any, name: str, tool_id: str) -> Any:
    """A text completion of one call's arguments as llama-cpp-python's chat.completion with
    `function_call` and a single `tool_calls` entry (finish_reason "tool_calls")."""
    text = completion["choices"][0]["text"]
    return {
        "id": "chat" + completion["id"],
        "object": "chat.completion",
        "created": completion["created"],
        "model": completion["model"],
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": name, "arguments": text},
                    "tool_calls": [
                        {"id": tool_id, "type": "function", "function": {"name": name, "arguments": text}}
                    ],
                },
                "logprobs": _convert_text_completion_logprobs_to_chat(completion["choices"][0]["logprobs"]),
                "finish_reason": "tool_calls",
            }
        ],
        "usage": completion["usage"],
    }


def _convert_completion_to_chat_function(
    tool_name: str, completion_or_chunks: Any, stream: bool
) -> Any:
    """A completion of a forced tool's arguments as a chat completion with one tool call
    (llama-cpp-python's `_convert_completion_to_chat_function`, same ids and chunks)."""
    if not stream:
        completion = completion_or_chunks
        assert "usage" in completion
        tool_id = "call_" + "_0_" + tool_name + "_" + completion["id"]
        return _one_tool_call_response(completion, tool_name, tool_id)
    return _function_stream(tool_name, completion_or_chunks)


def _function_stream(tool_name: str, chunks: Iterator[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
    def call_delta(text: str, tool_id: str) -> Dict[str, Any]:
        return {
            "role": None,
            "content": None,
            "function_call": {"name": tool_name, "arguments": text},
            "tool_calls": [
                {
                    "index": 0,
                    "id": tool_id,
                    "type": "function",
                    "function": {"name": tool_name, "arguments": text},
                }
            ],
        }

    empty = {"role": None, "content": None, "function_call": None, "tool_calls": None}
    id_: Optional[str] = None
    created: Optional[int] = None
    model: Optional[str] = None
    tool_id = ""
    for chunk in chunks:
        choice = chunk["choices"][0]
        if id_ is None:
            id_, created, model = "chat" + chunk["id"], chunk["created"], chunk["model"]
            tool_id = "call_" + "_0_" + tool_name + "_" + chunk["id"]
            yield {
                "id": id_,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": None,
                        "logprobs": None,
                        "delta": {"role": "assistant", "content": None, "function_call": None,
                                  "tool_calls": None},
                    }
                ],
            }
        yield {
            "id": "chat" + chunk["id"],
            "object": "chat.completion.chunk",
            "created": chunk["created"],
            "model": chunk["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": None,
                    "logprobs": _convert_text_completion_logprobs_to_chat(choice["logprobs"]),
                    "delta": call_delta(choice["text"], tool_id),
                }
            ],
        }
    if id_ is not None and created is not None and model is not None:
        yield {
            "id": id_,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "finish_reason": "tool_calls", "logprobs": None, "delta": dict(empty)}
            ],
        }
