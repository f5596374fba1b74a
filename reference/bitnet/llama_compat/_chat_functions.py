"""Function calling as llama-cpp-python's custom handlers do it: "chatml-function-calling"
and the functionary formats (`register_chat_completion_handler`).

- "chatml-function-calling": its template (HTML autoescape and jinja2's sorted-key tojson
  included); with a named tool the arguments follow the tool's schema grammar; with "auto" the
  model first picks `message:` or a `functions.<name>:` (greedy, under the GBNF
  `root ::= functions | "message:"`), then writes the message or each call's arguments, and
  after each call picks another function or `<|im_end|>` -- the same grammars, so the same
  calls and quirks. Automatic tool choice with stream=True raises ValueError, as upstream.
- "functionary" (v0): the same prompt and control flow (its first, unconstrained completion in
  "auto" mode uses create_completion's defaults, so it samples at temperature 0.8).
- "functionary-v1" / "functionary-v2" render through the model's Hugging Face tokenizer
  (`Llama(tokenizer=LlamaHFTokenizer...)`): without one they fail with llama-cpp-python's
  AssertionError; with one they raise NotImplementedError here.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bitnet.llama_compat import llama_grammar
from bitnet.llama_compat._chat_convert import (
    _convert_completion_to_chat,
    _convert_completion_to_chat_function,
    _convert_text_completion_logprobs_to_chat,
    _one_tool_call_response,
    _whole,
)
from bitnet.llama_compat._chat_registry import (
    Message,
    _grammar_for_json,
    _grammar_for_json_schema,
    _grammar_for_response_format,
    _legacy_to_tools,
    register_chat_completion_handler,
)

if TYPE_CHECKING:  # pragma: no cover
    from bitnet.llama_compat.llama import Llama


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


def _tool_grammar(tool: Dict[str, Any], verbose: bool) -> llama_grammar.LlamaGrammar:
    """The grammar of a tool's arguments (plain JSON when the schema converter refuses it)."""
    return _grammar_for_json_schema(json.dumps(tool["function"]["parameters"]), verbose)


def _names_grammar(tools: List[Dict[str, Any]], alternative: str,
                   verbose: bool) -> llama_grammar.LlamaGrammar:
    """llama-cpp-python's `root ::= functions | "<alternative>"` over the tools' names."""
    function_names = " | ".join(f'"functions.{tool["function"]["name"]}:"' for tool in tools)
    return llama_grammar.LlamaGrammar.from_string(
        f'root   ::= functions | "{alternative}"\nfunctions ::= {function_names}\n', verbose=verbose)


@register_chat_completion_handler("chatml-function-calling")
def chatml_function_calling(
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
    grammar: Optional[llama_grammar.LlamaGrammar] = None,
    logprobs: Optional[bool] = None,
    top_logprobs: Optional[int] = None,
    **kwargs: Any,
) -> Any:
    """ChatML with tools: a message, or one or more `functions.<name>:` calls whose arguments
    follow the tool's parameter schema (see the module docstring)."""
    tools, tool_choice = _legacy_to_tools(functions, function_call, tools, tool_choice)
    stop = ([stop, "<|im_end|>"] if isinstance(stop, str)
            else stop + ["<|im_end|>"] if stop else ["<|im_end|>"])
    common: Dict[str, Any] = dict(
        top_p=top_p, top_k=top_k, min_p=min_p, typical_p=typical_p,
        presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
        repeat_penalty=repeat_penalty, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
        mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, model=model,
        logits_processor=logits_processor,
    )
    renderer = _chatml_function_calling_renderer()
    if tool_choice is None or tool_choice == "none" or not tools:  # case 1: a plain ChatML chat
        prompt = renderer.render(messages=messages, tools=[], tool_calls=None, add_generation_prompt=True)
        if response_format is not None and response_format["type"] == "json_object":
            grammar = _grammar_for_response_format(response_format)
        return _convert_completion_to_chat(llama.create_completion(
            prompt=prompt, temperature=temperature, stream=stream, stop=stop, max_tokens=max_tokens,
            grammar=grammar, logprobs=top_logprobs if logprobs else None, **common), stream=stream)
    prompt = renderer.render(messages=messages, tools=tools, tool_calls=True, add_generation_prompt=True)
    if isinstance(tool_choice, dict):  # case 2: a forced tool
        tool_name = tool_choice["function"]["name"]
        tool = next((t for t in tools if t["function"]["name"] == tool_name), None)
        if tool is None:
            raise ValueError(f"Tool with name '{tool_name}' not found in tools")
        completion_or_chunks = llama.create_completion(
            prompt=prompt + f"functions.{tool_name}:\n", temperature=temperature, stream=stream,
            stop=stop, max_tokens=max_tokens, grammar=_tool_grammar(tool, llama.verbose), **common)
        return _convert_completion_to_chat_function(tool_name, completion_or_chunks, stream)
    assert isinstance(tool_choice, str) and tool_choice == "auto"  # case 3: automatic
    return _chatml_auto(llama, prompt, tools, stop, temperature, stream, common,
                        top_logprobs if logprobs else None)


