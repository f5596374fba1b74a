"""The C engine in llama.cpp numerics, bit for bit against llama.cpp and against numpy.

`OptimizedBackend(activation_quant="peer")` (the runtime's "llama.cpp" numerics) computes
every op in llama.cpp 0.3.36's CPU float order (optimized/bitnet_kernels/kernels/bn_peer_*.c).
Checked here, with equality of the bytes, never a tolerance:

- each op against llama.cpp's own libggml (tests/ggml_oracle.py builds one-op graphs on its
  CPU backend, so llama.cpp picks its kernel: vec_dot, tinyBLAS, tiled, the CPU_REPACK
  GEMM/GEMV), under every ISA variant this CPU runs, scalar included, outputs between guard
  floats;
- each op against `bitnet.numerics.PeerBackend`, the numpy reference of the same order;
- the thread count changes no bit (matmuls and the fused forward);
- whole models: logits of a prompt (all rows, and the last one with llama.cpp's output-row
  pruning) and of single-token decode steps equal llama-cpp-python's, for synthetic models
  of every weight type and for SmolLM2.

Where llama.cpp's build is not the one these orders describe (`emulates_llamacpp_build`:
x86 AVX-512, FMA, CPU_REPACK, no AMX), the llama.cpp comparisons skip.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest

import bitnet_kernels as opt
from bitnet import quants, runtime
from bitnet.ggml_types import GGMLType as G
from bitnet.model import Context
from bitnet.model.graphs import forward
from bitnet.numerics import EXACT_TYPES, PeerBackend, emulates_llamacpp_build
from bitnet.ops import ROPE_NEOX, ROPE_NORMAL, FlashAttn, QTensor, RopeParams

from .test_optimized_kernels import ALL_ISAS, call_guarded, isa_param, needs_ext

# every weight type of llama.cpp numerics, with a row length (multiple of its block; F32 93 and
# F16 88: vec_dot's D % 64 tails, and no tinyBLAS since D % 16 != 0)
TYPES: Dict[int, int] = {G.F32: 93, G.F16: 88, G.Q8_0: 96, G.Q4_0: 96, G.Q5_0: 96, G.Q4_1: 96, G.Q5_1: 96,
         G.Q4_K: 512, G.Q5_K: 512, G.Q6_K: 512, G.TQ1_0: 512, G.TQ2_0: 512}
# (N, T): one token with an odd row count (two-row decode + the last row), tinyBLAS batches,
# the repack GEMM (T >= 4) with its GEMV tail (T % 4), the tiled K-quants (T >= 8), N % 8 != 0
SHAPES = ((7, 1), (16, 1), (16, 3), (24, 5), (8, 8), (13, 13))


@pytest.fixture(params=ALL_ISAS)
def isa(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each ISA variant this CPU runs (BITNET_ISA), scalar included."""
    name = isa_param(request.param)
    monkeypatch.setenv("BITNET_ISA", name)
    yield name


def _llamacpp_exact() -> bool:
    llama_cpp = pytest.importorskip("llama_cpp")
    return emulates_llamacpp_build(llama_cpp.llama_print_system_info().decode())


@pytest.fixture(scope="module")
def oracle() -> Any:
    if not _llamacpp_exact():
        pytest.skip("llama.cpp's build is not the x86 AVX-512 one these orders describe")
    from .ggml_oracle import GgmlOracle

    return GgmlOracle()


def _weight(type_id: int, n: int, d: int, rng: np.random.Generator, name: str = "w") -> QTensor:
    """A (n, d) weight of `type_id`: ternary values for TQ*, gaussian otherwise."""
    if type_id in (G.TQ1_0, G.TQ2_0, G.I2_S):
        w = rng.integers(-1, 2, size=(n, d)).astype(np.float32) * np.float32(0.03)
    else:
        w = rng.standard_normal((n, d)).astype(np.float32)
    if type_id == G.F32:
        raw = w.view(np.uint8).reshape(-1)
    elif type_id == G.F16:
        raw = w.astype(np.float16).view(np.uint8).reshape(-1)
    else:
        raw = np.asarray(quants.quantize(w, type_id)).view(np.uint8).reshape(-1)
    return QTensor(name, int(type_id), (d, n), np.ascontiguousarray(raw))


