"""Chat templates rendered with jinja2: GGUF / Hugging Face templates (`Jinja2ChatFormatter`).

Templates render in jinja2's `ImmutableSandboxedEnvironment` (trim_blocks, lstrip_blocks,
loop controls, a no-op `{% generation %}` tag, transformers' `tojson`) with llama-cpp-python's
render variables: messages, bos_token, eos_token, raise_exception, add_generation_prompt,
functions, function_call, tools, tool_choice, strftime_now. The sandbox refuses attribute
access to Python internals, which closes the template-injection hole of CVE-2024-34359.
`hf_tokenizer_config_to_chat_formatter` builds a formatter from a tokenizer_config.json dict;
`hf_autotokenizer_to_chat_formatter` from a local Hugging Face tokenizer directory
(transformers, no hub downloads).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple, Union

import jinja2
import jinja2.ext
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bitnet.llama_compat._chat_registry import (
    ChatCompletionHandler,
    ChatFormatter,
    ChatFormatterResponse,
    Message,
    chat_formatter_to_chat_completion_handler,
)


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
            from bitnet.llama_compat.llama import StoppingCriteriaList

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



def hf_autotokenizer_to_chat_formatter(
    pretrained_model_name_or_path: Union[str, os.PathLike[str]],
) -> ChatFormatter:
    """A formatter from a Hugging Face tokenizer's chat template (a local directory only:
    transformers' AutoTokenizer with local_files_only)."""
    from transformers import AutoTokenizer

    path = os.fspath(pretrained_model_name_or_path)
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is not a local directory: bitnet.llama_compat loads Hugging Face "
                         "tokenizers from local files only (no hub downloads)")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)

    def format_autotokenizer(messages: List[Message], **kwargs: Any) -> ChatFormatterResponse:
        tokenizer.use_default_system_prompt = False
        prompt: Any = tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
        assert isinstance(prompt, str)
        # the prompt and the tokenizer's eos token, as llama-cpp-python returns them
        return ChatFormatterResponse(prompt=prompt, stop=tokenizer.eos_token, added_special=True)

    return format_autotokenizer


def hf_autotokenizer_to_chat_completion_handler(
    pretrained_model_name_or_path: Union[str, os.PathLike[str]],
) -> ChatCompletionHandler:
    return chat_formatter_to_chat_completion_handler(
        hf_autotokenizer_to_chat_formatter(pretrained_model_name_or_path))
