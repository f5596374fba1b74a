"""The `bitnet-compat` command: the conformance runner's entry point.

    bitnet-compat fetch              download the pinned corpora from PyPI packages
    bitnet-compat run [--quick|--full] [--impl reference,optimized,llama.cpp] [--report DIR]
                      [--seed N] [--time-budget S] [-n WORKERS] [--inject-fault NAME] [TESTS...]
                                     run the conformance suite, the differential metrics and
                                     the time-budgeted fuzz campaigns; write a report
    bitnet-compat fuzz tokenizers [--examples N] [--seed S] [--vocab V]
                                     differential fuzz vs llama.cpp; failures -> regressions
    bitnet-compat report DIR         re-render a run's report
    bitnet-compat diff A B           contracts whose status changed between two runs
    bitnet-compat docs [--run DIR]   regenerate docs/COMPATIBILITY.md's truth table
    bitnet-compat bench load|tokenize|matmul|decode|serve|quantize|speculative
                     [--json] [--report DIR]
                                     benchmarks against llama.cpp / tiktoken in the same run;
                                     --report stores them in a run's report (plots)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from bitnet import __version__
from bitnet.tools.extras import EXIT_MISSING_EXTRA, missing_extra


class UsageError(Exception):
    """Bad input the user can fix (a missing summary, no checkout); one line, exit 2."""


def cmd_fetch(args: argparse.Namespace) -> int:
    from bitnet_harness.fetch import fetch

    written = fetch(quiet=args.quiet)
    print(f"corpora up to date ({len(written)} files written)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bitnet.tools.extras import MissingExtraError, missing_modules

    missing = missing_modules(("rich", "pytest", "xdist", "hypothesis"))
    if missing:  # the run is the test suite: it needs the [test] extra
        raise MissingExtraError(missing[0], "test")
    from bitnet_harness.runner import run

    impls = [i.strip() for i in args.impl.split(",") if i.strip()]
    if args.time_budget is not None and args.time_budget < 0:
        print("bitnet-compat run: error: --time-budget must be >= 0 seconds", file=sys.stderr)
        return 2
    return run(quick=not args.full, report_dir=args.report, seed=args.seed, workers=args.workers,
               tests=args.tests, inject_fault=args.inject_fault, impls=impls,
               time_budget=args.time_budget)


def cmd_fuzz(args: argparse.Namespace) -> int:
    from bitnet_harness.fuzz import fuzz_tokenizers

    return fuzz_tokenizers(args.vocab, examples=args.examples, seed=args.seed)


def _summary(run_dir: Path) -> Dict[str, Any]:
    """A run's summary.json, or UsageError saying what is wrong with `run_dir`."""
    import json

    from bitnet_harness.report import load_summary

    if not (run_dir / "summary.json").is_file():
        raise UsageError(f"{run_dir} holds no summary.json: give a run's report directory "
                         "(reports/<run-id>, written by `bitnet-compat run`)")
    try:
        return load_summary(run_dir)
    except (ValueError, json.JSONDecodeError) as e:
        raise UsageError(f"{run_dir / 'summary.json'} is not a valid summary: {e}") from None


def cmd_report(args: argparse.Namespace) -> int:
    from bitnet_harness.report import write_reports

    write_reports(Path(args.dir), _summary(Path(args.dir)))
    print(f"re-rendered {args.dir}/report.md and index.html")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from bitnet_harness.report import diff

    changes = diff(_summary(Path(args.a)), _summary(Path(args.b)))
    print("\n".join(changes) if changes else "no contract, metric or benchmark changed")
    return 1 if any(line.endswith("-> failed") for line in changes) else 0


def cmd_docs(args: argparse.Namespace) -> int:
    from bitnet_harness.checkout import require_checkout
    from bitnet_harness.report import update_docs

    if args.run and args.output:
        run_dir, doc = Path(args.run), Path(args.output)
    else:
        repo = require_checkout("bitnet-compat docs without --run and --output")
        run_dir = Path(args.run) if args.run else repo / "reports" / "latest"
        doc = Path(args.output) if args.output else repo / "docs" / "COMPATIBILITY.md"
    update_docs(doc, _summary(run_dir))
    print(f"truth table in {doc} regenerated from {run_dir}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bitnet_harness.bench import run_bench

    return run_bench(args.what, as_json=args.json, report_dir=args.report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitnet-compat", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"bitnet-compat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text,
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    p = add("fetch", "download the pinned corpora (idempotent)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_fetch)
    p = add("run", "run the conformance suite and write a report")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="skip slow campaigns (default)")
    mode.add_argument("--full", action="store_true", help="include the slow campaigns")
    p.add_argument("--report", default=None,
                   help="report directory (default: the checkout's reports/<run-id>)")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed (repeatable runs)")
    p.add_argument("--impl", default="reference,optimized,llama.cpp",
                   help="implementations to hold to the contract (comma-separated)")
    p.add_argument("--time-budget", type=float, default=None, metavar="S",
                   help="wall-clock seconds shared by the fuzz campaigns (and, with --full, the "
                        "benchmark suites); default 30 quick / 600 full, 0 with TESTS")
    p.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers ('0': none)")
    p.add_argument("--inject-fault", default=None,
                   help="mutation check of the harness: apply a known fault (bitnet_harness.faults)")
    p.add_argument("tests", nargs="*", help="restrict to these test paths / node ids")
    p.set_defaults(func=cmd_run)
    p = add("fuzz", "differential fuzz campaign; shrunk failures become regressions")
    p.add_argument("campaign", choices=["tokenizers"], help="what to fuzz")
    p.add_argument("--examples", type=int, default=1000, help="generated inputs per vocabulary")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    p.add_argument("--vocab", action="append", default=[],
                   help="only this vocabulary (repeatable; default: all)")
    p.set_defaults(func=cmd_fuzz)
    p = add("report", "re-render a run's report.md and index.html")
    p.add_argument("dir", help="a run's report directory (holding summary.json)")
    p.set_defaults(func=cmd_report)
    p = add("diff", "contracts whose status changed between two runs")
    p.add_argument("a", help="the earlier run's report directory")
    p.add_argument("b", help="the later run's report directory")
    p.set_defaults(func=cmd_diff)
    p = add("docs", "regenerate docs/COMPATIBILITY.md's truth table from a run")
    p.add_argument("--run", default=None, help="run directory (default: the checkout's reports/latest)")
    p.add_argument("--output", default=None,
                   help="document to update (default: the checkout's docs/COMPATIBILITY.md)")
    p.set_defaults(func=cmd_docs)
    p = add("bench", "benchmarks against llama.cpp in the same run")
    p.add_argument("what", choices=["load", "tokenize", "matmul", "decode", "serve", "quantize",
                                    "speculative"], nargs="?",
                   default="load", help="which benchmark")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="store the results in this run's summary.json and re-render its report")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `bitnet-compat` console script: expected failures (a missing extra,
    no checkout, a missing summary, an unreachable index) are one line on stderr, exit 2."""
    args = build_parser().parse_args(argv)
    from bitnet_harness.checkout import NoCheckoutError

    try:
        return int(args.func(args))
    except ImportError as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        print(f"bitnet-compat {args.command}: {extra}", file=sys.stderr)
        return EXIT_MISSING_EXTRA
    except (UsageError, NoCheckoutError) as exc:
        print(f"bitnet-compat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from bitnet_harness.fetch import FetchError  # (fetch needs no extra to import)

        if isinstance(exc, FetchError):
            print(f"bitnet-compat {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
