"""`bitnet-compat bench serve`: our server next to llama-cpp-python's under the same load.

Both servers run on 127.0.0.1 (free ports) with the same model; for each concurrency level
every client sends one streaming greedy completion at the same moment. Reported per server
and level: aggregate generated tokens/s (stream chunks over the wall time of the level) and
p50/p95 time to first token. llama-cpp-python's server serializes requests on one context;
ours serves `--parallel` at once.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

LEVELS = (1, 4, 16)
PROMPT = "The history of the printing press"
MAX_TOKENS = 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server on port {port} not ready after {timeout:.0f} s")


def _stream_once(port: int) -> Tuple[float, int]:
    """(seconds to the first text chunk, chunks received) for one streaming completion."""
    body = json.dumps({"prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0,
                       "stream": True})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    first: Optional[float] = None
    chunks = 0
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data:") or line == b"data: [DONE]":
            continue
        data = json.loads(line[5:])
        if data["choices"][0].get("text"):
            chunks += 1
            if first is None:
                first = time.perf_counter() - start
    conn.close()
    return (first if first is not None else float("nan")), chunks


def _level(port: int, clients: int) -> Dict[str, float]:
    results: List[Tuple[float, int]] = []
    lock = threading.Lock()

    def client() -> None:
        r = _stream_once(port)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ttft = sorted(r[0] for r in results)
    return {"tokens_per_s": sum(r[1] for r in results) / wall,
            "complete_streams": float(sum(r[1] >= MAX_TOKENS for r in results)),
            "ttft_p50_s": statistics.median(ttft),
            "ttft_p95_s": ttft[min(len(ttft) - 1, int(round(0.95 * (len(ttft) - 1))))]}


def _server_cmd(impl: str, model: str, port: int, parallel: int) -> List[str]:
    if impl == "bitnet":
        return [sys.executable, "-m", "bitnet.server", "--model", model, "--port", str(port),
                "--parallel", str(parallel), "--n_ctx", "512"]
    return [sys.executable, "-m", "llama_cpp.server", "--model", model, "--port", str(port),
            "--n_ctx", "512", "--n_threads", "2", "--verbose", "False",
            # its default lets a new request cut the running stream short: off, so every
            # client gets its whole completion as ours do
            "--interrupt_requests", "False"]


def bench_serve(model: str, levels: Sequence[int] = LEVELS, parallel: int = 4
                ) -> Dict[str, Dict[int, Dict[str, float]]]:
    """{impl: {clients: metrics}} for both servers on `model`."""
    out: Dict[str, Dict[int, Dict[str, float]]] = {}
    for impl in ("llama.cpp", "bitnet"):
        port = _free_port()
        proc = subprocess.Popen(_server_cmd(impl, model, port, parallel),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_ready(port, proc)
            _stream_once(port)  # warm-up (weights paged in, caches filled)
            out[impl] = {c: _level(port, c) for c in levels}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return out
