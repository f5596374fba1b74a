"""Prometheus metrics of `bitnet serve` (prometheus-client), served at GET /metrics.

One registry per app (several apps in one process do not collide). Names:
- `bitnet_http_requests_total{method,route,status}`: answered requests;
- `bitnet_requests_started_total{model}`: generation / embedding requests that got a slot;
- `bitnet_requests_finished_total{model,outcome}`: outcome = ok, error, cancelled (client gone
  or shutdown), rejected (queue full);
- `bitnet_requests_cancelled_total{model,stage}`: stage = queued (never ran) or running;
- `bitnet_prompt_tokens_total{model}` / `bitnet_completion_tokens_total{model}`: tokens
  evaluated for prompts (after the slot's cached prefix) and tokens generated;
- `bitnet_queue_depth{model}`, `bitnet_slots_busy{model}`, `bitnet_slots_total{model}`;
- `bitnet_time_to_first_token_seconds{model}` (histogram, from the request's arrival);
- `bitnet_request_duration_seconds{model}` (histogram);
- `bitnet_draining`: 1 while a SIGTERM drain runs.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Dict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from bitnet.server.pool import ModelPool

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _waiting(pool: ModelPool) -> float:
    return float(pool.waiting)


def _busy(pool: ModelPool) -> float:
    return float(pool.busy)


class ServerMetrics:
    """The metric families of one app (see the module docstring)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "bitnet_http_requests", "Answered HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.started = Counter("bitnet_requests_started", "Requests that got a slot.", ["model"], registry=r)
        self.finished = Counter(
            "bitnet_requests_finished", "Requests done, by outcome.", ["model", "outcome"], registry=r
        )
        self.cancelled = Counter(
            "bitnet_requests_cancelled", "Requests cancelled, by stage.", ["model", "stage"], registry=r
        )
        self.prompt_tokens = Counter(
            "bitnet_prompt_tokens", "Prompt tokens evaluated.", ["model"], registry=r
        )
        self.completion_tokens = Counter(
            "bitnet_completion_tokens", "Tokens generated.", ["model"], registry=r
        )
        self.queue_depth = Gauge("bitnet_queue_depth", "Requests waiting for a slot.", ["model"], registry=r)
        self.slots_busy = Gauge("bitnet_slots_busy", "Slots serving a request.", ["model"], registry=r)
        self.slots_total = Gauge("bitnet_slots_total", "Slots (parallel contexts).", ["model"], registry=r)
        self.ttft = Histogram(
            "bitnet_time_to_first_token_seconds",
            "Arrival to first generated token.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "bitnet_request_duration_seconds",
            "Arrival to last byte of the answer.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.draining = Gauge("bitnet_draining", "1 while draining after SIGTERM.", registry=r)

    def watch_pools(self, pools: Dict[str, ModelPool]) -> None:
        """Queue depth and slot gauges read from the pools at scrape time."""
        for alias, pool in pools.items():
            self.queue_depth.labels(model=alias).set_function(functools.partial(_waiting, pool))
            self.slots_busy.labels(model=alias).set_function(functools.partial(_busy, pool))
            self.slots_total.labels(model=alias).set(len(pool.slots))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
