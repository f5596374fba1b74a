"""llama.cpp's built-in chat formats (src/llama-chat.cpp), as llama_chat_apply_template uses
them: a template name, or a Jinja template text recognised by its markers, picks one format;
no Jinja is run (that is the Python side's Llama, bitnet.llama_compat.llama_chat_format).

`detect(tmpl)` returns a format name (or None); `apply(name, messages, add_ass)` the prompt.
Messages are (role, content) pairs of str.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

Messages = List[Tuple[str, str]]

# the names llama_chat_builtin_templates lists (a std::map: sorted by bytes)
BUILTIN = sorted([
    "chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip", "mistral-v1",
    "mistral-v3", "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken", "phi3", "phi4",
    "falcon3", "zephyr", "monarch", "gemma", "orion", "openchat", "vicuna", "vicuna-orca",
    "deepseek", "deepseek2", "deepseek3", "deepseek-ocr", "command-r", "llama3", "chatglm3",
    "chatglm4", "glmedge", "minicpm", "exaone3", "exaone4", "exaone-moe", "rwkv-world", "granite",
    "granite-4.0", "granite-4.1", "gigachat", "megrez", "yandex", "bailing", "bailing-think",
    "bailing2", "llama4", "smolvlm", "hunyuan-moe", "gpt-oss", "hunyuan-dense", "hunyuan-vl",
    "kimi-k2", "seed_oss", "grok-2", "pangu-embedded", "solar-open",
], key=lambda s: s.encode())


def trim(s: str) -> str:
    """llama-chat.cpp's trim: ASCII whitespace (isspace) at both ends."""
    return s.strip(" \t\n\v\f\r")


def _has(tmpl: str, *needles: str) -> bool:
    return all(n in tmpl for n in needles)


def _detect_mistral_llama2(t: str) -> str:
    if "[SYSTEM_PROMPT]" in t:
        return "mistral-v7"
    if "' [INST] ' + system_message" in t or "[AVAILABLE_TOOLS]" in t:
        if " [INST]" in t:
            return "mistral-v1"
        return "mistral-v3-tekken" if '"[INST]"' in t else "mistral-v3"
    if "content.strip()" in t:
        return "llama2-sys-strip"
    if "bos_token + '[INST]" in t:
        return "llama2-sys-bos"
    return "llama2-sys" if "<<SYS>>" in t else "llama2"


