"""Chat prompt formats and chat-completion handlers, as llama-cpp-python 0.3.x builds them.

Role: turn `messages` into the exact prompt string llama-cpp-python renders (so the prompt
tokenizes to the same ids), then run `Llama.create_completion` and reshape its result into
`chat.completion` / `chat.completion.chunk` dicts.

- GGUF templates (`tokenizer.chat_template`, `tokenizer.chat_template.<name>`) render through
  jinja2's `ImmutableSandboxedEnvironment` (trim_blocks, lstrip_blocks, loop controls, a no-op
  `{% generation %}` tag, transformers' `tojson`) with llama-cpp-python's render variables:
  messages, bos_token, eos_token, raise_exception, add_generation_prompt, functions,
  function_call, tools, tool_choice, strftime_now. The sandbox refuses attribute access to
  Python internals, which closes the template-injection hole of CVE-2024-34359.
- The built-in `chat_format` names of llama-cpp-python (llama-2, llama-3, chatml, gemma, ...)
  build the same strings as its `llama_chat_format.py` (names, separators, stops).

`response_format={"type": "json_object"}` (optionally with a schema from the subset in
`bitnet.constraints`) is honoured without a grammar: the handler adds a `JSONOutput`
marker that the sampler turns into a reject-and-resample constraint.

Function calling as llama-cpp-python does it, its GBNF grammars replaced by constraint markers:
- every template / built-in format: `tools` + a named `tool_choice` (or legacy `functions` +
  `function_call={"name": ...}`) constrains the reply to the tool's parameter schema and
  returns one tool call (ids "call__0_<name>_<completion id>", finish_reason "tool_calls",
  streamed as llama-cpp-python streams it); a schema outside the supported subset falls back
  to plain JSON, as llama-cpp-python falls back to its JSON grammar.
- "chatml-function-calling": the same template (HTML autoescape and jinja2's sorted-key
  tojson included), forced and automatic tool choice (the `functions.<name>:` /
  `message:` choice is a `choices` marker, the GBNF `root ::= "a" | "b"`), its quirks kept.
- "functionary" (v0): the same prompt and control flow (its first, unconstrained completion
  in "auto" mode uses create_completion's defaults, so it samples at temperature 0.8).
- "functionary-v1" / "functionary-v2" need the model's HuggingFace tokenizer
  (`Llama(tokenizer=LlamaHFTokenizer...)`): without one they fail with llama-cpp-python's
  AssertionError, with one (and `transformers`) they raise NotImplementedError here.
The arguments follow llama-cpp-python's `json_schema_to_gbnf` layout (`compact` in
`bitnet.constraints`), so with SmolLM2 at temperature 0 they come out token-identical.
Known differences: llama.cpp's generated grammars also cap integer digits (16) and let raw
control characters into strings; the json_object grammar (JSON_GBNF) allows "\n" plus up to
20 spaces/tabs where ours allows up to 20 whitespace bytes; vision handlers are not provided.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Protocol,
    Tuple,
    Union,
    cast,
)

import jinja2
import jinja2.ext
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

if TYPE_CHECKING:  # pragma: no cover
    from bitnet.llama_compat import Llama, StoppingCriteriaList

# dicts with the shapes of llama_cpp.llama_types; kept as plain dicts here
Message = Dict[str, Any]
ChatCompletionHandler = Callable[..., Any]

# Source of these constants: llama-cpp-python's llama_chat_format.py (they identify templates)
CHATML_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_BOS_TOKEN = "<s>"
CHATML_EOS_TOKEN = "<|im_end|>"

MISTRAL_INSTRUCT_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and "
    "assistant roles are supported!') }}{% endif %}{% endfor %}"
)
MISTRAL_INSTRUCT_BOS_TOKEN = "<s>"
MISTRAL_INSTRUCT_EOS_TOKEN = "</s>"

MIXTRAL_INSTRUCT_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}"
)

LLAMA3_INSTRUCT_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

GRAMMAR_HINT = (
    "grammar-constrained decoding is not implemented in bitnet.llama_compat; "
    "constrain tokens with logits_processor= (a LogitsProcessorList) instead"
)


# ---------------------------------------------------------------------------------------------
# registry


class LlamaChatCompletionHandlerNotFoundException(Exception):
    pass


class LlamaChatCompletionHandlerRegistry:
    """Name -> chat completion handler (one shared table, like llama-cpp-python's singleton)."""

    _chat_handlers: Dict[str, ChatCompletionHandler] = {}

    def register_chat_completion_handler(
        self, name: str, chat_handler: ChatCompletionHandler, overwrite: bool = False
    ) -> None:
        if not overwrite and name in self._chat_handlers:
            raise ValueError(
                f"Formatter with name '{name}' is already registered. "
                "Use `overwrite=True` to overwrite it."
            )
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



def _whole(result: Union[Dict[str, Any], Iterator[Dict[str, Any]]]) -> Dict[str, Any]:
    """The dict of a create_completion(stream=False) call."""
    if not isinstance(result, dict):
        raise TypeError("expected a whole completion (stream=False), got a stream")
    return result

def get_chat_completion_handler(name: str) -> ChatCompletionHandler:
    return LlamaChatCompletionHandlerRegistry().get_chat_completion_handler_by_name(name)


def register_chat_completion_handler(
    name: str,
) -> Callable[[ChatCompletionHandler], ChatCompletionHandler]:
    def decorator(f: ChatCompletionHandler) -> ChatCompletionHandler:
        LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(name, f)
        return f

    return decorator


# ---------------------------------------------------------------------------------------------
# formatters


@dataclasses.dataclass
class ChatFormatterResponse:
    """The rendered prompt plus the stops a chat format asks for."""

    prompt: str
    stop: Optional[Union[str, List[str]]] = None
    stopping_criteria: Optional[StoppingCriteriaList] = None
    added_special: bool = False


class ChatFormatter(Protocol):
    def __call__(self, *, messages: List[Message], **kwargs: Any) -> ChatFormatterResponse: ...


class Jinja2ChatFormatter:
    """A chat formatter rendering a (GGUF / HF) jinja2 chat template in a sandbox."""

    class IgnoreGenerationTags(Extension):
        """Pass-through for HuggingFace's ``{% generation %}`` chat-template tag."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    def __init__(
        self,
        template: str,
        eos_token: str,
        bos_token: str,
        add_generation_prompt: bool = True,
        stop_token_ids: Optional[List[int]] = None,
    ) -> None:
        self.template = template
        self.eos_token = eos_token
        self.bos_token = bos_token
        self.add_generation_prompt = add_generation_prompt
        self.stop_token_ids = set(stop_token_ids) if stop_token_ids is not None else None
        environment = ImmutableSandboxedEnvironment(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[Jinja2ChatFormatter.IgnoreGenerationTags, jinja2.ext.loopcontrols],
        )
        environment.filters["tojson"] = self.tojson
        self._environment = environment.from_string(self.template)

    @staticmethod
    def strftime_now(f: str) -> str:
        return datetime.now().strftime(f)

    @staticmethod
    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: Optional[int] = None,
        separators: Optional[Tuple[str, str]] = None,
        sort_keys: bool = False,
    ) -> str:
        """transformers' chat-template `tojson` (no HTML escaping, unicode kept)."""
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def __call__(
        self,
        *,
        messages: List[Message],
        functions: Optional[List[Dict[str, Any]]] = None,
        function_call: Optional[Any] = None,
        tools: Optional[List[Dict[str, Any]]] = None,
        tool_choice: Optional[Any] = None,
        **kwargs: Any,
    ) -> ChatFormatterResponse:
        def raise_exception(message: str) -> None:
            raise ValueError(message)

        prompt = self._environment.render(
            messages=messages,
            eos_token=self.eos_token,
            bos_token=self.bos_token,
            raise_exception=raise_exception,
            add_generation_prompt=self.add_generation_prompt,
            functions=functions,
            function_call=function_call,
            tools=tools,
            tool_choice=tool_choice,
            strftime_now=self.strftime_now,
            **kwargs,
        )
        stopping_criteria = None
        if self.stop_token_ids is not None:
            from bitnet.llama_compat import StoppingCriteriaList

            stop_ids = self.stop_token_ids

            def stop_on_last_token(tokens: Any, logits: Any) -> bool:
                return bool(tokens[-1] in stop_ids)

            stopping_criteria = StoppingCriteriaList([stop_on_last_token])
        return ChatFormatterResponse(
            prompt=prompt,
            stop=[self.eos_token],
            stopping_criteria=stopping_criteria,
            added_special=True,
        )

    def to_chat_handler(self) -> ChatCompletionHandler:
        return chat_formatter_to_chat_completion_handler(self)


def hf_tokenizer_config_to_chat_formatter(
    tokenizer_config: Dict[str, Any], add_generation_prompt: bool = True
) -> ChatFormatter:
    """A formatter from a HF tokenizer_config.json dict (chat_template, bos_token, eos_token)."""
    chat_template = tokenizer_config["chat_template"]
    bos_token = tokenizer_config["bos_token"]
    eos_token = tokenizer_config["eos_token"]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(chat_template)

    def format_tokenizer_config(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
        if add_generation_prompt:
            messages = [*messages, {"role": "assistant", "content": ""}]
        prompt = template.render(messages=messages, bos_token=bos_token, eos_token=eos_token, **kwargs)
        return ChatFormatterResponse(prompt=prompt, stop=[eos_token, bos_token], added_special=True)

    return format_tokenizer_config


def hf_tokenizer_config_to_chat_completion_handler(
    tokenizer_config: Dict[str, Any], add_generation_prompt: bool = True
) -> ChatCompletionHandler:
    return chat_formatter_to_chat_completion_handler(
        hf_tokenizer_config_to_chat_formatter(tokenizer_config, add_generation_prompt)
    )


def guess_chat_format_from_gguf_metadata(metadata: Dict[str, str]) -> Optional[str]:
    """The built-in format whose template the file carries verbatim, else None."""
    if "tokenizer.chat_template" not in metadata:
        return None
    template = metadata["tokenizer.chat_template"]
    if template == CHATML_CHAT_TEMPLATE:
        return "chatml"
    if template in (MISTRAL_INSTRUCT_CHAT_TEMPLATE, MIXTRAL_INSTRUCT_CHAT_TEMPLATE):
        return "mistral-instruct"
    if template == LLAMA3_INSTRUCT_CHAT_TEMPLATE:
        return "llama-3"
    return None


# ---------------------------------------------------------------------------------------------
# completion -> chat completion


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


def _arguments_marker(schema: Any, verbose: bool = False) -> Any:
    """JSONOutput for a tool's parameter schema; plain JSON when the schema is outside what
    bitnet.constraints supports (llama-cpp-python falls back to JSON_GBNF likewise)."""
    from bitnet.constraints import JSONOutput

    try:
        return JSONOutput(schema=schema, compact=True)
    except (NotImplementedError, ValueError, TypeError) as e:
        if verbose:
            print(f"Failed to parse function body as JSON schema, falling back to JSON: {e}",
                  file=sys.stderr)
        return JSONOutput()


def _with_marker(logits_processor: Optional[Any], marker: Any) -> Any:
    """`logits_processor` plus a constraint marker (replacing any earlier marker)."""
    from bitnet.constraints import JSONOutput
    from bitnet.llama_compat import LogitsProcessorList

    kept = [p for p in logits_processor or [] if not isinstance(p, JSONOutput)]
    return LogitsProcessorList([*kept, marker])


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
        grammar: Optional[Any] = None,
        logit_bias: Optional[Dict[str, float]] = None,
        logprobs: Optional[bool] = None,
        top_logprobs: Optional[int] = None,
        **kwargs: Any,
    ) -> Any:
        result = chat_formatter(
            messages=messages,
            functions=functions,
            function_call=function_call,
            tools=tools,
            tool_choice=tool_choice,
            **kwargs,
        )
        prompt = llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        if result.stop is not None:
            stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
            rstop = result.stop if isinstance(result.stop, list) else [result.stop]
            stop = stop + rstop
        stopping_criteria = result.stopping_criteria

        marker = None
        if response_format is not None and response_format.get("type") == "json_object":
            # where llama-cpp-python builds a JSON grammar, a JSONOutput marker asks the sampler
            # for its reject-and-resample JSON constraint (bitnet.constraints); a schema
            # outside the supported subset raises NotImplementedError naming the keyword
            from bitnet.constraints import JSONOutput

            schema = response_format.get("schema")
            marker = JSONOutput(schema=schema, compact=True) if schema is not None else JSONOutput()
        if functions is not None:
            tools = [{"type": "function", "function": function} for function in functions]
        if function_call is not None:
            if isinstance(function_call, str) and function_call in ("none", "auto"):
                tool_choice = function_call
            if isinstance(function_call, dict) and "name" in function_call:
                tool_choice = {"type": "function", "function": {"name": function_call["name"]}}
        tool = None
        if tool_choice is not None and isinstance(tool_choice, dict) and tools is not None:
            name = tool_choice["function"]["name"]
            tool = next((t for t in tools if t["function"]["name"] == name), None)
            if tool is None:
                raise ValueError(f"Tool choice '{name}' not found in tools.")
            # the arguments follow the tool's parameter schema (plain JSON if it is outside
            # what bitnet.constraints supports, as llama-cpp-python falls back to JSON_GBNF)
            marker = _arguments_marker(tool["function"]["parameters"], llama.verbose)
        if marker is not None:
            logits_processor = _with_marker(logits_processor, marker)

        completion_or_chunks = llama.create_completion(
            prompt=prompt,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            typical_p=typical_p,
            logprobs=top_logprobs if logprobs else None,
            stream=stream,
            stop=stop,
            seed=seed,
            max_tokens=max_tokens,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            repeat_penalty=repeat_penalty,
            tfs_z=tfs_z,
            mirostat_mode=mirostat_mode,
            mirostat_tau=mirostat_tau,
            mirostat_eta=mirostat_eta,
            model=model,
            logits_processor=logits_processor,
            stopping_criteria=stopping_criteria,
            grammar=grammar,
            # str keys from the chat request: create_completion applies int() to each, as
            # llama-cpp-python's does
            logit_bias=cast(Optional[Dict[int, float]], logit_bias),
        )
        if tool is not None:
            return _convert_completion_to_chat_function(
                tool["function"]["name"], completion_or_chunks, stream
            )
        return _convert_completion_to_chat(completion_or_chunks, stream=stream)

    return chat_completion_handler


def register_chat_format(name: str) -> Callable[[ChatFormatter], ChatFormatter]:
    def decorator(f: ChatFormatter) -> ChatFormatter:
        LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
            name, chat_formatter_to_chat_completion_handler(f)
        )
        CHAT_FORMATTERS[name] = f
        return f

    return decorator


