"""llama.cpp's float arithmetic, operation by operation ("peer-exact" numerics).

`PeerBackend` is a `bitnet.ops.Backend` that reproduces what llama.cpp 0.3.36 (as shipped
in llama-cpp-python: CPU backend, x86-64 AVX-512 build, default context = no flash
attention, F16 KV cache) computes for a llama-family graph, down to the float32 rounding
of each step, so that our logits are the peer's bits rather than a neighbour of them:

    model = Model.load(path, backend=PeerBackend())
    ctx = Context(model, kv_type="f16")   # the default for this backend

Why it matters: the peer quantizes every matmul input to 8 bits (Q8_0 / Q8_1 blocks). A
one-ulp difference anywhere upstream moves some activation across a rounding boundary,
and that step (up to 1/127 of a block's range) is then amplified layer by layer. On
SmolLM2-135M Q4_1 every plain numpy op agrees with llama.cpp's to NMSE ~1e-14 when fed
llama.cpp's own inputs, yet the whole model differs by NMSE ~2e-3; with this backend the
logits are bit-identical, and putting back any ONE plain op (matmul summation order,
RMSNorm, RoPE, softmax, SwiGLU or the attention sums) brings NMSE back to 1.2e-3..1.7e-3.
Note that llama.cpp's results depend on its batching: evaluate on its schedule (a prompt
in one batch, then one token per eval) to get its bits.

What llama.cpp does, and where (vendor/llama.cpp/ggml/src/ggml-cpu/ in the sdist):
- RMSNorm (ops.cpp ggml_compute_forward_rms_norm_f32): squares in float32, summed in
  order in double (ggml_float), mean rounded to float32, scale = 1.0f/sqrtf(mean + eps),
  y = (x * scale) * w in float32.
- RoPE (ops.cpp ggml_rope_cache_init / rope_yarn / rotate_pairs): theta_scale =
  powf(base, -2.0f/n_dims); theta starts at the position and is multiplied by theta_scale
  in float32 per pair; cos/sin are libm's cosf/sinf; the rotation is compiled with FMA
  contraction (GCC's default -ffp-contract=fast): fma(x0, cos, -(x1*sin)) and
  fma(x0, sin, x1*cos).
- KQ and KQV (ggml-cpu.c ggml_compute_forward_mul_mat): Q and the softmax probabilities
  are rounded to F16 (the F16 cache's vec_dot_type). With 2+ query rows the product is
  llamafile's tinyBLAS (sgemm.cpp): 16 float32 lanes accumulating along the row, then
  _mm512_reduce_add_ps; with 1 row it is ggml_vec_dot_f16 (vec.cpp): 4 x 16 lanes over
  steps of 64, the 4 registers added pairwise, then the same lane reduction. F16 weight
  matmuls are summed the same way.
- softmax (ops.cpp ggml_compute_forward_soft_max_f32, vec.cpp ggml_vec_soft_max_f32):
  x*scale + mask, max, ggml_v_expf (a polynomial, not libm's expf) per 16 lanes, each
  16-lane group reduced in float32 and summed in double, then multiplied by
  (float)(1.0/sum).
- SwiGLU (vec.cpp ggml_vec_swiglu_f32): x / (1 + ggml_v_expf(-x)) * g in float32.
- Quantized matmuls (arch/x86/quants.c): activations quantized by the SIMD
  quantize_row_q8_0 / q8_1 (127/amax, round half to even); per 32-block 8 integer lanes
  of 4 products, acc = fma(dw*dx, lanes, acc) block after block, hsum_float_8, plus
  (Q4_1) the float32 sum of m*s. llama.cpp's AVX-512 build runs this AVX2 code for Q4_1
  and Q8_0 (and tinyBLAS_Q0 sums batched Q8_0 the same way). `int8_block_matmul` does it
  in numpy; when `bitnet_kernels` is built its AVX2 variant gives the same bits faster
  (its AVX-512 variant sums in another order), so matmuls then run with BITNET_ISA=avx2
  while this backend calls them (an environment switch: not for concurrent use with other
  optimized backends in other threads).

K and V are rounded to F16 here whatever the cache dtype. llama.cpp's KV view is padded
to 256 cells whose masked entries add exact zeros, so padding ours to 64 gives the same
sums. Verified bit for bit per op and per layer against tensors dumped from llama.cpp
through its eval callback (tests/test_peer_numerics.py), and on whole sequences
(tests/test_reference_engine.py). Measured bit-identical on SmolLM2 Q4_1 and the synthetic
llama F16 / Q8_0 / Q4_1 files; close but not identical for Q4_0 (llama.cpp repacks Q4_0
weights into its CPU_REPACK q4_0_8x8 layout, whose GEMV/GEMM kernels in repack.cpp sum in
another order) and TQ1_0 / TQ2_0 (Q8_K dots), NMSE <= 2e-5. Not
emulated: flash attention, ARM / AVX2-only builds of llama.cpp (other lane widths), YaRN
and rope frequency factors (the parent's RoPE runs), ALiBi, soft-capping.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from bitnet.ggml_types import GGMLType, tensor_nbytes
from bitnet.ops import ROPE_NEOX, ROPE_NORMAL, NumpyBackend, QTensor, RopeParams

__all__ = [
    "PeerBackend", "emulates_llamacpp_build", "f16_dot", "int8_block_matmul", "peer_backend_available",
    "quantize_q8_simd", "reduce_add_16", "v_expf",
]

_F32 = np.float32

# --------------------------------------------------------------------------------------
# libm (cosf, sinf, powf as ggml calls them)


def _load_libm() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("m")
    try:
        lib = ctypes.CDLL(name or "libm.so.6")
    except OSError:
        return None
    for fn, nargs in (("cosf", 1), ("sinf", 1), ("powf", 2)):
        f = getattr(lib, fn)
        f.restype = ctypes.c_float
        f.argtypes = [ctypes.c_float] * nargs
    return lib


_libm = _load_libm()


def _cosf(x: float) -> float:
    return float(_libm.cosf(x)) if _libm is not None else float(np.float32(np.cos(np.float64(x))))


def _sinf(x: float) -> float:
    return float(_libm.sinf(x)) if _libm is not None else float(np.float32(np.sin(np.float64(x))))


def _powf(x: float, y: float) -> float:
    if _libm is not None:
        return float(_libm.powf(x, y))
    return float(np.float32(np.float64(x) ** np.float64(y)))


# --------------------------------------------------------------------------------------
# SIMD building blocks


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fused multiply-add: the product is exact in float64, one rounding of the sum
    to float64 and one to float32 (differs from a true fma only on double-rounding ties,
    ~2^-29 of cases)."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(_F32)


def reduce_add_16(v: np.ndarray) -> np.ndarray:
    """GCC's _mm512_reduce_add_ps over the last axis (16 lanes) in float32: halves added
    256-bit, 128-bit, then 64-bit and the last pair. (..., 16) -> (...)."""
    a = v[..., 8:16] + v[..., 0:8]
    b = a[..., 4:8] + a[..., 0:4]
    c = b[..., 2:4] + b[..., 0:2]
    return c[..., 1] + c[..., 0]


# ggml_v_expf's constants (vec.h, AVX-512 variant)
_EXP_R = _F32(float.fromhex("0x1.8p23"))
_EXP_LOG2E = _F32(float.fromhex("0x1.715476p+0"))
_EXP_LN2_HI = _F32(float.fromhex("0x1.62e4p-1"))
_EXP_LN2_LO = _F32(float.fromhex("0x1.7f7d1cp-20"))
_EXP_C = [_F32(float.fromhex(c)) for c in ("0x1.ffffecp-1", "0x1.fffdb6p-2", "0x1.555e66p-3",
                                           "0x1.573e2ep-5", "0x1.0e4020p-7")]


def v_expf(x: np.ndarray) -> np.ndarray:
    """ggml_v_expf (AVX-512): exp(x) in float32 as llama.cpp's vector code computes it."""
    x = np.asarray(x, dtype=_F32)
    with np.errstate(invalid="ignore", over="ignore"):
        z = _fma(x, _EXP_LOG2E, _EXP_R)
        n = z - _EXP_R
        b = _fma(-n, _EXP_LN2_LO, _fma(-n, _EXP_LN2_HI, x))
        u = b * b
        c0, c1, c2, c3, c4 = _EXP_C
        j = _fma(_fma(_fma(c4, b, c3), u, _fma(c2, b, c1)), u, _fma(c0, b, _F32(1.0)))
        big = ~(np.abs(n) <= 192)  # also NaN n (x = -inf gives n = -inf: big, -> 0)
        n_int = np.where(big, 0, n).astype(np.int32)
        res = np.ldexp(j, n_int).astype(_F32)  # _mm512_scalef_ps(j, n)
        alt = np.where(n <= 0, _F32(0.0), _F32(np.inf)).astype(_F32)
    return np.where(big, alt, res)


