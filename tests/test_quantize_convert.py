"""bitnet.tools.quantize (GGUF -> GGUF) against llama.cpp's llama_model_quantize, and bitnet.tools.convert
(Hugging Face BitNet checkpoints -> GGUF) against llama.cpp's own convert_hf_to_gguf.py (pinned
from the llama-cpp-python sdist by `bitnet-compat fetch`) and against GGUFs written directly
from the same ternary weights. Every model here is tiny (width 256, 1-2 layers).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path
from typing import Any, Dict, List, Tuple

import gguf
import llama_cpp
import numpy as np
import pytest

from bitnet.errors import BitNetError
from bitnet.ggml_types import GGMLType
from bitnet.gguf import load
from bitnet.gguf.writer import write_gguf
from bitnet.model import Context, Model
from bitnet.quants import dequantize, quantize
from bitnet.tokenizers import load as load_tokenizer
from bitnet.tools.convert import convert, pack_weights, unpack_weights, write_safetensors
from bitnet.tools.convert import main as convert_main
from bitnet.tools.quantize import NON_TERNARY_THRESHOLD, NonTernaryWarning, quantize_file, ternarize
from bitnet.tools.quantize import main as quantize_main
from bitnet_harness.corpora import corpus_path

# ---------------------------------------------------------------------------------------
# quantize vs llama.cpp
# ---------------------------------------------------------------------------------------

N_EMBD, N_FF, N_VOCAB = 256, 320, 64  # n_ff = 320: ffn_down's ne0 is not a multiple of 256


def _llama_file(path: Path, dtype: Any = np.float32, ternary: bool = False,
                n_layer: int = 1, n_ff: int = N_FF) -> Path:
    """A llama-arch GGUF written by gguf-py (an independent writer), weights in `dtype`."""
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(n_layer)
    w.add_context_length(64)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0 if dtype == np.float32 else 1)

    def add(name: str, shape: Tuple[int, ...], norm: bool = False) -> None:
        if norm:
            w.add_tensor(name, (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32))
        elif ternary:  # BitNet-style: scale * {-1, 0, 1}, scale not exact in fp16
            t = rng.integers(-1, 2, size=shape)
            w.add_tensor(name, (t * np.float32(0.0123457)).astype(dtype))
        else:
            w.add_tensor(name, (0.05 * rng.standard_normal(shape)).astype(dtype))

    add("token_embd.weight", (N_VOCAB, N_EMBD))
    for i in range(n_layer):
        add(f"blk.{i}.attn_norm.weight", (N_EMBD,), norm=True)
        add(f"blk.{i}.attn_q.weight", (N_EMBD, N_EMBD))
        add(f"blk.{i}.attn_k.weight", (128, N_EMBD))
        add(f"blk.{i}.attn_v.weight", (128, N_EMBD))
        add(f"blk.{i}.attn_output.weight", (N_EMBD, N_EMBD))
        add(f"blk.{i}.ffn_norm.weight", (N_EMBD,), norm=True)
        add(f"blk.{i}.ffn_gate.weight", (n_ff, N_EMBD))
        add(f"blk.{i}.ffn_up.weight", (n_ff, N_EMBD))
        add(f"blk.{i}.ffn_down.weight", (N_EMBD, n_ff))
    add("output_norm.weight", (N_EMBD,), norm=True)
    add("output.weight", (N_VOCAB, N_EMBD))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _llama_cpp_quantize(src: Path, dst: Path, ftype: int, pure: bool = False,
                        output_type: int = -1) -> None:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 1
    params.pure = pure
    if output_type >= 0:
        params.output_tensor_type = output_type
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(),
                                        ctypes.byref(params))
    assert rc == 0, f"llama_model_quantize({src}, ftype={ftype}) returned {rc}"


FTYPES = {"Q8_0": 7, "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "TQ1_0": 36, "TQ2_0": 37,
          "F16": 1, "BF16": 32, "Q5_K": 16, "Q6_K": 18}
# k-quant ftypes whose llama.cpp mixture differs from a uniform file (Q4_K_S gives attn_v
# Q5_K, Q2_K/Q3_K_S promote attn_v/ffn_down...): compared with llama.cpp's --pure, output
# pinned to the Q6_K its default rule picks (our --type Q4_K = pure + that rule)
PURE_FTYPES = {"Q2_K": 10, "Q3_K": 11, "Q4_K": 14}


@pytest.fixture(scope="module")
def f32_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _llama_file(tmp_path_factory.mktemp("q") / "f32.gguf")


@pytest.fixture(scope="module")
def f16_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _llama_file(tmp_path_factory.mktemp("q") / "f16.gguf", dtype=np.float16)


def _compare_with_llama_cpp(src: Path, tmp_path: Path, qtype: str, **kw: Any) -> None:
    """Every tensor of llama_model_quantize's file: same type (llama.cpp's type rules),
    shape and bytes; metadata copied verbatim."""
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "llama_cpp.gguf"
    if qtype in PURE_FTYPES:
        _llama_cpp_quantize(src, theirs, PURE_FTYPES[qtype], pure=True, output_type=GGMLType.Q6_K)
    else:
        _llama_cpp_quantize(src, theirs, FTYPES[qtype])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonTernaryWarning)
        report = quantize_file(src, ours, qtype, **kw)
    a, b = load(theirs), load(ours)
    assert list(a.tensors) == list(b.tensors) or set(a.tensors) == set(b.tensors)
    assert b.kv["general.file_type"] == a.kv["general.file_type"] == \
        {**FTYPES, **PURE_FTYPES}[qtype]
    src_kv = load(src).raw_kv  # metadata copied verbatim, only general.file_type changes
    assert {k: v for k, v in b.raw_kv.items() if k != "general.file_type"} == \
        {k: v for k, v in src_kv.items() if k != "general.file_type"}
    for name, t in a.tensors.items():
        u = b.tensors[name]
        assert (u.shape, u.type_id) == (t.shape, t.type_id), name
        x, y = a.tensor_bytes(name), b.tensor_bytes(name)
        if not np.array_equal(x, y):
            first = int(np.flatnonzero(x != y)[0])
            pytest.fail(f"{qtype} {name} ({t.type_id}): first differing byte {first}")
    # llama.cpp's rules for the big tensors (no exception: K-quants are quantized here)
    if qtype not in ("Q8_0", "F16", "BF16"):
        assert b.tensors["output.weight"].type_id == GGMLType.Q6_K
    if qtype in ("TQ1_0", "TQ2_0"):
        assert b.tensors["token_embd.weight"].type_id == GGMLType.Q4_K
    # the ne0 fallback is llama.cpp's: 256-weight types on ffn_down (ne0 = 320) -> a
    # 32-weight type (the bytes above already matched llama.cpp's choice)
    notes = {p.name: p.note for p in report.fallbacks}
    fallback = {"TQ1_0": GGMLType.Q4_0, "TQ2_0": GGMLType.Q4_0, "Q2_K": GGMLType.Q4_0,
                "Q3_K": GGMLType.Q4_0, "Q4_K": GGMLType.Q5_0, "Q5_K": GGMLType.Q5_1,
                "Q6_K": GGMLType.Q8_0}
    if qtype in fallback and a.tensors["blk.0.ffn_down.weight"].shape[0] % 256:
        assert "not divisible by 256" in notes["blk.0.ffn_down.weight"]
        assert b.tensors["blk.0.ffn_down.weight"].type_id == fallback[qtype]


@pytest.mark.parametrize("qtype", list(FTYPES) + list(PURE_FTYPES))
def test_quantize_matches_llama_cpp_f32(f32_file: Path, tmp_path: Path, qtype: str) -> None:
    # --no-ternarize: llama.cpp's TQ quantizers take the raw weights (per-block max scale)
    _compare_with_llama_cpp(f32_file, tmp_path, qtype, bitnet_ternarize=False)


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_1", "Q5_0", "TQ1_0", "Q6_K", "Q4_K"])
def test_quantize_matches_llama_cpp_f16(f16_file: Path, tmp_path: Path, qtype: str) -> None:
    _compare_with_llama_cpp(f16_file, tmp_path, qtype, bitnet_ternarize=False)


@pytest.mark.parametrize("qtype", ["TQ1_0", "TQ2_0"])
def test_bitnet_ternarization_matches_llama_cpp_on_ternary_weights(
        tmp_path: Path, qtype: str) -> None:
    """Already-ternary weights: BitNet ternarization keeps them, so the default path is
    byte-identical to llama.cpp too."""
    src = _llama_file(tmp_path / "tern.gguf", ternary=True, n_ff=512)
    _compare_with_llama_cpp(src, tmp_path, qtype)


# ---------------------------------------------------------------------------------------
# ternary types: I2_S <-> TQ2_0, the non-ternary warning
# ---------------------------------------------------------------------------------------

MATMULS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def _weights(path: Path) -> Dict[str, np.ndarray]:
    gf = load(path)
    return {n: dequantize(gf.tensor_bytes(n), t.type_id, t.np_shape)
            for n, t in gf.tensors.items() if any(m in n for m in MATMULS)}


def test_i2_s_tq2_0_round_trip_exact_up_to_fp16_scale(tmp_path: Path) -> None:
    src = _llama_file(tmp_path / "tern.gguf", ternary=True, n_ff=512)
    s = np.float32(0.0123457)
    s16 = np.float32(np.float16(s))
    rel_fp16 = abs(float(s16) - float(s)) / float(s)
    paths: Dict[Tuple[int, str], Path] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonTernaryWarning)  # ternary input: no warning
        for step, (a, qtype) in enumerate([("tern", "I2_S"), ("I2_S", "TQ2_0"),
                                           ("TQ2_0", "I2_S"), ("I2_S", "TQ2_0")]):
            inp = src if a == "tern" else paths[(step - 1, a)]
            quantize_file(inp, tmp_path / f"{step}.gguf", qtype)
            paths[(step, qtype)] = tmp_path / f"{step}.gguf"
    ref = _weights(src)
    i2s, tq2, i2s_b, tq2_b = (_weights(paths[k]) for k in
                              [(0, "I2_S"), (1, "TQ2_0"), (2, "I2_S"), (3, "TQ2_0")])
    for name, w in ref.items():
        # F32 -> I2_S keeps the f32 scale: exact
        assert np.array_equal(i2s[name], w), name
        # I2_S -> TQ2_0: same ternary codes, scale rounded to fp16 (|err| <= 2^-11 relative)
        assert np.array_equal(np.sign(tq2[name]), np.sign(w)), name
        err = float(np.max(np.abs(tq2[name] - w))) / float(s)
        assert err == pytest.approx(rel_fp16, abs=1e-9) and err <= 2.0**-11, name
        assert np.array_equal(tq2[name], np.sign(w) * s16), name
        # TQ2_0 -> I2_S -> TQ2_0: exact, bytes included
        assert np.array_equal(i2s_b[name], tq2[name]), name
        assert np.array_equal(tq2_b[name], tq2[name]), name
    b1, b3 = load(paths[(1, "TQ2_0")]), load(paths[(3, "TQ2_0")])
    for name in ref:
        assert np.array_equal(b1.tensor_bytes(name), b3.tensor_bytes(name)), name
    print(f"I2_S -> TQ2_0 scale rounding: s={float(s)!r} fp16={float(s16)!r} rel={rel_fp16:.2e}")


def test_ternarize_error_measurements() -> None:
    """The numbers NON_TERNARY_THRESHOLD is justified by (see bitnet.tools.quantize)."""
    rng = np.random.default_rng(0)
    t = rng.integers(-1, 2, (256, 256)).astype(np.float32) * np.float32(0.02)
    cases = {
        "gaussian": rng.standard_normal((256, 256)).astype(np.float32),
        "uniform": rng.uniform(-1, 1, (256, 256)).astype(np.float32),
        "ternary": t,
        "ternary+1%": t + np.float32(2e-4) * rng.standard_normal(t.shape).astype(np.float32),
    }
    err = {k: ternarize(v)[1] for k, v in cases.items()}
    print("ternarization error:", {k: round(v, 4) for k, v in err.items()})
    assert err["gaussian"] > 2 * NON_TERNARY_THRESHOLD  # measured 0.46
    assert err["uniform"] > 1.5 * NON_TERNARY_THRESHOLD  # measured 0.35
    assert err["ternary"] == 0.0
    assert err["ternary+1%"] < NON_TERNARY_THRESHOLD / 10  # measured 0.012
    w, _ = ternarize(cases["gaussian"])  # absmean: values {-m, 0, m}, m = mean|W|
    m = np.float32(np.abs(cases["gaussian"]).mean(dtype=np.float64))
    assert set(np.unique(np.abs(w)).tolist()) == {0.0, float(m)}


@pytest.mark.parametrize("qtype", ["TQ2_0", "I2_S", "TQ1_0"])
def test_non_ternary_warning(f32_file: Path, tmp_path: Path, qtype: str) -> None:
    with pytest.warns(NonTernaryWarning, match="not ternary-trained"):
        report = quantize_file(f32_file, tmp_path / "g.gguf", qtype)
    assert {n for n, _ in report.non_ternary} >= {"blk.0.attn_q.weight", "blk.0.ffn_up.weight"}
    src = _llama_file(tmp_path / "tern.gguf", ternary=True, n_ff=512)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonTernaryWarning)
        assert quantize_file(src, tmp_path / "t.gguf", qtype).non_ternary == []


def test_quantize_refuses_in_place_and_cli(f32_file: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BitNetError, match="refusing to write .*: it is the input"):
        quantize_file(f32_file, f32_file, "Q8_0")
    assert quantize_main([str(f32_file), str(f32_file), "--type", "q8_0"]) == 1
    out = tmp_path / "cli.gguf"
    assert quantize_main([str(f32_file), str(out), "--type", "tq2_0", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "blk.0.ffn_down.weight" in err and "-> Q4_0" in err
    gf = load(out)
    assert gf.kv["general.file_type"] == 37
    assert gf.tensors["blk.0.attn_norm.weight"].type_id == GGMLType.F32  # norms stay F32


def _peak_alloc(src: Path, dst: Path, qtype: str) -> int:
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonTernaryWarning)
            quantize_file(src, dst, qtype)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("qtype", ["Q4_0", "TQ2_0"])
def test_quantize_memory_is_bounded_by_largest_tensor(tmp_path: Path, qtype: str) -> None:
    """Peak allocation (tracemalloc: numpy reports its buffers to it; the mmap'ed input is
    not an allocation) must not grow with the number of tensors: a 10-layer file peaks
    like a 2-layer one with the same largest tensor, and far below its own size."""
    small = _llama_file(tmp_path / "small.gguf", n_layer=2, n_ff=512)
    big = _llama_file(tmp_path / "big.gguf", n_layer=10, n_ff=512)
    _peak_alloc(small, tmp_path / "warm.gguf", qtype)  # imports (rich) outside the measure
    peak_small = _peak_alloc(small, tmp_path / "s.gguf", qtype)
    peak_big = _peak_alloc(big, tmp_path / "b.gguf", qtype)
    largest = max(t.n_elements for t in load(big).tensors.values()) * 4  # f32 bytes
    size_big = big.stat().st_size
    print(f"{qtype}: largest tensor {largest / 2**20:.2f} MiB; 2 layers peak "
          f"{peak_small / 2**20:.2f} MiB; 10 layers ({size_big / 2**20:.1f} MiB file) peak "
          f"{peak_big / 2**20:.2f} MiB")
    # Measured: ~4.2 MiB (Q4_0) / ~5.5 MiB (TQ2_0) for both files: the working set is one
    # tensor's f32/f64 temporaries (~8-11x its f32 size), flat in the tensor count; the
    # 10-layer file is ~22 MiB. 25% + 256 KiB slack covers header/plan lists growing
    # with the tensor count.
    assert peak_big < 1.25 * peak_small + 2**18
    assert peak_big < size_big / 3


# ---------------------------------------------------------------------------------------
# convert: HF checkpoints -> GGUF
# ---------------------------------------------------------------------------------------

HIDDEN, INTER, HEADS, KV_HEADS, LAYERS = 256, 512, 4, 2, 2


def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's byte -> printable character map."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


MERGES = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"),
          ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld")]


def _tokenizer(d: Path) -> Dict[str, int]:
    vocab = {c: i for i, c in enumerate(_bytes_to_unicode()[b] for b in range(256))}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    added: List[Dict[str, Any]] = [{"id": len(vocab) + i, "content": s, "special": True}
                                   for i, s in enumerate(specials)]
    tok = {"version": "1.0", "added_tokens": added,
           "model": {"type": "BPE", "vocab": vocab, "merges": [f"{a} {b}" for a, b in MERGES]}}
    (d / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
         "add_bos_token": True}), encoding="utf-8")
    full = dict(vocab)
    full.update({a["content"]: a["id"] for a in added})
    return full


def _bf16(x: np.ndarray) -> np.ndarray:
    """Round-toward-zero to bf16 values, kept as float32 (exact in the BF16 file)."""
    return (np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) & 0xFFFF0000).view(
        np.float32)


def _hf_checkpoint(d: Path, layout: str) -> Tuple[Dict[str, np.ndarray], Dict[str, int]]:
    """Write a tiny HF BitNet checkpoint; returns (GGUF name -> expected f32 weights in
    numpy order, vocab). layout "packed": 2B-4T style (relu2, uint8 + weight_scale);
    "latent": 1bitLLM style (silu, BF16 latent weights ternarized by absmean)."""
    d.mkdir()
    vocab = _tokenizer(d)
    n_vocab = len(vocab) + 3  # config vocab larger than the tokenizer: padded like HF
    cfg = {"architectures": ["BitnetForCausalLM" if layout == "latent" else "BitNetForCausalLM"],
           "hidden_act": "silu" if layout == "latent" else "relu2",
           "hidden_size": HIDDEN, "intermediate_size": INTER, "num_attention_heads": HEADS,
           "num_key_value_heads": KV_HEADS, "num_hidden_layers": LAYERS, "vocab_size": n_vocab,
           "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}
    (d / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    rng = np.random.default_rng(1)
    hf: Dict[str, np.ndarray] = {}
    expected: Dict[str, np.ndarray] = {}
    bf16: List[str] = []

    def norm(hf_name: str, gguf_name: str, n: int) -> None:
        hf[hf_name] = _bf16(1 + 0.1 * rng.standard_normal(n))
        bf16.append(hf_name)
        expected[gguf_name] = hf[hf_name]

    hf["model.embed_tokens.weight"] = _bf16(rng.standard_normal((n_vocab, HIDDEN)))
    bf16.append("model.embed_tokens.weight")
    expected["token_embd.weight"] = hf["model.embed_tokens.weight"]
    sub = ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm") if layout == "packed" else \
        ("self_attn.inner_attn_ln", "mlp.ffn_layernorm")
    hd = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        norm(p + "input_layernorm.weight", f"blk.{i}.attn_norm.weight", HIDDEN)
        norm(p + "post_attention_layernorm.weight", f"blk.{i}.ffn_norm.weight", HIDDEN)
        norm(p + sub[0] + ".weight", f"blk.{i}.attn_sub_norm.weight", HIDDEN)
        norm(p + sub[1] + ".weight", f"blk.{i}.ffn_sub_norm.weight", INTER)
        for hf_name, g_name, shape in [
                ("self_attn.q_proj", "attn_q", (HIDDEN, HIDDEN)),
                ("self_attn.k_proj", "attn_k", (KV_HEADS * hd, HIDDEN)),
                ("self_attn.v_proj", "attn_v", (KV_HEADS * hd, HIDDEN)),
                ("self_attn.o_proj", "attn_output", (HIDDEN, HIDDEN)),
                ("mlp.gate_proj", "ffn_gate", (INTER, HIDDEN)),
                ("mlp.up_proj", "ffn_up", (INTER, HIDDEN)),
                ("mlp.down_proj", "ffn_down", (HIDDEN, INTER))]:
            if layout == "packed":
                t = rng.integers(-1, 2, size=shape).astype(np.int8)
                ws = np.float32(rng.uniform(20, 60))  # BitLinear: W = t / weight_scale
                hf[p + hf_name + ".weight"] = pack_weights(t)
                hf[p + hf_name + ".weight_scale"] = np.array([ws], dtype=np.float32)
                expected[f"blk.{i}.{g_name}.weight"] = t.astype(np.float32) * np.float32(1 / ws)
            else:
                w = _bf16(0.02 * rng.standard_normal(shape))
                hf[p + hf_name + ".weight"] = w
                bf16.append(p + hf_name + ".weight")
                # 1bitLLM's weight_quant: s = 1 / mean|W|; RoundClip(W * s, -1, 1) / s
                s = np.float32(1) / np.float32(np.abs(w).mean(dtype=np.float64))
                expected[f"blk.{i}.{g_name}.weight"] = np.clip(np.round(w * s), -1, 1) / s
    norm("model.norm.weight", "output_norm.weight", HIDDEN)
    write_safetensors(d / "model.safetensors", hf, bf16=tuple(bf16))
    return expected, vocab


def _reference_gguf(path: Path, arch: str, expected: Dict[str, np.ndarray], tok_kv: Dict[str, Any],
                    tok_types: Dict[str, Any], qtype: int) -> None:
    """The GGUF written directly from the expected weights (no converter involved)."""
    kv: Dict[str, Any] = {"general.architecture": arch,
                          f"{arch}.context_length": 128, f"{arch}.embedding_length": HIDDEN,
                          f"{arch}.block_count": LAYERS, f"{arch}.feed_forward_length": INTER,
                          f"{arch}.attention.head_count": HEADS,
                          f"{arch}.attention.head_count_kv": KV_HEADS,
                          f"{arch}.attention.layer_norm_rms_epsilon": 1e-5}
    kv.update(tok_kv)
    tensors = []
    for name, w in expected.items():
        if w.ndim == 1:
            tensors.append((name, w.shape, GGMLType.F32, w.astype("<f4").tobytes()))
        elif name == "token_embd.weight":
            tensors.append((name, w.shape[::-1], GGMLType.F16, quantize(w, GGMLType.F16).tobytes()))
        else:
            tensors.append((name, w.shape[::-1], qtype, quantize(w, qtype).tobytes()))
    write_gguf(path, kv, tok_types, tensors)


def test_unpack_weights_layout() -> None:
    """transformers' layout: packed row r, bits 2i+1:2i hold output row i * R + r, code - 1."""
    packed = np.array([[0b10_01_00_10, 0b00_00_00_01]], dtype=np.uint8)  # R = 1, 2 columns
    assert unpack_weights(packed).tolist() == [[1, 0], [-1, -1], [0, -1], [1, -1]]
    t = np.random.default_rng(0).integers(-1, 2, size=(64, 8)).astype(np.int8)
    assert np.array_equal(unpack_weights(pack_weights(t)), t)


