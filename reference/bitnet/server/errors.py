"""Errors of `bitnet serve`, answered in OpenAI's shape
`{"error": {"message", "type", "param", "code"}}` and logged with the request id.

Client errors are 4xx: 400 for bad values the server checks (`invalid_request_error`, with a
`code` such as `context_length_exceeded`, `invalid_json`, `unsupported_schema`,
`invalid_logit_bias`), 422 for wrong types / bounds (`code` = pydantic's error type, `param`
= the field path), 401 `invalid_api_key`, 404 `model_not_found` / `not_found`, 408
`request_timeout` (a body that stopped arriving), 413 `request_too_large`, 415
`unsupported_media_type`, 503 `server_overloaded` (queue full) or
`server_shutting_down` (draining), both with Retry-After; 499 (nginx's "client closed
request", never seen by the client) in the logs of a request whose client left. Everything
else is a server fault: 500 `internal_error`, logged with its traceback; the message names
the request id, not the exception's text. `classify` decides which exceptions from the
engine are the client's doing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from typing import Any, Dict, Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from bitnet.errors import ContextLengthExceededError
from bitnet.server.slots import SHUTDOWN, RequestCancelled

log = logging.getLogger("bitnet.server")

_CONTEXT_RE = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")
REQUEST_ID_HEADER = "X-Request-ID"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()  # numpy scalars (llama-cpp-python's logprobs are np.float32)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """JSON text of a response body (numpy scalars and arrays allowed)."""
    return json.dumps(obj, ensure_ascii=False, default=_json_default)


class JSONBody(Response):
    """A JSON response serialized with `dumps` (numpy values allowed)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


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

    def body(self) -> Dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        return JSONBody(self.body(), status_code=self.status, headers=self.headers)


def context_exceeded(
    prompt_tokens: int, context_window: int, max_tokens: Optional[int], chat: bool
) -> APIError:
    """llama-cpp-python's ErrorResponseFormatters.context_length_exceeded, word for word."""
    if chat:
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
    text = message.format(context_window, (max_tokens or 0) + prompt_tokens, prompt_tokens, max_tokens)
    return APIError(400, text, param="messages" if chat else "prompt", code="context_length_exceeded")


@dataclasses.dataclass(frozen=True)
class Shape:
    """What `classify` needs to know about the request an exception came from."""

    max_tokens: Optional[int] = None
    chat: bool = False
    constrained: bool = False  # a grammar, a JSON schema / json_object, or a forced tool call


PLAIN = Shape()
_DEAD_END_WORDS = ("grammar", "constrained sampling")


def classify(exc: BaseException, shape: Shape = PLAIN) -> APIError:
    """The APIError for an exception raised while serving a request: the client's doing for
    the engine's typed client errors (context overflow, unsupported features) and for a
    constrained generation that reached a state no token continues (the constraint engines
    raise RuntimeError naming the grammar / constraint), else 500 (logged by the caller)."""
    if isinstance(exc, APIError):
        return exc
    match = _CONTEXT_RE.search(str(exc))
    if match is not None and isinstance(exc, (ContextLengthExceededError, ValueError)):
        return context_exceeded(int(match.group(1)), int(match.group(2)), shape.max_tokens, shape.chat)
    if isinstance(exc, NotImplementedError):
        return APIError(400, str(exc), code="unsupported")
    if shape.constrained and isinstance(exc, RuntimeError) and any(w in str(exc) for w in _DEAD_END_WORDS):
        return APIError(
            400, f"the output constraint reached a dead end for this model: {exc}", code="constraint_dead_end"
        )
    return APIError(500, "internal server error", type="server_error", code="internal_error")


def internal_error(request_id: str) -> APIError:
    return APIError(
        500, f"internal server error (request id {request_id})", type="server_error", code="internal_error"
    )


def cancelled_by_shutdown() -> APIError:
    return APIError(
        503,
        "the server is shutting down; retry on another replica",
        type="server_error",
        code="server_shutting_down",
        headers={"Retry-After": "1", "Connection": "close"},
    )


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


def log_error(request_id: str, err: APIError, exc: Optional[BaseException] = None) -> None:
    """One log line per error response; a 5xx with its traceback."""
    if err.status >= 500 and exc is not None:
        log.error("request_id=%s status=%d error=%s", request_id, err.status, exc, exc_info=exc)
    elif err.status >= 500:
        log.error("request_id=%s status=%d error=%s", request_id, err.status, err.message)
    else:
        log.warning(
            "request_id=%s status=%d code=%s error=%s", request_id, err.status, err.code, err.message[:300]
        )


def _validation_error(exc: RequestValidationError) -> APIError:
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            detail = ctx.get("error", err.get("msg", "invalid JSON"))
            return APIError(400, f"Invalid JSON body: {detail}", code="invalid_json")
    first = errors[0] if errors else {}
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    message = "; ".join(
        f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
        for e in errors
    )
    return APIError(422, message, param=".".join(loc) or None, code=str(first.get("type", "invalid")))


def install_error_handlers(app: FastAPI) -> None:
    """Every error response in OpenAI's shape, logged with the request id."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
        if exc.code != "internal_error":  # those were logged, with their traceback, where caught
            log_error(request_id_of(request), exc)
        return exc.response()

    @app.exception_handler(RequestCancelled)
    async def _cancelled(request: Request, exc: RequestCancelled) -> Response:
        if exc.reason == SHUTDOWN:
            return cancelled_by_shutdown().response()
        # nobody reads this answer; 499 is nginx's "client closed request" for the access log
        return APIError(499, "client closed the request", code="client_closed_request").response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        err = _validation_error(exc)
        log_error(request_id_of(request), err)
        return err.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        err = APIError(exc.status_code, str(exc.detail), code=code, headers=dict(exc.headers or {}))
        log_error(request_id_of(request), err)
        return err.response()

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> Response:
        rid = request_id_of(request)
        err = internal_error(rid)
        log_error(rid, err, exc)
        return err.response()
