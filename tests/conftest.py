"""Suite-wide settings applied before any test module imports numpy.

One BLAS (and C-kernel) thread per process: under pytest-xdist every core already runs a worker, and a
second BLAS thread per worker made single-token evals up to 10x slower on 2 cores.
"""

import os
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("BITNET_THREADS", "1")  # the C kernels' pool, likewise
# the servers under test listen on loopback: never through a proxy from the environment
_no_proxy = [h for h in os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")).split(",") if h]
os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(_no_proxy + ["127.0.0.1", "localhost"])

SLOW_REPORT_S = 60.0  # a test (or its fixtures) past this is named in the run's output as it ends


def pytest_runtest_logreport(report: Any) -> None:
    """Name each test whose setup or call took more than SLOW_REPORT_S as it finishes (under
    xdist too), so that a run stopped by a time limit still shows where the time went."""
    if report.when in ("setup", "call") and report.duration > SLOW_REPORT_S:
        reporter = _config.pluginmanager.get_plugin("terminalreporter") if _config else None
        if reporter is not None:
            reporter.write_line(f"[slow] {report.duration:6.0f} s  {report.when:<5} {report.nodeid}")


_config: Any = None


def pytest_configure(config: Any) -> None:
    global _config
    _config = config
