"""Flash attention in llama.cpp's float order (ggml_compute_forward_flash_attn_ext_f16).

llama.cpp 0.3.36, ggml/src/ggml-cpu/ops.cpp (x86 AVX-512 build), q F32, K and V of the cache
type (F16 or F32; V not transposed), the causal mask (0 or -inf; masked cells add nothing).
Which of three paths runs depends on the ubatch's T tokens, llama.cpp's KV view length
n_view (its n_kv: the used cells padded to 256, at most the cache size) and the op's thread
count nth (n_threads for one token):

- `_tiled` (T >= GGML_FA_TILE_Q = 64): per KV tile of 64 cells from cell 0:
  kq = simd_gemm(q, K) (q NOT rounded; per cell fma(k[i], q[i], acc) over i from 0),
  kq * scale (+ mask); a tile where the row sees nothing is skipped; Mnew = fmaxf(M, max kq);
  when Mnew > M: ms = expf(M - Mnew) (libm), acc *= ms, S *= ms; p = ggml_v_expf(kq - Mnew);
  S = (float)((double)S + tile sum), the tile sum the double sum of its four 16-lane
  _mm512_reduce_add_ps; acc = fma(v, p, acc) over the tile's cells in order (float32).
- `_one_chunk` (otherwise): q rounded to f16 (F16 cache); per visible cell in order
  s = ggml_vec_dot_f16(k, q) * scale; if s > M: ms = expf(M - s), M = s, acc = f16(acc * ms)
  (ggml_vec_scale_f16), vs = 1; else vs = expf(s - M), ms = 1; acc = f16(fma(v, vs, acc))
  (ggml_vec_mad_f16; F32 cache: float32, no rounding); S = fma(S, ms, vs) (contracted).
- split-KV (T == 1 and n_view >= 512): the _one_chunk loop per chunk of c = ceil(n_view / nth)
  cells (chunk j: cells [j c, (j+1) c)), giving (M_j, S_j, acc_j); then
  ggml_flash_attn_ext_reduce_partials in chunk order, skipping chunks with S_j == 0:
  Mn = fmaxf(M, M_j); so = expf(M - Mn); sn = expf(M_j - Mn);
  acc = fma(acc, so, acc_j * sn); S = fma(S, so, S_j * sn) (contracted); M = Mn.
  With nth == 1 this is _one_chunk's result bit for bit; it depends on the thread count.

All paths end with acc * (S == 0 ? 0 : 1.0f / S) (ggml_vec_scale_f32).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from bitnet.numerics.floatdot import float_dot
from bitnet.numerics.floats import expf, f16, fma, fma_chain, reduce_add_16, v_expf
from bitnet.ops import FlashAttn, kv_view, visible_cells

_F32 = np.float32
TILE_Q = 64  # GGML_FA_TILE_Q: queries per tile; the tiled path needs T >= it
TILE_KV = 64  # GGML_FA_TILE_KV: cells per tile
SPLIT_MIN_KV = 512  # the split-KV path: one query and a KV view of at least this many cells
__all__ = ["FlashAttn", "fa_path", "flash_attention", "kv_view"]


def fa_path(t: int, n_view: int) -> str:
    """The path ggml_compute_forward_flash_attn_ext_f16 takes: "split", "tiled" or "chunk"."""
    if t == 1 and n_view >= SPLIT_MIN_KV:
        return "split"
    return "tiled" if t >= TILE_Q else "chunk"


def _one_chunk(qv: np.ndarray, kh: np.ndarray, vh: np.ndarray, vis: np.ndarray, scale: np.float32,
               is_f16: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The online softmax of _one_chunk over the given cells for R query rows.
    qv: (R, d) (f16-rounded for an F16 cache); kh, vh: (R, C, d); vis: (R, C) bool.
    -> M (R,), S (R,), acc (R, d) float32."""
    r, c, d = kh.shape
    m = np.full(r, -np.inf, dtype=_F32)
    s_sum = np.zeros(r, dtype=_F32)
    acc = np.zeros((r, d), dtype=_F32)
    if c == 0:
        return m, s_sum, acc
    kq = float_dot(np.broadcast_to(qv[:, None, :], kh.shape), kh, tinyblas=False, f16=is_f16) * scale
    rnd = f16 if is_f16 else (lambda a: np.asarray(a, dtype=_F32))
    for ic in range(c):
        on = vis[:, ic]
        if not on.any():
            continue
        s = kq[:, ic]
        new = on & (s > m)
        with np.errstate(invalid="ignore"):
            ms = np.where(new, expf(np.where(new, m - s, _F32(0.0))), _F32(1.0)).astype(_F32)
            vs = np.where(new | ~on, _F32(1.0), expf(np.where(new | ~on, _F32(0.0), s - m))).astype(_F32)
        m = np.where(new, s, m).astype(_F32)
        scaled = rnd(acc * ms[:, None])
        acc = np.where(new[:, None], scaled, acc).astype(_F32)
        mad = rnd(fma(vh[:, ic], vs[:, None], acc))
        acc = np.where(on[:, None], mad, acc).astype(_F32)
        s_sum = np.where(on, fma(s_sum, ms, vs), s_sum).astype(_F32)
    return m, s_sum, acc


def _finish(acc: np.ndarray, s_sum: np.ndarray) -> np.ndarray:
    """acc * (S == 0 ? 0 : 1.0f/S) per row."""
    with np.errstate(divide="ignore"):
        inv = np.where(s_sum == 0, _F32(0.0), _F32(1.0) / np.where(s_sum == 0, _F32(1.0), s_sum)).astype(_F32)
    return (acc * inv[:, None]).astype(_F32)


