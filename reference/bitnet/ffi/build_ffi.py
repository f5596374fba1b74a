"""Build libbitnet_ffi.so (cffi's embedding mode) and its pkg-config file.

The library is the C of csrc/ plus generated glue: for every function bitnet.ffi.capi
implements, a C wrapper that starts the embedded interpreter and passes structs by pointer to
an `extern "Python+C"` function; for every UNSUPPORTED one, a stub returning llama.cpp's
failure value (see bitnet.ffi.surface). cffi's declarations are the header itself,
preprocessed. Needs cffi, a C compiler and (Python >= 3.12) setuptools: build time only.

Built at install time into the package (setup.py calls `build_into`), or for development with
`python -m bitnet.ffi --build`, into `bitnet/ffi/lib/`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import List, Optional

try:
    from bitnet.ffi.surface import (
        CSRC,
        HEADER,
        UNSUPPORTED,
        Function,
        failure_value,
        is_struct_value,
        parse_header,
        python_implemented,
    )
except ImportError:  # pragma: no cover - setup.py runs this file before the package exists
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        "_bitnet_ffi_surface", Path(__file__).resolve().parent / "surface.py")
    assert _spec is not None and _spec.loader is not None
    _surface = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _surface  # dataclasses look their module up
    _spec.loader.exec_module(_surface)
    CSRC, HEADER, UNSUPPORTED = _surface.CSRC, _surface.HEADER, _surface.UNSUPPORTED
    Function, failure_value = _surface.Function, _surface.failure_value  # type: ignore[misc]
    is_struct_value, parse_header = _surface.is_struct_value, _surface.parse_header
    python_implemented = _surface.python_implemented

HERE = Path(__file__).resolve().parent
INCLUDE_DIR = HEADER.parent
LIB_DIR = HERE / "lib"
LIB_NAME = "libbitnet_ffi.so"
EXT_LIB_NAME = "libbitnet_ffi_ext.so"
EXT_SOURCE = HERE / "ext" / "bitnet_ffi_ext.cpp"
PC_NAME = "bitnet_ffi.pc"
MODULE_NAME = "_bitnet_ffi"
VERSION = "0.3.36"

# C helpers of csrc/ the Python side calls through `lib`
HELPERS_CDEF = """
void bitnet__set_error(int32_t code, const char *message);
void bitnet__log(int32_t level, const char *text);
const char *bitnet__import_root(void);
void bitnet__start_failed(const char *cause);
struct llama_sampler *bitnet__sampler_new_builtin(intptr_t handle);
int bitnet__sampler_is_live(const struct llama_sampler *smpl);
intptr_t bitnet__sampler_builtin_handle(const struct llama_sampler *smpl);
"""

# Python functions csrc/ calls (the built-in samplers' interface, shutdown)
CALLBACKS_CDEF = """
extern "Python+C" const char *bitnet__py_sampler_name(intptr_t handle);
extern "Python+C" void bitnet__py_sampler_accept(intptr_t handle, llama_token token);
extern "Python+C" void bitnet__py_sampler_apply(intptr_t handle, llama_token_data_array *cur_p);
extern "Python+C" void bitnet__py_sampler_reset(intptr_t handle);
extern "Python+C" intptr_t bitnet__py_sampler_clone(intptr_t handle);
extern "Python+C" void bitnet__py_sampler_free(intptr_t handle);
extern "Python+C" void bitnet__py_sampler_copy(intptr_t src, intptr_t dst);
extern "Python+C" void bitnet__py_shutdown(void);
"""

INIT_CODE = """
import os, sys
from _bitnet_ffi import ffi, lib
try:
    _root = os.fsdecode(ffi.string(lib.bitnet__import_root()))
    if _root and _root not in sys.path:
        sys.path.insert(0, _root)
    from bitnet.ffi import capi
    capi.install(ffi, lib)
except BaseException as _exc:  # one line for the C side to print; nothing unwinds into C
    lib.bitnet__start_failed(f"{type(_exc).__name__}: {_exc}".encode("utf-8", "replace"))
