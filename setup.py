"""Build hook for the optional C kernels of bitnet_kernels; all metadata is in pyproject.toml.

The extension is optional: when cffi is missing or compiling fails (no compiler, odd
platform) the install still succeeds with ONE warning, and `bitnet_kernels.available()`
reports False with the reason, so the numpy reference is used.
"""

import sys
from typing import Any, Dict, List

from setuptools import setup
from setuptools.command.build_ext import build_ext

_warned: List[BaseException] = []


def _warn(err: BaseException) -> None:
    if not _warned:
        _warned.append(err)
        sys.stderr.write(
            "WARNING: bitnet-compat: building the optional C kernels (bitnet_kernels) failed: "
            f"{type(err).__name__}: {str(err).rstrip('.')}. The pure-numpy reference backend will be used.\n"
        )


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed C build into a warning."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - any failure means: no extension
            _warn(e)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            _warn(e)


kwargs: Dict[str, Any] = {"cmdclass": {"build_ext": OptionalBuildExt}}
try:
    import cffi  # noqa: F401  (the cffi_modules keyword below is cffi's setuptools plugin)

    kwargs["cffi_modules"] = ["optimized/bitnet_kernels/build_kernels.py:ffibuilder"]
except ImportError as e:
    _warn(e)

setup(**kwargs)
