"""Slots: N `Llama` instances of one model, handed out one request at a time.

llama-cpp-python's server serializes every request on one context behind one lock. Here a
model has `parallel` slots (each a `Llama` with its own context and KV cache over the same
mmapped file) and a bounded wait queue; `acquire` waits for a free slot, or raises
`QueueFullError` at once when `queue_size` requests are already waiting. All state is touched
from the event loop only (acquire/release are not thread-safe, on purpose: no lock needed).
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

    def __init__(self, settings: ModelSettings, queue_size: int, factory: Callable[..., Any]) -> None:
        self.settings = settings
        self.queue_size = queue_size
        self.slots: List[Any] = [factory(**settings.llama_kwargs()) for _ in range(settings.parallel)]
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
        """A free `Llama`; waits in FIFO order; QueueFullError when the queue is full."""
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
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # handed a slot just as we were cancelled
            else:
                self._waiters.remove(fut)
            raise

    def release(self, llama: Any) -> None:
        """Give `llama` back: to the oldest waiter, else to the free list."""
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
