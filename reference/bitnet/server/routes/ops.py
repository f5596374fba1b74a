"""GET /health (open: load balancers probe it) and GET /metrics (Prometheus text format).

/health answers 200 `{"status": "ok", "models": {alias: slot counters}}`, or 503
`{"status": "draining"}` once a SIGTERM drain started (so a load balancer stops sending
work); model paths appear only when an API key is set and the request carries it. /metrics needs the key
when one is set.
"""

from __future__ import annotations

from typing import Any, Dict

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from bitnet.server.errors import JSONBody
from bitnet.server.metrics import CONTENT_TYPE
from bitnet.server.routes.common import authenticate, authorized, server_state

router = APIRouter()


@router.get("/health", tags=["Extras"], summary="Health and slot counters")
async def health(request: Request) -> Response:
    state = server_state(request)
    models: Dict[str, Any] = {}
    show_paths = state.api_key is not None and authorized(request)
    for alias, entry in state.entries.items():
        models[alias] = entry.pool.stats()
        if show_paths:
            models[alias]["path"] = entry.settings.model
    status = "draining" if state.draining else "ok"
    return JSONBody({"status": status, "models": models}, status_code=503 if state.draining else 200)


@router.get("/metrics", tags=["Extras"], summary="Prometheus metrics", dependencies=[Depends(authenticate)])
async def metrics(request: Request) -> Response:
    return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE)
