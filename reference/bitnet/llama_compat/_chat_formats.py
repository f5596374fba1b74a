"""The built-in `chat_format` names of llama-cpp-python (llama-2, llama-3, chatml, gemma, ...).

Each builds the same prompt string and stop strings as llama-cpp-python's
`llama_chat_format.py` (same role names, separators and quirks, noted `subtle:`); importing
this module registers them (`register_chat_format`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from bitnet.llama_compat._chat_registry import ChatFormatterResponse, Message, register_chat_format

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


format = format_vicuna  # noqa: A001 (llama-cpp-python registers "vicuna" under the name `format`)
