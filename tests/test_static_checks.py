"""The tree is legible to tools: import paths equal file paths, ruff and mypy are clean over
the whole tree, and mypy resolves first-party imports (a cross-module type error is caught).
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"bitnet": "reference", "bitnet_kernels": "optimized", "bitnet_harness": "harness"}


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.is_file():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (it comes with the [test] extra)")
    return found


def test_every_module_path_ends_with_its_dotted_name() -> None:
    """reference/bitnet/gguf/reader.py is bitnet.gguf.reader, for every importable module."""
    seen = 0
    for pkg_name, root in PACKAGES.items():
        pkg = importlib.import_module(pkg_name)
        assert Path(pkg.__file__ or "").resolve() == ROOT / root / pkg_name / "__init__.py"
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            spec = importlib.util.find_spec(info.name)
            assert spec is not None and spec.origin is not None, info.name
            origin = Path(spec.origin).resolve()
            parts = info.name.split(".")
            tail = Path(*parts) / "__init__.py" if info.ispkg else Path(*parts[:-1]) / (parts[-1] + ".py")
            if origin.suffix != ".py":  # a compiled extension: bitnet_kernels/_kernels.abi3.so
                tail = tail.with_name(origin.name)
            assert origin == ROOT / root / tail, f"{info.name} lives at {origin}"
            seen += 1
    assert seen > 50


def test_ruff_clean() -> None:
    r = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_mypy_clean_over_the_whole_tree(tmp_path: Path) -> None:
    """pyproject's [tool.mypy] names the three packages and their source roots."""
    r = subprocess.run([_tool("mypy"), "--cache-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_mypy_sees_a_cross_module_type_error(tmp_path: Path) -> None:
    """An injected `x: int = bitnet.gguf.load` is reported (imports are resolved, not Any)."""
    probe = tmp_path / "probe.py"
    probe.write_text("from bitnet.gguf import load\n\nx: int = load\n")
    r = subprocess.run([_tool("mypy"), "--cache-dir", str(tmp_path / "cache"), str(probe)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "probe.py:3: error: Incompatible types in assignment" in r.stdout, r.stdout