def f16_dot(a: np.ndarray, b: np.ndarray, n_rows: int) -> np.ndarray:
    """Dot products along the last axis K of F16-valued operands (float32 arrays holding
    f16 values, same shape (..., K)) summed as llama.cpp's F16 matmul sums them.

    n_rows >= 2 and K % 16 == 0: llamafile's tinyBLAS (16 float32 lanes along K, then
    _mm512_reduce_add_ps). Otherwise ggml_vec_dot_f16: 4 x 16 lanes per step of 64, the 4
    registers added pairwise, the lane reduction, then the K % 64 leftovers one by one in
    double. A product of two f16 values is exact in float32, so each fma is one float32
    addition of the product. -> (...)."""
    prod = (a * b).astype(_F32)  # (..., K)
    lead = tuple(prod.shape[:-1])
    k = prod.shape[-1]
    if n_rows >= 2 and k % 16 == 0:
        lanes = prod.reshape(lead + (-1, 16))  # (..., K/16, 16)
        acc = lanes[..., 0, :].copy()
        for c in range(1, lanes.shape[-2]):
            acc += lanes[..., c, :]
        return reduce_add_16(acc)
    n_main = k - k % 64
    total = np.zeros(lead, dtype=np.float64)
    if n_main:
        steps = prod[..., :n_main].reshape(lead + (-1, 4, 16))  # (..., K/64, 4, 16)
        acc = steps[..., 0, :, :].copy()  # (..., 4, 16)
        for i in range(1, steps.shape[-3]):
            acc += steps[..., i, :, :]
        x0 = acc[..., 0, :] + acc[..., 2, :]
        x1 = acc[..., 1, :] + acc[..., 3, :]
        total += reduce_add_16(x0 + x1)
    for i in range(n_main, k):
        total += prod[..., i]
    return total.astype(_F32)


