"""`bitnet-compat bench`: speed measured against llama.cpp in the same run, printed as ratios.

    load      open SmolLM2 and index its tensors: bitnet.gguf vs gguf-py's GGUFReader vs
              llama.cpp (llama-cpp-python, vocab_only=True, which also parses every KV)
    tokenize  MB/s on a real mixed corpus (English prose and source code from the fetched
              llama.cpp sources, CJK from CPython's cjkencodings samples): bitnet.tokenizers
              vs llama.cpp for gpt-2, llama-bpe and llama-spm, and cl100k vs tiktoken
    matmul    GFLOP/s of the C kernels per type and ISA vs numpy (bitnet_kernels.bench)
    quantize  peak memory and time of `bitnet quantize` on a bench-sized model, against its
              largest tensor (the contract: under 1.5x it plus the output buffers)
    speculative  prompt-lookup speculative decoding vs plain greedy decoding, ours and
              llama-cpp-python's (bitnet_harness.bench_speculative)
    serve     our server vs llama-cpp-python's: aggregate tokens/s and p50/p95 time to first
              token at 1, 4 and 16 concurrent streaming clients (bitnet_harness.bench_serve)
    decode    the user path: bitnet.llama_compat.Llama with default settings vs
              llama_cpp.Llama (bitnet.model.Context as a second row) at 1 and 2 threads,
              constructor, 128-token prompt, 64 greedy tokens, decode GB/s beside the
              memory's; SmolLM2 Q4_1 and synthetic ternary models (bitnet_harness.bench_decode)

Benchmarks are never tests: nothing here asserts a time. The performance contracts read
their results (`bench_outcomes`); `python -m bitnet_harness.bench_decode docs` writes the decode
table of a run into docs/COMPATIBILITY.md.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from bitnet_harness.corpora import CL100K, SMOLLM2, corpus_path


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of `repeat` calls, in seconds."""
    samples: List[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_load(repeat: int = 5) -> Dict[str, float]:
    path = corpus_path(SMOLLM2)

    def ours() -> object:
        from bitnet.gguf import load

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gf = load(path)
        n = len(gf.tensors)
        gf.close()
        return n

    def gguf_py() -> object:
        import gguf

        return len(gguf.GGUFReader(path).tensors)

    def llama_cpp_vocab_only() -> object:
        import llama_cpp

        llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
        n = llm.n_vocab()
        llm.close()
        return n

    results = {"bitnet.gguf": _time(ours, repeat),
               "gguf-py GGUFReader": _time(gguf_py, max(1, repeat // 2)),
               "llama.cpp vocab_only": _time(llama_cpp_vocab_only, repeat)}
    return results


def mixed_corpus(target_bytes: int = 1 << 20) -> bytes:
    """About `target_bytes` of real text: prose, code and CJK in equal thirds (repeated)."""
    import sysconfig

    root = corpus_path("text")
    prose = b"\n".join(p.read_bytes() for p in sorted((root / "prose").iterdir()))
    code = b"\n".join(p.read_bytes() for p in sorted((root / "code").iterdir()))
    cjk_dir = Path(sysconfig.get_paths()["stdlib"]) / "test" / "cjkencodings"
    cjk = b"\n".join(p.read_bytes() for p in sorted(cjk_dir.glob("*-utf8.txt"))) \
        if cjk_dir.is_dir() else b""
    parts = [t.decode("utf-8") for t in (prose, code, cjk) if t]
    share = target_bytes // len(parts)  # in bytes; cut on character boundaries
    out = []
    for t in parts:
        repeated = (t * (share // len(t.encode("utf-8")) + 1)).encode("utf-8")[:share]
        out.append(repeated.decode("utf-8", errors="ignore"))
    return "\n".join(out).encode("utf-8")


def bench_tokenize(repeat: int = 3) -> Dict[str, float]:
    """MB/s per (vocabulary, implementation) on the mixed corpus."""
    import llama_cpp
    import tiktoken

    from bitnet.runtime import tokenizer_engine
    from bitnet.tokenizers import TiktokenTokenizer
    from bitnet.tokenizers import load as load_tokenizer

    text = mixed_corpus()
    mb = len(text) / 1e6
    out: Dict[str, float] = {}
    for vocab in ("gpt-2", "llama-bpe", "llama-spm"):
        path = corpus_path(f"vocab/ggml-vocab-{vocab}.gguf")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = load_tokenizer(path, engine=tokenizer_engine())
        theirs = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
        ours.tokenize(text[:1000], False, False)  # warm caches fairly for both
        out[f"{vocab} bitnet"] = mb / _time(partial(ours.tokenize, text, False, False), repeat)
        out[f"{vocab} llama.cpp"] = mb / _time(partial(theirs.tokenize, text, add_bos=False),
                                               repeat)
        theirs.close()
    cl100k = corpus_path(CL100K)
    ours_tk = load_tokenizer(cl100k, engine=tokenizer_engine())
    assert isinstance(ours_tk, TiktokenTokenizer), type(ours_tk)
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(cl100k))
    ref = tiktoken.Encoding("cl100k_base", pat_str=ours_tk.pattern, mergeable_ranks=ranks,
                            special_tokens={})
    decoded = text.decode("utf-8")
    out["cl100k bitnet"] = mb / _time(lambda: ours_tk.tokenize(text, False, False), repeat)
    out["cl100k tiktoken"] = mb / _time(lambda: ref.encode_ordinary(decoded), repeat)
    return out


def _report_matmul(as_json: bool) -> None:
    from bitnet_kernels.bench import matmul_bench

    if as_json:
        print(json.dumps(collect_bench("matmul"), indent=1))
        return
    matmul_bench()


def _report_decode(as_json: bool) -> None:
    from bitnet_harness.bench_decode import print_report

    print_report(as_json)


def _report_tokenize(as_json: bool) -> None:
    rates = bench_tokenize()
    if as_json:
        print(json.dumps({"bench": "tokenize", "MB_per_s": rates}, indent=1))
        return
    print("bench tokenize: mixed corpus, MB/s (ratio = ours / peer, same run)")
    for vocab, peer in (("gpt-2", "llama.cpp"), ("llama-bpe", "llama.cpp"),
                        ("llama-spm", "llama.cpp"), ("cl100k", "tiktoken")):
        a, b = rates[f"{vocab} bitnet"], rates[f"{vocab} {peer}"]
        print(f"  {vocab:<10} bitnet {a:7.2f}  {peer:<9} {b:7.2f}   {a / b:5.2f}x")


def _report_load(as_json: bool) -> None:
    seconds = bench_load()
    if as_json:
        print(json.dumps({"bench": "load", "seconds": seconds}, indent=1))
        return
    base = seconds["llama.cpp vocab_only"]
    print(f"bench load: {SMOLLM2} (median seconds; ratio = llama.cpp time / this time)")
    for name, t in seconds.items():
        print(f"  {name:<24} {t * 1000:9.1f} ms   {base / t:6.2f}x")


def _report_serve(as_json: bool) -> None:
    from bitnet_harness.bench_serve import bench_serve

    results = bench_serve(str(corpus_path(SMOLLM2)))
    if as_json:
        print(json.dumps({"bench": "serve", "results": results}, indent=1))
        return
    print(f"bench serve: {SMOLLM2}, streaming greedy completions, all clients at once "
          "(ours: --parallel 4; llama-cpp-python: one context)")
    for clients in results["bitnet"]:
        peer, ours = results["llama.cpp"][clients], results["bitnet"][clients]
        for impl, m in (("llama.cpp", peer), ("bitnet", ours)):
            print(f"  {clients:>2} clients  {impl:<9} {m['tokens_per_s']:7.1f} tok/s  ttft p50 "
                  f"{m['ttft_p50_s']:6.2f} s  p95 {m['ttft_p95_s']:6.2f} s  "
                  f"{m['complete_streams']:.0f}/{clients} streams complete")
        print(f"  {clients:>2} clients  ratio     {ours['tokens_per_s'] / peer['tokens_per_s']:.2f}x "
              "tokens/s")


def bench_quantize(qtype: str = "Q4_0") -> Dict[str, float]:
    """Quantize the bench-sized synthetic llama F16 file; Python-heap peak vs its largest tensor."""
    import tempfile
    import tracemalloc

    from bitnet.ggml_types import tensor_nbytes
    from bitnet.gguf import parse
    from bitnet.tools.quantize import quantize_file
    from bitnet_harness.synthetic import synthetic_path

    src = synthetic_path("llama-f16", size="bench")
    gf = parse(src)
    largest = max(gf.tensors.values(), key=lambda t: t.n_elements)
    out_type = 2 if qtype == "Q4_0" else 8  # the largest tensor's output buffer
    with tempfile.TemporaryDirectory() as tmp:
        tracemalloc.start()
        start = time.perf_counter()
        quantize_file(src, Path(tmp) / "out.gguf", qtype)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    f32_bytes = largest.n_elements * 4  # the largest tensor dequantized to float32
    out_bytes = tensor_nbytes(out_type, largest.n_elements)
    return {"file_mb": src.stat().st_size / 2**20, "seconds": seconds, "peak_mb": peak / 2**20,
            "largest_tensor_f32_mb": f32_bytes / 2**20, "largest_output_mb": out_bytes / 2**20,
            "peak_over_largest_plus_output": peak / (f32_bytes + out_bytes)}


def _report_quantize(as_json: bool) -> None:
    r = bench_quantize()
    if as_json:
        print(json.dumps({"bench": "quantize", "results": r}, indent=1))
        return
    print(f"bench quantize: bench-size synthetic llama F16 ({r['file_mb']:.0f} MB) -> Q4_0 in "
          f"{r['seconds']:.1f} s")
    print(f"  peak Python-heap memory {r['peak_mb']:.0f} MB; largest tensor as f32 "
          f"{r['largest_tensor_f32_mb']:.0f} MB + its output {r['largest_output_mb']:.0f} MB: "
          f"{r['peak_over_largest_plus_output']:.2f}x (target < 1.5x)")


def _report_speculative(as_json: bool) -> None:
    from bitnet_harness.bench_speculative import print_report

    print_report(as_json)


BENCHES: Dict[str, Callable[[bool], None]] = {
    "speculative": _report_speculative,
    "quantize": _report_quantize,
    "serve": _report_serve,
    "load": _report_load,
    "tokenize": _report_tokenize,
    "matmul": _report_matmul,
    "decode": _report_decode,
}


def collect_bench(what: str, **options: Any) -> Dict[str, Any]:
    """One benchmark family's results as the `--json` object ({"bench": what, ...}); options
    go to its bench_* function (e.g. repeat=1; matmul: types, shapes, isas)."""
    if what == "load":
        return {"bench": "load", "seconds": bench_load(**options)}
    if what == "tokenize":
        return {"bench": "tokenize", "MB_per_s": bench_tokenize(**options)}
    if what == "decode":
        from bitnet_harness.bench_decode import bench_decode

        return {"bench": "decode", **bench_decode(**options)}
    if what == "quantize":
        return {"bench": "quantize", "results": bench_quantize(**options)}
    if what == "serve":
        from bitnet_harness.bench_serve import bench_serve

        return {"bench": "serve", "results": bench_serve(str(corpus_path(SMOLLM2)), **options)}
    if what == "speculative":
        from bitnet_harness.bench_speculative import collect

        return collect(**options)
    if what == "matmul":
        import contextlib
        import sys

        from bitnet_kernels.bench import matmul_bench

        with contextlib.redirect_stdout(sys.stderr):  # its table; the JSON goes to stdout
            rows = matmul_bench(**options)
        return {"bench": "matmul", "GFLOP_per_s": rows}
    raise ValueError(f"unknown benchmark {what!r}; known: {', '.join(BENCHES)}")


# the performance contracts' evidence: pseudo check ids the runner adds to its outcomes
PERF_CHECKS = {"decode": "bench::decode", "constructor": "bench::constructor", "load": "bench::load",
               "tokenize": "bench::tokenize", "matmul": "bench::matmul"}


def _verdict(ratios: List[float]) -> Optional[str]:
    return None if not ratios else "passed" if all(r >= 1.0 for r in ratios) else "failed"


def bench_outcomes(bench: Dict[str, Any]) -> Dict[str, str]:
    """{check id: "passed" | "failed"} from a run's benchmark results ({what: result}):
    bench::decode  every prompt and decode tokens/s of `Llama` >= llama_cpp.Llama's (all
                   cases and thread counts of `bench decode`);
    bench::constructor  every `Llama(...)` constructor at least as fast as llama-cpp-python's;
    bench::load    opening a model at least as fast as llama.cpp's vocab-only load;
    bench::tokenize  every vocabulary's MB/s >= its peer's (llama.cpp, tiktoken);
    bench::matmul  the best SIMD variant beats the scalar one on every type and shape.
    A family absent or failed to run gives no check (its contract stays unproven)."""
    out: Dict[str, Optional[str]] = {}
    decode = bench.get("decode", {})
    if "results" in decode:
        from bitnet_harness.bench_decode import decode_rows

        rows = [r for r in decode_rows(decode) if r["impl"] == "bitnet"]
        out["decode"] = _verdict([r[k] for r in rows for k in ("prompt_ratio", "decode_ratio")])
        out["constructor"] = _verdict([r["load_ratio"] for r in rows])
    load = bench.get("load", {}).get("seconds")
    if load:
        out["load"] = _verdict([load["llama.cpp vocab_only"] / load["bitnet.gguf"]])
    rates = bench.get("tokenize", {}).get("MB_per_s")
    if rates:
        from bitnet_harness.report import bench_ratios

        out["tokenize"] = _verdict([r["ratio"] for r in bench_ratios(bench["tokenize"])])
    matmul = bench.get("matmul", {}).get("GFLOP_per_s")
    if matmul:
        speedups = []
        for row in matmul:
            simd = [v for k, v in row.items() if k not in ("type", "N", "D", "T", "numpy", "scalar")]
            if simd and row.get("scalar"):
                speedups.append(max(simd) / row["scalar"])
        out["matmul"] = None if not speedups else "passed" if all(r > 1.0 for r in speedups) else "failed"
    return {PERF_CHECKS[k]: v for k, v in out.items() if v is not None}


def apply_bench_outcomes(summary: Dict[str, Any]) -> None:
    """Recompute, in a run's summary, the status of the contracts proven by benchmarks alone
    (their checks all bench::*) from its "bench" results, and the totals."""
    from bitnet_harness.contracts import CONTRACTS, status

    outcomes = bench_outcomes(summary.get("bench", {}))
    by_id = {c.id: c for c in CONTRACTS}
    totals = {"passed": 0, "failed": 0, "unproven": 0}
    for entry in summary.get("contracts", []):
        c = by_id.get(entry["id"])
        if c is not None and c.checks and all(chk.startswith("bench::") for chk in c.checks):
            entry["status"], entry["checks"] = status(c, outcomes)
        totals[entry["status"]] += 1
    if "contracts" in summary:
        summary["totals"] = totals


def save_bench(report_dir: Path, result: Dict[str, Any]) -> None:
    """Store a result in a run's summary.json ("bench"; created if absent), update the
    performance contracts it proves, and re-render the run's report.md / index.html."""
    from bitnet_harness.report import write_reports

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "summary.json"
    summary: Dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    summary.setdefault("bench", {})[result["bench"]] = result
    apply_bench_outcomes(summary)
    from bitnet.safe_write import write_text

    write_text(path, json.dumps(summary, indent=1))
    if "contracts" in summary:
        write_reports(report_dir, summary)


def run_bench(what: str, as_json: bool = False, report_dir: Optional[str] = None) -> int:
    """Run one benchmark family and print results with ratios against the peer; with
    report_dir, also store them in that run's summary.json and re-render its report."""
    if report_dir is None:
        BENCHES[what](as_json)
        return 0
    result = collect_bench(what)
    save_bench(Path(report_dir), result)
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        from bitnet_harness.report import bench_ratios

        print(f"bench {what} (ratio > 1: ours better), stored in {report_dir}/summary.json")
        for r in bench_ratios(result):
            print(f"  {r['label']:<44} {r['ratio']:6.2f}x  ({r['detail']})")
    return 0