CHAT_FORMATTERS: Dict[str, ChatFormatter] = {}
"""Built-in format name -> formatter (to render a prompt without generating)."""


# ---------------------------------------------------------------------------------------------
# prompt-building helpers (llama-cpp-python's, same strings)

Turns = List[Tuple[str, Optional[str]]]


def _get_system_message(messages: List[Message]) -> str:
    """The first system message's content ("" if none)."""
    for message in messages:
        if message["role"] == "system":
            return message["content"] or ""
    return ""


def _map_roles(messages: List[Message], role_map: Dict[str, str]) -> Turns:
    """(mapped role, content or None) for messages whose role is in role_map."""
    output: Turns = []
    for message in messages:
        role = message["role"]
        if role in role_map:
            content = message["content"] if isinstance(message["content"], str) else None
            output.append((role_map[role], content))
    return output


def _format_llama2(system_message: str, messages: Turns, sep: str, sep2: str) -> str:
    seps = [sep, sep2]
    ret = system_message + sep
    for i, (role, message) in enumerate(messages):
        if system_message and i == 0:
            ret += (message or "") + seps[i % 2]
        elif message:
            ret += role + message + " " + seps[i % 2]
        else:
            ret += role + " "
    return ret


def _format_add_colon_single(system_message: str, messages: Turns, sep: str) -> str:
    ret = system_message + sep
    for role, message in messages:
        ret += role + ": " + message + sep if message else role + ":"
    return ret