# (test, format) in llama_chat_detect_template's order, after the im_start / [INST] cases
_RULES: List[Tuple[Callable[[str], bool], str]] = [
    (lambda t: _has(t, "<|assistant|>", "<|end|>"), "phi3"),
    (lambda t: "[gMASK]<sop>" in t, "chatglm4"),
    (lambda t: _has(t, "<|assistant|>", "<|user|>", "<|tool_declare|>"), "exaone-moe"),
    (lambda t: _has(t, "<|assistant|>", "<|user|>", "</s>"), "falcon3"),
    (lambda t: _has(t, "<|assistant|>", "<|user|>"), "glmedge"),
    (lambda t: _has(t, "<|{{ item['role'] }}|>", "<|begin_of_image|>"), "glmedge"),
    (lambda t: _has(t, "<|user|>", "<|endoftext|>"), "zephyr"),
    (lambda t: "bos_token + message['role']" in t, "monarch"),
    (lambda t: "<start_of_turn>" in t, "gemma"),
    (lambda t: "'\\n\\nAssistant: ' + eos_token" in t, "orion"),
    (lambda t: "GPT4 Correct " in t, "openchat"),
    (lambda t: _has(t, "USER: ", "ASSISTANT: ", "SYSTEM: "), "vicuna-orca"),
    (lambda t: _has(t, "USER: ", "ASSISTANT: "), "vicuna"),
    (lambda t: _has(t, "### Instruction:", "<|EOT|>"), "deepseek"),
    (lambda t: _has(t, "<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"), "command-r"),
    (lambda t: _has(t, "<|start_header_id|>", "<|end_header_id|>"), "llama3"),
    (lambda t: "[gMASK]sop" in t, "chatglm3"),
    (lambda t: "<用户>" in t, "minicpm"),
    (lambda t: "'Assistant: ' + message['content'] + eos_token" in t, "deepseek2"),
    (lambda t: _has(t, "<｜Assistant｜>", "<｜User｜>", "<｜end▁of▁sentence｜>"), "deepseek3"),
    (lambda t: _has(t, "[|system|]", "[|assistant|]", "[|endofturn|]", "[|tool|]"), "exaone4"),
    (lambda t: _has(t, "[|system|]", "[|assistant|]", "[|endofturn|]"), "exaone3"),
    (lambda t: "rwkv-world" in t or "{{- 'User: ' + message['content']|trim + '\\n\\n' -}}" in t,
     "rwkv-world"),
    (lambda t: "<|start_of_role|>" in t and ("<tool_call>" in t or "<tools>" in t)
     and "g4_default_system_message" in t, "granite-4.0"),
    (lambda t: "<|start_of_role|>" in t and ("<tool_call>" in t or "<tools>" in t), "granite-4.1"),
    (lambda t: "<|start_of_role|>" in t, "granite"),
    (lambda t: "message['role'] + additional_special_tokens[0] + message['content'] + "
     "additional_special_tokens[1]" in t, "gigachat"),
    (lambda t: "<|role_start|>" in t, "megrez"),
    (lambda t: " Ассистент:" in t, "yandex"),
    (lambda t: _has(t, "<role>ASSISTANT</role>", "'HUMAN'"), "bailing"),
    (lambda t: _has(t, "<role>ASSISTANT</role>", '"HUMAN"', "<think>"), "bailing-think"),
    (lambda t: _has(t, "<role>ASSISTANT</role>", "<role>HUMAN</role>", "<|role_end|>"), "bailing2"),
    (lambda t: _has(t, "<|header_start|>", "<|header_end|>"), "llama4"),
    (lambda t: "<|endofuserprompt|>" in t, "dots1"),
    (lambda t: _has(t, "<|extra_0|>", "<|extra_4|>"), "hunyuan-moe"),
    (lambda t: _has(t, "<|start|>", "<|channel|>"), "gpt-oss"),
    (lambda t: _has(t, "<｜hy_Assistant｜>", "<｜hy_begin▁of▁sentence｜>"), "hunyuan-vl"),
    (lambda t: _has(t, "<｜hy_Assistant｜>", "<｜hy_place▁holder▁no▁3｜>"), "hunyuan-dense"),
    (lambda t: "<|im_assistant|>assistant<|im_middle|>" in t, "kimi-k2"),
    (lambda t: "<seed:bos>" in t, "seed_oss"),
    (lambda t: "'Assistant: '  + message['content'] + '<|separator|>" in t, "grok-2"),
    (lambda t: "[unused9]系统：[unused10]" in t, "pangu-embedded"),
    (lambda t: _has(t, "<|begin|>", "<|end|>", "<|content|>"), "solar-open"),
]


def detect(tmpl: str) -> Optional[str]:
    """llm_chat_detect_template: a built-in name as is, else the format a template's markers
    point to; None when nothing matches."""
    if tmpl in BUILTIN:
        return tmpl
    if "<|im_start|>" in tmpl:
        if "<|im_sep|>" in tmpl:
            return "phi4"
        return "smolvlm" if "<end_of_utterance>" in tmpl else "chatml"
    if tmpl.startswith("mistral") or "[INST]" in tmpl:
        return _detect_mistral_llama2(tmpl)
    return next((name for test, name in _RULES if test(tmpl)), None)


# ---- formats ---------------------------------------------------------------------------------

Format = Callable[[Messages, bool], str]
FORMATS: Dict[str, Format] = {}


def _fmt(*names: str) -> Callable[[Format], Format]:
    def deco(fn: Format) -> Format:
        for n in names:
            FORMATS[n] = fn
        return fn

    return deco


def _simple(turn: Callable[[str, str], str], ass: str) -> Format:
    """A format that is one string per message plus an assistant prompt."""
    return lambda chat, add_ass: "".join(turn(r, c) for r, c in chat) + (ass if add_ass else "")


