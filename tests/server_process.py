"""A `bitnet serve` (or llama-cpp-python server, or nginx) process on 127.0.0.1 for the server
tests: started with a free port, polled until /health answers, its log kept in a file, its
RSS read from /proc, its metrics parsed with prometheus-client, stopped by signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

try:  # openai>=3 ships its HTTP client as `httpx2` (same API)
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

STARTUP_POLLS = 900  # x 0.2 s: model loading on a loaded machine
FAULT_LAUNCHER = str(Path(__file__).with_name("serve_with_faults.py"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """os.environ without the variables the server reads as settings, plus `extra`."""
    skip = {"HOST", "PORT", "MODEL", "API_KEY", "CONFIG_FILE", "BITNET_NUMERICS"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in skip}
    env.update(extra or {})
    return env


class Process:
    """A server subprocess answering HTTP on 127.0.0.1:`port`."""

    def __init__(
        self,
        cmd: List[str],
        env: Dict[str, str],
        log: Path,
        port: int,
        ready_path: str = "/health",
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_f = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log_f, stderr=subprocess.STDOUT)
        for _ in range(STARTUP_POLLS):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[:3]} exited {self.proc.returncode}: {self.log_text()[-3000:]}")
            try:
                if httpx.get(self.base + ready_path, headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{cmd[:3]} did not come up: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        if not self._log_f.closed:
            self._log_f.flush()
        return self.log.read_text(errors="replace")

    def rss_bytes(self) -> int:
        """Resident set size of the process (VmRSS in /proc/PID/status)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig`, wait, return the exit status (killed after `timeout` s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._log_f.close()
        return int(self.proc.returncode)


class Server(Process):
    """`python -m bitnet.server --host 127.0.0.1 --port P ARGS` (or the fault launcher)."""

    def __init__(
        self,
        args: List[str],
        log: Path,
        env: Optional[Dict[str, str]] = None,
        api_key: str = "",
        launcher: Optional[str] = None,
    ) -> None:
        port = free_port()
        entry = [launcher] if launcher else ["-m", "bitnet.server"]
        cmd = [sys.executable, *entry, "--host", "127.0.0.1", "--port", str(port), *args]
        self.api_key = api_key
        super().__init__(cmd, clean_env(env), log, port)

    @property
    def headers(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def health(self) -> Dict[str, Any]:
        return dict(httpx.get(self.base + "/health", timeout=30).json())

    def post(
        self, path: str, body: Any, timeout: float = 120, headers: Optional[Dict[str, str]] = None
    ) -> Any:
        return httpx.post(
            self.base + path, json=body, headers={**self.headers, **(headers or {})}, timeout=timeout
        )

    def metrics(self) -> Dict[str, float]:
        """Every sample of /metrics as {'name{label="v",...}': value} (labels sorted)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(self.base + "/metrics", headers=self.headers, timeout=30).text
        out: Dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
        return out

    def metric(self, name: str, **labels: str) -> float:
        key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        return self.metrics().get(key, 0.0)

    def events(self, request_id: str) -> List[str]:
        """The `event=` words the server logged for `request_id`, in order."""
        out = []
        for line in self.log_text().splitlines():
            if f"request_id={request_id} " in line and "event=" in line:
                out.append(line.split("event=", 1)[1].split()[0])
        return out


def wait_for(cond: Any, what: str, polls: int = 600, every: float = 0.05) -> Any:
    """Poll `cond()` until it returns a truthy value (bounded: `polls` x `every` s)."""
    value = None
    for _ in range(polls):
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: never happened (last value {value!r})")
