"""The C kernels build with clang as well as gcc (issue: "Builds with gcc and clang").

Both checks compile every optimized/kernels/*.c with clang and run the kernel self-tests (each
ISA variant this CPU has vs the scalar reference, guard bytes around outputs): once as the
standalone C self-test binary with -Werror, once as the cffi extension the package imports.
scripts/setup.sh installs Debian's clang; without it the checks skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .kernel_builds import build_kernels, run_with_kernels

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "optimized" / "bitnet_kernels" / "kernels"
CLANG = shutil.which("clang")

pytestmark = pytest.mark.skipif(CLANG is None, reason="clang not installed (scripts/setup.sh installs it)")


def _compiled_by_clang(binary: Path) -> bool:
    """True when the object code's .comment section names clang (crt files still say GCC)."""
    return b"clang version" in binary.read_bytes()


def test_clang_selftest_binary_werror(tmp_path: Path) -> None:
    """clang -Wall -Werror builds the self-test; every variant matches scalar (0 failures)."""
    exe = tmp_path / "bn_selftest"
    cmd = [str(CLANG), "-std=c99", "-O3", "-ffp-contract=off", "-D_POSIX_C_SOURCE=200809L", "-Wall",
           "-Werror", f"-I{KERNELS}", *map(str, sorted(KERNELS.glob("*.c"))), "-o", str(exe),
           "-lm", "-lpthread"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _compiled_by_clang(exe)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "bn_selftest: 0 failures" in r.stderr


def test_clang_built_extension_runs_selftest(tmp_path: Path) -> None:
    """The cffi extension compiled with CC=clang imports as bitnet_kernels._kernels and passes
    the Python-side self-test (numpy comparison of every type and ISA variant)."""
    so = build_kernels(tmp_path, env={"CC": str(CLANG), "LDSHARED": f"{CLANG} -shared"})
    assert so.is_file() and _compiled_by_clang(so)
    body = """
        from bitnet_kernels.selftest import run_selftest
        sys.exit(min(run_selftest(), 125))
        """
    r = run_with_kernels(so, body, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "selftest: 0 failures" in r.stdout