def _pad_rows(x: np.ndarray, axis: int, multiple: int) -> np.ndarray:
    """Zero-pad `axis` to a multiple of `multiple` (llama.cpp's KV view is 256-padded; the
    masked cells add exact zeros)."""
    n = x.shape[axis]
    padded = -(-n // multiple) * multiple
    if padded == n:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, padded - n)
    return np.pad(x, pad)


def quantize_q8_simd(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """llama.cpp's x86 quantize_row_q8_0 / quantize_row_q8_1 (the SIMD ones, not *_ref):
    per block of 32, d = amax/127, codes = round-half-even(x * (127/amax)), the scale and
    (Q8_1) d * sum(codes) stored as f16. x: (T, D) ->
    codes (T, D/32, 32) float32 integers, d (T, D/32) and s (T, D/32) as f16 values."""
    x = np.asarray(x, dtype=_F32)
    t, dim = x.shape
    blocks = x.reshape(t, dim // 32, 32)
    amax = np.max(np.abs(blocks), axis=-1)  # (T, nb)
    d = (amax / _F32(127.0)).astype(_F32)
    safe = np.where(amax != 0, amax, _F32(1.0))
    inv = np.where(amax != 0, _F32(127.0) / safe, _F32(0.0)).astype(_F32)
    codes = np.clip(np.rint(blocks * inv[..., None]), -128, 127).astype(_F32)
    d16 = d.astype(np.float16).astype(_F32)
    s16 = (d * codes.sum(-1)).astype(np.float16).astype(_F32)
    return codes, d16, s16


def _hsum_float_8(acc: np.ndarray) -> np.ndarray:
    """hsum_float_8 (arch/x86/quants.c) over the last axis (8 lanes) in float32."""
    r = acc[..., 4:8] + acc[..., 0:4]
    r2 = r[..., 0:2] + r[..., 2:4]
    return r2[..., 0] + r2[..., 1]


def _weight_codes(w: QTensor) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Q8_0 / Q4_1 weight blocks -> codes (N, nb, 32) uint8/int8, d (N, nb) and, for Q4_1,
    m (N, nb) as float32 (f16 values). Codes in element order (Q4_1: low nibbles are
    elements 0..15, high nibbles 16..31)."""
    n, dim = w.np_shape
    nb = dim // 32
    if w.type_id == GGMLType.Q8_0:
        raw = w.data.reshape(n, nb, 34)
        d = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(_F32)
        return raw[..., 2:].view(np.int8), d, None
    raw = w.data.reshape(n, nb, 20)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(_F32)
    m = raw[..., 2:4].copy().view(np.float16)[..., 0].astype(_F32)
    qs = raw[..., 4:20]
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1), d, m


def _well_formed(w: QTensor) -> bool:
    """A 2-D weight whose bytes match its shape (else the parent raises the typed error)."""
    if len(w.shape) != 2 or w.shape[0] % 32:
        return False
    return isinstance(w.data, np.ndarray) and w.data.size == tensor_nbytes(w.type_id, w.shape[0] * w.shape[1])


def int8_block_matmul(codes: Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]],
                      x: np.ndarray) -> np.ndarray:
    """ggml_vec_dot_q8_0_q8_0 / ggml_vec_dot_q4_1_q8_1 as llama.cpp's AVX2 code computes
    them (also what tinyBLAS_Q0 computes for batched Q8_0): x quantized by
    `quantize_q8_simd`; per block 8 integer lanes of 4 products, acc = fma(dw*dx, lane, acc)
    over the blocks in order, hsum_float_8, plus (Q4_1) the sum of m*s in float32.
    codes: `_weight_codes(w)` of a (N, D) weight; x: (T, D) -> (T, N)."""
    wq, dw, mw = codes
    n, nb = dw.shape
    xq, dx, sx = quantize_q8_simd(x)
    t = xq.shape[0]
    xl = xq.reshape(t, nb * 8, 4).transpose(1, 0, 2)  # (nb*8 lanes, T, 4)
    y = np.empty((t, n), dtype=_F32)
    step = max(1, (1 << 23) // max(1, nb * 8 * t))  # bound the (lanes, T, n) products
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        wl = wq[n0:n1].astype(_F32).reshape(n1 - n0, nb * 8, 4).transpose(1, 2, 0)  # (lanes, 4, n)
        lanes = np.matmul(xl, wl)  # (nb*8, T, n): small integers, exact in float32
        lanes = lanes.reshape(nb, 8, t, n1 - n0)
        acc = np.zeros((t, n1 - n0, 8), dtype=_F32)
        summs = np.zeros((t, n1 - n0), dtype=_F32)
        for b in range(nb):
            d0d1 = dx[:, b, None] * dw[None, n0:n1, b]  # (T, n), exact: two f16 values
            acc = _fma(d0d1[..., None], lanes[b].transpose(1, 2, 0), acc)
            if mw is not None:  # m*s of two f16 values is exact: fma or not, the same
                summs = summs + mw[None, n0:n1, b] * sx[:, b, None]
        y[:, n0:n1] = _hsum_float_8(acc) + summs if mw is not None else _hsum_float_8(acc)
    return y


@contextlib.contextmanager
def _isa(name: str) -> Iterator[None]:
    """Run `bitnet_kernels` kernels with BITNET_ISA=name for the duration."""
    old = os.environ.get("BITNET_ISA")
    os.environ["BITNET_ISA"] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("BITNET_ISA", None)
        else:
            os.environ["BITNET_ISA"] = old


def peer_backend_available() -> Tuple[bool, str]:
    """(True, "") when the C kernels can run the matmuls bit-exactly here (bitnet_kernels
    built, an AVX2-capable x86 CPU); else (False, why), and PeerBackend uses its numpy
    integer path: the same bits for Q4_1 / Q8_0, slower."""
    import bitnet_kernels as optimized

    if not optimized.available():
        return False, optimized.unavailable_reason()
    if "avx2" not in optimized.supported_isas():
        return False, f"CPU runs only {optimized.supported_isas()}; llama.cpp's x86 AVX2 dot products needed"
    return True, ""


class PeerBackend(NumpyBackend):
    """`bitnet.ops.Backend` with llama.cpp's CPU float arithmetic (see the module docstring).

    Matmuls: F16, Q4_1 and Q8_0 weights exactly as llama.cpp (C kernels when
    `peer_backend_available()` and use_c is not False, else numpy); other types through
    the "peer" activation rounding of the C / numpy backend (close, not bit-exact).
    use_c: None = when available, True = require the C kernels, False = numpy only.
    Pair it with an F16 KV cache: `Context(model, kv_type="f16")` (the default here).
    """

    # graphs.forward runs a backend's fused `forward_layers` instead of the per-op loop when
    # it has one; this backend's point is its per-op arithmetic, so it never has one
    forward_layers = None

    def __init__(self, *, n_threads: Optional[int] = None, use_c: Optional[bool] = None) -> None:
        super().__init__(activation_quant="peer")
        ok, self.fallback_reason = peer_backend_available()
        self._c: Optional[NumpyBackend] = None
        if use_c is None:
            use_c = ok
        elif use_c and not ok:
            raise RuntimeError(f"PeerBackend(use_c=True): {self.fallback_reason}")
        if use_c:
            from bitnet_kernels import OptimizedBackend

            self._c = OptimizedBackend(activation_quant="peer", n_threads=n_threads)
        self._rope_cache: Dict[Tuple[int, int, float, float, float], Tuple[np.ndarray, np.ndarray]] = {}
        # id(w) -> (w, _weight_codes(w)) for the numpy integer path
        self._codes: Dict[int, Tuple[QTensor, Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]] = {}

    # -- matmuls ------------------------------------------------------------------------

    def matmul(self, w: QTensor, x: np.ndarray) -> np.ndarray:
        """ggml_mul_mat(w, x) with llama.cpp's quantized activations. (N, D), (T, D) -> (T, N).

        F16 weights: x rounded to f16, summed as tinyBLAS / ggml_vec_dot_f16 (`f16_dot`)."""
        if w.type_id == GGMLType.F16:
            return self._matmul_f16(w, x)
        if self._c is not None:
            with _isa("avx2"):
                return self._c.matmul(w, x)
        if w.type_id in (GGMLType.Q4_1, GGMLType.Q8_0) and _well_formed(w):
            codes = self._codes.get(id(w))
            if codes is None:
                codes = (w, _weight_codes(w))
                self._codes[id(w)] = codes
            return int8_block_matmul(codes[1], x)
        return super().matmul(w, x)

    def _matmul_f16(self, w: QTensor, x: np.ndarray) -> np.ndarray:
        wf = self.weight(w)  # (N, D), exact f16 values
        x16 = np.asarray(x, dtype=_F32).astype(np.float16).astype(_F32)  # (T, D)
        t, n = x16.shape[0], wf.shape[0]
        y = np.empty((t, n), dtype=_F32)
        step = max(1, (1 << 22) // max(1, t * wf.shape[1]))  # bound the (T, n, D) products
        for n0 in range(0, n, step):
            a, b = np.broadcast_arrays(x16[:, None, :], wf[None, n0 : n0 + step, :])
            y[:, n0 : n0 + step] = f16_dot(a, b, t)
        return y

    def get_rows(self, w: QTensor, ids: np.ndarray) -> np.ndarray:
        """ggml_get_rows (dequantization is exact either way). (V, D), (T,) -> (T, D)."""
        if self._c is None:
            return super().get_rows(w, ids)
        return self._c.get_rows(w, ids)

    # -- elementwise and reductions -------------------------------------------------------

    def rms_norm(self, x: np.ndarray, weight: Optional[np.ndarray], eps: float) -> np.ndarray:
        """ggml_rms_norm (+ ggml_mul): sum of float32 squares in double, in order.
        x: (T, D); weight: (D,) -> (T, D)."""
        x = np.asarray(x, dtype=_F32)
        sq = (x * x).astype(np.float64)
        total = np.cumsum(sq, axis=-1)[..., -1:]  # sequential order, like the C loop
        mean = (total / x.shape[-1]).astype(_F32)
        scale = _F32(1.0) / np.sqrt(mean + _F32(eps))
        y = x * scale
        if weight is not None:
            y = y * np.asarray(weight, dtype=_F32)
        return y

    def _cos_sin(self, pos: int, p: RopeParams) -> Tuple[np.ndarray, np.ndarray]:
        """ggml_rope_cache_init for one position (no YaRN, no freq factors)."""
        key = (pos, p.n_dims, p.freq_base, p.freq_scale, p.attn_factor)
        hit = self._rope_cache.get(key)
        if hit is not None:
            return hit
        theta_scale = _F32(_powf(p.freq_base, float(_F32(-2.0) / _F32(p.n_dims))))
        theta = _F32(pos)
        fs, ms = _F32(p.freq_scale), _F32(p.attn_factor)
        cos = np.empty(p.n_dims // 2, dtype=_F32)
        sin = np.empty(p.n_dims // 2, dtype=_F32)
        for i in range(p.n_dims // 2):
            th = float(fs * theta)
            cos[i] = _F32(_cosf(th)) * ms
            sin[i] = _F32(_sinf(th)) * ms
            theta = _F32(theta * theta_scale)
        self._rope_cache[key] = (cos, sin)
        return cos, sin

    def rope(self, x: np.ndarray, positions: np.ndarray, p: RopeParams) -> np.ndarray:
        """ggml_rope_ext: float32 theta recurrence, libm cosf/sinf, FMA-contracted rotation.
        x: (T, H, d); positions: (T,) -> (T, H, d). YaRN / freq factors: the parent's."""
        if p.ext_factor != 0.0 or p.freq_factors is not None or p.mode not in (ROPE_NORMAL, ROPE_NEOX):
            return super().rope(x, positions, p)
        x = np.asarray(x, dtype=_F32)
        n = p.n_dims
        tabs = [self._cos_sin(int(q), p) for q in np.asarray(positions)]
        cos = np.stack([c for c, _ in tabs])[:, None, :]  # (T, 1, n/2)
        sin = np.stack([s for _, s in tabs])[:, None, :]
        y = x.copy()
        if p.mode == ROPE_NEOX:
            i0, i1 = slice(0, n // 2), slice(n // 2, n)
        else:
            i0, i1 = slice(0, n, 2), slice(1, n, 2)
        x0, x1 = x[..., i0], x[..., i1]
        y[..., i0] = _fma(x0, cos, -(x1 * sin))
        y[..., i1] = _fma(x0, sin, x1 * cos)
        return y

    def softmax(self, x: np.ndarray) -> np.ndarray:
        """ggml_vec_soft_max_f32 over the last axis (already scaled and masked; -inf =
        masked): ggml_v_expf, 16-lane float32 partial sums added in double, times
        (float)(1/sum). (..., K) -> (..., K)."""
        x = np.asarray(x, dtype=_F32)
        k = x.shape[-1]
        m = np.max(x, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, _F32(0.0)).astype(_F32)
        with np.errstate(invalid="ignore"):
            e = v_expf(x - m)
        e = np.where(np.isneginf(x), _F32(0.0), e).astype(_F32)
        ep = _pad_rows(e, -1, 16)
        parts = reduce_add_16(ep.reshape(tuple(ep.shape[:-1]) + (-1, 16))).astype(np.float64)
        total = np.cumsum(parts, axis=-1)[..., -1:]  # in order, in double
        inv = np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0).astype(_F32)
        y = (e * inv)[..., :k]
        return y

    def swiglu(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        """ggml_vec_swiglu_f32: gate / (1 + ggml_v_expf(-gate)) * up. (T, F) -> (T, F)."""
        g = np.asarray(gate, dtype=_F32)
        y = (g / (_F32(1.0) + v_expf(_F32(0.0) - g))) * np.asarray(up, dtype=_F32)
        return y

    # -- attention ---------------------------------------------------------------------

    def attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, q_pos: np.ndarray,
                  kv_pos: np.ndarray, scale: float) -> np.ndarray:
        """build_attn_mha without flash attention, F16 cache: kq = K·f16(q) (tinyBLAS or
        vec_dot_f16), softmax(kq*scale + mask), kqv = V·f16(p).
        q: (T, H, d); k, v: (K, Hkv, d) f16; q_pos: (T,); kv_pos: (K,) -> (T, H*d)."""
        t, h, d = q.shape
        hkv = k.shape[1]
        group = h // hkv
        q16 = np.asarray(q, dtype=_F32).astype(np.float16).astype(_F32)  # (T, H, d)
        k16 = np.asarray(k).astype(np.float16).astype(_F32)  # (K, Hkv, d)
        v16 = np.asarray(v).astype(np.float16).astype(_F32)
        visible = (kv_pos[None, :] >= 0) & (kv_pos[None, :] <= q_pos[:, None])  # (T, K)
        # llama.cpp's KV view is 256-padded; masked cells add exact zeros, so padding to 64
        # (whole tinyBLAS / vec_dot_f16 steps) gives the same sums for less work
        visible = _pad_rows(visible, 1, 64)
        kh = np.repeat(_pad_rows(k16, 0, 64), group, axis=1)  # (Kp, H, d)
        vh = np.repeat(_pad_rows(v16, 0, 64), group, axis=1)
        # (H, T, K, d) products, summed along d
        qa = q16.transpose(1, 0, 2)[:, :, None, :]  # (H, T, 1, d)
        ka = kh.transpose(1, 0, 2)[:, None, :, :]  # (H, 1, K, d)
        qa, ka = np.broadcast_arrays(qa, ka)
        kq = f16_dot(qa, ka, t)  # (H, T, Kp)
        scores = np.where(visible[None], kq * _F32(scale), _F32(-np.inf)).astype(_F32)
        probs = self.softmax(scores)  # (H, T, K)
        p16 = probs.astype(np.float16).astype(_F32)
        pa = p16[:, :, None, :]  # (H, T, 1, Kp)
        va = vh.transpose(1, 2, 0)[:, None, :, :]  # (H, 1, d, Kp)
        pa, va = np.broadcast_arrays(pa, va)
        kqv = f16_dot(pa, va, t)  # (H, T, d)
        return np.ascontiguousarray(kqv.transpose(1, 0, 2)).reshape(t, h * d).astype(_F32)


def emulates_llamacpp_build(system_info: str) -> bool:
    """True when the llama.cpp CPU build described by `system_info` (the text of
    llama_print_system_info()) runs the code paths this backend reproduces bit for bit:
    x86 AVX-512 (16-lane ggml_v_expf, tinyBLAS and vec_dot_f16), no AMX tiles, no
    AVX512-FP16 arithmetic."""
    if "AVX512 = 1" not in system_info or "AMX_INT8 = 1" in system_info:
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            if "avx512_fp16" in f.read():
                return False
    except OSError:
        pass
    return True
