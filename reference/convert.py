"""`bitnet convert`: a Hugging Face BitNet checkpoint directory -> GGUF.

    from bitnet.convert import convert
    convert("hf_dir", "out.gguf", outtype="i2_s")

Reads config.json, tokenizer.json (+ tokenizer_config.json) and *.safetensors (parsed here:
u64 header length, JSON header, raw little-endian bytes). Two weight layouts:

- latent weights (1bitLLM/bitnet_b1_58-*, microsoft/bitnet-b1.58-2B-4T-bf16): bf16/f16/f32
  matrices, ternarized as BitNet b1.58 does at inference (scale = mean|W|, per tensor,
  W' = scale * RoundClip(W / scale, -1, 1)), like llama.cpp's BitnetModel.weight_quant.
- packed weights (microsoft/bitnet-b1.58-2B-4T): uint8 (out/4, in) with a `weight_scale`
  sibling; transformers.integrations.bitnet.unpack_weights: byte row r, bits 2i+1:2i hold
  output row i * (out/4) + r as code - 1; BitLinear divides by weight_scale, so
  W = t / weight_scale.

Architecture from config.json's hidden_act: "relu2" -> `bitnet-b1.58` (bitnet.cpp),
"silu" -> `bitnet` (mainline llama.cpp). Both use NEOX rope = HF's rotate_half, so q/k are
not permuted. The output is tied to token_embd in both graphs: an untied lm_head is dropped
with a warning (llama.cpp would reject the extra tensor).

Left out: sentencepiece tokenizer.model (only tokenizer.json BPE), rope scaling, sharded
checkpoints other than via *.safetensors in one directory.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from bitnet.errors import BitNetError, ModelLoadError, UnsupportedError
from bitnet.gguf.fixes import detect_pre_tokenizer
from bitnet.gguf.reader import KVType
from bitnet.gguf.writer import write_gguf
from bitnet.quantize import FILE_TYPES
from bitnet.quants import quantize

F32, F16, TQ2_0, I2_S = 0, 1, 35, 36
OUTTYPES = {"i2_s": I2_S, "tq2_0": TQ2_0, "f16": F16}
ARCH_BY_ACT = {"relu2": "bitnet-b1.58", "silu": "bitnet"}

TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 3, 4

_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "U8": "u1", "I8": "i1",
              "F64": "<f8", "I32": "<i4", "I64": "<i8"}

# HF name suffix (after model.layers.N.) -> GGUF name suffix (after blk.N.)
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "self_attn.attn_sub_norm.weight": "attn_sub_norm.weight",  # 2B-4T
    "self_attn.inner_attn_ln.weight": "attn_sub_norm.weight",  # 1bitLLM
    "mlp.ffn_sub_norm.weight": "ffn_sub_norm.weight",  # 2B-4T
    "mlp.ffn_layernorm.weight": "ffn_sub_norm.weight",  # 1bitLLM
}
_GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight",
                 "model.norm.weight": "output_norm.weight"}
_TERNARY_SUFFIXES = ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                     "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")


# ---------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------


def read_safetensors(path: Union[str, os.PathLike]) -> Dict[str, Tuple[str, np.ndarray]]:
    """name -> (safetensors dtype, memory-mapped array; BF16 as raw uint16) of one file."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if raw.size < 8:
        raise ModelLoadError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", raw[:8].tobytes())
    if n > raw.size - 8:
        raise ModelLoadError(f"{path}: header length {n} exceeds the file ({raw.size} bytes)")
    header = json.loads(raw[8 : 8 + n].tobytes().decode("utf-8"))
    out: Dict[str, Tuple[str, np.ndarray]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(info["dtype"])
        if dtype is None:
            raise UnsupportedError(f"{path}: tensor {name} has dtype {info['dtype']}")
        start, end = info["data_offsets"]
        out[name] = (info["dtype"],
                     raw[8 + n + start : 8 + n + end].view(dtype).reshape(info["shape"]))
    return out


def write_safetensors(path: Union[str, os.PathLike], tensors: Dict[str, np.ndarray],
                      bf16: Tuple[str, ...] = ()) -> None:
    """Write a .safetensors file; names in `bf16` are float32 arrays stored as BF16
    (truncated mantissa: tests pick values exact in bf16)."""
    names = {np.dtype(v).name: k for k, v in _ST_DTYPES.items() if k != "BF16"}
    header: Dict[str, Any] = {}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        if name in bf16:
            data = (np.ascontiguousarray(arr, dtype="<f4").view("<u4") >> 16).astype("<u2")
            dt = "BF16"
        else:
            if arr.dtype.name not in names:
                raise UnsupportedError(f"safetensors: no dtype for {arr.dtype} ({name})")
            dt = names[arr.dtype.name]
            data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        blob = data.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(head)) + head)
        for b in blobs:
            fh.write(b)


