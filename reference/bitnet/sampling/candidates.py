"""llama_token_data_array and the helpers every sampler shares (src/llama-sampler.cpp): its
bucket pre-sort (llama_token_data_array_partial_sort), softmax, top-k and temperature."""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from bitnet.errors import InferenceError
from bitnet.sampling.glibc import INT_MIN, expf
from bitnet.sampling.libstdcxx import std_partial_sort_desc, std_sort_desc

f32 = np.float32


# llama_token_data_array_partial_sort's bucket constants, computed in float as in C
_NBUCKETS = 128
_BUCKET_SCALE = f32(_NBUCKETS) / (f32(10.0) - f32(-10.0))
_BUCKET_INTER = -f32(-10.0) * _BUCKET_SCALE


def _bucket_index(keys: np.ndarray) -> np.ndarray:
    """int(bucket_scale * logit + bucket_inter) clamped to [0, 127], x86 conversion rules."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = (keys * _BUCKET_SCALE).astype(np.float32) + _BUCKET_INTER
        bad = ~np.isfinite(t) | (t >= f32(2.0**31)) | (t < f32(-(2.0**31)))
        ib = np.where(bad, 0.0, np.trunc(t)).astype(np.int64)
    ib[bad] = INT_MIN  # subtle: +inf and logits above ~3.4e8 land in the LOWEST bucket
    return np.clip(ib, 0, _NBUCKETS - 1)


def bucket_partial_sort(keys: np.ndarray, npartial: int) -> np.ndarray:
    """llama_token_data_array_partial_sort: positions of its first `npartial` results.

    Logits are binned into 128 buckets over [-10, 10] (outliers clamped), the top buckets are
    std::sort-ed and the last one needed is std::partial_sort-ed, each in original order.
    """
    ib_of = _bucket_index(keys)
    histo = np.bincount(ib_of, minlength=_NBUCKETS)
    nhave = 0
    ib = _NBUCKETS - 1
    while ib >= 0:
        nhave += int(histo[ib])
        if nhave >= npartial:
            break
        ib -= 1
    # copy into buckets, highest first, each in original order
    sel = np.nonzero(ib_of >= ib)[0]
    res = sel[np.argsort(-ib_of[sel], kind="stable")]
    out: List[np.ndarray] = []
    start = 0
    ndone = 0
    for j in range(_NBUCKETS - 1, ib - 1, -1):
        cnt = int(histo[j])
        seg = res[start : start + cnt]
        if j > ib:
            out.append(seg[std_sort_desc(keys[seg])])
            ndone += cnt
        else:
            out.append(seg[std_partial_sort_desc(keys[seg], npartial - ndone)])
        start += cnt
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _partial_sort_inplace_perm(keys: np.ndarray, npartial: int) -> np.ndarray:
    """llama_token_data_array_partial_sort_inplace: positions of the kept top `npartial`."""
    if npartial <= 128:
        return std_partial_sort_desc(keys, npartial)
    return bucket_partial_sort(keys, npartial)[:npartial]


class TokenDataArray:
    """llama_token_data_array: candidate ids, logits and probabilities (all length `size`).

    ids: int32 [n], logits: float32 [n], p: float32 [n]; `selected` is an index into these
    arrays (-1 = none), `sorted` says the logits are in descending order.
    """

    def __init__(
        self,
        ids: np.ndarray,
        logits: np.ndarray,
        p: Optional[np.ndarray] = None,
        selected: int = -1,
        sorted: bool = False,
    ) -> None:
        self.ids = np.ascontiguousarray(ids, dtype=np.int32)
        self.logits = np.array(logits, dtype=np.float32)
        self.p = np.zeros(self.ids.shape[0], np.float32) if p is None else np.array(p, np.float32)
        if not (self.ids.ndim == 1 and self.ids.shape == self.logits.shape == self.p.shape):
            raise ValueError(
                f"ids, logits, p must be 1-D of one length, got {self.ids.shape}, "
                f"{self.logits.shape}, {self.p.shape}"
            )
        self.selected = selected
        self.sorted = sorted

    @classmethod
    def from_logits(cls, logits: np.ndarray) -> TokenDataArray:
        """Candidates for a whole vocabulary: ids 0..n-1, p = 0 (as llama_sampler_sample)."""
        logits = np.asarray(logits, dtype=np.float32).reshape(-1)
        return cls(np.arange(logits.shape[0], dtype=np.int32), logits)

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    def __len__(self) -> int:
        return self.size

    def take(self, perm: np.ndarray) -> None:
        """Keep the candidates at positions `perm`, in that order."""
        self.ids = self.ids[perm]
        self.logits = self.logits[perm]
        self.p = self.p[perm]

    def truncate(self, n: int) -> None:
        self.ids = self.ids[:n]
        self.logits = self.logits[:n]
        self.p = self.p[:n]

    def copy(self) -> TokenDataArray:
        return TokenDataArray(self.ids.copy(), self.logits, self.p, self.selected, self.sorted)

    def selected_token(self) -> int:
        if not 0 <= self.selected < self.size:
            raise InferenceError(f"no token selected (selected={self.selected}, size={self.size})")
        return int(self.ids[self.selected])

    def __repr__(self) -> str:
        return f"TokenDataArray(size={self.size}, selected={self.selected}, sorted={self.sorted})"


def sort_inplace(cur: TokenDataArray, npartial: int) -> None:
    cur.take(_partial_sort_inplace_perm(cur.logits, npartial))
    cur.sorted = True


def softmax(cur: TokenDataArray, do_sort: bool) -> None:
    """llama_sampler_softmax_impl: p = expf(logit - max) / (float sum in candidate order)."""
    if cur.size == 0:
        raise InferenceError("softmax of an empty candidate list (llama.cpp aborts here)")
    if do_sort and not cur.sorted:
        sort_inplace(cur, cur.size)
    max_l = cur.logits[0] if cur.sorted else np.max(cur.logits)
    with np.errstate(invalid="ignore", over="ignore"):
        e = expf(cur.logits - max_l)
        cur.p = e / np.cumsum(e, dtype=np.float32)[-1]


def top_k(cur: TokenDataArray, k: int) -> None:
    """llama_sampler_top_k_impl."""
    if k <= 0:
        return
    k = min(k, cur.size)
    if not cur.sorted:
        sort_inplace(cur, k)
    cur.truncate(k)


def apply_temp(cur: TokenDataArray, temp: float) -> None:
    """llama_sampler_temp_impl: divide by temp; temp <= 0 keeps only the first maximum."""
    if cur.size == 0:
        return
    if temp <= 0.0:
        keep = int(np.argmax(cur.logits))
        logits = np.full(cur.size, -np.inf, dtype=np.float32)
        logits[keep] = cur.logits[keep]
        cur.logits = logits
        return
    with np.errstate(over="ignore", invalid="ignore"):
        cur.logits = cur.logits / f32(temp)