# --------------------------------------------------------------------------------------
# each op against libggml


@needs_ext
@pytest.mark.llamacpp
@pytest.mark.parametrize("type_id", list(TYPES), ids=lambda t: G(t).name)
def test_matmul_is_libggml(isa: str, type_id: int, oracle: Any) -> None:
    """ggml_mul_mat through llama.cpp's CPU backend, the weight in its repack buffer when
    llama.cpp would put it there, and out of it (`plain`)."""
    rng = np.random.default_rng(int(type_id))
    d = TYPES[type_id]
    for n, t in SHAPES:
        w = _weight(type_id, n, d, rng)
        x = (rng.standard_normal((t, d)) * 2).astype(np.float32)
        for plain in (False, True):
            be = opt.OptimizedBackend(activation_quant="peer", n_threads=2,
                                      plain={"w"} if plain else frozenset())
            got = call_guarded(be.matmul, (t, n), w, x)
            want = oracle.mul_mat(w.data, type_id, n, d, x, repack=not plain)
            assert got.tobytes() == want.tobytes(), f"{G(type_id).name} [{isa}] N={n} T={t} plain={plain}"


@needs_ext
@pytest.mark.llamacpp
def test_elementwise_ops_are_libggml(isa: str, oracle: Any) -> None:
    """RMSNorm, softmax (scaled and masked, lengths around 16), SwiGLU (its libm tail), and
    RoPE (both modes, YaRN, frequency factors, partial rotation) as ggml computes them."""
    rng = np.random.default_rng(7)
    be = opt.OptimizedBackend(activation_quant="peer")
    for d in (576, 100, 7):
        x = (rng.standard_normal((5, d)) * 3).astype(np.float32)
        want = oracle.rms_norm(x, 1e-5)
        assert call_guarded(be.rms_norm, x.shape, x, None, 1e-5).tobytes() == want.tobytes(), d
    for k in (256, 37, 16, 300):
        x = (rng.standard_normal((6, k)) * 4).astype(np.float32)
        mask = np.where(rng.random((6, k)) < 0.3, -np.inf, 0).astype(np.float32)
        mask[:, 0] = 0
        want = oracle.soft_max(x, 0.125, mask)
        assert call_guarded(be.softmax, x.shape, x * np.float32(0.125) + mask).tobytes() == want.tobytes(), k
    for f in (1536, 100, 37):
        g = (rng.standard_normal((3, f)) * 4).astype(np.float32)
        u = rng.standard_normal((3, f)).astype(np.float32)
        assert call_guarded(be.swiglu, g.shape, g, u).tobytes() == oracle.swiglu(g, u).tobytes(), f
    pos = np.array([0, 5, 77, 4000])
    for mode in (ROPE_NORMAL, ROPE_NEOX):
        for n_dims, d, kw in ((64, 64, {}), (128, 128, {}), (32, 64, {}), (64, 64, {"freq_base": 500000.0}),
                              (64, 64, {"ext_factor": 1.0, "freq_scale": 0.25, "n_ctx_orig": 2048}),
                              (64, 64, {"freq_factors": np.linspace(1, 4, 32, dtype=np.float32)}),
                              (64, 64, {"attn_factor": 0.7, "freq_scale": 0.5})):
            x = (rng.standard_normal((4, 3, d)) * 3).astype(np.float32)
            p = RopeParams(n_dims=n_dims, mode=mode, **kw)
            want = oracle.rope(x, pos, n_dims, mode, **kw)
            assert call_guarded(be.rope, x.shape, x, pos, p).tobytes() == want.tobytes(), (mode, n_dims, kw)


# --------------------------------------------------------------------------------------
# each op against the numpy reference of the same order


