"""Operating `bitnet serve`: SIGTERM drain, the API key from a file, CORS, request ids,
Prometheus metrics, keep-alive timeout, settings (positional MODEL, llama-cpp-python's config
fields, numerics). Servers run the tiny synthetic model. Cost: ~15-25 s on 2 loaded cores
(two server processes, short generations).
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")
pytest.importorskip("prometheus_client")

from bitnet_harness.synthetic import synthetic_path  # noqa: E402

from .server_process import Server, httpx, wait_for  # noqa: E402

KEY = "sk-in-a-file"
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def tiny_path() -> str:
    return str(synthetic_path("llama-q8_0"))


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, tiny_path: str) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("server_ops")
    key_file = d / "key.txt"
    key_file.write_text(KEY + "\n")
    args = [
        tiny_path,
        "--api_key_file",
        str(key_file),
        "--cors_origins",
        ORIGIN,
        "--timeout_keep_alive",
        "1",
        "--model_alias",
        "tiny",
    ]
    s = Server(args, d / "server.log", api_key=KEY)
    yield s
    s.stop()


def _sse(resp: Any) -> List[str]:
    return [ln[len("data: ") :] for ln in resp.iter_lines() if ln.startswith("data: ")]


def test_sigterm_drains_streams_then_exits_0(tmp_path: Path, tiny_path: str) -> None:
    srv = Server(
        [tiny_path, "--n_ctx", "8192", "--parallel", "2", "--drain_timeout", "5"], tmp_path / "s.log"
    )
    results: Dict[str, List[str]] = {}
    started = {"long": threading.Event(), "short": threading.Event()}

    def stream(name: str, max_tokens: int) -> None:
        body = {
            "prompt": name,
            "max_tokens": max_tokens,
            "min_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        }
        with httpx.stream("POST", srv.base + "/v1/completions", json=body, timeout=300) as r:
            lines = r.iter_lines()
            got: List[str] = []
            for ln in lines:
                if ln.startswith("data: "):
                    got.append(ln[len("data: ") :])
                    started[name].set()
            results[name] = got

    threads = [
        threading.Thread(target=stream, args=("long", 8000)),
        threading.Thread(target=stream, args=("short", 8)),
    ]
    for t in threads:
        t.start()
    for ev in started.values():
        assert ev.wait(120)
    srv.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: httpx.get(srv.base + "/health", timeout=10).status_code == 503, "health says draining")
    assert httpx.get(srv.base + "/health", timeout=10).json()["status"] == "draining"
    late = httpx.post(srv.base + "/v1/completions", json={"prompt": "late", "max_tokens": 2}, timeout=30)
    assert late.status_code == 503 and late.json()["error"]["code"] == "server_shutting_down"
    for t in threads:
        t.join(timeout=120)
    assert srv.stop(timeout=60) == 0  # drained: a clean exit, not -SIGTERM
    # every stream ends with [DONE]: finished (finish_reason "length"), or cut at the drain
    # timeout with an error event saying so (the long one: 8000 tokens take the tiny model
    # 13-40 s, far beyond the 5 s drain, unless the machine is very fast)
    endings = {name: _ending(data) for name, data in results.items()}
    print("stream endings:", endings)
    log = srv.log_text()
    assert log.index("event=draining") < log.index("event=drained")
    if "cut" in endings.values():
        assert log.index("event=draining") < log.index("event=drain_timeout") < log.index("event=drained")
    assert endings["short"] == "finished"


def _ending(data: List[str]) -> str:
    assert data[-1] == "[DONE]", data[-3:]
    last = json.loads(data[-2])
    if "error" in last:
        assert last["error"]["code"] == "server_shutting_down", last
        return "cut"
    assert last["choices"][0]["finish_reason"] == "length", last
    return "finished"


def test_api_key_file_and_health(srv: Server, tiny_path: str) -> None:
    assert KEY.encode() not in Path(f"/proc/{srv.proc.pid}/cmdline").read_bytes()
    assert srv.post("/v1/completions", {"prompt": "hi", "max_tokens": 2}).status_code == 200
    no_key = httpx.post(srv.base + "/v1/completions", json={"prompt": "hi"}, timeout=30)
    assert no_key.status_code == 401
    assert httpx.get(srv.base + "/metrics", timeout=30).status_code == 401
    health = httpx.get(srv.base + "/health", timeout=30)
    assert health.status_code == 200 and tiny_path not in health.text and health.json()["status"] == "ok"
    assert (
        httpx.get(srv.base + "/health", headers=srv.headers, timeout=30).json()["models"]["tiny"]["path"]
        == tiny_path
    )


def test_cors_and_request_ids(srv: Server) -> None:
    pre = httpx.options(
        srv.base + "/v1/chat/completions",
        timeout=30,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.get(srv.base + "/health", headers={"Origin": "https://evil.example"}, timeout=30)
    assert "access-control-allow-origin" not in other.headers
    r = srv.post(
        "/v1/completions",
        {"prompt": "hi", "max_tokens": 2},
        headers={"Origin": ORIGIN, "X-Request-ID": "lb-42"},
    )
    assert r.headers["x-request-id"] == "lb-42" and r.headers["access-control-allow-origin"] == ORIGIN
    assert "request_id=lb-42 event=finished" in srv.log_text()
    bad = srv.post(
        "/v1/completions", {"prompt": "hi", "max_tokens": 2}, headers={"X-Request-ID": "no spaces allowed"}
    )
    assert bad.headers["x-request-id"] not in ("", "no spaces allowed")


def test_metrics(srv: Server) -> None:
    before = srv.metrics()
    r = srv.post(
        "/v1/completions", {"prompt": "count me", "max_tokens": 5, "min_tokens": 5, "temperature": 0}
    )
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5
    body = {"prompt": "stream me", "max_tokens": 3, "min_tokens": 3, "stream": True}
    with httpx.stream(
        "POST", srv.base + "/v1/completions", headers=srv.headers, json=body, timeout=60
    ) as resp:
        assert _sse(resp)[-1] == "[DONE]"
    ok = 'bitnet_requests_finished_total{model="tiny",outcome="ok"}'
    wait_for(lambda: srv.metrics().get(ok, 0) >= before.get(ok, 0) + 2, "two more finished requests")
    after = srv.metrics()

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta('bitnet_requests_started_total{model="tiny"}') == 2
    assert delta('bitnet_completion_tokens_total{model="tiny"}') == 5 + 3
    assert delta('bitnet_prompt_tokens_total{model="tiny"}') > 0
    assert delta('bitnet_time_to_first_token_seconds_count{model="tiny"}') == 2
    assert delta('bitnet_http_requests_total{method="POST",route="/v1/completions",status="200"}') == 2
    assert after['bitnet_slots_total{model="tiny"}'] == 1
    assert after['bitnet_slots_busy{model="tiny"}'] == 0 and after['bitnet_queue_depth{model="tiny"}'] == 0
    assert after["bitnet_draining{}"] == 0


def test_idle_keep_alive_connection_is_closed(srv: Server) -> None:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    assert data.startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    while s.recv(4096):  # the rest of the body, then the server's close (timeout_keep_alive 1 s)
        pass
    print(f"idle connection closed {time.monotonic() - t0:.1f} s after the response")
    s.close()


# --- settings (in-process) -------------------------------------------------------------------


def test_settings_sources(tiny_path: str, tmp_path: Path) -> None:
    from bitnet.server.settings import load_settings

    server, (model,) = load_settings([tiny_path], environ={})
    assert model.model == tiny_path and model.alias == Path(tiny_path).name  # never the absolute path
    with pytest.raises(ValueError, match="two models"):
        load_settings([tiny_path, "--model", "/elsewhere.gguf"], environ={})
    key_file = tmp_path / "k"
    key_file.write_text("secret\n")
    server, _ = load_settings(["--model", tiny_path, "--api-key-file", str(key_file)], environ={})
    assert server.resolved_api_key() == "secret"
    with pytest.raises(ValueError, match="api_key_file"):
        load_settings([tiny_path, "--api_key_file", str(tmp_path / "missing")], environ={})
    # llama-cpp-python's config file, with fields this engine ignores (named) ...
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "host": "0.0.0.0",
                "interrupt_requests": False,
                "models": [
                    {
                        "model": tiny_path,
                        "model_alias": "a",
                        "n_gpu_layers": -1,
                        "use_mmap": True,
                        "cache": True,
                    },
                    {
                        "model": tiny_path,
                        "model_alias": "b",
                        "chat_format": "chatml",
                        "numerics": "reference",
                    },
                ],
            }
        )
    )
    server, models = load_settings(["--config", str(cfg)], environ={"API_KEY": "k2"})
    assert (server.host, server.api_key, [m.alias for m in models]) == ("0.0.0.0", "k2", ["a", "b"])
    assert models[0].ignored == ["cache", "n_gpu_layers", "use_mmap"] and models[1].numerics == "reference"
    # ... but a field nobody knows is an error, and so is a bad numerics mode
    cfg.write_text(json.dumps({"models": [{"model": tiny_path, "n_gpu_layerz": 1}]}))
    with pytest.raises(ValueError, match="n_gpu_layerz"):
        load_settings(["--config", str(cfg)], environ={})
    with pytest.raises(ValueError, match="numerics"):
        load_settings([tiny_path, "--numerics", "fast"], environ={})


def test_numerics_setting_reaches_the_engine(tiny_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """--numerics picks the engine's backend (through Llama's numerics= keyword, or
    $BITNET_NUMERICS while the slot loads when Llama has no such keyword)."""
    from bitnet import runtime
    from bitnet.llama_compat import Llama
    from bitnet.server.settings import ModelSettings
    from bitnet.server.slots import make_llama, slot_class

    modes: List[str] = []
    make_backend = runtime.make_backend

    def spy(numerics: Any = None, **kw: Any) -> Any:
        modes.append(runtime.numerics_mode(numerics))
        return make_backend("reference", **kw)  # the mode asked for is what is checked here

    monkeypatch.setattr(runtime, "make_backend", spy)
    monkeypatch.delenv("BITNET_NUMERICS", raising=False)
    for mode in ("reference", "float", "llama.cpp"):
        make_llama(slot_class(Llama), ModelSettings(model=tiny_path, numerics=mode, n_ctx=64))
        assert modes[-1] == mode
    make_llama(slot_class(Llama), ModelSettings(model=tiny_path, n_ctx=64))
    assert modes[-1] == runtime.numerics_mode(None)  # no setting: the engine's default
