"""The C API at run time: the embedded interpreter pinned to the library's environment
(`env -i`, a broken environment named in one line), finalized by llama_backend_free and at
exit (AddressSanitizer/LeakSanitizer runs exit 0 with no report, a program's own leaks still
reported), calls after shutdown, pkg-config, and programs built in venvs of every Python this
machine has (slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from bitnet_harness.corpora import SMOLLM2, corpus_path
from tests.capi_programs import (
    C_DIR,
    ROOT,
    bitnet_flags,
    compile_program,
    ensure_library,
    parse_lines,
    run_program,
)
from tests.kernel_builds import venv_install

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed")
PROMPT = "The capital of France is"
SANITIZE = ["-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all"]
# LeakSanitizer on (the default on Linux, spelled out); no suppressions. use_tls=0: GCC 12's
# LeakSanitizer walks the main thread's dynamic TLS through a stale entry and its tracer dies
# at exit ("Tracer caught signal 11", "DTLS 6 at 0x...c1"; every run with an embedded Python
# 3.8, now and then with 3.11). Without TLS as roots the check is only stricter: anything
# reachable from TLS alone would be reported as leaked.
ASAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1", "LSAN_OPTIONS": "use_tls=0",
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


@pytest.fixture(scope="module")
def model_path() -> Path:
    return corpus_path(SMOLLM2)


def run_env_i(exe: Path, *args: str, extra: Dict[str, str]) -> subprocess.CompletedProcess:
    """`env -i` (plus `extra`): no PATH, HOME, LANG or PYTHON* variables."""
    return subprocess.run(["env", "-i", *[f"{k}={v}" for k, v in extra.items()], str(exe), *args],
                          capture_output=True, timeout=300)


def test_program_runs_under_env_i(tmp_path: Path, model_path: Path) -> None:
    """Built outside the repository, run with an empty environment (and with PYTHONHOME /
    PYTHONPATH pointing nowhere): the same output as a normal run."""
    exe = compile_program(C_DIR / "current_api.c", tmp_path / "current", bitnet_flags())
    want = run_program(exe, str(model_path), PROMPT, "4").stdout
    for extra in ({}, {"PYTHONHOME": "/nonexistent", "PYTHONPATH": "/nonexistent", "LANG": "C"}):
        res = run_env_i(exe, str(model_path), PROMPT, "4", extra=extra)
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        assert res.stdout == want


def test_interpreter_that_cannot_start_says_why_in_one_line(tmp_path: Path, model_path: Path) -> None:
    """The library installed into a venv without cffi (the case of a venv whose base Python
    lacks it): the first call prints one line naming the cause and returns NULL."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   capture_output=True, timeout=300)
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    libdir = site / "bitnet" / "ffi" / "lib"
    libdir.mkdir(parents=True)
    shutil.copy2(ensure_library(), libdir / "libbitnet_ffi.so")
    include = ROOT / "reference" / "bitnet" / "ffi" / "include"
    exe = compile_program(C_DIR / "current_api.c", tmp_path / "current",
                          [f"-I{include}", f"-L{libdir}", "-lbitnet_ffi", f"-Wl,-rpath,{libdir}"])
    res = run_env_i(exe, str(model_path), PROMPT, "4", extra={})
    assert res.returncode == 1  # current_api.c: model == NULL
    err = res.stderr.decode().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("libbitnet_ffi: cannot start the embedded Python (")
    assert f"{venv}/bin/python3" in err[0]
    assert err[0].endswith("ModuleNotFoundError: No module named '_cffi_backend'")


@pytest.mark.parametrize("name,args", [
    ("current_api", (PROMPT, "4")),
    ("thread_start", ()),  # started by a thread that ended, finalized from main at exit
    ("shutdown", ()),  # llama_backend_free, then calls on the finalized library
])
def test_asan_build_exits_zero_without_reports(tmp_path: Path, model_path: Path, name: str,
                                               args: tuple) -> None:
    exe = compile_program(C_DIR / f"{name}.c", tmp_path / name, bitnet_flags(),
                          extra=SANITIZE + ["-pthread"])
    res = run_program(exe, str(model_path), *args, env=ASAN_ENV, check=False)
    err = res.stderr.decode(errors="replace")
    assert res.returncode == 0, err
    assert "Sanitizer" not in err and "runtime error" not in err, err
    assert res.stdout  # the program's output reached the pipe


