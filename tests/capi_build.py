"""The C API library for the tests: the installed build, rebuilt first when missing or older
than its sources (a development tree), once across xdist workers (a file lock)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
FFI = ROOT / "reference" / "bitnet" / "ffi"


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
            subprocess.run([sys.executable, "-m", "bitnet.ffi", "--build"], check=True,
                           capture_output=True, timeout=900)
    return lib
