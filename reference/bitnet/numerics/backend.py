"""`PeerBackend`: a `bitnet.ops.Backend` computing every op in llama.cpp's float order.

llama.cpp 0.3.36 as llama-cpp-python ships it (CPU backend, x86-64 AVX-512 build,
default context: no flash attention, F16 KV cache). Each op's order, and where in
vendor/llama.cpp/ggml/src/ggml-cpu/ it lives:

- matmul: `bitnet.numerics.matmul` (kernel choice) with `dots32` / `dotsk` / `floatdot`.
- RMSNorm (ops.cpp ggml_compute_forward_rms_norm_f32): squares in float32 summed in order
  in double (ggml_float); mean rounded to float32; scale = 1.0f/sqrtf(mean + eps);
  y = x * scale, then (build_norm's ggml_mul) y * w, all float32. The bitnet arch's
  attn_sub_norm / ffn_sub_norm are this same op.
- `.scale` of the bitnet arch (build_lora_mm's ggml_mul by a {1} tensor): y * s in float32
  (done by the graph, `bitnet.model.graphs.linear`).
- RoPE (ops.cpp ggml_rope_cache_init, rope_yarn, rotate_pairs): theta_scale =
  powf(base, -2.0f/n_dims); theta starts at the position and is multiplied by theta_scale
  in float32 per pair; frequency factors divide it, YaRN mixes (`PeerBackend._cos_sin`);
  cos/sin from libm times the magnitude; the rotation compiled with FMA contraction:
  fma(x0, cos, -(x1*sin)) and fma(x0, sin, x1*cos).
- softmax (ops.cpp ggml_compute_forward_soft_max_f32, vec.cpp ggml_vec_soft_max_f32):
  max, ggml_v_expf(x - max) per element, each 16-lane group reduced in float32
  (_mm512_reduce_add_ps) and those partial sums added in double, times (float)(1.0/sum);
  the K % 16 tail with libm expf.
- SwiGLU (vec.cpp ggml_vec_swiglu_f32): x / (1 + ggml_v_expf(-x)) * g in float32; the
  F % 16 tail with libm expf.
- relu^2 GLU (llm_graph_context::build_ffn, LLM_FFN_RELU_SQR + LLM_FFN_PAR: ggml_relu,
  ggml_sqr, ggml_mul): r = x > 0 ? x : 0; (r * r) * up in float32.
- attention (build_attn_mha, no flash attention, F16 cache): kq = K·f16(q) (mul_mat of
  F16: `floatdot`), softmax(kq*scale + mask), kqv = V·f16(p). llama.cpp's KV view is
  256-padded; the masked cells add exact zeros, so padding to 64 gives the same sums.
- flash attention (ops.cpp ggml_compute_forward_flash_attn_ext_f16; the C API's default):
  `bitnet.numerics.flash` (online softmax per cell, or per 64-cell tile for T >= 64, or
  KV chunks per thread for one query over >= 512 cells).

Matmul inputs depend on how tokens are batched (tinyBLAS and the tiled / GEMM kernels
take T >= 2, 4 or 8 rows): evaluate on llama.cpp's schedule (a prompt in one batch, then
one token per eval) to get its bits. Not emulated: M-RoPE / vision RoPE
(the parent's runs), ALiBi, soft-capping, weight types outside `matmul.EXACT_TYPES` (the
parent's "peer" activation rounding, close but not exact).
"""

from __future__ import annotations

from typing import AbstractSet, Any, Dict, Optional, Tuple

import numpy as np

from bitnet.ggml_types import GGMLType, tensor_nbytes
from bitnet.numerics.codes import SUPPORTED as CODE_TYPES
from bitnet.numerics.codes import WeightCodes, weight_codes
from bitnet.numerics.flash import flash_attention
from bitnet.numerics.floatdot import f16_dot, uses_tinyblas
from bitnet.numerics.floats import cosf, expf, f16, fma, logf, powf, reduce_add_16, sinf, v_expf
from bitnet.numerics.matmul import float_matmul, quantized_matmul
from bitnet.ops import (
    ROPE_NEOX,
    ROPE_NORMAL,
    Backend,
    FlashAttn,
    NumpyBackend,
    QTensor,
    RopeParams,
    visible_cells,
)

_F32 = np.float32
_KV_PAD = 64  # pad the KV length to whole tinyBLAS / vec_dot_f16 steps


