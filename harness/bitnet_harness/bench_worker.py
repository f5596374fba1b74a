"""One inference benchmark in a fresh process (so load time and peak RSS are its own).

    python -m bitnet_harness.bench_worker {bitnet,llama.cpp} MODEL [--threads T]
        [--prompt N] [--decode N] [--activation-quant none|peer]

Prints one JSON line: load_s, prompt_tps (N prompt tokens in one batch), decode_tps (N
tokens one at a time, greedy), peak_rss_mb. Token ids are fixed (not tokenized text) so both
implementations evaluate exactly the same sequence.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np


def _prompt_ids(n_vocab: int, n: int) -> List[int]:
    rng = np.random.default_rng(0)
    return [int(t) for t in rng.integers(100, min(n_vocab, 30000), size=n)]


def run_bitnet(model: str, threads: int, n_prompt: int, n_decode: int,
               activation_quant: str) -> Dict[str, float]:
    import os

    os.environ.setdefault("BITNET_THREADS", str(threads))
    from bitnet.model import Context, Model

    start = time.perf_counter()
    m = Model.load(model, activation_quant=activation_quant)
    ctx = Context(m, n_ctx=n_prompt + n_decode + 8, n_batch=max(n_prompt, 1))
    load_s = time.perf_counter() - start
    ids = _prompt_ids(m.hparams.n_vocab, n_prompt)
    start = time.perf_counter()
    logits = ctx.eval(ids, all_logits=False)
    prompt_s = time.perf_counter() - start
    tok = int(np.argmax(logits[-1]))
    start = time.perf_counter()
    for _ in range(n_decode):
        tok = int(np.argmax(ctx.eval([tok], all_logits=False)[-1]))
    decode_s = time.perf_counter() - start
    return {"load_s": load_s, "prompt_tps": n_prompt / prompt_s, "decode_tps": n_decode / decode_s}


def run_llamacpp(model: str, threads: int, n_prompt: int, n_decode: int) -> Dict[str, float]:
    import llama_cpp

    start = time.perf_counter()
    llm = llama_cpp.Llama(model, n_ctx=n_prompt + n_decode + 8, n_batch=max(n_prompt, 1),
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    load_s = time.perf_counter() - start
    n_vocab = llm.n_vocab()

    def last_argmax() -> int:  # Llama.eval keeps no scores without logits_all: read the C buffer
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,))))

    ids = _prompt_ids(n_vocab, n_prompt)
    start = time.perf_counter()
    llm.eval(ids)
    prompt_s = time.perf_counter() - start
    tok = last_argmax()
    start = time.perf_counter()
    for _ in range(n_decode):
        llm.eval([tok])
        tok = last_argmax()
    decode_s = time.perf_counter() - start
    return {"load_s": load_s, "prompt_tps": n_prompt / prompt_s, "decode_tps": n_decode / decode_s}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench_worker")
    p.add_argument("impl", choices=["bitnet", "llama.cpp"])
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--decode", type=int, default=32)
    p.add_argument("--activation-quant", default="peer", choices=["none", "peer"])
    a = p.parse_args(argv)
    if a.impl == "bitnet":
        out = run_bitnet(a.model, a.threads, a.prompt, a.decode, a.activation_quant)
    else:
        out = run_llamacpp(a.model, a.threads, a.prompt, a.decode)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