def _chatml_auto(llama: Llama, prompt: str, tools: List[Dict[str, Any]], stop: List[str],
                 temperature: float, stream: bool, common: Dict[str, Any],
                 n_logprobs: Optional[int]) -> Any:
    """Automatic tool choice: pick `message:` or a function (greedy), then the message or the
    calls, one after another until the follow-up picks `<|im_end|>`."""
    follow_up = _names_grammar(tools, "<|im_end|>", llama.verbose)
    completion = _whole(llama.create_completion(
        prompt=prompt, temperature=0, stream=False, stop=[":"], max_tokens=None,
        grammar=_names_grammar(tools, "message:", llama.verbose), **common))
    text = completion["choices"][0]["text"]
    if "message" in text:
        # subtle: llama-cpp-python constrains the message with the follow-up grammar (a
        # function name or "<|im_end|>"), kept for identical output
        return _convert_completion_to_chat(llama.create_completion(
            prompt=prompt + "message:\n", temperature=temperature, stream=stream, stop=["<|im_end|>"],
            logprobs=n_logprobs, max_tokens=None, grammar=follow_up, **common), stream=stream)
    if stream:
        raise ValueError("Automatic streaming tool choice is not supported")
    tool_name = text[len("functions."):]
    tool = next((t for t in tools if t["function"]["name"] == tool_name), None)
    completions: List[Dict[str, Any]] = []
    completions_tool_name: List[str] = []
    while tool is not None:
        prompt += f"functions.{tool_name}:\n"
        call = _whole(llama.create_completion(
            prompt=prompt, temperature=temperature, stream=False, stop=stop, max_tokens=None,
            grammar=_tool_grammar(tool, llama.verbose), **common))
        completions.append(call)
        completions_tool_name.append(tool_name)
        prompt += call["choices"][0]["text"] + "\n"
        response = _whole(llama.create_completion(
            prompt=prompt, temperature=temperature, stream=False, stop=stop, max_tokens=None,
            grammar=follow_up, **common))
        tool_name = response["choices"][0]["text"][len("functions."):]
        tool = next((t for t in tools if t["function"]["name"] == tool_name), None)
    return _calls_response(completion, completions, completions_tool_name, tool_name)


