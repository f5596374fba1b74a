"""`bitnet serve`: an OpenAI-compatible HTTP server (llama-cpp-python's server API) with
parallel slots, a bounded queue and streaming. Needs the `server` extra (fastapi, uvicorn,
sse-starlette)."""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the server until interrupted; 0 on a clean stop, 2 on bad settings, 1 if a model
    fails to load."""
    from pydantic import ValidationError

    from bitnet.server.settings import load_settings

    try:
        server, models = load_settings(argv)
    except (ValueError, ValidationError) as e:
        print(f"bitnet serve: {e}", file=sys.stderr)
        return 2
    import uvicorn

    from bitnet.server.app import create_app

    try:
        app = create_app(server, models)
    except (ValueError, OSError, NotImplementedError) as e:
        print(f"bitnet serve: failed to load a model: {e}", file=sys.stderr)
        return 1
    uvicorn.run(
        app,
        host=server.host,
        port=server.port,
        ssl_keyfile=server.ssl_keyfile,
        ssl_certfile=server.ssl_certfile,
    )
    return 0


__all__: List[str] = ["main"]
