"""Scaling out: two `bitnet serve` replicas behind nginx (Debian's, a standard reverse proxy),
as docs/COMPATIBILITY.md's server section describes: requests are stateless, so any replica
answers any request (each keeps its own prompt cache); nginx spreads them, streams pass
through unbuffered, the request id nginx assigns reaches the replica's log, and a replica
that drains (SIGTERM) answers 503 until it exits while nginx retries on the other one, so
clients see no error. Skipped when nginx is not installed (scripts/setup.sh installs it).
Cost: ~15 s on 2 loaded cores (two tiny-model replicas).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from bitnet_harness.synthetic import synthetic_path  # noqa: E402

from .server_process import Process, Server, free_port, httpx, wait_for  # noqa: E402

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")


def nginx_conf(port: int, upstreams: List[int], prefix: Path) -> str:
    """The documented configuration (docs/COMPATIBILITY.md, server section) for these ports."""
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream bitnet {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 8m;           # the replicas' --max_body_bytes
        location / {{
            proxy_pass http://bitnet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Request-ID $request_id;
            proxy_buffering off;           # server-sent events pass through as generated
            proxy_read_timeout 600s;
            # a draining replica answers 503; a stopped one refuses: try the other one
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Process, List[Server]]]:
    d = tmp_path_factory.mktemp("replicas")
    model = str(synthetic_path("llama-q8_0"))
    replicas = [
        Server([model, "--model_alias", "tiny", "--drain_timeout", "30"], d / f"replica{i}.log")
        for i in range(2)
    ]
    port = free_port()
    conf = d / "nginx.conf"
    conf.write_text(nginx_conf(port, [r.port for r in replicas], d))
    assert NGINX is not None
    subprocess.run([NGINX, "-t", "-p", str(d), "-c", str(conf)], check=True, capture_output=True)
    proxy = Process([NGINX, "-p", str(d), "-c", str(conf)], dict(os.environ), d / "nginx.out", port)
    yield proxy, replicas
    for r in replicas:
        r.stop()
    proxy.stop(signal.SIGQUIT)


def _complete(base: str, prompt: str, rid: str = "") -> Any:
    headers = {"X-Request-ID": rid} if rid else {}
    body = {"prompt": prompt, "max_tokens": 8, "temperature": 0}
    return httpx.post(base + "/v1/completions", json=body, headers=headers, timeout=120)


def test_replicas_share_the_load(cluster: Tuple[Process, List[Server]]) -> None:
    proxy, replicas = cluster
    direct = _complete(replicas[0].base, "Stateless requests").json()["choices"][0]["text"]
    started = [r.metric("bitnet_requests_started_total", model="tiny") for r in replicas]
    texts = [_complete(proxy.base, "Stateless requests").json()["choices"][0]["text"] for _ in range(6)]
    assert texts == [direct] * 6  # any replica gives the same answer
    now = [r.metric("bitnet_requests_started_total", model="tiny") for r in replicas]
    assert [b - a for a, b in zip(started, now)] == [3, 3]  # round robin over both
    with httpx.stream(
        "POST",
        proxy.base + "/v1/completions",
        timeout=120,
        json={"prompt": "stream", "max_tokens": 5, "min_tokens": 5, "stream": True},
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [ln[len("data: ") :] for ln in r.iter_lines() if ln.startswith("data: ")]
    assert data[-1] == "[DONE]" and json.loads(data[-2])["choices"][0]["finish_reason"] == "length"
    # nginx's request id reaches the replica's log
    r = _complete(proxy.base, "traced")
    rid = r.headers["x-request-id"]
    assert any(f"request_id={rid} event=finished" in rep.log_text() for rep in replicas)


def test_draining_replica_loses_no_request(cluster: Tuple[Process, List[Server]]) -> None:
    proxy, replicas = cluster
    leaving, staying = replicas
    hold = threading.Event()
    statuses: List[int] = []
    # a long stream keeps the leaving replica draining (not yet exited) for a while
    body = {"prompt": "long", "max_tokens": 400, "min_tokens": 400, "stream": True}

    def long_stream() -> None:
        with httpx.stream("POST", leaving.base + "/v1/completions", json=body, timeout=300) as r:
            for ln in r.iter_lines():
                hold.set()
                if ln == "data: [DONE]":
                    statuses.append(r.status_code)

    t = threading.Thread(target=long_stream)
    t.start()
    assert hold.wait(120)
    leaving.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: httpx.get(leaving.base + "/health", timeout=10).status_code == 503, "replica draining")
    answers = [_complete(proxy.base, f"during drain {i}") for i in range(6)]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers if a.status_code != 200]
    t.join(timeout=300)
    assert statuses == [200]  # the stream in flight finished during the drain
    assert leaving.stop(timeout=120) == 0
    after = [_complete(proxy.base, f"after exit {i}") for i in range(4)]
    assert [a.status_code for a in after] == [200] * 4
    assert staying.health()["status"] == "ok"