def _as_f32(tensor: Tuple[str, np.ndarray]) -> np.ndarray:
    dtype, arr = tensor
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(arr, dtype=np.float32)


# ---------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------


def unpack_weights(packed: np.ndarray) -> np.ndarray:
    """transformers' unpack_weights: uint8 (R, ...) -> int8 (4R, ...) ternary; row
    i * R + r comes from bits 2i+1:2i of packed row r, code - 1."""
    r = packed.shape[0]
    out = np.empty((4 * r,) + packed.shape[1:], dtype=np.int8)
    for i in range(4):
        out[i * r : (i + 1) * r] = ((packed >> (2 * i)) & 3).astype(np.int8) - 1
    return out


def pack_weights(t: np.ndarray) -> np.ndarray:
    """Inverse of unpack_weights (transformers' pack_weights for out % 4 == 0)."""
    r = t.shape[0] // 4
    codes = (t.astype(np.int16) + 1).astype(np.uint8)
    out = np.zeros((r,) + t.shape[1:], dtype=np.uint8)
    for i in range(4):
        out |= codes[i * r : (i + 1) * r] << (2 * i)
    return out


def ternarize_absmean(w: np.ndarray) -> np.ndarray:
    """BitNet b1.58 weight_quant: mean|W| * RoundClip(W / mean|W|, -1, 1), in float32."""
    w = np.asarray(w, dtype=np.float32)
    scale = np.float32(max(float(np.abs(w).mean(dtype=np.float64)), 1e-5))
    return (np.clip(np.round(w / scale), -1, 1) * scale).astype(np.float32)


def _hf_tensors(hf_dir: Path) -> Dict[str, Tuple[str, np.ndarray]]:
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{hf_dir}: no *.safetensors files")
    tensors: Dict[str, Tuple[str, np.ndarray]] = {}
    for f in files:
        tensors.update(read_safetensors(f))
    return tensors


def _gguf_name(hf_name: str) -> Optional[str]:
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    parts = hf_name.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in _LAYER_NAMES:
        return f"blk.{int(parts[2])}.{_LAYER_NAMES[parts[3]]}"
    return None


def _weights(tensors: Dict[str, Tuple[str, np.ndarray]], outtype: int
             ) -> Iterator[Tuple[str, Tuple[int, ...], int, bytes]]:
    """(GGUF name, ggml shape, type, bytes) for every mapped tensor, layer order kept."""
    for hf_name in tensors:
        if hf_name.endswith("weight_scale"):
            continue
        name = _gguf_name(hf_name)
        if name is None:
            if hf_name == "lm_head.weight":
                embd = tensors.get("model.embed_tokens.weight")
                if embd is None or not np.array_equal(_as_f32(embd), _as_f32(tensors[hf_name])):
                    warnings.warn("untied lm_head.weight dropped: the bitnet graphs tie the "
                                  "output to token_embd", UserWarning, stacklevel=3)
                continue
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue
            raise UnsupportedError(f"cannot map tensor {hf_name!r} to a GGUF name")
        scale_name = hf_name[: -len("weight")] + "weight_scale"
        dtype, arr = tensors[hf_name]
        if dtype == "U8" and scale_name in tensors:
            ws = float(_as_f32(tensors[scale_name]).reshape(-1)[0])
            w = unpack_weights(np.asarray(arr)).astype(np.float32) * np.float32(1.0 / ws)
        else:
            w = _as_f32(tensors[hf_name])
            if name.endswith(_TERNARY_SUFFIXES):
                w = ternarize_absmean(w)
        shape = tuple(reversed(w.shape))
        if w.ndim == 1 or name.endswith("norm.weight"):
            yield name, shape, F32, w.astype("<f4").tobytes()
        elif name == "token_embd.weight" or outtype == F16:
            yield name, shape, F16, quantize(w, F16).tobytes()
        else:
            yield name, shape, outtype, quantize(w, outtype).tobytes()


# ---------------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------------