def _format_add_colon_two(system_message: str, messages: Turns, sep: str, sep2: str) -> str:
    seps = [sep, sep2]
    ret = system_message + seps[0]
    for i, (role, message) in enumerate(messages):
        ret += role + ": " + message + seps[i % 2] if message else role + ":"
    return ret


def _format_no_colon_single(system_message: str, messages: Turns, sep: str) -> str:
    ret = system_message
    for role, message in messages:
        ret += role + message + sep if message else role
    return ret


def _format_add_colon_space_single(system_message: str, messages: Turns, sep: str) -> str:
    ret = system_message + sep
    for role, message in messages:
        ret += role + ": " + message + sep if message else role + ": "
    return ret


def _format_chatml(system_message: str, messages: Turns, sep: str) -> str:
    ret = "" if system_message == "" else system_message + sep + "\n"
    for role, message in messages:
        ret += role + "\n" + message + sep + "\n" if message else role + "\n"
    return ret


def _format_chatglm3(system_message: str, messages: Turns, sep: str) -> str:
    ret = system_message if system_message else ""
    for role, message in messages:
        ret += role + "\n" + " " + message if message else role
    return ret


def _with_reply(messages: List[Message], roles: Dict[str, str]) -> Turns:
    """Mapped turns plus the open assistant turn."""
    turns = _map_roles(messages, roles)
    turns.append((roles["assistant"], None))
    return turns


