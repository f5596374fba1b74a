"""The ternary types: TQ1_0, TQ2_0 (llama.cpp) and I2_S (bitnet.cpp: one float32 scale per
tensor, after all the packed 2-bit codes, so it overrides the tensor-level methods)."""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from bitnet.ggml_types import (
    I2_S_SCALE_BYTES,
    QK_K,
    GGMLType,
)
from bitnet.quants.base import BlockType, Buffer, register
from bitnet.quants.conversions import (
    fp16_bytes,
    fp16_to_fp32,
    inverse,
    roundf,
)


def _ternary_codes(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The shared head of quantize_row_tq{1,2}_0_ref: d = max|x| per block, and
    codes xi = lroundf(x * (1/d)) + 1 in {0, 1, 2}. Returns (d (n, 1), xi (n, 256) int32)."""
    d = np.abs(x).max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        r = roundf(x * inverse(d))
    # lroundf of NaN (0 * inf when d is subnormal, or an inf weight): x86-64 glibc returns
    # LONG_MIN, and `int xi = LONG_MIN + 1` keeps the low 32 bits: 1.
    xi = np.where(np.isfinite(r), r + 1, 1).astype(np.int32)
    return d, xi


_POW3 = np.array([1, 3, 9, 27, 81, 243], dtype=np.uint8)


@register(GGMLType.TQ1_0)
class TQ1_0(BlockType):
    """block_tq1_0 {uint8 qs[48]; uint8 qh[4]; half d}: 5 trits per byte (4 in qh), stored
    as ceil(value * 256 / 243) so that trit n is ((uint8)(byte * 3**n) * 3) >> 8.
    dequantize_row_tq1_0 / quantize_row_tq1_0_ref; w = (trit - 1) * d.

    Weights 0..159: qs[m] for m < 32 holds weights m + 32n (n = 0..4, most significant first);
    weights 160..239: qs[32 + m] (m < 16) holds 160 + m + 16n;
    weights 240..255: qh[j] holds 240 + j + 4n (n = 0..3), then one more * 3.
    """

    fields = (("qs", 48), ("qh", 4), ("d", 2))
    can_quantize = True

    @staticmethod
    def _trits(packed: np.ndarray, n_trits: int) -> np.ndarray:
        """(n, k) bytes -> (n, n_trits, k): trit t of byte b is ((uint8)(b * 3**t) * 3) >> 8."""
        q = packed[:, None, :] * _POW3[None, :n_trits, None]  # uint8 multiply wraps mod 256
        return ((q.astype(np.uint16) * 3) >> 8).astype(np.int8)

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        n = blocks.shape[0]
        qs, qh, d = cls.split(blocks)
        t = np.concatenate(
            [
                cls._trits(qs[:, :32], 5).reshape(n, 160),
                cls._trits(qs[:, 32:], 5).reshape(n, 80),
                cls._trits(qh, 4).reshape(n, 16),
            ],
            axis=-1,
        )
        return (t - np.int8(1)).astype(np.float32) * fp16_to_fp32(d)

    @staticmethod
    def _pack(xi: np.ndarray, width: int, n_trits: int, extra_shift: bool) -> np.ndarray:
        """(n, n_trits * width) codes -> (n, width) bytes; byte m packs xi[m + width * t],
        t = 0 first (most significant trit)."""
        n = xi.shape[0]
        q = np.zeros((n, width), dtype=np.int32)
        for t in range(n_trits):
            q = (q * 3 + xi[:, t * width : (t + 1) * width]) & 0xFF  # uint8_t q arithmetic
        if extra_shift:
            q = (q * 3) & 0xFF  # "shift the first value to the most significant trit"
        return ((q * 256 + (243 - 1)) // 243).astype(np.uint8)  # ceiling division

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        d, xi = _ternary_codes(x)
        qs0 = cls._pack(xi[:, :160], 32, 5, False)
        qs1 = cls._pack(xi[:, 160:240], 16, 5, False)
        qh = cls._pack(xi[:, 240:], 4, 4, True)
        return np.concatenate([qs0, qs1, qh, fp16_bytes(d)], axis=-1)


@register(GGMLType.TQ2_0)
class TQ2_0(BlockType):
    """block_tq2_0 {uint8 qs[64]; half d}: byte 32c + m (c = 0, 1; m < 32) holds weights
    128c + m + 32n (n = 0..3) in bits 2n+1:2n; w = (code - 1) * d.
    dequantize_row_tq2_0 / quantize_row_tq2_0_ref."""

    fields = (("qs", QK_K // 4), ("d", 2))
    can_quantize = True

    @classmethod
    def dequantize_blocks(cls, blocks: np.ndarray) -> np.ndarray:
        n = blocks.shape[0]
        qs, d = cls.split(blocks)
        shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]
        q = (qs.reshape(n, 2, 1, 32) >> shifts) & 3  # (n, c, n-th pair, m)
        q = q.reshape(n, QK_K).astype(np.int8) - np.int8(1)
        return q.astype(np.float32) * fp16_to_fp32(d)

    @classmethod
    def quantize_blocks(cls, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        d, xi = _ternary_codes(x)
        q = (xi & 3).reshape(n, 2, 4, 32) << np.array([0, 2, 4, 6])[None, None, :, None]
        qs = q.sum(axis=2).astype(np.uint8).reshape(n, QK_K // 4)
        return np.concatenate([qs, fp16_bytes(d)], axis=-1)


I2_S_ZERO_THRESHOLD = 1e-6  # bitnet.cpp: |w| < 1e-6 is stored as 0


@register(GGMLType.I2_S)
class I2_S(BlockType):
    """bitnet.cpp's I2_S: 2-bit codes 0/1/2 = -1/0/+1, blocks of 128 weights in 32 bytes,
    byte b of a block holds weights b, b + 32, b + 64, b + 96 in bits 7:6, 5:4, 3:2, 1:0
    (the reverse of TQ2_0's order); ONE float32 scale for the whole tensor, in the first 4
    of 32 bytes after all the packed data (tensor bytes = n/4 + 32). w = scale * (code - 1).

    Mirrors `quantize_i2_s` (microsoft/BitNet src/ggml-bitnet-mad.cpp, x86 / ACT_PARALLEL
    layout): scale = max|W| over the tensor (in double, stored as float32); each weight
    with |w| < 1e-6 gets code 1 (zero), others code 2 if w > 0 else 0. The weights are
    expected to be ternary already (BitNet b1.58 checkpoints store {-s, 0, +s}); this
    is a sign quantizer, not an absmean one. Code 3 is never written; as bitnet.cpp's dot
    kernel computes sum(code * y) - sum(y), it counts as +2 here too.

    FIXME(layout variants): bitnet.cpp's ARM build packs 64-weight blocks (byte b holds
    b, b+16, b+32, b+48) and some x86 builds without ACT_PARALLEL interleave 4 rows per
    byte; the GGUF type id is 36 for all of them and nothing in the file says which. This
    class reads the 128-block x86 layout that the published GGUF files use.
    """

    fields = (("qs", 32),)  # + the per-tensor float32 scale after all blocks
    size_note = f" (n/4 packed + {I2_S_SCALE_BYTES} for the scale)"
    can_quantize = True

    @classmethod
    def codes(cls, packed: np.ndarray) -> np.ndarray:
        """(n_blocks, 32) bytes -> (n_blocks, 128) codes 0..3."""
        n = packed.shape[0]
        shifts = np.array([6, 4, 2, 0], dtype=np.uint8)[None, :, None]
        return ((packed.reshape(n, 1, 32) >> shifts) & 3).reshape(n, 128)

    @classmethod
    def pack(cls, codes: np.ndarray) -> np.ndarray:
        """(n_blocks, 128) codes -> (n_blocks, 32) bytes."""
        c = codes.astype(np.uint8).reshape(-1, 4, 32)
        return (c[:, 0] << 6) | (c[:, 1] << 4) | (c[:, 2] << 2) | c[:, 3]

    @classmethod
    def dequantize_tensor(cls, data: Buffer, shape: Sequence[int]) -> np.ndarray:
        buf, n, _ = cls.checked_bytes(data, shape)
        scale = np.float32(buf[n // 4 : n // 4 + 4].view("<f4")[0])
        codes = cls.codes(buf[: n // 4].reshape(-1, 32))
        q = (codes.astype(np.int8) - np.int8(1)).astype(np.float32)
        with np.errstate(invalid="ignore"):
            return (scale * q).reshape(tuple(shape))

    @classmethod
    def quantize_tensor(cls, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 0 or x.shape[-1] % 128 != 0:
            raise ValueError(
                f"I2_S quantizes rows of a multiple of 128 weights, got shape {x.shape}"
            )
        w = x.reshape(-1).astype(np.float64)
        scale = float(np.fmax.reduce(np.abs(w), initial=0.0))  # fmax: NaN ignored, as in C
        with np.errstate(invalid="ignore"):
            codes = np.where(np.abs(w) < I2_S_ZERO_THRESHOLD, 1, np.where(w * scale > 0, 2, 0))
        tail = np.zeros(I2_S_SCALE_BYTES, dtype=np.uint8)
        tail[:4] = np.array([scale], dtype="<f4").view(np.uint8)
        return np.concatenate([cls.pack(codes.reshape(-1, 128)).reshape(-1), tail])

    @classmethod
    def row_nbytes(cls, ne0: int) -> int:
        return ne0 // 4

    @classmethod
    def gather_rows(cls, buf: np.ndarray, n: int, ne0: int, idx: np.ndarray) -> np.ndarray:
        """Picked rows' packed bytes followed by this tensor's 32-byte scale tail."""
        packed = buf[: n // 4].reshape(n // ne0, ne0 // 4)[idx].reshape(-1)
        return np.concatenate([packed, buf[n // 4 :]])
