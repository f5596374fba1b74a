"""Packaging: `python -m build` without setuptools warnings, an sdist that is a complete
checkout (its test suite collects the same tests), a stable-ABI wheel, the runtime's
dependencies only, and a kernel-less build that pip's wheel cache never hands out again.

Cost in CI (2 cores): ~3 minutes, dominated by two kernel builds (the wheel, and the
reinstall through pip's cache); marked slow.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# what the README's commands and the test suite read besides the packages
SDIST_MUST_HOLD = [
    "LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in", ".ci/run",
    "scripts/setup.sh", ".github/workflows/compatibility.yml", "docs/COMPATIBILITY.md",
    "docs/spec-COMPATIBILITY.md", "tests/conftest.py", "tests/__init__.py",
    "tests/gguf_builder.py", "tests/kernel_builds.py", "tests/c/current_api.c",
    "tests/c/synthetic_candidates.h", "corpora/regressions/README.md", "reports/README.md",
    "optimized/qemu_aarch64_selftest.sh", "harness/bitnet_harness/corpora_manifest.json",
    "reference/bitnet/ffi/include/bitnet_ffi.h", "optimized/bitnet_kernels/build_kernels.py",
]
RUNTIME_REQUIRES = {"numpy", "regex", "jinja2", "cffi", "typing-extensions"}


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # (makes setuptools warn "byte-compiling is disabled")
    return env


def _build(args: List[str], src: Path, out: Path, env: Dict[str, str]) -> str:
    res = subprocess.run([sys.executable, "-m", "build", *args, "-o", str(out), str(src)],
                         capture_output=True, text=True, timeout=1200, env=env)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    return log


def _warnings(log: str) -> List[str]:
    return [line for line in log.splitlines()
            if re.search(r"warning", line, re.I) and "Location 'file:" not in line]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    log = _build(["--sdist"], REPO, out, _env())
    assert _warnings(log) == []
    (path,) = out.glob("*.tar.gz")
    return path


@pytest.fixture(scope="module")
def unpacked(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(sdist) as tar:
        tar.extractall(dest)  # noqa: S202 - our own archive
    (root,) = dest.iterdir()
    return root


def test_sdist_holds_what_the_readme_and_the_tests_need(unpacked: Path) -> None:
    missing = [p for p in SDIST_MUST_HOLD if not (unpacked / p).is_file()]
    assert missing == []
    tracked = subprocess.run(["git", "ls-files", "tests", "docs", "corpora/regressions"],
                             capture_output=True, text=True, cwd=REPO).stdout.split()
    assert tracked and [p for p in tracked if not (unpacked / p).exists()] == []
    assert not list(unpacked.rglob("*.so")) and not (unpacked / "corpora" / "data").exists()


def test_the_sdist_alone_collects_the_whole_suite(unpacked: Path) -> None:
    """From the unpacked sdist (a checkout), pytest collects as many tests as here."""
    def count(root: Path) -> int:
        res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                              "-p", "no:cacheprovider", "-n", "0"], cwd=root, capture_output=True,
                             text=True, timeout=600,
                             env=dict(_env(), BITNET_CORPORA=str(REPO / "corpora" / "data")))
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        m = re.search(r"(\d+) tests? collected", res.stdout)
        assert m, res.stdout[-500:]
        return int(m.group(1))

    assert count(unpacked) == count(REPO)


def test_wheel_tag_and_runtime_dependencies_only(unpacked: Path, tmp_path: Path) -> None:
    # from the unpacked sdist, as pip builds it (build < 1.3, Python 3.8's, takes no tarball)
    log = _build(["--wheel"], unpacked, tmp_path, _env())
    assert _warnings(log) == []
    (whl,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        meta = email.message_from_bytes(zf.read(next(n for n in names if n.endswith("METADATA"))))
    assert any(n.startswith("bitnet_kernels/_kernels") and ".abi3." in n for n in names)
    # the kernels are stable-ABI; libbitnet_ffi (when built) ties the wheel to this CPython
    py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    tag = f"{py}-{py}" if any("libbitnet_ffi" in n for n in names) else "cp38-abi3"
    assert re.fullmatch(rf"bitnet_compat-[\d.]+-{tag}-\w+\.whl", whl.name), whl.name
    assert not any(n.startswith("tests/") for n in names)
    requires = meta.get_all("Requires-Dist") or []
    unconditional = {re.split(r"[<>=!~; \[]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert unconditional == RUNTIME_REQUIRES
    harness = [r for r in requires if "extra == \"harness\"" in r]
    for dep in ("rich", "gguf", "pytest", "hypothesis", "llama-cpp-python"):
        assert any(r.lower().startswith(dep) for r in harness), dep
    assert "MIT" in (meta.get("License-Expression") or meta.get("License") or "")


def test_kernel_less_build_is_never_reused_from_pips_cache(sdist: Path, tmp_path: Path) -> None:
    """Without kernels (BITNET_NO_KERNELS stands for a missing compiler) the wheel is tagged
    py3-none-nokernels: pip installs it, and the next install, with a compiler, builds anew
    through the same cache and gets the kernels."""
    cache, target = tmp_path / "cache", tmp_path / "site"

    def pip_install(env: Dict[str, str]) -> str:
        res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--upgrade",
                              "--cache-dir", str(cache), "--target", str(target), str(sdist)],
                             capture_output=True, text=True, timeout=1200, env=env)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        return res.stdout + res.stderr

    pip_install(dict(_env(), BITNET_NO_KERNELS="1"))
    assert not list((target / "bitnet_kernels").glob("_kernels*"))
    cached = [p.name for p in cache.rglob("*.whl")]
    assert any(n.endswith("-py3-none-nokernels.whl") for n in cached), cached
    log = pip_install(_env())
    assert "Building wheel for bitnet-compat" in log
    assert list((target / "bitnet_kernels").glob("_kernels*.abi3.*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty with a controlling terminal")
def test_no_kernels_warning_reaches_the_terminal_through_quiet_pip(sdist: Path, tmp_path: Path
                                                                   ) -> None:
    """`pip install -q` hides a successful build's output; the kernel-less build's warning is
    written to the controlling terminal, so the user still sees it once."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir",
         "--target", str(tmp_path / "site"), str(sdist)],
        stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling_tty,
        env=dict(_env(), BITNET_NO_KERNELS="1"))
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child side closed
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=600) == 0
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert text.count("building the optional C kernels (bitnet_kernels) failed") == 1, text[-2000:]
    assert "numpy reference backend will be used" in text
