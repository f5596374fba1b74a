"""The fused forward: every layer of `bitnet.model.graphs.forward` in one C call (bn_forward).

`FusedForward(lib, ffi, numerics_peer)` builds, once per model, the C description of its
layers (bn_model: pointers into the weights' bytes, norms as float32) and runs a batch: one
parallel region, spin-then-sleep barriers between steps, matmul rows split across threads.
In llama.cpp numerics (peer) it is bn_peer_forward.c: llama.cpp's float order, the last
layer's FFN only for the output rows; in float numerics, bn_forward.c. Models the C cannot
describe (another architecture, a tensor it cannot read) give None and the graph runs op by
op with the same kernels.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from bitnet.ops import ROPE_NEOX, ROPE_NORMAL, FlashAttn, QTensor, RopeParams, rope_cos_sin


def _f32(x: Any) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


class FusedForward:
    """bn_model descriptions cached per model weights, and the call of bn_forward."""

    def __init__(self, ffi: Any, lib: Any, *, peer: bool, can_read: Callable[[QTensor], bool]) -> None:
        self.ffi, self.lib, self.peer, self.can_read = ffi, lib, peer, can_read
        # id(ModelWeights) -> (weights, (bn_model*, keepalive) or None)
        self._models: Dict[int, Tuple[Any, Any]] = {}

    def run(self, hp: Any, w: Any, cache: Any, x: np.ndarray, positions: np.ndarray, kv_pos: np.ndarray,
            rope: RopeParams, kq_scale: float, n_out: int, n_threads: int,
            flash: Optional[FlashAttn] = None,
            cells: Optional[np.ndarray] = None) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """(out, state) as `bitnet.ops.Backend.forward_layers`, or None when not fusable.
        n_threads: the C pool; flash: llama.cpp's flash-attention kernel (peer numerics);
        cells: where the batch's keys and values go (None: the positions)."""
        model = self._model(hp, w)
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
        ffi = self.ffi
        m, keep = model
        m.kq_scale = float(kq_scale)
        m.rope_mode = rope.mode
        m.flash_attn = int(flash is not None)
        m.fa_threads = flash.n_threads if flash is not None else 0
        n_kv = kv_pos.shape[-1]
        m.fa_view = max(flash.n_view, n_kv) if flash is not None else 0
        local: List[Any] = []
        self._set_rope(m.rope, rope, local)
        xs = np.array(x, dtype=np.float32, order="C", copy=True)  # (T, D): the state on return
        t = xs.shape[0]
        out = np.empty((n_out, xs.shape[1]), dtype=np.float32)
        pos = np.ascontiguousarray(positions, dtype=np.int64)
        kvp = np.ascontiguousarray(kv_pos, dtype=np.int64)
        where = pos if cells is None else np.ascontiguousarray(cells, dtype=np.int64)
        if self.peer:  # RoPE computed in C from m.rope, as ggml_rope_cache_init
            cos = sin = np.zeros((t, 1), dtype=np.float32)
        else:
            cos, sin = (_f32(a) for a in rope_cos_sin(pos, rope))  # (T, n_rot/2)
        rc = self.lib.bn_forward(
            m, ffi.from_buffer("float[]", xs), t, ffi.from_buffer("int64_t[]", pos),
            ffi.from_buffer("int64_t[]", where), ffi.from_buffer("uint8_t[]", kc),
            ffi.from_buffer("uint8_t[]", vc), int(kc.dtype == np.float16), cache.n_ctx,
            ffi.from_buffer("int64_t[]", kvp), n_kv if kvp.ndim == 2 else 0, n_kv,
            ffi.from_buffer("float[]", cos), ffi.from_buffer("float[]", sin), n_threads, n_out,
            ffi.from_buffer("float[]", out) if n_out else ffi.NULL,
        )
        del keep, local
        if rc == -3:
            raise MemoryError("forward: out of memory")
        if rc != 0:
            raise RuntimeError(f"forward: C kernel returned {rc}")
        return out, xs

    def _set_rope(self, dst: Any, p: RopeParams, keep: List[Any]) -> None:
        dst.n_dims, dst.mode, dst.n_ctx_orig = p.n_dims, p.mode, p.n_ctx_orig
        dst.freq_base, dst.freq_scale, dst.ext_factor = p.freq_base, p.freq_scale, p.ext_factor
        dst.attn_factor, dst.beta_fast, dst.beta_slow = p.attn_factor, p.beta_fast, p.beta_slow
        if p.freq_factors is None:
            dst.freq_factors = self.ffi.NULL
        else:
            ff = _f32(p.freq_factors).reshape(-1)
            keep.append(ff)  # alive for the call
            dst.freq_factors = self.ffi.from_buffer("float[]", ff)

    def _model(self, hp: Any, w: Any) -> Optional[Any]:
        """(bn_model*, keepalive) for these weights, built once; None if not fusable."""
        cached = self._models.get(id(w))
        if cached is not None and cached[0] is w:
            return cached[1]
        built = self._build(hp, w)
        self._models[id(w)] = (w, built)  # holding w keeps its id from being reused
        return built

    def _build(self, hp: Any, w: Any) -> Optional[Any]:
        arch = hp.arch
        if arch not in ("llama", "bitnet", "bitnet-b1.58") or hp.n_embd_head_k != hp.n_embd_head_v:
            return None
        ffi = self.ffi
        bitnet = arch in ("bitnet", "bitnet-b1.58")
        keep: List[Any] = []

        def vec(a: Optional[np.ndarray], n: int) -> Any:
            if a is None:
                if not bitnet:
                    return ffi.NULL
                a = np.ones(n, dtype=np.float32)  # rms_norm without a weight: y * 1.0f = y
            arr = _f32(a)
            if arr.shape != (n,):
                raise ValueError(f"fused forward: norm weight {arr.shape} != ({n},)")
            keep.append(arr)
            return ffi.from_buffer("float[]", arr)

        def lin(dst: Any, lw: Any, n_out: int, n_in: int) -> bool:
            qt = lw.w
            if not self.can_read(qt) or qt.np_shape != (n_out, n_in):
                return False
            if lw.scale is not None and float(np.float32(lw.scale)) == 0.0:
                return False  # 0 means "no scale" to the C
            dst.type = qt.type_id
            dst.w = ffi.from_buffer("uint8_t[]", qt.data)
            keep.append(qt.data)
            dst.n_out, dst.n_in = n_out, n_in
            dst.scale = float(np.float32(lw.scale)) if lw.scale is not None else 0.0
            if lw.bias is not None:
                b = _f32(lw.bias).reshape(-1)
                if b.shape != (n_out,):
                    return False
                keep.append(b)
                dst.bias = ffi.from_buffer("float[]", b)
            else:
                dst.bias = ffi.NULL
            return True

        d, qw, kw, f = hp.n_embd, hp.n_head * hp.n_embd_head_k, hp.n_head_kv * hp.n_embd_head_k, hp.n_ff
        layers = ffi.new("bn_layer[]", max(len(w.layers), 1))
        keep.append(layers)
        for i, lw in enumerate(w.layers):
            c = layers[i]
            c.attn_norm = vec(lw.attn_norm, d)
            c.ffn_norm = vec(lw.ffn_norm, d)
            c.attn_sub_norm = vec(lw.attn_sub_norm, qw) if bitnet else ffi.NULL
            c.ffn_sub_norm = vec(lw.ffn_sub_norm, f) if bitnet else ffi.NULL
            ok = (
                lin(c.wq, lw.wq, qw, d) and lin(c.wk, lw.wk, kw, d) and lin(c.wv, lw.wv, kw, d)
                and lin(c.wo, lw.wo, d, qw) and lin(c.gate, lw.ffn_gate, f, d)
                and lin(c.up, lw.ffn_up, f, d) and lin(c.down, lw.ffn_down, d, f)
            )
            if not ok:
                return None
        m = ffi.new("bn_model *")
        m.n_layer = len(w.layers)
        m.n_embd, m.n_head, m.n_head_kv = d, hp.n_head, hp.n_head_kv
        m.head_dim, m.n_ff = hp.n_embd_head_k, f
        m.rope_dims, m.rope_mode = hp.n_rot, hp.rope_type
        m.ffn_relu2 = int(arch == "bitnet-b1.58")
        m.eps = float(hp.rms_eps)
        m.kq_scale = 0.0  # kq_scale, the RoPE mode and parameters are set per call
        m.mode = 1 if self.peer else 0
        m.layers = layers
        return (m, keep)
