"""One slot = one `bitnet.llama_compat.Llama` (its own context) serving one request at a time.

`Work` is a request's control block: a cancel flag (set when the client is gone or a shutdown
drain runs out of time), and what the slot observed (prompt tokens evaluated, tokens sampled,
the time of the first sampled token). `SlotMixin` makes a Llama class honour it through its
decoding methods: `eval` decodes in n_batch pieces (the batches `Llama.eval` would make, so
the numbers are the same) and checks the flag before each piece, `sample` counts tokens. A
cancelled request raises `RequestCancelled` out of the Llama call within one batch or one
token; the instance stays consistent (its evaluated prefix is reused by the next request).

`make_llama` builds a slot for a model's settings: the numerics mode goes to Llama's
`numerics=` keyword when the class declares one, else through $BITNET_NUMERICS while the
constructor runs (the engine reads it when it loads the weights).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Type

from bitnet.server.settings import ModelSettings

NUMERICS_ENV = "BITNET_NUMERICS"
DISCONNECTED = "client_disconnected"  # cancel reasons
SHUTDOWN = "shutdown"
_ENV_LOCK = threading.Lock()


class RequestCancelled(Exception):
    """The request was cancelled: its client is gone, or the server stopped waiting for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Work:
    """A request's control block (see the module docstring)."""

    def __init__(self, request_id: str, arrived: Optional[float] = None) -> None:
        self.request_id = request_id
        self.arrived = time.monotonic() if arrived is None else arrived
        self._cancel = threading.Event()
        self.reason = ""
        self.prompt_tokens = 0  # evaluated before the first sampled token
        self.sampled = 0
        self.first_token_at: Optional[float] = None

    def cancel(self, reason: str) -> None:
        """Ask the request to stop (the first reason wins)."""
        if not self._cancel.is_set():
            self.reason = reason
            self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise RequestCancelled if the request was cancelled."""
        if self._cancel.is_set():
            raise RequestCancelled(self.reason)


class SlotMixin:
    """Cancellation and token accounting for a Llama class (see the module docstring).

    Decoding goes through `eval` (llama-cpp-python's generate calls it) and, where the
    drop-in's generate loop uses its internal `_eval(tokens, all_rows=...)`, through that
    too: both are cut at n_batch boundaries here, only the outermost call counts tokens."""

    work: Optional[Work] = None
    n_batch: int
    _slot_depth = 0

    def _pieces(self, tokens: Sequence[int], decode: Callable[[List[int]], None]) -> None:
        work = self.work
        tokens = [int(t) for t in tokens]
        outer = self._slot_depth == 0
        fits = self.n_tokens + len(tokens) <= self.n_ctx()  # type: ignore[attr-defined]
        if work is None or not tokens or not fits:  # overflow: the engine raises its own error
            decode(tokens)
            return
        step = max(int(self.n_batch), 1)
        self._slot_depth += 1
        try:
            for i in range(0, len(tokens), step):
                work.check()
                piece = tokens[i : i + step]
                decode(piece)
                if outer and work.first_token_at is None:
                    work.prompt_tokens += len(piece)
        finally:
            self._slot_depth -= 1

    def eval(self, tokens: Sequence[int]) -> None:
        self._pieces(tokens, lambda piece: super(SlotMixin, self).eval(piece))  # type: ignore[misc]

    def _eval(self, tokens: Sequence[int], **kwargs: Any) -> None:
        self._pieces(tokens, lambda piece: super(SlotMixin, self)._eval(piece, **kwargs))  # type: ignore[misc]

    def sample(self, *args: Any, **kwargs: Any) -> int:
        work = self.work
        if work is not None:
            work.check()
        token = int(super().sample(*args, **kwargs))  # type: ignore[misc]
        if work is not None:
            work.sampled += 1
            if work.first_token_at is None:
                work.first_token_at = time.monotonic()
        return token


_SLOT_CLASSES: Dict[type, type] = {}


def slot_class(base: type) -> type:
    """`base` (a Llama class) with `SlotMixin`."""
    if base not in _SLOT_CLASSES:
        _SLOT_CLASSES[base] = type(f"Slot{base.__name__}", (SlotMixin, base), {})
    return _SLOT_CLASSES[base]


def accepts_numerics(cls: type) -> bool:
    """Whether `cls(...)` declares a `numerics=` keyword (not just **kwargs)."""
    try:
        params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    except (TypeError, ValueError):
        return False
    return "numerics" in params


@contextlib.contextmanager
def _numerics_env(mode: Optional[str]) -> Iterator[None]:
    if mode is None:
        yield
        return
    with _ENV_LOCK:
        old = os.environ.get(NUMERICS_ENV)
        os.environ[NUMERICS_ENV] = mode
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(NUMERICS_ENV, None)
            else:
                os.environ[NUMERICS_ENV] = old


def make_llama(cls: Type[Any], settings: ModelSettings, **extra: Any) -> Any:
    """A `cls` instance for `settings` (plus `extra` keywords), in the settings' numerics."""
    kw = {**settings.llama_kwargs(), **extra}
    mode = settings.numerics
    if mode is not None and accepts_numerics(cls):
        return cls(**kw, numerics=mode)
    with _numerics_env(mode):
        return cls(**kw)
