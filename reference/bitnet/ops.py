"""The kernel interface the model graphs call, and its numpy implementation.

A graph (`bitnet.model.graphs`) only talks to a `Backend`: embedding rows, quantized
matmul, RMSNorm, RoPE, causal GQA attention, the gated FFN activations and softmax. The
numpy backend here is the readable reference; `bitnet_kernels` plugs a C backend in
behind the same protocol.

Size legend used in the shape comments:
    T  tokens in the current batch          D  model width (n_embd)
    H  query heads   Hkv  key/value heads   d  head size
    K  cached key/value positions           V  vocabulary size
    N  output features of a matmul          F  feed-forward width

Semantics follow ggml's CPU ops (ggml/src/ggml-cpu/ops.cpp); the llama.cpp symbol each
function mirrors is named in its docstring. Quantized weights are dequantized once (lazily,
cached per tensor) and multiplied in float32. With `activation_quant="peer"` the
activations are rounded the way llama.cpp's integer kernels see them (Q8_K blocks for
TQ1_0/TQ2_0, and for I2_S, which gets TQ2_0's treatment; Q8_0 blocks for the 32-blocked
types, float16 for F16): the products are then what those kernels compute, up to float
summation order (`bitnet.numerics.PeerBackend` has llama.cpp's order too, flash attention's
included). Left out: SWA, ALiBi, M-RoPE, LoRA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Protocol, Tuple

import numpy as np

from bitnet.ggml_types import QK_K, GGMLType, TensorSpec

# ggml type ids used by name below

K_QUANTS = (10, 11, 12, 13, 14)  # Q2_K .. Q6_K

ROPE_NORMAL = 0  # rotate consecutive pairs (x[2i], x[2i+1])       — LLAMA_ROPE_TYPE_NORM
ROPE_NEOX = 2  # rotate pairs offset by n_dims/2 (x[i], x[i+n/2]) — LLAMA_ROPE_TYPE_NEOX

ACTIVATION_QUANT_MODES = ("none", "peer")


@dataclass(frozen=True)
class QTensor(TensorSpec):
    """A weight as stored in the file: raw bytes plus its ggml type and shape."""

    data: np.ndarray  # (nbytes,) uint8, usually a zero-copy view of the mmap


@dataclass(frozen=True)
class RopeParams:
    """The arguments of ggml_rope_ext besides the tensor and positions."""

    n_dims: int  # rotated dims per head (n_rot); the rest pass through
    mode: int = ROPE_NORMAL  # ROPE_NORMAL or ROPE_NEOX
    freq_base: float = 10000.0
    freq_scale: float = 1.0  # 1 / linear rope scaling factor
    n_ctx_orig: int = 0  # YaRN: original training context
    ext_factor: float = 0.0  # YaRN extrapolation mix; 0 = off (llama.cpp's default)
    attn_factor: float = 1.0  # magnitude scale of cos/sin
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    # (n_dims/2,) per-pair frequency divisors (llama 3's `rope_freqs`), or None
    freq_factors: Optional[np.ndarray] = field(default=None, compare=False)


KV_VIEW_PAD = 256  # llama_kv_cache::get_n_kv pads the used cells to a multiple of this


@dataclass(frozen=True)
class FlashAttn:
    """Attention by llama.cpp's flash-attention kernel (ggml_flash_attn_ext) for one ubatch,
    with what its float order depends on (`bitnet.numerics.flash`): n_threads, llama.cpp's
    thread count for the op (n_threads for one token); n_view, the length of its KV view
    (the used cells padded to 256, at most the cache size)."""

    n_threads: int = 1
    n_view: int = KV_VIEW_PAD


def visible_cells(q_pos: np.ndarray, kv_pos: np.ndarray) -> np.ndarray:
    """llama.cpp's causal KQ mask as booleans: query t sees cell k when 0 <= kv_pos <= q_pos[t].
    kv_pos: (K,) for every query or (T, K), a row per query (its sequence's cells) -> (T, K)."""
    kp = kv_pos if kv_pos.ndim == 2 else kv_pos[None, :]
    return (kp >= 0) & (kp <= np.asarray(q_pos)[:, None])


def kv_view(n_used: int, n_cells: int) -> int:
    """llama_kv_cache::get_n_kv: the cells its attention views, min(cells, max(256, the used
    cells rounded up to 256))."""
    padded = -(-n_used // KV_VIEW_PAD) * KV_VIEW_PAD
    return min(n_cells, max(KV_VIEW_PAD, padded))


def dequantize(w: QTensor) -> np.ndarray:
    """The weight as float32 in numpy order, via `bitnet.quants`."""
    from bitnet import quants

    return np.asarray(quants.dequantize(w.data, w.type_id, w.np_shape), dtype=np.float32)


# --------------------------------------------------------------------------------------
# activation rounding as the peers' integer kernels see it ("fake quantization")


def _round_trip(x: np.ndarray, type_id: int) -> np.ndarray:
    """x (T, D) quantized to `type_id` blocks along D and dequantized again."""
    from bitnet import quants

    return quants.dequantize(quants.quantize(x, type_id), type_id, x.shape)


def fake_quant_q8_k(x: np.ndarray) -> np.ndarray:
    """Activations as llama.cpp's TQ1_0/TQ2_0 dot products see them: quantize_row_q8_K per
    256-block (int8 codes, f32 scale from the signed max), back to float. x: (T, D)."""
    from bitnet import quants

    q, d = quants.quantize_activations_q8_k(x)  # (T, D) int8, (T, D/256) f32
    blocks = q.reshape(x.shape[0], -1, QK_K).astype(np.float32) * d[..., None]
    return blocks.reshape(x.shape)


def peer_activations(x: np.ndarray, weight_type: int) -> np.ndarray:
    """x (T, D) rounded the way the peer's kernel for `weight_type` quantizes it."""
    if weight_type in (GGMLType.TQ1_0, GGMLType.TQ2_0) or weight_type in K_QUANTS:
        return fake_quant_q8_k(x)  # llama.cpp: vec_dot_type Q8_K
    if weight_type == GGMLType.I2_S:
        # no llama.cpp peer: TQ2_0's treatment (Q8_K blocks of 256; a row of 128-blocks may
        # end with a half block, quantized alone: zero padding leaves its max unchanged)
        pad = -x.shape[1] % QK_K
        xp = np.pad(x, ((0, 0), (0, pad))) if pad else x
        return fake_quant_q8_k(xp)[:, : x.shape[1]]
    if weight_type in (GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0):
        # llama.cpp: vec_dot_type Q8_0 / Q8_1 (same codes and fp16 scale; Q8_1 adds a sum).
        # subtle: the reference quantizer rounds half away from zero with 1/d, the x86
        # kernels half to even with 127/max; they differ on exact ties only.
        return _round_trip(x, GGMLType.Q8_0)
    if weight_type == GGMLType.F16:
        return x.astype(np.float16).astype(np.float32)  # vec_dot_type F16
    if weight_type == GGMLType.BF16:
        return x  # FIXME: bf16 rounding of activations not emulated
    return x


# --------------------------------------------------------------------------------------
# the protocol


class Backend(Protocol):
    """The kernels a graph needs. Arrays are float32 unless said otherwise."""

    def get_rows(self, w: QTensor, ids: np.ndarray) -> np.ndarray:
        """Embedding lookup. w: (V, D) quantized; ids: (T,) int -> (T, D)."""
        ...

    def matmul(self, w: QTensor, x: np.ndarray) -> np.ndarray:
        """x @ w.T.  w: (N, D) quantized; x: (T, D) -> (T, N)."""
        ...

    def rms_norm(self, x: np.ndarray, weight: Optional[np.ndarray], eps: float) -> np.ndarray:
        """x: (T, D); weight: (D,) or None -> (T, D)."""
        ...

    def rope(self, x: np.ndarray, positions: np.ndarray, p: RopeParams) -> np.ndarray:
        """x: (T, H, d); positions: (T,) int -> (T, H, d)."""
        ...

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
        """Causal GQA. q: (T, H, d); k, v: (K, Hkv, d); q_pos: (T,); kv_pos: (K,) or (T, K)
        (`visible_cells`) -> (T, H*d). flash: computed as llama.cpp's flash-attention kernel
        (None: without it)."""
        ...

    def swiglu(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        """silu(gate) * up.  gate, up: (T, F) -> (T, F)."""
        ...

    def relu2_glu(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        """relu(gate)^2 * up.  gate, up: (T, F) -> (T, F)."""
        ...

    def softmax(self, x: np.ndarray) -> np.ndarray:
        """Softmax over the last axis.  x: (..., K) -> (..., K)."""
        ...

    def forward_layers(self, hp: Any, w: Any, cache: Any, x: np.ndarray, positions: np.ndarray,
                       kv_pos: np.ndarray, rope: RopeParams, kq_scale: float,
                       n_out: int, flash: Optional[FlashAttn] = None,
                       cells: Optional[np.ndarray] = None) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Optional: every layer of `bitnet.model.graphs.forward` in one call, with the same
        results as the per-op loop. x: (T, D) embeddings; kv_pos: (K,) or (T, K) the cells'
        positions attention sees (this batch included, `visible_cells`); the batch's keys and
        values go into `cache` at `cells` (None: the positions).
        The output rows are the last n_out; the last layer's FFN runs for them only (as
        llama.cpp computes only its outputs there). Returns (out, state): out (n_out, D) the
        output rows' residual stream after the last layer; state (T, D) the last layer's FFN
        input of every row when n_out < T, else the final residual of every row. None: not
        handled, the graph runs op by op. flash: attention as in `attention`."""
        ...


# --------------------------------------------------------------------------------------
# numpy implementation


class NumpyBackend:
    """The reference kernels: dequantize-then-matmul in float32, everything else in numpy.

    activation_quant: "none" (exact float activations, the default) or "peer" (activations
    rounded as llama.cpp / bitnet.cpp round them before their integer dot products).
    """

    def __init__(self, *, activation_quant: str = "none") -> None:
        if activation_quant not in ACTIVATION_QUANT_MODES:
            raise ValueError(
                f"activation_quant={activation_quant!r}; expected one of {ACTIVATION_QUANT_MODES}"
            )
        self.activation_quant = activation_quant
        # id(w) -> (w, (N, D) float32); holding w keeps its id from being reused
        self._dequantized: Dict[int, Tuple[QTensor, np.ndarray]] = {}

    def weight(self, w: QTensor) -> np.ndarray:
        """The dequantized weight (numpy order), computed once per tensor."""
        cached = self._dequantized.get(id(w))
        if cached is None:
            cached = (w, dequantize(w))
            self._dequantized[id(w)] = cached
        return cached[1]

    def get_rows(self, w: QTensor, ids: np.ndarray) -> np.ndarray:
        """ggml_get_rows. w: (V, D); ids: (T,) -> (T, D).

        Reads only the rows asked for unless the whole table is already dequantized (a
        tied output matrix), so an untied embedding never occupies float32 memory."""
        ids = np.asarray(ids, dtype=np.int64)
        cached = self._dequantized.get(id(w))
        if cached is not None:
            return cached[1][ids]
        from bitnet import quants

        rows = quants.dequantize_rows(w.data, w.type_id, w.np_shape, ids.tolist())
        return np.asarray(rows, dtype=np.float32)

    def matmul(self, w: QTensor, x: np.ndarray) -> np.ndarray:
        """ggml_mul_mat(w, x). w: (N, D); x: (T, D) -> (T, N)."""
        if self.activation_quant == "peer":
            # FIXME: Q4_1/Q5_1 x Q8_1 also round the activation block sums to fp16; not
            # emulated (measured on a synthetic Q4_1 model it is not the main difference).
            x = peer_activations(x, w.type_id)
        return x.astype(np.float32) @ self.weight(w).T

    def rms_norm(self, x: np.ndarray, weight: Optional[np.ndarray], eps: float) -> np.ndarray:
        """ggml_rms_norm (+ ggml_mul by weight). x: (T, D); weight: (D,) -> (T, D)."""
        mean_sq = np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True)  # (T, 1)
        y = (x * (1.0 / np.sqrt(mean_sq + eps))).astype(np.float32)
        return y if weight is None else y * weight

    def rope(self, x: np.ndarray, positions: np.ndarray, p: RopeParams) -> np.ndarray:
        """ggml_rope_ext. x: (T, H, d); positions: (T,) -> (T, H, d)."""
        cos, sin = rope_cos_sin(positions, p)  # (T, n_dims/2) each
        cos, sin = cos[:, None, :], sin[:, None, :]  # (T, 1, n_dims/2) broadcast over heads
        out = x.astype(np.float32).copy()
        n = p.n_dims
        if p.mode == ROPE_NEOX:
            x0, x1 = x[..., : n // 2], x[..., n // 2 : n]  # (T, H, n/2): pairs (i, i + n/2)
            out[..., : n // 2] = x0 * cos - x1 * sin
            out[..., n // 2 : n] = x0 * sin + x1 * cos
        elif p.mode == ROPE_NORMAL:
            x0, x1 = x[..., 0:n:2], x[..., 1:n:2]  # (T, H, n/2): pairs (2i, 2i+1)
            out[..., 0:n:2] = x0 * cos - x1 * sin
            out[..., 1:n:2] = x0 * sin + x1 * cos
        else:
            raise NotImplementedError(f"rope mode {p.mode} (only NORMAL=0 and NEOX=2)")
        return out

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
        """llama.cpp build_attn_mha without flash attention (`flash` changes only the float
        order, which this float reference does not follow).

        q: (T, H, d); k: (K, Hkv, d); v: (K, Hkv, d); q_pos: (T,); kv_pos: (K,) (-1 = empty
        cell; or (T, K), a row per query) -> (T, H*d). Query head h reads key/value head
        h // (H/Hkv) (ggml_mul_mat broadcasting). A query sees the cells whose position is <=
        its own.
        """
        t, h, d = q.shape
        hkv = k.shape[1]
        group = h // hkv
        peer_f16 = self.activation_quant == "peer" and k.dtype == np.float16
        if peer_f16:  # llama.cpp converts q to the F16 cache type before K·q
            q = q.astype(np.float16)
        kh = np.repeat(k.astype(np.float32), group, axis=1)  # (K, H, d)
        vh = np.repeat(v.astype(np.float32), group, axis=1)  # (K, H, d)
        scores = np.einsum("thd,khd->htk", q.astype(np.float32), kh) * scale  # (H, T, K)
        visible = visible_cells(q_pos, kv_pos)  # (T, K)
        scores = np.where(visible[None, :, :], scores, -np.inf)
        probs = self.softmax(scores)  # (H, T, K)
        if peer_f16:  # ... and the probabilities to F16 before V·p
            probs = probs.astype(np.float16).astype(np.float32)
        out = np.einsum("htk,khd->thd", probs, vh)  # (T, H, d)
        return out.reshape(t, h * d).astype(np.float32)

    def swiglu(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        """ggml_swiglu_split: silu(gate) * up. (T, F), (T, F) -> (T, F)."""
        return (gate / (1.0 + np.exp(-gate)) * up).astype(np.float32)

    def relu2_glu(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        """LLM_FFN_RELU_SQR + LLM_FFN_PAR: relu(gate)^2 * up. (T, F), (T, F) -> (T, F)."""
        r = np.maximum(gate, 0.0)
        return (r * r * up).astype(np.float32)

    def softmax(self, x: np.ndarray) -> np.ndarray:
        """ggml_soft_max over the last axis; rows of all -inf give zeros. (..., K)."""
        m = np.max(x, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(x - m)
        s = np.sum(e, axis=-1, keepdims=True)
        return (e / np.where(s > 0, s, 1.0)).astype(np.float32)

    def forward_layers(self, hp: Any, w: Any, cache: Any, x: np.ndarray, positions: np.ndarray,
                       kv_pos: np.ndarray, rope: RopeParams, kq_scale: float,
                       n_out: int, flash: Optional[FlashAttn] = None,
                       cells: Optional[np.ndarray] = None) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """No fused forward here: the graph runs op by op."""
        return None


def rope_cos_sin(positions: np.ndarray, p: RopeParams) -> Tuple[np.ndarray, np.ndarray]:
    """cos/sin tables of ggml_rope_cache_init + rope_yarn.

    positions: (T,) -> cos, sin: (T, n_dims/2). Pair i rotates by
    theta = pos * base^(-2i/n_dims), interpolated with freq_scale and, when ext_factor != 0,
    blended back toward extrapolation on YaRN's ramp (ggml_rope_yarn_corr_dims).
    """
    n = p.n_dims
    i = np.arange(n // 2, dtype=np.float64)  # (n/2,) pair index = i0/2
    theta_extrap = np.asarray(positions, dtype=np.float64)[:, None] * np.power(
        p.freq_base, -2.0 * i / n
    )  # (T, n/2)
    if p.freq_factors is not None:
        theta_extrap = theta_extrap / np.asarray(p.freq_factors, dtype=np.float64)[: n // 2]
    theta = p.freq_scale * theta_extrap
    mscale = p.attn_factor
    if p.ext_factor != 0.0:
        low, high = yarn_corr_dims(n, p.n_ctx_orig, p.freq_base, p.beta_fast, p.beta_slow)
        y = (i - low) / max(0.001, high - low)
        ramp_mix = (1.0 - np.clip(y, 0.0, 1.0)) * p.ext_factor  # (n/2,)
        theta = theta * (1.0 - ramp_mix) + theta_extrap * ramp_mix
        mscale *= 1.0 + 0.1 * math.log(1.0 / p.freq_scale)
    return (np.cos(theta) * mscale).astype(np.float32), (np.sin(theta) * mscale).astype(np.float32)


def yarn_corr_dims(
    n_dims: int, n_ctx_orig: int, freq_base: float, beta_fast: float, beta_slow: float
) -> Tuple[float, float]:
    """ggml_rope_yarn_corr_dims: the dims where YaRN's ramp starts and ends."""

    def corr_dim(n_rot: float) -> float:
        return n_dims * math.log(n_ctx_orig / (n_rot * 2 * math.pi)) / (2 * math.log(freq_base))

    start = math.floor(corr_dim(beta_fast))
    end = math.ceil(corr_dim(beta_slow))
    return float(max(0, start)), float(min(n_dims - 1, end))
