"""Differential metrics of whole models: ours against llama.cpp, and our two backends
against each other. Shared by the test suite (tests/test_reference_engine.py asserts bounds
on them) and by `bitnet-compat run`, which records them in the report.

    logits       per-prompt NMSE of the logits at every position (prompt + llama.cpp's greedy
                 continuation, teacher-forced), argmax agreement, against llama.cpp
                 (llama-cpp-python, logits_all=True)
    layers       per-layer NMSE of the residual stream (Context.layer_hook) between the numpy
                 reference backend and the optimized C backend, same model, same tokens
    divergences  where our free-running greedy continuation first leaves llama.cpp's: the
                 prompt, the position, both tokens and texts, llama.cpp's top-2 margin there

Metrics as llama.cpp's test-backend-ops: NMSE = sum((a-b)^2) / sum(b^2), b the reference.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bitnet.metrics import nmse
from bitnet.model import Context, Model
from bitnet.ops import NumpyBackend
from bitnet_harness.corpora import SMOLLM2, corpus_path
from bitnet_harness.synthetic import synthetic_path

MODES = {"none": "f32", "peer": "f16"}  # activation_quant -> KV cache type (llama.cpp's f16)
# and "peer-exact": bitnet.numerics.PeerBackend (llama.cpp's float order in every op),
# compared on llama.cpp's own schedule (see scheduled_forced)
KV_TYPES = dict(MODES, **{"peer-exact": "f16"})

SMOLLM2_PROMPTS = [
    b"The capital of France is",
    b"def fibonacci(n):\n    ",
    b"Once upon a time, in a small village,",
    b"<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    b"The three primary colors are",
    b"import numpy as np\nx = np.",
    b"Water boils at a temperature of",
    b"In 1492, Columbus",
]
SYNTHETIC_PROMPTS = [
    b"Hello world",
    b"The quick brown fox jumps over the lazy dog.",
    b"1, 2, 3, 4, 5,",
    b"Synthetic weights do not know any language",
    b"def main():\n    return 0\n",
    b"To be, or not to be",
    b"GGUF files store tensors and metadata.",
    b"a b c d e f g",
]
N_GEN = 32  # greedy continuation length


def top2_margin(logits: np.ndarray) -> np.ndarray:
    """Gap between the best and second-best logit per row. (T, V) -> (T,)."""
    part = np.sort(logits, axis=-1)[:, -2:]
    return np.asarray(part[:, 1] - part[:, 0])


def llama(path: Path, n_ctx: int = 256) -> Any:
    """llama.cpp (llama-cpp-python) with logits at every position."""
    import llama_cpp

    # subtle: one thread. ggml's worker threads spin at each barrier; on a loaded 2-core box
    # n_threads=2 was measured 4-20x slower (64 tokens: 5.7-31 s vs 1.4-1.8 s).
    return llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=n_ctx, n_threads=1,
                           verbose=False)


def llama_greedy(llm: Any, prompt: bytes, n_gen: int) -> Tuple[List[int], np.ndarray]:
    """llama.cpp's greedy continuation: (prompt + n_gen token ids, logits at every position
    (len, V)); the prompt is evaluated in one batch, the continuation token by token."""
    toks = llm.tokenize(prompt, add_bos=True, special=True)
    llm.reset()
    llm.eval(toks)
    seq = list(toks)
    for _ in range(n_gen):
        nxt = int(np.argmax(llm.scores[len(seq) - 1]))
        seq.append(nxt)
        llm.eval([nxt])
    return seq, np.array(llm.scores[: len(seq)], dtype=np.float32)


class Case:
    """One prompt: llama.cpp's greedy sequence, its logits, the prompt length, and the text
    llama.cpp gives each token (for reports)."""

    def __init__(self, prompt: bytes, seq: List[int], ref: np.ndarray, n_prompt: int,
                 pieces: Optional[Dict[int, bytes]] = None):
        self.prompt, self.seq, self.ref, self.n_prompt = prompt, seq, ref, n_prompt
        self.pieces: Dict[int, bytes] = pieces or {}


def llama_cases(path: Path, prompts: Sequence[bytes], n_gen: int = N_GEN) -> List[Case]:
    """llama.cpp's greedy continuation of each prompt, with its logits."""
    llm = llama(path)
    cases = []
    try:
        for p in prompts:
            n_prompt = len(llm.tokenize(p, add_bos=True, special=True))
            seq, ref = llama_greedy(llm, p, n_gen)
            pieces = {t: bytes(llm.detokenize([t], special=True)) for t in set(seq)}
            cases.append(Case(p, seq, ref, n_prompt, pieces))
    finally:
        llm.close()
    return cases


