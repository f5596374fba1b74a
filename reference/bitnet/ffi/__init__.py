"""The C API: libbitnet_ffi.so + include/bitnet_ffi.h, a source-level drop-in for llama.h.

The library is built on demand into a cache dir (`python -m bitnet.ffi --build`); compile a
program with `cc app.c $(python -m bitnet.ffi --cflags --libs)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from bitnet.ffi.build_ffi import HEADER, LIB_NAME, build, cache_dir, library_path

__all__ = ["HEADER", "LIB_NAME", "build", "cache_dir", "cflags", "include_dir", "libs",
           "library_path"]


def include_dir() -> Path:
    """Directory holding bitnet_ffi.h."""
    return HEADER.parent


def cflags() -> List[str]:
    """Compiler flags: the include dir."""
    return [f"-I{include_dir()}"]


def libs(build_if_missing: bool = True) -> List[str]:
    """Linker flags: -L, -l and an rpath to the (built if missing) library's dir."""
    libdir = library_path(build_if_missing).parent
    return [f"-L{libdir}", "-lbitnet_ffi", f"-Wl,-rpath,{libdir}"]
