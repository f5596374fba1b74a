"""Synthetic GGUF models with fixed seeds, for differential tests and benchmarks.

    write_synthetic("bitnet-tq2_0", tmp_path / "m.gguf", size="tiny", seed=0) -> Path
    synthetic_path("bitnet-b1.58-i2_s", size="bench") -> Path   # cached, generated once

Kinds (architecture + weight type of the matmuls):

    llama-f16  llama-q8_0  llama-q4_0  llama-q4_1     llama arch, separate `output` tensor
    llama-q5_0  llama-q5_1  llama-q4_k  llama-q5_k  llama-q6_k
    bitnet-tq1_0  bitnet-tq2_0  bitnet-i2_s           mainline llama.cpp `bitnet` arch:
                                                      ternary weights (scale 1) and the
                                                      per-matmul scale in `.scale` {1} tensors
    bitnet-b1.58-i2_s                                 bitnet.cpp's arch, shaped like Microsoft's
                                                      BitNet-b1.58-2B-4T GGUF: I2_S weights with
                                                      the scale folded in, tied F16 embeddings,
                                                      Llama 3 vocabulary, NO tokenizer.ggml.pre

Weights come from one seeded stream in a fixed order, so kinds of one family share their
float weights: the llama kinds differ only by quantization, and the three mainline bitnet
kinds hold bit-identical ternary weights (ternary-trained-like: W = scale * t with t in
{-1, 0, 1}, scale exact in fp16, so TQ1_0/TQ2_0/I2_S store them losslessly).

Sizes: "tiny" (2 layers, width 256, 2-4 s to write, 11-36 MB; the llama and bitnet kinds
use llama.cpp's 32000-token Llama 2 SPM vocabulary, which llama.cpp loads, to keep files
small; bitnet-b1.58 keeps the Llama 3 vocabulary, 74 MB, ~20 s), "bench" (16 layers,
width 1024, Llama 3 vocabulary for every kind: ~310M parameters for bitnet-b1.58, 316 MB
and ~1 min to write; ~440M with llama's untied output) and "wide" (12 layers, width 1536,
FFN 4096, 12 heads of 128, 4 KV heads, Llama 2's 32000 tokens: 300M ternary parameters
behind a 98 MB F16 embedding, the width of small real BitNet models). "bench" and "wide"
are written on demand (the decode benchmark), never in tests.
Vocabularies are copied from corpora/data/vocab/.

    python -m bitnet_harness.synthetic all --size tiny      # fill the cache
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union, cast

import numpy as np

from bitnet.ggml_types import GGML_TYPES_BY_NAME, GGMLType, tensor_nbytes
from bitnet_harness.corpora import corpus_path, data_dir

GENERATOR_VERSION = 2  # bump when the weights a (kind, size, seed) produces change
LLAMA3_VOCAB = "vocab/ggml-vocab-llama-bpe.gguf"
LLAMA2_VOCAB = "vocab/ggml-vocab-llama-spm.gguf"


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_ctx: int


SIZES: Dict[str, Shape] = {
    "tiny": Shape(n_layer=2, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_ctx=512),
    "bench": Shape(n_layer=16, n_embd=1024, n_ff=2816, n_head=16, n_head_kv=4, n_ctx=4096),
    "wide": Shape(n_layer=12, n_embd=1536, n_ff=4096, n_head=12, n_head_kv=4, n_ctx=4096),
}
# the vocabulary of each size (bitnet-b1.58 always has Llama 3's)
SIZE_VOCAB = {"tiny": "llama2", "bench": "llama3", "wide": "llama2"}


@dataclass(frozen=True)
class Kind:
    arch: str
    weight_type: str  # ggml type name of the matmul weights
    family: str  # kinds of one family share their float weights for a given seed


KINDS: Dict[str, Kind] = {
    "llama-f16": Kind("llama", "F16", "llama"),
    "llama-q8_0": Kind("llama", "Q8_0", "llama"),
    "llama-q4_0": Kind("llama", "Q4_0", "llama"),
    "llama-q4_1": Kind("llama", "Q4_1", "llama"),
    "llama-q5_0": Kind("llama", "Q5_0", "llama"),
    "llama-q5_1": Kind("llama", "Q5_1", "llama"),
    "llama-q4_k": Kind("llama", "Q4_K", "llama"),
    "llama-q5_k": Kind("llama", "Q5_K", "llama"),
    "llama-q6_k": Kind("llama", "Q6_K", "llama"),
    "bitnet-tq1_0": Kind("bitnet", "TQ1_0", "bitnet"),
    "bitnet-tq2_0": Kind("bitnet", "TQ2_0", "bitnet"),
    "bitnet-i2_s": Kind("bitnet", "I2_S", "bitnet"),
    "bitnet-b1.58-i2_s": Kind("bitnet-b1.58", "I2_S", "bitnet-b1.58"),
}

# llama_ftype values for general.file_type (MOSTLY_*); I2_S files from bitnet.cpp say 40
FILE_TYPES = {"F16": 1, "Q8_0": 7, "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q4_K": 15, "Q5_K": 17,
              "Q6_K": 18, "TQ1_0": 36, "TQ2_0": 37, "I2_S": 40}


def _vocab_for(kind: Kind, size: str) -> str:
    if kind.arch == "bitnet-b1.58" or SIZE_VOCAB[size] == "llama3":
        return LLAMA3_VOCAB
    return LLAMA2_VOCAB


def _fp16_exact(x: float) -> float:
    return float(np.float16(x))


class _Weights:
    """Draws the float weights of one model in a fixed order from a seeded generator."""

    def __init__(self, seed: int, family: str, shape: Shape, n_vocab: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.ternary = family != "llama"
        self.s = shape
        self.n_vocab = n_vocab

    def norm(self, n: int) -> np.ndarray:
        return (1.0 + 0.1 * self.rng.standard_normal(n)).astype(np.float32)  # (n,)

    def embedding(self) -> np.ndarray:
        # tied output: logits = rmsnorm(h) . E, std ~ 0.2*sqrt(D) ~ a few units at D=256
        e = self.rng.standard_normal((self.n_vocab, self.s.n_embd), dtype=np.float32)
        return e * np.float32(0.2)  # (V, D)

    def matrix(self, n_out: int, n_in: int, gain: float = 1.0) -> Tuple[np.ndarray, float]:
        """(W (n_out, n_in), scale): W = scale * t for ternary families, else gaussian."""
        if self.ternary:
            t = self.rng.integers(-1, 2, size=(n_out, n_in)).astype(np.float32)  # {-1,0,1}
            scale = _fp16_exact(gain / np.sqrt(2.0 / 3.0 * n_in))  # 2/3 of t are nonzero
            return t, scale
        w = self.rng.standard_normal((n_out, n_in), dtype=np.float32)
        return w * np.float32(gain / np.sqrt(n_in)), 1.0


class _Writer:
    """gguf.GGUFWriter plus a raw path for I2_S (type 36, which gguf-py does not know)."""

    def __init__(self, path: Path, arch: str) -> None:
        import gguf

        self.gguf = gguf
        self.w = gguf.GGUFWriter(str(path), arch)

    def tensor(self, name: str, x: np.ndarray, type_name: str) -> None:
        """x: float32 in numpy order; stored as `type_name`."""
        gguf = self.gguf
        if type_name == "F32":
            self.w.add_tensor(name, np.ascontiguousarray(x, dtype=np.float32))
            return
        if type_name == "F16":
            self.w.add_tensor(name, np.ascontiguousarray(x, dtype=np.float16))
            return
        from bitnet import quants

        type_id = GGML_TYPES_BY_NAME[type_name].id
        raw = np.asarray(quants.quantize(np.ascontiguousarray(x, dtype=np.float32), type_id))
        if type_id == GGMLType.I2_S:
            # subtle: gguf-py derives shapes from its own type table, which lacks id 36;
            # declare the tensor info by hand and attach the bytes.
            nbytes = tensor_nbytes(GGMLType.I2_S, x.size)
            assert raw.nbytes == nbytes, (name, raw.nbytes, nbytes)
            self.w.add_tensor_info(name, x.shape, np.dtype(np.float32), nbytes,
                                   raw_dtype=cast(Any, GGMLType.I2_S))
            self.w.tensors[-1][name].tensor = raw
            return
        self.w.add_tensor(name, raw.reshape(x.shape[:-1] + (-1,)),
                          raw_dtype=gguf.GGMLQuantizationType(type_id))

    def copy_tokenizer(self, vocab_gguf: Path, *, drop: Tuple[str, ...] = ()) -> int:
        """Copy every tokenizer.* key of a llama.cpp vocab file; returns the token count."""
        gguf = self.gguf
        reader = gguf.GGUFReader(str(vocab_gguf))
        n_tokens = 0
        for field in reader.fields.values():
            if not field.name.startswith("tokenizer.") or field.name in drop:
                continue
            vtype = field.types[0]
            if vtype == gguf.GGUFValueType.ARRAY:
                sub = field.types[1]
                if sub == gguf.GGUFValueType.STRING:
                    values: Any = [bytes(field.parts[i]) for i in field.data]
                else:
                    values = [field.parts[i].tolist()[0] for i in field.data]
                if field.name == "tokenizer.ggml.tokens":
                    n_tokens = len(values)
                self.w.add_key_value(field.name, values, vtype, sub_type=sub)
            elif vtype == gguf.GGUFValueType.STRING:
                self.w.add_key_value(field.name, bytes(field.parts[-1]), vtype)
            else:
                self.w.add_key_value(field.name, field.parts[-1].tolist()[0], vtype)
        return n_tokens

    def close(self) -> None:
        self.w.write_header_to_file()
        self.w.write_kv_data_to_file()
        self.w.write_tensors_to_file()
        self.w.close()


def write_synthetic(kind: str, path: Union[str, os.PathLike[str]], *, size: str = "tiny",
                    seed: int = 0) -> Path:
    """Write the synthetic model `kind` of `size` with weights drawn from `seed`."""
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r}; known: {', '.join(KINDS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known: {', '.join(SIZES)}")
    k, s = KINDS[kind], SIZES[size]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")

    wr = _Writer(tmp, k.arch)
    g = wr.w
    g.add_name(f"synthetic {kind} {size} seed={seed}")
    drop = ("tokenizer.ggml.pre",) if k.arch == "bitnet-b1.58" else ()
    n_vocab = wr.copy_tokenizer(corpus_path(_vocab_for(k, size)), drop=drop)
    head_dim = s.n_embd // s.n_head
    g.add_vocab_size(n_vocab)
    g.add_context_length(s.n_ctx)
    g.add_embedding_length(s.n_embd)
    g.add_block_count(s.n_layer)
    g.add_feed_forward_length(s.n_ff)
    g.add_head_count(s.n_head)
    g.add_head_count_kv(s.n_head_kv)
    g.add_rope_dimension_count(head_dim)
    g.add_rope_freq_base(500000.0 if k.arch == "bitnet-b1.58" else 10000.0)
    g.add_layer_norm_rms_eps(1e-5)
    g.add_file_type(FILE_TYPES[k.weight_type])

    wt = _Weights(seed, k.family, s, n_vocab)
    ternary = k.family != "llama"
    n_kv = head_dim * s.n_head_kv
    wr.tensor("token_embd.weight", wt.embedding(), "F16" if ternary else k.weight_type)
    if not ternary:
        wr.tensor("output.weight", wt.embedding(), k.weight_type)
    wr.tensor("output_norm.weight", wt.norm(s.n_embd), "F32")

    def linear(name: str, n_out: int, n_in: int, gain: float = 1.0) -> None:
        w, scale = wt.matrix(n_out, n_in, gain)
        if k.arch == "bitnet":  # weights stay ternary, the scale goes to `.scale`
            wr.tensor(f"{name}.weight", w, k.weight_type)
            wr.tensor(f"{name}.scale", np.array([scale], dtype=np.float32), "F32")
        else:
            wr.tensor(f"{name}.weight", w * np.float32(scale), k.weight_type)

    for i in range(s.n_layer):
        p = f"blk.{i}"
        wr.tensor(f"{p}.attn_norm.weight", wt.norm(s.n_embd), "F32")
        linear(f"{p}.attn_q", s.n_embd, s.n_embd)
        linear(f"{p}.attn_k", n_kv, s.n_embd)
        linear(f"{p}.attn_v", n_kv, s.n_embd)
        if ternary:
            wr.tensor(f"{p}.attn_sub_norm.weight", wt.norm(s.n_embd), "F32")
        linear(f"{p}.attn_output", s.n_embd, s.n_embd, gain=0.5)
        wr.tensor(f"{p}.ffn_norm.weight", wt.norm(s.n_embd), "F32")
        linear(f"{p}.ffn_gate", s.n_ff, s.n_embd)
        linear(f"{p}.ffn_up", s.n_ff, s.n_embd)
        if ternary:
            wr.tensor(f"{p}.ffn_sub_norm.weight", wt.norm(s.n_ff), "F32")
        linear(f"{p}.ffn_down", s.n_embd, s.n_ff, gain=0.5)
    wr.close()
    os.replace(tmp, path)
    return path


def synthetic_dir() -> Path:
    """Where generated models are cached: <corpora data dir>/synthetic."""
    return data_dir() / "synthetic"


def synthetic_path(kind: str, size: str = "tiny", *, seed: int = 0) -> Path:
    """The cached file of `kind`/`size`/`seed`, written first if it is missing."""
    path = synthetic_dir() / f"{kind}-{size}-seed{seed}-v{GENERATOR_VERSION}.gguf"
    if not path.exists():
        write_synthetic(kind, path, size=size, seed=seed)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m bitnet_harness.synthetic KIND... [--size tiny|bench|wide] [--seed S] [--out DIR]`:
    write (or find in the cache) the named synthetic models and print their paths."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bitnet_harness.synthetic",
                                description="write synthetic GGUF models")
    p.add_argument("kinds", nargs="+", choices=sorted(KINDS) + ["all"])
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="write into this directory instead of the cache")
    args = p.parse_args(argv)
    kinds = list(KINDS) if "all" in args.kinds else args.kinds
    for kind in kinds:
        if args.out is None:
            path = synthetic_path(kind, args.size, seed=args.seed)
        else:
            path = write_synthetic(kind, args.out / f"{kind}-{args.size}-seed{args.seed}.gguf",
                                   size=args.size, seed=args.seed)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
