"""`python -m bitnet.ffi [--build] [--cflags] [--libs] [--libdir] [--header]`."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from bitnet.ffi import build, cache_dir, cflags, include_dir, library_path, libs


def main(argv: Optional[List[str]] = None) -> int:
    """Print build flags for C programs; build the library first when asked or missing."""
    ap = argparse.ArgumentParser(prog="python -m bitnet.ffi", description=__doc__)
    ap.add_argument("--build", action="store_true", help="(re)build libbitnet_ffi.so now")
    ap.add_argument("--cflags", action="store_true", help="print compiler flags")
    ap.add_argument("--libs", action="store_true", help="print linker flags (builds if missing)")
    ap.add_argument("--libdir", action="store_true", help="print the library's directory")
    ap.add_argument("--header", action="store_true", help="print the header's path")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.build:
        path = build(cache_dir(), verbose=args.verbose)
        print(f"built {path}", file=sys.stderr)
    flags: List[str] = []
    if args.cflags:
        flags += cflags()
    if args.libs:
        flags += libs()
    if args.libdir:
        flags.append(str(library_path().parent))
    if args.header:
        flags.append(str(include_dir() / "bitnet_ffi.h"))
    if flags:
        print(" ".join(flags))
    elif not args.build:
        ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