def _calls_response(choice: Dict[str, Any], completions: List[Dict[str, Any]], names: List[str],
                    last_text: str) -> Dict[str, Any]:
    """The chat.completion of automatic calls; subtle, as in llama-cpp-python: "function_call"
    (one call only) names the last text the follow-up produced, and id / logprobs come from the
    first (choice) completion."""
    function_call_dict: Dict[str, Any] = (
        {"function_call": {"name": last_text, "arguments": completions[0]["choices"][0]["text"]}}
        if len(completions) == 1 else {})

    def total(key: str) -> int:
        return sum(c["usage"][key] if "usage" in c else 0 for c in completions)

    return {
        "id": "chat" + choice["id"],
        "object": "chat.completion",
        "created": choice["created"],
        "model": choice["model"],
        "choices": [{
            "finish_reason": "tool_calls",
            "index": 0,
            "logprobs": _convert_text_completion_logprobs_to_chat(choice["choices"][0]["logprobs"]),
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_" + f"_{i}_" + name + "_" + c["id"], "type": "function",
                     "function": {"name": name, "arguments": c["choices"][0]["text"]}}
                    for i, (name, c) in enumerate(zip(names, completions))
                ],
                **function_call_dict,
            },
        }],
        "usage": {"completion_tokens": total("completion_tokens"),
                  "prompt_tokens": total("prompt_tokens"), "total_tokens": total("total_tokens")},
    }


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
    grammar: Optional[llama_grammar.LlamaGrammar] = None,
    **kwargs: Any,
) -> Any:
    """The first functionary format (`system:` / `user:` / `assistant to=functions.x:`).

    As in llama-cpp-python: without functions it is a plain chat; with tool_choice "auto" (or
    none given) a first completion with create_completion's defaults (temperature 0.8, the
    instance seed) picks the function; the arguments then follow the function's schema
    grammar; only stream=False is supported for calls (AssertionError otherwise).
    """
    common: Dict[str, Any] = dict(
        top_p=top_p, top_k=top_k, min_p=min_p, typical_p=typical_p,
        presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
        repeat_penalty=repeat_penalty, tfs_z=tfs_z, mirostat_mode=mirostat_mode,
        mirostat_tau=mirostat_tau, mirostat_eta=mirostat_eta, model=model,
        logits_processor=logits_processor,
    )
    if tools is not None:
        functions = [tool["function"] for tool in tools if tool["type"] == "function"]
    if tool_choice is not None:
        function_call = tool_choice if isinstance(tool_choice, str) else tool_choice["function"]
    prompt = functionary_v0_prompt(messages, functions, tools)

    if function_call is None and (functions is None or len(functions) == 0):
        completion_or_chunks = llama.create_completion(
            prompt=prompt + ":\n", temperature=temperature, stream=stream, stop=["user:", "</s>"],
            max_tokens=max_tokens, grammar=grammar, **common)
        return _convert_completion_to_chat(completion_or_chunks, stream=stream)

    if function_call is None or (isinstance(function_call, str) and function_call == "auto"):
        first = _whole(llama.create_completion(prompt=prompt, stop="\n", stream=False))
        completion_text = first["choices"][0]["text"]
        function_call = completion_text.split(".")[-1][:-1]  # strip " to=functions." and ":"
        new_prompt = prompt + completion_text + "\n"
    elif isinstance(function_call, str) and function_call != "none":
        new_prompt = prompt + ":\n"
    elif isinstance(function_call, dict):
        new_prompt = prompt + f" to=functions.{function_call['name']}:\n"
        function_call = function_call["name"]
    else:
        new_prompt = prompt + ":\n"

    function_body = _parameters_of(function_call, functions, tools)
    arguments_grammar = (_grammar_for_json_schema(json.dumps(function_body), llama.verbose)
                         if function_body is not None else _grammar_for_json(llama.verbose))
    completion = _whole(llama.create_completion(
        prompt=new_prompt, stop=["user:", "</s>"], stream=False, grammar=arguments_grammar,
        max_tokens=max_tokens, temperature=temperature, **common))
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
    """functionary v1/v2 render through the model's Hugging Face tokenizer (its chat template
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
        "functionary-v1/v2 with a HuggingFace tokenizer is not implemented in bitnet.llama_compat")


# the parameter list llama-cpp-python declares (the same as functionary's), for introspection
functionary_v1_v2_chat_handler.__signature__ = inspect.signature(functionary_chat_handler)  # type: ignore[attr-defined]
