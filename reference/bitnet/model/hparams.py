"""Hyperparameters read from `{arch}.*` GGUF keys with llama.cpp's defaults.

Mirrors llama_model_base::load_hparams (src/llama-model.cpp) for the keys the supported
graphs use. Per-layer arrays (head counts, feed-forward widths) are accepted only when all
layers agree; anything else raises UnsupportedError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import numpy as np

from bitnet.errors import ModelLoadError, UnsupportedError
from bitnet.ops import ROPE_NEOX, ROPE_NORMAL

# architecture -> llama.cpp's rope type for it (llama_model_rope_type)
ROPE_TYPES: Dict[str, int] = {
    "llama": ROPE_NORMAL,
    "bitnet": ROPE_NEOX,
    "bitnet-b1.58": ROPE_NEOX,  # bitnet.cpp lists LLM_ARCH_BITNET_B158 with the NEOX group
}
SUPPORTED_ARCHITECTURES = tuple(ROPE_TYPES)


@dataclass(frozen=True)
class HParams:
    arch: str
    n_vocab: int
    n_ctx_train: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_embd_head_k: int
    n_embd_head_v: int
    n_rot: int
    rms_eps: float
    rope_type: int
    rope_freq_base: float
    rope_freq_scale: float  # 1 / rope.scaling.factor (1 when absent or 0)
    rope_scaling_type: str  # "none" | "linear" | "yarn" | ...
    n_ctx_orig_yarn: int
    rope_attn_factor: float
    attention_scale: float  # 0 = 1/sqrt(head size)

    @property
    def n_embd_k_gqa(self) -> int:
        return self.n_embd_head_k * self.n_head_kv

    @property
    def n_embd_v_gqa(self) -> int:
        return self.n_embd_head_v * self.n_head_kv


def _uniform(value: Any, key: str) -> int:
    """A scalar, or a per-layer array whose entries all agree."""
    if isinstance(value, np.ndarray):
        values = {int(v) for v in value.tolist()}
        if len(values) != 1:
            raise UnsupportedError(f"{key}: per-layer values {sorted(values)} are not supported")
        return values.pop()
    return int(value)


def check_architecture(kv: Dict[str, Any]) -> str:
    """`general.architecture` if this engine runs it, else UnsupportedError naming those it runs."""
    arch = str(kv.get("general.architecture", ""))
    if arch not in ROPE_TYPES:
        raise UnsupportedError(
            f"architecture {arch!r} is not supported; supported: {', '.join(ROPE_TYPES)}"
        )
    n_expert = int(kv.get(f"{arch}.expert_count", 0) or 0)
    if n_expert > 0:
        raise UnsupportedError(f"{arch} with {n_expert} experts (MoE) is not supported")
    return arch


def hparams_from_kv(kv: Dict[str, Any], n_vocab: int) -> HParams:
    """Read the hyperparameters of `general.architecture` from a GGUF key/value dict."""
    arch = check_architecture(kv)

    def req(name: str) -> Any:
        key = f"{arch}.{name}"
        if key not in kv:
            raise ModelLoadError(f"missing required key {key}")
        return kv[key]

    def opt(name: str, default: Any) -> Any:
        return kv.get(f"{arch}.{name}", default)

    n_embd = int(req("embedding_length"))
    n_layer = int(req("block_count"))
    n_head = _uniform(req("attention.head_count"), f"{arch}.attention.head_count")
    n_head_kv = _uniform(opt("attention.head_count_kv", n_head), f"{arch}.attention.head_count_kv")
    n_ff = _uniform(req("feed_forward_length"), f"{arch}.feed_forward_length")
    if n_head <= 0 or n_head_kv <= 0 or n_head % n_head_kv != 0:
        raise ModelLoadError(f"bad head counts: n_head={n_head} n_head_kv={n_head_kv}")
    head_k = int(opt("attention.key_length", n_embd // n_head))
    head_v = int(opt("attention.value_length", n_embd // n_head))
    n_rot = int(opt("rope.dimension_count", head_k))
    if arch == "llama" and n_rot != head_k:
        raise ModelLoadError(f"invalid n_rot: {n_rot}, expected {head_k}")  # as llama.cpp
    if n_rot % 2 or n_rot > head_k:
        raise ModelLoadError(f"invalid n_rot: {n_rot} (head size {head_k})")
    if head_k != head_v:
        raise UnsupportedError(f"key head size {head_k} != value head size {head_v}")

    if str(opt("rope.scaling.type", "linear")) == "longrope":
        raise UnsupportedError("rope scaling type 'longrope' is not supported")
    n_ctx_train = int(req("context_length"))
    scale_factor = float(opt("rope.scaling.factor", opt("rope.scale_linear", 0.0)))
    return HParams(
        arch=arch,
        n_vocab=n_vocab,
        n_ctx_train=n_ctx_train,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_ff=n_ff,
        n_embd_head_k=head_k,
        n_embd_head_v=head_v,
        n_rot=n_rot,
        rms_eps=float(req("attention.layer_norm_rms_epsilon")),
        rope_type=ROPE_TYPES[arch],
        rope_freq_base=float(opt("rope.freq_base", 10000.0)),
        rope_freq_scale=1.0 if scale_factor == 0.0 else 1.0 / scale_factor,
        rope_scaling_type=str(opt("rope.scaling.type", "linear")),
        n_ctx_orig_yarn=int(opt("rope.scaling.original_context_length", n_ctx_train)),
        rope_attn_factor=float(opt("rope.scaling.attn_factor", 1.0)),
        attention_scale=float(opt("attention.scale", 0.0)),
    )
