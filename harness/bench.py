"""`bitnet-compat bench`: speed measured against llama.cpp in the same run, printed as ratios.

    load   open SmolLM2 and index its tensors: bitnet.gguf vs gguf-py's GGUFReader vs
           llama.cpp (llama-cpp-python, vocab_only=True, which also parses every KV)

Benchmarks are never tests: nothing here asserts a time.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from typing import Callable, Dict, List

from .corpora import SMOLLM2, corpus_path


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
        from ..gguf import load

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


def run_bench(what: str, as_json: bool = False) -> int:
    """Run one benchmark family and print times with ratios against llama.cpp."""
    results = bench_load()
    if as_json:
        print(json.dumps({"bench": what, "seconds": results}, indent=1))
        return 0
    base = results["llama.cpp vocab_only"]
    print(f"bench {what}: {SMOLLM2} (median seconds; ratio = llama.cpp time / this time)")
    for name, seconds in results.items():
        print(f"  {name:<24} {seconds * 1000:9.1f} ms   {base / seconds:6.2f}x")
    return 0
