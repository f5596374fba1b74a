"""`bitnet-compat bench decode`: the user path against llama-cpp-python.

`bitnet.llama_compat.Llama` with default settings against `llama_cpp.Llama`, and
`bitnet.model.Context` (the layer under Llama) as a second row, at 1 and 2 threads: the
constructor, a 128-token prompt, 64 greedy tokens through `generate` (bench_worker), peak
RSS; on SmolLM2-135M Q4_1, synthetic bitnet TQ2_0 / TQ1_0 / I2_S models 1536 wide with a 32k
vocabulary (I2_S has no llama.cpp peer: llama.cpp runs the TQ2_0 file, the same ternary
weights) and the bench-size TQ2_0 with a 128k vocabulary. Every run is a fresh process; the
implementations alternate, best of 3. Beside the figures: the CPU model and flags, the load
average and the other processes' CPU use before each case (a busy machine is flagged:
llama.cpp's spinning threads collapse when another process takes a core, which inflates our
ratios), and the decode GB/s of
weights read next to the memory read bandwidth measured with the same kind of loads.
`decode_table` renders a result as the docs' performance table.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bitnet_harness.corpora import SMOLLM2, corpus_path

# (label, our model, llama.cpp's model when it cannot load ours): models as corpus names or
# (synthetic kind, size)
DECODE_CASES: Tuple[Tuple[str, Any, Any], ...] = (
    ("SmolLM2-135M Q4_1", SMOLLM2, None),
    ("bitnet TQ2_0 1536-wide, 32k vocab", ("bitnet-tq2_0", "wide"), None),
    ("bitnet TQ1_0 1536-wide, 32k vocab", ("bitnet-tq1_0", "wide"), None),
    ("bitnet I2_S 1536-wide, 32k vocab (llama.cpp: the TQ2_0 file)", ("bitnet-i2_s", "wide"),
     ("bitnet-tq2_0", "wide")),
    ("bitnet TQ2_0 bench size, 128k vocab", ("bitnet-tq2_0", "bench"), None),
)
DECODE_THREADS = (1, 2)
DECODE_IMPLS = ("llama.cpp", "bitnet", "bitnet-context")  # bench_worker's IMPL names
# the machine counts as busy when, with none of the benchmark's processes running, other
# processes keep more than this share of one core busy (llama.cpp's spinning threads then
# lose far more than ours). The load average cannot tell: the benchmark's own runs raise it.
BUSY_CORE_SHARE = 0.10


def other_cpu_use(seconds: float = 1.0) -> float:
    """Cores' worth of CPU time used by every process over `seconds` (/proc/stat), sampled
    while the benchmark runs nothing: other work on the machine. 0.0 where unreadable."""

    def busy_idle() -> Optional[Tuple[int, int]]:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]) - idle, idle

    a = busy_idle()
    time.sleep(seconds)
    b = busy_idle()
    if a is None or b is None:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (b[0] - a[0]) / ticks / seconds


def _model_path(spec: Any) -> Path:
    from bitnet_harness.synthetic import synthetic_path

    return corpus_path(spec) if isinstance(spec, str) else synthetic_path(spec[0], size=spec[1])


def weight_bytes_per_token(path: Path) -> int:
    """Bytes of the weights one decode step reads: every tensor but the embedding rows
    (token_embd counts when it is also the output matrix, i.e. no output.weight)."""
    from bitnet.gguf import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gf = load(path)
    try:
        tied = "output.weight" not in gf.tensors
        return sum(int(t.nbytes) for name, t in gf.tensors.items()
                   if name != "token_embd.weight" or tied)
    finally:
        gf.close()


def machine_info() -> Dict[str, Any]:
    """CPU model, the SIMD flags that matter here, cores, load average, kernels' ISA."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    flags: List[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                wanted = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                          "avx_vnni", "avx512_bf16", "amx_int8", "asimd", "asimddp", "i8mm")
                flags = [f for f in value.split() if f in wanted]
    except OSError:
        pass
    info: Dict[str, Any] = {"cpu": model, "flags": flags, "cores": os.cpu_count(),
                            "loadavg": list(os.getloadavg()), "python": platform.python_version()}
    try:
        import bitnet_kernels

        info["kernels_isa"] = bitnet_kernels.kernel_info().get("peer_matmul", "")
    except Exception:  # noqa: BLE001 - an unbuilt extension is reported as such
        info["kernels_isa"] = "unavailable"
    try:
        import llama_cpp

        info["llama_cpp_python"] = llama_cpp.__version__
    except ImportError:
        info["llama_cpp_python"] = "missing"
    return info