def load_model(path: Path, mode: str, backend: Any = None) -> Model:
    """Model.load in an activation_quant mode, or "peer-exact" (PeerBackend), with
    metadata-repair warnings silenced (they are not what is measured)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "peer-exact":
            from bitnet.numerics import PeerBackend
            from bitnet.runtime import make_backend

            # matmuls in the C kernels when built: the same bits, ~50x faster than numpy's
            peer = PeerBackend(matmul_backend=make_backend("llama.cpp"))
            return Model.load(path, backend=backend or peer)
        return Model.load(path, activation_quant=mode, backend=backend)


def teacher_forced(model: Model, mode: str, cases: List[Case]) -> List[np.ndarray]:
    """Our logits over each llama.cpp sequence, evaluated in one batch."""
    outs = []
    for c in cases:
        ctx = Context(model, n_ctx=256, kv_type=KV_TYPES[mode])
        outs.append(ctx.eval(c.seq))
    return outs


def scheduled_forced(model: Model, mode: str, cases: List[Case]) -> List[np.ndarray]:
    """Our logits over each llama.cpp sequence on llama.cpp's schedule in `llama_greedy`:
    the prompt in one batch, then one token per eval (batched and single-row matmuls sum
    in different orders, in llama.cpp as in PeerBackend)."""
    outs = []
    for c in cases:
        ctx = Context(model, n_ctx=256, kv_type=KV_TYPES[mode])
        parts = [ctx.eval(c.seq[: c.n_prompt])]
        parts += [ctx.eval([tok]) for tok in c.seq[c.n_prompt :]]
        outs.append(np.concatenate(parts))
    return outs


def greedy_free_running(model: Model, mode: str, c: Case) -> List[int]:
    """Our own greedy continuation of c's prompt (batch prefill, then token by token), up to
    and including the first token that differs from llama.cpp's."""
    return _greedy_with_logits(model, mode, c)[0]


def _greedy_with_logits(model: Model, mode: str, c: Case) -> Tuple[List[int], Optional[np.ndarray]]:
    """greedy_free_running, and our logits where it diverged (None if it did not)."""
    ctx = Context(model, n_ctx=256, kv_type=KV_TYPES[mode])
    seq = list(c.seq[: c.n_prompt])
    last = ctx.eval(seq, all_logits=False)[-1]
    for _ in range(len(c.seq) - c.n_prompt):
        nxt = int(np.argmax(last))
        seq.append(nxt)
        if nxt != c.seq[len(seq) - 1]:
            return seq, last  # diverged
        last = ctx.eval([nxt], all_logits=False)[-1]
    return seq, None


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="backslashreplace")


def divergence(model: Model, mode: str, c: Case, piece: Callable[[int], bytes]
               ) -> Optional[Dict[str, Any]]:
    """Where our greedy continuation first differs from llama.cpp's, or None if identical."""
    ours, our_logits = _greedy_with_logits(model, mode, c)
    if ours == c.seq[: len(ours)] or our_logits is None:
        return None
    at = len(ours) - 1  # index in the sequence of the first differing token
    theirs_tok, ours_tok = c.seq[at], ours[at]
    common = b"".join(c.pieces.get(t, b"") for t in c.seq[c.n_prompt: at])
    return {
        "prompt": _text(c.prompt),
        "position": at - c.n_prompt,  # index in the continuation
        "input": _text(c.prompt + common),  # the text whose next token differs
        "ours": {"token": ours_tok, "text": _text(piece(ours_tok))},
        "llama.cpp": {"token": theirs_tok, "text": _text(c.pieces.get(theirs_tok, b""))},
        "margin_llama.cpp": float(top2_margin(c.ref[at - 1: at])[0]),
        "margin_ours": float(top2_margin(our_logits[None, :])[0]),
    }


def logits_metrics(label: str, model: Model, mode: str, cases: List[Case],
                   piece: Callable[[int], bytes]) -> Tuple[List[Dict[str, Any]],
                                                            List[Dict[str, Any]]]:
    """(per-prompt logits rows, divergence rows) of `model` against llama.cpp's `cases`."""
    rows, divs = [], []
    forced = scheduled_forced if mode == "peer-exact" else teacher_forced
    for c, o in zip(cases, forced(model, mode, cases)):
        n = nmse(o, c.ref)
        flips = np.nonzero(o.argmax(-1) != c.ref.argmax(-1))[0]
        margins = top2_margin(c.ref)
        rows.append({"model": label, "mode": mode, "prompt": _text(c.prompt),
                     "positions": int(len(n)), "nmse_mean": float(n.mean()),
                     "nmse_max": float(n.max()), "argmax_agree": float(1 - len(flips) / len(n)),
                     "flip_margin_max": float(margins[flips].max()) if len(flips) else None})
        d = divergence(model, mode, c, piece)
        if d is not None:
            divs.append(dict({"model": label, "mode": mode}, **d))
    return rows, divs