def _tokenizer_kv(hf_dir: Path, n_vocab: int) -> Dict[str, Any]:
    tok = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = tok.get("model", {})
    if model.get("type") != "BPE":
        raise UnsupportedError(f"tokenizer.json model type {model.get('type')!r}: only BPE")
    vocab: Dict[str, int] = dict(model["vocab"])
    added = {a["content"]: a for a in tok.get("added_tokens", [])}
    for a in added.values():
        vocab[a["content"]] = int(a["id"])
    size = max(n_vocab, max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [TOKEN_USER_DEFINED] * size
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = TOKEN_NORMAL
    for a in added.values():
        types[int(a["id"])] = TOKEN_CONTROL if a.get("special") else TOKEN_USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    kv: Dict[str, Any] = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": np.array(types, dtype=np.int32),
        "tokenizer.ggml.merges": merges,
    }
    pre, _how = detect_pre_tokenizer(kv)
    kv["tokenizer.ggml.pre"] = pre or "default"
    cfg_path = hf_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else {}
    for key, field in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                       ("pad_token", "padding_token_id"), ("unk_token", "unknown_token_id")):
        value: Any = cfg.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str) and value in vocab:
            kv[f"tokenizer.ggml.{field}"] = vocab[value]
    if "add_bos_token" in cfg:
        kv["tokenizer.ggml.add_bos_token"] = bool(cfg["add_bos_token"])
    if isinstance(cfg.get("chat_template"), str):
        kv["tokenizer.chat_template"] = cfg["chat_template"]
    return kv


def _hparams_kv(cfg: Dict[str, Any], arch: str, outtype: int, name: str) -> Dict[str, Any]:
    n_head = int(cfg["num_attention_heads"])
    return {
        "general.architecture": arch,
        "general.name": name,
        "general.file_type": FILE_TYPES[outtype],
        f"{arch}.vocab_size": int(cfg["vocab_size"]),
        f"{arch}.context_length": int(cfg.get("max_position_embeddings", 2048)),
        f"{arch}.embedding_length": int(cfg["hidden_size"]),
        f"{arch}.block_count": int(cfg["num_hidden_layers"]),
        f"{arch}.feed_forward_length": int(cfg["intermediate_size"]),
        f"{arch}.attention.head_count": n_head,
        f"{arch}.attention.head_count_kv": int(cfg.get("num_key_value_heads", n_head)),
        f"{arch}.rope.dimension_count": int(cfg["hidden_size"]) // n_head,
        f"{arch}.rope.freq_base": float(cfg.get("rope_theta", 10000.0)),
        f"{arch}.attention.layer_norm_rms_epsilon": float(cfg.get("rms_norm_eps", 1e-6)),
    }


def convert(hf_dir: Union[str, os.PathLike], out: Union[str, os.PathLike], *,
            outtype: str = "i2_s") -> Path:
    """Write the GGUF of the HF BitNet checkpoint in `hf_dir` to `out`; returns `out`."""
    src, dst = Path(hf_dir), Path(out)
    if outtype.lower() not in OUTTYPES:
        raise UnsupportedError(f"outtype {outtype!r}: choose one of {', '.join(OUTTYPES)}")
    qtype = OUTTYPES[outtype.lower()]
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    act = str(cfg.get("hidden_act", "silu"))
    if act not in ARCH_BY_ACT:
        raise UnsupportedError(f"hidden_act {act!r}: supported {', '.join(ARCH_BY_ACT)}")
    arch = ARCH_BY_ACT[act]
    kv = _hparams_kv(cfg, arch, qtype, str(cfg.get("_name_or_path") or src.name))
    kv.update(_tokenizer_kv(src, int(cfg["vocab_size"])))
    kv_types = {"tokenizer.ggml.token_type": KVType(9, KVType(5)),
                "general.file_type": KVType(4)}
    tensors = _hf_tensors(src)
    write_gguf(dst, kv, kv_types, _weights(tensors, qtype))
    return dst


def main(argv: Optional[List[str]] = None) -> int:
    """`bitnet convert HF_DIR OUT.gguf [--outtype i2_s|tq2_0|f16]`."""
    ap = argparse.ArgumentParser(prog="bitnet convert", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("hf_dir")
    ap.add_argument("output")
    ap.add_argument("--outtype", default="i2_s", choices=sorted(OUTTYPES))
    args = ap.parse_args(argv)
    try:
        path = convert(args.hf_dir, args.output, outtype=args.outtype)
    except (BitNetError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
