"""The slots of one served model: `parallel` Llama instances (each its own context, see
`bitnet.server.slots`) and a bounded wait queue. `acquire` waits for a free slot (FIFO), or
raises `QueueFullError` at once when `queue_size` requests are already waiting; a waiter
cancelled while queued (its client left) leaves the queue. All state is touched from the
event loop only (acquire/release are not thread-safe, on purpose: no lock needed).

Each slot keeps its evaluated tokens between requests, so a request whose prompt starts like
the slot's previous one skips that prefix (llama-cpp-python's prefix matching): the prompt
cache is per slot and per server process.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable, Deque, Dict, List

from bitnet.server.settings import ModelSettings


class QueueFullError(Exception):
    """Every slot is busy and the wait queue is full."""


class ModelPool:
    """The slots of one model (see the module docstring)."""

    def __init__(self, settings: ModelSettings, queue_size: int, make_slot: Callable[[], Any]) -> None:
        self.settings = settings
        self.queue_size = queue_size
        self.slots: List[Any] = [make_slot() for _ in range(settings.parallel)]
        self._free: Deque[Any] = deque(self.slots)
        self._waiters: Deque[asyncio.Future[Any]] = deque()
        self.served = 0
        self.cancelled = 0
        self.peak_busy = 0
        self.peak_waiting = 0

    @property
    def busy(self) -> int:
        return len(self.slots) - len(self._free)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> Any:
        """A free slot; waits in FIFO order; QueueFullError when the queue is full."""
        if self._free and not self._waiters:
            llama = self._free.popleft()
            self.peak_busy = max(self.peak_busy, self.busy)
            return llama
        if len(self._waiters) >= self.queue_size:
            raise QueueFullError(
                f"all {len(self.slots)} slots busy and {len(self._waiters)} requests waiting"
            )
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.peak_waiting = max(self.peak_waiting, len(self._waiters))
        try:
            llama = await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # handed a slot just as we were cancelled
            else:
                self._waiters.remove(fut)
            raise
        self.peak_busy = max(self.peak_busy, self.busy)
        return llama

    def release(self, llama: Any) -> None:
        """Give `llama` back: to the oldest waiter, else to the free list."""
        llama.work = None
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(llama)
                return
        self._free.append(llama)

    def stats(self) -> Dict[str, int]:
        return {
            "slots": len(self.slots),
            "busy": self.busy,
            "waiting": self.waiting,
            "served": self.served,
            "cancelled": self.cancelled,
            "peak_busy": self.peak_busy,
            "peak_waiting": self.peak_waiting,
        }

    def close(self) -> None:
        for llama in self.slots:
            close = getattr(llama, "close", None)
            if close is not None:
                close()
