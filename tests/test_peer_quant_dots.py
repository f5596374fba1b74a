"""`bitnet.numerics`' matmul orders against llama.cpp's own kernels, bit for bit.

Per op: a one-node ggml graph, ggml_mul_mat(W, x), computed by llama-cpp-python's bundled
libggml-cpu through ctypes (`tests/ggml_oracle.py`: the weight in the CPU buffer, or in the
CPU_REPACK buffer as llama.cpp loads model weights; the CPU backend at 1 or 2 threads), so
that llama.cpp itself picks the kernel -- vec_dot, llamafile's tinyBLAS, the tiled K-quant
matmul, repack.cpp's GEMV / GEMM -- and `bitnet.numerics.quantized_matmul` /
`float_matmul` must give the same float32 bits for every weight type, over
test-backend-ops-like shapes: a single row (decode) and batches around each kernel's
threshold (2, 4, 8 rows), short and multi-block rows, output counts with and without the
repack / tinyBLAS divisibility.

Per model: synthetic llama / bitnet models of every type, evaluated on llama.cpp's
schedule (the prompt in one batch, then one token per eval): every logit equal.

Run only where PeerBackend claims bit-exactness (`emulates_llamacpp_build`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import numpy as np
import pytest

from bitnet import quants
from bitnet.ggml_types import QK_K, GGMLType
from bitnet.model import Model
from bitnet.numerics import PeerBackend, emulates_llamacpp_build, kernel_name, plain_weights
from bitnet.numerics.codes import weight_codes
from bitnet.numerics.matmul import float_matmul, quantized_matmul
from bitnet.ops import QTensor

from .ggml_oracle import GgmlOracle

pytestmark = pytest.mark.llamacpp

@pytest.fixture(scope="module")
def ggml() -> GgmlOracle:
    llama_cpp = pytest.importorskip("llama_cpp")
    if not emulates_llamacpp_build(llama_cpp.llama_print_system_info().decode()):
        pytest.skip("PeerBackend is bit-exact only for llama.cpp's x86 AVX-512 CPU build")
    return GgmlOracle()


# ---------------------------------------------------------------------------------------
# per op


def _weight(type_name: str, n: int, d: int, seed: int) -> QTensor:
    """An (n, d) weight of `type_name`, quantized by bitnet.quants from gaussian rows of
    varied magnitude (ternary {-1, 0, 1} rows for the TQ types)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, d)).astype(np.float32) * np.float32(10.0) ** rng.uniform(-2, 1, (n, 1))
    if type_name.startswith("TQ"):
        w = np.round(np.clip(w / np.abs(w).mean(), -1, 1)) * np.float32(0.03)
    tid = GGMLType[type_name]
    if tid == GGMLType.F16:
        raw = w.astype(np.float16).view(np.uint8).reshape(-1)
    elif tid == GGMLType.F32:
        raw = w.astype(np.float32).view(np.uint8).reshape(-1)
    else:
        raw = quants.quantize(w.astype(np.float32), tid)
    return QTensor(name="w", type_id=tid, shape=(d, n), data=raw)


def _activations(t: int, d: int, seed: int) -> np.ndarray:
    """(t, d) activations: gaussian, with outliers, one all-zero 256-block in row 0 and a
    row of exact integers (quantization ties)."""
    rng = np.random.default_rng(seed + 1000)
    x = rng.standard_normal((t, d)).astype(np.float32)
    x[:, ::37] *= np.float32(40.0)
    x[0, : min(d, QK_K)] = 0.0
    if t > 2:
        x[2] = rng.integers(-254, 255, d).astype(np.float32) / np.float32(2.0)
    return x


BLOCK32 = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]
BLOCK256 = ["Q4_K", "Q5_K", "Q6_K", "TQ1_0", "TQ2_0"]
ROWS = [1, 2, 3, 4, 5, 7, 8, 9, 17]  # decode; tinyBLAS >= 2; GEMM >= 4; tiled >= 8; > 16


def _cases() -> Iterator[Tuple[str, int, int]]:
    """(type, n, d): rows of one block and of several; n with and without n % 8 == 0 (the
    repack condition) and n % 4 (tinyBLAS's for F16 / F32); float rows with d % 64
    leftovers (16- and 8-wide parts and a scalar remainder) and d % 16 != 0 (vec_dot only)."""
    for t in BLOCK32:
        yield from ((t, n, d) for n, d in ((16, 32), (40, 96), (13, 544)))
    for t in BLOCK256:
        yield from ((t, n, d) for n, d in ((16, 256), (40, 768), (13, 512)))
    for t in ("F16", "F32"):
        yield from ((t, n, d) for n, d in ((16, 64), (12, 80), (13, 144), (16, 40), (8, 100), (16, 7)))


