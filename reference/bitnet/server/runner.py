"""The `bitnet serve` process: uvicorn with a graceful drain and a request-header timeout.

SIGTERM (or a first Ctrl-C) starts a drain instead of uvicorn's immediate shutdown: the
listening socket stays open, /health answers 503 "draining" and new requests 503
`server_shutting_down` (a load balancer moves on), requests in flight run on for up to
`drain_timeout` seconds; what still runs then is cancelled (a stream ends with an error event
and `[DONE]`, a plain request gets 503), and the process exits 0. A second signal exits at
once. uvicorn re-raises a caught signal after its shutdown (exit status -15); a drained stop
does not, so a supervisor sees a clean exit.

The header timeout closes a connection that has not sent a whole request head within
`header_timeout` seconds of connecting or of its previous response (slowloris); the idle
keep-alive timeout is uvicorn's `timeout_keep_alive`. Request heads are limited by h11 (16 KiB).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import signal
import time
from types import FrameType
from typing import Any, Dict, List, Optional

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from bitnet.server.slots import SHUTDOWN
from bitnet.server.state import ServerState

log = logging.getLogger("bitnet.server")
SHUTDOWN_GRACE_S = 5.0  # after the drain timeout: time for cut streams to send [DONE]


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol closing connections whose request head is late (see above)."""

    header_timeout = 10.0
    _header_timer: Optional[asyncio.TimerHandle] = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request head arrived
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM / SIGINT drains (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._drain: Optional[asyncio.Future[None]] = None

    async def serve(self, sockets: Optional[List[Any]] = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: Optional[FrameType]) -> None:
        if self._drain is None and self._loop is not None and not self.should_exit:
            self._loop.call_soon_threadsafe(self._start_drain, sig)
        else:
            self.should_exit = True
            self.force_exit = True

    def _start_drain(self, sig: int) -> None:
        if self._drain is None:
            self._drain = asyncio.ensure_future(self.drain(signal.Signals(sig).name))

    async def drain(self, why: str = "drain") -> None:
        """Refuse new work, let requests in flight finish (up to drain_timeout), then exit."""
        state = self.state
        state.draining = True
        state.metrics.draining.set(1)
        timeout = state.settings.drain_timeout
        log.info("event=draining signal=%s in_flight=%d timeout_s=%.1f", why, state.in_flight, timeout)
        deadline = time.monotonic() + timeout
        while state.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if state.in_flight > 0:
            log.warning("event=drain_timeout cancelling=%d", len(state.works))
            for work in list(state.works):
                work.cancel(SHUTDOWN)
            grace = time.monotonic() + SHUTDOWN_GRACE_S
            while state.in_flight > 0 and time.monotonic() < grace:
                await asyncio.sleep(0.05)
        log.info("event=drained in_flight=%d", state.in_flight)
        self.should_exit = True


def log_config(level: str) -> Dict[str, Any]:
    """uvicorn's logging config plus the `bitnet.server` logger at `level`."""
    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["loggers"]["bitnet.server"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return cfg


def serve(app: Any, state: ServerState) -> None:
    """Run `app` until a signal stops it (see the module docstring)."""
    s = state.settings
    protocol = type("HeaderTimeoutH11", (HeaderTimeoutH11Protocol,), {"header_timeout": s.header_timeout})
    config = uvicorn.Config(
        app,
        host=s.host,
        port=s.port,
        ssl_keyfile=s.ssl_keyfile,
        ssl_certfile=s.ssl_certfile,
        http=protocol,
        timeout_keep_alive=s.timeout_keep_alive,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S),
        log_config=log_config(s.log_level),
        log_level=s.log_level,
    )
    DrainingServer(config, state).run()