def test_convert_rejects_unknown_activation(tmp_path: Path) -> None:
    _hf_checkpoint(tmp_path / "hf", "latent")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    cfg["hidden_act"] = "gelu"
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BitNetError, match="hidden_act 'gelu'"):
        convert(tmp_path / "hf", tmp_path / "x.gguf")


@pytest.mark.parametrize("layout,outtype", [("packed", "i2_s"), ("packed", "tq2_0"),
                                            ("latent", "i2_s"), ("latent", "tq2_0")])
def test_convert_hf_checkpoint(tmp_path: Path, layout: str, outtype: str) -> None:
    expected, vocab = _hf_checkpoint(tmp_path / "hf", layout)
    out = tmp_path / "out.gguf"
    assert convert_main([str(tmp_path / "hf"), str(out), "--outtype", outtype]) == 0
    gf = load(out)
    arch = "bitnet-b1.58" if layout == "packed" else "bitnet"
    qtype = {"i2_s": GGMLType.I2_S, "tq2_0": GGMLType.TQ2_0}[outtype]
    assert gf.architecture == arch
    assert gf.kv["general.file_type"] == {"i2_s": 40, "tq2_0": 37}[outtype]
    assert gf.kv[f"{arch}.attention.head_count_kv"] == KV_HEADS
    assert gf.kv["tokenizer.ggml.pre"] == "llama-bpe"  # detected from <|begin_of_text|>
    # written by the converter, not filled in by bitnet.gguf's auto-repair
    assert not {f.key for f in gf.fixes} & {"tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id",
                                            "tokenizer.ggml.eos_token_id"}
    assert gf.tensors["blk.1.ffn_down.weight"].type_id == qtype
    assert gf.tensors["blk.1.ffn_down.weight"].shape == (INTER, HIDDEN)

    # weights: dequantized GGUF tensors equal the expected ternary weights (TQ2_0: the
    # per-block scale rounded to fp16, relative error <= 2^-11)
    for name, w in expected.items():
        t = gf.tensors[name]
        got = dequantize(gf.tensor_bytes(name), t.type_id, t.np_shape)
        if t.type_id == GGMLType.TQ2_0:
            np.testing.assert_allclose(got, w, rtol=2.0**-11, atol=0)
        elif t.type_id == GGMLType.F16:
            np.testing.assert_array_equal(got, w.astype(np.float16).astype(np.float32))
        else:
            np.testing.assert_array_equal(got, w, err_msg=name)

    # tokenizer: byte-level BPE with the llama-bpe pre-tokenizer; merges applied in order:
    # "hello" = h+e, l+l, he+ll, hell+o; " world" = Ġ+w, o+r, Ġw+or, l+d, Ġwor+ld
    tok = load_tokenizer(out)
    ids = tok.tokenize(b"hello world", add_special=True, parse_special=False)
    assert ids == [vocab["<|begin_of_text|>"], vocab["hello"], vocab["Ġworld"]]
    assert tok.detokenize(ids[1:]) == b"hello world"

    # logits equal those of a GGUF written directly from the expected weights
    tok_keys = {k: v for k, v in gf.raw_kv.items() if k.startswith("tokenizer.")}
    ref = tmp_path / "ref.gguf"
    _reference_gguf(ref, arch, expected, tok_keys,
                    {k: gf.kv_types[k] for k in tok_keys}, qtype)
    got = Context(Model.load(out), n_ctx=32).eval(ids)
    want = Context(Model.load(ref), n_ctx=32).eval(ids)
    assert got.shape == (len(ids), len(gf.kv["tokenizer.ggml.tokens"]))
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, want)

    if arch == "bitnet" and qtype == GGMLType.TQ2_0:
        # mainline llama.cpp runs `bitnet` with TQ2_0 weights: the converted file is the oracle's
        llm = llama_cpp.Llama(model_path=str(out), n_ctx=32, logits_all=True, verbose=False,
                              n_threads=1)
        try:
            assert llm.tokenize(b"hello world", add_bos=True) == ids
            llm.eval(ids)
            theirs = np.array(llm.scores[: len(ids)], dtype=np.float32)
        finally:
            llm.close()
        nmse = float(((theirs - got) ** 2).sum() / (theirs**2).sum())
        print(f"convert {layout}/{outtype}: NMSE vs llama.cpp {nmse:.2e}")
        # test-backend-ops' whole-graph tolerance is 2e-3; measured 2.4e-5 (both sides
        # quantize activations to Q8_K; the difference is float summation order)
        assert nmse < 2e-3
        assert np.array_equal(theirs.argmax(-1), got.argmax(-1))


