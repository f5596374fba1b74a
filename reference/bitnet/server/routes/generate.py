"""POST /v1/completions and /v1/chat/completions.

Each request is checked before it takes a slot (model, prompt size, token ids, logit_bias,
grammar, response_format, tools: see `bitnet.server.chat`), then runs as one job on a slot
(`bitnet.server.generation`): `n` choices (per prompt, for a list of prompts) are sampled one
after the other on that slot, choice i with seed `seed + i` when a seed is given (so a seeded
request is reproducible), each with the prompt prefix already evaluated. Streams carry each
choice's chunks in turn, with its `index`. The response's `model` is the request's name, or
the served alias when the request names none (never the model's path).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response

from bitnet.server import chat as chat_rules
from bitnet.server.errors import APIError, Shape
from bitnet.server.generation import Job, run
from bitnet.server.routes.common import AUTH, new_work, server_state
from bitnet.server.state import ModelEntry
from bitnet.server.types import CreateChatCompletionRequest, CreateCompletionRequest

router = APIRouter(dependencies=AUTH)
Body = Union[CreateCompletionRequest, CreateChatCompletionRequest]
Call = Callable[[Any, int, bool], Any]  # (llama, choice index, stream) -> dict or chunk iterator
_COMMON_EXCLUDE = {"n", "logit_bias_type", "user", "min_tokens", "stream_options", "grammar"}


def _check_logit_bias(entry: ModelEntry, body: Body) -> Optional[Dict[str, float]]:
    """The logit_bias as token id strings (None when given as token texts: resolved on the
    slot, as llama-cpp-python does)."""
    if body.logit_bias is None:
        return None
    for key, value in body.logit_bias.items():
        if not math.isfinite(value):
            raise APIError(
                400,
                f"logit_bias[{key!r}] must be a finite number",
                param="logit_bias",
                code="invalid_logit_bias",
            )
    if body.logit_bias_type == "tokens":
        return None
    ids: List[int] = []
    for key in body.logit_bias:
        try:
            ids.append(int(key))
        except ValueError:
            raise APIError(
                400,
                f"logit_bias key {key!r} is not a token id (logit_bias_type 'tokens' takes token texts)",
                param="logit_bias",
                code="invalid_logit_bias",
            ) from None
    entry.check_token_ids(ids, "logit_bias")
    return {str(i): v for i, v in zip(ids, body.logit_bias.values())}


def _grammar_class() -> Any:
    """`LlamaGrammar` of the Python drop-in (None where it has none)."""
    from bitnet import llama_compat

    return getattr(llama_compat, "LlamaGrammar", None)


async def _check_grammar(body: Body) -> None:
    text = body.grammar
    if text is None:
        return
    grammar = _grammar_class()
    if grammar is None:
        raise APIError(400, "grammar= is not supported by this engine", param="grammar", code="unsupported")
    try:
        await anyio.to_thread.run_sync(lambda: grammar.from_string(text, verbose=False))
    except Exception as e:  # noqa: BLE001 (any parse failure is the client's grammar)
        raise APIError(400, f"invalid grammar: {e}", param="grammar", code="invalid_grammar") from None


def _slot_resources(llama: Any, body: Body) -> Dict[str, Any]:
    """llama-cpp-python's prepare_request_resources, per call on the slot's thread."""
    from bitnet.llama_compat import LogitsProcessorList, MinTokensLogitsProcessor

    kw: Dict[str, Any] = {}
    if body.logit_bias is not None and body.logit_bias_type == "tokens":
        bias: Dict[str, float] = {}
        for token, score in body.logit_bias.items():
            for tid in llama.tokenize(token.encode("utf-8"), add_bos=False, special=True):
                bias[str(tid)] = score
        kw["logit_bias"] = bias
    if body.grammar is not None:
        kw["grammar"] = _grammar_class().from_string(body.grammar, verbose=False)
    if body.min_tokens > 0:
        kw["logits_processor"] = LogitsProcessorList(
            [MinTokensLogitsProcessor(body.min_tokens, llama.token_eos())]
        )
    return kw


def _seed(body: Body, choice: int) -> Optional[int]:
    return None if body.seed is None else (body.seed + choice) & 0xFFFFFFFF


def _merge(results: List[Dict[str, Any]], per_prompt: int) -> Dict[str, Any]:
    """One response from per-choice responses (choice i at index i; prompt tokens counted
    once per prompt)."""
    out = dict(results[0])
    out["choices"] = [{**r["choices"][0], "index": i} for i, r in enumerate(results)]
    usages = [r.get("usage") or {} for r in results]
    prompt = sum(u.get("prompt_tokens", 0) for u in usages[::per_prompt])
    completion = sum(u.get("completion_tokens", 0) for u in usages)
    out["usage"] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return out


def _job(calls: int, per_prompt: int, call: Call, stream: bool) -> Job:
    def job(llama: Any) -> Iterator[Any]:
        if not stream:
            yield _merge([call(llama, i, False) for i in range(calls)], per_prompt)
            return
        for i in range(calls):
            for chunk in call(llama, i, True):
                for choice in chunk.get("choices", []):
                    choice["index"] = i
                yield chunk

    return job


def _prompts(entry: ModelEntry, body: CreateCompletionRequest) -> List[Union[str, List[int]]]:
    prompt = body.prompt
    if isinstance(prompt, str):
        prompts: List[Union[str, List[int]]] = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        prompts = [list(prompt)]  # type: ignore[arg-type]
    else:
        prompts = list(prompt)  # type: ignore[arg-type]
    if not prompts:
        raise APIError(400, "prompt must not be an empty list", param="prompt")
    for p in prompts:
        if isinstance(p, str):
            entry.check_prompt_size(
                len(p.encode("utf-8")) + len((body.suffix or "").encode("utf-8")), body.max_tokens, chat=False
            )
        else:
            entry.check_token_ids(p, "prompt")
    return prompts


def _check_logprobs(entry: ModelEntry, count: Optional[int], param: str) -> None:
    if count is None:
        return
    if not entry.settings.logits_all:
        raise APIError(
            400,
            "logprobs need logits_all (this model is served with logits_all false)",
            param=param,
            code="logprobs_unavailable",
        )
    if count > entry.n_vocab:
        raise APIError(400, f"{param} must be at most the vocabulary size {entry.n_vocab}", param=param)


@router.post("/v1/completions", tags=["OpenAI V1"], summary="Completion")
async def create_completion(request: Request, body: CreateCompletionRequest) -> Response:
    state = server_state(request)
    entry = state.resolve(body.model)
    prompts = _prompts(entry, body)
    bias = _check_logit_bias(entry, body)
    _check_logprobs(entry, body.logprobs, "logprobs")
    await _check_grammar(body)
    kwargs = body.model_dump(exclude=_COMMON_EXCLUDE | {"best_of", "prompt"})
    kwargs["model"] = body.model or entry.alias
    if bias is not None:
        kwargs["logit_bias"] = bias
    n = body.n

    def call(llama: Any, i: int, stream: bool) -> Any:
        kw = {
            **kwargs,
            **_slot_resources(llama, body),
            "prompt": prompts[i // n],
            "seed": _seed(body, i % n),
            "stream": stream,
        }
        return llama.create_completion(**kw)

    job = _job(len(prompts) * n, n, call, body.stream)
    shape = Shape(body.max_tokens, chat=False, constrained=body.grammar is not None)
    return await run(state, entry, request, new_work(request), job, body.stream, shape)


def _chat_size(messages: Sequence[Dict[str, Any]]) -> int:
    return sum(len((m.get("content") or "").encode("utf-8")) for m in messages)


@router.post("/v1/chat/completions", tags=["OpenAI V1"], summary="Chat")
async def create_chat_completion(request: Request, body: CreateChatCompletionRequest) -> Response:
    state = server_state(request)
    entry = state.resolve(body.model)
    messages = chat_rules.normalize_messages(body.messages, entry.template)
    max_tokens = body.max_tokens if body.max_tokens is not None else body.max_completion_tokens
    entry.check_prompt_size(_chat_size(messages), max_tokens, chat=True)
    bias = _check_logit_bias(entry, body)
    top_logprobs = body.top_logprobs if body.top_logprobs is not None else (0 if body.logprobs else None)
    _check_logprobs(entry, top_logprobs if body.logprobs else None, "top_logprobs")
    await _check_grammar(body)
    response_format, strict = chat_rules.response_format_of(body.response_format)
    if response_format is not None and "schema" in response_format:
        schema = response_format["schema"]
        await anyio.to_thread.run_sync(lambda: chat_rules.check_schema(schema, strict, "response_format"))
    tool_choice, required_tools = await anyio.to_thread.run_sync(lambda: chat_rules.tool_plan(body))
    kwargs = body.model_dump(
        exclude=_COMMON_EXCLUDE | {"messages", "parallel_tool_calls", "max_completion_tokens"}
    )
    kwargs.update(
        messages=messages,
        model=body.model or entry.alias,
        max_tokens=max_tokens,
        response_format=response_format,
        tool_choice=tool_choice,
        top_logprobs=top_logprobs,
    )
    if bias is not None:
        kwargs["logit_bias"] = bias
    if required_tools is not None:
        kwargs.update(tool_choice=None, response_format=chat_rules.required_call_format(required_tools))

    def call(llama: Any, i: int, stream: bool) -> Any:
        kw = {**kwargs, **_slot_resources(llama, body), "seed": _seed(body, i), "stream": stream}
        if required_tools is None:
            return llama.create_chat_completion(**kw)
        done = llama.create_chat_completion(**{**kw, "stream": False})
        return chat_rules.required_call_chunks(done) if stream else chat_rules.required_call_response(done)

    job = _job(body.n, body.n, call, body.stream)
    constrained = body.grammar is not None or response_format is not None or isinstance(tool_choice, dict)
    shape = Shape(max_tokens, chat=True, constrained=constrained or required_tools is not None)
    return await run(state, entry, request, new_work(request), job, body.stream, shape)
