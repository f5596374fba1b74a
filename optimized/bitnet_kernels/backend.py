"""`OptimizedBackend`: the C kernels behind the `bitnet.ops.Backend` protocol.

A drop-in for `bitnet.ops.NumpyBackend`: same constructor keyword and methods, shapes and
semantics, plus `n_threads` (pthreads pool; default BITNET_THREADS or os.cpu_count()) and
`out=` on every method (a C-contiguous float32 array to write into).

activation_quant selects the numerics:
  "peer"  llama.cpp 0.3.36's CPU float order in every op (runtime's "llama.cpp" numerics):
          matmuls through bn_peer_mm.c / bn_peer_kq.c (F16, F32, Q8_0, Q4_0, Q5_0, Q4_1,
          Q5_1, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0; I2_S as TQ2_0), RMSNorm / RoPE / softmax /
          SwiGLU through bn_peer_ops.c, attention through bn_peer_forward.c. Each result
          equals llama.cpp's for a matmul of the same T rows (its kernel choice depends on T),
          and never depends on threads. `plain`: names of weights llama.cpp keeps out of its
          repack buffer (`bitnet.numerics.plain_weights(arch)`; Q4_0 / Q4_K order).
  "none"  the float path: each weight row dequantized (bit-identical to bitnet.quants) and
          dotted with the float32 activations; results match the reference to float32
          rounding (NMSE bounds in tests/test_optimized_kernels.py), get_rows bit-exactly.
Weights of a type the C cannot read in that mode, or whose byte count does not match their
shape, run the reference code (which raises the typed error for bad sizes).
"""

from __future__ import annotations

import os
from typing import AbstractSet, Any, List, Optional, Tuple

import numpy as np

import bitnet_kernels as _k
from bitnet.ggml_types import GGML_TYPES, GGMLType, tensor_nbytes
from bitnet.ops import ROPE_NEOX, ROPE_NORMAL, FlashAttn, NumpyBackend, QTensor, RopeParams, rope_cos_sin
from bitnet_kernels.fused import FusedForward

T = GGMLType
# ggml type ids the C handles per numerics
FLOAT_TYPES = frozenset({T.F32, T.F16, T.Q4_0, T.Q4_1, T.Q8_0, T.Q4_K, T.Q6_K, T.TQ1_0, T.TQ2_0, T.I2_S})
PEER_TYPES = FLOAT_TYPES | {T.Q5_0, T.Q5_1, T.Q5_K}
del T


def _f32(x: Any) -> np.ndarray:
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
    return _k._ffi.from_buffer(ctype, a)


def _check(rc: int, what: str) -> None:
    if rc == -2:
        raise ValueError(f"{what}: row length is not a multiple of the block size or ids out of range")
    if rc == -3:
        raise MemoryError(f"{what}: out of memory for the quantized activations")
    if rc != 0:
        raise RuntimeError(f"{what}: C kernel returned {rc}")


def _well_formed(w: QTensor, types: Any) -> bool:
    """A 2-D weight of a type in `types` whose byte count matches its shape."""
    if w.type_id not in types or len(w.shape) != 2:
        return False
    d, n = w.shape
    if d % GGML_TYPES[w.type_id].block_size != 0:
        return False
    data = w.data
    ok = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.flags.c_contiguous
    return ok and data.size == tensor_nbytes(w.type_id, n * d)


def c_can_read(w: QTensor, peer: bool = False) -> bool:
    """The C kernels handle this weight in that numerics (else the reference runs it)."""
    return _well_formed(w, PEER_TYPES if peer else FLOAT_TYPES)


