"""Chat prompt formats and chat-completion handlers (`llama_cpp.llama_chat_format`).

Role: turn `messages` into the exact prompt string llama-cpp-python renders (so the prompt
tokenizes to the same ids), run `Llama.create_completion` and reshape its result into
`chat.completion` / `chat.completion.chunk` dicts. The pieces:

- `_chat_registry`: the handler registry, `ChatFormatterResponse`, the formatter -> handler
  wrapper (response_format / named tool grammars as llama-cpp-python builds them);
- `_chat_jinja`: GGUF / Hugging Face jinja2 templates (`Jinja2ChatFormatter`, sandboxed);
- `_chat_formats`: the built-in `chat_format` names (llama-2, llama-3, chatml, gemma, ...);
- `_chat_functions`: "chatml-function-calling" and the functionary formats;
- `_chat_convert`: completion -> chat completion dicts;
- `_chat_vision`: the Llava / MTMD handler names (no vision encoder here: they raise).

Every public name of llama-cpp-python's module is importable from here.
"""

from __future__ import annotations

from typing import Dict, Optional

from bitnet.llama_compat._chat_convert import (  # noqa: F401
    _convert_completion_to_chat,
    _convert_completion_to_chat_function,
    _convert_text_completion_chunks_to_chat,
    _convert_text_completion_logprobs_to_chat,
    _convert_text_completion_to_chat,
)
from bitnet.llama_compat._chat_formats import *  # noqa: F403
from bitnet.llama_compat._chat_formats import format  # noqa: F401,A004
from bitnet.llama_compat._chat_functions import (  # noqa: F401
    CHATML_FUNCTION_CALLING_TEMPLATE,
    chatml_function_calling,
    functionary_chat_handler,
    functionary_v0_prompt,
    functionary_v1_v2_chat_handler,
)
from bitnet.llama_compat._chat_jinja import (  # noqa: F401
    Jinja2ChatFormatter,
    hf_autotokenizer_to_chat_completion_handler,
    hf_autotokenizer_to_chat_formatter,
    hf_tokenizer_config_to_chat_completion_handler,
    hf_tokenizer_config_to_chat_formatter,
)
from bitnet.llama_compat._chat_registry import (  # noqa: F401
    CHAT_FORMATTERS,
    ChatCompletionHandler,
    ChatFormatter,
    ChatFormatterResponse,
    LlamaChatCompletionHandler,
    LlamaChatCompletionHandlerNotFoundException,
    LlamaChatCompletionHandlerRegistry,
    Message,
    _grammar_for_json,
    _grammar_for_json_schema,
    _grammar_for_response_format,
    chat_formatter_to_chat_completion_handler,
    get_chat_completion_handler,
    register_chat_completion_handler,
    register_chat_format,
)
from bitnet.llama_compat._chat_vision import (  # noqa: F401
    Gemma4ChatHandler,
    Llama3VisionAlpha,
    Llama3VisionAlphaChatHandler,
    Llava15ChatHandler,
    Llava16ChatHandler,
    MiniCPMv26ChatHandler,
    MoondreamChatHandler,
    MTMDChatHandler,
    NanoLlavaChatHandler,
    ObsidianChatHandler,
    Qwen25VLChatHandler,
)
from bitnet.llama_compat._logger import logger  # noqa: F401
from bitnet.llama_compat._utils import Singleton, suppress_stdout_stderr  # noqa: F401

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
