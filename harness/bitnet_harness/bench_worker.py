"""One inference benchmark in a fresh process (so load time and peak RSS are its own).

    python -m bitnet_harness.bench_worker IMPL MODEL [--threads T] [--prompt N] [--decode N]

IMPL: "bitnet" (`bitnet.llama_compat.Llama` with default settings), "llama.cpp"
(`llama_cpp.Llama`, llama-cpp-python) or "bitnet-context" (`bitnet.model.Context` over
`bitnet.runtime.load_model`, the layer under Llama). Both Llama classes run the user path:
the constructor (`load_s`), then `Llama.generate(prompt, temp=0)` as create_completion drives
it: the first token comes after the prompt's single eval (`prompt_tps`: N prompt tokens over
that time), each further one after a one-token eval and a sample (`decode_tps`). Token ids
are fixed (not tokenized text) so every implementation evaluates the same sequence.
T threads for one token and for a batch (`n_threads`, `n_threads_batch`; for this engine
also BITNET_THREADS). Prints one JSON line: load_s, prompt_tps, decode_tps, peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Dict, Generator, List, Optional, Sequence

import numpy as np


def prompt_ids(n_vocab: int, n: int) -> List[int]:
    """The fixed prompt: n ids drawn with seed 0 (clear of the special tokens at the start)."""
    rng = np.random.default_rng(0)
    return [int(t) for t in rng.integers(100, min(n_vocab, 30000), size=n)]


def _time_generate(llm: Any, n_prompt: int, n_decode: int) -> Dict[str, float]:
    """prompt_tps / decode_tps of `llm.generate` (greedy) after the constructor."""
    ids = prompt_ids(llm.n_vocab(), n_prompt)
    start = time.perf_counter()
    gen: Generator[int, Any, None] = llm.generate(ids, temp=0.0)
    next(gen)
    prompt_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n_decode):
        next(gen)
    decode_s = time.perf_counter() - start
    gen.close()
    return {"prompt_tps": n_prompt / prompt_s, "decode_tps": n_decode / decode_s}


def run_llama(impl: str, model: str, threads: int, n_prompt: int, n_decode: int) -> Dict[str, float]:
    """The Llama class of `impl` ("bitnet" or "llama.cpp"), default settings but the threads."""
    import importlib

    module = "bitnet.llama_compat" if impl == "bitnet" else "llama_cpp"
    llama_class: Any = importlib.import_module(module).Llama
    start = time.perf_counter()
    llm = llama_class(model, n_threads=threads, n_threads_batch=threads, verbose=False)
    load_s = time.perf_counter() - start
    out = _time_generate(llm, n_prompt, n_decode)
    out["load_s"] = load_s
    llm.close()
    return out


def run_context(model: str, threads: int, n_prompt: int, n_decode: int) -> Dict[str, float]:
    """bitnet.model.Context with the runtime's default numerics, greedy argmax decoding."""
    from bitnet import runtime
    from bitnet.model import Context

    start = time.perf_counter()
    m = runtime.load_model(model, n_threads=threads, n_threads_batch=threads)
    ctx = Context(m, n_ctx=512, n_batch=512)
    load_s = time.perf_counter() - start
    ids = prompt_ids(m.hparams.n_vocab, n_prompt)
    start = time.perf_counter()
    tok = int(np.argmax(ctx.eval(ids, all_logits=False)[-1]))
    prompt_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n_decode):
        tok = int(np.argmax(ctx.eval([tok], all_logits=False)[-1]))
    decode_s = time.perf_counter() - start
    return {"load_s": load_s, "prompt_tps": n_prompt / prompt_s, "decode_tps": n_decode / decode_s}


IMPLS = ("bitnet", "llama.cpp", "bitnet-context")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench_worker")
    p.add_argument("impl", choices=IMPLS)
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--decode", type=int, default=64)
    a = p.parse_args(argv)
    os.environ["BITNET_THREADS"] = str(a.threads)
    if a.impl == "bitnet-context":
        out = run_context(a.model, a.threads, a.prompt, a.decode)
    else:
        out = run_llama(a.impl, a.model, a.threads, a.prompt, a.decode)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