"""


def _py_signature(fn: Function) -> str:
    """The extern "Python+C" prototype behind a Python-implemented function."""
    params = []
    if fn.returns_struct:
        params.append(f"{fn.ret} *out")
    for p in fn.params:
        params.append(f"const {p.type} *{p.name}" if is_struct_value(p.type) else f"{p.type} {p.name}")
    ret = "void" if fn.returns_struct else fn.ret
    return f"{ret} bitnet__py_{fn.name}({', '.join(params) or 'void'})"


def _c_params(fn: Function) -> str:
    return ", ".join(f"{p.type} {p.name}" for p in fn.params) or "void"


def _wrapper(fn: Function) -> str:
    """C definition of an exported function implemented in Python."""
    args = ", ".join(("&" if is_struct_value(p.type) else "") + p.name for p in fn.params)
    head = f"LLAMA_API {fn.ret} {fn.name}({_c_params(fn)})"
    if fn.returns_struct:
        call_args = ", ".join(x for x in ("&r", args) if x)
        return (f"{head} {{\n    {fn.ret} r;\n    memset(&r, 0, sizeof r);\n"
                f"    if (!bitnet__enter(\"{fn.name}\")) return r;\n"
                f"    bitnet__py_begin();\n    bitnet__py_{fn.name}({call_args});\n"
                f"    bitnet__py_end();\n    return r;\n}}\n")
    if fn.ret == "void":
        return (f"{head} {{\n    if (!bitnet__enter(\"{fn.name}\")) return;\n"
                f"    bitnet__py_begin();\n    bitnet__py_{fn.name}({args});\n"
                f"    bitnet__py_end();\n}}\n")
    return (f"{head} {{\n    if (!bitnet__enter(\"{fn.name}\")) return {failure_value(fn)};\n"
            f"    bitnet__py_begin();\n    {fn.ret} r = bitnet__py_{fn.name}({args});\n"
            f"    bitnet__py_end();\n    return r;\n}}\n")


def _stub(fn: Function) -> str:
    """C definition of an UNSUPPORTED function: llama.cpp's failure value and the last error."""
    value, why = UNSUPPORTED[fn.name]
    unused = "".join(f"    (void){p.name};\n" for p in fn.params)
    message = json.dumps(f"{fn.name}: {why}")
    ret = f"    return {value};\n" if fn.ret != "void" else ""
    return (f"LLAMA_API {fn.ret} {fn.name}({_c_params(fn)}) {{\n{unused}"
            f"    bitnet__set_error(BITNET_ERR_GENERIC, {message});\n{ret}}}\n")


def glue_source() -> str:
    """The C of the cffi module: wrappers, stubs and the start hook."""
    functions = parse_header()
    py = python_implemented(functions)
    parts = ['#include <string.h>\n#include "bitnet_ffi_internal.h"\n',
             "int bitnet__cffi_start(void) { return cffi_start_python(); }\n"]
    parts += [_py_signature(fn) + ";\n" for fn in py.values()]
    parts += [_wrapper(fn) for fn in py.values()]
    parts += [_stub(functions[name]) for name in sorted(UNSUPPORTED)]
    return "\n".join(parts)


