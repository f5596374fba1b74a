"""`bitnet convert`: a Hugging Face BitNet checkpoint directory -> GGUF.

    from bitnet.tools.convert import convert
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

Tokenizer: a SentencePiece `tokenizer.model` (the 1bitLLM checkpoints) wins, as in
llama.cpp's BitnetModel (`_set_vocab_sentencepiece`): the ModelProto is parsed here (no
sentencepiece dependency), tokens padded to config's vocab_size with `[PADi]`, and
added_tokens.json / tokenizer_config.json's added_tokens_decoder applied as llama.cpp
does. Otherwise tokenizer.json's byte-level BPE. Special token ids and add_*_token follow
gguf-py's SpecialVocab (tokenizer.json added_tokens + tokenizer_config.json, then
config.json's `*_token_id`).

For a latent-weight `BitnetForCausalLM` checkpoint the tensors equal those of llama.cpp's
convert_hf_to_gguf.py (tests/test_quantize_convert.py compares them byte for byte). Known
metadata differences: llama.cpp also writes general.type/size_label/quantization_version
and `bitnet.rope.scaling.type = linear, factor 1.0` (no-ops), we also write
`{arch}.vocab_size` and `{arch}.rope.dimension_count` (the defaults llama.cpp derives).

Left out: rope scaling, sharded checkpoints other than via *.safetensors in one directory.
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
from bitnet.ggml_types import GGMLType
from bitnet.gguf.fixes import detect_pre_tokenizer
from bitnet.gguf.reader import KVType
from bitnet.gguf.writer import write_gguf
from bitnet.quants import quantize
from bitnet.safe_write import atomic_output, check_output
from bitnet.tools.progress import progress_bar, wanted
from bitnet.tools.quantize import FILE_TYPES

OUTTYPES = {"i2_s": GGMLType.I2_S, "tq2_0": GGMLType.TQ2_0, "tq1_0": GGMLType.TQ1_0, "f16": GGMLType.F16}
ARCH_BY_ACT = {"relu2": "bitnet-b1.58", "silu": "bitnet"}

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = \
    1, 2, 3, 4, 5, 6

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
    with atomic_output(path) as fh:
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
    """BitNet b1.58 weight_quant in float32, in the op order of the 1bitLLM reference (and
    llama.cpp's BitnetModel.weight_quant): iscale = 1 / max(mean|W|, 1e-5);
    W' = RoundClip(W * iscale, -1, 1) / iscale (round half to even).

    mean|W| is summed in float64 and rounded once; torch sums float32 pairwise, which can
    differ in the last bit of the scale (not seen in the tests' tensors)."""
    w = np.asarray(w, dtype=np.float32)
    scale = np.float32(max(float(np.abs(w).mean(dtype=np.float64)), 1e-5))
    iscale = np.float32(1) / scale
    return (np.clip(np.round(w * iscale), -1, 1) / iscale).astype(np.float32)


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
            yield name, shape, GGMLType.F32, w.astype("<f4").tobytes()
        elif name == "token_embd.weight" or outtype == GGMLType.F16:
            yield name, shape, GGMLType.F16, quantize(w, GGMLType.F16).tobytes()
        else:
            yield name, shape, outtype, quantize(w, outtype).tobytes()


# ---------------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ModelLoadError("tokenizer.model: truncated protobuf varint")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return out, pos


def _proto_fields(buf: bytes) -> Iterator[Tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; length-delimited values
    are bytes, fixed32 are raw 4 bytes, varints ints."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ModelLoadError(f"tokenizer.model: unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ModelLoadError("tokenizer.model: truncated protobuf message")
        yield field, wire, value


def read_sentencepiece(path: Union[str, os.PathLike]) -> List[Tuple[str, float, int]]:
    """(piece, score, type) of every piece of a SentencePiece ModelProto
    (sentencepiece_model.proto: ModelProto.pieces = 1 {piece = 1, score = 2, type = 3});
    types as in the proto and GGUF: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4,
    UNUSED 5, BYTE 6."""
    pieces = []
    for field, wire, value in _proto_fields(Path(path).read_bytes()):
        if field != 1 or wire != 2:
            continue
        piece, score, ptype = "", 0.0, TOKEN_NORMAL
        for f, w, v in _proto_fields(value):
            if f == 1 and w == 2:
                piece = v.decode("utf-8")
            elif f == 2 and w == 5:
                score = struct.unpack("<f", v)[0]
            elif f == 3 and w == 0:
                ptype = int(v)
        pieces.append((piece, score, ptype))
    if not pieces:
        raise ModelLoadError(f"{path}: no SentencePiece pieces")
    return pieces


def _looks_special(text: str) -> bool:
    """llama.cpp's TextModel.does_token_look_special."""
    return (text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (text.startswith("<|") and text.endswith("|>"))
            or (text.startswith("<\uff5c") and text.endswith("\uff5c>"))
            or (text.startswith("<unused") and text.endswith(">")))


def _spm_vocab_kv(hf_dir: Path, n_vocab: int) -> Dict[str, Any]:
    """llama.cpp's _create_vocab_sentencepiece + _set_vocab_sentencepiece."""
    pieces = read_sentencepiece(hf_dir / "tokenizer.model")
    size = n_vocab or len(pieces)
    tokens = [f"[PAD{i}]" for i in range(size)]
    scores = [-10000.0] * size
    types = [TOKEN_UNUSED] * size
    for i, (piece, score, ptype) in enumerate(pieces[:size]):
        tokens[i], scores[i] = piece, score
        types[i] = ptype if ptype in (TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_UNUSED,
                                      TOKEN_BYTE) else TOKEN_NORMAL
    added = _read_json(hf_dir / "added_tokens.json") or {}
    for text, i in added.items():
        if int(i) < size:
            tokens[int(i)], scores[int(i)], types[int(i)] = text, -1000.0, TOKEN_USER_DEFINED
    cfg = _read_json(hf_dir / "tokenizer_config.json") or {}
    for key, data in (cfg.get("added_tokens_decoder") or {}).items():
        i, text = int(key), str(data["content"])
        if i >= size:
            continue
        if data.get("special") or _looks_special(text):
            types[i] = TOKEN_CONTROL
        else:
            text = text.replace("\u2581", " ")  # pre-normalize user-defined spaces
            types[i] = TOKEN_USER_DEFINED
        scores[i], tokens[i] = -1000.0, text
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": np.array(scores, dtype=np.float32),
        "tokenizer.ggml.token_type": np.array(types, dtype=np.int32),
    }


def _bpe_vocab_kv(hf_dir: Path, n_vocab: int) -> Dict[str, Any]:
    """tokenizer.json's byte-level BPE, with the pre-tokenizer auto-detection names."""
    tok = _read_json(hf_dir / "tokenizer.json")
    if tok is None:
        raise ModelLoadError(f"{hf_dir}: neither tokenizer.model nor tokenizer.json")
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
    return kv


_SPECIAL_TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
_SPECIAL_KEYS = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id",
                 "sep": "seperator_token_id", "pad": "padding_token_id", "mask": "mask_token_id"}
_ADD_KEYS = ("bos", "eos", "sep")  # gguf-py has no add_{unk,pad,cls,mask}_token writer


def _special_vocab_kv(hf_dir: Path, n_vocab: int) -> Dict[str, Any]:
    """Special token ids, add_*_token and chat_template as gguf-py's SpecialVocab finds
    them: tokenizer_config.json's `*_token` resolved against tokenizer.json's
    added_tokens, then config.json's `*_token_id`; the first found wins. Of the
    post_processor only ByteLevel (add_bos/add_eos default False) and a
    TemplateProcessing whose single template starts / ends with bos / eos are read."""
    tok = _read_json(hf_dir / "tokenizer.json")
    cfg = _read_json(hf_dir / "tokenizer_config.json")
    added = tok.get("added_tokens", []) if isinstance(tok, dict) else []
    ids: Dict[str, int] = {}
    add: Dict[str, bool] = {}

    def put(typ: str, tid: Any) -> None:
        if isinstance(tid, int) and not isinstance(tid, bool) and 0 <= tid < n_vocab:
            ids.setdefault(typ, tid)

    def content(entry: Any) -> Optional[str]:
        if isinstance(entry, dict):
            entry = entry.get("content")
        return entry if isinstance(entry, str) else None

    if isinstance(tok, dict) and isinstance(tok.get("post_processor"), dict):
        post = tok["post_processor"]
        for proc in post.get("processors", [post]):
            if proc.get("type") == "ByteLevel":
                add.setdefault("bos", False)
                add.setdefault("eos", False)
            elif proc.get("type") == "TemplateProcessing" and cfg:
                single = proc.get("single", [])
                if len(single) > 1:
                    first = single[0].get("SpecialToken", {}).get("id")
                    last = single[-1].get("SpecialToken", {}).get("id")
                    if first:
                        add["bos"] = first == content(cfg.get("bos_token"))
                    if last:
                        add["eos"] = last == content(cfg.get("eos_token"))
    chat_template: Any = None
    if cfg:
        chat_template = cfg.get("chat_template")
        if chat_template is None and (hf_dir / "chat_template.jinja").is_file():
            chat_template = (hf_dir / "chat_template.jinja").read_text(encoding="utf-8")
        elif chat_template is None and (hf_dir / "chat_template.json").is_file():
            chat_template = (_read_json(hf_dir / "chat_template.json") or {}).get("chat_template")
        for typ in _SPECIAL_TYPES:
            flag = cfg.get(f"add_{typ}_token")
            if isinstance(flag, bool):
                add.setdefault(typ, flag)
            text = content(cfg.get(f"{typ}_token"))
            if text is not None:
                put(typ, next((a.get("id") for a in added if a.get("content") == text), None))
    model_cfg = _read_json(hf_dir / "config.json") or {}
    for typ in _SPECIAL_TYPES:
        put(typ, model_cfg.get(f"{typ}_token_id"))
    kv: Dict[str, Any] = {}
    for typ, tid in ids.items():
        if typ in _SPECIAL_KEYS:
            kv[f"tokenizer.ggml.{_SPECIAL_KEYS[typ]}"] = tid
    for typ, flag in add.items():
        if typ in _ADD_KEYS:
            kv[f"tokenizer.ggml.add_{typ}_token"] = flag
    if isinstance(chat_template, str):
        kv["tokenizer.chat_template"] = chat_template
    return kv


def _tokenizer_kv(hf_dir: Path, n_vocab: int) -> Dict[str, Any]:
    """All tokenizer.* keys: SentencePiece if tokenizer.model exists, else BPE."""
    if (hf_dir / "tokenizer.model").is_file():
        kv = _spm_vocab_kv(hf_dir, n_vocab)
    else:
        kv = _bpe_vocab_kv(hf_dir, n_vocab)
    kv.update(_special_vocab_kv(hf_dir, len(kv["tokenizer.ggml.tokens"])))
    return kv


def _hparams_kv(cfg: Dict[str, Any], arch: str, outtype: int, name: str) -> Dict[str, Any]:
    n_head = int(cfg["num_attention_heads"])
    return {
        "general.architecture": arch,
        "general.type": "model",
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
        "general.quantization_version": 2,  # GGML_QNT_VERSION
    }


def convert(hf_dir: Union[str, os.PathLike], out: Union[str, os.PathLike], *,
            outtype: str = "i2_s", progress: bool = False) -> Path:
    """Write the GGUF of the HF BitNet checkpoint in `hf_dir` to `out`; returns `out`.
    `out` is written atomically and may not be a file of the checkpoint (UnsafeOutputError)."""
    src, dst = Path(hf_dir), Path(out)
    if not src.is_dir():
        raise ModelLoadError(f"{src} is not a directory (a Hugging Face checkpoint folder)")
    inputs = [p for p in src.iterdir() if p.is_file()]
    check_output(dst, inputs)  # refuse before the work starts
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
                "tokenizer.ggml.scores": KVType(9, KVType(6)),
                "general.file_type": KVType(4)}
    tensors = _hf_tensors(src)
    total = sum(1 for n in tensors if _gguf_name(n) is not None)
    with progress_bar("converting", total, enabled=progress) as advance:
        def weights() -> Iterator[Tuple[str, Tuple[int, ...], int, bytes]]:
            for item in _weights(tensors, qtype):
                advance(item[0])
                yield item

        write_gguf(dst, kv, kv_types, weights(), inputs=inputs)
    return dst


def main(argv: Optional[List[str]] = None) -> int:
    """`bitnet convert HF_DIR OUT.gguf [--outtype i2_s|tq2_0|tq1_0|f16]`."""
    ap = argparse.ArgumentParser(prog="bitnet convert", description=(__doc__ or "").split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("hf_dir", help="Hugging Face checkpoint folder (config.json, *.safetensors)")
    ap.add_argument("output", help="GGUF file to write (replaced atomically)")
    ap.add_argument("--outtype", default="i2_s", choices=sorted(OUTTYPES),
                    help="type of the ternary weight matrices")
    ap.add_argument("--no-progress", action="store_true",
                    help="no progress bar (it is shown only on a terminal anyway)")
    args = ap.parse_args(argv)
    try:
        path = convert(args.hf_dir, args.output, outtype=args.outtype,
                       progress=wanted(args.no_progress))
    except (BitNetError, OSError, KeyError, ValueError) as exc:
        what = f"missing config key {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"bitnet convert: error: {what}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
