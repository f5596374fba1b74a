"""The forward pass of the supported architectures, written against `bitnet.ops.Backend`.

One function covers the three graphs; they differ only where marked:

    llama         (src/models/llama.cpp)    NORM rope, SwiGLU FFN, output or tied
    bitnet        (src/models/bitnet.cpp)   NEOX rope, RMSNorm after attention (attn_sub_norm)
                                            and after the gated FFN (ffn_sub_norm), SiLU gate,
                                            optional `.scale` per matmul, tied output
    bitnet-b1.58  (bitnet.cpp build_bitnet_158)  as bitnet, FFN relu(gate)^2 * up

Left out (they raise at load instead): MoE, biases on norms, rope frequency factors,
attention logit soft-capping, sliding windows.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from bitnet.errors import ContextLengthExceededError
from bitnet.model.hparams import HParams
from bitnet.model.kvcache import KVCache
from bitnet.model.weights import LayerWeights, Linear, ModelWeights
from bitnet.ops import Backend, FlashAttn, RopeParams, kv_view


def rope_params(hp: HParams, freq_factors: Optional[np.ndarray] = None) -> RopeParams:
    """llama.cpp's context defaults: YaRN only when the file's scaling type is yarn."""
    return RopeParams(
        freq_factors=freq_factors,
        n_dims=hp.n_rot,
        mode=hp.rope_type,
        freq_base=hp.rope_freq_base,
        freq_scale=hp.rope_freq_scale,
        n_ctx_orig=hp.n_ctx_orig_yarn,
        ext_factor=1.0 if hp.rope_scaling_type == "yarn" else 0.0,
        attn_factor=hp.rope_attn_factor,
    )


def linear(ops: Backend, lin: Linear, x: np.ndarray) -> np.ndarray:
    """build_lora_mm + bias. x: (T, D) -> (T, N)."""
    y = ops.matmul(lin.w, x)
    if lin.scale is not None:
        y = y * np.float32(lin.scale)
    if lin.bias is not None:
        y = y + lin.bias
    return y


def forward(
    ops: Backend,
    hp: HParams,
    w: ModelWeights,
    cache: KVCache,
    tokens: np.ndarray,
    positions: np.ndarray,
    layer_hook: Optional[Callable[[int, np.ndarray], None]] = None,
    n_out: Optional[int] = None,
    flash_attn: bool = False,
    n_threads: int = 1,
    seqs: Optional[Sequence[Sequence[int]]] = None,
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Run the layers over one batch (one llama.cpp ubatch).

    tokens: (T,) int; positions: (T,) int; seqs: each token's sequence ids (None: sequence 0).
    The tokens go into the cells llama.cpp would pick (`KVCache.find_slot`; ContextLengthExceeded
    when there are not enough) and each attends to the cells of its first sequence up to its
    position, in cell order as llama.cpp's KQ mask has them. The output rows are the
    last n_out (default: all T); as in llama.cpp (inp_out_ids), the last layer's FFN runs
    for them only, so its matmuls have n_out rows. Returns (hidden, ffn_input): hidden
    (n_out, D) after output_norm; ffn_input (T, D), the last layer's FFN input of every row,
    when n_out < T (`finish_rows` completes it as if every row were an output), else None.
    layer_hook(il, x) sees each layer's output residual stream ((n_out, D) for the last
    layer), for per-layer diffs; without a hook, a backend's fused `forward_layers` (the C
    backend) runs all layers in one call, with the same kernels and results as this loop.
    flash_attn: attention as llama.cpp's flash-attention kernel, whose split-KV path (one
    token) depends on n_threads, llama.cpp's thread count for this ubatch.
    """
    t = len(tokens)
    n_out = t if n_out is None else int(n_out)
    if not 0 <= n_out <= t:
        raise ValueError(f"n_out={n_out} outside 0..{t}")
    cells = cache.find_slot(t)
    if cells is None:
        raise ContextLengthExceededError(f"no {t} free cells in a KV cache of {cache.n_ctx}")
    # subtle: the cells of this batch become visible before attention, as in llama.cpp
    head = cache.head
    cache.place(cells, positions, seqs)
    try:
        first = None if seqs is None else np.array([row[0] for row in seqs], dtype=np.int64)
        kv_pos = cache.visible_pos(first)  # (K,) or (T, K)
        return _layers(ops, hp, w, cache, tokens, positions, cells, kv_pos, layer_hook, n_out,
                       flash_attn, n_threads)
    except BaseException:
        cache.unplace(cells)
        cache.head = head
        raise