def _compiler() -> List[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()


def cdef_source() -> str:
    """cffi's declarations: the header preprocessed (without libc or ggml headers: cffi knows
    the standard types), the Python functions behind the wrappers and the C helpers."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("stdbool.h", "stddef.h", "stdint.h", "stdio.h"):
            Path(tmp, name).write_text("")
        cmd = _compiler() + ["-E", "-P", "-nostdinc", f"-I{tmp}", "-U__GNUC__", "-U__cplusplus",
                             "-DBITNET_FFI_BUILDING=1", "-DBITNET_FFI_NO_GGML_H=1", "-DLLAMA_API=",
                             "-x", "c", str(HEADER)]
        pre = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    externs = "".join(f'extern "Python+C" {_py_signature(fn)};\n'
                      for fn in python_implemented().values())
    return pre + HELPERS_CDEF + CALLBACKS_CDEF + externs


def pkg_config_text() -> str:
    """bitnet_ffi.pc, relative to where it lies (works wherever the package is installed)."""
    return (
        "prefix=${pcfiledir}/../..\n"
        "includedir=${prefix}/include\n"
        "libdir=${prefix}/lib\n\n"
        "Name: bitnet_ffi\n"
        "Description: bitnet-compat's C API, a drop-in for llama.cpp's llama.h\n"
        f"Version: {VERSION}\n"
        "Cflags: -I${includedir}\n"
        "Libs: -L${libdir} -Wl,-rpath,${libdir} -lbitnet_ffi\n"
    )


def build(out_dir: Optional[Path] = None, verbose: bool = False) -> Path:
    """Compile libbitnet_ffi.so into `out_dir` (default: the package's lib/), atomically, and
    write lib/pkgconfig/bitnet_ffi.pc beside it; returns the library's path."""
    import cffi

    out_dir = LIB_DIR if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ffi = cffi.FFI()
    ffi.cdef(cdef_source())
    ffi.embedding_api("")
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ffi.set_source(
        MODULE_NAME,
        glue_source(),
        sources=[str(p) for p in sorted(CSRC.glob("*.c"))],
        include_dirs=[str(INCLUDE_DIR), str(CSRC)],
        define_macros=[("BITNET_FFI_BUILD_PYTHON", json.dumps(sys.executable))],
        extra_compile_args=["-O2", "-fvisibility=hidden"],
        extra_link_args=(["-ldl", "-pthread"] + ([f"-Wl,-rpath,{libdir}"] if libdir else [])),
    )
    ffi.embedding_init_code(INIT_CODE)
    with tempfile.TemporaryDirectory(prefix="bitnet-ffi-") as tmp:
        built = Path(ffi.compile(tmpdir=tmp, target=LIB_NAME, verbose=verbose))
        staged = out_dir / f".{LIB_NAME}.{os.getpid()}"
        shutil.copyfile(built, staged)
        os.chmod(staged, 0o755)
        os.replace(staged, out_dir / LIB_NAME)  # a running program keeps its mapped copy
    pc_dir = out_dir / "pkgconfig"
    pc_dir.mkdir(exist_ok=True)
    (pc_dir / PC_NAME).write_text(pkg_config_text())
    try:
        build_ext_library(out_dir)
    except (OSError, subprocess.CalledProcessError) as exc:  # optional: C++ programs only
        detail = getattr(exc, "stderr", "") or exc
        print(f"warning: {EXT_LIB_NAME} (llama.cpp's staging C++ API for its common/ library) "
              f"was not built: {detail}", file=sys.stderr)
    return out_dir / LIB_NAME


def build_ext_library(out_dir: Path) -> Path:
    """libbitnet_ffi_ext.so beside libbitnet_ffi.so: llama-ext.h's functions that llama.cpp's
    common/ calls (C++ linkage; needs a C++ compiler)."""
    cxx = (os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++").split()
    staged = out_dir / f".{EXT_LIB_NAME}.{os.getpid()}"
    cmd = cxx + ["-std=c++17", "-O2", "-shared", "-fPIC", "-fvisibility=hidden", str(EXT_SOURCE),
                 f"-I{INCLUDE_DIR}", "-o", str(staged), f"-L{out_dir}", "-lbitnet_ffi",
                 "-Wl,-rpath,$ORIGIN"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        os.replace(staged, out_dir / EXT_LIB_NAME)
    finally:
        if staged.exists():
            staged.unlink()
    return out_dir / EXT_LIB_NAME


def build_into(package_dir: str) -> Path:
    """The install-time build: into <package_dir>/bitnet/ffi/lib (setup.py's build_lib)."""
    return build(Path(package_dir) / "bitnet" / "ffi" / "lib")


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else None, verbose="-v" in sys.argv))
