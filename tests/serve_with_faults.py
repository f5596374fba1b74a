"""`bitnet serve` whose engine fails on purpose (a stand-in for a server bug), for the 500
path of tests/test_server_limits.py: a completion prompt holding FORCED_FAULT raises
RuntimeError before generating; one holding FORCED_STREAM_FAULT raises after the first
streamed chunk. Everything else is the real server. Usage: python serve_with_faults.py ARGS
(the `bitnet serve` arguments)."""

from __future__ import annotations

import sys
from typing import Any, Iterator

from bitnet.llama_compat import Llama
from bitnet.server.app import create_app
from bitnet.server.runner import serve
from bitnet.server.settings import load_settings

FORCED_FAULT = "<<forced internal fault>>"
FORCED_STREAM_FAULT = "<<forced fault mid-stream>>"


class FaultyLlama(Llama):
    def create_completion(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(prompt, str) and FORCED_FAULT in prompt:
            raise RuntimeError("injected fault: the engine failed")
        out = super().create_completion(prompt, *args, **kwargs)
        if isinstance(prompt, str) and FORCED_STREAM_FAULT in prompt and kwargs.get("stream"):
            return _fail_after_first(out)
        return out


def _fail_after_first(chunks: Iterator[Any]) -> Iterator[Any]:
    yield next(chunks)
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
    raise RuntimeError("injected fault: the engine failed mid-stream")


if __name__ == "__main__":
    server, models = load_settings(sys.argv[1:])
    app = create_app(server, models, llama_class=FaultyLlama)
    serve(app, app.state.server)
