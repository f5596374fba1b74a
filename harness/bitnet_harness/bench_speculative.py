"""`bitnet-compat bench speculative`: prompt-lookup speculative decoding vs plain decoding.

SmolLM2-135M-Instruct is asked (chat template) to repeat a paragraph word for word -- the
case prompt lookup is made for: the reply copies the prompt, so most proposals are accepted.
Each implementation (bitnet.llama_compat, and llama-cpp-python as the peer) generates the same
greedy reply twice per round, without and with `LlamaPromptLookupDecoding(num_pred_tokens=10)`,
for `rounds` alternating rounds in one process; the best round counts. Reported per
implementation and mode: decode tokens/s (from the first generated token to the last, so the
prompt's evaluation, the same in both modes, is left out), total seconds, and whether the
speculative reply equals the plain one token for token (it must: greedy verification).

Nothing here asserts a time; tests/test_speculative.py checks the equality and counts decode
calls.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a "
    "single step. All that glitters is not gold. Where there is a will, there is a way. Actions "
    "speak louder than words. Practice makes perfect. Knowledge is power. Time is money. Better "
    "late than never."
)
MESSAGES = [{"role": "user", "content": "Repeat the following text word for word, without any change:\n\n"
             + PARAGRAPH}]


def _generate(llm: Any, max_tokens: int) -> Dict[str, Any]:
    """One greedy chat reply: its tokens, decode tokens/s after the first token, total s."""
    prompt, _ = _chat_prompt(llm)
    start = time.perf_counter()
    first: Optional[float] = None
    tokens: List[int] = []
    for token in llm.generate(prompt, temp=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0):
        if first is None:
            first = time.perf_counter()
        if llm._token_eos == token or len(tokens) >= max_tokens:
            break
        tokens.append(int(token))
    end = time.perf_counter()
    decode_s = end - (first if first is not None else end)
    return {"tokens": tokens, "total_s": end - start,
            "decode_tps": (len(tokens) - 1) / decode_s if decode_s > 0 and len(tokens) > 1 else 0.0}


def _chat_prompt(llm: Any) -> Any:
    """The prompt token ids of MESSAGES under the model's chat template (either package)."""
    from bitnet.llama_compat import llama_chat_format

    template = llm.metadata["tokenizer.chat_template"]
    eos, bos = llm.token_eos(), llm.token_bos()
    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=llm.detokenize([eos], special=True).decode("utf-8"),
        bos_token=llm.detokenize([bos], special=True).decode("utf-8") if bos != -1 else "",
    )
    result = formatter(messages=MESSAGES)
    return llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True), result


def bench_speculative(model_path: str, max_tokens: int = 64, rounds: int = 3,
                      threads: int = 2) -> Dict[str, Dict[str, Any]]:
    """{implementation: {"plain": {...}, "speculative": {...}, "identical": bool}}."""
    makers: Dict[str, Callable[[Any], Any]] = {}
    from bitnet.llama_compat import Llama
    from bitnet.llama_compat.llama_speculative import LlamaPromptLookupDecoding

    makers["bitnet"] = lambda draft: Llama(model_path, n_ctx=1024, n_threads=threads, verbose=False,
                                           draft_model=draft)
    try:
        import llama_cpp
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding as PeerLookup

        makers["llama.cpp"] = lambda draft: llama_cpp.Llama(
            model_path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False,
            draft_model=None if draft is None else PeerLookup(num_pred_tokens=10))
    except ImportError:
        pass
    results: Dict[str, Dict[str, Any]] = {}
    for impl, make in makers.items():
        best: Dict[str, Dict[str, Any]] = {}
        for _ in range(rounds):
            for mode in ("plain", "speculative"):
                llm = make(None if mode == "plain" else LlamaPromptLookupDecoding(num_pred_tokens=10))
                run = _generate(llm, max_tokens)
                llm.close()
                if mode not in best or run["decode_tps"] > best[mode]["decode_tps"]:
                    best[mode] = run
        results[impl] = {
            "plain": {k: v for k, v in best["plain"].items() if k != "tokens"},
            "speculative": {k: v for k, v in best["speculative"].items() if k != "tokens"},
            "n_tokens": len(best["plain"]["tokens"]),
            "identical": best["plain"]["tokens"] == best["speculative"]["tokens"],
        }
    return results


def report(results: Dict[str, Dict[str, Any]]) -> None:
    """Print the table: per implementation, plain vs speculative and the speed-up."""
    print("bench speculative: SmolLM2 repeats a paragraph (greedy, prompt lookup, 10 proposals)")
    for impl, r in results.items():
        plain, spec = r["plain"], r["speculative"]
        speedup = spec["decode_tps"] / plain["decode_tps"] if plain["decode_tps"] else float("nan")
        print(f"  {impl:<10} plain {plain['decode_tps']:7.1f} tok/s ({plain['total_s']:5.2f} s)  "
              f"speculative {spec['decode_tps']:7.1f} tok/s ({spec['total_s']:5.2f} s)  "
              f"{speedup:5.2f}x  {r['n_tokens']} tokens, identical: {r['identical']}")


def collect(**options: Any) -> Dict[str, Any]:
    """The `--json` object of this benchmark (options go to bench_speculative)."""
    from bitnet_harness.corpora import SMOLLM2, corpus_path

    return {"bench": "speculative", "results": bench_speculative(str(corpus_path(SMOLLM2)), **options)}


def print_report(as_json: bool) -> None:
    """`bitnet-compat bench speculative [--json]`."""
    import json

    result = collect()
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        report(result["results"])