@pytest.mark.llamacpp
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K"])
def test_quantized_file_runs_in_llama_cpp_like_here(tmp_path: Path, qtype: str) -> None:
    """A file quantized by `bitnet quantize` loads in llama.cpp, and llama.cpp's logits and
    this engine's on it agree within the reference engine's whole-model bound."""
    from bitnet_harness.synthetic import synthetic_path

    out = tmp_path / f"tiny-{qtype}.gguf"
    quantize_file(synthetic_path("llama-f16"), out, qtype)
    ids = [1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203, 29889]
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=64, logits_all=True, verbose=False,
                          n_threads=1)
    try:
        llm.eval(ids)
        theirs = np.array(llm.scores[: len(ids)], dtype=np.float64)
    finally:
        llm.close()
    ours = Context(Model.load(out), n_ctx=64).eval(ids).astype(np.float64)
    nmse = float(((theirs - ours) ** 2).sum() / (theirs**2).sum())
    print(f"quantized {qtype}: NMSE ours vs llama.cpp {nmse:.2e}")
    # the reference engine's tests measured ~2.7e-4 on these synthetic llama files (float
    # activations here vs llama.cpp's Q8_0/Q8_1 activations); test-backend-ops' whole-graph
    # bound 2e-3 is the assertion
    assert nmse < 2e-3, f"{qtype}: NMSE {nmse:.2e}"