def _attention_case(rng: np.random.Generator, t: int,
                    kv_dtype: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    h, hkv, d, k = 6, 2, 64, 70
    q = (rng.standard_normal((t, h, d)) * 2).astype(np.float32)
    kc = rng.standard_normal((k, hkv, d)).astype(kv_dtype)
    vc = rng.standard_normal((k, hkv, d)).astype(kv_dtype)
    kv_pos = np.arange(k, dtype=np.int64)
    kv_pos[[3, 17]] = -1  # empty cells
    q_pos = np.arange(k - t, k, dtype=np.int64)
    return q, kc, vc, q_pos, kv_pos


def _per_query(rng: np.random.Generator, kv_pos: np.ndarray, q_pos: np.ndarray) -> np.ndarray:
    """(T, K) mask rows as a cache shared by several sequences gives them: ~30% of the cells
    belong to another sequence (-1); a query's own cell (cell index = position) stays."""
    rows = np.tile(kv_pos, (q_pos.size, 1))
    drop = rng.random(rows.shape) < 0.3
    drop[np.arange(q_pos.size), q_pos] = False
    rows[drop] = -1
    return rows


@needs_ext
def test_ops_equal_numpy_peer_backend(isa: str) -> None:
    """Every op the graph calls, C vs `bitnet.numerics.PeerBackend` (numpy), same bytes: the
    matmuls of the types that reference calls exact, RMSNorm, RoPE, softmax and SwiGLU on
    whole 16-lane groups (the libm tails are llama.cpp's, checked against libggml above),
    attention with an F16 cache for one query (vec_dot_f16 sums) and a batch (tinyBLAS), with
    one mask row for all queries and a row per query."""
    rng = np.random.default_rng(3)
    c, ref = opt.OptimizedBackend(activation_quant="peer", n_threads=2), PeerBackend()
    for type_id in sorted(set(TYPES) & set(EXACT_TYPES)):
        d = 128 if type_id in (G.F16, G.F32) else TYPES[type_id]  # vec_dot tails: against libggml
        for n, t in SHAPES:
            w = _weight(type_id, n, d, rng)
            x = (rng.standard_normal((t, d)) * 2).astype(np.float32)
            assert c.matmul(w, x).tobytes() == ref.matmul(w, x).tobytes(), (G(type_id).name, n, t)
    x = (rng.standard_normal((4, 576)) * 3).astype(np.float32)
    wn = rng.standard_normal(576).astype(np.float32)
    assert c.rms_norm(x, wn, 1e-5).tobytes() == ref.rms_norm(x, wn, 1e-5).tobytes()
    for mode in (ROPE_NORMAL, ROPE_NEOX):
        p = RopeParams(n_dims=64, mode=mode, freq_base=10000.0)
        xr = (rng.standard_normal((3, 5, 64)) * 3).astype(np.float32)
        pos = np.array([0, 9, 300])
        assert c.rope(xr, pos, p).tobytes() == ref.rope(xr, pos, p).tobytes(), mode
    s = (rng.standard_normal((5, 128)) * 4).astype(np.float32)
    s[:, 100:] = -np.inf
    assert c.softmax(s).tobytes() == ref.softmax(s).tobytes()
    g = (rng.standard_normal((3, 1536)) * 4).astype(np.float32)
    u = rng.standard_normal((3, 1536)).astype(np.float32)
    assert c.swiglu(g, u).tobytes() == ref.swiglu(g, u).tobytes()
    for t in (1, 3):
        q, kc, vc, q_pos, kv_pos = _attention_case(rng, t, np.float16)
        for kvp in (kv_pos, _per_query(rng, kv_pos, q_pos)):
            case = (q, kc, vc, q_pos, kvp)
            assert c.attention(*case, 0.125).tobytes() == ref.attention(*case, 0.125).tobytes(), t


# --------------------------------------------------------------------------------------
# threads


@needs_ext
def test_thread_count_changes_no_bit() -> None:
    """Matmuls split output rows, never a sum: 1, 2, 3 and 7 threads give the same bytes,
    for one token (the two-row decode kernels) and a batch; so does attention."""
    rng = np.random.default_rng(5)
    for type_id in (G.Q4_1, G.Q8_0, G.TQ2_0, G.Q4_K, G.F16):
        d = TYPES[type_id]
        w = _weight(type_id, 37, d, rng)
        for t in (1, 9):
            x = rng.standard_normal((t, d)).astype(np.float32)
            outs = {k: opt.OptimizedBackend(activation_quant="peer", n_threads=k).matmul(w, x).tobytes()
                    for k in (1, 2, 3, 7)}
            assert len(set(outs.values())) == 1, (G(type_id).name, t)
    case = _attention_case(rng, 5, np.float16)
    outs = {k: opt.OptimizedBackend(activation_quant="peer", n_threads=k).attention(*case, 0.125).tobytes()
            for k in (1, 2, 3)}
    assert len(set(outs.values())) == 1


# --------------------------------------------------------------------------------------
# whole models against llama-cpp-python


def _synthetic(kind: str) -> Path:
    from bitnet_harness.synthetic import synthetic_path

    return synthetic_path(kind)


def _llamacpp_run(path: Path, tokens: List[int], n_decode: int, threads: int, n_batch: int,
                  logits_all: bool) -> Tuple[np.ndarray, List[np.ndarray], List[int]]:
    """llama-cpp-python's Llama: the prompt in n_batch evals, then greedy single tokens.
    -> (prompt logits (rows, V): all rows or the last, [decode logits (V,)], the tokens)."""
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=256, n_batch=n_batch, n_threads=threads, n_threads_batch=threads,
                          logits_all=logits_all, verbose=False)
    try:
        n_vocab = llm.n_vocab()

        def last() -> np.ndarray:
            ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()

        llm.eval(tokens)
        prompt = np.array(llm.scores[: len(tokens)]) if logits_all else last()[None]
        steps, picked = [], []
        tok = int(np.argmax(prompt[-1]))
        for _ in range(n_decode):
            picked.append(tok)
            llm.eval([tok])
            steps.append(last())
            tok = int(np.argmax(steps[-1]))
        return prompt, steps, picked
    finally:
        llm.close()


