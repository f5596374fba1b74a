"""The `bitnet` command's subcommands reach their modules (help, a real quantize run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bitnet.gguf import parse
from bitnet.tools.cli import DELEGATES
from bitnet_harness.synthetic import synthetic_path


def _bitnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitnet.tools.cli", *args], capture_output=True,
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


def test_output_cut_short_by_the_reader_is_not_an_error(tmp_path: Path) -> None:
    """`bitnet inspect FILE | head -1`: exit 0 and nothing on stderr when the pipe closes.
    2000 tensors make ~150 KB of output, more than a pipe holds, so the write really fails."""
    from .gguf_builder import KV, Builder, Tensor

    b = Builder(kvs=[KV("general.architecture", 8, "llama")],
                tensors=[Tensor(f"t{i}.weight", [8], 0, bytes(32)) for i in range(2000)])
    path = tmp_path / "many.gguf"
    path.write_bytes(b.build())
    proc = subprocess.Popen([sys.executable, "-m", "bitnet.tools.cli", "inspect", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert b"GGUF v3" in proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert err == b""
