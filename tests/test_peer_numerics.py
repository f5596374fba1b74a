"""`bitnet.numerics.PeerBackend` against llama.cpp's own intermediate tensors.

llama.cpp's eval callback (`cb_eval` in llama_context_params, reached through
llama-cpp-python's ctypes bindings) hands every graph node to Python; the tensors are read
with libggml's ggml_backend_tensor_get. Each PeerBackend op is fed llama.cpp's input for
that op and must give llama.cpp's output bit for bit, per layer, for a batched prefill
(tinyBLAS sums) and a single-token decode (ggml_vec_dot sums); then the whole forward pass
must reproduce every layer's residual stream and the logits. On failure the message names
the first op and layer that differ: the tool for finding where numerics diverge.

Run only where PeerBackend claims bit-exactness (`emulates_llamacpp_build`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import warnings
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest

from bitnet.model import Context, Model
from bitnet.model.graphs import rope_params
from bitnet.numerics import PeerBackend, emulates_llamacpp_build, f16_dot, v_expf
from bitnet.numerics.floats import fma
from bitnet.ops import ROPE_NEOX, ROPE_NORMAL, RopeParams
from bitnet_harness.corpora import SMOLLM2, corpus_path

from .ggml_oracle import GgmlOracle

PROMPT = b"The capital of France is"


class _GgmlTensorHead(ctypes.Structure):
    """The leading fields of ggml.h's struct ggml_tensor (type, buffer, ne[4], nb[4])."""

    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4)]


class LlamaCppDump:
    """A llama.cpp context (llama-cpp-python's defaults: no flash attention, F16 cache, one
    thread) whose graph nodes named by `want` are copied out during `decode`.

    store[name] lists every node of that name computed, in order, as numpy arrays in numpy
    order (ne reversed); only F32 and F16 nodes are kept.
    """

    def __init__(self, path: str, want: Callable[[str], bool], n_ctx: int = 256) -> None:
        import llama_cpp as L

        self.L = L
        lib = os.path.join(os.path.dirname(L.__file__), "lib", "libggml-base.so")
        g = ctypes.CDLL(lib)
        g.ggml_get_name.restype = ctypes.c_char_p
        g.ggml_get_name.argtypes = [ctypes.c_void_p]
        g.ggml_nbytes.restype = ctypes.c_size_t
        g.ggml_nbytes.argtypes = [ctypes.c_void_p]
        g.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                              ctypes.c_size_t]
        self.ggml = g
        self.want = want
        self.store: Dict[str, List[np.ndarray]] = {}
        self.model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_threads = cp.n_threads_batch = 1
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED  # llama-cpp-python's default
        self._cb = L.ggml_backend_sched_eval_callback(self._on_tensor)
        cp.cb_eval = self._cb
        cp.cb_eval_user_data = None
        self.ctx = L.llama_init_from_model(self.model, cp)
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)

    def _on_tensor(self, t: int, ask: bool, _user: Any) -> bool:
        name = self.ggml.ggml_get_name(t).decode()
        if ask:
            return self.want(name)
        head = _GgmlTensorHead.from_address(t)
        if head.type not in (0, 1):  # F32, F16
            return True
        nbytes = self.ggml.ggml_nbytes(t)
        raw = np.empty(nbytes, dtype=np.uint8)
        self.ggml.ggml_backend_tensor_get(t, raw.ctypes.data, 0, nbytes)
        dtype = np.float32 if head.type == 0 else np.float16
        shape = tuple(reversed(list(head.ne)))
        strides = tuple(reversed(list(head.nb)))
        arr = np.ndarray(shape=shape, dtype=dtype, buffer=raw, strides=strides).copy()
        self.store.setdefault(name, []).append(arr)
        return True

    def tokenize(self, text: bytes) -> List[int]:
        buf = (self.L.llama_token * 512)()
        n = self.L.llama_tokenize(self.vocab, text, len(text), buf, 512, True, True)
        return list(buf[:n])

    def decode(self, tokens: List[int], pos0: int) -> np.ndarray:
        """Evaluate tokens at positions pos0.. (logits for all) -> (T, n_vocab)."""
        L = self.L
        n = len(tokens)
        b = L.llama_batch_init(n, 0, 1)
        try:
            for i, tok in enumerate(tokens):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos0 + i, 1, 1
                b.seq_id[i][0] = 0
            b.n_tokens = n
            rc = L.llama_decode(self.ctx, b)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
            logits = L.llama_get_logits(self.ctx)
            return np.ctypeslib.as_array(logits, shape=(n * self.n_vocab,)).reshape(n, -1).copy()
        finally:
            L.llama_batch_free(b)

    def close(self) -> None:
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)


