"""The reference inference engine (bitnet.ops + bitnet.model) against llama.cpp.

Oracle: llama-cpp-python (`Llama(..., logits_all=True)`), on the real SmolLM2-135M Q4_1
model and on synthetic tiny models (bitnet_harness.synthetic). Metrics as llama.cpp's
test-backend-ops: NMSE = sum((a-b)^2)/sum(a^2) per position, argmax agreement; an argmax
that differs must sit on a near-tie of llama.cpp's logits. Thresholds are justified next
to each assertion from measured data (numbers from runs on x86-64 AVX-512, 2 threads).

Every comparison runs twice: activation_quant="none" (exact float activations, the
reference default) and "peer" (activations rounded as llama.cpp's kernels round them,
with llama.cpp's default F16 KV cache). On SmolLM2 a third mode, "peer-exact"
(`bitnet.numerics.PeerBackend`: llama.cpp's float order in every op), is evaluated
on llama.cpp's own schedule (prompt in one batch, then one token per eval) and gives
llama.cpp's logits bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

from bitnet.errors import ContextLengthExceededError, UnsupportedError
from bitnet.metrics import nmse
from bitnet.model import SUPPORTED_ARCHITECTURES, Context, Model
from bitnet.numerics import emulates_llamacpp_build
from bitnet.ops import ROPE_NEOX, ROPE_NORMAL, NumpyBackend, RopeParams
from bitnet_harness.corpora import SMOLLM2, corpus_path
from bitnet_harness.differential import (
    MODES,
    SMOLLM2_PROMPTS,
    SYNTHETIC_PROMPTS,
    Case,
    greedy_free_running,
    llama,
    llama_cases,
    load_model,
    scheduled_forced,
    teacher_forced,
    top2_margin,
)
from bitnet_harness.synthetic import synthetic_path

SMOLLM2_LONG_PROMPTS = [
    b"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    b"Explain in a few sentences why the sky is blue, and mention Rayleigh scattering."
    b"<|im_end|>\n<|im_start|>assistant\n",
    b"The Industrial Revolution began in Great Britain in the late eighteenth century. It "
    b"transformed economies that had been based on agriculture and handicrafts into economies "
    b"based on large-scale industry, mechanized manufacturing, and the factory system. New "
    b"machines, new power sources, and new ways of organizing work made existing industries "
    b"more productive and efficient. Historians still debate",
    b"class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):"
    b"\n        self.items.append(item)\n\n    def pop(self):\n        if not self.items:\n"
    b"            raise IndexError('pop from empty stack')\n        return self.items.pop()\n\n"
    b"    def peek(self):\n",
    b"Shopping list for the week:\n1. Eggs\n2. Milk\n3. Bread\n4. Tomatoes\n5. Onions\n"
    b"6. Rice\n7. Chicken\n8. Apples\n9.",
]


def check_agreement(cases: List[Case], outs: List[np.ndarray], *, mean_max: float,
                    prompt_mean_max: float, pos_max: float, near_tie: float) -> Dict[str, float]:
    """Assert the NMSE bounds and that every argmax disagreement is a near-tie of
    llama.cpp's logits (top-2 margin < near_tie). Returns the measured numbers."""
    all_nmse = np.concatenate([nmse(o, c.ref) for c, o in zip(cases, outs)])
    for c, o in zip(cases, outs):
        assert np.all(np.isfinite(o)), f"non-finite logits for {c.prompt!r}"
        n = nmse(o, c.ref)
        assert n.mean() < prompt_mean_max, (c.prompt, n.mean())
        margins = top2_margin(c.ref)
        flips = np.nonzero(o.argmax(-1) != c.ref.argmax(-1))[0]
        for i in flips:
            assert margins[i] < near_tie, (
                f"{c.prompt!r} position {i}: argmax {o[i].argmax()} vs llama.cpp "
                f"{c.ref[i].argmax()} with llama.cpp margin {margins[i]:.3f} >= {near_tie}"
            )
    assert all_nmse.mean() < mean_max, all_nmse.mean()
    assert all_nmse.max() < pos_max, all_nmse.max()
    return {"mean": float(all_nmse.mean()), "max": float(all_nmse.max())}


