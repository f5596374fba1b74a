"""Build hook for the optional C kernels of bitnet_kernels; the metadata is in pyproject.toml
(the license is set here: its field changed form in setuptools 77, which Python 3.8 lacks).

The extension is optional: when cffi is missing or compiling fails (no compiler, odd
platform) the install still succeeds with ONE warning, and `bitnet_kernels.available()`
reports False with the reason, so the numpy reference is used. Such a build:

* says so where the user sees it: pip hides a successful build's output unless `-v`, so the
  warning also goes to the controlling terminal (/dev/tty) when there is one;
* is tagged `py3-none-nokernels`, a platform tag no installer supports, so pip's wheel cache
  never hands this wheel out again: once a compiler is there, the next install builds anew
  and gets the kernels (pip installs the wheel it just built without checking its tag).

With the kernels the wheel is tagged `cp38-abi3-<platform>` (the extension uses the stable
ABI), or `cpXY-cpXY-<platform>` when the C API library (which embeds this Python's
libpython) is built too.
"""

import os
import sys
from typing import Any, Dict, List, Tuple

import setuptools
from setuptools import setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1 ships it in the wheel package
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

NO_KERNELS_PLATFORM = "nokernels"
_warned: List[BaseException] = []  # why the kernels are not built (the first reason)
_announced: List[bool] = []


def _warn(err: BaseException) -> None:
    """Record why the kernels are not built (said once, by `_announce`, during the build)."""
    if not _warned:
        _warned.append(err)


def _announce() -> None:
    """The one warning of a kernel-less build: on stderr and on the controlling terminal (pip
    shows a successful build's stderr only with -v). pip runs setup.py once per build hook,
    so this is called from the build commands only, never at import."""
    if not _warned or _announced:
        return
    _announced.append(True)
    err = _warned[0]
    message = (
        "WARNING: bitnet-compat: building the optional C kernels (bitnet_kernels) failed: "
        f"{type(err).__name__}: {str(err).rstrip('.')}. The pure-numpy reference backend "
        "will be used (much slower); install a C compiler and reinstall to get the kernels.\n")
    sys.stderr.write(message)
    try:  # pip shows a successful build's stderr only with -v: tell the terminal directly
        with open("/dev/tty", "w") as tty:
            tty.write(message)
    except OSError:
        pass


_capi_built: List[bool] = []


def _build_capi(cmd: Any) -> None:
    """The C API (libbitnet_ffi, bitnet/ffi/build_ffi.py) into the package; optional too: a
    failure warns and the install goes on (`python -m bitnet.ffi --build` retries)."""
    import importlib.util

    try:
        spec = importlib.util.spec_from_file_location(
            "_bitnet_build_ffi", os.path.join("reference", "bitnet", "ffi", "build_ffi.py"))
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        module.build_into("reference" if cmd.inplace else cmd.build_lib)
        _capi_built.append(True)
    except Exception as e:  # noqa: BLE001 - any failure means: no C API library
        sys.stderr.write(f"WARNING: bitnet-compat: building the C API (libbitnet_ffi) failed: "
                         f"{type(e).__name__}: {e}\n")


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed C build into a warning."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - any failure means: no extension
            _warn(e)
        _announce()
        if not os.environ.get("BITNET_NO_CAPI"):
            _build_capi(self)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            _warn(e)
            stale = self.get_ext_fullpath(ext.name)  # an earlier build's output in build/
            if os.path.exists(stale):
                os.remove(stale)


class KernelAwareBdistWheel(bdist_wheel):  # type: ignore[misc, valid-type]
    """cp38-abi3 with the kernels; an uncacheable `py3-none-nokernels` without them."""

    def finalize_options(self) -> None:
        if not self.py_limited_api:
            self.py_limited_api = "cp38"
        super().finalize_options()

    def run(self) -> None:
        super().run()
        _announce()  # (also when build_ext did not run: no cffi, BITNET_NO_KERNELS)

    def get_tag(self) -> Tuple[str, str, str]:
        if _warned:
            return "py3", "none", NO_KERNELS_PLATFORM
        tag = tuple(super().get_tag())
        if _capi_built:  # libbitnet_ffi embeds this Python version's libpython: not abi3
            version = f"cp{sys.version_info[0]}{sys.version_info[1]}"
            return version, version, tag[2]
        return tag  # type: ignore[return-value]


kwargs: Dict[str, Any] = {"cmdclass": {"build_ext": OptionalBuildExt,
                                       "bdist_wheel": KernelAwareBdistWheel}}
_setuptools_major = int(setuptools.__version__.split(".")[0])
if _setuptools_major >= 77:  # PEP 639 (Python >= 3.9 build environments)
    kwargs.update(license_expression="MIT", license_files=["LICENSE"])
else:
    kwargs.update(license="MIT", license_files=["LICENSE"])
if os.environ.get("BITNET_NO_KERNELS"):  # build without the C kernels (tests, packagers)
    _warn(RuntimeError("BITNET_NO_KERNELS is set"))
else:
    try:
        import cffi  # noqa: F401  (the cffi_modules keyword below is cffi's setuptools plugin)

        kwargs["cffi_modules"] = ["optimized/bitnet_kernels/build_kernels.py:ffibuilder"]
    except ImportError as e:
        _warn(e)

setup(**kwargs)