# ---------------------------------------------------------------------------------------------
# the built-in formats


@register_chat_format("llama-2")
def format_llama2(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="<s>[INST]", assistant="[/INST]")
    turns = _map_roles(messages, roles)
    system_message = _get_system_message(messages)
    if system_message:
        system_message = f"[INST] <<SYS>>\n{system_message}\n<</SYS>>"
    prompt = _format_llama2(system_message, turns, " ", "</s>") + "[/INST]"
    return ChatFormatterResponse(prompt=prompt)


@register_chat_format("llama-3")
def format_llama3(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(
        system="<|start_header_id|>system<|end_header_id|>\n\n",
        user="<|start_header_id|>user<|end_header_id|>\n\n",
        assistant="<|start_header_id|>assistant<|end_header_id|>\n\n",
    )
    sep = "<|eot_id|>"
    prompt = _format_no_colon_single("", _with_reply(messages, roles), sep)
    return ChatFormatterResponse(prompt=prompt, stop=sep)


@register_chat_format("alpaca")
def format_alpaca(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="### Instruction", assistant="### Response")
    turns = _map_roles(messages, roles)
    prompt = _format_add_colon_two(_get_system_message(messages), turns, "\n\n", "</s>")
    return ChatFormatterResponse(prompt=prompt)


@register_chat_format("qwen")
def format_qwen(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="<|im_start|>user", assistant="<|im_start|>assistant")
    system_message = _get_system_message(messages) or "You are a helpful assistant."
    system_message = f"<|im_start|>system\n{system_message}"
    prompt = _format_chatml(system_message, _with_reply(messages, roles), "<|im_end|>")
    return ChatFormatterResponse(prompt=prompt, stop="<|endoftext|>")


@register_chat_format("vicuna")
def format_vicuna(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    system_message = (
        "A chat between a curious user and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the user's questions."
    )
    roles = dict(user="USER", assistant="ASSISTANT")
    prompt = _format_add_colon_two(system_message, _with_reply(messages, roles), " ", "</s>")
    return ChatFormatterResponse(prompt=prompt)


@register_chat_format("oasst_llama")
def format_oasst_llama(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="<|prompter|>", assistant="<|assistant|>")
    system_message = f"[INST] <<SYS>>\n{_get_system_message(messages)}\n<</SYS>>\n\n"
    prompt = _format_no_colon_single(system_message, _with_reply(messages, roles), "</s>")
    return ChatFormatterResponse(prompt=prompt)


@register_chat_format("baichuan-2")
def format_baichuan2(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="<reserved_106>", assistant="<reserved_107>")
    prompt = _format_no_colon_single(_get_system_message(messages), _with_reply(messages, roles), "")
    return ChatFormatterResponse(prompt=prompt)


@register_chat_format("baichuan")
def format_baichuan(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="<reserved_102>", assistant="<reserved_103>")
    prompt = _format_no_colon_single(_get_system_message(messages), _with_reply(messages, roles), "")
    return ChatFormatterResponse(prompt=prompt)


_OPENBUDDY_SYSTEM = """You are a helpful, respectful and honest INTP-T AI Assistant named Buddy. You are talking to a human User.
Always answer as helpfully and logically as possible, while being safe. Your answers should not include any harmful, political, religious, unethical, racist, sexist, toxic, dangerous, or illegal content. Please ensure that your responses are socially unbiased and positive in nature.
If a question does not make any sense, or is not factually coherent, explain why instead of answering something not correct. If you don't know the answer to a question, please don't share false information.
You can speak fluently in many languages, for example: English, Chinese.
You cannot access the internet, but you have vast knowledge, cutoff: 2021-09.
You are trained by OpenBuddy team, (https://openbuddy.ai, https://github.com/OpenBuddy/OpenBuddy), you are based on LLaMA and Falcon transformers model, not related to GPT or OpenAI.

"""  # noqa: E501 (verbatim from llama-cpp-python)


@register_chat_format("openbuddy")
def format_openbuddy(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="User", assistant="Assistant")
    prompt = _format_add_colon_single(_OPENBUDDY_SYSTEM, _with_reply(messages, roles), "\n")
    return ChatFormatterResponse(prompt=prompt)


@register_chat_format("redpajama-incite")
def format_redpajama_incite(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="<human>", assistant="<bot>")
    prompt = _format_add_colon_single(_get_system_message(messages), _with_reply(messages, roles), "\n")
    return ChatFormatterResponse(prompt=prompt, stop="<human>")


@register_chat_format("snoozy")
def format_snoozy(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    default_system_message = (
        "The prompt below is a question to answer, a task to complete, or a conversation to "
        "respond to; decide which and write an appropriate response."
    )
    # subtle: llama-cpp-python formats "### Instruction:\n{...}" and then discards it
    system_message = _get_system_message(messages) or default_system_message
    roles = dict(user="### Prompt", assistant="### Response")
    prompt = _format_add_colon_single(system_message, _with_reply(messages, roles), "\n")
    return ChatFormatterResponse(prompt=prompt, stop="###")


@register_chat_format("phind")
def format_phind(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="### User Message", assistant="### Assistant")
    system_message = "### System Prompt\nYou are an intelligent programming assistant."
    prompt = _format_add_colon_single(system_message, _with_reply(messages, roles), "\n\n")
    return ChatFormatterResponse(prompt=prompt)


@register_chat_format("intel")
def format_intel(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="### User:", assistant="### Assistant:")
    # subtle: the placeholder is never filled in llama-cpp-python either
    system_message = "### System:\n{system_message}"
    prompt = _format_add_colon_single(system_message, _with_reply(messages, roles), "\n")
    return ChatFormatterResponse(prompt=prompt)


@register_chat_format("open-orca")
def format_open_orca(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    system_message = (
        "You are a helpful assistant. Please answer truthfully and write out your "
        "thinking step by step to be sure you get the right answer. If you make a mistake or encounter "
        "an error in your thinking, say so out loud and attempt to correct it. If you don't know or "
        "aren't sure about something, say so clearly. You will act as a professional logician, "
        "mathematician, and physicist. You will also act as the most appropriate type of expert to "
        "answer any particular question or solve the relevant problem; state which expert type your "
        "are, if so. Also think of any particular named expert that would be ideal to answer the "
        "relevant question or solve the relevant problem; name and act as them, if appropriate."
    )
    roles = ("User", "Assistant")
    turns = _map_roles(messages, dict(zip(roles, roles)))
    turns.append((roles[1], None))
    prompt = _format_add_colon_space_single(system_message, turns, "<|end_of_turn|>\n")
    return ChatFormatterResponse(prompt=prompt, stop="User")


@register_chat_format("mistrallite")
def format_mistrallite(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="<|prompter|>", assistant="</s>\n<|assistant|>")
    system_message = f"<|system|>{_get_system_message(messages)}</s>"
    prompt = _format_no_colon_single(system_message, _with_reply(messages, roles), " ")
    return ChatFormatterResponse(prompt=prompt)


@register_chat_format("zephyr")
def format_zephyr(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    system_message = f"<|system|>\n{_get_system_message(messages)}"
    roles = dict(user="<|user|>\n", assistant="<|assistant|>\n")
    prompt = _format_chatml(system_message, _with_reply(messages, roles), "</s>")
    return ChatFormatterResponse(prompt=prompt, stop="</s>")


@register_chat_format("pygmalion")
def format_pygmalion(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    system_message = f"<|system|>{_get_system_message(messages)}"
    roles = dict(user="<|user|>", assistant="<|model|>")
    prompt = _format_chatml(system_message, _with_reply(messages, roles), "\n")
    return ChatFormatterResponse(prompt=prompt, stop="\n")


@register_chat_format("chatml")
def format_chatml(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    system_message = f"<|im_start|>system\n{_get_system_message(messages)}"
    roles = dict(user="<|im_start|>user", assistant="<|im_start|>assistant")
    prompt = _format_chatml(system_message, _with_reply(messages, roles), "<|im_end|>")
    return ChatFormatterResponse(prompt=prompt, stop="<|im_end|>")


@register_chat_format("mistral-instruct")
def format_mistral_instruct(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    eos = "</s>"
    prompt = ""
    for message in messages:
        content = message["content"]
        if message["role"] == "user" and content is not None and isinstance(content, str):
            prompt += "[INST] " + content
        elif message["role"] == "assistant" and content is not None:
            prompt += " [/INST]" + content + eos
    prompt += " [/INST]"
    return ChatFormatterResponse(prompt=prompt, stop=eos)


@register_chat_format("chatglm3")
def format_chatglm3(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    system_message = f"<|system|>\n{_get_system_message(messages)}"
    roles = dict(user="<|user|>", assistant="<|assistant|>")
    prompt = _format_chatglm3(system_message, _with_reply(messages, roles), "</s>")
    return ChatFormatterResponse(prompt=prompt, stop="</s>")


@register_chat_format("openchat")
def format_openchat(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    system_message = f"{_get_system_message(messages)}<|end_of_turn|>"
    roles = dict(user="GPT4 Correct User: ", assistant="<|end_of_turn|>GPT4 Correct Assistant: ")
    prompt = _format_chatml(system_message, _with_reply(messages, roles), "<|end_of_turn|>")
    return ChatFormatterResponse(prompt=prompt, stop="<|end_of_turn|>")


@register_chat_format("saiga")
def format_saiga(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="user", bot="bot", system="system")
    prompt = ""
    for role, content in _map_roles(messages, roles):
        prompt += f"<s>{role}\n{content}</s>" if content else f"<s>{role}\n"
    prompt += "<s>bot"
    return ChatFormatterResponse(prompt=prompt.strip())


@register_chat_format("gemma")
def format_gemma(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
    roles = dict(user="<start_of_turn>user\n", assistant="<start_of_turn>model\n")
    sep = "<end_of_turn>\n"
    prompt = _format_no_colon_single("", _with_reply(messages, roles), sep)
    return ChatFormatterResponse(prompt=prompt, stop=sep)


# ---------------------------------------------------------------------------------------------
# function calling (llama-cpp-python's custom handlers; its grammars become constraint markers)


def _sampling(**kwargs: Any) -> Dict[str, Any]:
    return kwargs


def _literal_marker(choices: List[str]) -> Any:
    """The constraint of a GBNF `root ::= "a" | "b" | ...` (text one of `choices`)."""
    from bitnet.constraints import JSONOutput

    return JSONOutput(choices=choices)


# llama-cpp-python's chatml-function-calling template, verbatim (it decides the prompt tokens)
CHATML_FUNCTION_CALLING_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message.role }}\n"
    "{% if message.role == 'system' %}"
    "{{ message.content }}"
    "{% if tool_calls %}"
    "\n\nYou have access to the following functions:\n"
    "{% for tool in tools %}"
    "\nfunctions.{{ tool.function.name }}:\n"
    "{{ tool.function.parameters | tojson }}"
    "\n{% endfor %}"
    "\n\nYou can respond to users messages with either a single message or one or more function calls."
    "\n\nTo respond with a message begin the message with 'message:', use the following format:"
    "\n\nmessage:"
    "\n<message>"
    "\n\nTo respond with one or more function calls begin the message with 'functions.<function_name>:', use the following format:"  # noqa: E501
    "\n\nfunctions.<function_name>:"
    '\n{ "arg1": "value1", "arg2": "value2" }'
    "\nfunctions.<function_name>:"
    '\n{ "arg1": "value1", "arg2": "value2" }'
    "{% endif %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% if message.role == 'user' %}"
    "{{ message.content }}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% if message.role == 'assistant' %}"
    "{% if message.content and message.content | length > 0 %}"
    "{% if tool_calls %}"
    "message:\n"
    "{% endif %}"
    "{{ message.content }}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% if 'tool_calls' in message %}"
    "{% for tool_call in message.tool_calls %}"
    "functions.{{ tool_call.function.name }}:\n"
    "{{ tool_call.function.arguments }}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _chatml_function_calling_renderer() -> Any:
    # the same environment as llama-cpp-python: HTML autoescape for string templates (so "<"
    # in contents renders as "&lt;"), jinja2's own tojson (sorted keys, HTML-safe), strict
    return ImmutableSandboxedEnvironment(
        autoescape=jinja2.select_autoescape(["html", "xml"]),
        undefined=jinja2.StrictUndefined,
    ).from_string(CHATML_FUNCTION_CALLING_TEMPLATE)


@register_chat_completion_handler("chatml-function-calling")
def chatml_function_calling(  # noqa: C901 (mirrors llama-cpp-python's one function)
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
    grammar: Optional[Any] = None,
    logprobs: Optional[bool] = None,
    top_logprobs: Optional[int] = None,
    **kwargs: Any,
) -> Any:
    """ChatML with tools: a message or one or more `functions.<name>:` calls whose arguments
    follow the tool's parameter schema. The model first picks `message:` or a function name
    (greedy, constrained to those strings), then writes the message or the arguments; after
    each call it picks another function or `<|im_end|>`. Streaming works for plain messages
    and forced tool choices; automatic tool choice with stream=True raises ValueError (as in
    llama-cpp-python)."""
    renderer = _chatml_function_calling_renderer()
    if functions is not None:
        tools = [{"type": "function", "function": function} for function in functions]
    if function_call is not None:
        if isinstance(function_call, str) and function_call in ("none", "auto"):
            tool_choice = function_call
        if isinstance(function_call, dict) and "name" in function_call:
            tool_choice = {"type": "function", "function": {"name": function_call["name"]}}

    stop = (
        [stop, "<|im_end|>"] if isinstance(stop, str)
        else stop + ["<|im_end|>"] if stop
        else ["<|im_end|>"]
    )
    common = _sampling(
        top_p=top_p, top_k=top_k, min_p=min_p, typical_p=typical_p,
        presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
        repeat_penalty=repeat_penalty, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
        mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, model=model,
    )

    # case 1: no tool choice -- a plain ChatML completion
    if (
        tool_choice is None
        or (isinstance(tool_choice, str) and tool_choice == "none")
        or tools is None
        or len(tools) == 0
    ):
        prompt = renderer.render(messages=messages, tools=[], tool_calls=None,
                                 add_generation_prompt=True)
        lp = logits_processor
        if response_format is not None and response_format["type"] == "json_object":
            from bitnet.constraints import JSONOutput

            schema = response_format.get("schema")
            lp = _with_marker(lp, _arguments_marker(schema) if schema is not None else JSONOutput())
        return _convert_completion_to_chat(
            llama.create_completion(
                prompt=prompt, temperature=temperature, stream=stream, stop=stop,
                max_tokens=max_tokens, logits_processor=lp, grammar=grammar,
                logprobs=top_logprobs if logprobs else None, **common,
            ),
            stream=stream,
        )

    # case 2: a forced tool
    if isinstance(tool_choice, dict):
        tool_name = tool_choice["function"]["name"]
        tool = next((t for t in tools if t["function"]["name"] == tool_name), None)
        if tool is None:
            raise ValueError(f"Tool with name '{tool_name}' not found in tools")
        prompt = renderer.render(messages=messages, tools=tools, tool_calls=True,
                                 add_generation_prompt=True)
        prompt += f"functions.{tool_name}:\n"
        marker = _arguments_marker(tool["function"]["parameters"], llama.verbose)
        completion_or_chunks = llama.create_completion(
            prompt=prompt, temperature=temperature, stream=stream, stop=stop,
            max_tokens=max_tokens, logits_processor=_with_marker(logits_processor, marker),
            **common,
        )
        return _convert_completion_to_chat_function(tool_name, completion_or_chunks, stream)

    # case 3: automatic tool choice
    assert isinstance(tool_choice, str) and tool_choice == "auto"
    function_names = [f"functions.{tool['function']['name']}:" for tool in tools]
    initial_choices = function_names + ["message:"]
    follow_up_choices = function_names + ["<|im_end|>"]
    prompt = renderer.render(messages=messages, tools=tools, tool_calls=True,
                             add_generation_prompt=True)
    completion = _whole(llama.create_completion(
        prompt=prompt, temperature=0, stream=False, stop=[":"], max_tokens=None,
        logits_processor=_with_marker(logits_processor, _literal_marker(initial_choices)),
        **common,
    ))
    text = completion["choices"][0]["text"]
    if "message" in text:
        return _convert_completion_to_chat(
            llama.create_completion(
                prompt=prompt + "message:\n", temperature=temperature, stream=stream,
                stop=["<|im_end|>"], logprobs=top_logprobs if logprobs else None,
                max_tokens=None,
                # subtle: llama-cpp-python constrains the message with the follow-up grammar
                # (a function name or "<|im_end|>"), kept for identical output
                logits_processor=_with_marker(logits_processor, _literal_marker(follow_up_choices)),
                **common,
            ),
            stream=stream,
        )

    # one or more function calls
    tool_name = text[len("functions."):]
    tool = next((t for t in tools if t["function"]["name"] == tool_name), None)
    if not stream:
        completions: List[Dict[str, Any]] = []
        completions_tool_name: List[str] = []
        while tool is not None:
            prompt += f"functions.{tool_name}:\n"
            marker = _arguments_marker(tool["function"]["parameters"], llama.verbose)
            call = _whole(llama.create_completion(
                prompt=prompt, temperature=temperature, stream=False, stop=stop,
                max_tokens=None, logits_processor=_with_marker(logits_processor, marker),
                **common,
            ))
            completions.append(call)
            completions_tool_name.append(tool_name)
            prompt += call["choices"][0]["text"]
            prompt += "\n"
            response = _whole(llama.create_completion(
                prompt=prompt, temperature=temperature, stream=False, stop=stop,
                max_tokens=None,
                logits_processor=_with_marker(logits_processor, _literal_marker(follow_up_choices)),
                **common,
            ))
            tool_name = response["choices"][0]["text"][len("functions."):]
            tool = next((t for t in tools if t["function"]["name"] == tool_name), None)

        # subtle, as in llama-cpp-python: "function_call" (one call only) names the last text
        # the follow-up produced, and id / logprobs come from the first (choice) completion
        function_call_dict: Dict[str, Any] = (
            {"function_call": {"name": tool_name,
                               "arguments": completions[0]["choices"][0]["text"]}}
            if len(completions) == 1 else {}
        )
        return {
            "id": "chat" + completion["id"],
            "object": "chat.completion",
            "created": completion["created"],
            "model": completion["model"],
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "index": 0,
                    "logprobs": _convert_text_completion_logprobs_to_chat(
                        completion["choices"][0]["logprobs"]
                    ),
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_" + f"_{i}_" + name + "_" + c["id"],
                                "type": "function",
                                "function": {"name": name, "arguments": c["choices"][0]["text"]},
                            }
                            for i, (name, c) in enumerate(zip(completions_tool_name, completions))
                        ],
                        **function_call_dict,
                    },
                }
            ],
            "usage": {
                "completion_tokens": sum(
                    c["usage"]["completion_tokens"] if "usage" in c else 0 for c in completions
                ),
                "prompt_tokens": sum(
                    c["usage"]["prompt_tokens"] if "usage" in c else 0 for c in completions
                ),
                "total_tokens": sum(
                    c["usage"]["total_tokens"] if "usage" in c else 0 for c in completions
                ),
            },
        }
    raise ValueError("Automatic streaming tool choice is not supported")


_FUNCTIONARY_SYSTEM_MESSAGE = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions. The assistant calls functions "
    "with appropriate input when necessary"
)


def _functionary_type(param: Dict[str, Any], indent_level: int) -> str:
    """A parameter schema as functionary's TypeScript-like type."""
    indent = "  " * indent_level
    if "$ref" in param:
        return str(param["$ref"].split("/")[-1])
    if param.get("type") == "array":
        return f"Array<{_functionary_type(param.get('items', {}), indent_level + 1)}>"
    if param.get("type") == "object":
        nested = "{\n"
        for name, nested_param in param.get("properties", {}).items():
            nested += f"{indent}  {name}: {_functionary_type(nested_param, indent_level + 1)},\n"
        return nested + indent + "}"
    if "enum" in param:
        return " | ".join([f'"{value}"' for value in param["enum"]])
    return str(param.get("type", "any"))


def _functionary_shared_definitions(shared_defs: Dict[str, Any], indent_level: int) -> str:
    indent = "  " * indent_level
    out = ""
    for def_name, def_properties in shared_defs.items():
        out += f"{indent}type {def_name} = "
        if def_properties.get("type") == "object":
            out += _functionary_type(def_properties, indent_level)
        elif "enum" in def_properties:
            out += " | ".join([f'"{value}"' for value in def_properties["enum"]])
        out += ";\n"
    return out


def _functionary_schema(functions: List[Dict[str, Any]], v0: bool, namespace: str = "functions") -> str:
    """The `namespace functions { ... }` system text (v0 indents members, v1/v2 do not)."""
    pad, pad2 = ("  ", "    ") if v0 else ("", "")
    schema = "// Supported function definitions that should be called when necessary.\n"
    schema += f"namespace {namespace} {{\n\n"
    shared: Dict[str, Any] = {}
    for function in functions:
        shared.update(function.get("parameters", {}).get("$defs", {}))
    schema += _functionary_shared_definitions(shared, 1)
    for function in functions:
        parameters = function.get("parameters", {})
        required_params = parameters.get("required", [])
        schema += f"{pad}// {function.get('description', '')}\n"
        schema += f"{pad}type {function['name']} = (_: {{\n"
        for param_name, param in parameters.get("properties", {}).items():
            optional = "" if param_name in required_params else "?"
            schema += f"{pad2}// {param.get('description', '')}\n"
            schema += f"{pad2}{param_name}{optional}: {_functionary_type(param, 2)},\n"
        schema += f"{pad}}}) => any;\n\n"
    schema += f"}} // namespace {namespace}" + ("\n" if v0 else "")
    return schema


def _functionary_v0_message(msg: Message) -> str:
    if msg["role"] == "system":
        return f"system:\n{msg['content']}\n"
    if msg["role"] == "function" and "name" in msg:
        return f"function name={msg['name']}:\n{msg['content']}\n"
    if msg["role"] == "function" and "function_call" in msg:
        call = msg["function_call"]
        return f"function name={call['name']}:\n{call['arguments']}\n"
    if msg["role"] == "tool":
        if msg["content"] is not None:
            return f"function name={msg['tool_call_id']}:\n{msg['content']}\n"
        return f"function name={msg['tool_call_id']}\n"
    if msg["role"] == "user":
        if msg["content"] is None:
            return "user:\n</s></s>\n"
        return f"user:\n</s>{msg['content']}</s>\n"
    if msg["role"] == "assistant":
        if msg["content"] is not None and "function_call" in msg:
            call = msg["function_call"]
            return (f"assistant:\n{msg['content']}\nassistant to={call['name']}:\n"
                    f"{call['arguments']}</s>\n")
        if "function_call" in msg:
            call = msg["function_call"]
            return f"assistant to={call['name']}:\n{call['arguments']}</s>\n"
        if "tool_calls" in msg and len(msg["tool_calls"]) > 0:
            tool_call = msg["tool_calls"][0]  # llama-cpp-python returns on the first one
            return f"assistant to={tool_call['id']}:\n{tool_call['function']['arguments']}</s>\n"
        if msg["content"] is None:
            return "assistant"
        return f"assistant:\n{msg['content']}\n"
    raise ValueError(f"Unsupported role: {msg['role']}")


def _functionary_messages(
    messages: List[Message],
    system: List[str],
) -> List[Message]:
    """System messages, then the conversation with function names prefixed "functions."
    (the caller's message dicts are updated in place, as llama-cpp-python does)."""
    all_messages: List[Message] = [{"role": "system", "content": c} for c in system]
    all_messages.append({"role": "system", "content": _FUNCTIONARY_SYSTEM_MESSAGE})
    for message in messages:
        if message["role"] == "function" and "name" in message:
            message["name"] = f"functions.{message['name']}"
        if "function_call" in message:
            message["function_call"]["name"] = f"functions.{message['function_call']['name']}"
        all_messages.append(message)
    return all_messages


def functionary_v0_prompt(
    messages: List[Message],
    functions: Optional[List[Dict[str, Any]]] = None,
    tools: Optional[List[Dict[str, Any]]] = None,
) -> str:
    """The prompt of the "functionary" chat format (without the reply's opening)."""
    system = []
    if functions is not None:
        system.append(_functionary_schema(functions, v0=True))
    if tools is not None:
        system.append(_functionary_schema(
            [tool["function"] for tool in tools if tool["type"] == "function"], v0=True))
    all_messages = _functionary_messages(messages, system)
    all_messages.append({"role": "assistant", "content": None})
    return "".join(_functionary_v0_message(msg) for msg in all_messages)


def _parameters_of(name: Any, functions: Optional[List[Dict[str, Any]]],
                   tools: Optional[List[Dict[str, Any]]]) -> Any:
    body = None
    for function in functions or []:
        if function["name"] == name:
            body = function["parameters"]
            break
    for tool in tools or []:
        if tool["type"] == "function" and tool["function"]["name"] == name:
            body = tool["function"]["parameters"]
            break
    return body


@register_chat_completion_handler("functionary")
def functionary_chat_handler(
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
    grammar: Optional[Any] = None,
    **kwargs: Any,
) -> Any:
    """The first functionary format (`system:` / `user:` / `assistant to=functions.x:`).

    As in llama-cpp-python: without functions it is a plain chat; with tool_choice "auto" (or
    none given) a first completion with create_completion's defaults (temperature 0.8, the
    instance seed) picks the function; the arguments are then constrained to the function's
    parameter schema; only stream=False is supported for calls (AssertionError otherwise).
    """
    common = _sampling(
        top_p=top_p, top_k=top_k, min_p=min_p, typical_p=typical_p,
        presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
        repeat_penalty=repeat_penalty, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
        mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, model=model,
    )
    if tools is not None:
        functions = [tool["function"] for tool in tools if tool["type"] == "function"]
    if tool_choice is not None:
        function_call = tool_choice if isinstance(tool_choice, str) else tool_choice["function"]
    prompt = functionary_v0_prompt(messages, functions, tools)

    if function_call is None and (functions is None or len(functions) == 0):
        completion_or_chunks = llama.create_completion(
            prompt=prompt + ":\n", temperature=temperature, stream=stream,
            stop=["user:", "</s>"], max_tokens=max_tokens, logits_processor=logits_processor,
            grammar=grammar, **common,
        )
        return _convert_completion_to_chat(completion_or_chunks, stream=stream)

    if function_call is None or (isinstance(function_call, str) and function_call == "auto"):
        first = _whole(llama.create_completion(
            prompt=prompt, stop="\n", stream=False
        ))
        completion_text = first["choices"][0]["text"]
        # strip " to=functions." and the ending ":"
        function_call = completion_text.split(".")[-1][:-1]
        new_prompt = prompt + completion_text + "\n"
    elif isinstance(function_call, str) and function_call != "none":
        new_prompt = prompt + ":\n"
    elif isinstance(function_call, dict):
        new_prompt = prompt + f" to=functions.{function_call['name']}:\n"
        function_call = function_call["name"]
    else:
        new_prompt = prompt + ":\n"

    function_body = _parameters_of(function_call, functions, tools)
    from bitnet.constraints import JSONOutput

    marker = (_arguments_marker(function_body, llama.verbose) if function_body is not None
              else JSONOutput())
    completion = _whole(llama.create_completion(
        prompt=new_prompt, stop=["user:", "</s>"], stream=False, max_tokens=max_tokens,
        temperature=temperature, logits_processor=_with_marker(logits_processor, marker),
        **common,
    ))
    assert "usage" in completion
    assert isinstance(function_call, str)
    assert stream is False  # llama-cpp-python: "TODO: support stream mode"
    if llama.verbose:
        print(new_prompt)
        print(completion["choices"][0]["text"])
    return _one_tool_call_response(completion, function_call, function_call)


@register_chat_completion_handler("functionary-v1")
@register_chat_completion_handler("functionary-v2")
def functionary_v1_v2_chat_handler(llama: Llama, messages: List[Message], **kwargs: Any) -> Any:
    """functionary v1/v2 render through the model's HuggingFace tokenizer (its chat template
    and special tokens), which llama-cpp-python takes from `Llama(tokenizer=LlamaHFTokenizer)`;
    without one it fails with the same AssertionError, without `transformers` with the same
    ImportError."""
    tokenizer = llama.tokenizer_
    assert hasattr(tokenizer, "hf_tokenizer"), (
        "Please provide a valid hf_tokenizer_path from https://huggingface.co/meetkai when "
        "initializing the Llama class"
    )
    import transformers  # noqa: F401 (llama-cpp-python imports AutoTokenizer here)

    raise NotImplementedError(
        "functionary-v1/v2 with a HuggingFace tokenizer is not implemented in bitnet.llama_compat"
    )