def _layers(ops: Backend, hp: HParams, w: ModelWeights, cache: KVCache, tokens: np.ndarray,
            positions: np.ndarray, cells: np.ndarray, kv_pos: np.ndarray,
            layer_hook: Optional[Callable[[int, np.ndarray], None]], n_out: int, flash_attn: bool,
            n_threads: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """`forward` once the tokens have their cells."""
    t = len(tokens)
    hd = hp.n_embd_head_k
    rope = rope_params(hp, w.rope_freqs)
    # llama.cpp: 1.0f/sqrtf(float(n_embd_head)), both steps rounded to float32
    kq_scale = hp.attention_scale if hp.attention_scale != 0.0 else \
        float(np.float32(1.0) / np.sqrt(np.float32(hd)))
    n_kv = kv_pos.shape[-1]
    flash: Optional[FlashAttn] = None
    if flash_attn:  # llama_kv_cache::get_n_kv: its view of the cells, 256-padded
        flash = FlashAttn(n_threads=max(1, int(n_threads)), n_view=kv_view(n_kv, cache.n_ctx))
    fa = {} if flash is None else {"flash": flash}  # backends without flash attention keep working

    x = ops.get_rows(w.tok_embd, tokens)  # (T, D)
    fuse = ops.forward_layers if layer_hook is None else None
    fused = None if fuse is None else fuse(hp, w, cache, x, positions, kv_pos, rope, kq_scale, n_out,
                                           cells=cells, **fa)
    if fused is not None:
        out, state = fused
        return ops.rms_norm(out, w.output_norm, hp.rms_eps), (state if n_out < t else None)
    ffn_input: Optional[np.ndarray] = None
    for il, lw in enumerate(w.layers):
        x = _attention_block(ops, hp, lw, cache, il, x, positions, cells, kv_pos, rope, kq_scale, fa)
        if il == len(w.layers) - 1 and n_out < t:
            ffn_input, x = x, x[t - n_out :]  # llama.cpp's get_rows(inp_out_ids)
        x = _ffn_block(ops, hp, lw, x)
        if layer_hook is not None:
            layer_hook(il, x)
    return ops.rms_norm(x, w.output_norm, hp.rms_eps), ffn_input


def finish_rows(ops: Backend, hp: HParams, w: ModelWeights, ffn_input: np.ndarray) -> np.ndarray:
    """The hidden state after output_norm of every row whose last-layer FFN `forward` left
    out (its `ffn_input`, (T, D)), computed as when all T rows are outputs. -> (T, D)."""
    x = _ffn_block(ops, hp, w.layers[-1], ffn_input)
    return ops.rms_norm(x, w.output_norm, hp.rms_eps)


def _attention_block(ops: Backend, hp: HParams, lw: LayerWeights, cache: KVCache, il: int,
                     x: np.ndarray, positions: np.ndarray, cells: np.ndarray, kv_pos: np.ndarray,
                     rope: RopeParams, kq_scale: float, fa: Dict[str, FlashAttn]) -> np.ndarray:
    """x + self-attention(x) of layer il; the batch's keys and values go into the cache.
    fa: {} or {"flash": FlashAttn} (the attention keyword)."""
    t = x.shape[0]
    hd = hp.n_embd_head_k
    h = ops.rms_norm(x, lw.attn_norm, hp.rms_eps)  # (T, D)
    q = linear(ops, lw.wq, h).reshape(t, hp.n_head, hd)  # (T, H, d)
    k = linear(ops, lw.wk, h).reshape(t, hp.n_head_kv, hd)  # (T, Hkv, d)
    v = linear(ops, lw.wv, h).reshape(t, hp.n_head_kv, hd)  # (T, Hkv, d)
    q = ops.rope(q, positions, rope)
    k = ops.rope(k, positions, rope)
    cache.store(il, cells, k, v)
    n_kv = kv_pos.shape[-1]
    # (T, H*d)
    attn = ops.attention(q, cache.k[il, :n_kv], cache.v[il, :n_kv], positions, kv_pos, kq_scale, **fa)
    if hp.arch in ("bitnet", "bitnet-b1.58"):
        attn = ops.rms_norm(attn, lw.attn_sub_norm, hp.rms_eps)  # (T, H*d)
    return x + linear(ops, lw.wo, attn)  # (T, D)


def _ffn_block(ops: Backend, hp: HParams, lw: LayerWeights, x: np.ndarray) -> np.ndarray:
    """x + the gated FFN of x (ffn_norm, gate/up, GLU, ffn_sub_norm for bitnet, down)."""
    h = ops.rms_norm(x, lw.ffn_norm, hp.rms_eps)  # (T, D)
    gate = linear(ops, lw.ffn_gate, h)  # (T, F)
    up = linear(ops, lw.ffn_up, h)  # (T, F)
    if hp.arch == "bitnet-b1.58":
        act = ops.relu2_glu(gate, up)  # (T, F)
    else:
        act = ops.swiglu(gate, up)  # (T, F)
    if hp.arch in ("bitnet", "bitnet-b1.58"):
        act = ops.rms_norm(act, lw.ffn_sub_norm, hp.rms_eps)
    return x + linear(ops, lw.ffn_down, act)  # (T, D)


def output_logits(
    ops: Backend, w: ModelWeights, hidden: np.ndarray, rows: Optional[np.ndarray] = None
) -> np.ndarray:
    """lm_head. hidden: (T, D) -> (len(rows) or T, V)."""
    if rows is not None:
        hidden = hidden[rows]
    return ops.matmul(w.output, hidden)
