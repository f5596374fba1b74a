"""bitnet_kernels: hand-vectorized C kernels behind the `bitnet.ops` Backend interface.

The C library (optimized/bitnet_kernels/kernels/, one file per kernel family, built by cffi through
setup.py's build hook) holds a scalar `*_ref`, an AVX2 and an AVX-512 (VNNI) variant of
each kernel in ONE binary (per-function target attributes, no -march=native) and picks per
call from CPUID; aarch64 builds get NEON variants (checked under qemu by
qemu_aarch64_selftest.sh). `BITNET_ISA=scalar|avx2|avx512` forces a variant (read on every
call, so tests switch it); `kernel_info()` says which variant each kernel runs (a kernel
without a variant for the requested ISA runs the next lower one). When the extension is
missing (no compiler, no cffi, failed build) `available()` is False,
`unavailable_reason()` says why, and `backend_name()` / `make_backend()` give the numpy
reference; `BITNET_BACKEND=reference|optimized` overrides the choice.

`OptimizedBackend` is a drop-in for `bitnet.ops.NumpyBackend`: same constructor keyword and
methods, shapes and semantics, plus `n_threads` (pthreads pool splitting output rows;
default BITNET_THREADS or os.cpu_count()). Differences: every method also takes `out=` (a
C-contiguous float32 array to write into), and results match the reference to float32
rounding (NMSE bounds in tests/test_optimized_kernels.py), get_rows bit-exactly.

Matmul, and which path the engine gets:
  activation_quant="none" (NumpyBackend's default, so the engine's default): the float
      path; each weight row is dequantized (bit-identical to bitnet.quants; AVX2 for F16,
      Q8_0, Q4_0, Q4_1, TQ2_0, I2_S) and dotted with the f32 activations, 4 rows at a time.
  activation_quant="peer": llama.cpp's integer path; activations are quantized per row to
      Q8_0 (Q8_0, Q4_0 weights), Q8_1 (Q4_1), Q8_K (Q4_K, Q6_K, TQ1_0, TQ2_0), per-token
      int8 (I2_S, as bitnet.cpp) or f16 (F16), then integer dot products: the faster path
      for decode. Q8_0/Q8_1 follow llama.cpp's SIMD quantize_row_q8_0/q8_1 (127/amax,
      round half to even), not the *_ref the numpy "peer" emulation uses; the activation
      bytes equal llama.cpp's and the AVX2 Q8_0/Q4_0/Q4_1 results are bit-identical to its
      ggml_vec_dot_* (tests call libggml-cpu through ctypes).
SIMD coverage of the integer dots: F16, Q8_0, Q4_0, Q4_1, TQ2_0, I2_S (AVX2, AVX-512,
NEON), Q4_K, Q6_K, TQ1_0 (AVX2, also used under AVX-512). Batches run in tiles of 16 weight
rows x 8 tokens; Q4_1, TQ2_0 and I2_S have AVX-512 forms taking one weight row against four
tokens (same bits as four single dots: batch invariance holds). RMSNorm, softmax, SwiGLU and
ReLU^2: AVX2/AVX-512 (NEON: RMSNorm, ReLU^2); RoPE is scalar C on bitnet.ops' cos/sin
tables; attention over the f32 or f16 KV cache (bn_attention: scalar, AVX2+F16C, NEON) with
the peer's f16 rounding of q and p when activation_quant="peer" and the cache is f16.
`bitnet_kernels.bench.matmul_bench()` prints GFLOP/s per type and ISA vs numpy;
`python -m bitnet_kernels.selftest` checks every variant (also in the ASan build).
Types without a C kernel (Q5_*, Q2_K, Q3_K, Q5_K, BF16, ...), weights whose byte count does
not match their shape, and attention on other cache dtypes run the reference code.

Fused forward: `OptimizedBackend.forward_layers` runs every layer of
`bitnet.model.graphs.forward` in one C call (bn_forward): one parallel region per batch,
spin-then-sleep barriers between steps, matmul rows split across threads, per-thread copies
of the small per-token work (norms, activation quantization) instead of serial sections.
It calls the same kernels in the same order as the per-op path, so results are the same bits
(tests/test_optimized_kernels.py checks it); graphs.forward uses it unless a layer_hook is
set, and falls back per op for anything it does not handle (a tensor the C cannot read,
another cache dtype).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from bitnet.ggml_types import GGML_TYPES, GGMLType, tensor_nbytes
from bitnet.ops import ROPE_NEOX, ROPE_NORMAL, NumpyBackend, QTensor, RopeParams, rope_cos_sin

__all__ = [
    "ISA_NAMES",
    "SUPPORTED_TYPES",
    "OptimizedBackend",
    "available",
    "unavailable_reason",
    "backend_name",
    "make_backend",
    "kernel_info",
    "supported_isas",
    "cpu_isa",
]

ISA_NAMES = ("scalar", "avx2", "avx512", "neon")  # index = the C enum
PARALLEL_MIN_MACS = 4_000_000  # smaller matmuls run on the calling thread (see matmul)
# ggml type ids the C matmul / get_rows handle
T = GGMLType
SUPPORTED_TYPES = frozenset({T.F32, T.F16, T.Q4_0, T.Q4_1, T.Q8_0, T.Q4_K, T.Q6_K, T.TQ1_0, T.TQ2_0, T.I2_S})
_STRUCTS = {  # C struct -> the ggml type whose bytes-per-block it must equal
    "block_q8_0": T.Q8_0, "block_q4_0": T.Q4_0, "block_q4_1": T.Q4_1, "block_q4_K": T.Q4_K,
    "block_q6_K": T.Q6_K, "block_q8_K": T.Q8_K, "block_tq1_0": T.TQ1_0, "block_tq2_0": T.TQ2_0,
    "block_i2_s": T.I2_S,
}
del T

_ffi: Any = None
_lib: Any = None
_reason = ""


def _load() -> None:
    global _ffi, _lib, _reason
    if os.environ.get("BITNET_OPTIMIZED_DISABLE", "") == "1":
        _reason = "disabled by BITNET_OPTIMIZED_DISABLE=1"
        return
    try:
        from bitnet_kernels._kernels import ffi, lib
    except ImportError as e:
        _reason = (
            f"the C extension bitnet_kernels._kernels is not importable ({e}); rebuild with "
            "`pip install -e . --no-deps --no-build-isolation` (needs cffi and a C compiler)"
        )
        return
    for struct, type_ in _STRUCTS.items():
        if ffi.sizeof(struct) != GGML_TYPES[type_].type_size:
            _reason = (
                f"C struct {struct} is {ffi.sizeof(struct)} bytes but ggml_types says "
                f"{type_.name} blocks are {GGML_TYPES[type_].type_size}"
            )
            return
    _ffi, _lib = ffi, lib


_load()


def available() -> bool:
    """True when the C kernels are built and loaded."""
    return _lib is not None


def unavailable_reason() -> str:
    """Why `available()` is False ("" when it is True)."""
    return _reason


def backend_name() -> str:
    """"optimized" or "reference": BITNET_BACKEND if set, else optimized when available.

    BITNET_BACKEND=optimized on a machine without the extension gives "reference" (the
    reason is in `unavailable_reason()`); any other value raises ValueError.
    """
    want = os.environ.get("BITNET_BACKEND", "").strip().lower()
    if want not in ("", "optimized", "reference"):
        raise ValueError(f"BITNET_BACKEND={want!r}; expected 'optimized' or 'reference'")
    if want == "reference" or not available():
        return "reference"
    return "optimized"


def make_backend(*, activation_quant: str = "none", n_threads: Optional[int] = None) -> NumpyBackend:
    """The backend `backend_name()` selects, built with these options."""
    if backend_name() == "optimized":
        return OptimizedBackend(activation_quant=activation_quant, n_threads=n_threads)
    return NumpyBackend(activation_quant=activation_quant)


# --------------------------------------------------------------------------------------
# ISA selection

_applied_isa: Optional[str] = None


def cpu_isa() -> str:
    """The best variant this CPU runs ("scalar" when the extension is missing)."""
    return ISA_NAMES[_lib.bn_cpu_isa()] if available() else "scalar"


def supported_isas() -> List[str]:
    """The variants this CPU can run, lowest first (BITNET_ISA accepts these)."""
    best = cpu_isa()
    if best == "neon":
        return ["scalar", "neon"]
    return list(ISA_NAMES[: ISA_NAMES.index(best) + 1])


def _sync_isa() -> None:
    """Apply BITNET_ISA (unset = best) to the library if it changed since the last call."""
    global _applied_isa
    want = os.environ.get("BITNET_ISA", "").strip().lower()
    if want == _applied_isa:
        return
    if want and want not in ISA_NAMES:
        raise ValueError(f"BITNET_ISA={want!r}; expected one of {', '.join(ISA_NAMES)}")
    if want and want not in supported_isas():
        raise ValueError(f"BITNET_ISA={want}: this CPU runs only {', '.join(supported_isas())}")
    _lib.bn_set_isa(ISA_NAMES.index(want) if want else 99)
    _applied_isa = want


def kernel_info() -> Dict[str, str]:
    """Kernel name -> the ISA variant it runs now (honours BITNET_ISA); plus "cpu" and
    "threads". Without the extension every entry says "reference (numpy)"."""
    if not available():
        return {"backend": "reference (numpy)", "reason": _reason}
    _sync_isa()
    info = {
        _ffi.string(_lib.bn_kernel_name(k)).decode(): ISA_NAMES[_lib.bn_kernel_variant(k)]
        for k in range(_lib.bn_kernel_count())
    }
    info["cpu"] = cpu_isa()
    info["threads"] = "pthreads pool, output rows split across n_threads"
    return info


# --------------------------------------------------------------------------------------
# buffers


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _out(out: Optional[np.ndarray], shape: Tuple[int, ...]) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous float32 array of shape {shape}, got {out.dtype} "
            f"{out.shape} (contiguous={out.flags.c_contiguous})"
        )
    return out


def _ptr(ctype: str, a: Any) -> Any:
    return _ffi.from_buffer(ctype, a)


def _check(rc: int, what: str) -> None:
    if rc == -2:
        raise ValueError(f"{what}: row length is not a multiple of the block size or ids out of range")
    if rc == -3:
        raise MemoryError(f"{what}: out of memory for the quantized activations")
    if rc != 0:
        raise RuntimeError(f"{what}: C kernel returned {rc}")


def _c_can_read(w: QTensor) -> bool:
    """A 2-D weight of a type the C handles, whose byte count matches its shape; anything
    else goes to the reference, which raises the proper error for bad sizes."""
    if w.type_id not in SUPPORTED_TYPES or len(w.shape) != 2:
        return False
    t = GGML_TYPES[w.type_id]
    d, n = w.shape
    if d % t.block_size != 0:
        return False
    data = w.data
    ok = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.flags.c_contiguous
    return ok and data.size == tensor_nbytes(w.type_id, n * d)


def _default_threads() -> int:
    env = os.environ.get("BITNET_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, os.cpu_count() or 1)


class OptimizedBackend(NumpyBackend):
    """The C kernels behind the `bitnet.ops.Backend` protocol (see the module docstring).

    n_threads: matmul threads (default BITNET_THREADS, else os.cpu_count()).
    """

    def __init__(self, *, activation_quant: str = "none", n_threads: Optional[int] = None) -> None:
        if not available():
            raise RuntimeError(f"bitnet_kernels is not available: {_reason}")
        super().__init__(activation_quant=activation_quant)
        self.n_threads = int(n_threads) if n_threads else _default_threads()
        # id(ModelWeights) -> (weights, (bn_model*, keepalive) or None): the fused forward
        self._fused: Dict[int, Tuple[Any, Any]] = {}

    def matmul(self, w: QTensor, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """ggml_mul_mat(w, x). w: (N, D); x: (T, D) -> (T, N)."""
        if not _c_can_read(w):
            res = super().matmul(w, x)
            if out is None:
                return res
            _out(out, res.shape)[...] = res
            return out
        _sync_isa()
        n, d = w.np_shape
        x = _f32(x)
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"matmul {w.name}: x must be (T, {d}), got {x.shape}")
        y = _out(out, (x.shape[0], n))
        mode = 1 if self.activation_quant == "peer" else 0
        # subtle: waking workers costs tens of microseconds; below PARALLEL_MIN_MACS one
        # thread is faster (SmolLM2 decode, 0.9M MACs per matmul: 17 ms/token on 1 thread,
        # 25 ms on 2, measured on 2 loaded cores). Results are the same bits either way.
        threads = self.n_threads if n * d * x.shape[0] >= PARALLEL_MIN_MACS else 1
        rc = _lib.bn_matmul(
            w.type_id, _ptr("uint8_t[]", w.data), n, d, _ptr("float[]", x), x.shape[0],
            _ptr("float[]", y), mode, threads,
        )
        _check(rc, f"matmul {w.name} ({w.type_name}, {n}x{d})")
        return y

    def get_rows(self, w: QTensor, ids: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """ggml_get_rows. w: (V, D); ids: (T,) -> (T, D); dequantizes only those rows."""
        ids64 = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if not _c_can_read(w):
            res = super().get_rows(w, ids64)
            if out is None:
                return res
            _out(out, res.shape)[...] = res
            return out
        v, d = w.np_shape
        if ids64.size and (ids64.min() < 0 or ids64.max() >= v):
            raise IndexError(f"get_rows {w.name}: ids {ids64.min()}..{ids64.max()} outside 0..{v - 1}")
        y = _out(out, (ids64.size, d))
        rc = _lib.bn_dequantize_rows(
            w.type_id, _ptr("uint8_t[]", w.data), v, d, _ptr("int64_t[]", ids64), ids64.size,
            _ptr("float[]", y),
        )
        _check(rc, f"get_rows {w.name}")
        return y

    def rms_norm(
        self, x: np.ndarray, weight: Optional[np.ndarray], eps: float, out: Optional[np.ndarray] = None
    ) -> np.ndarray:
        """ggml_rms_norm (+ ggml_mul by weight). x: (T, D); weight: (D,) -> (T, D)."""
        _sync_isa()
        x = _f32(x)
        d = x.shape[-1]
        y = _out(out, x.shape)
        wp = _ffi.NULL
        if weight is not None:
            weight = _f32(weight)
            if weight.shape != (d,):
                raise ValueError(f"rms_norm: weight must be ({d},), got {weight.shape}")
            wp = _ptr("float[]", weight)
        _lib.bn_rms_norm(_ptr("float[]", x), wp, _ptr("float[]", y), x.size // max(d, 1), d, float(eps))
        return y

    def rope(
        self, x: np.ndarray, positions: np.ndarray, p: RopeParams, out: Optional[np.ndarray] = None
    ) -> np.ndarray:
        """ggml_rope_ext. x: (T, H, d); positions: (T,) -> (T, H, d). cos/sin tables from
        `bitnet.ops.rope_cos_sin` (YaRN included), rotation in C."""
        if p.mode not in (ROPE_NORMAL, ROPE_NEOX):
            raise NotImplementedError(f"rope mode {p.mode} (only NORMAL=0 and NEOX=2)")
        x = _f32(x)
        t, h, d = x.shape
        if p.n_dims % 2 or not 0 <= p.n_dims <= d or np.shape(positions) != (t,):
            raise ValueError(
                f"rope: n_dims={p.n_dims} must be even and <= head size {d}; positions "
                f"{np.shape(positions)} must be ({t},)"
            )
        cos, sin = (_f32(a) for a in rope_cos_sin(positions, p))  # (T, n_dims/2)
        y = _out(out, x.shape)
        _lib.bn_rope(
            _ptr("float[]", x), _ptr("float[]", y), t, h, d, _ptr("float[]", cos),
            _ptr("float[]", sin), p.n_dims, p.mode,
        )
        return y

    def _glu(self, fn: Any, gate: np.ndarray, up: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
        _sync_isa()
        g, u = _f32(gate), _f32(up)
        if g.shape != u.shape:  # broadcasting: numpy's business
            g, u = (_f32(a) for a in np.broadcast_arrays(g, u))
        y = _out(out, g.shape)
        fn(_ptr("float[]", g), _ptr("float[]", u), _ptr("float[]", y), g.size)
        return y

    def swiglu(self, gate: np.ndarray, up: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """ggml_swiglu_split: silu(gate) * up. (T, F), (T, F) -> (T, F)."""
        return self._glu(_lib.bn_swiglu, gate, up, out)

    def relu2_glu(self, gate: np.ndarray, up: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """relu(gate)^2 * up. (T, F), (T, F) -> (T, F)."""
        return self._glu(_lib.bn_relu2_glu, gate, up, out)

    def attention(
        self,
        q: np.ndarray,
        k: np.ndarray,
        v: np.ndarray,
        q_pos: np.ndarray,
        kv_pos: np.ndarray,
        scale: float,
    ) -> np.ndarray:
        """Causal GQA over the KV cache in C (bn_attention), semantics of
        `NumpyBackend.attention`. q: (T, H, d); k, v: (K, Hkv, d) f32 or f16 -> (T, H*d)."""
        t, h, d = q.shape
        if (
            k.dtype != v.dtype
            or k.dtype not in (np.float32, np.float16)
            or k.shape != v.shape
            or k.ndim != 3
            or k.shape[2] != d
            or h % max(k.shape[1], 1)
        ):
            return super().attention(q, k, v, q_pos, kv_pos, scale)
        _sync_isa()
        q32 = _f32(q)
        kc, vc = np.ascontiguousarray(k), np.ascontiguousarray(v)
        qp = np.ascontiguousarray(q_pos, dtype=np.int64)
        kp = np.ascontiguousarray(kv_pos, dtype=np.int64)
        if qp.shape != (t,) or kp.shape != (k.shape[0],):
            raise ValueError(f"attention: q_pos {qp.shape} must be ({t},), kv_pos {kp.shape} ({k.shape[0]},)")
        f16 = k.dtype == np.float16
        y = np.empty((t, h * d), dtype=np.float32)
        threads = self.n_threads if t * h * k.shape[0] * d >= PARALLEL_MIN_MACS else 1
        rc = _lib.bn_attention(
            _ptr("float[]", q32), _ptr("uint8_t[]", kc), _ptr("uint8_t[]", vc), int(f16), t, h,
            k.shape[1], d, k.shape[0], _ptr("int64_t[]", qp), _ptr("int64_t[]", kp), float(scale),
            int(f16 and self.activation_quant == "peer"), _ptr("float[]", y), threads,
        )
        _check(rc, "attention")
        return y

    def forward_layers(
        self,
        hp: Any,
        w: Any,
        cache: Any,
        x: np.ndarray,
        positions: np.ndarray,
        kv_pos: np.ndarray,
        rope: RopeParams,
        kq_scale: float,
    ) -> Optional[np.ndarray]:
        """All layers of `bitnet.model.graphs.forward` in one C call (bn_forward): x (T, D)
        embeddings -> the residual stream after the last layer, the batch's keys and values
        written into `cache`. Same kernels as the per-op path, so the same results; None when
        the model needs something the fused path lacks (the caller then runs per op). A
        subclass that overrides an op must set `forward_layers = None` (the C path would
        bypass the override)."""
        model = self._fused_model(hp, w)
        if model is None or rope.mode not in (ROPE_NORMAL, ROPE_NEOX) or rope.n_dims != hp.n_rot:
            return None
        kc, vc = cache.k, cache.v
        if (
            kc.dtype not in (np.float32, np.float16)
            or vc.dtype != kc.dtype
            or not (kc.flags.c_contiguous and vc.flags.c_contiguous)
            or kc.shape != (hp.n_layer, cache.n_ctx, hp.n_head_kv, hp.n_embd_head_k)
            or vc.shape != kc.shape
        ):
            return None
        _sync_isa()
        model[0].kq_scale = float(kq_scale)
        model[0].rope_mode = rope.mode
        xs = np.array(x, dtype=np.float32, order="C", copy=True)  # (T, D), updated in place
        pos = np.ascontiguousarray(positions, dtype=np.int64)
        kvp = np.ascontiguousarray(kv_pos, dtype=np.int64)
        cos, sin = (_f32(a) for a in rope_cos_sin(pos, rope))  # (T, n_rot/2)
        threads = self.n_threads
        rc = _lib.bn_forward(
            model[0], _ptr("float[]", xs), pos.size, _ptr("int64_t[]", pos), _ptr("uint8_t[]", kc),
            _ptr("uint8_t[]", vc), int(kc.dtype == np.float16), cache.n_ctx, _ptr("int64_t[]", kvp),
            kvp.size, _ptr("float[]", cos), _ptr("float[]", sin), threads,
        )
        _check(rc, "forward")
        return xs

    def _fused_model(self, hp: Any, w: Any) -> Optional[Any]:
        """(bn_model*, keepalive) for these weights, built once; None if not fusable."""
        cached = self._fused.get(id(w))
        if cached is not None and cached[0] is w:
            return cached[1]
        built = self._build_fused(hp, w)
        self._fused[id(w)] = (w, built)  # holding w keeps its id from being reused
        return built

    def _build_fused(self, hp: Any, w: Any) -> Optional[Any]:
        arch = hp.arch
        if arch not in ("llama", "bitnet", "bitnet-b1.58") or hp.n_embd_head_k != hp.n_embd_head_v:
            return None
        bitnet = arch in ("bitnet", "bitnet-b1.58")
        keep: List[Any] = []

        def vec(a: Optional[np.ndarray], n: int) -> Any:
            if a is None:
                if not bitnet:
                    return _ffi.NULL
                a = np.ones(n, dtype=np.float32)  # rms_norm without a weight: y * 1.0f = y
            arr = _f32(a)
            if arr.shape != (n,):
                raise ValueError(f"fused forward: norm weight {arr.shape} != ({n},)")
            keep.append(arr)
            return _ptr("float[]", arr)

        def lin(dst: Any, lw: Any, n_out: int, n_in: int) -> bool:
            qt = lw.w
            if not _c_can_read(qt) or qt.np_shape != (n_out, n_in):
                return False
            if lw.scale is not None and float(np.float32(lw.scale)) == 0.0:
                return False  # 0 means "no scale" to the C
            dst.type = qt.type_id
            dst.w = _ptr("uint8_t[]", qt.data)
            keep.append(qt.data)
            dst.n_out, dst.n_in = n_out, n_in
            dst.scale = float(np.float32(lw.scale)) if lw.scale is not None else 0.0
            if lw.bias is not None:
                b = _f32(lw.bias).reshape(-1)
                if b.shape != (n_out,):
                    return False
                keep.append(b)
                dst.bias = _ptr("float[]", b)
            else:
                dst.bias = _ffi.NULL
            return True

        d, qw, kw, f = hp.n_embd, hp.n_head * hp.n_embd_head_k, hp.n_head_kv * hp.n_embd_head_k, hp.n_ff
        layers = _ffi.new("bn_layer[]", max(len(w.layers), 1))
        keep.append(layers)
        for i, lw in enumerate(w.layers):
            c = layers[i]
            c.attn_norm = vec(lw.attn_norm, d)
            c.ffn_norm = vec(lw.ffn_norm, d)
            c.attn_sub_norm = vec(lw.attn_sub_norm, qw) if bitnet else _ffi.NULL
            c.ffn_sub_norm = vec(lw.ffn_sub_norm, f) if bitnet else _ffi.NULL
            ok = (
                lin(c.wq, lw.wq, qw, d) and lin(c.wk, lw.wk, kw, d) and lin(c.wv, lw.wv, kw, d)
                and lin(c.wo, lw.wo, d, qw) and lin(c.gate, lw.ffn_gate, f, d)
                and lin(c.up, lw.ffn_up, f, d) and lin(c.down, lw.ffn_down, d, f)
            )
            if not ok:
                return None
        m = _ffi.new("bn_model *")
        m.n_layer = len(w.layers)
        m.n_embd, m.n_head, m.n_head_kv = d, hp.n_head, hp.n_head_kv
        m.head_dim, m.n_ff = hp.n_embd_head_k, f
        m.rope_dims, m.rope_mode = hp.n_rot, hp.rope_type
        m.ffn_relu2 = int(arch == "bitnet-b1.58")
        m.eps = float(hp.rms_eps)
        m.kq_scale = 0.0  # kq_scale and rope_mode are set per call from the caller's values
        m.mode = 1 if self.activation_quant == "peer" else 0
        m.layers = layers
        return (m, keep)

    def softmax(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """ggml_soft_max over the last axis; rows of all -inf give zeros. (..., K)."""
        _sync_isa()
        x = _f32(x)
        k = x.shape[-1] if x.ndim else 1
        y = _out(out, x.shape)
        if x.size:
            _lib.bn_softmax(_ptr("float[]", x), _ptr("float[]", y), x.size // k, k)
        return y
