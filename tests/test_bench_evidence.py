"""The performance contracts read benchmark results: bench_outcomes' verdicts, the contract
statuses a stored `bench` result sets in a run's summary, the decode table of the docs, and
the decode worker's Model/Context row. Times are never asserted: the results here are
hand-made dicts of the `bench --json` shape, or a real worker run whose figures only have
to be positive."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from bitnet_harness.bench import apply_bench_outcomes, bench_outcomes
from bitnet_harness.bench_decode import PERF_BEGIN, PERF_END, decode_rows, update_performance_doc


def _m(prompt: float, decode: float, load: float) -> Dict[str, float]:
    return {"prompt_tps": prompt, "decode_tps": decode, "load_s": load, "peak_rss_mb": 100.0, "runs": 3.0}


def _decode(ours: Dict[str, float], theirs: Dict[str, float]) -> Dict[str, Any]:
    case = "m, 2 threads"
    return {"bench": "decode", "results": {case: {"llama.cpp": theirs, "bitnet": ours,
                                                  "bitnet-context": _m(1.0, 1.0, 9.0)}},
            "cases": {case: {"weight_bytes_per_token": 10**9, "threads": 2}},
            "machine": {"cpu": "cpu", "cores": 2, "flags": ["avx2"], "loadavg": [0.1, 0.1, 0.1],
                        "kernels_isa": "avx2", "llama_cpp_python": "0.3.36"},
            "read_GBps": {"1": 10.0, "2": 12.0}, "busy": False, "rounds": 3}


def test_decode_verdict_needs_every_prompt_and_decode_ratio() -> None:
    """Only the `Llama` row counts (the Model/Context row's slow figures do not fail it)."""
    assert bench_outcomes({"decode": _decode(_m(2, 2, 1), _m(1, 1, 2))}) == {
        "bench::decode": "passed", "bench::constructor": "passed"}
    assert bench_outcomes({"decode": _decode(_m(2, 0.99, 1), _m(1, 1, 0.5))}) == {
        "bench::decode": "failed", "bench::constructor": "failed"}
    rows = decode_rows(_decode(_m(2, 3, 1), _m(1, 1, 2)))
    ours = next(r for r in rows if r["impl"] == "bitnet")
    assert (ours["prompt_ratio"], ours["decode_ratio"], ours["load_ratio"]) == (2.0, 3.0, 2.0)
    assert ours["decode_GBps"] == 3.0  # 1 GB of weights per token at 3 tokens/s


def test_other_families_and_missing_results() -> None:
    assert bench_outcomes({}) == {}
    assert bench_outcomes({"decode": {"bench": "decode", "error": "RuntimeError: x"}}) == {}
    load = {"bench": "load", "seconds": {"bitnet.gguf": 0.1, "gguf-py GGUFReader": 1.0,
                                         "llama.cpp vocab_only": 0.2}}
    tok = {"bench": "tokenize", "MB_per_s": {"gpt-2 bitnet": 3.0, "gpt-2 llama.cpp": 1.0,
                                             "cl100k bitnet": 1.0, "cl100k tiktoken": 4.0}}
    row: Dict[str, Any] = {"type": "Q4_0", "N": 8, "D": 32, "T": 1, "scalar": 1.0, "avx2": 3.0, "numpy": 5.0}
    mm = {"bench": "matmul", "GFLOP_per_s": [row]}
    got = bench_outcomes({"load": load, "tokenize": tok, "matmul": mm})
    assert got == {"bench::load": "passed", "bench::tokenize": "failed", "bench::matmul": "passed"}
    row["avx2"] = 0.5
    assert bench_outcomes({"matmul": mm}) == {"bench::matmul": "failed"}
    row.pop("avx2")  # a scalar-only machine proves nothing about SIMD
    assert bench_outcomes({"matmul": mm}) == {}


def test_stored_bench_sets_the_perf_contracts(tmp_path: Path) -> None:
    from bitnet_harness.runner import _summary

    summary = _summary("run", True, 0, {})
    statuses = {c["id"]: c["status"] for c in summary["contracts"]}
    assert statuses["perf.no-regression"] == statuses["perf.loading"] == "unproven"
    summary["bench"] = {"decode": _decode(_m(2, 2, 2.0), _m(1, 1, 1.0))}
    apply_bench_outcomes(summary)
    statuses = {c["id"]: c["status"] for c in summary["contracts"]}
    assert statuses["perf.no-regression"] == "passed"
    assert statuses["perf.loading"] == "failed"  # the constructor is slower
    assert statuses["perf.tokenization"] == "unproven"
    assert sum(summary["totals"].values()) == len(summary["contracts"])


def test_docs_table_is_replaced_between_its_markers(tmp_path: Path) -> None:
    doc = tmp_path / "COMPATIBILITY.md"
    doc.write_text(f"# x\n\n{PERF_BEGIN}\nold\n{PERF_END}\n\ntail\n", encoding="utf-8")
    update_performance_doc(doc, _decode(_m(2, 3, 1), _m(1, 1, 2)), "run `r1`")
    text = doc.read_text(encoding="utf-8")
    assert "old" not in text and text.endswith("\n\ntail\n") and "From run `r1`: cpu, 2 cores" in text
    row = "| m, 2 threads | bitnet Llama | 2.0 | 3.0 | 3.00 | 1000 ms | 100 MB | 2.00x / 3.00x / 2.00x |"
    assert row in text
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        update_performance_doc(bare, _decode(_m(1, 1, 1), _m(1, 1, 1)), "run")


def test_decode_worker_model_context_row() -> None:
    """The second row of `bench decode` (bitnet.model.Context under the runtime's numerics)."""
    from bitnet_harness.synthetic import synthetic_path

    model = synthetic_path("llama-q8_0")
    res = subprocess.run([sys.executable, "-m", "bitnet_harness.bench_worker", "bitnet-context",
                          str(model), "--threads", "1", "--prompt", "4", "--decode", "2"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(metrics) == {"load_s", "prompt_tps", "decode_tps", "peak_rss_mb"}
    assert all(v > 0 for v in metrics.values())


def test_busy_machine_is_seen() -> None:
    """other_cpu_use counts another process's CPU time: a busy loop in a second process
    shows as well above BUSY_CORE_SHARE of a core."""
    from bitnet_harness.bench_decode import BUSY_CORE_SHARE, other_cpu_use

    loop = "import time\nt = time.time() + 5\nwhile time.time() < t: pass"
    spin = subprocess.Popen([sys.executable, "-c", loop])
    try:
        time.sleep(0.5)
        assert other_cpu_use(1.0) > 2 * BUSY_CORE_SHARE
    finally:
        spin.kill()
        spin.wait()
