"""`bitnet serve` under abuse: huge bodies, clients that leave, malformed requests, a forced
engine fault, slow request heads. One server process for the module (tests/serve_with_faults.py:
the real server whose engine fails on purpose for two marker prompts), tiny synthetic model,
one slot and a queue of 2, so a request in flight and a queued one are easy to arrange.

What is asserted is what the server itself reports (status codes and bodies, its /metrics,
its per-request log events in order, /proc RSS), never how fast it was; durations are printed.
Cost: ~15-25 s on 2 loaded cores (one model load, ~4 MB of generated text, 3 x 50 MB bodies).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")
pytest.importorskip("prometheus_client")

from bitnet_harness.synthetic import synthetic_path  # noqa: E402

from .serve_with_faults import FORCED_FAULT, FORCED_STREAM_FAULT  # noqa: E402
from .server_process import FAULT_LAUNCHER, Server, httpx, wait_for  # noqa: E402

ALIAS = "tiny"
LONG = 3800  # tokens of a request meant to still run when its client leaves (n_ctx 4096)
MB = 1 << 20


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("server_limits")
    args = [
        str(synthetic_path("llama-q8_0")),
        "--model_alias",
        ALIAS,
        "--n_ctx",
        "4096",
        "--parallel",
        "1",
        "--queue_size",
        "2",
        "--header_timeout",
        "1",
        "--body_timeout",
        "1",
        "--max_body_bytes",
        str(8 * MB),
    ]
    s = Server(args, d / "server.log", launcher=FAULT_LAUNCHER)
    yield s
    s.stop()


def _raw(srv: Server, body: Dict[str, Any], rid: str, path: str = "/v1/completions") -> socket.socket:
    """A request sent on a bare socket (closing it is the client leaving)."""
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nX-Request-ID: {rid}\r\n\r\n"
    )
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(head.encode() + data)
    return s


def _long(stream: bool = False) -> Dict[str, Any]:
    return {"prompt": "x", "max_tokens": LONG, "min_tokens": LONG, "temperature": 0, "stream": stream}


def _assert_error(r: Any, status: int, code: Any = None) -> Dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if code is not None:
        assert err["code"] == code, err
    assert r.headers.get("x-request-id")
    return dict(err)


def _ok(srv: Server) -> None:
    r = srv.post("/v1/completions", {"prompt": "ok", "max_tokens": 2})
    assert r.status_code == 200, r.text


def _cancelled_line(srv: Server, rid: str) -> str:
    return next(ln for ln in srv.log_text().splitlines() if f"request_id={rid} event=cancelled" in ln)


# --- bounded memory --------------------------------------------------------------------------


def test_huge_bodies_are_refused_and_memory_returns(srv: Server) -> None:
    before = srv.rss_bytes()
    big = b'{"prompt": "' + b"a" * (50 * MB) + b'"}'
    for i in range(3):
        t0 = time.monotonic()
        r = httpx.post(
            srv.base + "/v1/completions",
            content=big,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        print(f"50 MB body {i}: {r.status_code} in {time.monotonic() - t0:.2f} s")
        _assert_error(r, 413, "request_too_large")
    # chunked (no Content-Length): refused once the limit is passed
    r = httpx.post(
        srv.base + "/v1/completions",
        content=iter([b"a" * MB] * 50),
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    _assert_error(r, 413, "request_too_large")
    # under the body limit but far beyond the context: refused before tokenizing
    r = srv.post("/v1/completions", {"prompt": "word " * (6 * MB // 5), "max_tokens": 4})
    assert (
        "maximum context length is 4096 tokens" in _assert_error(r, 400, "context_length_exceeded")["message"]
    )
    r = srv.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "z" * (6 * MB)}]})
    _assert_error(r, 400, "context_length_exceeded")
    after = srv.rss_bytes()
    print(f"RSS before {before / MB:.1f} MiB, after {after / MB:.1f} MiB")
    assert after - before < 100 * MB
    _ok(srv)


# --- cancelled work --------------------------------------------------------------------------


def test_nonstream_client_leaving_frees_the_slot(srv: Server) -> None:
    running = srv.metric("bitnet_requests_cancelled_total", model=ALIAS, stage="running")
    a = _raw(srv, _long(), "leaver-a")
    wait_for(lambda: "started" in srv.events("leaver-a"), "request A started")
    result: List[Any] = []
    b = threading.Thread(
        target=lambda: result.append(
            httpx.post(
                srv.base + "/v1/completions",
                json={"prompt": "hi", "max_tokens": 4, "temperature": 0},
                headers={"X-Request-ID": "after-a"},
                timeout=300,
            )
        )
    )
    b.start()
    wait_for(lambda: srv.health()["models"][ALIAS]["waiting"] == 1, "request B queued behind A")
    time.sleep(1.0)  # the client of A waits a second, then gives up
    t0 = time.monotonic()
    a.close()
    b.join(timeout=300)
    print(f"B answered {time.monotonic() - t0:.2f} s after A's client left")
    assert result and result[0].status_code == 200, result
    # A was cut short (not run to its LONG tokens), and B started only after that
    assert srv.events("leaver-a") == ["started", "cancelled"]
    assert srv.events("after-a") == ["started", "finished"]
    log = srv.log_text()
    assert log.index("request_id=leaver-a event=cancelled") < log.index("request_id=after-a event=started")
    line = _cancelled_line(srv, "leaver-a")
    tokens = int(line.split("completion_tokens=")[1].split()[0])
    assert 0 < tokens < LONG and "reason=client_disconnected" in line
    assert srv.metric("bitnet_requests_cancelled_total", model=ALIAS, stage="running") == running + 1
    wait_for(lambda: srv.health()["models"][ALIAS]["busy"] == 0, "slot free")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_queued_client_leaving_never_runs(srv: Server, stream: bool) -> None:
    queued = srv.metric("bitnet_requests_cancelled_total", model=ALIAS, stage="queued")
    holder = _raw(srv, _long(stream=True), f"holder-{stream}")
    wait_for(lambda: "started" in srv.events(f"holder-{stream}"), "holder started")
    waiter = _raw(srv, {"prompt": "queued", "max_tokens": 8, "stream": stream}, f"waiter-{stream}")
    wait_for(lambda: srv.health()["models"][ALIAS]["waiting"] == 1, "waiter queued")
    waiter.close()
    wait_for(lambda: srv.health()["models"][ALIAS]["waiting"] == 0, "waiter left the queue")
    assert srv.events(f"waiter-{stream}") == ["cancelled"]  # never started: no prompt evaluated
    assert srv.metric("bitnet_requests_cancelled_total", model=ALIAS, stage="queued") == queued + 1
    holder.close()  # a streaming client leaving mid-stream frees the slot too
    wait_for(lambda: srv.events(f"holder-{stream}") == ["started", "cancelled"], "holder cancelled")
    wait_for(lambda: srv.health()["models"][ALIAS]["busy"] == 0, "slot free")
    _ok(srv)


def test_disconnect_storm_leaves_nothing_behind(srv: Server) -> None:
    """50 clients send a request (half of them streams) and leave at once or after a few ms:
    every one is accounted for (answered, rejected by the full queue, or recorded as 499),
    and the slot and the queue end empty."""

    def total() -> float:
        return sum(
            v
            for k, v in srv.metrics().items()
            if k.startswith("bitnet_http_requests_total") and 'route="/v1/completions"' in k
        )

    before = total()
    socks = []
    for i in range(50):
        socks.append(_raw(srv, {**_long(stream=i % 2 == 0), "max_tokens": 200}, f"storm-{i}"))
        if i % 5 == 4:
            for s in socks:
                s.close()
            socks = []
            time.sleep(0.01 * (i % 3))
    wait_for(lambda: total() >= before + 50, "all 50 requests accounted for")
    wait_for(
        lambda: srv.health()["models"][ALIAS]["busy"] == 0 == srv.health()["models"][ALIAS]["waiting"],
        "slot and queue empty",
    )
    assert total() == before + 50
    _ok(srv)


# --- honest status codes ---------------------------------------------------------------------

J = "application/json"
MALFORMED = [
    ("/v1/completions", b'{"prompt": "hi", ', J, 400, "invalid_json"),
    ("/v1/chat/completions", b"not json", J, 400, "invalid_json"),
    ("/v1/completions", b'{"prompt": "hi"}', "text/plain", 415, "unsupported_media_type"),
    ("/v1/completions", b"prompt=hi", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("/v1/completions", {"prompt": "hi", "max_tokens": "many"}, J, 422, "int_parsing"),
    ("/v1/completions", {"prompt": "hi", "max_tokens": -1}, J, 422, "greater_than_equal"),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": -5},
        J,
        422,
        None,
    ),
    ("/v1/completions", {"prompt": "hi", "temperature": -1}, J, 422, "greater_than_equal"),
    ("/v1/completions", {"prompt": "hi", "n": 0}, J, 422, "greater_than_equal"),
    ("/v1/completions", {"prompt": "hi", "top_p": 2}, J, 422, "less_than_equal"),
    ("/v1/completions", {"prompt": {"a": 1}}, J, 422, None),
    ("/v1/completions", {"prompt": []}, J, 400, None),
    ("/v1/completions", {"prompt": [1, 2, 10**6]}, J, 400, "invalid_token_id"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"32000": 5}}, J, 400, "invalid_token_id"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"-1": 5}}, J, 400, "invalid_token_id"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"abc": 5}}, J, 400, "invalid_logit_bias"),
    ("/v1/completions", {"prompt": "hi", "logprobs": 10**6}, J, 400, None),
    ("/v1/completions", {"prompt": "hi", "grammar": "root ::= ("}, J, 400, None),
    ("/v1/chat/completions", {"messages": "hi"}, J, 422, "list_type"),
    ("/v1/chat/completions", {"messages": []}, J, 400, None),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, J, 422, "literal_error"),
    (
        "/v1/chat/completions",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
                }
            ]
        },
        J,
        400,
        "unsupported_content",
    ),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "video"}]}]}, J, 400, None),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}},
        J,
        400,
        None,
    ),
    (
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"$ref": "#"}}},
        },
        J,
        400,
        "unsupported_schema",
    ),
    (
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "strict": True, "schema": {"allOf": [{"type": "object"}]}},
            },
        },
        J,
        400,
        "unsupported_schema",
    ),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"},
        J,
        400,
        None,
    ),
    (
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "x"}],
            "tool_choice": {"type": "function", "function": {"name": "nope"}},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        },
        J,
        400,
        None,
    ),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "bogus"}]},
        J,
        400,
        None,
    ),
    ("/v1/embeddings", {"input": "hi"}, J, 400, "embeddings_disabled"),
    ("/v1/embeddings", {"input": 5}, J, 422, None),
    ("/extras/detokenize", {"tokens": [1, 99999999]}, J, 400, "invalid_token_id"),
    ("/v1/completions", {"prompt": "word " * 5000, "max_tokens": 4}, J, 400, "context_length_exceeded"),
    ("/v1/completions", {"prompt": "word " * 5000, "stream": True}, J, 400, "context_length_exceeded"),
    ("/v1/nothing", {"prompt": "hi"}, J, 404, "not_found"),
]


def test_malformed_requests_are_4xx(srv: Server) -> None:
    start = len(srv.log_text())
    for path, content, ctype, status, code in MALFORMED:
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        r = httpx.post(srv.base + path, content=data, headers={"Content-Type": ctype}, timeout=60)
        err = _assert_error(r, status, code)
        assert err["type"] == "invalid_request_error", (path, content, err)
    assert httpx.get(srv.base + "/v1/completions", timeout=30).status_code == 405
    assert "Traceback" not in srv.log_text()[start:]  # no client error was treated as a server fault
    _ok(srv)


def test_forced_internal_error_is_500_and_the_server_lives(srv: Server) -> None:
    r = srv.post(
        "/v1/completions", {"prompt": FORCED_FAULT, "max_tokens": 4}, headers={"X-Request-ID": "fault-1"}
    )
    err = _assert_error(r, 500, "internal_error")
    assert err["type"] == "server_error" and "fault-1" in err["message"]
    assert "injected fault" not in r.text  # internals stay in the log
    r = srv.post(
        "/v1/completions", {"prompt": FORCED_FAULT, "stream": True}, headers={"X-Request-ID": "fault-2"}
    )
    _assert_error(r, 500, "internal_error")
    # a fault after the stream started: an error event, then [DONE]
    body = {"prompt": FORCED_STREAM_FAULT, "max_tokens": 8, "stream": True}
    with httpx.stream("POST", srv.base + "/v1/completions", json=body, timeout=60) as resp:
        assert resp.status_code == 200
        data = [ln[len("data: ") :] for ln in resp.iter_lines() if ln.startswith("data: ")]
    assert data[-1] == "[DONE]" and json.loads(data[-2])["error"]["code"] == "internal_error"
    log = srv.log_text()
    assert "request_id=fault-1 status=500" in log and "RuntimeError: injected fault" in log
    _ok(srv)
    wait_for(lambda: srv.health()["models"][ALIAS]["busy"] == 0, "slot free after faults")


# --- slow clients ----------------------------------------------------------------------------


def test_slow_request_head_is_closed(srv: Server) -> None:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the head never ends
    t0 = time.monotonic()
    closed = b""
    try:
        for _ in range(60):  # one header line per 0.5 s, slowloris style; the server closes first
            s.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.5)
    except OSError:
        closed = b"<reset>"
    if not closed:
        s.settimeout(30)
        try:
            closed = s.recv(1) or b"<eof>"
        except socket.timeout:
            closed = b"<still open>"
        except OSError:
            closed = b"<reset>"
    s.close()
    print(f"slow head closed after {time.monotonic() - t0:.1f} s")
    assert closed in (b"<eof>", b"<reset>")
    _ok(srv)


def test_slow_request_body_is_408(srv: Server) -> None:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\nX-Request-ID: slow-body\r\n\r\n{"prompt": '
    )
    answer = b""
    try:
        while True:  # the server answers and closes (body_timeout 1 s); a socket timeout fails
            piece = s.recv(4096)
            if not piece:
                break
            answer += piece
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code": "request_timeout"' in answer and b"slow-body" in answer
    _ok(srv)