# ---------------------------------------------------------------------------------------
# convert vs llama.cpp's own convert_hf_to_gguf.py (SentencePiece BitnetForCausalLM)
# ---------------------------------------------------------------------------------------

CONVERT_SCRIPT = "llamacpp-convert/convert_hf_to_gguf.py"  # pinned in corpora_manifest.json
SPM_VOCAB, SPM_N_VOCAB = 320, 322  # config vocab_size > tokenizer: padded with [PADi]


def _spm_corpus() -> List[str]:
    """The Zen of Python (stdlib, fixed text) as the tokenizer's training corpus."""
    import codecs
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints it
        import this
    return codecs.decode(this.s, "rot13").splitlines()


def _train_spm() -> bytes:
    """A real, tiny llama-style SentencePiece model (BPE, byte fallback, <unk>/<s>/</s> at
    0/1/2) trained by sentencepiece itself; single-threaded training is deterministic."""
    import io

    spm = pytest.importorskip("sentencepiece")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_spm_corpus()), model_writer=buf, model_type="bpe",
        vocab_size=SPM_VOCAB, byte_fallback=True, character_coverage=1.0, num_threads=1,
        add_dummy_prefix=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2)
    return buf.getvalue()


def _spm_bitnet_checkpoint(d: Path) -> Path:
    """1bitLLM/bitnet_b1_58-* in miniature: BitnetForCausalLM, silu, BF16 latent weights,
    tokenizer.model + tokenizer_config.json (added_tokens_decoder for the 3 specials)."""
    d.mkdir()
    (d / "tokenizer.model").write_bytes(_train_spm())
    cfg = {"architectures": ["BitnetForCausalLM"], "hidden_act": "silu", "hidden_size": HIDDEN,
           "intermediate_size": INTER, "num_attention_heads": HEADS,
           "num_key_value_heads": KV_HEADS, "num_hidden_layers": LAYERS,
           "vocab_size": SPM_N_VOCAB, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2,
           "torch_dtype": "bfloat16"}
    (d / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
         "unk_token": "<unk>", "added_tokens_decoder": {
             str(i): {"content": c, "special": True}
             for i, c in enumerate(["<unk>", "<s>", "</s>"])}}), encoding="utf-8")
    rng = np.random.default_rng(3)
    hf: Dict[str, np.ndarray] = {"model.embed_tokens.weight":
                                 _bf16(rng.standard_normal((SPM_N_VOCAB, HIDDEN)))}
    hd = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for name, n in [("input_layernorm", HIDDEN), ("post_attention_layernorm", HIDDEN),
                        ("self_attn.inner_attn_ln", HIDDEN), ("mlp.ffn_layernorm", INTER)]:
            hf[p + name + ".weight"] = _bf16(1 + 0.1 * rng.standard_normal(n))
        for name, shape in [("self_attn.q_proj", (HIDDEN, HIDDEN)),
                            ("self_attn.k_proj", (KV_HEADS * hd, HIDDEN)),
                            ("self_attn.v_proj", (KV_HEADS * hd, HIDDEN)),
                            ("self_attn.o_proj", (HIDDEN, HIDDEN)),
                            ("mlp.gate_proj", (INTER, HIDDEN)), ("mlp.up_proj", (INTER, HIDDEN)),
                            ("mlp.down_proj", (HIDDEN, INTER))]:
            hf[p + name + ".weight"] = _bf16(0.02 * rng.standard_normal(shape))
    hf["model.norm.weight"] = _bf16(1 + 0.1 * rng.standard_normal(HIDDEN))
    write_safetensors(d / "model.safetensors", hf, bf16=tuple(hf))
    return d


