"""What OpenAI's SDK and agents send to /v1/chat/completions, read into `Llama`'s arguments.

- Messages: `content` as a list of parts is joined from its text parts (llama.cpp's
  server concatenates them the same way); an image / audio / file part is a 400 ("this model
  has no vision input"). `developer` is read as `system` (llama.cpp does the same). For a GGUF
  chat template, a null `content` becomes "" (llama.cpp's requires_non_null_content) and, when
  the template never mentions `tool_calls`, an assistant message's tool calls are written into
  its content as `{"tool_calls": [{"name", "arguments", "id"}]}` so that the model sees its own
  call (minja's tool-call polyfill); `tool` messages render under their own role.
- `response_format`: `{"type": "json_schema", "json_schema": {"schema", "strict"}}` becomes
  llama-cpp-python's `{"type": "json_object", "schema": ...}`; `text` means none. A schema is
  checked before any slot is taken (`check_schema`): one without a valid document (e.g.
  `{"$ref": "#"}`) is a 400 `unsupported_schema`, and so is one outside the constraint
  engine's subset when `strict` is true (without `strict`, Llama decides, as llama-cpp-python).
- `tool_choice`: "none" / "auto" / a named function go to Llama as they are (llama-cpp-python
  semantics: "auto" on a GGUF template answers free text); "required" with one tool is that
  tool named; with several, the reply is constrained to
  `{"name": <one of the tools>, "arguments": <its parameters>}` and returned as one tool call
  (`required_call_response` / `required_call_chunks`). A named tool that is not in `tools`,
  tool_choice without tools, or a malformed tool is a 400.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from bitnet.server.errors import APIError
from bitnet.server.types import ChatCompletionRequestMessage, CreateChatCompletionRequest

NO_VISION = "this model has no vision input"
_MEDIA_PARTS = {
    "image_url": NO_VISION,
    "image": NO_VISION,
    "input_image": NO_VISION,
    "input_audio": "this model has no audio input",
    "file": "this model has no file input",
}


def _content_text(content: Any, where: str) -> Optional[str]:
    if content is None or isinstance(content, str):
        return content
    texts: List[str] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text", "refusal"):
            value = part.get("text", part.get("refusal"))
            if not isinstance(value, str):
                raise APIError(
                    400, f"{where}.content[{i}]: a {kind} part needs a string", param=f"{where}.content"
                )
            texts.append(value)
        elif kind in _MEDIA_PARTS:
            raise APIError(400, _MEDIA_PARTS[kind], param=f"{where}.content", code="unsupported_content")
        else:
            raise APIError(
                400, f"{where}.content[{i}]: unknown content part type {kind!r}", param=f"{where}.content"
            )
    return "".join(texts)


def _polyfilled_calls(tool_calls: Any, where: str) -> str:
    calls = []
    for call in tool_calls or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise APIError(
                400, f"{where}.tool_calls: each call needs function.name", param=f"{where}.tool_calls"
            )
        args: Any = fn.get("arguments", "{}")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass  # kept as the string the model wrote
        calls.append({"name": fn["name"], "arguments": args, "id": call.get("id")})
    return json.dumps({"tool_calls": calls}, ensure_ascii=False)


def normalize_messages(
    messages: List[ChatCompletionRequestMessage], template: Optional[str]
) -> List[Dict[str, Any]]:
    """The messages as Llama's chat handlers take them (see the module docstring);
    `template` is the GGUF chat template in use (None for a built-in chat_format)."""
    if not messages:
        raise APIError(400, "messages must hold at least one message", param="messages")
    out: List[Dict[str, Any]] = []
    polyfill = template is not None and "tool_calls" not in template
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        d = m.model_dump(exclude_unset=True)
        d["content"] = _content_text(m.content, where)
        if d["role"] == "developer":
            d["role"] = "system"
        if template is not None:
            text = d["content"] or ""
            if d.get("tool_calls") and polyfill:
                text = (text + "\n" if text else "") + _polyfilled_calls(d["tool_calls"], where)
            d["content"] = text
        out.append(d)
    return out


def response_format_of(rf: Optional[Dict[str, Any]]) -> Tuple[Optional[Dict[str, Any]], bool]:
    """(llama-cpp-python's response_format or None, strict) for OpenAI's response_format."""
    if rf is None:
        return None, False
    kind = rf.get("type")
    if kind == "text":
        return None, False
    if kind == "json_object":
        return dict(rf), False
    if kind == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict):
            raise APIError(400, "response_format.json_schema must be an object", param="response_format")
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, (dict, bool)):
            raise APIError(
                400, "response_format.json_schema.schema must be an object", param="response_format"
            )
        out: Dict[str, Any] = {"type": "json_object"}
        if schema is not None:
            out["schema"] = schema
        return out, bool(spec.get("strict"))
    raise APIError(
        400,
        f"response_format.type {kind!r}: expected text, json_object or json_schema",
        param="response_format",
    )


def check_schema(schema: Any, strict: bool, param: str) -> None:
    """400 `unsupported_schema` for a schema no JSON document satisfies (e.g. `{"$ref": "#"}`),
    and, when `strict`, for one outside what the constraint engines enforce exactly: the
    subset of `bitnet.constraints` (whose compiler names what it does not support), converted
    by the Python drop-in's JSON-schema grammar converter when it has one."""
    from bitnet import llama_compat
    from bitnet.constraints import JSONSchemaPrefix

    def unsupported(why: Any) -> APIError:
        return APIError(400, f"{param}: {why}", param=param, code="unsupported_schema")

    try:
        JSONSchemaPrefix(schema, max_ws=20, leading_ws=False, compact=True).completion()
    except NotImplementedError as e:
        if strict:
            raise unsupported(e) from None
    except (ValueError, TypeError, RecursionError) as e:
        raise unsupported(f"no JSON document satisfies this schema here ({e})") from None
    grammar = getattr(llama_compat, "LlamaGrammar", None)
    if strict and grammar is not None:
        try:
            grammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as e:  # noqa: BLE001 (the converter refuses the schema)
            raise unsupported(e) from None


def _tool_names(tools: List[Dict[str, Any]]) -> List[str]:
    names = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if (
            tool.get("type", "function") != "function"
            or not isinstance(fn, dict)
            or not isinstance(fn.get("name"), str)
        ):
            raise APIError(
                400,
                f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}",
                param=f"tools[{i}]",
            )
        names.append(fn["name"])
    return names


