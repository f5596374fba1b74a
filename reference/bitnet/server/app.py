"""The FastAPI app of `bitnet serve`: llama-cpp-python's server routes and schemas over
`bitnet.llama_compat.Llama`, with parallel slots per model.

Routes (`bitnet.server.routes`): POST /v1/completions, /v1/chat/completions, /v1/embeddings;
GET /v1/models; POST /extras/tokenize, /extras/tokenize/count, /extras/detokenize; GET /health
(open), /metrics (Prometheus); /docs and /openapi.json. Request bodies:
`bitnet.server.types`; what chat requests may carry: `bitnet.server.chat`; running a request
on a slot (queue, thread, stream, cancellation): `bitnet.server.generation`; errors:
`bitnet.server.errors`; request ids, body limits, drain answers: `bitnet.server.middleware`;
the process: `bitnet.server.runner`.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, List, Optional

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from bitnet.server.errors import REQUEST_ID_HEADER, install_error_handlers
from bitnet.server.middleware import GuardMiddleware
from bitnet.server.routes import include_routes
from bitnet.server.settings import ModelSettings, ServerSettings
from bitnet.server.state import ServerState


def create_app(
    server_settings: ServerSettings,
    model_settings: List[ModelSettings],
    llama_class: Optional[type] = None,
) -> FastAPI:
    """The ASGI app; loads every model's slots now (raises if a model does not load).
    `llama_class` (default `bitnet.llama_compat.Llama`) builds the slots."""
    if llama_class is None:
        from bitnet.llama_compat import Llama

        llama_class = Llama
    state = ServerState(server_settings, model_settings, llama_class)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        lifespan=lifespan,
        title="bitnet serve",
        description="OpenAI-compatible API (llama-cpp-python's server routes) for GGUF models.",
        version="0.1.0",
        root_path=server_settings.root_path,
    )
    app.state.server = state
    install_error_handlers(app)
    routes = include_routes(app)
    app.add_middleware(GuardMiddleware, state=state, routes=routes)
    origins = server_settings.cors_origin_list()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
        )
    return app
