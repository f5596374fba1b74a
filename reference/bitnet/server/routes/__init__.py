"""The HTTP routes of `bitnet serve`, one module per endpoint family: `generate`
(/v1/completions, /v1/chat/completions), `embeddings` (/v1/embeddings), `extras` (/v1/models,
/extras/tokenize, /extras/tokenize/count, /extras/detokenize), `ops` (/health, /metrics)."""

from __future__ import annotations

from typing import Set

from fastapi import FastAPI

from bitnet.server.routes import embeddings, extras, generate, ops


def include_routes(app: FastAPI) -> Set[str]:
    """Mount every route family on `app`; returns their paths."""
    paths: Set[str] = set()
    for module in (generate, embeddings, extras, ops):
        app.include_router(module.router)
        paths.update(str(getattr(route, "path", "")) for route in module.router.routes)
    return paths