def tool_plan(body: CreateChatCompletionRequest) -> Tuple[Any, Optional[List[Dict[str, Any]]]]:
    """(tool_choice for Llama, the tools of a multi-tool "required" call or None); checks
    the tools and every schema a forced call will follow (see the module docstring)."""
    tools, choice = body.tools, body.tool_choice
    if choice is not None and not tools:
        raise APIError(400, "tool_choice needs tools", param="tool_choice")
    names = _tool_names(tools) if tools else []
    for tool in tools or []:
        fn = tool["function"]
        if fn.get("parameters") is not None and (fn.get("strict") or choice is not None):
            check_schema(fn["parameters"], bool(fn.get("strict")), f"tools.{fn['name']}.parameters")
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise APIError(
                400,
                f"tool_choice {choice!r}: expected none, auto, required or a function",
                param="tool_choice",
            )
        if choice == "required":
            if len(names) == 1:
                return {"type": "function", "function": {"name": names[0]}}, None
            return None, list(tools or [])
        return choice, None
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if choice.get("type") != "function" or not isinstance(name, str):
            raise APIError(
                400,
                "tool_choice must be {'type': 'function', 'function': {'name': ...}}",
                param="tool_choice",
            )
        if name not in names:
            raise APIError(400, f"tool_choice names {name!r}, which is not in tools", param="tool_choice")
    return choice, None


def required_call_format(tools: List[Dict[str, Any]]) -> Dict[str, Any]:
    """response_format making the reply `{"name": ..., "arguments": ...}` for one of `tools`."""
    from bitnet.constraints import SchemaNode

    alternatives = []
    for tool in tools:
        fn = tool["function"]
        params: Any = fn.get("parameters") or {"type": "object"}
        try:
            SchemaNode(params)
        except (NotImplementedError, ValueError, TypeError):
            params = {"type": "object"}  # plain JSON arguments, as a forced call falls back
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return {"type": "json_object", "schema": {"anyOf": alternatives}}


def _call_of(text: str) -> Optional[Tuple[str, str]]:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    return value["name"], json.dumps(value.get("arguments"), ensure_ascii=False)


def required_call_response(completion: Dict[str, Any]) -> Dict[str, Any]:
    """A chat completion constrained by `required_call_format`, as one tool call (left as
    text with its finish_reason when the JSON was cut short)."""
    choice = completion["choices"][0]
    call = _call_of(choice["message"].get("content") or "")
    if call is None:
        return completion
    name, arguments = call
    tool_id = f"call__0_{name}_{completion['id']}"
    choice["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": tool_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        ],
    }
    choice["finish_reason"] = "tool_calls"
    return completion


def required_call_chunks(completion: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    """`required_call_response(completion)` as chat.completion.chunk dicts."""
    done = required_call_response(completion)
    choice = done["choices"][0]
    message = choice["message"]
    base = {
        "id": done["id"],
        "object": "chat.completion.chunk",
        "created": done.get("created", int(time.time())),
        "model": done["model"],
    }

    def chunk(delta: Dict[str, Any], finish: Optional[str]) -> Dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": None}, None)
    if message.get("tool_calls"):
        calls = [{"index": 0, **c} for c in message["tool_calls"]]
        yield chunk({"tool_calls": calls}, None)
    else:
        yield chunk({"content": message.get("content") or ""}, None)
    yield chunk({}, choice["finish_reason"])
