"""Separate builds of the C kernels for tests (sanitizers, another compiler), and running code
against such a build in a subprocess as if it were the installed `bitnet_kernels._kernels`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Optional

ROOT = Path(__file__).resolve().parents[1]

# ASan/UBSan for a python process running an instrumented extension: the runtime preloaded
# (python itself is not instrumented), leaks off (the interpreter keeps its allocations)
SANITIZER_OPTIONS = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}


def libasan() -> Optional[str]:
    """gcc's libasan.so to preload, or None where gcc has none."""
    r = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True)
    path = r.stdout.strip()
    return path if r.returncode == 0 and Path(path).is_file() else None


def build_kernels(out_dir: Path, *, sanitize: bool = False, env: Optional[Dict[str, str]] = None) -> Path:
    """Compile optimized/bitnet_kernels/build_kernels.py's extension into out_dir (in a subprocess, so `env`
    such as CC=clang applies); returns the shared library."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'optimized' / 'bitnet_kernels')!r}); "
        "import build_kernels; "
        f"print(build_kernels.build({str(out_dir)!r}, sanitize={sanitize!r}))"
    )
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **(env or {})),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(r.stdout.strip().splitlines()[-1])


def run_with_kernels(so: Path, body: str, env: Optional[Dict[str, str]] = None,
                     timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run python `body` in a subprocess where `bitnet_kernels` uses the library `so`."""
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("bitnet_kernels._kernels", {str(so)!r})
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bitnet_kernels._kernels"] = mod
        spec.loader.exec_module(mod)
        import bitnet_kernels as opt
        assert opt._lib is mod.lib, opt.unavailable_reason()
        """
    ) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout)