def layer_metrics(label: str, path: Path, mode: str, sequences: List[List[int]],
                  prompts: List[bytes]) -> List[Dict[str, Any]]:
    """Per-layer NMSE of the optimized backend's residual stream against the numpy
    reference's, one row per prompt; [] when the C kernels are not built."""
    import bitnet_kernels as opt

    if not opt.available():
        return []
    ref = load_model(path, mode, NumpyBackend(activation_quant=mode))
    fast = load_model(path, mode, opt.OptimizedBackend(activation_quant=mode))
    rows = []
    for prompt, seq in zip(prompts, sequences):
        streams: Dict[str, List[np.ndarray]] = {"ref": [], "fast": []}
        logits = {}
        for name, model in (("ref", ref), ("fast", fast)):
            ctx = Context(model, n_ctx=256, kv_type=KV_TYPES[mode])
            ctx.layer_hook = lambda il, x, out=streams[name]: out.append(x.copy())
            logits[name] = ctx.eval(seq)
        per_layer = [float(nmse(a.reshape(1, -1), b.reshape(1, -1))[0])
                     for a, b in zip(streams["fast"], streams["ref"])]
        rows.append({"model": label, "mode": mode, "prompt": _text(prompt), "positions": len(seq),
                     "layers": per_layer,
                     "logits_nmse": float(nmse(logits["fast"], logits["ref"]).mean())})
    return rows


def _piece_fn(model: Model) -> Callable[[int], bytes]:
    from bitnet.tokenizers import from_gguf_kv

    tok = from_gguf_kv(model.kv)
    return lambda t: bytes(tok.token_to_piece(t))


def collect(quick: bool = True, with_llamacpp: bool = True, with_optimized: bool = True,
            progress: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """The differential metrics of a run (schema in bitnet_harness.runner), both activation
    modes ("none": exact, "peer": rounded as llama.cpp rounds them).

    quick: 4 prompts x 16 greedy tokens on SmolLM2-135M Q4_1 and synthetic bitnet TQ2_0;
    full: 8 prompts x 32 tokens, and also TQ1_0 and I2_S (the same ternary weights, compared
    with llama.cpp running TQ2_0)."""
    import bitnet_kernels as opt

    start = time.perf_counter()
    n_prompts, n_gen = (4, 16) if quick else (8, N_GEN)
    modes = list(MODES)
    exact_modes = ["peer-exact"]  # SmolLM2 only: PeerBackend is exact for F16/Q8_0/Q4_1 weights
    models: List[Tuple[str, Path, Path, List[bytes]]] = [
        # (label, our file, llama.cpp's file, prompts)
        ("SmolLM2-135M Q4_1", corpus_path(SMOLLM2), corpus_path(SMOLLM2),
         SMOLLM2_PROMPTS[:n_prompts]),
        ("bitnet TQ2_0 (synthetic)", synthetic_path("bitnet-tq2_0"),
         synthetic_path("bitnet-tq2_0"), SYNTHETIC_PROMPTS[:n_prompts]),
    ]
    if not quick:
        models += [
            ("bitnet TQ1_0 (synthetic)", synthetic_path("bitnet-tq1_0"),
             synthetic_path("bitnet-tq1_0"), SYNTHETIC_PROMPTS[:n_prompts]),
            ("bitnet I2_S vs llama.cpp TQ2_0", synthetic_path("bitnet-i2_s"),
             synthetic_path("bitnet-tq2_0"), SYNTHETIC_PROMPTS[:n_prompts]),
        ]
    fast = with_optimized and opt.available()  # which of our backends faces llama.cpp
    out: Dict[str, Any] = {"logits": [], "layers": [], "divergences": [], "greedy": [],
                           "n_gen": n_gen, "modes": modes + exact_modes,
                           "backend": "optimized" if fast else "reference"}
    peers: Dict[Path, List[Case]] = {}
    for label, ours_path, peer_path, prompts in models:
        if progress:
            progress(label)
        if with_llamacpp:
            if peer_path not in peers:
                peers[peer_path] = llama_cases(peer_path, prompts, n_gen)
            cases = peers[peer_path]
            for mode in modes + (exact_modes if peer_path == corpus_path(SMOLLM2) else []):
                backend = None if fast or mode == "peer-exact" else NumpyBackend(activation_quant=mode)
                model = load_model(ours_path, mode, backend)
                rows, divs = logits_metrics(label, model, mode, cases, _piece_fn(model))
                out["logits"] += rows
                out["divergences"] += divs
                out["greedy"].append({"model": label, "mode": mode, "prompts": len(cases),
                                      "identical": len(cases) - len(divs)})
            sequences = [c.seq for c in cases]
        elif fast:  # no llama.cpp: the per-layer comparison runs over the prompts alone
            from bitnet.tokenizers import from_gguf_kv

            tok = from_gguf_kv(load_model(ours_path, "none").kv)
            sequences = [list(tok.tokenize(p, True, True)) for p in prompts]
        if fast and ours_path == peer_path:
            for mode in modes:
                out["layers"] += layer_metrics(label, ours_path, mode, sequences, prompts)
    if not with_optimized:
        out["layers_skipped"] = "the optimized implementation is not selected (--impl)"
    elif not opt.available():
        out["layers_skipped"] = f"bitnet_kernels unavailable: {opt.unavailable_reason()}"
    out["seconds"] = time.perf_counter() - start
    return out
