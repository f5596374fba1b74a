"""Running one request on a slot: queueing, a dedicated thread, streaming, cancellation and
accounting.

A request (`Work`) first waits for a slot of its model (`ModelPool.acquire`), while a watcher
reads the connection: a client that leaves while queued is taken out of the queue. With a
slot, a `SlotRun` thread runs the request's job (a function of the slot's Llama yielding
items: one completion dict, or stream chunks) and hands the items to the event loop; the
thread gives the slot back, on the loop, when the job ends, so a slot is never reused while
a thread still holds it. The end of a job is reported after the slot is back and the request
is logged and counted, and every answer (JSON body, last stream event) waits for it. A client
that leaves while its request runs (stream or not) cancels the `Work`: the job raises
`RequestCancelled` within one batch or one token (see `bitnet.server.slots`) and the slot
frees. A drain that runs out of time cancels with reason "shutdown": a stream then ends with
an error event and `[DONE]`, a plain request gets 503.

Streams are server-sent events (`data: {chunk}` lines, then `data: [DONE]`). The first item
is computed before the response starts, so a prompt that does not fit answers a plain 400
rather than a broken stream. Each request leaves one log line per event (`started`,
`cancelled`, `finished`) with its request id, and its counts in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, AsyncIterator, Callable, Dict, Iterator, Optional, Tuple

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from bitnet.server.errors import PLAIN, APIError, JSONBody, Shape, classify, dumps, internal_error, log_error
from bitnet.server.pool import ModelPool, QueueFullError
from bitnet.server.slots import DISCONNECTED, RequestCancelled, Work
from bitnet.server.state import ModelEntry, ServerState

log = logging.getLogger("bitnet.server")

Job = Callable[[Any], Iterator[Any]]
_ITEM, _ERROR, _END = "item", "error", "end"


async def _until_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _first_or_disconnect(request: Request, awaitable: Any) -> Tuple[bool, Any]:
    """(True, result) when `awaitable` finishes first, (False, its task) when the client
    disconnects first (the task still runs)."""
    task = asyncio.ensure_future(awaitable)
    watch = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        if not watch.done():
            watch.cancel()
    if task.done():
        return True, task.result()
    return False, task


class SlotRun:
    """`job(llama)` on a dedicated thread (see the module docstring)."""

    def __init__(self, state: ServerState, entry: ModelEntry, llama: Any, work: Work, job: Job) -> None:
        self.state, self.entry, self.llama, self.work, self._job = state, entry, llama, work, job
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Tuple[str, Any]] = asyncio.Queue()
        llama.work = work
        self.thread = threading.Thread(target=self._run, name=f"bitnet-{work.request_id}", daemon=True)
        self.thread.start()

    def _put(self, kind: str, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, value))
        except RuntimeError:  # loop closed (server stopped)
            pass

    def _run(self) -> None:
        it: Optional[Iterator[Any]] = None
        outcome = "ok"
        try:
            it = self._job(self.llama)
            for item in it:
                self._put(_ITEM, item)
        except RequestCancelled as e:
            outcome = "cancelled"
            self._put(_ERROR, e)
        except BaseException as e:  # noqa: B036 (handed to the event loop)
            outcome = "error"
            self._put(_ERROR, e)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # same thread that entered the instance lock
            try:
                self.loop.call_soon_threadsafe(self._finished, outcome)
            except RuntimeError:  # loop closed (server stopped)
                pass

    def _finished(self, outcome: str) -> None:
        work, entry, m = self.work, self.entry, self.state.metrics
        alias = entry.alias
        pool = entry.pool
        pool.served += 1
        if outcome == "cancelled":
            pool.cancelled += 1
            m.cancelled.labels(model=alias, stage="running").inc()
        m.finished.labels(model=alias, outcome=outcome).inc()
        m.prompt_tokens.labels(model=alias).inc(work.prompt_tokens)
        m.completion_tokens.labels(model=alias).inc(work.sampled)
        if work.first_token_at is not None:
            m.ttft.labels(model=alias).observe(work.first_token_at - work.arrived)
        m.duration.labels(model=alias).observe(time.monotonic() - work.arrived)
        log.info(
            "request_id=%s event=%s model=%s prompt_tokens=%d completion_tokens=%d reason=%s",
            work.request_id,
            "cancelled" if outcome == "cancelled" else "finished",
            alias,
            work.prompt_tokens,
            work.sampled,
            work.reason or outcome,
        )
        self.state.works.discard(work)
        pool.release(self.llama)
        self.queue.put_nowait((_END, None))  # after the accounting: an answer is never ahead of it

    async def next(self) -> Tuple[str, Any]:
        return await self.queue.get()


async def _acquire(state: ServerState, entry: ModelEntry, request: Request, work: Work) -> Any:
    pool: ModelPool = entry.pool
    try:
        ok, value = await _first_or_disconnect(request, pool.acquire())
    except QueueFullError as e:
        state.metrics.finished.labels(model=entry.alias, outcome="rejected").inc()
        retry = str(state.settings.retry_after)
        raise APIError(
            503,
            f"Server overloaded: {e}; retry later",
            type="server_error",
            code="server_overloaded",
            headers={"Retry-After": retry},
        ) from None
    if not ok:
        value.cancel()  # leaves the queue (or gives back a slot handed over meanwhile)
        work.cancel(DISCONNECTED)
        state.metrics.cancelled.labels(model=entry.alias, stage="queued").inc()
        state.metrics.finished.labels(model=entry.alias, outcome="cancelled").inc()
        log.info(
            "request_id=%s event=cancelled model=%s stage=queued reason=%s",
            work.request_id,
            entry.alias,
            DISCONNECTED,
        )
        raise RequestCancelled(DISCONNECTED)
    if work.cancelled:  # a drain gave up on it while it waited
        entry.pool.release(value)
        raise RequestCancelled(work.reason)
    state.metrics.started.labels(model=entry.alias).inc()
    log.info(
        "request_id=%s event=started model=%s waited_s=%.3f",
        work.request_id,
        entry.alias,
        time.monotonic() - work.arrived,
    )
    return value


def _error_of(exc: BaseException, work: Work, shape: Shape) -> BaseException:
    if isinstance(exc, RequestCancelled):
        return exc
    err = classify(exc, shape)
    if err.status >= 500:
        err = internal_error(work.request_id)
        log_error(work.request_id, err, exc)
    return err


async def run(
    state: ServerState,
    entry: ModelEntry,
    request: Request,
    work: Work,
    job: Job,
    stream: bool,
    shape: Shape = PLAIN,
) -> Response:
    """Serve `job` on a slot of `entry`: a JSON body (its one item) or an SSE stream."""
    state.works.add(work)
    try:
        llama = await _acquire(state, entry, request, work)
    except BaseException:
        state.works.discard(work)
        raise
    slot_run = SlotRun(state, entry, llama, work, job)
    ok, first = await _first_or_disconnect(request, slot_run.next())
    if not ok:
        first.cancel()
        work.cancel(DISCONNECTED)  # the thread stops at its next batch or token
        raise RequestCancelled(DISCONNECTED)
    kind, value = first
    if kind == _ERROR:
        await slot_run.next()  # the end: the slot is free and the request logged
        raise _error_of(value, work, shape)
    if not stream:
        await slot_run.next()  # the end: the slot is free and the request logged
        return JSONBody(value)
    ping = 10**9 if state.settings.disable_ping_events else 15
    return EventSourceResponse(_events(slot_run, value, shape), sep="\n", ping=ping)


def error_event(err: BaseException) -> Dict[str, Any]:
    if isinstance(err, RequestCancelled):
        body = {
            "message": "the server is shutting down; the stream was cut short",
            "type": "server_error",
            "param": None,
            "code": "server_shutting_down",
        }
        return {"error": body}
    assert isinstance(err, APIError)
    return err.body()


async def _events(slot_run: SlotRun, first: Any, shape: Shape) -> AsyncIterator[Any]:
    ended = False
    try:
        kind, value = _ITEM, first
        while kind == _ITEM:
            yield {"data": dumps(value)}
            kind, value = await slot_run.next()
        ended = True
        if kind == _ERROR:
            await slot_run.next()
            yield {"data": dumps(error_event(_error_of(value, slot_run.work, shape)))}
        yield {"data": "[DONE]"}
    finally:
        if not ended:
            slot_run.work.cancel(DISCONNECTED)  # the response ended early: the client left
