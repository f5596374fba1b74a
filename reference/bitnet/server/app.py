"""The FastAPI app of `bitnet serve`: llama-cpp-python's server routes and schemas over
`bitnet.llama_compat.Llama`, with parallel slots per model (see `bitnet.server.pool`).

Routes: POST /v1/completions, /v1/chat/completions, /v1/embeddings; GET /v1/models;
POST /extras/tokenize, /extras/tokenize/count, /extras/detokenize; GET /health (open, no
key: status plus per-model slot counters); /docs and /openapi.json.

Streams are server-sent events (`data: {chunk}` lines, then `data: [DONE]`). Each stream runs
its `Llama` generator start to finish in one dedicated thread (the instance lock is an RLock,
owned by the thread that first entered it); a disconnected client sets a stop flag, the
thread closes the generator after the token in flight and gives the slot back. The first
chunk is computed before the response starts, so a prompt that does not fit answers a plain
400 rather than a broken stream.

Errors are OpenAI-shaped, `{"error": {"message", "type", "param", "code"}}`:
400 `context_length_exceeded` (llama-cpp-python's message), 400 `invalid_json`,
422 wrong types (`code` = pydantic's error type, `param` = the field path), 401
`invalid_api_key`, 404 `model_not_found`, 503 `server_overloaded` with Retry-After, 500 else.
Divergences from llama-cpp-python: an unknown `model` is a 404 (llama-cpp-python silently
serves its default model); validation errors use the error shape above instead of FastAPI's
`{"detail": [...]}`; grammar= is a 400 (unsupported by this engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import threading
import traceback
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Tuple, Union

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from bitnet.server.pool import ModelPool, QueueFullError
from bitnet.server.settings import ModelSettings, ServerSettings
from bitnet.server.types import (
    CreateChatCompletionRequest,
    CreateCompletionRequest,
    CreateEmbeddingRequest,
    DetokenizeInputRequest,
    TokenizeInputRequest,
)

_CONTEXT_RE = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


class APIError(Exception):
    """An error answered as an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: Optional[str] = None,
        code: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers

    def response(self) -> JSONResponse:
        body = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status, headers=self.headers)


def _map_llama_error(exc: BaseException, body: Any) -> APIError:
    """The APIError for an exception raised by `Llama` while serving `body`."""
    match = _CONTEXT_RE.search(str(exc))
    if match is not None and isinstance(body, (CreateCompletionRequest, CreateChatCompletionRequest)):
        # llama-cpp-python's ErrorResponseFormatters.context_length_exceeded, word for word
        prompt_tokens, context_window = int(match.group(1)), int(match.group(2))
        completion_tokens = body.max_tokens
        if isinstance(body, CreateChatCompletionRequest):
            message = (
                "This model's maximum context length is {} tokens. However, you requested {} tokens "
                "({} in the messages, {} in the completion). "
                "Please reduce the length of the messages or completion."
            )
        else:
            message = (
                "This model's maximum context length is {} tokens, however you requested {} tokens "
                "({} in your prompt; {} for the completion). "
                "Please reduce your prompt; or completion length."
            )
        text = message.format(
            context_window, (completion_tokens or 0) + prompt_tokens, prompt_tokens, completion_tokens
        )
        return APIError(400, text, param="messages", code="context_length_exceeded")
    if isinstance(exc, NotImplementedError):
        return APIError(400, str(exc), code="unsupported")
    if isinstance(exc, ValueError):
        return APIError(400, str(exc))
    print(f"Exception: {exc}", file=sys.stderr)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return APIError(500, str(exc), type="internal_server_error")


class _Stream:
    """One streaming request: a thread iterating a `Llama` generator into an asyncio queue."""

    _CHUNK, _ERROR, _END = "chunk", "error", "end"

    def __init__(self, pool: ModelPool, llama: Any, start: Callable[[], Iterator[Dict[str, Any]]]) -> None:
        self.pool, self.llama, self._start = pool, llama, start
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Tuple[str, Any]] = asyncio.Queue()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bitnet-stream", daemon=True)
        self.thread.start()

    def _put(self, kind: str, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, value))
        except RuntimeError:  # loop closed (server shutting down)
            pass

    def _run(self) -> None:
        it: Optional[Iterator[Dict[str, Any]]] = None
        cut_short = False
        try:
            it = self._start()
            for chunk in it:
                self._put(self._CHUNK, chunk)
                if self.stopped.is_set():
                    cut_short = True
                    break
        except BaseException as e:  # noqa: B036 (handed to the event loop)
            self._put(self._ERROR, e)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # same thread that entered the instance lock
            self._put(self._END, None)
            try:
                self.loop.call_soon_threadsafe(self._done, cut_short)
            except RuntimeError:
                pass

    def _done(self, cut_short: bool) -> None:
        self.pool.served += 1
        self.pool.cancelled += int(cut_short)
        self.pool.release(self.llama)

    async def get(self) -> Tuple[str, Any]:
        return await self.queue.get()

    def stop(self) -> None:
        """Ask the thread to stop after the token in flight (idempotent)."""
        self.stopped.set()

    async def events(self, first: Tuple[str, Any], body: Any) -> Any:
        """The SSE events, from the already fetched first item."""
        try:
            kind, value = first
            while kind == self._CHUNK:
                yield {"data": json.dumps(value)}
                kind, value = await self.get()
            if kind == self._ERROR:
                err = _map_llama_error(value, body)
                msg = {"message": err.message, "type": err.type, "param": err.param, "code": err.code}
                yield {"data": json.dumps({"error": msg})}
            yield {"data": "[DONE]"}
        finally:
            self.stop()


