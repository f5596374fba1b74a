"""cffi builder of `bitnet.optimized._kernels` (the C kernels in optimized/kernels/).

Used three ways: by setup.py's `cffi_modules` hook (`ffibuilder`, relative paths, -O3), by
`build(tmpdir, sanitize=True)` for the AddressSanitizer/UBSan build the slow test runs, and
as a script (`python optimized/build_kernels.py [outdir]`) for a quick local build.
Flags: C99, -O3, -ffp-contract=off (so the dequantizers stay bit-identical to numpy); ISA
variants come from per-function target attributes, never -march=native, so one binary
runs on any x86-64 and dispatches from CPUID. BITNET_SANITIZE=1 adds
-fsanitize=address,undefined.
"""

from __future__ import annotations

import os
import sys
from typing import List

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_DIR = os.path.join(HERE, "kernels")
HEADERS = ["bn_common.h", "bn_api.h"]
SOURCES = ["bn_dispatch.c", "bn_quant_dot.c", "bn_dequant.c", "bn_elementwise.c", "bn_selftest.c"]
MODULE = "bitnet.optimized._kernels"

CDEF = """
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

int bn_cpu_isa(void);
void bn_set_isa(int isa);
int bn_isa_request(void);
int bn_isa_effective(void);
int bn_kernel_count(void);
const char *bn_kernel_name(int k);
int bn_kernel_variant(int k);
int bn_max_threads(void);

int bn_quantize_row_q8_0(const float *x, void *y, int64_t n);
int bn_quantize_row_q8_1(const float *x, void *y, int64_t n);
int bn_quantize_row_q8_K(const float *x, void *y, int64_t n);
void bn_quantize_row_i8(const float *x, int8_t *q, float *scale, int32_t *sum, int64_t n);

int bn_matmul(int type, const void *w, int64_t N, int64_t D, const float *x, int64_t T, float *y,
              int mode, int n_threads);
int bn_dequantize_rows(int type, const void *w, int64_t n_rows, int64_t D, const int64_t *ids,
                       int64_t T, float *y);

void bn_rms_norm(const float *x, const float *weight, float *y, int64_t T, int64_t D, float eps);
void bn_softmax(const float *x, float *y, int64_t rows, int64_t K);
void bn_rope(const float *x, float *y, int64_t T, int64_t H, int64_t d, const float *cos_t,
             const float *sin_t, int64_t n_dims, int mode);
void bn_swiglu(const float *g, const float *u, float *y, int64_t n);
void bn_relu2_glu(const float *g, const float *u, float *y, int64_t n);
int bn_selftest(int verbose);
"""


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
        '#include "bn_common.h"\n#include "bn_api.h"\n',
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