def plain_weights(arch: str) -> AbstractSet[str]:
    """Weights llama.cpp multiplies from its plain CPU buffer although their type repacks:
    the `bitnet` arch's output matmul reads token_embd (its graph's FIXME) where the
    other archs use a duplicated `output` tensor."""
    return frozenset({"token_embd.weight"}) if arch == "bitnet" else frozenset()


def _yarn_corr_dims(p: RopeParams) -> Tuple[np.float32, np.float32]:
    """ggml_rope_yarn_corr_dims (ggml.c, float32, no FMA): the dims where YaRN's ramp starts
    and ends, floor / ceil of n_dims * logf(n_ctx_orig / (n_rot * 2 * pi)) / (2 * logf(base))."""
    def corr_dim(n_rot: float) -> np.float32:
        arg = _F32(p.n_ctx_orig) / (_F32(n_rot) * _F32(2.0) * _F32(np.pi))
        return _F32(_F32(p.n_dims) * _F32(logf(float(arg)))) / (_F32(2.0) * _F32(logf(p.freq_base)))

    start = np.floor(corr_dim(p.beta_fast))
    end = np.ceil(corr_dim(p.beta_slow))
    return _F32(max(_F32(0.0), start)), _F32(min(_F32(p.n_dims - 1), end))


def _pad(x: np.ndarray, axis: int, multiple: int) -> np.ndarray:
    """Zero-pad `axis` to a multiple of `multiple`."""
    n = x.shape[axis]
    padded = -(-n // multiple) * multiple
    if padded == n:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, padded - n)
    return np.pad(x, pad)


def _well_formed(w: QTensor) -> bool:
    """A 2-D weight whose bytes match its shape (else the parent raises the typed error)."""
    if len(w.shape) != 2 or not isinstance(w.data, np.ndarray):
        return False
    return bool(w.data.size == tensor_nbytes(w.type_id, w.shape[0] * w.shape[1]))


