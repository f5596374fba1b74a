"""llama.cpp's sampler chain in numpy, token-for-token (src/llama-sampler.cpp).

Role: turn a logits vector into a token exactly as llama.cpp's CPU samplers do, so a seeded
generation picks the same tokens as llama.cpp / llama-cpp-python. A candidate list is a
`TokenDataArray` (mirror of `llama_token_data_array`); each sampler mutates it in place; a
`SamplerChain` runs them in order and `make_chain` builds the chain `Llama.sample()` builds.

Exactness, and how it is obtained:
- Order of equal logits. llama.cpp sorts with `std::partial_sort` / `std::sort` (and its own
  bucket pre-sort) and the order of ties depends on those algorithms. This module re-implements
  libstdc++'s introsort and heap selection (GCC 12, `bits/stl_algo.h`, `bits/stl_heap.h`) and
  uses them whenever ties could matter; when the values are distinct any correct sort gives the
  same result and numpy's is used.
- Float arithmetic. Sums run sequentially in the precision the C code uses (float, or double
  where it says double); `expf`, `logf`, `log2f`, `powf` and `exp` are glibc's (the functions
  libllama calls), reached through ctypes where numpy's own versions differ in the last bit.
- Randomness. `std::mt19937` seeded with the seed; `std::uniform_real_distribution` and
  `std::discrete_distribution` through libstdc++'s `generate_canonical` (two 32-bit draws per
  double, one per float).

llama.cpp's quirks are kept on purpose: its bucket pre-sort puts +inf and logits above ~3.4e8
in the lowest bucket (so a "sorted" array may not start with the maximum), temperature 0 keeps
only the first maximum, typical sampling turns NaN when a probability underflows to 0.

Limits: NaN logits are not a supported input (llama.cpp's own result is then arbitrary); the
GPU/"backend" sampling path, grammar, DRY, infill and adaptive-p samplers are not mirrored. On a
platform without glibc the math functions fall back to correctly rounded float64 results, which
differ from glibc's in the last bit (measured: expf 0.07%, logf 0.7%, log2f 0.6% of inputs).
Speed (128k vocab, one token, 2-core box): ~15 ms with top-k first (the default chain); a few
hundred ms when the whole vocabulary must be sorted (top_k=0, mirostat), most of it in the
pure-Python libstdc++ sort, which runs only on buckets that contain equal logits.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import math
import os
from collections import deque
from typing import Callable, Deque, Dict, List, Mapping, Optional, Sequence, SupportsFloat, Tuple

import numpy as np

from bitnet.errors import InferenceError

__all__ = [
    "LLAMA_DEFAULT_SEED",
    "MT19937",
    "TokenDataArray",
    "Sampler",
    "Greedy",
    "Dist",
    "TopK",
    "TopP",
    "MinP",
    "Typical",
    "Temp",
    "TempExt",
    "XTC",
    "TopNSigma",
    "Mirostat",
    "MirostatV2",
    "Penalties",
    "LogitBias",
    "Custom",
    "SamplerChain",
    "make_chain",
]

LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.h: "use a random seed"

f32 = np.float32
_INT_MIN = -(2**31)
_FLT_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------------------------------
# glibc math (libllama calls expf/logf/log2f/powf/exp from libm; numpy's versions differ)
# ---------------------------------------------------------------------------------------------


def _load_libm() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        for fn in ("expf", "logf", "log2f"):
            getattr(lib, fn).restype = ctypes.c_float
            getattr(lib, fn).argtypes = [ctypes.c_float]
        lib.powf.restype = ctypes.c_float
        lib.powf.argtypes = [ctypes.c_float, ctypes.c_float]
    except (OSError, AttributeError):
        return None
    return lib


_LIBM = _load_libm()


def _logf(x: SupportsFloat) -> np.float32:
    """glibc logf of a float32 scalar."""
    if _LIBM is None:
        return f32(np.log(np.float64(f32(x))))
    return f32(_LIBM.logf(float(x)))


def _log2f(x: SupportsFloat) -> np.float32:
    """glibc log2f of a float32 scalar."""
    if _LIBM is None:
        return f32(np.log2(np.float64(f32(x))))
    return f32(_LIBM.log2f(float(x)))


def _powf(x: SupportsFloat, y: SupportsFloat) -> np.float32:
    """glibc powf of float32 scalars."""
    if _LIBM is None:
        with np.errstate(all="ignore"):
            return f32(np.power(np.float64(f32(x)), np.float64(f32(y))))
    return f32(_LIBM.powf(float(x), float(y)))


def _logf_vec(x: np.ndarray) -> np.ndarray:
    """glibc logf over a float32 array (shape kept)."""
    if _LIBM is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x.astype(np.float64)).astype(np.float32)
    fn = _LIBM.logf
    return np.array([fn(v) for v in x.tolist()], dtype=np.float32).reshape(x.shape)


def _log2f_vec(x: np.ndarray) -> np.ndarray:
    """glibc log2f over a float32 array (shape kept)."""
    if _LIBM is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log2(x.astype(np.float64)).astype(np.float32)
    fn = _LIBM.log2f
    return np.array([fn(v) for v in x.tolist()], dtype=np.float32).reshape(x.shape)


def expf(x: np.ndarray) -> np.ndarray:
    """glibc expf over a float32 array, bit for bit.

    numpy's float64 exp rounded to float32 is the correctly rounded result; glibc's expf is
    within 1.7 * 2^-34 (relative) of exp before its final rounding, so the two can only differ
    when exp(x) lies near a float32 rounding midpoint. Those elements (a fraction of a percent),
    and the overflow/subnormal ranges, are recomputed with glibc itself.
    """
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        e64 = np.exp(x.astype(np.float64))
        r = e64.astype(np.float32)
        if _LIBM is None:
            return r
        r64 = r.astype(np.float64)
        lo = np.nextafter(r, f32(-np.inf)).astype(np.float64)
        hi = np.nextafter(r, f32(np.inf)).astype(np.float64)
        dist = np.minimum(np.abs(e64 - (r64 + lo) * 0.5), np.abs(e64 - (r64 + hi) * 0.5))
        hard = (dist <= np.abs(e64) * 2.0**-31) | (x > 88.0) | ((x < -87.0) & (x > -104.0))
    idx = np.nonzero(hard)[0]
    if idx.size:
        r = r.copy()
        r[idx] = [_LIBM.expf(v) for v in x[idx].tolist()]
    return r


def _exp(v: float) -> float:
    """glibc exp of a double (Python's math.exp), with C's overflow to +inf."""
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _cvtt(v: float) -> int:
    """C `int(v)` for a float on x86 (cvttss2si): truncation; NaN/out of range -> INT_MIN."""
    if not math.isfinite(v) or v >= 2.0**31 or v < -(2.0**31):
        return _INT_MIN
    return int(v)


# ---------------------------------------------------------------------------------------------
# std::mt19937 and libstdc++'s generate_canonical
# ---------------------------------------------------------------------------------------------


class MT19937:
    """std::mt19937(seed): the 32-bit Mersenne Twister (init_genrand seeding).

    The same word stream as numpy's legacy `np.random.RandomState(seed)`.
    """

    def __init__(self, seed: int) -> None:
        self.seed(seed)

    def seed(self, seed: int) -> None:
        mt = [seed & 0xFFFFFFFF]
        for i in range(1, 624):
            prev = mt[i - 1]
            mt.append((1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF)
        self._mt = mt
        self._index = 624

    def _twist(self) -> None:
        mt = self._mt
        for i in range(624):
            y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7FFFFFFF)
            v = mt[(i + 397) % 624] ^ (y >> 1)
            if y & 1:
                v ^= 0x9908B0DF
            mt[i] = v
        self._index = 0

    def next_u32(self) -> int:
        """Next raw 32-bit output (std::mt19937::operator())."""
        if self._index >= 624:
            self._twist()
        y = self._mt[self._index]
        self._index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y

    def canonical_double(self) -> float:
        """generate_canonical<double, 53>: (w1 + w2 * 2^32) / 2^64, kept below 1."""
        lo = float(self.next_u32())
        s = lo + float(self.next_u32()) * 4294967296.0  # subtle: one double rounding, as in C
        ret = s / 18446744073709551616.0
        if ret >= 1.0:
            ret = float(np.nextafter(1.0, 0.0))
        return ret

    def canonical_float(self) -> np.float32:
        """generate_canonical<float, 24>: float(w) / 2^32, kept below 1."""
        ret = f32(self.next_u32()) / f32(4294967296.0)
        if ret >= f32(1.0):
            ret = np.nextafter(f32(1.0), f32(0.0))
        return f32(ret)


def _rng_seed(seed: int) -> int:
    """get_rng_seed: LLAMA_DEFAULT_SEED means a fresh random seed."""
    seed &= 0xFFFFFFFF
    if seed == LLAMA_DEFAULT_SEED:
        return int.from_bytes(os.urandom(4), "little")
    return seed


def _discrete_sample(p: np.ndarray, rng: MT19937) -> int:
    """std::discrete_distribution<int>(p...)(rng) as libstdc++ does it (llama_sample_dist)."""
    if p.shape[0] < 2:
        return 0  # subtle: libstdc++ keeps no table for < 2 weights and draws nothing
    w = p.astype(np.float64)
    total = float(np.cumsum(w)[-1])  # std::accumulate: sequential double sum
    cp = np.cumsum(w / total)  # normalize, then std::partial_sum
    cp[-1] = 1.0
    u = rng.canonical_double()
    return int(np.searchsorted(cp, u, side="left"))  # std::lower_bound


# ---------------------------------------------------------------------------------------------
# libstdc++ sorting (GCC 12) on lists of item handles (ints). The comparator is always llama.cpp's
# `a.logit > b.logit`, i.e. comp(x, y) = k[x] > k[y] for a key list k (written inline for speed);
# an ascending sort (`a < b`) is the same sort on negated keys.
# ---------------------------------------------------------------------------------------------

Keys = List[float]
_S_THRESHOLD = 16


def _adjust_heap(a: List[int], first: int, hole: int, length: int, value: int, k: Keys) -> None:
    top = hole
    second = hole
    while second < (length - 1) // 2:
        second = 2 * (second + 1)
        if k[a[first + second]] > k[a[first + second - 1]]:
            second -= 1
        a[first + hole] = a[first + second]
        hole = second
    if (length & 1) == 0 and second == (length - 2) // 2:
        second = 2 * (second + 1)
        a[first + hole] = a[first + second - 1]
        hole = second - 1
    parent = (hole - 1) // 2  # only read when hole > top >= 0, where // equals C's /
    kv = k[value]
    while hole > top and k[a[first + parent]] > kv:
        a[first + hole] = a[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    a[first + hole] = value


def _make_heap(a: List[int], first: int, last: int, k: Keys) -> None:
    n = last - first
    if n < 2:
        return
    parent = (n - 2) // 2
    while True:
        _adjust_heap(a, first, parent, n, a[first + parent], k)
        if parent == 0:
            return
        parent -= 1


def _partial_sort(
    a: List[int],
    first: int,
    middle: int,
    last: int,
    k: Keys,
    candidates: Optional[Sequence[int]] = None,
) -> None:
    """std::__partial_sort = __heap_select + __sort_heap.

    `candidates` (optional) lists the positions in [middle, last) that may enter the heap, in
    order; positions left out must be ones for which `k[a[i]] > k[a[first]]` is never true
    (a pure speed-up: skipped positions are untouched by the C code too).
    """
    _make_heap(a, first, middle, k)
    length = middle - first
    for i in range(middle, last) if candidates is None else candidates:
        if k[a[i]] > k[a[first]]:
            value = a[i]
            a[i] = a[first]
            _adjust_heap(a, first, 0, length, value, k)
    end = middle
    while end - first > 1:
        end -= 1
        value = a[end]
        a[end] = a[first]
        _adjust_heap(a, first, 0, end - first, value, k)


def _unguarded_linear_insert(a: List[int], last: int, k: Keys) -> None:
    value = a[last]
    kv = k[value]
    nxt = last - 1
    while kv > k[a[nxt]]:
        a[last] = a[nxt]
        last = nxt
        nxt -= 1
    a[last] = value


def _insertion_sort(a: List[int], first: int, last: int, k: Keys) -> None:
    if first == last:
        return
    for i in range(first + 1, last):
        value = a[i]
        if k[value] > k[a[first]]:
            a[first + 1 : i + 1] = a[first:i]
            a[first] = value
        else:
            _unguarded_linear_insert(a, i, k)


def _introsort_loop(a: List[int], first: int, last: int, depth: int, k: Keys) -> None:
    while last - first > _S_THRESHOLD:
        if depth == 0:
            _partial_sort(a, first, last, last, k)
            return
        depth -= 1
        # __unguarded_partition_pivot: median of (first+1, mid, last-1) moved to first
        mid = first + (last - first) // 2
        x, y, z = first + 1, mid, last - 1
        if k[a[x]] > k[a[y]]:
            m = y if k[a[y]] > k[a[z]] else (z if k[a[x]] > k[a[z]] else x)
        elif k[a[x]] > k[a[z]]:
            m = x
        elif k[a[y]] > k[a[z]]:
            m = z
        else:
            m = y
        a[first], a[m] = a[m], a[first]
        # __unguarded_partition(first + 1, last, pivot=first); the pivot slot is never swapped
        kp = k[a[first]]
        lo, hi = first + 1, last
        while True:
            while k[a[lo]] > kp:
                lo += 1
            hi -= 1
            while kp > k[a[hi]]:
                hi -= 1
            if not lo < hi:
                break
            a[lo], a[hi] = a[hi], a[lo]
            lo += 1
        _introsort_loop(a, lo, last, depth, k)
        last = lo


def _cxx_sort(a: List[int], first: int, last: int, k: Keys) -> None:
    """std::sort(a + first, a + last, comp: k[x] > k[y]) as libstdc++ orders it, ties included."""
    n = last - first
    if n == 0:
        return
    _introsort_loop(a, first, last, 2 * (n.bit_length() - 1), k)
    if n > _S_THRESHOLD:
        _insertion_sort(a, first, first + _S_THRESHOLD, k)
        for i in range(first + _S_THRESHOLD, last):
            _unguarded_linear_insert(a, i, k)
    else:
        _insertion_sort(a, first, last, k)


def _is_strictly_ordered(v: np.ndarray) -> bool:
    """True if v (already in sorted order) has no two equal neighbours and no NaN."""
    return bool(v.size < 2 or np.all(v[:-1] != v[1:])) and not bool(np.isnan(v).any())


def _desc_order(keys: np.ndarray) -> np.ndarray:
    """Positions of `keys` in descending order (stable); NaN last."""
    return np.argsort(-keys.astype(np.float64), kind="stable")


def _std_sort_desc(keys: np.ndarray) -> np.ndarray:
    """Permutation that std::sort(comp = a.logit > b.logit) applies to `keys` (float32 [n])."""
    order = _desc_order(keys)
    if _is_strictly_ordered(keys[order]):
        return order
    a = list(range(keys.shape[0]))
    _cxx_sort(a, 0, len(a), keys.tolist())
    return np.array(a, dtype=np.int64)


def _std_partial_sort_desc(keys: np.ndarray, middle: int) -> np.ndarray:
    """First `middle` positions after std::partial_sort(begin, begin+middle, end, logit >)."""
    n = keys.shape[0]
    if middle + 1 < n and not np.isnan(keys).any():
        # only the top middle + 1 values matter for the check below: select them first
        part = np.argpartition(-keys.astype(np.float64), middle)[: middle + 1]
        part = np.sort(part)  # original order, so the stable sort below breaks ties by index
        order = part[_desc_order(keys[part])]
    else:
        order = _desc_order(keys)
    top = keys[order[: middle + 1]]
    separated = middle == n or bool(top[middle - 1] > top[middle])
    if separated and _is_strictly_ordered(top[:middle]):
        return order[:middle]
    kl = keys.tolist()
    a = list(range(n))
    with np.errstate(invalid="ignore"):
        # an element enters the heap only if it beats the heap top, whose logit never
        # decreases from min(first `middle` logits): others are skipped without being moved
        floor = float(np.min(keys[:middle]))
        cand = (np.nonzero(~(keys[middle:] <= floor))[0] + middle).tolist()
    _partial_sort(a, 0, middle, n, kl, cand)
    return np.array(a[:middle], dtype=np.int64)


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
    ib[bad] = _INT_MIN  # subtle: +inf and logits above ~3.4e8 land in the LOWEST bucket
    return np.clip(ib, 0, _NBUCKETS - 1)


def _bucket_partial_sort(keys: np.ndarray, npartial: int) -> np.ndarray:
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
            out.append(seg[_std_sort_desc(keys[seg])])
            ndone += cnt
        else:
            out.append(seg[_std_partial_sort_desc(keys[seg], npartial - ndone)])
        start += cnt
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _partial_sort_inplace_perm(keys: np.ndarray, npartial: int) -> np.ndarray:
    """llama_token_data_array_partial_sort_inplace: positions of the kept top `npartial`."""
    if npartial <= 128:
        return _std_partial_sort_desc(keys, npartial)
    return _bucket_partial_sort(keys, npartial)[:npartial]


# ---------------------------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------------------------


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


def _sort_inplace(cur: TokenDataArray, npartial: int) -> None:
    cur.take(_partial_sort_inplace_perm(cur.logits, npartial))
    cur.sorted = True


def _softmax(cur: TokenDataArray, do_sort: bool) -> None:
    """llama_sampler_softmax_impl: p = expf(logit - max) / (float sum in candidate order)."""
    if cur.size == 0:
        raise InferenceError("softmax of an empty candidate list (llama.cpp aborts here)")
    if do_sort and not cur.sorted:
        _sort_inplace(cur, cur.size)
    max_l = cur.logits[0] if cur.sorted else np.max(cur.logits)
    with np.errstate(invalid="ignore", over="ignore"):
        e = expf(cur.logits - max_l)
        cur.p = e / np.cumsum(e, dtype=np.float32)[-1]


def _top_k(cur: TokenDataArray, k: int) -> None:
    """llama_sampler_top_k_impl."""
    if k <= 0:
        return
    k = min(k, cur.size)
    if not cur.sorted:
        _sort_inplace(cur, k)
    cur.truncate(k)


def _temp(cur: TokenDataArray, temp: float) -> None:
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


# ---------------------------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------------------------


class Sampler:
    """Base of a llama_sampler: `apply` mutates candidates; `accept` feeds chosen tokens."""

    name = "sampler"

    def apply(self, cur: TokenDataArray) -> None:
        raise NotImplementedError

    def accept(self, token: int) -> None:
        """Record a chosen token (only stateful samplers care)."""

    def reset(self) -> None:
        """Return to the state right after construction."""

    def clone(self) -> Sampler:
        """Independent copy carrying the current state (llama_sampler_clone)."""
        return copy.deepcopy(self)

    def get_seed(self) -> int:
        return LLAMA_DEFAULT_SEED

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_")
        )
        return f"{type(self).__name__}({fields})"


class Greedy(Sampler):
    """llama_sampler_init_greedy: select the first candidate with the highest logit."""

    name = "greedy"

    def apply(self, cur: TokenDataArray) -> None:
        cur.selected = 0
        if cur.size > 1:
            cur.selected = int(np.argmax(cur.logits))


class _Seeded(Sampler):
    def __init__(self, seed: int) -> None:
        self.seed = seed & 0xFFFFFFFF
        self.seed_cur = _rng_seed(self.seed)
        self._rng = MT19937(self.seed_cur)

    def _reseed(self) -> None:
        self.seed_cur = _rng_seed(self.seed)
        self._rng.seed(self.seed_cur)

    def get_seed(self) -> int:
        return self.seed_cur


class Dist(_Seeded):
    """llama_sampler_init_dist(seed): softmax and one draw from std::mt19937."""

    name = "dist"

    def apply(self, cur: TokenDataArray) -> None:
        if cur.size == 0:
            cur.selected = -1
            return
        cur.selected = 0
        if cur.size == 1:
            self._rng.canonical_double()  # llama.cpp draws anyway, to stay in step
            cur.p = np.ones(1, dtype=np.float32)
            return
        max_l = cur.logits[0] if cur.sorted else np.max(cur.logits)
        with np.errstate(invalid="ignore", over="ignore"):
            e = expf(cur.logits - max_l)
        run = np.cumsum(e.astype(np.float64))  # double sums, sequential like the C loop
        sum_cum = float(run[-1])
        rnd = self._rng.canonical_double()
        hit = np.nonzero(run >= sum_cum * rnd)[0]
        cur.selected = int(hit[0]) if hit.size else cur.size - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            cur.p = (e.astype(np.float64) / sum_cum).astype(np.float32)

    def reset(self) -> None:
        self._reseed()


class TopK(Sampler):
    """llama_sampler_init_top_k(k): keep the k highest logits, sorted (k <= 0: no-op)."""

    name = "top-k"

    def __init__(self, k: int) -> None:
        self.k = int(k)

    def apply(self, cur: TokenDataArray) -> None:
        _top_k(cur, self.k)


class TopP(Sampler):
    """llama_sampler_init_top_p(p, min_keep): nucleus sampling (p >= 1: no-op)."""

    name = "top-p"

    def __init__(self, p: float, min_keep: int = 1) -> None:
        self.p = f32(p)
        self.min_keep = int(min_keep)

    def apply(self, cur: TokenDataArray) -> None:
        if self.p >= 1.0:
            return
        _softmax(cur, False)
        size = cur.size
        if not cur.sorted and size > 1024:
            # adaptive: look at the top 256 first, sort everything only if that is not enough
            k = 256
            perm = _bucket_partial_sort(cur.logits, k)
        elif not cur.sorted:
            _sort_inplace(cur, size)
            k = size
            perm = np.arange(size)
        else:
            k = size
            perm = np.arange(size)
        last_idx = self._cut(cur.p[perm[:k]], 0, f32(0.0))
        if last_idx is None and k < size:
            perm = _bucket_partial_sort(cur.logits, size)
            head = np.cumsum(cur.p[perm[:k]], dtype=np.float32)[-1]
            last_idx = self._cut(cur.p[perm[k:size]], k, head)
        if last_idx is None:
            last_idx = size
        if not cur.sorted:
            cur.take(perm[:last_idx])
            cur.sorted = True
        else:
            cur.truncate(last_idx)

    def _cut(self, p: np.ndarray, offset: int, start: np.float32) -> Optional[int]:
        """First i (global) with float cum sum >= p and i + 1 >= min_keep, as i + 1."""
        cum = np.cumsum(np.concatenate([[start], p]).astype(np.float32), dtype=np.float32)[1:]
        i = np.arange(offset, offset + p.shape[0])
        hit = np.nonzero((cum >= self.p) & (i + 1 >= self.min_keep))[0]
        return int(i[hit[0]]) + 1 if hit.size else None


class MinP(Sampler):
    """llama_sampler_init_min_p(p, min_keep): keep logits >= max + logf(p) (p <= 0: no-op)."""

    name = "min-p"

    def __init__(self, p: float, min_keep: int = 1) -> None:
        self.p = f32(p)
        self.min_keep = int(min_keep)

    def apply(self, cur: TokenDataArray) -> None:
        if self.p <= 0.0 or cur.size == 0:
            return
        log_p = _logf(self.p)
        if not cur.sorted:
            max_logit = max(-_FLT_MAX, float(np.max(cur.logits)))
            min_logit = f32(max_logit) + log_p
            keep = np.nonzero(cur.logits >= min_logit)[0]
            if keep.size and keep.size >= self.min_keep:
                cur.take(keep)
                return
            _sort_inplace(cur, cur.size)
        min_logit = cur.logits[0] + log_p
        below = (cur.logits < min_logit) & (np.arange(cur.size) >= self.min_keep)
        below[0] = False  # the first token always matches
        hit = np.nonzero(below)[0]
        cur.truncate(int(hit[0]) if hit.size else cur.size)


class Typical(Sampler):
    """llama_sampler_init_typical(p, min_keep): locally typical sampling (p >= 1: no-op)."""

    name = "typical"

    def __init__(self, p: float, min_keep: int = 1) -> None:
        self.p = f32(p)
        self.min_keep = int(min_keep)

    def apply(self, cur: TokenDataArray) -> None:
        if self.p >= 1.0:
            return
        _softmax(cur, True)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            logp = _logf_vec(cur.p)
            entropy = np.cumsum(-cur.p * logp, dtype=np.float32)[-1]
            shifted = np.abs(-logp - entropy)
        order = np.argsort(shifted, kind="stable")
        if not _is_strictly_ordered(shifted[order]):
            a = list(range(cur.size))
            _cxx_sort(a, 0, len(a), (-shifted).tolist())  # comp: shifted[a] < shifted[b]
            order = np.array(a, dtype=np.int64)
        cum = np.cumsum(cur.p[order], dtype=np.float32)
        i = np.arange(cur.size)
        ok = (cum > self.p) & ((self.min_keep == 0) | (i >= self.min_keep - 1))
        hit = np.nonzero(ok)[0]
        last_idx = int(hit[0]) + 1 if hit.size else cur.size
        cur.take(order[:last_idx])
        cur.sorted = False


class Temp(Sampler):
    """llama_sampler_init_temp(t): logits / t; t <= 0 keeps only the best logit."""

    name = "temp"

    def __init__(self, temp: float) -> None:
        self.temp = f32(temp)

    def apply(self, cur: TokenDataArray) -> None:
        _temp(cur, self.temp)


class TempExt(Sampler):
    """llama_sampler_init_temp_ext(t, delta, exponent): entropy-based dynamic temperature."""

    name = "temp-ext"

    def __init__(self, temp: float, delta: float, exponent: float) -> None:
        self.temp = f32(temp)
        self.delta = f32(delta)
        self.exponent = f32(exponent)

    def apply(self, cur: TokenDataArray) -> None:
        if not self.delta > 0:
            _temp(cur, self.temp)
            return
        min_temp = max(f32(0.0), self.temp - self.delta)
        max_temp = self.temp + self.delta
        if cur.size <= 1:
            return
        max_entropy = -_logf(f32(1.0) / f32(cur.size))
        _softmax(cur, True)
        pos = cur.p[cur.p > 0.0]
        with np.errstate(invalid="ignore", over="ignore"):
            # float entropy = 0; entropy -= prob * logf(prob): the negated sequential float sum
            entropy = -np.cumsum(pos * _logf_vec(pos), dtype=np.float32)[-1] if pos.size else f32(0)
            normalized = entropy / max_entropy
            dyn_temp = min_temp + (max_temp - min_temp) * _powf(normalized, self.exponent)
        _temp(cur, dyn_temp)
        max_l = float(cur.logits[0])
        e = np.array([_exp(v - max_l) for v in cur.logits.tolist()], dtype=np.float64)
        total = float(np.cumsum(e)[-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            cur.p = (e.astype(np.float32).astype(np.float64) / total).astype(np.float32)


class XTC(_Seeded):
    """llama_sampler_init_xtc(p, t, min_keep, seed): exclude top choices above threshold t."""

    name = "xtc"

    def __init__(self, probability: float, threshold: float, min_keep: int, seed: int) -> None:
        super().__init__(seed)
        self.probability = f32(probability)
        self.threshold = f32(threshold)
        self.min_keep = int(min_keep)

    def apply(self, cur: TokenDataArray) -> None:
        if self.probability <= 0.0 or self.threshold > 0.5 or cur.size < 2:
            return
        chance = self._rng.canonical_float()
        if chance > self.probability:
            return
        _softmax(cur, True)
        above = np.nonzero(~(cur.p >= self.threshold))[0]
        first_below = int(above[0]) if above.size else cur.size
        pos_last = max(first_below - 1, 0)
        if cur.size - pos_last >= self.min_keep and pos_last > 0:
            cur.take(np.arange(pos_last, cur.size))

    def reset(self) -> None:
        self._reseed()


class TopNSigma(Sampler):
    """llama_sampler_init_top_n_sigma(n): mask logits below max - n * std (n <= 0: no-op)."""

    name = "top-n-sigma"

    def __init__(self, n: float) -> None:
        self.n = f32(n)

    def apply(self, cur: TokenDataArray) -> None:
        if self.n <= 0.0 or cur.size <= 1:
            return
        logits = cur.logits
        valid = logits != -np.inf
        vals = logits[valid]
        mx = logits[0]
        if vals.size and np.max(vals) > mx:
            mx = np.max(vals)
        count = int(vals.size)
        mean = f32(0.0)
        if count:
            mean = np.cumsum(vals, dtype=np.float32)[-1] / f32(count)
        acc = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for d in (vals - mean).astype(np.float64).tolist():
                acc = float(f32(acc + d * d))  # float acc += pow(double, 2)
            std = f32(math.sqrt(float(f32(acc) / f32(count)))) if count else f32(0.0)
            cut = mx - self.n * std
            cur.logits = np.where(logits < cut, f32(-np.inf), logits).astype(np.float32)


class Mirostat(_Seeded):
    """llama_sampler_init_mirostat(n_vocab, seed, tau, eta, m): Mirostat 1.0, state `mu`."""

    name = "mirostat"

    def __init__(self, n_vocab: int, seed: int, tau: float, eta: float, m: int = 100) -> None:
        super().__init__(seed)
        self.n_vocab = int(n_vocab)
        self.tau = f32(tau)
        self.eta = f32(eta)
        self.m = int(m)
        self.mu = f32(2.0) * self.tau

    def apply(self, cur: TokenDataArray) -> None:
        _softmax(cur, True)
        sum_ti_bi = f32(0.0)
        sum_ti_sq = f32(0.0)
        with np.errstate(all="ignore"):
            # subtle: the C bound is size_t(m - 1), so m <= 0 means "all candidates"
            n_est = cur.size - 1 if self.m <= 0 else min(self.m - 1, cur.size - 1)
            for i in range(max(n_est, 0)):
                t_i = _logf(f32(i + 2) / f32(i + 1))
                b_i = _logf(cur.p[i] / cur.p[i + 1])
                sum_ti_bi = f32(sum_ti_bi + t_i * b_i)
                sum_ti_sq = f32(sum_ti_sq + t_i * t_i)
            s_hat = sum_ti_bi / sum_ti_sq
            epsilon_hat = s_hat - f32(1.0)
            k = _powf(
                (epsilon_hat * _powf(2.0, self.mu))
                / (f32(1.0) - _powf(f32(self.n_vocab), -epsilon_hat)),
                f32(1.0) / s_hat,
            )
        _top_k(cur, max(_cvtt(float(k)), 1))
        _softmax(cur, True)
        idx = _discrete_sample(cur.p, self._rng)
        cur.selected = idx
        self._update_mu(cur.p[idx])

    def _update_mu(self, p: np.float32) -> None:
        observed_surprise = -_log2f(p)
        e = observed_surprise - self.tau
        self.mu = f32(self.mu - self.eta * e)

    def reset(self) -> None:
        self.mu = f32(2.0) * self.tau
        self._reseed()


class MirostatV2(Mirostat):
    """llama_sampler_init_mirostat_v2(seed, tau, eta): Mirostat 2.0, state `mu`."""

    name = "mirostat-v2"

    def __init__(self, seed: int, tau: float, eta: float) -> None:
        super().__init__(0, seed, tau, eta, 0)

    def apply(self, cur: TokenDataArray) -> None:
        _softmax(cur, True)
        surprise = -_log2f_vec(cur.p)
        over = np.nonzero(surprise > self.mu)[0]
        cur.truncate(max(int(over[0]) if over.size else cur.size, 1))
        _softmax(cur, True)
        idx = _discrete_sample(cur.p, self._rng)
        cur.selected = idx
        self._update_mu(cur.p[idx])


class Penalties(Sampler):
    """llama_sampler_init_penalties(last_n, repeat, freq, present) over accepted tokens."""

    name = "penalties"

    def __init__(
        self,
        penalty_last_n: int,
        penalty_repeat: float = 1.0,
        penalty_freq: float = 0.0,
        penalty_present: float = 0.0,
    ) -> None:
        self.penalty_last_n = max(int(penalty_last_n), 0)
        self.penalty_repeat = f32(penalty_repeat)
        self.penalty_freq = f32(penalty_freq)
        self.penalty_present = f32(penalty_present)
        self._prev: Deque[int] = deque(maxlen=max(self.penalty_last_n, 1))
        self._count: Dict[int, int] = {}

    @property
    def disabled(self) -> bool:
        return self.penalty_last_n == 0 or (
            self.penalty_repeat == 1.0 and self.penalty_freq == 0.0 and self.penalty_present == 0.0
        )

    @property
    def history(self) -> List[int]:
        """The last `penalty_last_n` accepted tokens, oldest first."""
        return list(self._prev)

    def accept(self, token: int) -> None:
        if self.disabled:
            return  # llama.cpp builds an empty sampler then, which keeps no history
        token = int(token)
        self._count[token] = self._count.get(token, 0) + 1
        if len(self._prev) >= self.penalty_last_n:
            old = self._prev[0]
            self._count[old] -= 1
            if self._count[old] == 0:
                del self._count[old]
        self._prev.append(token)

    def apply(self, cur: TokenDataArray) -> None:
        if self.disabled:
            return
        if not self._count:
            cur.sorted = False
            return
        toks = np.array(sorted(self._count), dtype=np.int64)
        counts = np.array([self._count[t] for t in toks.tolist()], dtype=np.float32)
        pos = np.minimum(np.searchsorted(toks, cur.ids), toks.shape[0] - 1)
        hit = np.nonzero(toks[pos] == cur.ids)[0]
        logits = cur.logits.copy()
        x = logits[hit]
        c = counts[pos[hit]]
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.where(x <= 0, x * self.penalty_repeat, x / self.penalty_repeat)
            # logit -= float(count) * freq + float(count > 0) * present, all in float
            x = x - (c * self.penalty_freq + f32(1.0) * self.penalty_present)
        logits[hit] = x
        cur.logits = logits
        cur.sorted = False

    def reset(self) -> None:
        self._prev.clear()
        self._count.clear()


class LogitBias(Sampler):
    """llama_sampler_init_logit_bias(n_vocab, biases): add a float bias to chosen tokens."""

    name = "logit-bias"

    def __init__(self, n_vocab: int, logit_bias: Sequence[Tuple[int, float]]) -> None:
        self.n_vocab = int(n_vocab)
        self.logit_bias = [(int(t), f32(b)) for t, b in logit_bias]

    def apply(self, cur: TokenDataArray) -> None:
        if not self.logit_bias:
            return
        logits = cur.logits.copy()
        to_search: List[Tuple[int, np.float32]] = []
        for tok, bias in self.logit_bias:
            # fast path: the candidate at index `tok` still has id `tok`
            if 0 <= tok < cur.size and cur.ids[tok] == tok:
                logits[tok] = logits[tok] + bias
            else:
                to_search.append((tok, bias))
        if to_search:
            first_bias: Dict[int, np.float32] = {}
            for tok, bias in to_search:
                first_bias.setdefault(tok, bias)  # the C search stops at the first match
            toks = np.array(list(first_bias), dtype=np.int64)
            biases = np.array(list(first_bias.values()), dtype=np.float32)
            order = np.argsort(toks)
            toks, biases = toks[order], biases[order]
            pos = np.minimum(np.searchsorted(toks, cur.ids), toks.shape[0] - 1)
            hit = np.nonzero(toks[pos] == cur.ids)[0]
            logits[hit] = logits[hit] + biases[pos[hit]]
        cur.logits = logits


class Custom(Sampler):
    """A Python callback over the candidates (llama-cpp-python's CustomSampler, used for
    logits processors): `apply_func(cur)` mutates `cur` in place."""

    name = "custom"

    def __init__(self, apply_func: Callable[[TokenDataArray], None]) -> None:
        self.apply_func = apply_func

    def apply(self, cur: TokenDataArray) -> None:
        self.apply_func(cur)


# ---------------------------------------------------------------------------------------------
# chain
# ---------------------------------------------------------------------------------------------


class SamplerChain(Sampler):
    """llama_sampler_chain: apply samplers in order; accept/reset/clone reach all of them."""

    name = "chain"

    def __init__(self, samplers: Optional[Sequence[Sampler]] = None) -> None:
        self.samplers: List[Sampler] = list(samplers or [])
        self.n_sample = 0

    def add(self, sampler: Sampler) -> SamplerChain:
        self.samplers.append(sampler)
        return self

    def apply(self, cur: TokenDataArray) -> None:
        for s in self.samplers:
            s.apply(cur)

    def accept(self, token: int) -> None:
        for s in self.samplers:
            s.accept(token)
        self.n_sample += 1

    def reset(self) -> None:
        for s in self.samplers:
            s.reset()

    def get_seed(self) -> int:
        for s in reversed(self.samplers):
            seed = s.get_seed()
            if seed != LLAMA_DEFAULT_SEED:
                return seed
        return LLAMA_DEFAULT_SEED

    def sample(self, logits: np.ndarray) -> int:
        """llama_sampler_sample: candidates from logits [n_vocab], apply, accept, return id."""
        cur = TokenDataArray.from_logits(logits)
        self.apply(cur)
        token = cur.selected_token()
        self.accept(token)
        return token

    def __len__(self) -> int:
        return len(self.samplers)

    def __repr__(self) -> str:
        return "SamplerChain([" + ", ".join(repr(s) for s in self.samplers) + "])"


def make_chain(
    *,
    n_vocab: int = 0,
    top_k: int = 40,
    top_p: float = 0.95,
    min_p: float = 0.05,
    typical_p: float = 1.0,
    temp: float = 0.80,
    repeat_penalty: float = 1.0,
    frequency_penalty: float = 0.0,
    presence_penalty: float = 0.0,
    penalty_last_n: int = 64,
    mirostat_mode: int = 0,
    mirostat_tau: float = 5.0,
    mirostat_eta: float = 0.1,
    logit_bias: Optional[Mapping[int, float]] = None,
    seed: int = LLAMA_DEFAULT_SEED,
) -> SamplerChain:
    """The chain llama-cpp-python's `Llama._init_sampler` builds, in the same order.

    penalties(last_n = Llama's last_n_tokens_size), then temp < 0: dist; temp == 0: greedy;
    mirostat 1 (m = 100, needs n_vocab) / 2; else top_k, typical, top_p, min_p (min_keep 1),
    temp, dist. `logit_bias` (not part of `_init_sampler`; llama-cpp-python applies it as a
    logits processor, which sits first in its chain) adds a LogitBias sampler in front.
    """
    chain = SamplerChain()
    if logit_bias:
        chain.add(LogitBias(n_vocab, list(logit_bias.items())))
    chain.add(Penalties(penalty_last_n, repeat_penalty, frequency_penalty, presence_penalty))
    if temp < 0.0:
        chain.add(Dist(seed))
    elif temp == 0.0:
        chain.add(Greedy())
    elif mirostat_mode == 1:
        chain.add(Mirostat(n_vocab, seed, mirostat_tau, mirostat_eta, 100))
    elif mirostat_mode == 2:
        chain.add(MirostatV2(seed, mirostat_tau, mirostat_eta))
    else:
        min_keep = 1
        chain.add(TopK(top_k))
        chain.add(Typical(typical_p, min_keep))
        chain.add(TopP(top_p, min_keep))
        chain.add(MinP(min_p, min_keep))
        chain.add(Temp(temp))
        chain.add(Dist(seed))
    return chain