FORMATS.update({
    "chatml": _simple(lambda r, c: f"<|im_start|>{r}\n{c}<|im_end|>\n", "<|im_start|>assistant\n"),
    "phi3": _simple(lambda r, c: f"<|{r}|>\n{c}<|end|>\n", "<|assistant|>\n"),
    "phi4": _simple(lambda r, c: f"<|im_start|>{r}<|im_sep|>{c}<|im_end|>",
                    "<|im_start|>assistant<|im_sep|>"),
    "falcon3": _simple(lambda r, c: f"<|{r}|>\n{c}\n", "<|assistant|>\n"),
    "zephyr": _simple(lambda r, c: f"<|{r}|>\n{c}<|endoftext|>\n", "<|assistant|>\n"),
    "llama3": _simple(lambda r, c: f"<|start_header_id|>{r}<|end_header_id|>\n\n{trim(c)}<|eot_id|>",
                      "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "glmedge": _simple(lambda r, c: f"<|{r}|>\n{c}", "<|assistant|>"),
    "megrez": _simple(lambda r, c: f"<|role_start|>{r}<|role_end|>{c}<|turn_end|>",
                      "<|role_start|>assistant<|role_end|>"),
    "llama4": _simple(lambda r, c: f"<|header_start|>{r}<|header_end|>\n\n{trim(c)}<|eot|>",
                      "<|header_start|>assistant<|header_end|>\n\n"),
    "gpt-oss": _simple(lambda r, c: f"<|start|>{r}<|message|>{c}"
                       + ("<|return|>" if r == "assistant" else "<|end|>"), "<|start|>assistant"),
    "seed_oss": _simple(lambda r, c: f"<seed:bos>{r}\n{trim(c) if r == 'assistant' else c}<seed:eos>",
                        "<seed:bos>assistant\n"),
    "solar-open": _simple(lambda r, c: f"<|begin|>{r}<|content|>{c}<|end|>", "<|begin|>assistant"),
    "deepseek-ocr": _simple(lambda r, c: c, ""),
})
FORMATS["chatglm3"] = lambda chat, add_ass: "[gMASK]sop" + "".join(
    f"<|{r}|>\n {c}" for r, c in chat) + ("<|assistant|>" if add_ass else "")
FORMATS["chatglm4"] = lambda chat, add_ass: "[gMASK]<sop>" + "".join(
    f"<|{r}|>\n{c}" for r, c in chat) + ("<|assistant|>\n" if add_ass else "")


def _exaone_moe_turn(role: str) -> Callable[[str], str]:
    return lambda c: f"<|{role}|>\n{trim(c)}<|endofturn|>\n"


def _by_role(table: Dict[str, Callable[[str], str]], ass: str, other: Optional[str] = None) -> Format:
    """One string per message chosen by role (roles not in `table`: `other`'s, or nothing)."""

    def fmt(chat: Messages, add_ass: bool) -> str:
        out = []
        for r, c in chat:
            f = table.get(r, table.get(other) if other else None)
            if f is not None:
                out.append(f(c))
        return "".join(out) + (ass if add_ass else "")

    return fmt


FORMATS.update({
    "vicuna": _by_role({"system": lambda c: f"{c}\n\n", "user": lambda c: f"USER: {c}\n",
                        "assistant": lambda c: f"ASSISTANT: {c}</s>\n"}, "ASSISTANT:"),
    "vicuna-orca": _by_role({"system": lambda c: f"SYSTEM: {c}\n", "user": lambda c: f"USER: {c}\n",
                             "assistant": lambda c: f"ASSISTANT: {c}</s>\n"}, "ASSISTANT:"),
    "deepseek": _by_role({"system": lambda c: c, "user": lambda c: f"### Instruction:\n{c}\n",
                          "assistant": lambda c: f"### Response:\n{c}\n<|EOT|>\n"}, "### Response:\n"),
    "command-r": _by_role({
        "system": lambda c: f"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{trim(c)}<|END_OF_TURN_TOKEN|>",
        "user": lambda c: f"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{trim(c)}<|END_OF_TURN_TOKEN|>",
        "assistant": lambda c: f"<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{trim(c)}<|END_OF_TURN_TOKEN|>",
    }, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"),
    "minicpm": _by_role({"user": lambda c: f"<用户>{trim(c)}<AI>", "other": lambda c: trim(c)}, "",
                        other="other"),
    "deepseek2": _by_role({"system": lambda c: f"{c}\n\n", "user": lambda c: f"User: {c}\n\n",
                           "assistant": lambda c: f"Assistant: {c}<｜end▁of▁sentence｜>"}, "Assistant:"),
    "deepseek3": _by_role({"system": lambda c: f"{c}\n\n", "user": lambda c: f"<｜User｜>{c}",
                           "assistant": lambda c: f"<｜Assistant｜>{c}<｜end▁of▁sentence｜>"},
                          "<｜Assistant｜>"),
    "exaone3": _by_role({"system": lambda c: f"[|system|]{trim(c)}[|endofturn|]\n",
                         "user": lambda c: f"[|user|]{trim(c)}\n",
                         "assistant": lambda c: f"[|assistant|]{trim(c)}[|endofturn|]\n"}, "[|assistant|]"),
    "exaone4": _by_role({"system": lambda c: f"[|system|]{trim(c)}[|endofturn|]\n",
                         "user": lambda c: f"[|user|]{trim(c)}\n",
                         "assistant": lambda c: f"[|assistant|]{trim(c)}[|endofturn|]\n",
                         "tool": lambda c: f"[|tool|]{trim(c)}[|endofturn|]\n"}, "[|assistant|]"),
    "exaone-moe": _by_role({role: _exaone_moe_turn(role) for role in ("system", "user", "assistant", "tool")},
                           "<|assistant|>\n"),
    "yandex": _by_role({"user": lambda c: f" Пользователь: {c}\n\n",
                        "assistant": lambda c: f" Ассистент: {c}\n\n"}, " Ассистент:[SEP]"),
    "dots1": _by_role({"system": lambda c: f"<|system|>{c}<|endofsystem|>",
                       "user": lambda c: f"<|userprompt|>{c}<|endofuserprompt|>",
                       "other": lambda c: f"<|response|>{c}<|endofresponse|>"}, "<|response|>",
                      other="other"),
    "hunyuan-moe": _by_role({"system": lambda c: f"<|startoftext|>{c}<|extra_4|>",
                             "assistant": lambda c: f"{c}<|eos|>",
                             "other": lambda c: f"<|startoftext|>{c}<|extra_0|>"}, "", other="other"),
    "kimi-k2": _by_role({"system": lambda c: f"<|im_system|>system<|im_middle|>{c}<|im_end|>",
                         "user": lambda c: f"<|im_user|>user<|im_middle|>{c}<|im_end|>",
                         "assistant": lambda c: f"<|im_assistant|>assistant<|im_middle|>{c}<|im_end|>",
                         "tool": lambda c: f"<|im_system|>tool<|im_middle|>{c}<|im_end|>",
                         "other": lambda c: f"{c}<|im_end|>"},
                        "<|im_assistant|>assistant<|im_middle|>", other="other"),
    "grok-2": _by_role({"system": lambda c: f"System: {trim(c)}<|separator|>\n\n",
                        "user": lambda c: f"Human: {trim(c)}<|separator|>\n\n",
                        "assistant": lambda c: f"Assistant: {c}<|separator|>\n\n"}, "Assistant:"),
})


def _mistral_v7_variant(sp: str) -> Format:
    return _by_role({"system": lambda c: f"[SYSTEM_PROMPT]{sp}{c}[/SYSTEM_PROMPT]",
                     "user": lambda c: f"[INST]{sp}{c}[/INST]",
                     "other": lambda c: f"{sp}{c}</s>"}, "", other="other")


FORMATS["mistral-v7"] = _mistral_v7_variant(" ")
FORMATS["mistral-v7-tekken"] = _mistral_v7_variant("")


def _mistral_v1_v3(lead: str, trail: str, trim_assistant: bool) -> Format:
    def fmt(chat: Messages, add_ass: bool) -> str:
        out, inside = [], False
        for r, c in chat:
            if not inside:
                out.append(f"{lead}[INST]{trail}")
                inside = True
            if r == "system":
                out.append(f"{c}\n\n")
            elif r == "user":
                out.append(f"{c}{lead}[/INST]")
            else:
                out.append(f"{trail}{trim(c) if trim_assistant else c}</s>")
                inside = False
        return "".join(out)

    return fmt


FORMATS["mistral-v1"] = _mistral_v1_v3(" ", " ", False)
FORMATS["mistral-v3"] = _mistral_v1_v3("", " ", True)
FORMATS["mistral-v3-tekken"] = _mistral_v1_v3("", "", False)


def _llama2(system: bool, bos_inside: bool, strip: bool) -> Format:
    def fmt(chat: Messages, add_ass: bool) -> str:
        out, inside = ["[INST] "], True
        for r, c in chat:
            c = trim(c) if strip else c
            if not inside:
                inside = True
                out.append("<s>[INST] " if bos_inside else "[INST] ")
            if r == "system":
                out.append(f"<<SYS>>\n{c}\n<</SYS>>\n\n" if system else f"{c}\n")
            elif r == "user":
                out.append(f"{c} [/INST]")
            else:
                out.append(f"{c}</s>")
                inside = False
        return "".join(out)

    return fmt


FORMATS["llama2"] = _llama2(False, False, False)
FORMATS["llama2-sys"] = _llama2(True, False, False)
FORMATS["llama2-sys-bos"] = _llama2(True, True, False)
FORMATS["llama2-sys-strip"] = _llama2(True, False, True)


@_fmt("monarch")
def _monarch(chat: Messages, add_ass: bool) -> str:
    out = "".join(("" if i == 0 else "<s>") + f"{r}\n{c}</s>\n" for i, (r, c) in enumerate(chat))
    return out + ("<s>assistant\n" if add_ass else "")


@_fmt("gemma")
def _gemma(chat: Messages, add_ass: bool) -> str:
    out, system = [], ""
    for r, c in chat:
        if r == "system":
            system += trim(c)
            continue
        role = "model" if r == "assistant" else r
        out.append(f"<start_of_turn>{role}\n")
        if system and role != "model":
            out.append(f"{system}\n\n")
            system = ""
        out.append(f"{trim(c)}<end_of_turn>\n")
    return "".join(out) + ("<start_of_turn>model\n" if add_ass else "")


@_fmt("orion")
def _orion(chat: Messages, add_ass: bool) -> str:
    out, system = [], ""
    for r, c in chat:
        if r == "system":
            system += c
        elif r == "user":
            out.append("Human: " + (f"{system}\n\n" if system else "") + f"{c}\n\nAssistant: </s>")
            system = ""
        else:
            out.append(f"{c}</s>")
    return "".join(out)


@_fmt("openchat")
def _openchat(chat: Messages, add_ass: bool) -> str:
    out = [f"{c}<|end_of_turn|>" if r == "system" else
           f"GPT4 Correct {r[:1].upper()}{r[1:]}: {c}<|end_of_turn|>" for r, c in chat]
    return "".join(out) + ("GPT4 Correct Assistant:" if add_ass else "")


@_fmt("rwkv-world")
def _rwkv(chat: Messages, add_ass: bool) -> str:
    out = []
    for i, (r, c) in enumerate(chat):
        if r == "system":
            out.append(f"System: {trim(c)}\n\n")
        elif r == "user":
            out.append(f"User: {trim(c)}\n\n" + ("Assistant:" if i == len(chat) - 1 else ""))
        elif r == "assistant":
            out.append(f"Assistant: {trim(c)}\n\n")
    return "".join(out)


@_fmt("granite")
def _granite3(chat: Messages, add_ass: bool) -> str:
    out = [f"<|start_of_role|>{r}<|end_of_role|>" + ("<|tool_call|>" if r == "assistant_tool_call"
                                                     else "") + f"{c}<|end_of_text|>\n"
           for r, c in chat]
    return "".join(out) + ("<|start_of_role|>assistant<|end_of_role|>" if add_ass else "")


@_fmt("granite-4.0", "granite-4.1")
def _granite4(chat: Messages, add_ass: bool) -> str:
    out = [("<|start_of_role|>assistant<|end_of_role|><|tool_call|>" if r == "assistant_tool_call"
            else f"<|start_of_role|>{r}<|end_of_role|>") + f"{c}<|end_of_text|>\n" for r, c in chat]
    return "".join(out) + ("<|start_of_role|>assistant<|end_of_role|>" if add_ass else "")


@_fmt("gigachat")
def _gigachat(chat: Messages, add_ass: bool) -> str:
    has_system = bool(chat) and chat[0][0] == "system"
    out = [f"<s>{chat[0][1]}<|message_sep|>" if has_system else "<s>"]
    for r, c in chat[1 if has_system else 0:]:
        if r == "user":
            out.append(f"user<|role_sep|>{c}<|message_sep|>available functions<|role_sep|>[]<|message_sep|>")
        elif r == "assistant":
            out.append(f"assistant<|role_sep|>{c}<|message_sep|>")
    return "".join(out) + ("assistant<|role_sep|>" if add_ass else "")


def _bailing_role(r: str) -> str:
    return "HUMAN" if r == "user" else r.upper()


FORMATS["bailing"] = lambda chat, add_ass: "".join(
    f"<role>{_bailing_role(r)}</role>{c}" for r, c in chat) + ("<role>ASSISTANT</role>" if add_ass else "")
FORMATS["bailing-think"] = lambda chat, add_ass: "".join(
    f"<role>{_bailing_role(r)}</role>{c}" for r, c in chat) + (
    "<role>ASSISTANT</role><think>" if add_ass else "")


@_fmt("bailing2")
def _bailing2(chat: Messages, add_ass: bool) -> str:
    has_system = bool(chat) and chat[0][0] == "system"
    out = [] if has_system else ["<role>SYSTEM</role>detailed thinking off<|role_end|>"]
    out += [f"<role>{_bailing_role(r)}</role>{c}<|role_end|>" for r, c in chat]
    return "".join(out) + ("<role>ASSISTANT</role>" if add_ass else "")


@_fmt("smolvlm")
def _smolvlm(chat: Messages, add_ass: bool) -> str:
    out = ["<|im_start|>"]
    for r, c in chat:
        if r == "system":
            out.append(f"{c}\n\n")
        elif r == "user":
            out.append(f"User: {c}<end_of_utterance>\n")
        else:
            out.append(f"Assistant: {c}<end_of_utterance>\n")
    return "".join(out) + ("Assistant:" if add_ass else "")


@_fmt("hunyuan-dense")
def _hunyuan_dense(chat: Messages, add_ass: bool) -> str:
    out = []
    for i, (r, c) in enumerate(chat):
        if i == 0 and r == "system":
            out.append(f"{c}<｜hy_place▁holder▁no▁3｜>")
        if r == "assistant":
            out.append(f"<｜hy_Assistant｜>{c}<｜hy_place▁holder▁no▁2｜>")
        elif r == "user":
            out.append(f"<｜hy_User｜>{c}<｜hy_Assistant｜>")
    return "".join(out)


@_fmt("hunyuan-vl")
def _hunyuan_vl(chat: Messages, add_ass: bool) -> str:
    out = ["<｜hy_begin▁of▁sentence｜>"]
    for i, (r, c) in enumerate(chat):
        if i == 0 and r == "system":
            out.append(f"{c}<｜hy_place▁holder▁no▁3｜>")
        elif r == "user":
            out.append(f"{c}<｜hy_User｜>")
        elif r == "assistant":
            out.append(f"{c}<｜hy_Assistant｜>")
    return "".join(out)


_PANGU_ROLES = {"system": "系统", "user": "用户", "assistant": "助手", "tool": "工具", "function": "方法"}


@_fmt("pangu-embedded")
def _pangu(chat: Messages, add_ass: bool) -> str:
    out = []
    for i, (r, c) in enumerate(chat):
        if i == 0 and r != "system":
            out.append("[unused9]系统：[unused10]")
        if r in _PANGU_ROLES:
            out.append(f"[unused9]{_PANGU_ROLES[r]}：{c}[unused10]")
    return "".join(out) + ("[unused9]助手：" if add_ass else "")


def apply(name: str, chat: Messages, add_ass: bool) -> str:
    """The prompt of format `name` (a name `detect` returned)."""
    return FORMATS[name](chat, add_ass)