def _ours(path: Path, tokens: List[int], picked: List[int], threads: int, n_batch: int,
          logits_all: bool) -> Tuple[np.ndarray, List[np.ndarray]]:
    """The same schedule on runtime.load_model(numerics="llama.cpp"), fed llama.cpp's
    picked tokens (so one differing step does not hide the others)."""
    model = runtime.load_model(str(path), numerics="llama.cpp", n_threads=threads)
    ctx = Context(model, n_ctx=256, n_batch=n_batch, kv_type="f16")
    prompt = ctx.eval(tokens, all_logits=logits_all)
    steps = [ctx.eval([tok], all_logits=False)[-1].copy() for tok in picked]
    return prompt, steps


def _first_difference(a: np.ndarray, b: np.ndarray) -> str:
    diff = np.flatnonzero(a.reshape(-1) != b.reshape(-1))
    return "equal" if diff.size == 0 else f"{diff.size} values differ, first at flat index {diff[0]}"


PROMPT = b"The quick brown fox jumps over the lazy dog, and then"
SYNTHETIC = ("llama-f16", "llama-q8_0", "llama-q4_0", "llama-q4_1", "llama-q5_0", "llama-q5_1", "llama-q4_k",
             "llama-q5_k", "llama-q6_k", "bitnet-tq1_0", "bitnet-tq2_0")
QUICK = {"llama-f16", "llama-q4_0", "llama-q5_k", "bitnet-tq1_0"}  # one of each kernel family; the rest slow


def _tokens(path: Path) -> List[int]:
    from bitnet.gguf import load
    from bitnet.tokenizers import from_gguf_kv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(from_gguf_kv(load(str(path)).kv).tokenize(PROMPT, True, False))


@needs_ext
@pytest.mark.llamacpp
@pytest.mark.parametrize("kind", [k if k in QUICK else pytest.param(k, marks=pytest.mark.slow)
                                  for k in SYNTHETIC])