def test_programs_own_leaks_are_still_reported(tmp_path: Path, model_path: Path) -> None:
    """A batch and a sampler the program never frees: LeakSanitizer reports exactly those."""
    exe = compile_program(C_DIR / "leaky.c", tmp_path / "leaky", bitnet_flags(), extra=SANITIZE)
    res = run_program(exe, str(model_path), env=ASAN_ENV, check=False)
    err = res.stderr.decode(errors="replace")
    assert res.returncode != 0 and "LeakSanitizer: detected memory leaks" in err
    assert "in llama_batch_init" in err and "in llama_sampler_init" in err
    frames = [ln for ln in err.splitlines() if "#1 " in ln]
    assert all("llama_batch_init" in f or "llama_sampler_init" in f for f in frames), frames


def test_calls_after_backend_free(tmp_path: Path, model_path: Path) -> None:
    exe = compile_program(C_DIR / "shutdown.c", tmp_path / "shutdown", bitnet_flags())
    out = parse_lines(run_program(exe, str(model_path)).stdout)
    assert out["before"] == ["1", "0"] and out["backend_free"] == ["0", "0"]
    assert out["load_after_free"] == ["1", "-1"] and out["message"] == ["shut_down"]
    assert out["n_ctx_after_free"] == ["0", "-1"]
    assert out["apply_after_free"] == ["-1", "-1"]  # the built-in sampler did nothing
    assert out["frees_after_free"] == ["0", "0"]


@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="pkg-config is needed")
def test_pkg_config(tmp_path: Path, model_path: Path) -> None:
    """PKG_CONFIG_PATH=$(python -m bitnet.ffi --pkgconfigdir): the same flags' effect."""
    ensure_library()
    pcdir = subprocess.run([sys.executable, "-m", "bitnet.ffi", "--pkgconfigdir"], check=True,
                           capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "PKG_CONFIG_PATH": pcdir}
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "bitnet_ffi"], check=True,
                           capture_output=True, text=True, env=env).stdout.split()
    exe = compile_program(C_DIR / "current_api.c", tmp_path / "current", flags)
    assert parse_lines(run_program(exe, str(model_path), PROMPT, "2").stdout)["generated"]


# ---- a venv per Python: the package installed (not editable), a program built outside ----

def _pythons() -> List[Path]:
    """The interpreters to install into: $BITNET_CAPI_PYTHONS (os.pathsep-separated), or
    pyenv's 3.8..3.13 when BITNET_CAPI_ALL_PYTHONS=1, else a Python 3.12 if there is one."""
    listed = os.environ.get("BITNET_CAPI_PYTHONS")
    if listed:
        return [Path(p) for p in listed.split(os.pathsep) if p]
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob("3.*/bin/python3")) if root.is_dir() else []
    found = [p for p in found if p.parent.parent.name.split(".")[1] in {"8", "9", "10", "11", "12", "13"}]
    if os.environ.get("BITNET_CAPI_ALL_PYTHONS") == "1":
        return found
    return [p for p in found if p.parent.parent.name.startswith("3.12.")][:1]


@pytest.mark.slow
@pytest.mark.parametrize("python", _pythons(), ids=lambda p: p.parent.parent.name)
def test_program_built_in_a_venv_runs_under_env_i(tmp_path: Path, model_path: Path,
                                                  python: Path) -> None:
    """`pip install` of this project into a fresh venv of that Python builds the C API into
    the installed package; a program built from a directory outside the repository with that
    venv's `python -m bitnet.ffi --cflags --libs` runs under `env -i` and prints what the
    development build prints; its ASan build exits 0 with no report. (CI: one Python 3.12,
    ~3 min; all of them with BITNET_CAPI_ALL_PYTHONS=1.)"""
    venv = venv_install(python, tmp_path)
    vpy = venv / "bin" / "python"
    flags = subprocess.run([str(vpy), "-m", "bitnet.ffi", "--cflags", "--libs"], check=True,
                           capture_output=True, text=True, cwd=tmp_path).stdout.split()
    assert all(str(venv) in f for f in flags if f.startswith(("-I", "-L")))
    work = tmp_path / "outside"
    work.mkdir()
    shutil.copy2(C_DIR / "current_api.c", work / "app.c")
    exe = compile_program(work / "app.c", work / "app", flags)
    want = run_program(compile_program(C_DIR / "current_api.c", tmp_path / "dev", bitnet_flags()),
                       str(model_path), PROMPT, "4").stdout
    got = run_env_i(exe, str(model_path), PROMPT, "4", extra={})
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    assert parse_lines(got.stdout)["tokens"] == parse_lines(want)["tokens"]
    assert len(parse_lines(got.stdout)["generated"]) == 4
    asan = compile_program(work / "app.c", work / "app_asan", flags, extra=SANITIZE)
    res2 = run_env_i(asan, str(model_path), PROMPT, "4", extra=ASAN_ENV)
    err = res2.stderr.decode(errors="replace")
    assert res2.returncode == 0 and "Sanitizer" not in err, err
