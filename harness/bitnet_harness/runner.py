"""`bitnet-compat run`: run the checks, map them onto the contract registry, write a report.

The checks are the project's pytest suite (so the test suite and the runner share one
registry); `--quick` skips tests marked `slow`. Reports go to `reports/<run-id>/`:
`summary.json` (schema below), `report.md`, a self-contained `index.html`, `junit.xml`;
`reports/latest` points to the newest.

After the suite, a full run without explicit TESTS also records (unless its --impl leaves
out what they need): the differential metrics (bitnet_harness.differential), then the
time-budgeted campaigns: in --full the benchmark suites `load`, `tokenize`, `matmul` and
`decode` (each started only while budget remains; their ratios prove or fail the perf.*
contracts, bitnet_harness.bench.bench_outcomes), then the fuzz campaigns (tokenizers vs
llama.cpp; mutated GGUF files must raise only GGUFError) in seeded batches until the budget
(`--time-budget S`, default 30 s quick, 600 s full; 0 runs nothing) is spent. A finding is a failed check of
its contract (`fuzz::tokenizers[<vocab>]`, `fuzz::gguf`), shrunk and saved under
corpora/regressions/. Faults injected with --inject-fault apply to the pytest checks only.
llama.cpp's own log (and anything else on stderr) during the metrics and the campaigns is
captured and shown only when they fail; pytest shows the suite's likewise (on failure).

summary.json schema (version 2; the fields after "contracts" may be absent in a run that did
not compute them, e.g. a run restricted to TESTS):
    {"schema": 2, "run_id": str, "mode": "quick"|"full", "seed": int,
     "injected_fault": str | null, "totals": {"passed": n, "failed": n, "unproven": n},
     "tests": {"passed": n, "failed": n, "skipped": n},
     "contracts": [{"id", "section", "clause", "status", "checks": [node ids]}],
     "differential": {                          # bitnet_harness.differential.collect
        "n_gen": n, "modes": ["none", "peer"], "seconds": s,   # activation_quant modes
        "backend": "optimized" | "reference",   # our backend in "logits" / "divergences"
        "logits": [{"model", "mode", "prompt", "positions": n,  # ours vs llama.cpp, per prompt
                    "nmse_mean", "nmse_max", "argmax_agree": fraction,
                    "flip_margin_max": llama.cpp's top-2 margin at the worst flip | null}],
        "layers": [{"model", "mode", "prompt", "positions": n,  # optimized vs numpy backend
                    "layers": [NMSE of layer il's residual output], "logits_nmse"}],
        "divergences": [{"model", "mode", "prompt", "position": index in the continuation,
                         "input": prompt + common continuation (the text whose next token
                         differs), "ours": {"token", "text"}, "llama.cpp": {"token", "text"},
                         "margin_llama.cpp", "margin_ours"}],  # top-2 logit gaps there
        "greedy": [{"model", "mode", "prompts": n, "identical": n}],
        "layers_skipped": str,                  # why "layers" is empty (no C kernels, --impl)
        "error": str                            # only when the metrics could not be computed
     },
     "budget": {"budget_s": s, "used_s": s, "seed": n,
        "campaigns": {"tokenizers": {"kind": "fuzz", "cases": n, "used_s": s, "rounds": n,
                                     "batch": n, "mismatches": n,
                                     "vocabs": {name: {"cases": n, "batches": n,
                                                       "mismatch": {...} | null}}},
                      "gguf": {"kind": "fuzz", "cases": n, "used_s": s, "batches": n,
                               "batch": n, "mismatches": 0 | 1,
                               "finding": {"what", "size", "regression": path} | null},
                      "bench WHAT": {"kind": "bench", "used_s": s}}},
     "bench": {what: the `bitnet-compat bench WHAT --json` object}   # also bench --report DIR
    }
NMSE = sum((ours - ref)^2) / sum(ref^2) (llama.cpp's test-backend-ops metric).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from rich.console import Console
from rich.table import Table

from bitnet.safe_write import write_text
from bitnet.tools.extras import MissingExtraError, missing_modules
from bitnet_harness.bench import bench_outcomes
from bitnet_harness.checkout import require_checkout
from bitnet_harness.contracts import CONTRACTS, status
from bitnet_harness.report import write_reports


def _outcomes(junit: Path) -> Dict[str, str]:
    """pytest node id -> 'passed' | 'failed' | 'skipped' from a junit XML file."""
    out: Dict[str, str] = {}
    if not junit.is_file():
        return out
    for case in ET.parse(junit).getroot().iter("testcase"):
        classname = case.get("classname", "")
        parts = classname.split(".")
        node = "/".join(parts) + ".py::" + case.get("name", "")
        if case.find("failure") is not None or case.find("error") is not None:
            out[node] = "failed"
        elif case.find("skipped") is not None:
            out[node] = "skipped"
        else:
            out[node] = "passed"
    return out


IMPLS = ("reference", "optimized", "llama.cpp")


def selection(quick: bool, impls: Sequence[str], seed: int) -> Tuple[List[str], Dict[str, str]]:
    """pytest arguments and environment for a run over `impls` (see IMPLS).

    Without llama.cpp the differential checks against it (marker `llamacpp`) are left out;
    without optimized the C kernels' tests are left out and every model runs on the numpy
    reference (BITNET_BACKEND=reference). The reference defines behaviour: always included.
    Hypothesis draws from `seed`, so a run is repeatable.
    """
    unknown = sorted(set(impls) - set(IMPLS))
    if unknown:
        raise ValueError(f"unknown implementation(s) {unknown}; known: {', '.join(IMPLS)}")
    args = [f"--hypothesis-seed={seed}"]
    env: Dict[str, str] = {}
    markers = ["not slow"] if quick else []
    if "llama.cpp" not in impls:
        markers.append("not llamacpp")
    if "optimized" not in impls:
        args.append("--ignore=tests/test_optimized_kernels.py")
        env["BITNET_BACKEND"] = "reference"
    if markers:
        args += ["-m", " and ".join(markers)]
    return args, env


DEFAULT_BUDGET = {True: 30.0, False: 600.0}  # quick -> seconds of fuzzing (and long suites)


def run(quick: bool = True, report_dir: Optional[str] = None, seed: int = 0,
        workers: str = "auto", tests: Sequence[str] = (), inject_fault: Optional[str] = None,
        quiet: bool = False, impls: Sequence[str] = IMPLS, time_budget: Optional[float] = None,
        metrics: Optional[bool] = None) -> int:
    """Run the suite, the differential metrics and the budgeted campaigns, write the report;
    non-zero exit when any contract failed. Restricted to `tests`, a run computes no metrics
    and no campaigns unless asked (metrics=True, time_budget=S)."""
    repo = require_checkout("bitnet-compat run")
    missing = missing_modules(("pytest", "xdist", "hypothesis") if workers != "0"
                              else ("pytest", "hypothesis"))
    if missing:
        raise MissingExtraError(missing[0], "test")
    if time_budget is not None and time_budget < 0:
        raise ValueError(f"time budget {time_budget} s is negative")
    budget = time_budget if time_budget is not None else (0.0 if tests else DEFAULT_BUDGET[quick])
    with_metrics = metrics if metrics is not None else not tests
    run_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(report_dir) if report_dir else repo / "reports" / run_id
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
           "-o", "junit_family=xunit1", "-p", "bitnet_harness.pytest_faults", *tests]
    if workers != "0":
        cmd += ["-n", workers]
    args, env_updates = selection(quick, impls, seed)
    cmd += args
    env = dict(os.environ, **env_updates)
    env.pop("BITNET_INJECT_FAULT", None)
    if inject_fault:
        env["BITNET_INJECT_FAULT"] = inject_fault
    proc = subprocess.run(cmd, cwd=repo, env=env,
                          stdout=subprocess.DEVNULL if quiet else None)
    outcomes = _outcomes(junit)
    say = (lambda msg: None) if quiet else (lambda msg: print(f"bitnet-compat: {msg}", flush=True))
    extra: Dict[str, Any] = {}
    if with_metrics:
        with native_log_captured() as llama_log:
            extra["differential"] = _differential(quick, impls, say)
        if "error" in extra["differential"]:
            _show_log("differential metrics", llama_log())
    with native_log_captured() as llama_log:
        extra["budget"], extra["bench"] = _budgeted(quick, impls, seed, budget, say)
    if any("error" in c or c.get("mismatches") for c in extra["budget"]["campaigns"].values()):
        _show_log("campaigns", llama_log())
    campaigns = extra["budget"]["campaigns"]
    for name, entry in campaigns.get("tokenizers", {}).get("vocabs", {}).items():
        if entry["cases"]:
            outcomes[f"fuzz::tokenizers[{name}]"] = "failed" if entry["mismatch"] else "passed"
    if campaigns.get("gguf", {}).get("cases"):
        outcomes["fuzz::gguf"] = "failed" if campaigns["gguf"]["finding"] else "passed"
    outcomes.update(bench_outcomes(extra["bench"]))  # the performance contracts' evidence
    if not extra["bench"]:
        del extra["bench"]
    summary = _summary(run_id, quick, seed, outcomes, inject_fault)
    summary.update(extra)
    write_text(out / "summary.json", json.dumps(summary, indent=1))
    write_reports(out, summary)
    latest = out.parent / "latest"
    if latest.is_symlink() or not latest.exists():
        if latest.is_symlink():
            latest.unlink()
        latest.symlink_to(out.name)
    if not quiet:
        _print_table(summary)
        print(f"report: {out}")
    # pytest exit codes above 1 (interrupted, internal error, no tests) fail the run too
    return 1 if summary["totals"]["failed"] or proc.returncode != 0 else 0


@contextlib.contextmanager
def native_log_captured() -> Iterator[Callable[[], str]]:
    """While the block runs, file descriptor 2 and sys.stderr (where llama.cpp's C code and
    llama-cpp-python's log callback write, e.g. "n_ctx_seq (512) > n_ctx_train (0)") go to a
    temporary file; yields a function that
    returns what was captured, so a caller shows it only when something failed."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured = tempfile.TemporaryFile(mode="w+b")
    text = [""]
    as_text = open(captured.fileno(), "w", encoding="utf-8", errors="replace", buffering=1,
                   closefd=False)
    try:
        os.dup2(captured.fileno(), 2)
        with contextlib.redirect_stderr(as_text):  # llama-cpp-python logs through sys.stderr
            yield lambda: text[0]
    finally:
        as_text.close()
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        captured.seek(0)
        text[0] = captured.read().decode("utf-8", "replace")
        captured.close()


def _show_log(what: str, log: str, tail: int = 60) -> None:
    """The last lines of a captured native log, after a failure in `what`."""
    lines = log.rstrip().splitlines()
    if lines:
        print(f"bitnet-compat: {what} failed; the last {min(tail, len(lines))} lines of their "
              "log (llama.cpp's included):", file=sys.stderr)
        print("\n".join(lines[-tail:]), file=sys.stderr)


def _differential(quick: bool, impls: Sequence[str], say: Callable[[str], None]
                  ) -> Dict[str, Any]:
    """The differential metrics, or {"error": ...} when they could not be computed."""
    from bitnet_harness.differential import collect

    with_optimized = "optimized" in impls and os.environ.get("BITNET_BACKEND") != "reference"
    try:
        return collect(quick=quick, with_llamacpp="llama.cpp" in impls,
                       with_optimized=with_optimized,
                       progress=lambda label: say(f"differential metrics: {label}"))
    except Exception as exc:  # a report is still written; the error is in it
        return {"error": f"{type(exc).__name__}: {exc}"}


def _budgeted(quick: bool, impls: Sequence[str], seed: int, budget: float,
              say: Callable[[str], None]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(the summary's "budget", its "bench"): long suites then fuzz within `budget` s."""
    import time

    start = time.monotonic()
    campaigns: Dict[str, Any] = {}
    bench: Dict[str, Any] = {}
    if not quick and "llama.cpp" in impls:
        from bitnet_harness.bench import collect_bench

        for what in ("load", "tokenize", "matmul", "decode"):
            if time.monotonic() - start >= budget:
                break
            say(f"bench {what}")
            t0 = time.monotonic()
            try:
                bench[what] = collect_bench(what)
            except Exception as exc:
                bench[what] = {"bench": what, "error": f"{type(exc).__name__}: {exc}"}
            campaigns[f"bench {what}"] = {"kind": "bench", "used_s": time.monotonic() - t0}
    remaining = max(0.0, budget - (time.monotonic() - start))
    if "llama.cpp" in impls:
        from bitnet_harness.fuzz import budgeted_campaigns

        try:
            fuzz = budgeted_campaigns(remaining, seed=seed, progress=say)
            campaigns.update(fuzz["campaigns"])
        except Exception as exc:  # e.g. corpora missing: recorded, the report still written
            campaigns["fuzz"] = {"kind": "fuzz", "cases": 0, "used_s": 0.0,
                                 "error": f"{type(exc).__name__}: {exc}"}
    return ({"budget_s": budget, "used_s": time.monotonic() - start, "seed": seed,
             "campaigns": campaigns}, bench)


def _summary(run_id: str, quick: bool, seed: int, outcomes: Dict[str, str],
             fault: Optional[str] = None) -> Dict[str, Any]:
    contracts = []
    totals = {"passed": 0, "failed": 0, "unproven": 0}
    for c in CONTRACTS:
        st, nodes = status(c, outcomes)
        totals[st] += 1
        contracts.append({"id": c.id, "section": c.section, "clause": c.clause, "status": st,
                          "checks": nodes})
    tests = {k: sum(1 for node, v in outcomes.items()
                    if v == k and not node.startswith(("fuzz::", "bench::")))
             for k in ("passed", "failed", "skipped")}  # pytest's; campaigns are counted apart
    return {"schema": 2, "run_id": run_id, "mode": "quick" if quick else "full", "seed": seed,
            "injected_fault": fault, "totals": totals, "tests": tests, "contracts": contracts}


def _print_table(summary: Dict[str, Any]) -> None:
    table = Table(title=f"contracts ({summary['mode']} run {summary['run_id']})")
    for col in ("contract", "section", "status", "checks"):
        table.add_column(col)
    colors = {"passed": "green", "failed": "red", "unproven": "yellow"}
    for c in summary["contracts"]:
        table.add_row(c["id"], c["section"], f"[{colors[c['status']]}]{c['status']}[/]",
                      str(len(c["checks"])))
    Console().print(table)
    print(f"totals: {summary['totals']}  tests: {summary['tests']}")