def _wanted(name: str) -> bool:
    base = name.split("-")[0]
    return base in {
        "embd", "attn_norm", "Qcur", "Kcur", "Vcur", "kq", "kq_soft_max", "kqv_out", "attn_out",
        "ffn_inp", "ffn_norm", "ffn_gate", "ffn_up", "ffn_swiglu", "ffn_out", "l_out",
        "result_norm", "result_output",
    } or (name.startswith("cache_") and name.endswith("(view) (permuted)"))


def _llamacpp_emulated() -> bool:
    llama_cpp = pytest.importorskip("llama_cpp")
    return emulates_llamacpp_build(llama_cpp.llama_print_system_info().decode())


@pytest.fixture(scope="module")
def smollm2_peer() -> Model:
    """SmolLM2-135M Q4_1 on PeerBackend (its numpy matmuls)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Model.load(corpus_path(SMOLLM2), backend=PeerBackend())


def _op_mismatches(d: LlamaCppDump, model: Model, t: int, pos0: int) -> List[Tuple[str, int, int]]:
    """(op, layer, differing elements) for each op of every layer, fed llama.cpp's inputs."""
    hp, w, ops = model.hparams, model.weights, model.backend
    hd, h, hkv = hp.n_embd_head_k, hp.n_head, hp.n_head_kv
    pos = np.arange(pos0, pos0 + t)
    rope = rope_params(hp)

    def g(name: str, i: int = -1) -> np.ndarray:
        return d.store[name][i].reshape(t, -1)

    bad: List[Tuple[str, int, int]] = []

    def check(op: str, il: int, ours: np.ndarray, theirs: np.ndarray) -> None:
        n = int((np.asarray(ours).reshape(theirs.shape) != theirs).sum())
        if n:
            bad.append((op, il, n))

    for il, lw in enumerate(w.layers):
        inp = g("embd") if il == 0 else g(f"l_out-{il - 1}")
        check("attn_norm", il, ops.rms_norm(inp, lw.attn_norm, hp.rms_eps), g(f"attn_norm-{il}"))
        an = g(f"attn_norm-{il}")
        # Qcur/Kcur/Vcur: [0] is the matmul, [-1] the roped (or reshaped) result
        check("wq", il, ops.matmul(lw.wq.w, an), g(f"Qcur-{il}", 0))
        check("wk", il, ops.matmul(lw.wk.w, an), g(f"Kcur-{il}", 0))
        check("wv", il, ops.matmul(lw.wv.w, an), g(f"Vcur-{il}", 0))
        check("rope_q", il, ops.rope(g(f"Qcur-{il}", 0).reshape(t, h, hd), pos, rope), g(f"Qcur-{il}"))
        check("rope_k", il, ops.rope(g(f"Kcur-{il}", 0).reshape(t, hkv, hd), pos, rope), g(f"Kcur-{il}"))
        kc = d.store[f"cache_k_l{il} (view) (permuted)"][-1][0]  # (Hkv, K, d)
        vc = d.store[f"cache_v_l{il} (view) (permuted)"][-1][0]  # (Hkv, d, K)
        q = g(f"Qcur-{il}").reshape(t, h, hd)
        n_kv = pos0 + t
        att = ops.attention(q, kc.transpose(1, 0, 2)[:n_kv], vc.transpose(2, 0, 1)[:n_kv], pos,
                            np.arange(n_kv), hp.attention_scale or 1.0 / np.sqrt(hd))
        check("attention", il, att, g(f"kqv_out-{il}"))
        kq = d.store[f"kq-{il}"][-1][0]  # (H, T, K)
        visible = np.arange(kq.shape[-1])[None, :] <= pos[:, None]
        scores = np.where(visible[None], kq * np.float32(1.0 / np.sqrt(hd)), -np.inf).astype(np.float32)
        check("softmax", il, ops.softmax(scores), d.store[f"kq_soft_max-{il}"][-1][0])
        check("wo", il, ops.matmul(lw.wo.w, g(f"kqv_out-{il}")), g(f"attn_out-{il}"))
        check("ffn_norm", il, ops.rms_norm(g(f"ffn_inp-{il}"), lw.ffn_norm, hp.rms_eps), g(f"ffn_norm-{il}"))
        fn = g(f"ffn_norm-{il}")
        check("ffn_gate", il, ops.matmul(lw.ffn_gate.w, fn), g(f"ffn_gate-{il}"))
        check("ffn_up", il, ops.matmul(lw.ffn_up.w, fn), g(f"ffn_up-{il}"))
        check("swiglu", il, ops.swiglu(g(f"ffn_gate-{il}"), g(f"ffn_up-{il}")), g(f"ffn_swiglu-{il}"))
        check("ffn_down", il, ops.matmul(lw.ffn_down.w, g(f"ffn_swiglu-{il}")), g(f"ffn_out-{il}"))
    check("output_norm", -1, ops.rms_norm(g("l_out-29"), w.output_norm, hp.rms_eps), g("result_norm"))
    check("output", -1, ops.matmul(w.output, g("result_norm")), g("result_output"))
    return bad