def check_greedy(model: Model, mode: str, cases: List[Case], near_tie: float,
                 min_identical: int) -> List[Tuple[bytes, int, float]]:
    """Free-running greedy: identical to llama.cpp's for >= min_identical prompts, and
    every divergence at a near-tie of llama.cpp's logits. Returns the divergences."""
    divergences = []
    for c in cases:
        ours = greedy_free_running(model, mode, c)
        if ours == c.seq:
            continue
        at = next(i for i in range(len(ours)) if ours[i] != c.seq[i])
        margin = float(top2_margin(c.ref[at - 1 : at])[0])
        divergences.append((c.prompt, at - c.n_prompt, margin))
        assert margin < near_tie, (c.prompt, at - c.n_prompt, margin)
    assert len(cases) - len(divergences) >= min_identical, divergences
    return divergences


# ---------------------------------------------------------------------------------------
# SmolLM2-135M Q4_1 (real weights)

# subtle: this small Q4_1 model amplifies rounding noise. llama.cpp disagrees with itself
# (same prompts, prompt+32 greedy tokens, batch prefill vs token-by-token prefill): NMSE
# mean 4.6e-4, max 1.6e-2, 2 argmax flips, 2 of 8 greedy continuations diverge.
# Measured for us vs llama.cpp over the 8 prompts x ~42 positions:
#   none: NMSE mean 1.8e-3, per-prompt mean <= 2.9e-3, max 3.4e-2; 12 argmax flips, all at
#         llama.cpp margins <= 0.33; the error of a top-2 margin is up to 0.55 (p99 0.47).
#   peer: NMSE mean 2.0e-3, per-prompt mean <= 2.3e-3, max 6.0e-2; 13 flips at margins
#         <= 0.33; margin error up to 0.84 (p99 0.54).
# So: mean below llama.cpp's whole-model bound 2e-3 doubled (4e-3); per-prompt 6e-3 and
# per-position 0.1 leave ~2x headroom; a "near-tie" is a margin < 0.85 logits, the largest
# measured margin error (a flip needs our margin error to exceed llama.cpp's margin). With
# numpy 1.24 (the last for Python 3.8: another OpenBLAS, value-based casting) "peer" flips
# "Once upon a time, in a small village," at position 19: llama.cpp's margin 0.674, ours
# -0.006 (an error of 0.68); numpy 2.x flips only below 0.33.
# Why ~2e-3 and not ~1e-7: every matmul re-quantizes its input to 8 bits, so a one-ulp
# difference anywhere flips some Q8 code and the step grows layer by layer. Measured with
# PeerBackend (llama.cpp's float order in every op, logits bit-identical on its schedule):
# replacing any ONE of its ops by the plain numpy one (matmul summation order, RMSNorm,
# RoPE, softmax, SwiGLU, attention sums) gives NMSE mean 1.2e-3..1.7e-3 and 0-3 of 8
# identical greedy continuations; per-layer residual NMSE vs llama.cpp's l_out tensors is
# already 1e-4 (none) / 5e-5 (peer) after layer 0 and 0 for PeerBackend at every layer.
SMOL_NEAR_TIE = 0.85


@pytest.fixture(scope="module")
def smollm2_cases() -> List[Case]:
    return llama_cases(corpus_path(SMOLLM2), SMOLLM2_PROMPTS)


@pytest.fixture(scope="module")
def smollm2_models() -> Dict[str, Model]:
    """mode -> the loaded model; the dequantized weights are cached inside (~1.5 s each)."""
    return {}


def _smollm2(models: Dict[str, Model], mode: str) -> Model:
    if mode not in models:
        models[mode] = load_model(corpus_path(SMOLLM2), mode)
    return models[mode]


@pytest.mark.llamacpp
@pytest.mark.parametrize("mode", list(MODES))
def test_smollm2_logits_match_llamacpp(smollm2_cases: List[Case],
                                       smollm2_models: Dict[str, Model], mode: str) -> None:
    model = _smollm2(smollm2_models, mode)
    outs = teacher_forced(model, mode, smollm2_cases)
    check_agreement(smollm2_cases, outs, mean_max=4e-3, prompt_mean_max=6e-3, pos_max=0.1,
                    near_tie=SMOL_NEAR_TIE)