class PeerBackend(NumpyBackend):
    """`bitnet.ops.Backend` with llama.cpp's CPU float arithmetic (see the module docstring).

    PeerBackend(matmul_backend=None, *, plain=frozenset())

    matmul_backend: a Backend whose `matmul` and `get_rows` give llama.cpp's bits faster
    (the C kernels), injected by the caller; None computes them here in numpy. Matmuls of
    weights outside `matmul.EXACT_TYPES` use the parent's "peer" activation rounding
    (close, not bit-exact) when nothing is injected.
    plain: names of weights llama.cpp keeps out of its repack buffer although their type
    repacks (`plain_weights(arch)`; they change the Q4_0 / Q4_K order).
    Pair it with an F16 KV cache: `Context(model, kv_type="f16")`.
    """

    def __init__(self, matmul_backend: Optional[Backend] = None, *,
                 plain: AbstractSet[str] = frozenset()) -> None:
        super().__init__(activation_quant="peer")
        self.matmul_backend = matmul_backend
        self.plain = frozenset(plain)
        # (position, RoPE parameters) -> (cos, sin) of ggml_rope_cache_init
        self._rope_cache: Dict[Tuple[Any, ...], Tuple[np.ndarray, np.ndarray]] = {}
        # id(w) -> (w, its codes); holding w keeps its id from being reused
        self._codes: Dict[int, Tuple[QTensor, WeightCodes]] = {}

    # -- matmuls ------------------------------------------------------------------------

    def codes(self, w: QTensor) -> WeightCodes:
        """The weight's integer codes and scales (`weight_codes`), computed once."""
        hit = self._codes.get(id(w))
        if hit is None:
            hit = (w, weight_codes(w))
            self._codes[id(w)] = hit
        return hit[1]

    def matmul(self, w: QTensor, x: np.ndarray) -> np.ndarray:
        """ggml_mul_mat(w, x) in the order of the kernel llama.cpp picks (`matmul`).
        w: (N, D); x: (T, D) -> (T, N)."""
        if self.matmul_backend is not None:
            return self.matmul_backend.matmul(w, x)
        if w.type_id in (GGMLType.F16, GGMLType.F32) and _well_formed(w):
            return float_matmul(self.weight(w), x, f16=w.type_id == GGMLType.F16)
        if w.type_id in CODE_TYPES and _well_formed(w):
            return quantized_matmul(self.codes(w), x, repack=w.name not in self.plain)
        return super().matmul(w, x)

    def get_rows(self, w: QTensor, ids: np.ndarray) -> np.ndarray:
        """ggml_get_rows (dequantization is exact either way). (V, D), (T,) -> (T, D)."""
        if self.matmul_backend is not None:
            return self.matmul_backend.get_rows(w, ids)
        return super().get_rows(w, ids)

    # -- elementwise and reductions -------------------------------------------------------

    def rms_norm(self, x: np.ndarray, weight: Optional[np.ndarray], eps: float) -> np.ndarray:
        """ggml_rms_norm (+ ggml_mul): sum of float32 squares in double, in order.
        x: (T, D); weight: (D,) -> (T, D)."""
        x = np.asarray(x, dtype=_F32)
        sq = (x * x).astype(np.float64)
        total = np.cumsum(sq, axis=-1)[..., -1:]  # sequential order, like the C loop
        mean = (total / x.shape[-1]).astype(_F32)
        scale = _F32(1.0) / np.sqrt(mean + _F32(eps))
        y = x * scale
        if weight is not None:
            y = y * np.asarray(weight, dtype=_F32)
        return y

    def _cos_sin(self, pos: int, p: RopeParams) -> Tuple[np.ndarray, np.ndarray]:
        """ggml_rope_cache_init + rope_yarn for one position: theta starts at pos and is
        multiplied by theta_scale per pair (float32); per pair theta_extrap = theta / ff,
        theta_interp = freq_scale * theta_extrap; with YaRN (ext_factor != 0)
        theta = fma(theta_interp, 1 - ramp_mix, theta_extrap * ramp_mix) and the magnitude
        attn_factor * fma(0.1f, logf(1/freq_scale), 1); cos/sin = cosf/sinf(theta) * it."""
        ff = p.freq_factors
        key = (pos, p.n_dims, p.freq_base, p.freq_scale, p.attn_factor, p.ext_factor, p.n_ctx_orig,
               p.beta_fast, p.beta_slow, None if ff is None else np.asarray(ff, dtype=_F32).tobytes())
        hit = self._rope_cache.get(key)
        if hit is not None:
            return hit
        half = p.n_dims // 2
        theta_scale = _F32(powf(p.freq_base, float(_F32(-2.0) / _F32(p.n_dims))))
        fs, ext = _F32(p.freq_scale), _F32(p.ext_factor)
        ms = _F32(p.attn_factor)
        low = high = _F32(0.0)
        if ext != 0:
            low, high = _yarn_corr_dims(p)
            ms = ms * fma(_F32(0.1), _F32(logf(float(_F32(1.0) / fs))), _F32(1.0))
        factors = np.ones(half, dtype=_F32) if ff is None else np.asarray(ff, dtype=_F32)[:half]
        theta = _F32(pos)
        cos = np.empty(half, dtype=_F32)
        sin = np.empty(half, dtype=_F32)
        for i in range(half):
            extrap = _F32(theta / factors[i])
            th = _F32(fs * extrap)
            if ext != 0:
                y = (_F32(i) - low) / max(_F32(0.001), _F32(high - low))
                mix = _F32((_F32(1.0) - min(_F32(1.0), max(_F32(0.0), _F32(y)))) * ext)
                th = fma(th, _F32(1.0) - mix, _F32(extrap * mix))
            cos[i] = _F32(cosf(float(th))) * ms
            sin[i] = _F32(sinf(float(th))) * ms
            theta = _F32(theta * theta_scale)
        self._rope_cache[key] = (cos, sin)
        return cos, sin

    def rope(self, x: np.ndarray, positions: np.ndarray, p: RopeParams) -> np.ndarray:
        """ggml_rope_ext (NORMAL / NEOX, YaRN, frequency factors, n_dims <= d): the cache of
        `_cos_sin`, then the rotation compiled with FMA contraction:
        (fma(x0, cos, -(x1*sin)), fma(x0, sin, x1*cos)). x: (T, H, d); positions: (T,)."""
        if p.mode not in (ROPE_NORMAL, ROPE_NEOX):
            return super().rope(x, positions, p)
        x = np.asarray(x, dtype=_F32)
        n = p.n_dims
        tabs = [self._cos_sin(int(q), p) for q in np.asarray(positions)]
        cos = np.stack([c for c, _ in tabs])[:, None, :]  # (T, 1, n/2)
        sin = np.stack([s for _, s in tabs])[:, None, :]
        y = x.copy()
        if p.mode == ROPE_NEOX:
            i0, i1 = slice(0, n // 2), slice(n // 2, n)
        else:
            i0, i1 = slice(0, n, 2), slice(1, n, 2)
        x0, x1 = x[..., i0], x[..., i1]
        y[..., i0] = fma(x0, cos, -(x1 * sin))
        y[..., i1] = fma(x0, sin, x1 * cos)
        return y

    def softmax(self, x: np.ndarray) -> np.ndarray:
        """ggml_vec_soft_max_f32 over the last axis (already scaled and masked; -inf =
        masked): ggml_v_expf(x - max) per 16-lane group, each group reduced in float32
        (_mm512_reduce_add_ps) and added to a double sum; the K % 16 tail by libm expf,
        added one by one; then times (float)(1.0/sum). (..., K) -> (..., K)."""
        x = np.asarray(x, dtype=_F32)
        k = x.shape[-1]
        main = k - k % 16
        m = np.max(x, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, _F32(0.0)).astype(_F32)
        with np.errstate(invalid="ignore"):
            d = x - m
            e = np.concatenate([v_expf(d[..., :main]), expf(d[..., main:])], axis=-1)
        e = np.where(np.isneginf(x), _F32(0.0), e).astype(_F32)
        groups = reduce_add_16(e[..., :main].reshape(tuple(e.shape[:-1]) + (-1, 16)))
        terms = np.concatenate([groups, e[..., main:]], axis=-1).astype(np.float64)
        total = np.cumsum(terms, axis=-1)[..., -1:] if terms.shape[-1] else np.zeros(e.shape[:-1] + (1,))
        inv = np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0).astype(_F32)
        return e * inv

    def swiglu(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        """ggml_vec_swiglu_f32: ggml_v_silu(x) = x / (1 + ggml_v_expf(0 - x)) times g per
        16-lane group; the F % 16 tail by ggml_silu_f32 (libm expf). (T, F) -> (T, F)."""
        g = np.asarray(gate, dtype=_F32)
        main = g.shape[-1] - g.shape[-1] % 16
        with np.errstate(over="ignore"):
            e = np.concatenate([v_expf(_F32(0.0) - g[..., :main]), expf(-g[..., main:])], axis=-1)
        return (g / (_F32(1.0) + e)) * np.asarray(up, dtype=_F32)

    def relu2_glu(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        """ggml_relu, ggml_sqr, ggml_mul: r = gate > 0 ? gate : 0; (r * r) * up.
        (T, F) -> (T, F)."""
        g = np.asarray(gate, dtype=_F32)
        r = np.where(g > 0, g, _F32(0.0)).astype(_F32)
        with np.errstate(over="ignore", invalid="ignore"):  # inf as in C
            return (r * r) * np.asarray(up, dtype=_F32)

    # -- attention ---------------------------------------------------------------------

    def attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, q_pos: np.ndarray,
                  kv_pos: np.ndarray, scale: float, flash: Optional[FlashAttn] = None) -> np.ndarray:
        """build_attn_mha without flash attention, F16 cache: kq = K·f16(q) (tinyBLAS or
        vec_dot_f16), softmax(kq*scale + mask), kqv = V·f16(p); with `flash`, llama.cpp's
        flash-attention kernel (`bitnet.numerics.flash`, F16 or F32 cache).
        q: (T, H, d); k, v: (K, Hkv, d) f16; q_pos: (T,); kv_pos: (K,) or (T, K) -> (T, H*d)."""
        if flash is not None:
            return flash_attention(q, k, v, q_pos, kv_pos, scale, flash)
        t, h, d = q.shape
        group = h // k.shape[1]
        q16 = f16(q)  # (T, H, d)
        visible = _pad(visible_cells(q_pos, kv_pos), 1, _KV_PAD)  # (T, Kp)
        kh = np.repeat(_pad(f16(k), 0, _KV_PAD), group, axis=1)  # (Kp, H, d)
        vh = np.repeat(_pad(f16(v), 0, _KV_PAD), group, axis=1)
        n_kv = kh.shape[0]
        # (H, T, K, d) products, summed along d
        qa, ka = np.broadcast_arrays(q16.transpose(1, 0, 2)[:, :, None, :],
                                     kh.transpose(1, 0, 2)[:, None, :, :])
        kq = f16_dot(qa, ka, tinyblas=uses_tinyblas(t, n_kv, d))  # (H, T, Kp)
        scores = np.where(visible[None], kq * _F32(scale), _F32(-np.inf)).astype(_F32)
        p16 = f16(self.softmax(scores))  # (H, T, Kp)
        pa, va = np.broadcast_arrays(p16[:, :, None, :], vh.transpose(1, 2, 0)[:, None, :, :])
        kqv = f16_dot(pa, va, tinyblas=uses_tinyblas(t, d, n_kv))  # (H, T, d)
        return np.ascontiguousarray(kqv.transpose(1, 0, 2)).reshape(t, h * d).astype(_F32)