def _llama_cpp_convert(hf_dir: Path, out: Path, outtype: str) -> None:
    """llama.cpp's convert_hf_to_gguf.py (with its own gguf-py) in a subprocess."""
    for module in ("torch", "transformers", "sentencepiece"):
        pytest.importorskip(module, reason="convert_hf_to_gguf.py needs it (scripts/setup.sh)")
    script = corpus_path(CONVERT_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(script.parent / "gguf-py"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")  # a local directory: never ask the Hub
    result = subprocess.run([sys.executable, str(script), str(hf_dir), "--outfile", str(out),
                             "--outtype", outtype], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def spm_conversions(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Tuple[Path, Path]]:
    """outtype -> (llama.cpp's GGUF, ours) for one SentencePiece BitnetForCausalLM."""
    root = tmp_path_factory.mktemp("spm")
    hf = _spm_bitnet_checkpoint(root / "bitnet_b1_58-tiny")
    out = {}
    for outtype in ("tq2_0", "tq1_0", "f16"):
        theirs, ours = root / f"llama-{outtype}.gguf", root / f"ours-{outtype}.gguf"
        _llama_cpp_convert(hf, theirs, outtype)
        assert convert_main([str(hf), str(ours), "--outtype", outtype]) == 0
        out[outtype] = (theirs, ours)
    return out


# keys one converter writes and the other does not (see the bitnet.tools.convert docstring)
ONLY_LLAMA_CPP_KEYS = {"general.size_label", "bitnet.rope.scaling.type",
                       "bitnet.rope.scaling.factor"}
ONLY_OURS_KEYS = {"bitnet.vocab_size", "bitnet.rope.dimension_count"}


@pytest.mark.llamacpp
@pytest.mark.parametrize("outtype", ["tq2_0", "tq1_0", "f16"])
def test_convert_equals_llama_cpp_convert_hf_to_gguf(
        spm_conversions: Dict[str, Tuple[Path, Path]], outtype: str) -> None:
    theirs_path, ours_path = spm_conversions[outtype]
    theirs, ours = load(theirs_path), load(ours_path)
    # tensors: same names, types, shapes and bytes. The ternary matrices go through the
    # same float32 weight_quant (iscale = 1/mean|W|; round(W*iscale).clamp(-1,1)/iscale);
    # mean|W| is summed in a different order (torch float32 vs float64 here), which can move
    # the float32 scale by 1 ulp, but TQ/F16 store it rounded to fp16 (measured: 107 of
    # 300 random BF16 tensors had a 1-ulp float32 difference, 0 after fp16 rounding).
    assert set(ours.tensors) == set(theirs.tensors)
    for name, t in theirs.tensors.items():
        u = ours.tensors[name]
        assert (u.type_id, u.shape) == (t.type_id, t.shape), name
        assert np.array_equal(ours.tensor_bytes(name), theirs.tensor_bytes(name)), name
    want = {"tq2_0": GGMLType.TQ2_0, "tq1_0": 34, "f16": GGMLType.F16}[outtype]
    assert ours.tensors["blk.0.ffn_up.weight"].type_id == want
    assert ours.tensors["token_embd.weight"].type_id == GGMLType.F16
    # metadata: every key both write is equal in type and value, except general.name
    # (llama.cpp's gguf.Metadata derives a display name from the directory name with its
    # own heuristics: "Bitnet_B1_58 Tiny" for "bitnet_b1_58-tiny"; we keep the name)
    a, b = theirs.raw_kv, ours.raw_kv
    assert set(a) - set(b) == ONLY_LLAMA_CPP_KEYS
    assert set(b) - set(a) == ONLY_OURS_KEYS
    for key in sorted(set(a) & set(b)):
        if key == "general.name":
            assert b[key] == "bitnet_b1_58-tiny"
            continue
        assert theirs.kv_types[key] == ours.kv_types[key], key
        assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key
    assert b["tokenizer.ggml.tokens"][SPM_VOCAB:] == ["[PAD320]", "[PAD321]"]
    # the extra keys are llama.cpp's own defaults: no-op linear rope scaling, vocab size =
    # token count, rope dims = head size
    assert a["bitnet.rope.scaling.factor"] == 1.0
    assert b["bitnet.vocab_size"] == len(b["tokenizer.ggml.tokens"])
    assert b["bitnet.rope.dimension_count"] == HIDDEN // HEADS


@pytest.mark.llamacpp
def test_converted_spm_bitnet_generates_like_llama_cpp(
        spm_conversions: Dict[str, Tuple[Path, Path]]) -> None:
    """The converted file generates: greedy decoding by llama.cpp and by this engine on it
    give the same tokens, and llama.cpp's logits on it equal those on llama.cpp's own file."""
    spm = pytest.importorskip("sentencepiece")
    theirs_path, ours_path = spm_conversions["tq2_0"]
    prompt = b"Beautiful is better than ugly."
    sp = spm.SentencePieceProcessor(model_proto=_train_spm())
    ids = [1] + sp.encode(prompt.decode())
    tok = load_tokenizer(ours_path)
    assert tok.tokenize(prompt, add_special=True, parse_special=False) == ids

    def llama_cpp_greedy(path: Path, n: int) -> Tuple[List[int], np.ndarray]:
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, logits_all=True, verbose=False,
                              n_threads=1)
        try:
            assert llm.tokenize(prompt, add_bos=True) == ids
            llm.eval(ids)
            first = np.array(llm.scores[: len(ids)], dtype=np.float32)
            out: List[int] = []
            for _ in range(n):
                out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
                llm.eval([out[-1]])
            return out, first
        finally:
            llm.close()

    n_gen = 8
    gen_ours_file, logits_ours_file = llama_cpp_greedy(ours_path, n_gen)
    gen_their_file, logits_their_file = llama_cpp_greedy(theirs_path, n_gen)
    assert np.array_equal(logits_ours_file, logits_their_file)  # identical tensors
    assert gen_ours_file == gen_their_file

    ctx = Context(Model.load(ours_path), n_ctx=64)
    logits = ctx.eval(ids)
    mine: List[int] = []
    for _ in range(n_gen):
        mine.append(int(np.argmax(logits[-1])))
        logits = ctx.eval([mine[-1]])
    prompt_logits = ctx.eval(ids, n_past=0)
    nmse = float(((logits_ours_file - prompt_logits) ** 2).sum() / (logits_ours_file**2).sum())
    print(f"convert spm/tq2_0: generated {mine}, llama.cpp {gen_ours_file}, NMSE {nmse:.2e}, "
          f"next-token argmax over the prompt {prompt_logits.argmax(-1).tolist()}")
    assert mine == gen_ours_file
    # teacher-forced next-token choices at every prompt position agree too
    assert np.array_equal(prompt_logits.argmax(-1), logits_ours_file.argmax(-1))
    # test-backend-ops' whole-graph tolerance (as in test_convert_hf_checkpoint)
    assert nmse < 2e-3
