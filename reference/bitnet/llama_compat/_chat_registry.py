"""Chat handlers: the registry, the formatter types, and the generic formatter -> handler.

A chat format is a formatter (messages -> `ChatFormatterResponse`: prompt, stops, stopping
criteria); `chat_formatter_to_chat_completion_handler` makes it a handler as llama-cpp-python
does: render, tokenize with special tokens, complete, reshape into chat dicts. Handlers are
registered by name in one shared table (`LlamaChatCompletionHandlerRegistry`).

Grammars, as llama-cpp-python builds them: `response_format={"type": "json_object"}` samples
with llama.cpp's JSON_GBNF grammar, or with the schema's grammar (`json_schema_to_gbnf`, its
string characters made strict JSON as JSON_GBNF has them; plain JSON_GBNF when the converter
refuses the schema); a named tool (`tool_choice={"type": "function", ...}` or legacy
`function_call={"name": ...}`) constrains the reply to the tool's parameter schema and returns
one tool call.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Protocol, Union

from bitnet.constraints.schema_gbnf import strict_json_strings
from bitnet.llama_compat import llama_grammar
from bitnet.llama_compat._chat_convert import (
    _convert_completion_to_chat,
    _convert_completion_to_chat_function,
)
from bitnet.llama_compat._utils import Singleton

if TYPE_CHECKING:  # pragma: no cover
    from bitnet.llama_compat.llama import Llama, StoppingCriteriaList

# dicts with the shapes of llama_types; kept as plain dicts here
Message = Dict[str, Any]
ChatCompletionHandler = Callable[..., Any]


class LlamaChatCompletionHandler(Protocol):
    """What a chat handler is called with (`Llama.create_chat_completion`'s keywords)."""

    def __call__(self, *, llama: Llama, messages: List[Message], **kwargs: Any) -> Any: ...


class LlamaChatCompletionHandlerNotFoundException(Exception):
    pass


class LlamaChatCompletionHandlerRegistry(Singleton):
    """Name -> chat completion handler (one shared table)."""

    _chat_handlers: Dict[str, ChatCompletionHandler] = {}

    def register_chat_completion_handler(
        self, name: str, chat_handler: ChatCompletionHandler, overwrite: bool = False
    ) -> None:
        if not overwrite and name in self._chat_handlers:
            raise ValueError(
                f"Formatter with name '{name}' is already registered. Use `overwrite=True` to overwrite it.")
        self._chat_handlers[name] = chat_handler

    def unregister_chat_handler(self, name: str) -> None:
        if name in self._chat_handlers:
            del self._chat_handlers[name]
        else:
            raise ValueError(f"No formatter registered under the name '{name}'.")

    def get_chat_completion_handler_by_name(self, name: str) -> ChatCompletionHandler:
        try:
            return self._chat_handlers[name]
        except KeyError:
            raise LlamaChatCompletionHandlerNotFoundException(
                f"Invalid chat handler: {name} (valid formats: {list(self._chat_handlers.keys())})"
            ) from None


def get_chat_completion_handler(name: str) -> ChatCompletionHandler:
    return LlamaChatCompletionHandlerRegistry().get_chat_completion_handler_by_name(name)


def register_chat_completion_handler(name: str) -> Callable[[ChatCompletionHandler], ChatCompletionHandler]:
    def decorator(f: ChatCompletionHandler) -> ChatCompletionHandler:
        LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(name, f)
        return f

    return decorator


@dataclasses.dataclass
class ChatFormatterResponse:
    """The rendered prompt plus the stops a chat format asks for."""

    prompt: str
    stop: Optional[Union[str, List[str]]] = None
    stopping_criteria: Optional[StoppingCriteriaList] = None
    added_special: bool = False


class ChatFormatter(Protocol):
    def __call__(self, *, messages: List[Message], **kwargs: Any) -> ChatFormatterResponse: ...


# --- grammars (llama-cpp-python's _grammar_for_* helpers) -------------------------------------


def _grammar_for_json(verbose: bool = False) -> llama_grammar.LlamaGrammar:
    return llama_grammar.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=verbose)


def _grammar_for_json_schema(schema: str, verbose: bool = False,
                             fallback_to_json: bool = True) -> llama_grammar.LlamaGrammar:
    """The schema's grammar, its strings strict JSON (no raw control characters: the one
    difference from llama-cpp-python's, whose replies could then fail json.loads); plain JSON
    when the converter refuses the schema."""
    try:
        text = strict_json_strings(llama_grammar.json_schema_to_gbnf(schema))
        return llama_grammar.LlamaGrammar.from_string(text, verbose=verbose)
    except Exception as e:
        if not fallback_to_json:
            raise
        if verbose:
            print(f"Failed to parse function body as JSON schema, falling back to JSON: {e}",
                  file=sys.stderr)
        return _grammar_for_json(verbose=verbose)