def _llamacpp_is_emulated() -> bool:
    """PeerBackend reproduces this llama.cpp build's arithmetic (x86 AVX-512 CPU build)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    return emulates_llamacpp_build(llama_cpp.llama_print_system_info().decode())


def check_bit_identical(cases: List[Case], outs: List[np.ndarray], **bounds: float) -> None:
    """Every logit equal to llama.cpp's where PeerBackend emulates its build; elsewhere
    (another SIMD width) the NMSE / near-tie `bounds` of check_agreement."""
    if not _llamacpp_is_emulated():
        check_agreement(cases, outs, **bounds)
        return
    for c, o in zip(cases, outs):
        differing = np.nonzero((o != c.ref).any(-1))[0]
        assert differing.size == 0, (c.prompt, differing, nmse(o, c.ref)[differing])


@pytest.mark.llamacpp
def test_smollm2_peer_exact_logits_identical_to_llamacpp(smollm2_cases: List[Case],
                                                        smollm2_models: Dict[str, Model]) -> None:
    # Measured: every logit of the 8 prompts x (prompt + 32) positions is bit-identical to
    # llama.cpp's (NMSE 0; also each intermediate tensor of a prefill and a decode step,
    # dumped through llama.cpp's eval callback). So where the build is the one emulated the
    # assertion is equality; elsewhere (another SIMD width) the "peer" bounds.
    model = _smollm2(smollm2_models, "peer-exact")
    outs = scheduled_forced(model, "peer-exact", smollm2_cases)
    check_bit_identical(smollm2_cases, outs, mean_max=4e-3, prompt_mean_max=6e-3, pos_max=0.1,
                        near_tie=SMOL_NEAR_TIE)


@pytest.mark.llamacpp
@pytest.mark.parametrize("mode", ["none", "peer-exact"])
def test_smollm2_greedy_matches_llamacpp(smollm2_cases: List[Case],
                                         smollm2_models: Dict[str, Model], mode: str) -> None:
    # peer-exact: measured 8 of 8 continuations identical over 32 tokens (the logits are
    # llama.cpp's bits); the acceptance bar of 7 of 8 is asserted where the llama.cpp build
    # is the emulated one. none (exact float activations): measured 0 of 8 identical,
    # divergence after 3..30 tokens, always where llama.cpp's top-2 margin is <= 0.33 --
    # llama.cpp itself changes 2 of 8 continuations when only its prefill batching changes,
    # so only the near-tie rule is asserted there.
    model = _smollm2(smollm2_models, mode)
    min_identical = 7 if mode == "peer-exact" and _llamacpp_is_emulated() else 0
    check_greedy(model, mode, smollm2_cases, SMOL_NEAR_TIE, min_identical=min_identical)


def _kernels(mode: str) -> Any:
    """The long prompts run on the C kernels when built (they compute the numpy reference's
    results: test_optimized_kernels, test_peer_exact_engine), else on numpy (None)."""
    from bitnet.runtime import make_backend

    kernels = pytest.importorskip("bitnet_kernels")
    if not kernels.available():
        return None
    if mode == "peer-exact":
        return make_backend("llama.cpp")
    return kernels.OptimizedBackend(activation_quant=mode)


@pytest.mark.slow
@pytest.mark.llamacpp
def test_smollm2_long_prompts_match_llamacpp() -> None:
    # 4 prompts of 100-134 tokens (chat, prose, code, list) + 64 greedy tokens. Measured
    # (none / peer): NMSE mean 1.6e-3 / 1.8e-3, per-prompt mean <= 2.3e-3 / 2.5e-3, max
    # 6.2e-2 / 5.8e-2; flips at margins <= 0.16 / 0.27; margin error max 0.54 / 0.65.
    # Same bounds as the short prompts.
    cases = llama_cases(corpus_path(SMOLLM2), SMOLLM2_LONG_PROMPTS, n_gen=64)
    for mode in MODES:
        model = load_model(corpus_path(SMOLLM2), mode, backend=_kernels(mode))
        outs = teacher_forced(model, mode, cases)
        check_agreement(cases, outs, mean_max=4e-3, prompt_mean_max=6e-3, pos_max=0.1,
                        near_tie=SMOL_NEAR_TIE)
        check_greedy(model, mode, cases, SMOL_NEAR_TIE, min_identical=0)


@pytest.mark.slow
@pytest.mark.llamacpp
def test_smollm2_long_prompts_peer_exact() -> None:
    # The 4 long prompts (100-134 tokens, + 64 greedy tokens) on llama.cpp's schedule.
    # Measured: bit-identical logits at every position, 4 of 4 continuations identical.
    cases = llama_cases(corpus_path(SMOLLM2), SMOLLM2_LONG_PROMPTS, n_gen=64)
    model = load_model(corpus_path(SMOLLM2), "peer-exact", backend=_kernels("peer-exact"))
    outs = scheduled_forced(model, "peer-exact", cases)
    check_bit_identical(cases, outs, mean_max=4e-3, prompt_mean_max=6e-3, pos_max=0.1,
                        near_tie=SMOL_NEAR_TIE)
    check_greedy(model, "peer-exact", cases, SMOL_NEAR_TIE,
                 min_identical=len(cases) if _llamacpp_is_emulated() else 0)


# ---------------------------------------------------------------------------------------
# synthetic tiny models: mainline bitnet (TQ1_0, TQ2_0) and llama (F16, Q8_0, Q4_0, Q4_1)

# Measured over the 8 prompts x (prompt + 32) positions, none / peer:
#   bitnet-tq1_0 = bitnet-tq2_0 (bit-identical dequantized weights):
#     NMSE mean 5.1e-4 / 7.1e-5, per-prompt mean <= 6.3e-4 / 1.2e-4, max 1.2e-3 / 4.2e-4;
#     top-2 margin error p99 0.25 / 0.14, max 0.35 / 0.19; argmax flips at margins <= 0.23;
#     greedy: 4 / 7 of 8 continuations identical, divergences at margins <= 0.23.
#   llama-f16 NMSE 5e-7; llama-q8_0/q4_0/q4_1 NMSE mean 2.6-2.8e-4 / 0.6-2.9e-4, max
#     6.2e-4, margin error max 0.32, flips at margins <= 0.25; greedy 0-5 of 8 identical.
# Random weights give flat output distributions (logit std 3.2 over 32000 tokens, top-2
# gaps often < 0.1), so near-ties are common. Bounds: llama.cpp's whole-model 2e-3 for
# the mean NMSE and 5e-3 per position; a near-tie is a margin < 0.4 (above the largest
# measured margin error, 0.35). Identical greedy continuations for >= 7 of 8 prompts are
# asserted where measured (bitnet kinds with "peer", i.e. llama.cpp's own activation
# rounding); with exact activations the rounding noise of llama.cpp's Q8_K activations
# alone flips near-ties, so there only the near-tie rule is asserted.
SYNTH_NEAR_TIE = 0.4
LLAMA_KINDS = ["llama-f16", "llama-q8_0", "llama-q4_0", "llama-q4_1"]
BITNET_KINDS = ["bitnet-tq1_0", "bitnet-tq2_0"]


@pytest.fixture(scope="module")
def synthetic_cases() -> Dict[str, List[Case]]:
    return {}


def _synth_cases(cache: Dict[str, List[Case]], kind: str) -> List[Case]:
    if kind not in cache:
        if kind in BITNET_KINDS:
            cache[kind] = llama_cases(synthetic_path(kind), SYNTHETIC_PROMPTS)
        else:  # the llama kinds: a lighter check (3 prompts, 16 tokens)
            cache[kind] = llama_cases(synthetic_path(kind), SYNTHETIC_PROMPTS[:3], n_gen=16)
    return cache[kind]


def _check_synthetic(model: Model, mode: str, cases: List[Case], min_identical: int) -> None:
    outs = teacher_forced(model, mode, cases)
    check_agreement(cases, outs, mean_max=2e-3, prompt_mean_max=2e-3, pos_max=5e-3,
                    near_tie=SYNTH_NEAR_TIE)
    check_greedy(model, mode, cases, SYNTH_NEAR_TIE, min_identical=min_identical)


@pytest.mark.llamacpp
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("kind", BITNET_KINDS)
def test_synthetic_bitnet_matches_llamacpp(synthetic_cases: Dict[str, List[Case]], kind: str,
                                           mode: str) -> None:
    cases = _synth_cases(synthetic_cases, kind)
    _check_synthetic(load_model(synthetic_path(kind), mode), mode, cases,
                     min_identical=7 if mode == "peer" else 0)


@pytest.mark.llamacpp
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("kind", LLAMA_KINDS)
def test_synthetic_llama_matches_llamacpp(synthetic_cases: Dict[str, List[Case]], kind: str,
                                          mode: str) -> None:
    cases = _synth_cases(synthetic_cases, kind)
    _check_synthetic(load_model(synthetic_path(kind), mode), mode, cases, min_identical=0)


@pytest.mark.llamacpp
@pytest.mark.parametrize("kind", LLAMA_KINDS)
def test_synthetic_llama_peer_exact(synthetic_cases: Dict[str, List[Case]], kind: str) -> None:
    # PeerBackend on llama.cpp's schedule. Measured: F16, Q8_0 and Q4_1 bit-identical at
    # every position; Q4_0 NMSE mean <= 2.0e-5 (llama.cpp repacks Q4_0 weights to its
    # q4_0_8x8 layout, summed in another order): equality asserted for the first three,
    # the synthetic bounds for Q4_0.
    cases = _synth_cases(synthetic_cases, kind)
    outs = scheduled_forced(load_model(synthetic_path(kind), "peer-exact"), "peer-exact", cases)
    bounds = {"mean_max": 2e-3, "prompt_mean_max": 2e-3, "pos_max": 5e-3, "near_tie": SYNTH_NEAR_TIE}
    if kind == "llama-q4_0":
        check_agreement(cases, outs, **bounds)
    else:
        check_bit_identical(cases, outs, **bounds)


@pytest.mark.llamacpp
@pytest.mark.parametrize("mode", list(MODES))
def test_i2s_matches_tq2_0_run_by_llamacpp(synthetic_cases: Dict[str, List[Case]],
                                           mode: str) -> None:
    """The same ternary weights as I2_S (this engine) and TQ2_0 (llama.cpp) agree.

    Measured (none / peer): NMSE mean 5.1e-4 / 3.3e-4, max 1.2e-3 / 8.1e-4; margin error
    max 0.35 / 0.29; greedy 4 / 6 of 8 identical, divergences at margins <= 0.23. ("peer"
    rounds activations per token as bitnet.cpp does, not per 256-block as llama.cpp's TQ2_0
    kernel, hence its larger NMSE than TQ2_0's own peer path.) Bounds as for TQ2_0."""
    cases = _synth_cases(synthetic_cases, "bitnet-tq2_0")
    i2s = load_model(synthetic_path("bitnet-i2_s"), mode)
    _check_synthetic(i2s, mode, cases, min_identical=0)
    if mode == "none":
        # both dequantize to the identical float weights, so the exact path is bit-equal
        tq2 = load_model(synthetic_path("bitnet-tq2_0"), mode)
        ours_i2s = teacher_forced(i2s, mode, cases[:1])[0]
        np.testing.assert_array_equal(ours_i2s, teacher_forced(tq2, mode, cases[:1])[0])


@pytest.mark.llamacpp
@pytest.mark.parametrize("kind", ["bitnet-b1.58-i2_s", "bitnet-i2_s"])
def test_llamacpp_cannot_load_i2s_files(kind: str) -> None:
    pytest.importorskip("llama_cpp")
    with pytest.raises(ValueError, match="Failed to load model"):
        llama(synthetic_path(kind))


def test_bitnet_b158_official_shape_loads_and_generates() -> None:
    path = synthetic_path("bitnet-b1.58-i2_s")
    model = load_model(path, "peer")
    hp = model.hparams
    assert (hp.arch, hp.n_vocab, hp.rope_type) == ("bitnet-b1.58", 128256, ROPE_NEOX)
    assert "tokenizer.ggml.pre" not in model.gguf.raw_kv
    assert model.weights.output is model.weights.tok_embd  # tied
    assert model.weights.layers[0].wq.w.type_name == "I2_S"
    ctx = Context(model, n_ctx=64)
    seq = [128000, 9906, 1917]  # <|begin_of_text|>Hello world
    for _ in range(8):
        logits = ctx.eval(seq[ctx.n_past :], all_logits=False)[-1]
        assert np.all(np.isfinite(logits))
        seq.append(int(np.argmax(logits)))
    assert ctx.n_past == len(seq) - 1
    # the relu^2 FFN is what distinguishes the graph: the same file run with a SiLU gate
    # (mainline bitnet's) must give different logits
    silu_model = load_model(path, "peer")
    silu_model.hparams = dataclasses.replace(hp, arch="bitnet")
    other = Context(silu_model, n_ctx=64).eval(seq[:3], all_logits=False)
    assert not np.allclose(other, Context(model, n_ctx=64).eval(seq[:3], all_logits=False))


# ---------------------------------------------------------------------------------------
# KV cache and context semantics (no oracle needed: the engine against itself)


@pytest.fixture(scope="module")
def tiny_llama() -> Model:
    return load_model(synthetic_path("llama-q4_0"), "none")


TOKENS = [1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203, 29889]


def test_batch_equals_token_by_token(tiny_llama: Model) -> None:
    batch = Context(tiny_llama, n_ctx=64).eval(TOKENS)
    ctx = Context(tiny_llama, n_ctx=64)
    single = np.concatenate([ctx.eval([t], n_past=i) for i, t in enumerate(TOKENS)])
    # float32 with different BLAS blockings: measured max |diff| 1e-6 on logits of std 3
    np.testing.assert_allclose(single, batch, rtol=0, atol=1e-4)
    split = Context(tiny_llama, n_ctx=64, n_batch=5).eval(TOKENS)
    np.testing.assert_allclose(split, batch, rtol=0, atol=1e-4)


def test_seq_rm_then_reeval_equals_fresh(tiny_llama: Model) -> None:
    fresh = Context(tiny_llama, n_ctx=64).eval(TOKENS)
    ctx = Context(tiny_llama, n_ctx=64)
    ctx.eval(TOKENS[:8] + [42, 43, 44])
    ctx.kv_cache_seq_rm(8, -1)
    assert ctx.n_past == 8
    again = ctx.eval(TOKENS[8:])
    np.testing.assert_allclose(again, fresh[8:], rtol=0, atol=1e-4)
    # eval at an explicit earlier n_past drops what was cached after it (Llama.eval)
    ctx.eval([7, 7, 7], n_past=4)
    assert ctx.n_past == 7
    np.testing.assert_allclose(ctx.eval(TOKENS[4:], n_past=4), fresh[4:], rtol=0, atol=1e-4)
    ctx.reset()
    assert ctx.n_past == 0
    np.testing.assert_allclose(ctx.eval(TOKENS), fresh, rtol=0, atol=1e-4)


def test_last_logits_and_embeddings(tiny_llama: Model) -> None:
    ctx = Context(tiny_llama, n_ctx=64)
    all_logits = ctx.eval(TOKENS)
    emb = ctx.embeddings
    assert emb is not None and emb.shape == (len(TOKENS), tiny_llama.n_embd)
    ctx.reset()
    last = ctx.eval(TOKENS, all_logits=False)
    assert last.shape == (1, tiny_llama.n_vocab)
    np.testing.assert_allclose(last[0], all_logits[-1], rtol=0, atol=1e-4)
    out = tiny_llama.backend.matmul(tiny_llama.weights.output, emb[-1:])
    np.testing.assert_allclose(out, last, rtol=0, atol=1e-4)


def test_context_overflow_raises(tiny_llama: Model) -> None:
    ctx = Context(tiny_llama, n_ctx=8)
    with pytest.raises(ContextLengthExceededError):
        ctx.eval(TOKENS)


def test_unknown_architecture_names_supported(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "gpt2.gguf"
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UnsupportedError) as err:
        Model.load(path)
    for arch in SUPPORTED_ARCHITECTURES:
        assert arch in str(err.value)
    assert "gpt2" in str(err.value)


# ---------------------------------------------------------------------------------------
# ops known answers


def rope_ref(x: np.ndarray, pos: int, p: RopeParams) -> np.ndarray:
    """ggml_compute_forward_rope_flt + ggml_rope_cache_init + rope_yarn for one row,
    transcribed loop by loop in float64."""
    out = x.astype(np.float64).copy()

    def corr_dim(n_rot: float) -> float:
        return p.n_dims * math.log(p.n_ctx_orig / (n_rot * 2 * math.pi)) / (
            2 * math.log(p.freq_base))

    if p.ext_factor != 0.0:
        low = max(0.0, math.floor(corr_dim(p.beta_fast)))
        high = min(p.n_dims - 1.0, math.ceil(corr_dim(p.beta_slow)))
    theta = float(pos)
    theta_scale = p.freq_base ** (-2.0 / p.n_dims)
    for i0 in range(0, p.n_dims, 2):
        ff = 1.0 if p.freq_factors is None else float(p.freq_factors[i0 // 2])
        theta_extrap = theta / ff
        theta_interp = p.freq_scale * theta_extrap
        th, mscale = theta_interp, p.attn_factor
        if p.ext_factor != 0.0:
            ramp = 1 - min(1.0, max(0.0, (i0 // 2 - low) / max(0.001, high - low)))
            mix = ramp * p.ext_factor
            th = theta_interp * (1 - mix) + theta_extrap * mix
            mscale *= 1.0 + 0.1 * math.log(1.0 / p.freq_scale)
        c, s = math.cos(th) * mscale, math.sin(th) * mscale
        if p.mode == ROPE_NORMAL:
            a, b = i0, i0 + 1
        else:
            a, b = i0 // 2, i0 // 2 + p.n_dims // 2
        out[a] = x[a] * c - x[b] * s
        out[b] = x[a] * s + x[b] * c
        theta *= theta_scale
    return out


ROPE_VARIANTS: Dict[str, Dict[str, Any]] = {
    "plain": {},
    "linear-scaled": {"freq_scale": 0.5},
    "freq-factors": {"freq_factors": np.linspace(1.0, 8.0, 8)},
    "yarn": {"freq_scale": 0.25, "ext_factor": 1.0, "n_ctx_orig": 4096, "attn_factor": 0.9},
}


@pytest.mark.parametrize("variant", list(ROPE_VARIANTS))
@pytest.mark.parametrize("mode", [ROPE_NORMAL, ROPE_NEOX], ids=["normal", "neox"])
@pytest.mark.parametrize("n_dims", [16, 10], ids=["full", "partial"])
def test_rope_matches_ggml_loop(mode: int, n_dims: int, variant: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 16)).astype(np.float32)  # (T, H, d)
    positions = np.array([0, 5, 300])
    p = RopeParams(n_dims=n_dims, mode=mode, freq_base=10000.0, **ROPE_VARIANTS[variant])
    got = NumpyBackend().rope(x, positions, p)
    for t, pos in enumerate(positions):
        for h in range(2):
            # float32 output of float64 math: 300 rad angles leave ~1e-5 absolute error
            np.testing.assert_allclose(got[t, h], rope_ref(x[t, h], int(pos), p), atol=2e-5)


def test_attention_is_causal_and_gqa() -> None:
    rng = np.random.default_rng(2)
    q = rng.standard_normal((3, 4, 8)).astype(np.float32)  # (T, H, d)
    k = rng.standard_normal((3, 2, 8)).astype(np.float32)  # (K, Hkv, d)
    v = rng.standard_normal((3, 2, 8)).astype(np.float32)
    pos = np.arange(3)
    out = NumpyBackend().attention(q, k, v, pos, pos, 0.5).reshape(3, 4, 8)
    # position 0 sees only cell 0: the output is v[0] of the head's kv group
    np.testing.assert_allclose(out[0, 0], v[0, 0], atol=1e-6)
    np.testing.assert_allclose(out[0, 3], v[0, 1], atol=1e-6)
    # head 2 at position 2, by hand
    s = k[:, 1] @ q[2, 2] * 0.5
    w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    np.testing.assert_allclose(out[2, 2], w @ v[:, 1], atol=1e-5)


# ---------------------------------------------------------------------------------------
# the generate CLI


def test_generate_cli_streams_greedy_text(capsys: pytest.CaptureFixture[str]) -> None:
    from bitnet.tokenizers import from_gguf_kv
    from bitnet.tools.generate import main

    path = synthetic_path("bitnet-b1.58-i2_s")
    assert main([str(path), "Hello world", "-n", "6", "--temp", "0"]) == 0
    printed = capsys.readouterr().out
    model = load_model(path, "none")
    tok = from_gguf_kv(model.kv)
    ids = tok.tokenize(b"Hello world", add_special=True, parse_special=False)
    ctx = Context(model, n_ctx=64)
    new: List[int] = []
    pending = ids
    for _ in range(6):
        nxt = int(np.argmax(ctx.eval(pending, all_logits=False)[-1]))
        new.append(nxt)
        pending = [nxt]
    expected = b"".join(tok.token_to_piece(t) for t in new).decode("utf-8", errors="replace")
    assert printed == expected + "\n"
