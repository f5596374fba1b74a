"""`bitnet-compat run`: run the checks, map them onto the contract registry, write a report.

The checks are the project's pytest suite (so the test suite and the runner share one
registry); `--quick` skips tests marked `slow`. Reports go to `reports/<run-id>/`:
`summary.json` (schema below), `report.md`, a self-contained `index.html`, `junit.xml`;
`reports/latest` points to the newest.

summary.json schema (version 1):
    {"schema": 1, "run_id": str, "mode": "quick"|"full", "seed": int,
     "injected_fault": str | null, "totals": {"passed": n, "failed": n, "unproven": n},
     "tests": {"passed": n, "failed": n, "skipped": n},
     "contracts": [{"id", "section", "clause", "status", "checks": [node ids]}]}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rich.console import Console
from rich.table import Table

from .contracts import CONTRACTS, status
from .report import write_reports

REPO = Path(__file__).resolve().parent.parent


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


def run(quick: bool = True, report_dir: Optional[str] = None, seed: int = 0,
        workers: str = "auto", tests: Sequence[str] = (), inject_fault: Optional[str] = None,
        quiet: bool = False, impls: Sequence[str] = IMPLS) -> int:
    """Run the suite, write the report; non-zero exit when any contract failed."""
    if not (REPO / "tests").is_dir():
        print("bitnet-compat run needs a source checkout (its tests/ folder); "
              f"none at {REPO}", file=sys.stderr)
        return 2
    run_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(report_dir) if report_dir else REPO / "reports" / run_id
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
           "-o", "junit_family=xunit1", "-p", "bitnet.harness.pytest_faults", *tests]
    if workers != "0":
        cmd += ["-n", workers]
    args, env_updates = selection(quick, impls, seed)
    cmd += args
    env = dict(os.environ, **env_updates)
    env.pop("BITNET_INJECT_FAULT", None)
    if inject_fault:
        env["BITNET_INJECT_FAULT"] = inject_fault
    proc = subprocess.run(cmd, cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL if quiet else None)
    outcomes = _outcomes(junit)
    summary = _summary(run_id, quick, seed, outcomes, inject_fault)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
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


def _summary(run_id: str, quick: bool, seed: int, outcomes: Dict[str, str],
             fault: Optional[str] = None) -> Dict[str, Any]:
    contracts = []
    totals = {"passed": 0, "failed": 0, "unproven": 0}
    for c in CONTRACTS:
        st, nodes = status(c, outcomes)
        totals[st] += 1
        contracts.append({"id": c.id, "section": c.section, "clause": c.clause, "status": st,
                          "checks": nodes})
    tests = {k: sum(1 for v in outcomes.values() if v == k) for k in ("passed", "failed", "skipped")}
    return {"schema": 1, "run_id": run_id, "mode": "quick" if quick else "full", "seed": seed,
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
