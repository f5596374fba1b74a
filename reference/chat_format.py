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
`bitnet.json_constraint`) is honoured without a grammar: the handler adds a `JSONOutput`
marker that the sampler turns into a JSON-prefix constraint.

Left out: the handlers that need grammars or vision models (functionary*,
chatml-function-calling, llava and friends) and `tool_choice` naming one tool: they raise
NotImplementedError saying so. A `logits_processor` is the way to constrain tokens here.
"""

from __future__ import annotations

import dataclasses
import json
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

        if response_format is not None and response_format.get("type") == "json_object":
            # where llama-cpp-python builds a JSON grammar, a JSONOutput marker asks the sampler
            # for its reject-and-resample JSON constraint (bitnet.json_constraint); a schema
            # outside the supported subset raises NotImplementedError naming the keyword
            from .json_constraint import JSONOutput

            schema = response_format.get("schema")
            marker = JSONOutput(schema=schema) if schema is not None else JSONOutput()
            logits_processor = list(logits_processor or []) + [marker]
        if functions is not None:
            tools = [{"type": "function", "function": function} for function in functions]
        if function_call is not None:
            if isinstance(function_call, str) and function_call in ("none", "auto"):
                tool_choice = function_call
            if isinstance(function_call, dict) and "name" in function_call:
                tool_choice = {"type": "function", "function": {"name": function_call["name"]}}
        if tool_choice is not None and isinstance(tool_choice, dict) and tools is not None:
            name = tool_choice["function"]["name"]
            tool = next((t for t in tools if t["function"]["name"] == name), None)
            if tool is None:
                raise ValueError(f"Tool choice '{name}' not found in tools.")
            raise NotImplementedError(
                f"tool_choice naming a function ({name!r}) constrains output to its JSON "
                f"schema with a grammar; {GRAMMAR_HINT}"
            )

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
            logit_bias=logit_bias,
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


def _unsupported_handler(name: str, why: str) -> ChatCompletionHandler:
    def handler(**kwargs: Any) -> Any:
        raise NotImplementedError(f"chat_format {name!r} is not implemented here: {why}")

    return handler


for _name in ("functionary", "functionary-v1", "functionary-v2", "chatml-function-calling"):
    LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
        _name, _unsupported_handler(_name, "function calling needs grammar-constrained decoding")
    )
