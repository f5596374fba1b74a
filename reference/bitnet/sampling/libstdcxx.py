"""libstdc++'s algorithms whose exact behaviour shows in llama.cpp's sampling (GCC 12):
std::mt19937 with generate_canonical and std::discrete_distribution, and std::sort /
std::partial_sort (introsort, heap selection) with their order of equal keys.

The sorts run on lists of item handles (ints). The comparator is always llama.cpp's
`a.logit > b.logit`, i.e. comp(x, y) = k[x] > k[y] for a key list k (written inline for
speed); an ascending sort (`a < b`) is the same sort on negated keys. `std_sort_desc` /
`std_partial_sort_desc` use numpy's sort when no ties can matter.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

f32 = np.float32


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



def discrete_sample(p: np.ndarray, rng: MT19937) -> int:
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
# std::sort and std::partial_sort
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


def partial_sort(
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
            partial_sort(a, first, last, last, k)
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


def cxx_sort(a: List[int], first: int, last: int, k: Keys) -> None:
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


def is_strictly_ordered(v: np.ndarray) -> bool:
    """True if v (already in sorted order) has no two equal neighbours and no NaN."""
    return bool(v.size < 2 or np.all(v[:-1] != v[1:])) and not bool(np.isnan(v).any())


def _desc_order(keys: np.ndarray) -> np.ndarray:
    """Positions of `keys` in descending order (stable); NaN last."""
    return np.argsort(-keys.astype(np.float64), kind="stable")


def std_sort_desc(keys: np.ndarray) -> np.ndarray:
    """Permutation that std::sort(comp = a.logit > b.logit) applies to `keys` (float32 [n])."""
    order = _desc_order(keys)
    if is_strictly_ordered(keys[order]):
        return order
    a = list(range(keys.shape[0]))
    cxx_sort(a, 0, len(a), keys.tolist())
    return np.array(a, dtype=np.int64)


def std_partial_sort_desc(keys: np.ndarray, middle: int) -> np.ndarray:
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
    if separated and is_strictly_ordered(top[:middle]):
        return order[:middle]
    kl = keys.tolist()
    a = list(range(n))
    with np.errstate(invalid="ignore"):
        # an element enters the heap only if it beats the heap top, whose logit never
        # decreases from min(first `middle` logits): others are skipped without being moved
        floor = float(np.min(keys[:middle]))
        cand = (np.nonzero(~(keys[middle:] <= floor))[0] + middle).tolist()
    partial_sort(a, 0, middle, n, kl, cand)
    return np.array(a[:middle], dtype=np.int64)