def _grammar_for_response_format(response_format: Dict[str, Any],
                                 verbose: bool = False) -> Optional[llama_grammar.LlamaGrammar]:
    if response_format["type"] != "json_object":
        return None
    if "schema" in response_format:
        return _grammar_for_json_schema(json.dumps(response_format["schema"]), verbose=verbose)
    return _grammar_for_json(verbose=verbose)


def _legacy_to_tools(functions: Optional[List[Dict[str, Any]]], function_call: Any,
                     tools: Optional[List[Dict[str, Any]]], tool_choice: Any) -> Any:
    """(tools, tool_choice) with the legacy `functions` / `function_call` folded in."""
    if functions is not None:
        tools = [{"type": "function", "function": function} for function in functions]
    if function_call is not None:
        if isinstance(function_call, str) and function_call in ("none", "auto"):
            tool_choice = function_call
        if isinstance(function_call, dict) and "name" in function_call:
            tool_choice = {"type": "function", "function": {"name": function_call["name"]}}
    return tools, tool_choice


def _chosen_tool(tools: Optional[List[Dict[str, Any]]], tool_choice: Any) -> Optional[Dict[str, Any]]:
    """The tool a named tool_choice picks (ValueError if it is not among `tools`)."""
    if tool_choice is None or not isinstance(tool_choice, dict) or tools is None:
        return None
    name = tool_choice["function"]["name"]
    tool = next((t for t in tools if t["function"]["name"] == name), None)
    if tool is None:
        raise ValueError(f"Tool choice '{name}' not found in tools.")
    return tool


def chat_formatter_to_chat_completion_handler(chat_formatter: ChatFormatter) -> ChatCompletionHandler:
    """Wrap a formatter into a handler: render, tokenize (special=True), complete, reshape."""

    def chat_completion_handler(
        *,
        llama: Llama,
        messages: List[Message],
        functions: Optional[List[Dict[str, Any]]] = None,
        function_call: Optional[Any] = None,
        tools: Optional[List[Dict[str, Any]]] = None,
        tool_choice: Optional[Any] = None,
        temperature: float = 0.2,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        stream: bool = False,
        stop: Optional[Union[str, List[str]]] = [],  # noqa: B006 (llama-cpp-python's default)
        seed: Optional[int] = None,
        response_format: Optional[Dict[str, Any]] = None,
        max_tokens: Optional[int] = None,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repeat_penalty: float = 1.1,
        tfs_z: float = 1.0,
        mirostat_mode: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        model: Optional[str] = None,
        logits_processor: Optional[Any] = None,
        grammar: Optional[llama_grammar.LlamaGrammar] = None,
        logit_bias: Optional[Dict[str, float]] = None,
        logprobs: Optional[bool] = None,
        top_logprobs: Optional[int] = None,
        **kwargs: Any,
    ) -> Any:
        result = chat_formatter(messages=messages, functions=functions, function_call=function_call,
                                tools=tools, tool_choice=tool_choice, **kwargs)
        prompt = llama.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        if result.stop is not None:
            stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
            rstop = result.stop if isinstance(result.stop, list) else [result.stop]
            stop = stop + rstop
        if response_format is not None and response_format["type"] == "json_object":
            grammar = _grammar_for_response_format(response_format, verbose=llama.verbose)
        tools, tool_choice = _legacy_to_tools(functions, function_call, tools, tool_choice)
        tool = _chosen_tool(tools, tool_choice)
        if tool is not None:
            grammar = _grammar_for_json_schema(json.dumps(tool["function"]["parameters"]), llama.verbose)
        completion_or_chunks = llama.create_completion(
            prompt=prompt, temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
            typical_p=typical_p, logprobs=top_logprobs if logprobs else None, stream=stream,
            stop=stop, seed=seed, max_tokens=max_tokens, presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty, repeat_penalty=repeat_penalty, tfs_z=tfs_z,
            mirostat_mode=mirostat_mode, mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta,
            model=model, logits_processor=logits_processor,
            stopping_criteria=result.stopping_criteria, grammar=grammar,
            # str keys from the chat request: create_completion applies int() to each, as
            # llama-cpp-python's does
            logit_bias=logit_bias,
        )
        if tool is not None:
            name = tool["function"]["name"]
            return _convert_completion_to_chat_function(name, completion_or_chunks, stream)
        return _convert_completion_to_chat(completion_or_chunks, stream=stream)

    return chat_completion_handler


CHAT_FORMATTERS: Dict[str, ChatFormatter] = {}
"""Built-in format name -> formatter (to render a prompt without generating)."""


def register_chat_format(name: str) -> Callable[[ChatFormatter], ChatFormatter]:
    """Register a formatter under `name` (its handler in the registry, itself in CHAT_FORMATTERS)."""

    def decorator(f: ChatFormatter) -> ChatFormatter:
        LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
            name, chat_formatter_to_chat_completion_handler(f))
        CHAT_FORMATTERS[name] = f
        return f

    return decorator
