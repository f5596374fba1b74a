"""Weights of the supported graphs, gathered by llama.cpp's tensor names and shape-checked.

Mirrors the load_arch_tensors of src/models/llama.cpp and src/models/bitnet.cpp (and
bitnet.cpp's LLM_ARCH_BITNET_B158 loader). Matmul weights stay quantized (`QTensor`, raw
bytes from the mmap); norms, biases and the per-tensor `.scale` {1} tensors of mainline
`bitnet` are dequantized to float32 at load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import numpy as np

from bitnet.errors import ModelLoadError
from bitnet.model.hparams import HParams
from bitnet.ops import QTensor, dequantize


@dataclass
class Linear:
    """y = (x @ w.T) * scale + bias — ggml_mul_mat, then ggml_mul by `.scale`, then ggml_add."""

    w: QTensor  # (N, D)
    scale: Optional[float] = None  # the optional `.scale` {1} tensor (mainline bitnet)
    bias: Optional[np.ndarray] = None  # (N,)


@dataclass
class LayerWeights:
    attn_norm: np.ndarray  # (D,)
    wq: Linear  # (H*d, D)
    wk: Linear  # (Hkv*d, D)
    wv: Linear  # (Hkv*d, D)
    wo: Linear  # (D, H*d)
    ffn_norm: np.ndarray  # (D,)
    ffn_gate: Linear  # (F, D)
    ffn_up: Linear  # (F, D)
    ffn_down: Linear  # (D, F)
    attn_sub_norm: Optional[np.ndarray] = None  # (H*d,)  bitnet only
    ffn_sub_norm: Optional[np.ndarray] = None  # (F,)  bitnet only


@dataclass
class ModelWeights:
    tok_embd: QTensor  # (V, D)
    output_norm: np.ndarray  # (D,)
    output: QTensor  # (V, D); the same tensor as tok_embd when tied
    layers: List[LayerWeights]
    rope_freqs: Optional[np.ndarray] = None  # (n_rot/2,) llama 3 rope frequency factors


class _Loader:
    """Looks tensors up by name in a loaded GGUF file and checks their ggml shapes."""

    def __init__(self, gf: Any) -> None:
        self.gf = gf

    def has(self, name: str) -> bool:
        return name in self.gf.tensors

    def qtensor(self, name: str, shape: Sequence[int]) -> QTensor:
        info = self.gf.tensors.get(name)
        if info is None:
            raise ModelLoadError(f"missing tensor {name}")
        if tuple(info.shape) != tuple(shape):
            raise ModelLoadError(
                f"tensor {name} has shape {list(info.shape)}, expected {list(shape)} (ggml order)"
            )
        return QTensor(name, int(info.type_id), tuple(info.shape), self.gf.tensor_bytes(name))

    def dense(self, name: str, shape: Sequence[int]) -> np.ndarray:
        return dequantize(self.qtensor(name, shape)).reshape(tuple(reversed(tuple(shape))))

    def optional_dense(self, name: str, shape: Sequence[int]) -> Optional[np.ndarray]:
        return self.dense(name, shape) if self.has(name) else None

    def linear(self, prefix: str, n_in: int, n_out: int) -> Linear:
        scale = self.optional_dense(f"{prefix}.scale", (1,))
        return Linear(
            w=self.qtensor(f"{prefix}.weight", (n_in, n_out)),
            scale=None if scale is None else float(scale.reshape(-1)[0]),
            bias=self.optional_dense(f"{prefix}.bias", (n_out,)),
        )


def load_weights(gf: Any, hp: HParams) -> ModelWeights:
    """Gather and shape-check every tensor the graph of `hp.arch` uses."""
    ld = _Loader(gf)
    d, v, f = hp.n_embd, hp.n_vocab, hp.n_ff
    n_q = hp.n_embd_head_k * hp.n_head
    n_kv = hp.n_embd_k_gqa
    bitnet = hp.arch in ("bitnet", "bitnet-b1.58")

    tok_embd = ld.qtensor("token_embd.weight", (d, v))
    # llama: `output` optional, else tied; bitnet: always tok_embd (llama.cpp's FIXME);
    # bitnet-b1.58: tied in the official file, `output` used when present.
    if hp.arch != "bitnet" and ld.has("output.weight"):
        output = ld.qtensor("output.weight", (d, v))
    else:
        output = tok_embd

    layers = []
    for i in range(hp.n_layer):
        p = f"blk.{i}"
        layers.append(
            LayerWeights(
                attn_norm=ld.dense(f"{p}.attn_norm.weight", (d,)),
                wq=ld.linear(f"{p}.attn_q", d, n_q),
                wk=ld.linear(f"{p}.attn_k", d, n_kv),
                wv=ld.linear(f"{p}.attn_v", d, n_kv),
                wo=ld.linear(f"{p}.attn_output", n_q, d),
                ffn_norm=ld.dense(f"{p}.ffn_norm.weight", (d,)),
                ffn_gate=ld.linear(f"{p}.ffn_gate", d, f),
                ffn_up=ld.linear(f"{p}.ffn_up", d, f),
                ffn_down=ld.linear(f"{p}.ffn_down", f, d),
                attn_sub_norm=ld.dense(f"{p}.attn_sub_norm.weight", (n_q,)) if bitnet else None,
                ffn_sub_norm=ld.dense(f"{p}.ffn_sub_norm.weight", (f,)) if bitnet else None,
            )
        )
    rope_freqs = None
    if hp.arch == "llama" and ld.has("rope_freqs.weight"):
        rope_freqs = ld.dense("rope_freqs.weight", (hp.n_rot // 2,))
    return ModelWeights(
        tok_embd=tok_embd,
        output_norm=ld.dense("output_norm.weight", (d,)),
        output=output,
        layers=layers,
        rope_freqs=rope_freqs,
    )