@pytest.mark.parametrize("type_name,n,d", list(_cases()))
def test_matmul_bits_equal_llamacpp(ggml: GgmlOracle, type_name: str, n: int, d: int) -> None:
    # Measured: every element equal for every case below (F16 / F32 through tinyBLAS and
    # vec_dot_f16 / _f32; the 32-blocks through vec_dot / tinyBLAS_Q0 / q4_0_8x8; the K-quants
    # through vec_dot, the tiled matmul and q4_K_8x8's GEMV and GEMM; the ternary types).
    w = _weight(type_name, n, d, seed=n * 1000 + d)
    for rows in ROWS:
        x = _activations(rows, d, seed=rows)
        for repack in ((False, True) if type_name in ("Q4_0", "Q4_K") and n % 8 == 0 else (False,)):
            ref = ggml.mul_mat(w.data, w.type_id, n, d, x, repack=repack, n_threads=2 if rows % 2 else 1)
            if w.type_id in (GGMLType.F16, GGMLType.F32):
                wf = quants.dequantize(w.data, w.type_id, (n, d))
                ours = float_matmul(wf, x, f16=w.type_id == GGMLType.F16)
            else:
                ours = quantized_matmul(weight_codes(w), x, repack=repack)
            kernel = kernel_name(w.type_id, n, d, rows, repack=repack)
            assert np.array_equal(ours, ref), (kernel, rows, int((ours != ref).sum()))


# ---------------------------------------------------------------------------------------
# whole models


def _llamacpp_logits(path: Path, prompts: List[bytes], n_gen: int) -> Any:
    from bitnet_harness.differential import llama_cases

    return llama_cases(path, prompts, n_gen=n_gen)


def _peer_logits(path: Path, cases: Any, plain: Any = frozenset()) -> List[np.ndarray]:
    from bitnet_harness.differential import scheduled_forced

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Model.load(path, backend=PeerBackend(plain=plain))
    return scheduled_forced(model, "peer-exact", cases)


# "Hello world" (3 tokens with BOS), 12 and 15 tokens: vec_dot / GEMV, GEMM, tiled prompts
PROMPTS = [b"Hello world", b"1, 2, 3, 4, 5,", b"The quick brown fox jumps over the lazy dog."]
QUICK_KINDS = ["llama-q4_0", "llama-q4_k", "llama-q6_k", "bitnet-tq2_0"]
SLOW_KINDS = ["llama-f16", "llama-q8_0", "llama-q4_1", "llama-q5_0", "llama-q5_1", "llama-q5_k",
              "bitnet-tq1_0"]


@pytest.mark.parametrize("kind", QUICK_KINDS + [pytest.param(k, marks=pytest.mark.slow) for k in SLOW_KINDS])
def test_synthetic_model_logits_identical(ggml: GgmlOracle, kind: str) -> None:
    # Measured: every logit of 3 prompts (3, 12, 15 tokens) + 6 greedy tokens equal to
    # llama.cpp's, for every kind; ~2-5 s per kind.
    from bitnet_harness.synthetic import synthetic_path

    path = synthetic_path(kind)
    cases = _llamacpp_logits(path, PROMPTS, n_gen=6)
    for c, ours in zip(cases, _peer_logits(path, cases)):
        differing = np.nonzero((ours != c.ref).any(-1))[0]
        assert differing.size == 0, (kind, c.prompt, differing)


def test_i2s_gets_tq2_0_bits(ggml: GgmlOracle) -> None:
    """I2_S has no llama.cpp kernel; PeerBackend gives it TQ2_0's treatment (Q8_K
    activations, TQ2_0's lanes and float order), so the synthetic I2_S model, whose
    ternary weights and scales are those of the TQ2_0 one, must give llama.cpp's TQ2_0
    logits bit for bit. Measured: equal at every position."""
    from bitnet_harness.synthetic import synthetic_path

    cases = _llamacpp_logits(synthetic_path("bitnet-tq2_0"), PROMPTS[1:], n_gen=4)
    for c, ours in zip(cases, _peer_logits(synthetic_path("bitnet-i2_s"), cases)):
        assert np.array_equal(ours, c.ref), (c.prompt, np.nonzero((ours != c.ref).any(-1))[0])


def test_tied_embedding_buffers(ggml: GgmlOracle, tmp_path: Path) -> None:
    """A repackable token embedding used as the output matrix: the bitnet arch multiplies
    token_embd from llama.cpp's plain buffer (`plain_weights("bitnet")`), the llama arch
    a duplicated, repacked copy. Measured: equal logits with the right `plain`, 7-20
    differing positions of 7-21 with the wrong one."""
    from bitnet.gguf import load
    from bitnet.gguf.writer import write_gguf
    from bitnet.tools.quantize import quantize_file
    from bitnet_harness.synthetic import synthetic_path

    bitnet_q4k = tmp_path / "bitnet-tq2_0-q4_k-embd.gguf"
    quantize_file(synthetic_path("bitnet-tq2_0"), bitnet_q4k, "TQ2_0", embeddings_type="Q4_K")
    gf = load(synthetic_path("llama-q4_k"))
    llama_tied = tmp_path / "llama-q4_k-tied.gguf"
    write_gguf(llama_tied, dict(gf.raw_kv), dict(gf.kv_types),
               [(t.name, t.shape, t.type_id, gf.tensor_bytes(t.name)) for t in gf.tensors.values()
                if t.name != "output.weight"], gf.alignment)
    for path, arch in ((bitnet_q4k, "bitnet"), (llama_tied, "llama")):
        cases = _llamacpp_logits(path, PROMPTS[1:], n_gen=2)
        for right in (True, False):
            plain = plain_weights(arch) if right else {"token_embd.weight"} - set(plain_weights(arch))
            same = [bool(np.array_equal(o, c.ref)) for o, c in zip(_peer_logits(path, cases, plain), cases)]
            assert same == [right] * len(cases), (arch, sorted(plain), same)
