"""bitnet.quants against real oracles, byte for byte.

Oracles:
- gguf-py (`gguf.quants`, PyPI `gguf`): dequantization of every type it implements, and
  quantization of BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, TQ1_0, TQ2_0 (F16/F32 are casts).
  gguf-py documents no divergence from the C; two small ones were found and are handled
  explicitly: its F16 -> F32 cast keeps signaling NaNs signaling where llama.cpp quiets
  them (checked on all 65536 halves), and the sign of a zero scale or minimum in
  Q4_0/Q5_0/Q4_1/Q5_1 blocks of zeros (gguf_with_c_signed_zeros). We follow llama.cpp.
- llama.cpp's own C, called through ctypes in `libggml-base` shipped by llama-cpp-python:
  `quantize_row_*_ref`, `dequantize_row_*`, `ggml_fp32_to_fp16_row`, ... (`llamacpp` mark).
- llama.cpp's model quantizer `llama_model_quantize` on an F32 GGUF written with
  gguf.GGUFWriter (`llamacpp` mark).
- I2_S (bitnet.cpp) has no oracle installed: its tests use vectors derived by hand from
  the layout, and TQ2_0 (llama.cpp's ternary type) as a cross-check.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bitnet import quants
from bitnet.errors import GGUFError, UnsupportedError
from bitnet.ggml_types import GGML_TYPES, GGML_TYPES_BY_NAME

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as GT  # noqa: E402
from gguf import quants as gq  # noqa: E402

EXAMPLES = int(os.environ.get("BITNET_HYPOTHESIS_EXAMPLES", "25"))
HYP = settings(max_examples=EXAMPLES, deadline=None)

T = {name: t.id for name, t in GGML_TYPES_BY_NAME.items()}
I2_S = T["I2_S"]


def _gguf_has(type_id: int, kind: str) -> bool:
    """Does gguf-py implement `kind` ('quantize' / 'dequantize') for this type?"""
    if type_id in (T["F32"], T["F16"]):
        return True
    if type_id not in {t.value for t in GT}:  # e.g. I2_S (36): gguf-py has no such type
        return False
    cls = gq._type_traits.get(GT(type_id))
    if cls is None:
        return False
    method = "quantize_blocks" if kind == "quantize" else "dequantize_blocks"
    return getattr(cls, method).__func__ is not getattr(gq.__Quant, method).__func__


DEQUANT_VS_GGUF = sorted(i for i in quants.SUPPORTED_DEQUANT if _gguf_has(i, "dequantize"))
QUANT_VS_GGUF = sorted(i for i in quants.SUPPORTED_QUANT if _gguf_has(i, "quantize"))
C_NAMES = {
    i: GGML_TYPES[i].name.lower().replace("_k", "_K")
    for i in quants.SUPPORTED_DEQUANT
    if GGML_TYPES[i].block_size > 1 and i != I2_S
}
C_QUANT = sorted(i for i in C_NAMES if i in quants.SUPPORTED_QUANT)


def _name(type_id: int) -> str:
    return GGML_TYPES[type_id].name


# ---------------------------------------------------------------------------------------
# One comparison mechanism
# ---------------------------------------------------------------------------------------


def assert_same_bytes(ours: np.ndarray, ref: np.ndarray, type_id: int, label: str) -> None:
    """Exact byte equality; on failure name the first differing block and show both."""
    ours = np.ascontiguousarray(ours).view(np.uint8).reshape(-1)
    ref = np.ascontiguousarray(ref).view(np.uint8).reshape(-1)
    assert ours.size == ref.size, f"{label}: {ours.size} bytes vs oracle {ref.size}"
    if not np.array_equal(ours, ref):
        ts = GGML_TYPES[type_id].type_size
        bad = np.nonzero((ours.reshape(-1, ts) != ref.reshape(-1, ts)).any(axis=1))[0]
        b = int(bad[0])
        mine, theirs = ours[b * ts : (b + 1) * ts], ref[b * ts : (b + 1) * ts]
        raise AssertionError(
            f"{label}: {bad.size} of {ours.size // ts} {_name(type_id)} blocks differ; first "
            f"#{b}\n ours   {mine.tolist()}\n oracle {theirs.tolist()}"
        )


def assert_same_floats(
    ours: np.ndarray, ref: np.ndarray, label: str, *, nan_bits: bool = True
) -> None:
    """Same NaN positions, identical bits everywhere else (so -0.0 != 0.0); with nan_bits
    also identical NaN payloads. On failure report the worst element."""
    a = np.ascontiguousarray(ours, dtype=np.float32).reshape(-1)
    b = np.ascontiguousarray(ref, dtype=np.float32).reshape(-1)
    assert a.size == b.size, f"{label}: {a.size} values vs oracle {b.size}"
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert np.array_equal(nan_a, nan_b), f"{label}: NaN at {np.nonzero(nan_a != nan_b)[0][:5]}"
    keep = np.ones_like(nan_a) if nan_bits else ~nan_a
    diff = np.nonzero(a.view(np.uint32)[keep] != b.view(np.uint32)[keep])[0]
    if diff.size:
        i = np.nonzero(keep)[0][diff[0]]
        raise AssertionError(
            f"{label}: {diff.size} values differ; first #{i}: {a[i]!r} vs oracle {b[i]!r}"
        )


def _gguf_quantize(x: np.ndarray, type_id: int) -> np.ndarray:
    return np.ascontiguousarray(gq.quantize(x, GT(type_id))).view(np.uint8).reshape(-1)


def _gguf_dequantize(raw: np.ndarray, type_id: int, shape: Tuple[int, ...]) -> np.ndarray:
    t = GGML_TYPES[type_id]
    rows = raw.reshape(shape[:-1] + (shape[-1] // t.block_size * t.type_size,))
    return np.asarray(gq.dequantize(rows, GT(type_id)), dtype=np.float32).reshape(shape)


# ---------------------------------------------------------------------------------------
# The C oracle: llama.cpp's libggml-base through ctypes
# ---------------------------------------------------------------------------------------


class GgmlC:
    """The reference (de)quantizers of the libggml-base that llama-cpp-python ships."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def _fn(self, name: str) -> Callable[..., None]:
        f = getattr(self.lib, name)
        f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        f.restype = None
        return f

    def quantize(self, x: np.ndarray, type_id: int) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        t = GGML_TYPES[type_id]
        out = np.zeros(x.size // t.block_size * t.type_size, dtype=np.uint8)
        self._fn(f"quantize_row_{C_NAMES[type_id]}_ref")(x.ctypes.data, out.ctypes.data, x.size)
        return out

    def dequantize(self, raw: np.ndarray, type_id: int) -> np.ndarray:
        raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
        t = GGML_TYPES[type_id]
        n = raw.size // t.type_size * t.block_size
        out = np.zeros(n, dtype=np.float32)
        self._fn(f"dequantize_row_{C_NAMES[type_id]}")(raw.ctypes.data, out.ctypes.data, n)
        return out

    def row(self, name: str, src: np.ndarray, out_dtype: type) -> np.ndarray:
        src = np.ascontiguousarray(src).reshape(-1)
        out: np.ndarray = np.zeros(src.size, dtype=out_dtype)
        self._fn(name)(src.ctypes.data, out.ctypes.data, src.size)
        return out


@pytest.fixture(scope="module")
def ggml_c() -> GgmlC:
    llama_cpp = pytest.importorskip("llama_cpp")
    libdir = Path(llama_cpp.__file__).parent / "lib"
    candidates = sorted(libdir.glob("libggml-base.*")) + sorted(libdir.glob("ggml-base.*"))
    if not candidates:
        pytest.fail(f"libggml-base not found in {libdir}: is llama-cpp-python installed whole?")
    return GgmlC(ctypes.CDLL(str(candidates[0])))


# ---------------------------------------------------------------------------------------
# Inputs: random blocks and adversarial cases
# ---------------------------------------------------------------------------------------

F16_FIELD_NAMES = ("d", "m", "dmin")


def random_blocks(type_id: int, n_blocks: int, seed: int, *, finite_scales: bool) -> np.ndarray:
    """Random bytes for n_blocks blocks. With finite_scales, every ggml_half field (and
    every value of F16/BF16/F32/Q8_K's float d) is overwritten with a finite random value,
    as a real quantizer would write; otherwise the bytes are left raw (inf/NaN scales)."""
    rng = np.random.default_rng(seed)
    cls = quants.block_type(type_id)
    raw = rng.integers(0, 256, size=(n_blocks, cls.type_size), dtype=np.uint8)
    if not finite_scales:
        return raw
    offset = 0
    for name, size in cls.fields:
        vals = rng.standard_normal((n_blocks, 1)) * 10.0 ** rng.integers(-4, 4, size=(n_blocks, 1))
        if name == "value" and size == 2 and type_id == T["BF16"]:
            bf16 = quants.fp32_to_bf16_bits(vals.astype(np.float32))
            raw[:, offset : offset + 2] = bf16.view(np.uint8)
        elif (name == "value" and size == 2) or (name in F16_FIELD_NAMES and size == 2):
            raw[:, offset : offset + 2] = vals.astype("<f2").view(np.uint8)
        elif size == 4 and name in ("value", "d"):
            raw[:, offset : offset + 4] = vals.astype("<f4").view(np.uint8)
        offset += size
    return raw


ANCHORS = {  # values that make a block's scale exactly 1 (or 1/2) so .5 ties are exact
    "Q8_0": ([127.0], 127),
    "Q4_0": ([-8.0], 8),
    "Q4_1": ([0.0, 15.0], 15),
    "Q5_0": ([-16.0], 16),
    "Q5_1": ([0.0, 31.0], 31),
    "TQ1_0": ([2.0], 2),
    "TQ2_0": ([2.0], 2),
    "Q8_K": ([127.0], 127),
}


def adversarial_cases(type_id: int, seed: int = 0) -> List[Tuple[str, np.ndarray]]:
    """Named (rows, k) float32 inputs for one type; k a multiple of its block size."""
    rng = np.random.default_rng(seed)
    bs = GGML_TYPES[type_id].block_size
    k = max(256, bs)
    normal = rng.standard_normal((8, k)).astype(np.float32)
    cases = [
        ("normal", normal),
        ("zeros", np.zeros((2, k), np.float32)),
        ("negzeros", np.full((2, k), -0.0, np.float32)),
        ("constant", np.full((2, k), 0.37, np.float32)),
        ("constant-negative", np.full((2, k), -3.0, np.float32)),
        ("huge", normal * np.float32(1e37)),
        ("float-max", np.sign(normal) * np.float32(3.4e38)),
        ("tiny", normal * np.float32(1e-30)),
        ("subnormal", (normal * np.float32(1e-40)).astype(np.float32)),
        ("smallest-subnormal", np.sign(normal) * np.float32(1.4e-45)),
        ("wide-range", (normal * 10.0 ** rng.integers(-30, 30, size=(8, 1))).astype(np.float32)),
        ("ternary", rng.integers(-1, 2, size=(8, k)).astype(np.float32) * np.float32(0.7)),
        ("integers", rng.integers(-8, 9, size=(8, k)).astype(np.float32)),
    ]
    signed_zeros = rng.choice(np.array([-0.0, 0.0], dtype=np.float32), size=(8, k))
    cases.append(("signed-zeros", signed_zeros))
    cases.append(("positive-and-signed-zeros", np.where(normal > 0, normal, signed_zeros)))
    with_inf = normal.copy()
    with_inf[:, 3] = np.inf
    with_inf[::2, 40] = -np.inf
    cases.append(("with-inf", with_inf))
    name = _name(type_id)
    if name in ANCHORS:
        anchors, top = ANCHORS[name]
        ties = (rng.integers(-2 * top, 2 * top + 1, size=(8, k)) / 2).astype(np.float32)
        if name in ("Q4_1", "Q5_1"):
            ties = np.abs(ties)
        for j in range(0, k, bs):
            ties[:, j : j + len(anchors)] = anchors
        cases.append(("half-ties", ties))
    if name in ("F16", "BF16", "F32"):
        ulp_bits = 10 if name == "F16" else 7
        odd = 2 * rng.integers(0, 2**ulp_bits, size=(8, k)) + 1
        ties = (1.0 + odd * 2.0 ** -(ulp_bits + 1)) * rng.choice([-1.0, 1.0], size=(8, k))
        cases.append(("rounding-ties", ties.astype(np.float32)))
    return cases


def _case_params(types: List[int]) -> List[object]:
    return [
        pytest.param(t, case, x, id=f"{_name(t)}-{case}")
        for t in types
        for case, x in adversarial_cases(t)
    ]


# ---------------------------------------------------------------------------------------
# Dequantization
# ---------------------------------------------------------------------------------------


def test_supported_sets_cover_the_brief() -> None:
    wanted = "F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K TQ1_0 TQ2_0 I2_S"
    assert {T[n] for n in wanted.split()} <= quants.SUPPORTED_DEQUANT
    wanted_q = "F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K TQ1_0 TQ2_0 I2_S"
    assert {T[n] for n in wanted_q.split()} <= quants.SUPPORTED_QUANT
    # gguf-py is an oracle for at least these
    assert {T[n] for n in "Q8_0 TQ1_0 TQ2_0 BF16 Q4_0".split()} <= set(QUANT_VS_GGUF)


@pytest.mark.parametrize("finite", [True, False], ids=["finite-scales", "raw-bytes"])
@pytest.mark.parametrize("type_id", DEQUANT_VS_GGUF, ids=_name)
def test_dequantize_random_blocks_match_gguf(type_id: int, finite: bool) -> None:
    raw = random_blocks(type_id, 300, seed=type_id, finite_scales=finite)
    bs = GGML_TYPES[type_id].block_size
    shape = (3, 100 * bs)
    ours = quants.dequantize(raw, type_id, shape)
    assert ours.shape == shape and ours.dtype == np.float32
    with np.errstate(all="ignore"):
        ref = _gguf_dequantize(raw.reshape(-1), type_id, shape)
    if finite:
        assert np.isfinite(ours).all()
    # raw F16 bytes include signaling NaNs, which llama.cpp (and we) quiet and gguf-py does not
    assert_same_floats(ours, ref, f"{_name(type_id)} vs gguf-py", nan_bits=finite)


@pytest.mark.llamacpp
@pytest.mark.parametrize("finite", [True, False], ids=["finite-scales", "raw-bytes"])
@pytest.mark.parametrize("type_id", sorted(C_NAMES), ids=_name)
def test_dequantize_random_blocks_match_c(ggml_c: GgmlC, type_id: int, finite: bool) -> None:
    raw = random_blocks(type_id, 300, seed=100 + type_id, finite_scales=finite)
    if type_id == T["Q8_K"] and not finite:
        raw[:, :4] = random_blocks(type_id, 300, seed=7, finite_scales=True)[:, :4]
    shape = (300 * GGML_TYPES[type_id].block_size,)
    ours = quants.dequantize(raw, type_id, shape)
    assert_same_floats(ours, ggml_c.dequantize(raw, type_id), f"{_name(type_id)} vs C")


@pytest.mark.llamacpp
def test_f16_every_bit_pattern(ggml_c: GgmlC) -> None:
    """All 65536 halves: bit-identical to ggml_fp16_to_fp32_row (which quiets signaling
    NaNs); against gguf-py (a numpy cast) the only differences are those signaling NaNs."""
    halves = np.arange(65536, dtype=np.uint16)
    ours = quants.dequantize(halves, T["F16"], (65536,))
    assert_same_floats(ours, ggml_c.row("ggml_fp16_to_fp32_row", halves, np.float32), "F16 vs C")
    ref = _gguf_dequantize(halves.view(np.uint8), T["F16"], (65536,))
    differ = ours.view(np.uint32) != ref.view(np.uint32)
    signaling = ((halves & 0x7C00) == 0x7C00) & ((halves & 0x03FF) != 0) & ((halves & 0x0200) == 0)
    assert np.array_equal(differ, signaling)


def _smollm2() -> Any:
    from bitnet.gguf import load
    from bitnet_harness.corpora import SMOLLM2, corpus_path

    with warnings.catch_warnings():  # the file's metadata repairs are not this test's topic
        warnings.simplefilter("ignore")
        return load(corpus_path(SMOLLM2))


def test_dequantize_real_smollm2_matches_gguf() -> None:
    """Every tensor of the real SmolLM2 Q4_1 file, read through bitnet.gguf."""
    gf = _smollm2()
    seen = set()
    for name, info in gf.tensors.items():
        raw = gf.tensor_bytes(name)
        ours = quants.dequantize(raw, info.type_id, info.np_shape)
        ref = _gguf_dequantize(raw, info.type_id, info.np_shape)
        assert_same_floats(ours, ref, f"{name} ({info.type_name})")
        seen.add(info.type_name)
    assert seen == {"Q4_1", "Q8_0", "F32"}
    # an embedding lookup reads single rows
    emb = gf.tensors["token_embd.weight"]
    ids = [0, 1, 2, 49151, 1234, 2]
    full = quants.dequantize(gf.tensor_bytes(emb.name), emb.type_id, emb.np_shape)
    rows = quants.dequantize_rows(gf.tensor_bytes(emb.name), emb.type_id, emb.np_shape, ids)
    assert_same_floats(rows, full[ids], "token_embd rows")


@pytest.mark.llamacpp
def test_dequantize_real_smollm2_matches_c(ggml_c: GgmlC) -> None:
    gf = _smollm2()
    names = ["token_embd.weight"] + [n for n in gf.tensors if n.startswith("blk.0.")]
    for name in names:
        info = gf.tensors[name]
        if info.type_id not in C_NAMES:
            continue
        raw = gf.tensor_bytes(name)
        ours = quants.dequantize(raw, info.type_id, info.np_shape)
        assert_same_floats(ours, ggml_c.dequantize(raw, info.type_id), f"{name} vs C")


@HYP
@given(
    type_id=st.sampled_from(DEQUANT_VS_GGUF),
    rows=st.integers(1, 4),
    blocks=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_dequantize_shapes_match_gguf(
    type_id: int, rows: int, blocks: int, seed: int
) -> None:
    raw = random_blocks(type_id, rows * blocks, seed, finite_scales=True)
    shape = (rows, blocks * GGML_TYPES[type_id].block_size)
    ours = quants.dequantize(raw, type_id, shape)
    if blocks:
        ref = _gguf_dequantize(raw.reshape(-1), type_id, shape)
        assert_same_floats(ours, ref, _name(type_id))
        picked = [rows - 1, 0]
        rows_only = quants.dequantize_rows(raw, type_id, shape, picked)
        assert_same_floats(rows_only, ours[picked], "rows")
    else:
        assert ours.shape == shape


# ---------------------------------------------------------------------------------------
# Quantization
# ---------------------------------------------------------------------------------------


def gguf_with_c_signed_zeros(x: np.ndarray, ref: np.ndarray, type_id: int) -> np.ndarray:
    """gguf-py's bytes, with its one known divergence from the C put back: the sign of a
    zero scale / minimum, which numpy's reductions pick differently from the C loops.

    Q4_0/Q5_0, all-zero block: the C's `max` starts at +0.0f and no zero replaces it, so
    d = +0.0 / -8 = -0.0 (fp16 0x8000); gguf-py's argmax picks the block's first zero,
    giving d = +0.0 when that zero is -0.0.
    Q4_1/Q5_1, block whose minimum is zero: the C keeps the first zero it meets (`v < min`),
    so m = -0.0 if that one is -0.0; np.min may return either zero.
    Only those sign bits differ (test_quantize_matches_c checks the C on the same inputs).
    """
    name, t = _name(type_id), GGML_TYPES[type_id]
    if name not in ("Q4_0", "Q5_0", "Q4_1", "Q5_1"):
        return ref
    xb = x.reshape(-1, t.block_size)
    blocks = ref.reshape(-1, t.type_size).copy()
    c_sign: object
    if name in ("Q4_0", "Q5_0"):
        rows, field, c_sign = np.all(xb == 0, axis=1), slice(0, 2), 0x8000
    else:
        first_min = xb[np.arange(xb.shape[0]), np.argmin(xb, axis=1)]
        rows, field = first_min == 0, slice(2, 4)
        c_sign = np.where(np.signbit(first_min), 0x8000, 0)[rows]
    bits = blocks[rows, field].copy().view("<u2").reshape(-1)
    assert np.all((bits == 0) | (bits == 0x8000)), bits  # a zero of some sign, nothing else
    c_bits = np.broadcast_to(np.asarray(c_sign, dtype="<u2"), bits.shape).copy()
    blocks[rows, field] = c_bits.view(np.uint8).reshape(-1, 2)
    return blocks.reshape(-1)


@pytest.mark.parametrize("type_id, case, x", _case_params(QUANT_VS_GGUF))
def test_quantize_matches_gguf(type_id: int, case: str, x: np.ndarray) -> None:
    ours = quants.quantize(x, type_id)
    with np.errstate(all="ignore"):
        ref = gguf_with_c_signed_zeros(x, _gguf_quantize(x, type_id), type_id)
    assert_same_bytes(ours, ref, type_id, f"{_name(type_id)}/{case} vs gguf-py")


@pytest.mark.llamacpp
@pytest.mark.parametrize("type_id, case, x", _case_params(C_QUANT))
def test_quantize_matches_c(ggml_c: GgmlC, type_id: int, case: str, x: np.ndarray) -> None:
    ours = quants.quantize(x, type_id)
    assert_same_bytes(ours, ggml_c.quantize(x, type_id), type_id, f"{_name(type_id)}/{case} vs C")


@pytest.mark.llamacpp
def test_float_conversions_match_c_on_random_bits(ggml_c: GgmlC) -> None:
    """fp32 -> fp16 / bf16 on 200k random bit patterns (NaNs, infs, subnormals included)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    assert np.isnan(x).sum() > 100  # the NaN path is exercised
    f16 = ggml_c.row("ggml_fp32_to_fp16_row", x, np.uint16)
    assert_same_bytes(quants.quantize(x, T["F16"]), f16, T["F16"], "F16 vs C")
    bf16 = ggml_c.row("ggml_fp32_to_bf16_row_ref", x, np.uint16)
    assert_same_bytes(quants.quantize(x, T["BF16"]), bf16, T["BF16"], "BF16 vs C")


finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)


@st.composite
def float_rows(draw: st.DrawFn, block: int) -> np.ndarray:
    rows = draw(st.integers(1, 3))
    k = block * draw(st.integers(1, 2))
    scale = draw(st.sampled_from([1.0, 1e-20, 1e20, 1e-39]))
    x = draw(hnp.arrays(np.float32, (rows, k), elements=finite_f32))
    with np.errstate(over="ignore"):
        return (x * np.float32(scale)).astype(np.float32)


@HYP
@given(data=st.data(), type_id=st.sampled_from(QUANT_VS_GGUF))
def test_property_quantize_matches_gguf(data: st.DataObject, type_id: int) -> None:
    x = data.draw(float_rows(GGML_TYPES[type_id].block_size))
    with np.errstate(all="ignore"):
        ref = gguf_with_c_signed_zeros(x, _gguf_quantize(x, type_id), type_id)
    assert_same_bytes(quants.quantize(x, type_id), ref, type_id, _name(type_id))


@pytest.mark.llamacpp
@HYP
@given(data=st.data(), type_id=st.sampled_from(C_QUANT))
def test_property_quantize_matches_c(ggml_c: GgmlC, data: st.DataObject, type_id: int) -> None:
    x = data.draw(float_rows(GGML_TYPES[type_id].block_size))
    ref = ggml_c.quantize(x, type_id)
    assert_same_bytes(quants.quantize(x, type_id), ref, type_id, _name(type_id))


# (code range, half-steps of error at worst): Q4_0/Q5_0 clamp their top code, so the block's
# extreme of the opposite sign is off by one whole step; the others round to nearest.
STEPS = {
    "Q8_0": (127, 0.5),
    "Q4_0": (8, 1.0),
    "Q5_0": (16, 1.0),
    "Q4_1": (15, 0.5),
    "Q5_1": (31, 0.5),
}
APPROXIMATING = sorted(set(QUANT_VS_GGUF) - {T["TQ1_0"], T["TQ2_0"]})
ULP = {"F32": 0.0, "F16": 2.0**-11, "BF16": 2.0**-8}  # half an ulp, relative


@HYP
@given(data=st.data(), type_id=st.sampled_from(APPROXIMATING))
def test_property_quantize_then_dequantize_error_bound(data: st.DataObject, type_id: int) -> None:
    """|dequantize(quantize(x)) - x| stays within the bound derived from the format:
    step * half_steps + (fp16 rounding of d, 2**-11 relative or 2**-25 absolute for
    subnormal halves) * the largest code + the fp16 rounding of m for Q4_1/Q5_1 (+ 1e-6
    relative for float32 arithmetic). Ternary types do not approximate arbitrary values."""
    name = _name(type_id)
    bs = GGML_TYPES[type_id].block_size
    x = data.draw(hnp.arrays(np.float32, (2, 2 * bs), elements=st.floats(-100, 100, width=32)))
    y = quants.dequantize(quants.quantize(x, type_id), type_id, x.shape)
    err = np.abs(y.astype(np.float64) - x)
    if name in ULP:
        assert np.all(err <= np.abs(x) * ULP[name] + 2.0**-25)
        return
    blocks = x.reshape(-1, bs).astype(np.float64)
    qmax, half_steps = STEPS[name]
    if name.endswith("_1"):
        lo = blocks.min(axis=1)
        step = (blocks.max(axis=1) - lo) / qmax
        m_err = np.abs(lo) * 2.0**-11 + 2.0**-25
    else:
        step = np.abs(blocks).max(axis=1) / qmax
        m_err = 0.0
    d_err = step * 2.0**-11 + 2.0**-25
    bound = step * half_steps + qmax * d_err + m_err + np.abs(blocks).max(axis=1) * 1e-6
    worst = (err.reshape(-1, bs).max(axis=1) / bound).max()
    # measured: worst error / bound = 0.983 (Q5_1) .. 0.996 (Q5_0) over 12800 random blocks
    # per type at magnitudes 1e-6..1e2; the bound is tight and never exceeded
    assert worst <= 1.0, worst


# ---------------------------------------------------------------------------------------
# k-quant quantizers (scale searches): many blocks against the C, and their quality order
# ---------------------------------------------------------------------------------------

K_QUANTS = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]


def _k_quant_inputs() -> Dict[str, np.ndarray]:
    """Weight-like (rows, 256k) inputs with many blocks each: the searches in
    make_qkx2_quants / make_qx_quants / make_q3_quants take different branches on
    Gaussian, heavy-tailed, one-signed, sparse and per-row-rescaled data."""
    rng = np.random.default_rng(21)
    g = rng.standard_normal((64, 1024)).astype(np.float32)
    sparse = np.where(rng.random((16, 1024)) < 0.9, 0, g[:16]).astype(np.float32)
    return {
        "gaussian": g * np.float32(0.02),
        "student-t3": rng.standard_t(3, (64, 1024)).astype(np.float32),
        "one-signed": np.abs(g[:16]) + np.float32(0.5),
        "sparse": sparse,
        "row-scales": (g * 10.0 ** rng.integers(-8, 8, size=(64, 1))).astype(np.float32),
    }


@pytest.mark.llamacpp
@pytest.mark.parametrize("name", K_QUANTS)
def test_k_quant_many_blocks_match_c(ggml_c: GgmlC, name: str) -> None:
    """Every block identical to quantize_row_*_K_ref (the quantizer llama_model_quantize
    runs without an imatrix); 6656 blocks per type. libggml-base is built for baseline
    x86-64 (SSE, no FMA contraction: its disassembly has no vfmadd), so its float32
    arithmetic is mirrored exactly and no block may differ."""
    type_id = T[name]
    for case, x in _k_quant_inputs().items():
        assert_same_bytes(quants.quantize(x, type_id), ggml_c.quantize(x, type_id), type_id,
                          f"{name}/{case} vs C")


def test_k_quant_error_ordering() -> None:
    """More bits, less error: relative RMS round-trip error on N(0, 1) weights falls from
    Q2_K to Q6_K, and Q4_K beats Q4_0 (its scale search pays off)."""
    x = np.random.default_rng(4).standard_normal((64, 1024)).astype(np.float32)

    def rel_rmse(name: str) -> float:
        y = quants.dequantize(quants.quantize(x, T[name]), T[name], x.shape)
        return float(np.sqrt(np.mean((y - x) ** 2) / np.mean(x**2)))

    err = {n: rel_rmse(n) for n in K_QUANTS + ["Q4_0", "Q8_0"]}
    print("relative RMS error:", {k: round(v, 4) for k, v in err.items()})
    # measured: Q2_K 0.295, Q3_K 0.150, Q4_K 0.071, Q5_K 0.036, Q6_K 0.0177, Q4_0 0.086,
    # Q8_0 0.0053; the absolute bounds leave ~20% over those
    assert err["Q2_K"] > err["Q3_K"] > err["Q4_K"] > err["Q5_K"] > err["Q6_K"] > err["Q8_0"]
    assert err["Q4_K"] < err["Q4_0"]
    assert err["Q6_K"] < 0.022 and err["Q4_K"] < 0.085 and err["Q2_K"] < 0.35


# ---------------------------------------------------------------------------------------
# llama.cpp's model quantizer, end to end
# ---------------------------------------------------------------------------------------

FTYPES = {  # llama_ftype -> the type its big 2-D tensors get
    "Q4_0": 2,
    "Q4_1": 3,
    "Q8_0": 7,
    "Q5_0": 8,
    "Q5_1": 9,
    "BF16": 32,
    "TQ1_0": 36,
    "TQ2_0": 37,
}


@pytest.fixture(scope="module")
def f32_llama(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Dict[str, np.ndarray]]:
    """A tiny 1-layer llama-arch F32 GGUF (written with gguf.GGUFWriter) and its weights."""
    rng = np.random.default_rng(11)
    n_embd, n_ff, n_vocab = 256, 512, 64
    shapes = {
        "token_embd.weight": (n_vocab, n_embd),
        "blk.0.attn_norm.weight": (n_embd,),
        "blk.0.attn_q.weight": (n_embd, n_embd),
        "blk.0.attn_k.weight": (n_embd, n_embd),
        "blk.0.attn_v.weight": (n_embd, n_embd),
        "blk.0.attn_output.weight": (n_embd, n_embd),
        "blk.0.ffn_norm.weight": (n_embd,),
        "blk.0.ffn_gate.weight": (n_ff, n_embd),
        "blk.0.ffn_up.weight": (n_ff, n_embd),
        "blk.0.ffn_down.weight": (n_embd, n_ff),
        "output_norm.weight": (n_embd,),
        "output.weight": (n_vocab, n_embd),
    }
    path = tmp_path_factory.mktemp("llamaq") / "f32.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // 2)
    w.add_file_type(0)
    weights = {}
    for i, (name, shape) in enumerate(shapes.items()):
        a = rng.standard_normal(shape).astype(np.float32)
        if i % 3 == 1 and len(shape) == 2:  # some rows with exact ties and zeros
            a[: shape[0] // 4] = (rng.integers(-16, 17, size=a[: shape[0] // 4].shape) / 2)
            a[: shape[0] // 8, :] = 0
        weights[name] = a
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, weights


@pytest.mark.llamacpp
@pytest.mark.parametrize("target", list(FTYPES))
def test_llama_model_quantize_blocks_match(
    f32_llama: Tuple[Path, Dict[str, np.ndarray]], tmp_path: Path, target: str
) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from bitnet.gguf import load

    src, weights = f32_llama
    dst = tmp_path / f"{target}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[target]
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    assert rc == 0, f"llama_model_quantize -> {rc}"
    gf = load(dst)
    compared = 0
    for name, info in gf.tensors.items():
        raw = gf.tensor_bytes(name)
        if info.type_id == T[target]:
            assert_same_bytes(quants.quantize(weights[name], info.type_id), raw, info.type_id,
                              f"{name} as {target}")
            compared += 1
        # whatever llama.cpp chose (Q6_K, Q4_K, F32 for some tensors): dequantize like gguf-py
        ours = quants.dequantize(raw, info.type_id, info.np_shape)
        assert_same_floats(ours, _gguf_dequantize(raw, info.type_id, info.np_shape), name)
    assert compared >= 7, f"only {compared} tensors were quantized to {target}"


# ---------------------------------------------------------------------------------------
# Activation quantization
# ---------------------------------------------------------------------------------------


@pytest.mark.llamacpp
@pytest.mark.parametrize(
    "case, x", [pytest.param(c, x, id=c) for c, x in adversarial_cases(T["Q8_K"])]
)
def test_q8_k_activations_match_c(ggml_c: GgmlC, case: str, x: np.ndarray) -> None:
    """quantize_activations_q8_k (and the Q8_K block type) vs quantize_row_q8_K_ref."""
    ref = ggml_c.quantize(x, T["Q8_K"])
    assert_same_bytes(quants.quantize(x, T["Q8_K"]), ref, T["Q8_K"], f"Q8_K/{case}")
    q, d = quants.quantize_activations_q8_k(x)
    blocks = ref.reshape(-1, GGML_TYPES[T["Q8_K"]].type_size)
    d_bits = blocks[:, :4].copy().view("<u4").reshape(-1)
    assert np.array_equal(d.reshape(-1).view(np.uint32), d_bits)
    assert np.array_equal(q.reshape(-1, 256), blocks[:, 4:260].view(np.int8))
    assert q.shape == x.shape and d.shape == x.shape[:-1] + (x.shape[-1] // 256,)


def test_i8_per_token_known_answers() -> None:
    """Row [127, -63.5, 0.5, 1.5, 2.5, -200]: max|x| = 200, scale = (float)(127/200) =
    0.635f; x * scale = 80.645, -40.3225, 0.3175, 0.9525, 1.5875, -127 -> q = 81, -40, 0,
    1, 2, -127.  Row [0.5, 1.5, -0.5, 2.5, 127, 0]: scale = 1, exact ties: nearest_int
    rounds half to even (0, 2, -0, 2), the older round() away from zero (1, 2, -1, 3).
    Row of zeros: max|x| floors at 1e-5, scale = 12700000, q = 0."""
    x = np.array(
        [[127, -63.5, 0.5, 1.5, 2.5, -200], [0.5, 1.5, -0.5, 2.5, 127, 0], [0, 0, 0, 0, 0, 0]],
        dtype=np.float32,
    )
    q, s = quants.quantize_activations_i8_per_token(x)
    assert s.dtype == np.float32
    assert s.tolist() == [np.float32(127 / 200), 1.0, np.float32(127 / 1e-5)]
    assert q.dtype == np.int8
    assert q.tolist() == [[81, -40, 0, 1, 2, -127], [0, 2, 0, 2, 127, 0], [0] * 6]
    q_away, _ = quants.quantize_activations_i8_per_token(x, ties="away")
    assert q_away[1].tolist() == [1, 2, -1, 3, 127, 0]
    with pytest.raises(ValueError, match="ties"):
        quants.quantize_activations_i8_per_token(x, ties="up")


@HYP
@given(x=hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 64)),
                    elements=st.floats(-1e4, 1e4, width=32)))
def test_property_i8_per_token(x: np.ndarray) -> None:
    """|q - x * scale| <= 1/2 (the C rounds the float32 product), |q| <= 127."""
    q, s = quants.quantize_activations_i8_per_token(x)
    prod = x * s[:, None]
    assert np.all(np.abs(q.astype(np.float32) - prod) <= 0.5)
    assert np.abs(q.astype(np.int32)).max() <= 127


# ---------------------------------------------------------------------------------------
# I2_S (bitnet.cpp)
# ---------------------------------------------------------------------------------------


def test_i2_s_layout_hand_built() -> None:
    """Two rows of 128 weights -> 64 packed bytes, then a 32-byte tail whose first 4
    bytes are the float32 scale 0.5.

    Row 0 (block 0), byte 0 = 0b10_01_00_10: bits 7:6 = 2 -> weight 0 = +1 * 0.5;
    bits 5:4 = 1 -> weight 32 = 0; bits 3:2 = 0 -> weight 64 = -0.5; bits 1:0 = 2 ->
    weight 96 = +0.5. Byte 31 = 0b00_00_00_00 -> weights 31, 63, 95, 127 = -0.5.
    Every other byte 0b01_01_01_01 -> 0. Row 1 (block 1) byte 5 = 0b01_10_01_00 ->
    weight 32 + 5 = 37 of row 1 is +0.5 and weight 96 + 5 = 101 is -0.5. Code 3
    (byte 7 of row 1 = 0b11_01_01_01) -> weight 7 = (3 - 1) * 0.5 = 1.0.
    The 28 tail bytes after the scale are padding and ignored.
    """
    packed = np.full(64, 0b01010101, dtype=np.uint8)
    packed[0] = 0b10010010
    packed[31] = 0b00000000
    packed[32 + 5] = 0b01100100
    packed[32 + 7] = 0b11010101
    tail = np.full(32, 0xAB, dtype=np.uint8)
    tail[:4] = np.frombuffer(np.float32(0.5).tobytes(), dtype=np.uint8)
    data = np.concatenate([packed, tail])

    expected = np.zeros((2, 128), dtype=np.float32)
    expected[0, [0, 96]] = 0.5
    expected[0, [64, 31, 63, 95, 127]] = -0.5
    expected[1, 37] = 0.5
    expected[1, 101] = -0.5
    expected[1, 7] = 1.0
    got = quants.dequantize(data, I2_S, (2, 128))
    assert got.dtype == np.float32
    assert np.array_equal(got, expected)
    assert np.array_equal(quants.dequantize_rows(data, I2_S, (2, 128), [1]), expected[[1]])
    assert quants.row_nbytes(I2_S, 128) == 32


def test_i2_s_quantize_hand_built() -> None:
    """bitnet.cpp quantize_i2_s on one block: scale = max|w| = 2.0 (even though the
    weights are not all +-2: it is a sign quantizer); |w| < 1e-6 -> code 1;
    w > 0 -> 2; w < 0 -> 0. Weights 0, 32, 64, 96 = 2.0, -1e-7, -0.25, 5e-7 pack into
    byte 0 as 2 << 6 | 1 << 4 | 0 << 2 | 1 = 0b10010001; all others are 0 -> 0b01010101."""
    w = np.zeros(128, dtype=np.float32)
    w[[0, 32, 64, 96]] = [2.0, -1e-7, -0.25, 5e-7]
    got = quants.quantize(w, I2_S)
    assert got.size == 128 // 4 + 32
    assert got[0] == 0b10010001
    assert np.all(got[1:32] == 0b01010101)
    assert got[32:36].view("<f4")[0] == np.float32(2.0)
    assert np.all(got[36:] == 0)


@HYP
@given(
    rows=st.integers(1, 3),
    blocks=st.integers(1, 3),
    scale=st.floats(1e-5, 1e6),  # I2_S stores |w| < 1e-6 as 0
    seed=st.integers(0, 2**32 - 1),
)
def test_i2_s_round_trip_ternary(rows: int, blocks: int, scale: float, seed: int) -> None:
    """Ternary weights s * {-1, 0, +1} (|s| >= 1e-6) survive quantize -> dequantize exactly."""
    rng = np.random.default_rng(seed)
    t = rng.integers(-1, 2, size=(rows, 128 * blocks)).astype(np.float32)
    t.flat[rng.integers(t.size)] = 1.0  # max|W| is s
    w = t * np.float32(scale)
    data = quants.quantize(w, I2_S)
    assert data.size == w.size // 4 + 32
    assert np.array_equal(quants.dequantize(data, I2_S, w.shape), w)


def test_i2_s_tq2_0_conversion_bound() -> None:
    """Ternary weights converted I2_S -> TQ2_0 -> I2_S differ only by TQ2_0's fp16 scale.

    TQ2_0 stores d = fp16(max|block|) = fp16(s), so every nonzero weight becomes
    fp16(s) * t; round to nearest even keeps |fp16(s) - s| <= 2**-11 * s for s in the
    normal fp16 range (scales here: 1e-4 .. 6e4). Measured over these 200 scales: max
    relative difference 4.63e-4; the asserted bound is the theoretical 2**-11 = 4.88e-4.
    """
    rng = np.random.default_rng(3)
    worst = 0.0
    for s in np.exp(rng.uniform(np.log(1e-4), np.log(6e4), size=200)).astype(np.float32):
        t = rng.integers(-1, 2, size=(4, 512)).astype(np.float32)
        t[:, ::256] = 1.0  # every 256-block holds +-s, so each TQ2_0 d is fp16(s)
        w = quants.dequantize(quants.quantize(t * s, I2_S), I2_S, t.shape)
        via_tq2 = quants.dequantize(quants.quantize(w, T["TQ2_0"]), T["TQ2_0"], t.shape)
        codes_equal = np.array_equal(np.sign(via_tq2), t)
        assert codes_equal
        back = quants.dequantize(quants.quantize(via_tq2, I2_S), I2_S, t.shape)
        assert np.array_equal(back, via_tq2)  # I2_S takes TQ2_0's values exactly
        rel = np.abs(via_tq2 - w)[t != 0] / np.float32(s)
        worst = max(worst, float(rel.max()))
    assert worst <= 2**-11, worst


def test_i2_s_matches_the_c_loop_transliterated() -> None:
    """quantize_i2_s's scalar loops (microsoft/BitNet src/ggml-bitnet-mad.cpp), written out
    element by element, against the vectorized quantizer on arbitrary floats."""
    rng = np.random.default_rng(9)
    src = (rng.standard_normal(3 * 256) * rng.choice([1e-7, 1.0], size=3 * 256)).astype(np.float32)
    src[5] = np.nan
    n = src.size
    mx = 0.0
    for v in src:
        mx = float(np.fmax(mx, abs(float(v))))
    q8 = [1 if abs(float(v)) < 1e-6 else (2 if float(v) * mx > 0 else 0) for v in src]
    dst = bytearray(n // 4)
    for i in range(n // 128):
        for j in range(128):
            dst[i * 32 + j % 32] |= (q8[i * 128 + j] << (6 - 2 * (j // 32))) & 0xFF
    expected = bytes(dst) + np.float32(mx).tobytes() + bytes(28)
    assert quants.quantize(src.reshape(3, 256), I2_S).tobytes() == expected


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


def test_errors_carry_the_numbers() -> None:
    raw = np.zeros(100, dtype=np.uint8)
    with pytest.raises(GGUFError, match=r"needs 108 bytes, got 100"):
        quants.dequantize(raw, T["Q4_0"], (3, 64))
    with pytest.raises(GGUFError, match=r"multiple of 32 weights, got ne0=33"):
        quants.dequantize(raw, T["Q4_0"], (33,))
    i2_s_msg = r"needs 64 bytes \(n/4 packed \+ 32 for the scale\), got 100"
    with pytest.raises(GGUFError, match=i2_s_msg):
        quants.dequantize(raw, I2_S, (128,))
    with pytest.raises(ValueError, match=r"multiple of 256 weights, got shape \(2, 100\)"):
        quants.quantize(np.zeros((2, 100), np.float32), T["TQ2_0"])
    with pytest.raises(ValueError, match=r"multiple of 256"):
        quants.quantize_activations_q8_k(np.zeros((1, 100), np.float32))
    with pytest.raises(IndexError, match="out of range"):
        quants.dequantize_rows(np.zeros(18 * 2, np.uint8), T["Q4_0"], (2, 32), [2])


@pytest.mark.parametrize(
    "type_id, needle",
    [(99, "unknown ggml type 99"), (4, "Q4_2"), (T["IQ2_XXS"], "IQ2_XXS"), (T["MXFP4"], "MXFP4")],
)
def test_unsupported_dequant_names_the_type(type_id: int, needle: str) -> None:
    with pytest.raises(UnsupportedError, match=needle) as err:
        quants.dequantize(np.zeros(64, np.uint8), type_id, (32,))
    assert "supported: F32" in str(err.value) and "I2_S" in str(err.value)


def test_unsupported_quant_names_the_supported_ones() -> None:
    with pytest.raises(UnsupportedError, match=r"quantization of IQ2_XXS \(type 16\)") as err:
        quants.quantize(np.zeros(256, np.float32), T["IQ2_XXS"])
    for name in "Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q6_K TQ1_0 TQ2_0 I2_S".split():
        assert name in str(err.value)


def test_accepts_any_buffer_view() -> None:
    """GGUF readers hand out uint8 views, float32 arrays (gguf-py's F32) or bytes."""
    x = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
    raw = quants.quantize(x, T["Q8_0"])
    expected = quants.dequantize(raw, T["Q8_0"], x.shape)
    assert np.array_equal(quants.dequantize(raw.tobytes(), T["Q8_0"], x.shape), expected)
    assert np.array_equal(quants.dequantize(x, T["F32"], x.shape), x)
    assert quants.dequantize(np.zeros(0, np.uint8), T["Q4_0"], (0, 32)).shape == (0, 32)

