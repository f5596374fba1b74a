"""Building and running C / C++ programs against libbitnet_ffi and against llama.cpp's own
libllama (the oracle installed with llama-cpp-python), for the C API tests.

The library is the installed build, rebuilt first when missing or older than its sources (a
development tree), once across xdist workers (a file lock)."""

from __future__ import annotations

import atexit
import fcntl
import functools
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import pytest

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "tests" / "c"
FFI = ROOT / "reference" / "bitnet" / "ffi"
PY = sys.executable
SDIST_PREFIX = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
# the parts of llama.cpp 0.3.36's sources the C API tests build or read
SOURCE_PARTS = ("examples/simple/", "examples/simple-chat/", "examples/embedding/",
                "examples/batched/", "tools/tokenize/", "tests/test-save-load-state.cpp",
                "tests/test-chat-template.cpp", "common/", "vendor/nlohmann/",
                "vendor/cpp-httplib/", "vendor/sheredom/", "ggml/include/", "models/templates/",
                "src/llama-ext.h")


def _sources() -> List[Path]:
    return ([FFI / "build_ffi.py", FFI / "surface.py"] + sorted((FFI / "csrc").glob("*"))
            + sorted((FFI / "include").glob("*.h")) + sorted((FFI / "ext").glob("*")))


def ensure_library() -> Path:
    """libbitnet_ffi.so (and libbitnet_ffi_ext.so when a C++ compiler is there), up to date."""
    from bitnet import ffi

    lib = ffi.LIB_DIR / ffi.LIB_NAME
    ffi.LIB_DIR.mkdir(parents=True, exist_ok=True)
    with open(ffi.LIB_DIR / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        newest = max(p.stat().st_mtime for p in _sources())
        if not lib.is_file() or lib.stat().st_mtime < newest:
            subprocess.run([PY, "-m", "bitnet.ffi", "--build"], check=True, capture_output=True,
                           timeout=900)
    return lib


@functools.lru_cache(maxsize=1)
def llama_cpp_source() -> Path:
    """llama.cpp 0.3.36's sources (SOURCE_PARTS), extracted once per process from the pinned
    llama-cpp-python sdist that `bitnet-compat fetch` keeps in its download cache."""
    from bitnet_harness import fetch

    artifact = next(a for a in fetch.load_manifest()["artifacts"]
                    if a["filename"] == "llama_cpp_python-0.3.36.tar.gz")
    archive = fetch.cache_dir() / artifact["filename"]
    if not archive.is_file() or fetch.sha256_file(archive) != artifact["sha256"]:
        pytest.skip(f"the llama-cpp-python 0.3.36 sdist is not in {archive.parent} "
                    "(run `bitnet-compat fetch`)")
    dest = Path(tempfile.mkdtemp(prefix="bitnet-llamacpp-src-"))
    atexit.register(shutil.rmtree, dest, True)
    with tarfile.open(archive, "r:gz") as tar:
        for info in tar:
            name = info.name[len(SDIST_PREFIX):] if info.name.startswith(SDIST_PREFIX) else ""
            if name and info.isfile() and name.startswith(SOURCE_PARTS):
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(info)
                assert src is not None
                target.write_bytes(src.read())
    return dest


def bitnet_flags() -> List[str]:
    """`python -m bitnet.ffi --cflags --libs` (the library built first)."""
    ensure_library()
    out = subprocess.run([PY, "-m", "bitnet.ffi", "--cflags", "--libs"], check=True,
                         capture_output=True, text=True, timeout=300)
    return out.stdout.split()


def llama_cpp_dirs() -> Dict[str, Path]:
    """include/ (llama.h, ggml headers) and lib/ (libllama, libggml*) of the installed oracle."""
    llama_cpp = pytest.importorskip("llama_cpp")
    pkg = Path(llama_cpp.__file__).resolve().parent
    inc, lib = pkg.parent / "include", pkg / "lib"
    if not (inc / "llama.h").is_file() or not (lib / "libllama.so").is_file():
        pytest.skip(f"llama.cpp headers / libllama not installed next to llama_cpp ({pkg})")
    return {"include": inc, "lib": lib}


def llama_flags() -> List[str]:
    d = llama_cpp_dirs()
    return [f"-I{d['include']}", f"-L{d['lib']}", "-lllama", "-lggml", "-lggml-base",
            f"-Wl,-rpath,{d['lib']}"]


def compile_program(src: Path, out: Path, flags: Sequence[str], *, cxx: bool = False,
                    std: Optional[str] = None, extra: Sequence[str] = ()) -> Path:
    """gcc/g++ with warnings as errors; fails the test with the compiler's message."""
    compiler = "g++" if cxx else "gcc"
    cmd = [compiler, f"-std={std or ('c++17' if cxx else 'c11')}", "-Wall", "-Wextra", "-Werror",
           str(src), "-o", str(out), *flags, *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{shlex.join(cmd)}\n{res.stderr}"
    return out


def run_program(exe: Path, *args: Union[str, bytes], env: Optional[Dict[str, str]] = None,
                timeout: int = 300, check: bool = True,
                cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Run without LD_LIBRARY_PATH (the rpath must do); `env` adds variables."""
    base = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    res = subprocess.run([str(exe), *args], capture_output=True, timeout=timeout,
                         env={**base, **(env or {})}, cwd=cwd)
    if check:
        assert res.returncode == 0, (exe.name, res.returncode, res.stderr.decode(errors="replace"))
    return res


def parse_lines(out: bytes) -> Dict[str, List[str]]:
    """'key value...' lines -> {key: [values]}."""
    lines = out.decode().splitlines()
    return {ln.split(" ", 1)[0]: ln.split(" ")[1:] for ln in lines if ln}
