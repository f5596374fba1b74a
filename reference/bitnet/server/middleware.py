"""The ASGI guard in front of every route (pure ASGI, so a route can still read the
connection's disconnect event):

- a request id per request: the client's `X-Request-ID` when it is a short token (a load
  balancer's), else a new one; returned in the `X-Request-ID` header and written in every log
  line about the request;
- while draining (SIGTERM): 503 `server_shutting_down` with `Connection: close` for anything
  but /health and /metrics;
- request bodies: 415 `unsupported_media_type` unless the content type is JSON (or absent),
  413 `request_too_large` beyond `max_body_bytes` (from Content-Length, or as soon as a
  chunked body passes the limit), the rejected body read and dropped, never kept; an
  accepted body is read here and handed on whole; a body whose next piece takes longer than
  `body_timeout` is a 408 `request_timeout` (nginx's client_body_timeout);
- a 500 `internal_error` (with the request id) for an exception that escaped the app, so the
  process keeps serving;
- `bitnet_http_requests_total` and the count of requests in flight (the drain waits for it).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any, Dict, List, Optional, Set

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bitnet.server.errors import APIError, cancelled_by_shutdown, internal_error, log_error
from bitnet.server.state import ServerState

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UNCOUNTED = ("/health", "/metrics")
_BODY_METHODS = ("POST", "PUT", "PATCH")
LINGER_BYTES = 128 << 20  # a rejected body is read and dropped up to this size


def _json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class GuardMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, state: ServerState, routes: Set[str]) -> None:
        self.app, self.state, self.routes = app, state, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        rid = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {}).update(request_id=rid, arrived=time.monotonic())
        status: List[int] = [0]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", rid)
            await send(message)

        path: str = scope["path"]
        counted = path not in _UNCOUNTED
        self.state.in_flight += counted
        try:
            await self._guarded(scope, receive, send_with_id, headers, rid, counted)
        except Exception as exc:  # noqa: BLE001 (answered as a 500, the process keeps serving)
            err = internal_error(rid)
            log_error(rid, err, exc)
            if status[0] == 0:
                await self._answer(err, send_with_id)
        finally:
            self.state.in_flight -= counted
            route = path if path in self.routes else "other"
            self.state.metrics.http_requests.labels(
                method=scope["method"], route=route, status=str(status[0] or 499)
            ).inc()

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, rid: str, counted: bool
    ) -> None:
        has_body = scope["method"] in _BODY_METHODS
        if self.state.draining and counted:
            await self._reject(cancelled_by_shutdown(), send, rid, receive if has_body else None, headers)
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        content_type = headers.get("content-type")
        if content_type is not None and not _json_type(content_type):
            err = APIError(
                415, f"Content-Type {content_type!r}: send application/json", code="unsupported_media_type"
            )
            await self._reject(err, send, rid, receive, headers)
            return
        limit = self.state.settings.max_body_bytes
        too_large = APIError(
            413,
            f"request body larger than {limit} bytes",
            code="request_too_large",
            headers={"Connection": "close"},
        )
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._reject(too_large, send, rid, receive, headers)
            return
        chunks: List[bytes] = []
        total = 0
        more = True
        while more:
            try:
                message = await self._piece(receive)
            except asyncio.TimeoutError:
                late = APIError(
                    408,
                    "the request body stopped arriving",
                    code="request_timeout",
                    headers={"Connection": "close"},
                )
                await self._answer(late, send, rid)
                return
            if message["type"] == "http.disconnect":
                return  # the client left before its body arrived
            body = message.get("body", b"")
            total += len(body)
            more = bool(message.get("more_body", False))
            if total > limit:
                await self._reject(too_large, send, rid, receive if more else None, headers)
                return
            chunks.append(body)
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _reject(
        self, err: APIError, send: Send, rid: str, receive: Optional[Receive], headers: Headers
    ) -> None:
        """Answer `err`, first reading and dropping the rest of the body (up to LINGER_BYTES,
        as nginx's lingering close does) so that the client, still sending, reads the answer
        instead of a connection reset."""
        length = headers.get("content-length")
        if receive is not None and not (
            length is not None and length.isdigit() and int(length) > LINGER_BYTES
        ):
            dropped = 0
            while dropped <= LINGER_BYTES:
                try:
                    message = await self._piece(receive)
                except asyncio.TimeoutError:
                    break  # answered at once; the connection closes after it
                if message["type"] == "http.disconnect":
                    return
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        await self._answer(err, send, rid)

    async def _piece(self, receive: Receive) -> Message:
        """The next piece of the body; asyncio.TimeoutError after `body_timeout` seconds."""
        return await asyncio.wait_for(receive(), self.state.settings.body_timeout)

    @staticmethod
    async def _answer(err: APIError, send: Send, rid: str = "") -> None:
        if rid:
            log_error(rid, err)
        body = err.response()
        await send({"type": "http.response.start", "status": body.status_code, "headers": body.raw_headers})
        await send({"type": "http.response.body", "body": body.body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands `body` once, then the connection's own events (disconnect)."""
    pending: Dict[str, Any] = {"body": body}

    async def replay() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop("body"), "more_body": False}
        return await receive()

    return replay
