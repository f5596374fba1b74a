"""cffi builder of `bitnet_kernels._kernels` (the C kernels in optimized/bitnet_kernels/kernels/).

Used three ways: by setup.py's `cffi_modules` hook (`ffibuilder`, relative paths, -O3), by
`build(tmpdir, sanitize=True)` for the AddressSanitizer/UBSan build the slow test runs, and
as a script (`python optimized/bitnet_kernels/build_kernels.py [outdir]`) for a quick local build.
Flags: C99, -O3, -ffp-contract=off (so the dequantizers stay bit-identical to numpy); ISA
variants come from per-function target attributes, never -march=native, so one binary
runs on any x86-64 and dispatches from CPUID. BITNET_SANITIZE=1 adds
-fsanitize=address,undefined.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import List

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_DIR = os.path.join(HERE, "kernels")
# Every `bn_api*.h` declares entry points (one header per kernel family); every `bn_*.c` but the
# qemu self-test's `main` is compiled in.
API_HEADERS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(KERNEL_DIR, "bn_api*.h")))
HEADERS = ["bn_common.h"] + API_HEADERS
SOURCES = sorted(
    os.path.basename(p)
    for p in glob.glob(os.path.join(KERNEL_DIR, "bn_*.c"))
    if not p.endswith("bn_selftest_main.c")
)
MODULE = "bitnet_kernels._kernels"

STRUCTS_CDEF = """
typedef uint16_t bn_half;
typedef struct { bn_half d; int8_t qs[32]; } block_q8_0;
typedef struct { bn_half d; bn_half s; int8_t qs[32]; } block_q8_1;
typedef struct { bn_half d; uint8_t qs[16]; } block_q4_0;
typedef struct { bn_half d; bn_half m; uint8_t qs[16]; } block_q4_1;
typedef struct { bn_half d; bn_half dmin; uint8_t scales[12]; uint8_t qs[128]; } block_q4_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; bn_half d; } block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } block_q8_K;
typedef struct { uint8_t qs[48]; uint8_t qh[4]; bn_half d; } block_tq1_0;
typedef struct { uint8_t qs[64]; bn_half d; } block_tq2_0;
typedef struct { uint8_t qs[32]; } block_i2_s;
"""


def api_cdef() -> str:
    """The bn_api*.h declarations as cffi's cdef wants them: preprocessor lines dropped (cffi's
    parser skips the C comments itself), so the headers are the one list of entry points."""
    parts = []
    for name in API_HEADERS:
        with open(os.path.join(KERNEL_DIR, name), encoding="utf-8") as fh:
            parts.append("\n".join(ln for ln in fh.read().splitlines() if not ln.lstrip().startswith("#")))
    return "\n".join(parts)


CDEF = STRUCTS_CDEF + api_cdef()


def compile_flags(sanitize: bool) -> List[str]:
    """C flags of the build (sanitize: -fsanitize=address,undefined, frame pointers kept)."""
    flags = ["-std=c99", "-O3", "-ffp-contract=off", "-D_POSIX_C_SOURCE=200809L", "-Wall"]
    if sanitize:
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
    return flags


def make_builder(*, sanitize: bool = False, absolute: bool = False) -> FFI:
    """An FFI ready to compile; `absolute` source paths are needed outside the repo root."""
    if absolute:
        base = KERNEL_DIR
    else:  # setuptools wants paths relative to setup.py's directory
        base = os.path.relpath(KERNEL_DIR, os.getcwd())
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        MODULE,
        "".join(f'#include "{h}"\n' for h in HEADERS),
        sources=[os.path.join(base, s) for s in SOURCES],
        include_dirs=[base],
        depends=[os.path.join(base, h) for h in HEADERS],  # rebuild on change; ship in sdists
        extra_compile_args=compile_flags(sanitize),
        extra_link_args=(["-fsanitize=address,undefined"] if sanitize else []) + ["-lpthread", "-lm"],
    )
    return ffi


def build(tmpdir: str, *, sanitize: bool = False) -> str:
    """Compile the extension into `tmpdir`; returns the path of the shared library."""
    return str(make_builder(sanitize=sanitize, absolute=True).compile(tmpdir=tmpdir, verbose=False))


ffibuilder = make_builder(sanitize=os.environ.get("BITNET_SANITIZE", "") == "1")

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "kernels")
    os.makedirs(out, exist_ok=True)
    print(build(out, sanitize=os.environ.get("BITNET_SANITIZE", "") == "1"))
