"""Separate builds of the C kernels for tests (sanitizers, another compiler), running code
against such a build in a subprocess as if it were the installed `bitnet_kernels._kernels`, and
`pip install` of this checkout into a fresh venv."""

from __future__ import annotations

import os
import shutil
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


def source_copy(dest: Path) -> Path:
    """The working tree's files (tracked and new, not ignored) copied to dest, so that pip's
    in-tree build writes nothing into the repository."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True, timeout=120).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def venv_install(python: Path, tmp_path: Path, env: Optional[Dict[str, str]] = None) -> Path:
    """A fresh venv of `python` in tmp_path/venv holding `pip install` of a copy of this
    checkout (no extras); returns the venv's directory."""
    venv = tmp_path / "venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, capture_output=True,
                   timeout=600)
    res = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                          str(source_copy(tmp_path / "src"))], capture_output=True, text=True,
                         timeout=3600, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return venv