@pytest.mark.llamacpp
def test_peer_backend_reproduces_llamacpp_tensors(smollm2_peer: Model) -> None:
    # Measured: 0 differing elements in every op of every layer, for the prefill of PROMPT
    # (5 tokens) and the decode of llama.cpp's next token; residuals and logits identical.
    if not _llamacpp_emulated():
        pytest.skip("PeerBackend is bit-exact only for llama.cpp's x86 AVX-512 CPU build")
    d = LlamaCppDump(str(corpus_path(SMOLLM2)), _wanted)
    try:
        ctx = Context(smollm2_peer, n_ctx=256, kv_type="f16")
        residuals: Dict[int, np.ndarray] = {}
        ctx.layer_hook = lambda il, x: residuals.__setitem__(il, x.copy())
        tokens = d.tokenize(PROMPT)
        pos0 = 0
        for _ in range(2):  # the batched prefill, then one decode step
            d.store.clear()
            ref = d.decode(tokens, pos0)
            t = len(tokens)
            # every op fed llama.cpp's inputs (t >= 2: tinyBLAS sums; t == 1: vec_dot)
            assert _op_mismatches(d, smollm2_peer, t, pos0) == [], f"T={t}: (op, layer, n)"
            # the whole forward pass on our own values
            ours = ctx.eval(tokens)
            diverged = [il for il in sorted(residuals)
                        if not np.array_equal(residuals[il], d.store[f"l_out-{il}"][-1].reshape(t, -1))]
            assert diverged == [], f"T={t}: residual differs from llama.cpp after layers {diverged}"
            assert np.array_equal(ours, ref)
            pos0 += t
            tokens = [int(np.argmax(ref[-1]))]
    finally:
        d.close()


def test_peer_numerics_primitives() -> None:
    # ggml_v_expf is a polynomial adapted from ARM's optimized routines (vec.h: "maximum
    # error 1.45358 plus 0.5 ulps"); on this grid it measures up to 2.17 ulp (357 of 200001
    # points above 1.95), so 2.5 ulp. (Its exact bits are checked against llama.cpp above,
    # through the softmax and SwiGLU tensors.)
    x = np.linspace(-87.0, 88.0, 200_001, dtype=np.float32)
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(v_expf(x) - exact) / ulp) < 2.5
    assert v_expf(np.array([-np.inf, -120.0, 100.0], dtype=np.float32)).tolist() == [0.0, 0.0, np.inf]
    # both summation orders of the F16 dot (tinyBLAS, vec_dot_f16 with K % 64 leftovers)
    # are dot products: float32 rounding of the exact sum
    rng = np.random.default_rng(3)
    for k in (64, 80, 256):
        a = rng.standard_normal((5, k)).astype(np.float16).astype(np.float32)
        b = rng.standard_normal((5, k)).astype(np.float16).astype(np.float32)
        ref = (a.astype(np.float64) * b).sum(-1)
        for tiny in (False, True):
            np.testing.assert_allclose(f16_dot(a, b, tinyblas=tiny), ref, rtol=0, atol=1e-4)


def _libm_fmaf() -> Callable[[float, float, float], float]:
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    f = libm.fmaf
    f.restype = ctypes.c_float
    f.argtypes = [ctypes.c_float] * 3
    return f


def test_fma_is_exact() -> None:
    """numerics.floats.fma equals the C library's fmaf bit for bit, also where a float64
    a*b + c rounds twice (the sum lands on a float32 midpoint)."""
    fmaf = _libm_fmaf()
    one_up, one_down = np.float32(1 + 2**-23), np.float32(1 - 2**-23)
    # (1 + 2^-23)(1 - 2^-23) = 1 - 2^-46: 2^24 + 3 - 2^-46 rounds to 2^24 + 2, but the
    # float64 sum is the midpoint 2^24 + 3, which ties to 2^24 + 4
    assert float(fma(one_up, one_down, np.float32(2**24 + 2))) == 2**24 + 2
    assert float(np.float32(np.float64(one_up) * one_down + (2**24 + 2))) == 2**24 + 4
    rng = np.random.default_rng(7)
    a = rng.standard_normal(3000).astype(np.float32) * np.float32(1e3)
    b = rng.standard_normal(3000).astype(np.float32)
    c = -(a.astype(np.float64) * b).astype(np.float32)  # cancellation: the product's tail
    c[::2] = rng.standard_normal(1500).astype(np.float32)
    ours = fma(a, b, c)
    ref = np.array([fmaf(float(x), float(y), float(z)) for x, y, z in zip(a, b, c)], dtype=np.float32)
    assert np.array_equal(ours, ref)


