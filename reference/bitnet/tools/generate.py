"""`bitnet generate MODEL "prompt" [-n N] [--temp T] [--seed S]`: stream a continuation.

Tokenizes with bitnet.tokenizers (BOS as the vocabulary says), runs the reference engine,
samples with bitnet.sampling's llama-cpp-python chain (greedy when --temp 0), and writes
the text to stdout as tokens arrive (incomplete UTF-8 sequences are held back until the
next token completes them). Stops after N tokens, at an end-of-generation token, or when
the context is full.
"""

from __future__ import annotations

import argparse
import codecs
import sys
from typing import List, Optional, Sequence, TextIO

from bitnet.errors import BitNetError

SAMPLING_HELP = """sampling (llama-cpp-python's chain, in this order):
  --repeat-penalty divides positive logits (multiplies negative ones) of tokens seen in the
  last 64 tokens; --top-k keeps the K most likely tokens (0 = all); --top-p keeps the smallest
  set whose probabilities sum to P (1.0 = off); --min-p drops tokens less likely than
  MIN_P x the most likely one (0.0 = off); then --temp scales the logits (0 = greedy)."""


def build_parser() -> argparse.ArgumentParser:
    from bitnet.runtime import DEFAULT_NUMERICS, NUMERICS, NUMERICS_ENV

    p = argparse.ArgumentParser(prog="bitnet generate", description=__doc__.splitlines()[0],
                                epilog=SAMPLING_HELP,
                                formatter_class=_Formatter)
    p.add_argument("model", help="GGUF model file")
    p.add_argument("prompt", help="prompt text")
    p.add_argument("-n", "--n-predict", type=int, default=64, help="tokens to generate at most")
    p.add_argument("--temp", type=float, default=0.8, help="temperature; 0 = greedy")
    p.add_argument("--seed", type=int, default=None,
                   help="sampling seed (default: %(default)s = llama.cpp's fixed default seed)")
    p.add_argument("--top-k", type=int, default=40, help="keep the K most likely tokens; 0 = all")
    p.add_argument("--top-p", type=float, default=0.95,
                   help="nucleus sampling: keep the most likely tokens up to this total probability")
    p.add_argument("--min-p", type=float, default=0.05,
                   help="drop tokens less likely than MIN_P x the top token's probability")
    p.add_argument("--repeat-penalty", type=float, default=1.0,
                   help="penalty for tokens of the last 64; 1.0 = off")
    p.add_argument("-c", "--ctx-size", type=int, default=512,
                   help="context size in tokens (prompt + generated); a longer prompt is an error")
    p.add_argument("--numerics", choices=NUMERICS, default=None,
                   help=f"how to compute (bitnet.runtime): 'llama.cpp' = llama.cpp's exact float "
                        f"order, 'float' = float32 activations, 'reference' = the numpy "
                        f"reference (default: ${NUMERICS_ENV}, else {DEFAULT_NUMERICS})")
    p.add_argument("--special", action="store_true", help="parse special tokens in the prompt")
    return p


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown for every option; the epilog keeps its line breaks."""


def generate(model_path: str, prompt: str, *, n_predict: int = 64, temp: float = 0.8,
             seed: Optional[int] = None, top_k: int = 40, top_p: float = 0.95,
             min_p: float = 0.05, repeat_penalty: float = 1.0, n_ctx: int = 512,
             numerics: Optional[str] = None, parse_special: bool = False,
             out: Optional[TextIO] = None) -> List[int]:
    """Generate up to n_predict tokens after `prompt`, streaming text to `out`; returns
    the generated token ids. ContextLengthExceededError when the prompt does not fit n_ctx."""
    from bitnet import runtime, sampling
    from bitnet.errors import ContextLengthExceededError
    from bitnet.gguf import load
    from bitnet.model import Context

    out = sys.stdout if out is None else out
    if n_ctx < 1:
        raise ContextLengthExceededError(f"context size {n_ctx}: must be at least 1 token")
    gf = load(model_path)
    tok = runtime.tokenizer_from_kv(gf.kv)
    ids = tok.tokenize(prompt.encode("utf-8"), add_special=True, parse_special=parse_special)
    if len(ids) > n_ctx:
        raise ContextLengthExceededError(
            f"the prompt is {len(ids)} tokens, longer than the context ({n_ctx}); "
            "raise -c/--ctx-size or shorten the prompt")
    model = runtime.load_model(gf, numerics=numerics)
    ctx = Context(model, n_ctx=n_ctx)
    chain = sampling.make_chain(
        n_vocab=model.n_vocab, top_k=top_k, top_p=top_p, min_p=min_p, temp=temp,
        repeat_penalty=repeat_penalty,
        seed=sampling.LLAMA_DEFAULT_SEED if seed is None else seed,
    )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    generated: List[int] = []
    pending = ids
    while len(generated) < n_predict and ctx.n_past + len(pending) <= n_ctx:
        logits = ctx.eval(pending, all_logits=False)[-1]
        token = chain.sample(logits)
        vocab = tok.vocab
        if vocab is not None and vocab.is_eog(token):
            break
        generated.append(token)
        out.write(decoder.decode(tok.token_to_piece(token)))
        out.flush()
        pending = [token]
    out.write(decoder.decode(b"", final=True) + "\n")
    out.flush()
    return generated


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        generate(args.model, args.prompt, n_predict=args.n_predict, temp=args.temp,
                 seed=args.seed, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                 repeat_penalty=args.repeat_penalty, n_ctx=args.ctx_size,
                 numerics=args.numerics, parse_special=args.special)
    except (BitNetError, OSError) as e:
        print(f"bitnet generate: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
