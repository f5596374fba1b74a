"""Iteration order of libstdc++'s std::unordered_map<std::string, T>: what llama.cpp's
unordered_map members (llama_model's gguf_kv, llama_vocab's token_to_id) yield when walked."""
from typing import Dict, Iterable, List, Optional

_MASK = (1 << 64) - 1
_MUL = (0xC6A4A793 << 32) + 0x5BD1E995
_SEED = 0xC70F6907
# the bucket counts libstdc++'s _Prime_rehash_policy (max_load_factor 1) steps through while
# elements are emplaced one at a time: a count holds while the size stays <= it
_BUCKETS = (13, 29, 59, 127, 257, 541, 1109, 2357, 5087, 10273, 20753, 42043, 85229, 172933,
            351061, 712697, 1447153, 2938679, 5967347, 12117689, 24607243)
_HEAD = -1  # _M_before_begin


def _shift_mix(v: int) -> int:
    return v ^ (v >> 47)


def std_hash(data: bytes) -> int:
    """std::hash<std::string> of 64-bit libstdc++ (_Hash_bytes: MurmurHash2, seed 0xc70f6907)."""
    n = len(data)
    h = (_SEED ^ (n * _MUL)) & _MASK
    tail = n & ~7
    for i in range(0, tail, 8):
        k = int.from_bytes(data[i:i + 8], "little")
        h = ((h ^ ((_shift_mix((k * _MUL) & _MASK) * _MUL) & _MASK)) * _MUL) & _MASK
    if n & 7:
        h = ((h ^ int.from_bytes(data[tail:], "little")) * _MUL) & _MASK
    return _shift_mix((_shift_mix(h) * _MUL) & _MASK)


class _Table:
    """The node list and bucket array of a libstdc++ _Hashtable with unique keys."""

    def __init__(self) -> None:
        self.hashes: List[int] = []
        self.nxt: Dict[int, Optional[int]] = {_HEAD: None}
        self.buckets: Dict[int, int] = {}  # bucket -> the node before its first node
        self.n_bkt = 1

    def insert(self, h: int) -> None:
        node = len(self.hashes)
        self.hashes.append(h)
        if node + 1 > self.n_bkt or self.n_bkt == 1:
            self.rehash(next(b for b in _BUCKETS if b >= node + 1))
        bkt = h % self.n_bkt
        nxt, buckets = self.nxt, self.buckets
        before = buckets.get(bkt)
        if before is not None:  # _M_insert_bucket_begin
            nxt[node] = nxt[before]
            nxt[before] = node
            return
        first = nxt[_HEAD]
        nxt[node] = first
        nxt[_HEAD] = node
        if first is not None:
            buckets[self.hashes[first] % self.n_bkt] = node
        buckets[bkt] = _HEAD

    def rehash(self, n_bkt: int) -> None:
        """_M_rehash_aux(n, true_type)."""
        nxt, hashes = self.nxt, self.hashes
        buckets: Dict[int, int] = {}
        p = nxt[_HEAD]
        nxt[_HEAD] = None
        bbegin = 0
        while p is not None:
            after = nxt[p]
            bkt = hashes[p] % n_bkt
            before = buckets.get(bkt)
            if before is None:
                nxt[p] = nxt[_HEAD]
                nxt[_HEAD] = p
                buckets[bkt] = _HEAD
                if nxt[p] is not None:
                    buckets[bbegin] = p
                bbegin = bkt
            else:
                nxt[p] = nxt[before]
                nxt[before] = p
            p = after
        self.buckets, self.n_bkt = buckets, n_bkt

    def order(self) -> List[int]:
        out = []
        p = self.nxt[_HEAD]
        while p is not None:
            out.append(p)
            p = self.nxt[p]
        return out


def unordered_order(keys: Iterable[bytes]) -> List[int]:
    """Indices into `keys` in the order an unordered_map walks them after the keys were
    emplaced in this order (a repeated key is not inserted again, as with emplace)."""
    table = _Table()
    index: List[int] = []
    seen = set()
    for i, key in enumerate(keys):
        if key in seen:
            continue
        seen.add(key)
        index.append(i)
        table.insert(std_hash(key))
    return [index[n] for n in table.order()]