def test_emulated_build_flags() -> None:
    """The builds PeerBackend reproduces: x86 AVX-512 with FMA and the repack buffer, no AMX;
    AVX512-FP16 in /proc/cpuinfo does not matter (llama.cpp's non-flash-attention ops never
    use FP16 arithmetic)."""
    ours = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
            "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | "
            "OPENMP = 1 | REPACK = 1 | ")
    assert emulates_llamacpp_build(ours)
    assert not emulates_llamacpp_build(ours.replace("AVX512 = 1", "AVX512 = 0"))  # 8-lane code
    assert not emulates_llamacpp_build(ours.replace("REPACK = 1 | ", ""))  # no q4_0_8x8
    assert not emulates_llamacpp_build(ours + "AMX_INT8 = 1 | ")  # AMX tiles take the matmuls
    # and nothing about the machine beyond the build's flags (an AVX512-FP16 CPU made the
    # bit-exact tests skip before): scripts/setup.sh's build on an AVX-512 CPU is emulated
    llama_cpp = pytest.importorskip("llama_cpp")
    info = llama_cpp.llama_print_system_info().decode()
    if all(f in info for f in ("AVX512 = 1", "FMA = 1", "REPACK = 1")) and "AMX_INT8 = 1" not in info:
        assert emulates_llamacpp_build(info), info


@pytest.fixture(scope="module")
def ggml() -> GgmlOracle:
    if not _llamacpp_emulated():
        pytest.skip("PeerBackend is bit-exact only for llama.cpp's x86 AVX-512 CPU build")
    return GgmlOracle()


@pytest.mark.llamacpp
def test_elementwise_ops_bits_equal_libggml(ggml: GgmlOracle) -> None:
    """Each non-matmul op as llama.cpp's ggml computes it (one-op graphs): RMSNorm; softmax
    (scaled, masked) and SwiGLU with lengths that leave a libm tail after the 16-lane groups;
    RoPE in both modes with partial rotation, other bases, YaRN, frequency factors and
    attn_factor; relu^2 GLU (llama.cpp's LLM_FFN_RELU_SQR + PAR ops: bitnet-b1.58's FFN,
    which no llama.cpp model runs). Measured: every element equal."""
    rng = np.random.default_rng(7)
    be = PeerBackend()
    for d in (576, 100, 7):
        x = (rng.standard_normal((5, d)) * 3).astype(np.float32)
        assert np.array_equal(be.rms_norm(x, None, 1e-5), ggml.rms_norm(x, 1e-5)), d
    for k in (256, 37, 16, 300, 5):
        x = (rng.standard_normal((6, k)) * 4).astype(np.float32)
        mask = np.where(rng.random((6, k)) < 0.3, -np.inf, 0).astype(np.float32)
        mask[:, 0] = 0
        assert np.array_equal(be.softmax(x * np.float32(0.125) + mask), ggml.soft_max(x, 0.125, mask)), k
    for f in (1536, 100, 37):
        g = (rng.standard_normal((3, f)) * 4).astype(np.float32)
        u = rng.standard_normal((3, f)).astype(np.float32)
        assert np.array_equal(be.swiglu(g, u), ggml.swiglu(g, u)), f
    gate = rng.standard_normal((7, 300)).astype(np.float32) * np.float32(30.0)
    gate[0, :8] = [0.0, -0.0, np.inf, -np.inf, 1e-30, -1e-30, 3e19, 1e-20]
    up = rng.standard_normal((7, 300)).astype(np.float32)
    assert np.array_equal(be.relu2_glu(gate, up), ggml.relu_sqr_mul(gate, up), equal_nan=True)
    pos = np.array([0, 5, 77, 4000])
    yarn = {"ext_factor": 1.0, "freq_scale": 0.25, "n_ctx_orig": 2048}
    for mode in (ROPE_NORMAL, ROPE_NEOX):
        for n_dims, d, kw in ((64, 64, {}), (32, 64, {}), (64, 64, {"freq_base": 500000.0}), (64, 64, yarn),
                              (64, 64, {"freq_factors": np.linspace(1, 4, 32, dtype=np.float32)}),
                              (128, 128, dict(yarn, freq_base=500000.0, attn_factor=1.2))):
            x = (rng.standard_normal((4, 3, d)) * 3).astype(np.float32)
            ours = be.rope(x, pos, RopeParams(n_dims=n_dims, mode=mode, **kw))
            assert np.array_equal(ours, ggml.rope(x, pos, n_dims, mode, **kw)), (mode, n_dims, kw)
