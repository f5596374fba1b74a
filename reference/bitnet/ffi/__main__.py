"""`python -m bitnet.ffi [--build] [--cflags] [--libs] [--libdir] [--includedir] [--header]
[--pkgconfigdir]`: where the C API is, for compilers and build systems."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from bitnet.ffi import HEADER, INCLUDE_DIR, PKGCONFIG_DIR, LibraryNotBuilt, cflags, library_path, libs


def main(argv: Optional[List[str]] = None) -> int:
    """Print build flags for C programs (the library must be built); --build (re)builds it."""
    ap = argparse.ArgumentParser(prog="python -m bitnet.ffi", description=__doc__)
    ap.add_argument("--build", action="store_true",
                    help="(re)build libbitnet_ffi.so into the package (needs cffi and a C compiler)")
    ap.add_argument("--cflags", action="store_true", help="print compiler flags")
    ap.add_argument("--libs", action="store_true", help="print linker flags")
    ap.add_argument("--libdir", action="store_true", help="print the library's directory")
    ap.add_argument("--includedir", action="store_true", help="print the headers' directory")
    ap.add_argument("--header", action="store_true", help="print bitnet_ffi.h's path")
    ap.add_argument("--pkgconfigdir", action="store_true",
                    help="print the directory of bitnet_ffi.pc (for PKG_CONFIG_PATH)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.build:
        from bitnet.ffi.build_ffi import build

        print(f"built {build(verbose=args.verbose)}", file=sys.stderr)
    out: List[str] = []
    try:
        if args.cflags:
            out += cflags()
        if args.libs:
            out += libs()
        if args.libdir:
            out.append(str(library_path().parent))
        if args.pkgconfigdir:
            library_path()
            out.append(str(PKGCONFIG_DIR))
    except LibraryNotBuilt as exc:
        print(f"python -m bitnet.ffi: {exc}", file=sys.stderr)
        return 1
    if args.includedir:
        out.append(str(INCLUDE_DIR))
    if args.header:
        out.append(str(HEADER))
    if out:
        print(" ".join(out))
    elif not args.build:
        ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