def _split(qv: np.ndarray, kh: np.ndarray, vh: np.ndarray, vis: np.ndarray, scale: np.float32,
           is_f16: bool, fa: FlashAttn) -> np.ndarray:
    """The split-KV path: _one_chunk per chunk of cells, ggml_flash_attn_ext_reduce_partials."""
    r, k, d = kh.shape
    nth = max(1, fa.n_threads)
    chunk = -(-fa.n_view // nth)
    m = np.full(r, -np.inf, dtype=_F32)
    s_sum = np.zeros(r, dtype=_F32)
    acc = np.zeros((r, d), dtype=_F32)
    for j in range(nth):
        c0, c1 = j * chunk, min((j + 1) * chunk, fa.n_view, k)
        if j * chunk >= fa.n_view:
            continue
        mj, sj, aj = _one_chunk(qv, kh[:, c0:c1], vh[:, c0:c1], vis[:, c0:c1], scale, is_f16)
        use = sj != 0
        mn = np.maximum(m, mj).astype(_F32)
        with np.errstate(invalid="ignore"):
            so = expf(np.where(use, m - mn, _F32(0.0)))
            sn = expf(np.where(use, mj - mn, _F32(0.0)))
        acc = np.where(use[:, None], fma(acc, so[:, None], aj * sn[:, None]), acc).astype(_F32)
        s_sum = np.where(use, fma(s_sum, so, sj * sn), s_sum).astype(_F32)
        m = np.where(use, mn, m).astype(_F32)
    return _finish(acc, s_sum)


def _tiled(q: np.ndarray, kh: np.ndarray, vh: np.ndarray, vis: np.ndarray, scale: np.float32) -> np.ndarray:
    """The tiled path (see the module docstring). q: (R, d) float32."""
    r, k, d = kh.shape
    m = np.full(r, -np.inf, dtype=_F32)
    s_sum = np.zeros(r, dtype=_F32)
    acc = np.zeros((r, d), dtype=_F32)
    for ic in range(0, k, TILE_KV):
        n = min(TILE_KV, k - ic)
        tv = np.zeros((r, TILE_KV), dtype=bool)
        tv[:, :n] = vis[:, ic:ic + n]
        kt = np.zeros((r, TILE_KV, d), dtype=_F32)
        kt[:, :n] = kh[:, ic:ic + n]
        # (d, R, TILE) products summed over d in order from 0
        kq = fma_chain(np.moveaxis(np.broadcast_to(q[:, None, :], kt.shape), -1, 0), np.moveaxis(kt, -1, 0))
        kq = np.where(tv, kq * scale, _F32(-np.inf)).astype(_F32)
        tmax = kq.max(axis=1)
        live = tmax != -np.inf
        mn = np.where(live, np.maximum(m, tmax), m).astype(_F32)
        grow = live & (mn > m)
        with np.errstate(invalid="ignore"):
            ms = np.where(grow, expf(np.where(grow, m - mn, _F32(0.0))), _F32(1.0)).astype(_F32)
            p = v_expf(kq - np.where(live, mn, _F32(0.0))[:, None])
        p = np.where(tv & live[:, None], p, _F32(0.0)).astype(_F32)
        acc = np.where(grow[:, None], acc * ms[:, None], acc).astype(_F32)
        s_sum = np.where(grow, s_sum * ms, s_sum).astype(_F32)
        m = mn
        groups = reduce_add_16(p.reshape(r, TILE_KV // 16, 16)).astype(np.float64)
        tile_sum = ((groups[:, 0] + groups[:, 1]) + groups[:, 2]) + groups[:, 3]
        s_sum = np.where(live, (s_sum.astype(np.float64) + tile_sum).astype(_F32), s_sum).astype(_F32)
        for j in range(n):
            on = p[:, j] != 0
            if on.any():
                acc = np.where(on[:, None], fma(vh[:, ic + j], p[:, j:j + 1], acc), acc).astype(_F32)
    return _finish(acc, s_sum)


def flash_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, q_pos: np.ndarray, kv_pos: np.ndarray,
                    scale: float, fa: FlashAttn) -> np.ndarray:
    """ggml_flash_attn_ext as llama.cpp's CPU backend computes it (module docstring).
    q: (T, H, d) float32; k, v: (K, Hkv, d) f16 or f32 (the cache type); q_pos: (T,);
    kv_pos: (K,) or (T, K) (-1 = empty cell; `bitnet.ops.visible_cells`) -> (T, H*d) float32."""
    t, h, d = q.shape
    group = h // k.shape[1]
    is_f16 = k.dtype == np.float16
    q = np.asarray(q, dtype=_F32)
    # rows r = (t, h): the cells of their kv head
    kh = np.repeat(np.asarray(k, dtype=_F32), group, axis=1).transpose(1, 0, 2)  # (H, K, d)
    vh = np.repeat(np.asarray(v, dtype=_F32), group, axis=1).transpose(1, 0, 2)
    kh = np.broadcast_to(kh[None], (t,) + kh.shape).reshape(t * h, -1, d)
    vh = np.broadcast_to(vh[None], (t,) + vh.shape).reshape(t * h, -1, d)
    vis = visible_cells(np.asarray(q_pos), kv_pos)  # (T, K)
    vis = np.repeat(vis, h, axis=0)  # (T*H, K)
    qr = q.reshape(t * h, d)
    sc = _F32(scale)
    path = fa_path(t, fa.n_view)
    if path == "tiled":
        out = _tiled(qr, kh, vh, vis, sc)
    else:
        qv = f16(qr) if is_f16 else qr
        if path == "split":
            out = _split(qv, kh, vh, vis, sc, is_f16, fa)
        else:
            _, s_sum, acc = _one_chunk(qv, kh, vh, vis, sc, is_f16)
            out = _finish(acc, s_sum)
    return out.reshape(t, h * d)