def bench_decode(threads: Sequence[int] = DECODE_THREADS, rounds: int = 3,
                 cases: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """{"results": {case: {impl: metrics}}, "cases": {case: details}, "machine": ...,
    "read_GBps": {threads: GB/s}, "busy": bool} for DECODE_CASES x `threads`.

    Each case runs `rounds` fresh processes per implementation, alternating (the order
    rotates each round, so a burst of load hits every implementation), and keeps each
    metric's best. Before each case the CPU time other processes use (1 s, nothing of
    ours running) and the load average are recorded; above BUSY_CORE_SHARE of a core the
    result is flagged busy and a warning printed (llama.cpp's spinning threads collapse when
    another process takes a core, which inflates our ratios)."""
    import os
    import sys

    from bitnet_kernels.bench import read_bandwidth

    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    details: Dict[str, Dict[str, Any]] = {}
    busy = False
    for label, ours, theirs in DECODE_CASES:
        if cases is not None and label not in cases:
            continue
        ours_path, peer_path = _model_path(ours), _model_path(theirs or ours)
        nbytes = weight_bytes_per_token(ours_path)
        for t in threads:
            case = f"{label}, {t} thread{'s' if t > 1 else ''}"
            load, others = os.getloadavg()[0], other_cpu_use()
            if others > BUSY_CORE_SHARE:
                busy = True
                print(f"bench decode: WARNING the machine is busy (other processes used {others:.2f} "
                      f"cores before {case!r}): ratios against llama.cpp are inflated", file=sys.stderr)
            runs: Dict[str, List[Dict[str, float]]] = {impl: [] for impl in DECODE_IMPLS}
            for r in range(rounds):
                for i in range(len(DECODE_IMPLS)):
                    impl = DECODE_IMPLS[(i + r) % len(DECODE_IMPLS)]
                    path = peer_path if impl == "llama.cpp" else ours_path
                    runs[impl].append(_worker(impl, str(path), t))
            results[case] = {impl: _best(r) for impl, r in runs.items()}
            details[case] = {"model": str(ours_path.name), "llama.cpp model": str(peer_path.name),
                             "threads": t, "weight_bytes_per_token": nbytes, "loadavg_before": load,
                             "other_cores_before": others}
    bandwidth = {str(t): read_bandwidth(t) for t in threads}
    return {"results": results, "cases": details, "machine": machine_info(),
            "read_GBps": bandwidth, "busy": busy, "rounds": rounds}


def _worker(impl: str, model: str, threads: int) -> Dict[str, float]:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "bitnet_harness.bench_worker", impl, model,
           "--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"{impl} on {model} failed:\n{res.stderr[-2000:]}")
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def _best(runs: List[Dict[str, float]]) -> Dict[str, float]:
    """The best of repeated runs per metric (highest throughput, lowest time and memory):
    interference from other processes only ever slows a run down."""
    best = {k: (max if k.endswith("_tps") else min)(r[k] for r in runs) for k in runs[0]}
    best["runs"] = float(len(runs))
    return best


def decode_rows(result: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per (case, implementation row): tok/s, constructor, RSS, decode GB/s, and the
    ratios against llama.cpp's row of the same case (> 1: ours faster / smaller)."""
    rows = []
    for case, per_impl in result["results"].items():
        peer = per_impl["llama.cpp"]
        nbytes = result.get("cases", {}).get(case, {}).get("weight_bytes_per_token", 0)
        for impl, m in per_impl.items():
            rows.append({"case": case, "impl": impl, **m,
                         "decode_GBps": nbytes * m["decode_tps"] / 1e9,
                         "decode_ratio": m["decode_tps"] / peer["decode_tps"],
                         "prompt_ratio": m["prompt_tps"] / peer["prompt_tps"],
                         "load_ratio": peer["load_s"] / m["load_s"]})
    return rows


IMPL_NAMES = {"llama.cpp": "llama_cpp.Llama", "bitnet": "bitnet Llama",
              "bitnet-context": "bitnet Model/Context"}


def decode_table(result: Dict[str, Any]) -> List[str]:
    """The decode benchmark as markdown table lines (ratios against llama_cpp.Llama)."""
    lines = ["| model, threads | implementation | prompt tok/s | decode tok/s | decode GB/s | "
             "constructor | peak RSS | prompt / decode / constructor vs llama.cpp |",
             "|---|---|---|---|---|---|---|---|"]
    for r in decode_rows(result):
        ratios = "" if r["impl"] == "llama.cpp" else (
            f"{r['prompt_ratio']:.2f}x / {r['decode_ratio']:.2f}x / {r['load_ratio']:.2f}x")
        lines.append(f"| {r['case']} | {IMPL_NAMES.get(r['impl'], r['impl'])} | {r['prompt_tps']:.1f} | "
                     f"{r['decode_tps']:.1f} | {r['decode_GBps']:.2f} | {r['load_s'] * 1e3:.0f} ms | "
                     f"{r['peak_rss_mb']:.0f} MB | {ratios} |")
    return lines


def print_report(as_json: bool) -> None:
    """`bitnet-compat bench decode [--json]`."""
    result = {"bench": "decode", **bench_decode()}
    if as_json:
        print(json.dumps(result, indent=1))
        return
    m = result["machine"]
    print(f"bench decode: {m['cpu']} ({m['cores']} cores; {' '.join(m['flags'])}); memory read "
          + ", ".join(f"{v:.1f} GB/s at {k} thread(s)" for k, v in result["read_GBps"].items()))
    print(f"fresh process per run, best of {result['rounds']} alternating runs; ratio = ours vs "
          "llama_cpp.Llama (> 1: faster)" + ("; MACHINE BUSY: ratios inflated" if result["busy"] else ""))
    print("\n".join(decode_table(result)))


PERF_BEGIN = "<!-- performance-table:begin (generated by `python -m bitnet_harness.bench_decode docs`) -->"
PERF_END = "<!-- performance-table:end -->"


def performance_section(result: Dict[str, Any], source: str) -> str:
    """The docs' generated decode table of one `bench decode` result, between its markers."""
    m = result["machine"]
    bw = ", ".join(f"{v:.1f} GB/s with {k} thread{'s' if k != '1' else ''}"
                   for k, v in result["read_GBps"].items())
    lines = [PERF_BEGIN, "",
             f"From {source}: {m['cpu']}, {m['cores']} cores ({' '.join(m['flags'])}); "
             f"llama-cpp-python {m['llama_cpp_python']}, kernels {m['kernels_isa']}; memory read "
             f"bandwidth {bw}; load average {', '.join(f'{x:.2f}' for x in m['loadavg'])} at the "
             f"end; best of {result['rounds']} alternating fresh-process runs."
             + (" **The machine was busy during this run: ratios against llama.cpp are inflated.**"
                if result["busy"] else ""), ""]
    lines += decode_table(result)
    lines += ["", PERF_END]
    return "\n".join(lines)


def update_performance_doc(doc: Path, result: Dict[str, Any], source: str) -> None:
    """Replace the generated decode table in `doc` (docs/COMPATIBILITY.md); the markers must
    be there (they sit in the Performance section)."""
    from bitnet.safe_write import write_text

    text = doc.read_text(encoding="utf-8")
    if PERF_BEGIN not in text or PERF_END not in text:
        raise ValueError(f"{doc} has no performance-table markers ({PERF_BEGIN!r})")
    head, rest = text.split(PERF_BEGIN, 1)
    write_text(doc, head + performance_section(result, source) + rest.split(PERF_END, 1)[1])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m bitnet_harness.bench_decode docs [--run DIR] [--output DOC]`: write the decode
    table of a run's stored `bench decode` (summary.json; default reports/latest) into
    docs/COMPATIBILITY.md."""
    import argparse

    from bitnet_harness.checkout import require_checkout

    p = argparse.ArgumentParser(prog="python -m bitnet_harness.bench_decode")
    p.add_argument("command", choices=["docs"])
    p.add_argument("--run", type=Path, default=None, help="a run's report dir (summary.json)")
    p.add_argument("--output", type=Path, default=None, help="the document to update")
    a = p.parse_args(argv)
    run, doc = a.run, a.output
    if run is None or doc is None:
        repo = require_checkout("bench_decode docs without --run and --output")
        run = run or repo / "reports" / "latest"
        doc = doc or repo / "docs" / "COMPATIBILITY.md"
    summary = json.loads((run / "summary.json").read_text())
    result = summary.get("bench", {}).get("decode")
    if not result or "results" not in result:
        raise SystemExit(f"{run}: no `bench decode` result (run `bitnet-compat bench decode --report {run}`)")
    update_performance_doc(doc, result, f"run `{summary.get('run_id', run.name)}`")
    print(f"performance table in {doc} regenerated from {run}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
