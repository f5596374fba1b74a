"""What every route needs: the server state, the bearer-key check, a request's `Work`."""

from __future__ import annotations

import hmac
import time

from fastapi import Depends, Request

from bitnet.server.errors import APIError, request_id_of
from bitnet.server.slots import Work
from bitnet.server.state import ServerState


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def authorized(request: Request) -> bool:
    """Whether the request carries the API key (always true without one). The comparison
    takes the same time wherever the first difference is (hmac.compare_digest)."""
    key = server_state(request).api_key
    if key is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), key.encode("utf-8"))


async def authenticate(request: Request) -> None:
    """401 `invalid_api_key` unless the request is authorized."""
    if not authorized(request):
        raise APIError(401, "Invalid API key", code="invalid_api_key")


AUTH = [Depends(authenticate)]


def new_work(request: Request) -> Work:
    """The control block of this request (arrival time from the middleware)."""
    arrived = getattr(request.state, "arrived", None)
    return Work(request_id_of(request), arrived if arrived is not None else time.monotonic())