def create_app(
    server_settings: ServerSettings,
    model_settings: List[ModelSettings],
    llama_factory: Optional[Callable[..., Any]] = None,
) -> FastAPI:
    """The ASGI app; loads every model's slots now (raises if a model does not load)."""
    if llama_factory is None:
        from bitnet.llama_compat import Llama

        llama_factory = Llama
    factory: Callable[..., Any] = llama_factory
    pools: Dict[str, ModelPool] = {}
    vocabs: Dict[str, Any] = {}
    for ms in model_settings:
        pools[ms.alias] = ModelPool(ms, server_settings.queue_size, factory)
        vocabs[ms.alias] = factory(model_path=ms.model, vocab_only=True, verbose=False)
    default_alias = model_settings[0].alias
    by_path = {ms.model: ms.alias for ms in model_settings}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for pool in pools.values():
            pool.close()

    app = FastAPI(
        lifespan=lifespan,
        title="bitnet serve",
        description="OpenAI-compatible API (llama-cpp-python's server routes) for GGUF models.",
        version="0.1.0",
        root_path=server_settings.root_path,
    )
    app.state.pools = pools
    app.state.settings = server_settings

    # --- errors ---------------------------------------------------------------------------
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        for err in errors:
            if err.get("type") == "json_invalid":
                ctx = err.get("ctx") or {}
                detail = ctx.get("error", err.get("msg", "invalid JSON"))
                return APIError(400, f"Invalid JSON body: {detail}", code="invalid_json").response()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = ".".join(loc) or None
        message = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
            for e in errors
        )
        return APIError(422, message, param=param, code=str(first.get("type", "invalid"))).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        headers = dict(exc.headers or {})
        return APIError(exc.status_code, str(exc.detail), code=code, headers=headers).response()

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        return _map_llama_error(exc, None).response()

    # --- helpers --------------------------------------------------------------------------
    bearer = HTTPBearer(auto_error=False)

    async def authenticate(
        authorization: Optional[HTTPAuthorizationCredentials] = Depends(bearer),  # noqa: B008
    ) -> None:
        key = server_settings.api_key
        if key is None:
            return
        if authorization is None or authorization.credentials != key:
            raise APIError(401, "Invalid API key", code="invalid_api_key")

    def resolve(model: Optional[str]) -> str:
        if model is None:
            return default_alias
        if model in pools:
            return model
        if model in by_path:
            return by_path[model]
        raise APIError(404, f"The model `{model}` does not exist", param="model", code="model_not_found")

    async def acquire(pool: ModelPool) -> Any:
        try:
            return await pool.acquire()
        except QueueFullError as e:
            raise APIError(
                503,
                f"Server overloaded: {e}; retry later",
                type="server_error",
                code="server_overloaded",
                headers={"Retry-After": str(server_settings.retry_after)},
            ) from None

    def sampling_kwargs(llama: Any, body: Any, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """llama-cpp-python's prepare_request_resources (in the slot's thread)."""
        from bitnet.llama_compat import LogitsProcessorList, MinTokensLogitsProcessor

        if body.logit_bias is not None:
            if body.logit_bias_type == "tokens":
                bias: Dict[str, float] = {}
                for token, score in body.logit_bias.items():
                    for tid in llama.tokenize(token.encode("utf-8"), add_bos=False, special=True):
                        bias[str(tid)] = score
                kwargs["logit_bias"] = bias
            else:
                kwargs["logit_bias"] = body.logit_bias
        if body.grammar is not None:
            raise NotImplementedError("grammar= is not supported by this engine")
        kwargs.pop("grammar", None)
        if body.min_tokens > 0:
            kwargs["logits_processor"] = LogitsProcessorList(
                [MinTokensLogitsProcessor(body.min_tokens, llama.token_eos())]
            )
        return kwargs

    async def generate(
        body: Union[CreateCompletionRequest, CreateChatCompletionRequest],
        call: Callable[[Any, Dict[str, Any]], Any],
        kwargs: Dict[str, Any],
    ) -> Any:
        pool = pools[resolve(body.model)]
        llama = await acquire(pool)
        if not body.stream:
            try:
                return await anyio.to_thread.run_sync(
                    lambda: call(llama, sampling_kwargs(llama, body, kwargs))
                )
            except Exception as e:
                raise _map_llama_error(e, body) from e
            finally:
                pool.served += 1
                pool.release(llama)
        stream = _Stream(pool, llama, lambda: call(llama, sampling_kwargs(llama, body, kwargs)))
        first = await stream.get()
        if first[0] == _Stream._ERROR:
            raise _map_llama_error(first[1], body)
        ping = 10**9 if server_settings.disable_ping_events else 15
        return EventSourceResponse(
            stream.events(first, body), sep="\n", ping=ping, background=BackgroundTask(stream.stop)
        )

    # --- routes ---------------------------------------------------------------------------
    auth = [Depends(authenticate)]

    @app.get("/health", tags=["Extras"], summary="Health and slot counters")
    async def health() -> Dict[str, Any]:
        return {"status": "ok", "models": {alias: p.stats() for alias, p in pools.items()}}

    @app.post("/v1/completions", dependencies=auth, tags=["OpenAI V1"], summary="Completion")
    async def create_completion(body: CreateCompletionRequest) -> Any:
        if isinstance(body.prompt, list):
            if len(body.prompt) > 1:
                raise APIError(400, "only one prompt per request is supported", param="prompt")
            body.prompt = body.prompt[0] if body.prompt else ""
        kwargs = body.model_dump(exclude={"n", "best_of", "logit_bias_type", "user", "min_tokens"})
        return await generate(body, lambda llama, kw: llama(**kw), kwargs)

    @app.post("/v1/chat/completions", dependencies=auth, tags=["OpenAI V1"], summary="Chat")
    async def create_chat_completion(body: CreateChatCompletionRequest) -> Any:
        kwargs = body.model_dump(exclude={"n", "logit_bias_type", "user", "min_tokens", "messages"})
        kwargs["messages"] = [m.model_dump(exclude_unset=True) for m in body.messages]
        return await generate(body, lambda llama, kw: llama.create_chat_completion(**kw), kwargs)

    @app.post("/v1/embeddings", dependencies=auth, tags=["OpenAI V1"], summary="Embedding")
    async def create_embedding(body: CreateEmbeddingRequest) -> Any:
        pool = pools[resolve(body.model)]
        llama = await acquire(pool)
        try:
            return await anyio.to_thread.run_sync(
                lambda: llama.create_embedding(input=body.input, model=body.model)
            )
        except Exception as e:
            raise _map_llama_error(e, body) from e
        finally:
            pool.served += 1
            pool.release(llama)

    @app.get("/v1/models", dependencies=auth, tags=["OpenAI V1"], summary="Models")
    async def get_models() -> Dict[str, Any]:
        data = [{"id": a, "object": "model", "owned_by": "me", "permissions": []} for a in pools]
        return {"object": "list", "data": data}

    @app.post("/extras/tokenize", dependencies=auth, tags=["Extras"], summary="Tokenize")
    async def tokenize(body: TokenizeInputRequest) -> Dict[str, Any]:
        vocab = vocabs[resolve(body.model)]
        tokens = await anyio.to_thread.run_sync(
            lambda: vocab.tokenize(body.input.encode("utf-8"), special=True)
        )
        return {"tokens": tokens}

    @app.post("/extras/tokenize/count", dependencies=auth, tags=["Extras"], summary="Tokenize Count")
    async def count_query_tokens(body: TokenizeInputRequest) -> Dict[str, Any]:
        vocab = vocabs[resolve(body.model)]
        tokens = await anyio.to_thread.run_sync(
            lambda: vocab.tokenize(body.input.encode("utf-8"), special=True)
        )
        return {"count": len(tokens)}

    @app.post("/extras/detokenize", dependencies=auth, tags=["Extras"], summary="Detokenize")
    async def detokenize(body: DetokenizeInputRequest) -> Dict[str, Any]:
        vocab = vocabs[resolve(body.model)]
        try:
            raw = await anyio.to_thread.run_sync(lambda: vocab.detokenize(body.tokens))
        except (IndexError, ValueError, KeyError) as e:
            raise APIError(400, f"invalid token ids: {e}", param="tokens") from e
        return {"text": raw.decode("utf-8", errors="replace")}

    return app
