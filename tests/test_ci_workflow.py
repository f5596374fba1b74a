"""The CI workflow the spec requires: valid (actionlint) and covering the required matrix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "compatibility.yml"


def _actionlint() -> str:
    exe = shutil.which("actionlint") or str(Path(sys.executable).with_name("actionlint"))
    assert Path(exe).exists(), "actionlint missing: it comes with the test extra"
    return exe


def test_actionlint_passes() -> None:
    res = subprocess.run([_actionlint(), str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The check can fail: an undefined matrix key is an error."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("${{ matrix.python }}", "${{ matrix.pyhton }}"))
    res = subprocess.run([_actionlint(), str(broken)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "pyhton" in res.stdout


def test_matrix_covers_the_spec() -> None:
    spec = yaml.safe_load(WORKFLOW.read_text())
    matrix = spec["jobs"]["tests"]["strategy"]["matrix"]
    assert {"ubuntu-latest", "macos-latest", "windows-latest"} <= set(matrix["os"])
    assert {"3.8", "3.9", "3.10", "3.11", "3.12"} <= set(matrix["python"])
    assert {"lint", "llamacpp-differential", "sanitizer", "neon-qemu"} <= set(spec["jobs"])
    on = spec.get("on") or spec.get(True)  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in on