def test_synthetic_model_logits_are_llamacpp(kind: str) -> None:
    """Every weight type's synthetic model (2 layers, width 256): the prompt's logits at
    every position (logits_all, one batch) and 4 greedy decode steps, bytes equal."""
    if not _llamacpp_exact():
        pytest.skip("llama.cpp's build is not the x86 AVX-512 one these orders describe")
    path = _synthetic(kind)
    tokens = _tokens(path)
    want_prompt, want_steps, picked = _llamacpp_run(path, tokens, 4, 1, 512, True)
    got_prompt, got_steps = _ours(path, tokens, picked, 1, 512, True)
    assert got_prompt.tobytes() == want_prompt.tobytes(), \
        f"{kind} prompt: {_first_difference(got_prompt, want_prompt)}"
    for i, (g, w) in enumerate(zip(got_steps, want_steps)):
        assert g.tobytes() == w.tobytes(), f"{kind} decode step {i}: {_first_difference(g, w)}"


SCHEDULES: Dict[str, Tuple[int, int, bool]] = {  # threads, n_batch, logits_all
    "1 thread, one batch, all logits": (1, 512, True),
    "2 threads, one batch, last logits": (2, 512, False),
    "2 threads, batches of 5, last logits": (2, 5, False),
}


@needs_ext
@pytest.mark.llamacpp
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_smollm2_logits_are_llamacpp(schedule: str) -> None:
    """SmolLM2-135M Q4_1 (Q8_0 output matrix): the prompt logits and 8 greedy decode steps on
    llama-cpp-python's schedule (n_batch chunks, then one token per eval), bytes equal, at 1
    and 2 threads, with and without logits_all (which decides the rows of the last layer's
    FFN and of the output matmul)."""
    if not _llamacpp_exact():
        pytest.skip("llama.cpp's build is not the x86 AVX-512 one these orders describe")
    from bitnet_harness.corpora import SMOLLM2, corpus_path

    threads, n_batch, logits_all = SCHEDULES[schedule]
    path = corpus_path(SMOLLM2)
    tokens = _tokens(path)
    want_prompt, want_steps, picked = _llamacpp_run(path, tokens, 8, threads, n_batch, logits_all)
    got_prompt, got_steps = _ours(path, tokens, picked, threads, n_batch, logits_all)
    assert got_prompt.tobytes() == want_prompt.tobytes(), _first_difference(got_prompt, want_prompt)
    for i, (g, w) in enumerate(zip(got_steps, want_steps)):
        assert g.tobytes() == w.tobytes(), f"decode step {i}: {_first_difference(g, w)}"


@needs_ext
def test_fused_forward_matches_per_op_path_and_threads() -> None:
    """The fused C forward (one call for all layers) gives the per-op path's bytes (a layer
    hook forces op by op), with 1 and 3 threads, for a batch with every row an output, a
    batch with the last row only (the last layer's FFN pruned, then `embeddings` completing
    the other rows), single tokens, and a ubatch of two sequences sharing the cache (a mask
    row per token)."""
    path = _synthetic("bitnet-tq2_0")

    def run(threads: int, hook: bool) -> List[bytes]:
        model = runtime.load_model(str(path), numerics="llama.cpp", n_threads=threads)
        ctx = Context(model, n_ctx=64, n_batch=16, kv_type="f16", n_seq=2)
        if hook:
            ctx.layer_hook = lambda il, x: None
        out = [ctx.eval(list(range(100, 112)), all_logits=True).tobytes()]
        out.append(ctx.eval(list(range(200, 209)), all_logits=False).tobytes())
        emb: Optional[np.ndarray] = ctx.embeddings
        assert emb is not None and emb.shape[0] == 9
        out.append(emb.tobytes())
        for tok in (5, 6, 7):
            out.append(ctx.eval([tok], all_logits=False).tobytes())
        ctx.cache.seq_cp(0, 1, -1, -1)
        n = ctx.n_past
        h, _ = forward(model.backend, model.hparams, model.weights, ctx.cache, np.array([8, 9, 10, 11]),
                       np.array([n, n, n + 1, n + 1]), ctx.layer_hook, 4, seqs=[(0,), (1,), (0,), (1,)])
        out.append(h.tobytes())
        return out

    base = run(1, hook=True)
    for threads, hook in ((1, False), (3, False), (3, True)):
        assert run(threads, hook) == base, (threads, hook)


# --------------------------------------------------------------------------------------
# flash attention (llama.cpp's C default): libggml's kernel, the C and numpy of its order

