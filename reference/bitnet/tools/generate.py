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
import warnings
from typing import List, Optional, Sequence, TextIO

from bitnet.errors import BitNetError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitnet generate", description=__doc__.splitlines()[0])
    p.add_argument("model", help="GGUF model file")
    p.add_argument("prompt", help="prompt text")
    p.add_argument("-n", "--n-predict", type=int, default=64, help="tokens to generate")
    p.add_argument("--temp", type=float, default=0.8, help="temperature; 0 = greedy")
    p.add_argument("--seed", type=int, default=None, help="sampling seed")
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--repeat-penalty", type=float, default=1.0)
    p.add_argument("-c", "--ctx-size", type=int, default=512, help="context size")
    p.add_argument("--activation-quant", choices=["none", "peer"], default="none",
                   help="round activations as the peer kernels do (default: exact)")
    p.add_argument("--special", action="store_true", help="parse special tokens in the prompt")
    return p


def generate(model_path: str, prompt: str, *, n_predict: int = 64, temp: float = 0.8,
             seed: Optional[int] = None, top_k: int = 40, top_p: float = 0.95,
             min_p: float = 0.05, repeat_penalty: float = 1.0, n_ctx: int = 512,
             activation_quant: str = "none", parse_special: bool = False,
             out: Optional[TextIO] = None) -> List[int]:
    """Generate up to n_predict tokens after `prompt`, streaming text to `out`; returns
    the generated token ids."""
    from bitnet import runtime, sampling
    from bitnet.model import Context, Model

    out = sys.stdout if out is None else out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # metadata repairs are reported by `bitnet inspect`
        model = Model.load(model_path, activation_quant=activation_quant)
    tok = runtime.tokenizer_from_kv(model.kv)
    ids = tok.tokenize(prompt.encode("utf-8"), add_special=True, parse_special=parse_special)
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
                 activation_quant=args.activation_quant, parse_special=args.special)
    except BitNetError as e:
        print(f"bitnet generate: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
