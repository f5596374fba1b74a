"""`bitnet serve`: an OpenAI-compatible HTTP server (llama-cpp-python's server API) with
parallel slots, a bounded queue, streaming, cancellation of abandoned requests, a graceful
drain and Prometheus metrics. Needs the `server` extra (fastapi, uvicorn, sse-starlette,
prometheus-client). See `bitnet.server.app` for the map of the package."""

from __future__ import annotations

import logging
import sys
from typing import List, Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the server until stopped; 0 on a clean stop (a drained SIGTERM included), 2 on bad
    settings, 1 if a model fails to load."""
    from pydantic import ValidationError

    from bitnet.server.settings import load_settings

    try:
        server, models = load_settings(argv)
    except (ValueError, ValidationError) as e:
        print(f"bitnet serve: {e}", file=sys.stderr)
        return 2
    from bitnet.server.app import create_app
    from bitnet.server.runner import serve

    log = logging.getLogger("bitnet.server")
    for m in models:
        if m.ignored:
            print(
                f"bitnet serve: {m.alias}: ignored (no effect in this engine): {', '.join(m.ignored)}",
                file=sys.stderr,
            )
    try:
        app = create_app(server, models)
    except (ValueError, OSError, NotImplementedError) as e:
        print(f"bitnet serve: failed to load a model: {e}", file=sys.stderr)
        return 1
    log.debug("models loaded: %s", [m.alias for m in models])
    serve(app, app.state.server)
    return 0


__all__: List[str] = ["main"]