# (T queries, K cells in llama.cpp's KV view, used cells): the one-chunk path (a few queries),
# the tiled one (T >= 64), the split-KV one (one query, a view of >= 512 cells: one chunk
# of cells per thread, so its bits depend on the thread count)
FA_CASES = ((1, 256, 70), (5, 256, 200), (70, 256, 150), (1, 512, 300), (1, 768, 700), (3, 512, 400))


def _fa_case(rng: np.random.Generator, t: int, k: int, used: int,
             kv_dtype: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """q, k, v, q_pos, kv_pos (two empty cells among the used ones), and the (T, K) mask."""
    h, hkv, d = 6, 2, 64
    q = (rng.standard_normal((t, h, d)) * 2).astype(np.float32)
    kc = rng.standard_normal((k, hkv, d)).astype(kv_dtype)
    vc = rng.standard_normal((k, hkv, d)).astype(kv_dtype)
    kv_pos = np.full(k, -1, dtype=np.int64)
    kv_pos[:used] = np.arange(used)
    kv_pos[[3, 17]] = -1
    q_pos = np.arange(used - t, used, dtype=np.int64)
    mask = np.where((kv_pos[None] >= 0) & (kv_pos[None] <= q_pos[:, None]), 0.0, -np.inf).astype(np.float32)
    return q, kc, vc, q_pos, kv_pos, mask


@pytest.mark.llamacpp
@pytest.mark.parametrize("kv_dtype", [np.float16, np.float32], ids=["f16", "f32"])
def test_flash_attention_is_libggml(isa: str, oracle: Any, kv_dtype: Any) -> None:
    """ggml_flash_attn_ext on llama.cpp's CPU backend at 1, 2 and 3 threads against the C
    (bn_flash_attention) told the same thread count and KV view: the same bytes on every
    path, F16 and F32 caches; one mask row for all queries and a row per query."""
    rng = np.random.default_rng(11)
    c = opt.OptimizedBackend(activation_quant="peer", n_threads=2)
    for t, k, used in FA_CASES:
        q, kc, vc, q_pos, kv_pos, mask = _fa_case(rng, t, k, used, kv_dtype)
        rows = _per_query(rng, kv_pos, q_pos)
        row_mask = np.where((rows >= 0) & (rows <= q_pos[:, None]), 0.0, -np.inf).astype(np.float32)
        for kvp, msk in ((kv_pos, mask), (rows, row_mask)):
            for nth in (1, 2, 3):
                want = oracle.flash_attn_ext(q, kc, vc, msk, 0.125, n_threads=nth).reshape(t, -1)
                got = c.attention(q, kc, vc, q_pos, kvp, 0.125, flash=FlashAttn(n_threads=nth, n_view=k))
                assert got.tobytes() == want.tobytes(), (t, k, used, nth, kvp.ndim)


@needs_ext
def test_flash_attention_equals_numpy(isa: str) -> None:
    """The C flash attention against `bitnet.numerics.flash` (numpy), same bytes on every path
    and thread count; the split-KV path at one thread is the one-chunk order, and its
    thread count changes bits (so llama.cpp's must be followed)."""
    rng = np.random.default_rng(12)
    c, ref = opt.OptimizedBackend(activation_quant="peer", n_threads=3), PeerBackend()
    for t, k, used in FA_CASES:
        case = _fa_case(rng, t, k, used, np.float16)[:5]
        outs = []
        for nth in (1, 2, 3):
            fa = FlashAttn(n_threads=nth, n_view=k)
            got = c.attention(*case, 0.125, flash=fa)
            assert got.tobytes() == ref.attention(*case, 0.125, flash=fa).tobytes(), (t, k, used, nth)
            outs.append(got.tobytes())
        if t == 1 and k >= 512:
            # numpy's one-chunk order over the same cells (a view < 512 picks it)
            chunk = ref.attention(*case, 0.125, flash=FlashAttn(n_threads=1, n_view=256)).tobytes()
            assert outs[0] == chunk and len(set(outs)) > 1, (k, used)
        else:
            assert len(set(outs)) == 1, (t, k)
