"""The C API: libbitnet_ffi.so + include/bitnet_ffi.h (also as llama.h), llama.cpp 0.3.36's
llama.h on the bitnet engine.

The library is built at install time into `bitnet/ffi/lib/` (`python -m bitnet.ffi --build`
rebuilds it there); compile a program with `cc app.c $(python -m bitnet.ffi --cflags --libs)`
or pkg-config (PKG_CONFIG_PATH=$(python -m bitnet.ffi --pkgconfigdir)). Nothing here imports
more than the standard library: these answers need no compiler, cffi or setuptools.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
INCLUDE_DIR = HERE / "include"
HEADER = INCLUDE_DIR / "bitnet_ffi.h"
LIB_DIR = HERE / "lib"
LIB_NAME = "libbitnet_ffi.so"
PKGCONFIG_DIR = LIB_DIR / "pkgconfig"

__all__ = ["HEADER", "INCLUDE_DIR", "LIB_DIR", "LIB_NAME", "PKGCONFIG_DIR", "LibraryNotBuilt",
           "cflags", "libs", "library_path"]


class LibraryNotBuilt(FileNotFoundError):
    """libbitnet_ffi.so is not in the package (its install-time build failed or was skipped)."""


def library_path() -> Path:
    """The installed libbitnet_ffi.so; LibraryNotBuilt when it is missing."""
    path = LIB_DIR / LIB_NAME
    if not path.is_file():
        raise LibraryNotBuilt(f"{path} is missing: the install-time build of the C API failed or "
                              "was skipped; build it with `python -m bitnet.ffi --build` (needs cffi, "
                              "a C compiler and, on Python >= 3.12, setuptools)")
    return path


def cflags() -> List[str]:
    """Compiler flags: the directory of bitnet_ffi.h, llama.h and llama-cpp.h."""
    return [f"-I{INCLUDE_DIR}"]


def libs() -> List[str]:
    """Linker flags: -L, -l and an rpath to the library's directory."""
    libdir = library_path().parent
    return [f"-L{libdir}", "-lbitnet_ffi", f"-Wl,-rpath,{libdir}"]
