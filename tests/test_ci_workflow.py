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


def test_release_jobs_build_the_sdist_and_wheels_for_every_platform() -> None:
    """cibuildwheel builds a wheel per CPython 3.8-3.13 and platform (Linux x86_64/aarch64
    manylinux, macOS x86_64/arm64, Windows) and tests that its kernels import; the sdist job
    refuses setuptools warnings."""
    spec = yaml.safe_load(WORKFLOW.read_text())
    wheels = spec["jobs"]["wheels"]
    oses = set(wheels["strategy"]["matrix"]["os"])
    assert {"ubuntu-latest", "ubuntu-24.04-arm", "windows-latest"} <= oses
    assert sum(o.startswith("macos") for o in oses) >= 2  # Intel and Apple silicon
    step = next(s for s in wheels["steps"] if str(s.get("uses", "")).startswith("pypa/cibuildwheel@"))
    build = step["env"]["CIBW_BUILD"].split()
    assert {b.split("-")[0] for b in build} == {f"cp3{m}" for m in range(8, 14)}
    assert all(b.endswith("-*") for b in build)  # every platform of the runner
    assert "musllinux" in step["env"]["CIBW_SKIP"]  # manylinux (auditwheel) only
    assert "bitnet_kernels.available()" in step["env"]["CIBW_TEST_COMMAND"]
    sdist = " ".join(s.get("run", "") for s in spec["jobs"]["sdist"]["steps"])
    assert "build --sdist" in sdist and "warning" in sdist
