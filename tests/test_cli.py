"""The `bitnet` command's subcommands reach their modules (help, a real quantize run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bitnet.cli import DELEGATES
from bitnet.gguf import parse
from bitnet.harness.synthetic import synthetic_path


def _bitnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitnet.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("name", sorted(DELEGATES))
def test_subcommand_help_reaches_its_module(name: str) -> None:
    res = _bitnet(name, "--help")
    assert res.returncode == 0, res.stderr
    assert f"usage: bitnet {name}" in res.stdout


def test_quantize_through_the_cli(tmp_path: Path) -> None:
    src = synthetic_path("llama-f16")
    out = tmp_path / "q8.gguf"
    res = _bitnet("quantize", str(src), str(out), "--type", "Q8_0")
    assert res.returncode == 0, res.stderr
    types = {t.type_name for t in parse(out).tensors.values()}
    assert "Q8_0" in types
    again = _bitnet("quantize", str(out), str(out), "--type", "Q8_0")
    assert again.returncode != 0 and "Traceback" not in again.stderr