def _default_threads() -> int:
    env = os.environ.get("BITNET_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, os.cpu_count() or 1)


class OptimizedBackend(NumpyBackend):
    """The C kernels behind the `bitnet.ops.Backend` protocol (see the module docstring).

    n_threads: threads of the C pool for one token (default BITNET_THREADS, else
    os.cpu_count()); n_threads_batch: for a batch of tokens (default n_threads), as llama.cpp's
    context parameters. The thread count changes no bit.
    """

    def __init__(self, *, activation_quant: str = "none", n_threads: Optional[int] = None,
                 n_threads_batch: Optional[int] = None, plain: AbstractSet[str] = frozenset()) -> None:
        if not _k.available():
            raise RuntimeError(f"bitnet_kernels is not available: {_k.unavailable_reason()}")
        super().__init__(activation_quant=activation_quant)
        self.n_threads = int(n_threads) if n_threads else _default_threads()
        self.n_threads_batch = int(n_threads_batch) if n_threads_batch else self.n_threads
        self.peer = activation_quant == "peer"
        self.plain = frozenset(plain)
        self._fused = FusedForward(_k._ffi, _k._lib, peer=self.peer,
                                   can_read=lambda w: c_can_read(w, self.peer))

    def _threads(self, work: int, rows: int) -> int:
        # subtle: waking workers costs tens of microseconds; below PARALLEL_MIN_MACS one
        # thread is faster. Results are the same bits either way.
        pool = self.n_threads_batch if rows > 1 else self.n_threads
        return pool if work >= _k.PARALLEL_MIN_MACS else 1

    def matmul(self, w: QTensor, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """ggml_mul_mat(w, x). w: (N, D); x: (T, D) -> (T, N)."""
        if not c_can_read(w, self.peer):
            res = super().matmul(w, x)
            if out is None:
                return res
            _out(out, res.shape)[...] = res
            return out
        _k._sync_isa()
        n, d = w.np_shape
        x = _f32(x)
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"matmul {w.name}: x must be (T, {d}), got {x.shape}")
        y = _out(out, (x.shape[0], n))
        mode = (2 if w.name in self.plain else 1) if self.peer else 0
        rc = _k._lib.bn_matmul(
            w.type_id, _ptr("uint8_t[]", w.data), n, d, _ptr("float[]", x), x.shape[0],
            _ptr("float[]", y), mode, self._threads(n * d * x.shape[0], x.shape[0]),
        )
        _check(rc, f"matmul {w.name} ({w.type_name}, {n}x{d})")
        return y

    def get_rows(self, w: QTensor, ids: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """ggml_get_rows. w: (V, D); ids: (T,) -> (T, D); dequantizes only those rows."""
        ids64 = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if not c_can_read(w, False):
            res = super().get_rows(w, ids64)
            if out is None:
                return res
            _out(out, res.shape)[...] = res
            return out
        v, d = w.np_shape
        if ids64.size and (ids64.min() < 0 or ids64.max() >= v):
            raise IndexError(f"get_rows {w.name}: ids {ids64.min()}..{ids64.max()} outside 0..{v - 1}")
        y = _out(out, (ids64.size, d))
        rc = _k._lib.bn_dequantize_rows(
            w.type_id, _ptr("uint8_t[]", w.data), v, d, _ptr("int64_t[]", ids64), ids64.size,
            _ptr("float[]", y),
        )
        _check(rc, f"get_rows {w.name}")
        return y

    def rms_norm(
        self, x: np.ndarray, weight: Optional[np.ndarray], eps: float, out: Optional[np.ndarray] = None
    ) -> np.ndarray:
        """ggml_rms_norm (+ ggml_mul by weight). x: (T, D); weight: (D,) -> (T, D)."""
        _k._sync_isa()
        x = _f32(x)
        d = x.shape[-1]
        y = _out(out, x.shape)
        wp = _k._ffi.NULL
        if weight is not None:
            weight = _f32(weight)
            if weight.shape != (d,):
                raise ValueError(f"rms_norm: weight must be ({d},), got {weight.shape}")
            wp = _ptr("float[]", weight)
        fn = _k._lib.bn_peer_rms_norm if self.peer else _k._lib.bn_rms_norm
        fn(_ptr("float[]", x), wp, _ptr("float[]", y), x.size // max(d, 1), d, float(eps))
        return y

    def rope(
        self, x: np.ndarray, positions: np.ndarray, p: RopeParams, out: Optional[np.ndarray] = None
    ) -> np.ndarray:
        """ggml_rope_ext. x: (T, H, d); positions: (T,) -> (T, H, d). Peer: the cache of
        ggml_rope_cache_init computed in C; float: `bitnet.ops.rope_cos_sin` tables."""
        if p.mode not in (ROPE_NORMAL, ROPE_NEOX):
            raise NotImplementedError(f"rope mode {p.mode} (only NORMAL=0 and NEOX=2)")
        x = _f32(x)
        t, h, d = x.shape
        if p.n_dims % 2 or not 0 <= p.n_dims <= d or np.shape(positions) != (t,):
            raise ValueError(
                f"rope: n_dims={p.n_dims} must be even and <= head size {d}; positions "
                f"{np.shape(positions)} must be ({t},)"
            )
        y = _out(out, x.shape)
        if self.peer:
            ffi = _k._ffi
            params = ffi.new("bn_rope_params *")
            keep: List[Any] = []
            self._fused._set_rope(params, p, keep)
            pos = np.ascontiguousarray(positions, dtype=np.int64)
            rc = _k._lib.bn_peer_rope(_ptr("float[]", x), _ptr("float[]", y), t, h, d, _ptr("int64_t[]", pos),
                                      params)
            _check(rc, "rope")
            return y
        cos, sin = (_f32(a) for a in rope_cos_sin(positions, p))  # (T, n_dims/2)
        _k._lib.bn_rope(
            _ptr("float[]", x), _ptr("float[]", y), t, h, d, _ptr("float[]", cos),
            _ptr("float[]", sin), p.n_dims, p.mode,
        )
        return y

    def _glu(self, name: str, gate: np.ndarray, up: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
        _k._sync_isa()
        g, u = _f32(gate), _f32(up)
        if g.shape != u.shape:  # broadcasting: numpy's business
            g, u = (_f32(a) for a in np.broadcast_arrays(g, u))
        y = _out(out, g.shape)
        if name == "swiglu" and self.peer:  # ggml_vec_swiglu_f32 works per row
            f = g.shape[-1] if g.ndim else 1
            rows = g.size // max(f, 1)
            _k._lib.bn_peer_swiglu(_ptr("float[]", g), _ptr("float[]", u), _ptr("float[]", y), rows, f)
            return y
        fn = _k._lib.bn_swiglu if name == "swiglu" else _k._lib.bn_relu2_glu
        fn(_ptr("float[]", g), _ptr("float[]", u), _ptr("float[]", y), g.size)
        return y

    def swiglu(self, gate: np.ndarray, up: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """ggml_swiglu_split: silu(gate) * up. (T, F), (T, F) -> (T, F)."""
        return self._glu("swiglu", gate, up, out)

    def relu2_glu(self, gate: np.ndarray, up: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """relu(gate)^2 * up. (T, F), (T, F) -> (T, F)."""
        return self._glu("relu2", gate, up, out)

    def softmax(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """ggml_soft_max over the last axis; rows of all -inf give zeros. (..., K)."""
        _k._sync_isa()
        x = _f32(x)
        k = x.shape[-1] if x.ndim else 1
        y = _out(out, x.shape)
        if x.size:
            fn = _k._lib.bn_peer_softmax if self.peer else _k._lib.bn_softmax
            fn(_ptr("float[]", x), _ptr("float[]", y), x.size // k, k)
        return y

    def attention(
        self,
        q: np.ndarray,
        k: np.ndarray,
        v: np.ndarray,
        q_pos: np.ndarray,
        kv_pos: np.ndarray,
        scale: float,
        flash: Optional[FlashAttn] = None,
    ) -> np.ndarray:
        """Causal GQA over the KV cache in C (bn_attention), semantics of
        `NumpyBackend.attention`. q: (T, H, d); k, v: (K, Hkv, d) f32 or f16 -> (T, H*d).
        flash (peer numerics): llama.cpp's flash-attention kernel (bn_flash_attention), the
        bits of `bitnet.numerics.flash`; the float path ignores it."""
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
        _k._sync_isa()
        q32 = _f32(q)
        kc, vc = np.ascontiguousarray(k), np.ascontiguousarray(v)
        qp = np.ascontiguousarray(q_pos, dtype=np.int64)
        kp = np.ascontiguousarray(kv_pos, dtype=np.int64)
        if qp.shape != (t,) or kp.shape not in ((k.shape[0],), (t, k.shape[0])):
            raise ValueError(f"attention: q_pos {qp.shape} must be ({t},), kv_pos {kp.shape} "
                             f"({k.shape[0]},) or ({t}, {k.shape[0]})")
        y = np.empty((t, h * d), dtype=np.float32)
        args = (_ptr("float[]", q32), _ptr("uint8_t[]", kc), _ptr("uint8_t[]", vc),
                int(k.dtype == np.float16), t, h, k.shape[1], d, k.shape[0], _ptr("int64_t[]", qp),
                _ptr("int64_t[]", kp), k.shape[0] if kp.ndim == 2 else 0, float(scale))
        threads = self._threads(t * h * k.shape[0] * d, t)
        if flash is not None and self.peer:
            rc = _k._lib.bn_flash_attention(*args, max(flash.n_view, k.shape[0]), flash.n_threads,
                                            _ptr("float[]", y), threads)
        else:
            rc = _k._lib.bn_attention(*args, int(self.peer), _ptr("float[]", y), threads)
        _check(rc, "attention")
        return y

    def forward_layers(self, hp: Any, w: Any, cache: Any, x: np.ndarray, positions: np.ndarray,
                       kv_pos: np.ndarray, rope: RopeParams, kq_scale: float,
                       n_out: int, flash: Optional[FlashAttn] = None,
                       cells: Optional[np.ndarray] = None) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """All layers in one C call (`bitnet.ops.Backend.forward_layers`); same kernels as the
        per-op path, so the same bits. A subclass that overrides an op must override this
        to return None (the C would bypass its override)."""
        _k._sync_isa()
        return self._fused.run(hp, w, cache, x, positions, kv_pos, rope, kq_scale, n_out,
                               self.n_threads_batch if x.shape[0] > 1 else self.n_threads, flash, cells)
