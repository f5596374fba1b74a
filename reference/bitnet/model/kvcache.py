"""The KV cache of one llama.cpp stream: cells, each with a position and a set of sequences.

llama.cpp (src/llama-kv-cache.cpp, llama-kv-cells.h) places a ubatch's tokens in the first
empty cells found from `head` (wrapping, restarting at 0 when enough cells are free before
head), frees cells when their last sequence is removed, and shares one cell among several
sequences (seq_cp adds a sequence to cells, it copies no data). Its attention reads the
cells in index order, so which cell holds which position decides the lanes of the softmax
and V sums: the engine keeps the same bookkeeping to compute the same bits.

With one sequence and no removals the cells are the positions (cell i holds position i).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from bitnet.model.hparams import HParams


class KVCache:
    """Keys and values per layer and cell; `pos[c]` (-1 = empty) and `seq[c, s]` per cell.

    n_seq: the sequence ids the stream may hold (llama.cpp's n_seq_max for a unified cache,
    1 for a per-sequence stream); a cell belongs to one or more of them.
    """

    def __init__(self, hp: HParams, n_ctx: int, dtype: np.typing.DTypeLike = np.float32,
                 n_seq: int = 1) -> None:
        self.n_ctx = n_ctx
        shape = (hp.n_layer, n_ctx, hp.n_head_kv, hp.n_embd_head_k)
        self.k = np.zeros(shape, dtype=dtype)  # (L, n_ctx, Hkv, d)
        self.v = np.zeros(shape, dtype=dtype)  # (L, n_ctx, Hkv, d)
        self.pos = np.full(n_ctx, -1, dtype=np.int64)  # (n_ctx,) -1 = empty
        self.seq = np.zeros((n_ctx, max(1, int(n_seq))), dtype=bool)  # (n_ctx, n_seq)
        self.head = 0  # where the next search for free cells starts

    # ---- placing a ubatch (llama_kv_cache::find_slot / apply_ubatch) ----

    def find_slot(self, n_tokens: int) -> Optional[np.ndarray]:
        """The cells llama.cpp picks for a ubatch of n_tokens (non-contiguous search), or
        None when fewer are free."""
        empty = self.pos < 0
        head = self.head
        if head > self.n_ctx - int(np.count_nonzero(empty)) + 2 * n_tokens:
            head = 0  # enough free cells before head: fill the cache from its start
        if head + n_tokens <= self.n_ctx and empty[head:head + n_tokens].all():
            return np.arange(head, head + n_tokens)  # the usual case: free cells at head
        order = np.concatenate([np.flatnonzero(empty[head:]) + head, np.flatnonzero(empty[:head])])
        return order[:n_tokens] if order.size >= n_tokens else None

    def place(self, cells: np.ndarray, positions: np.ndarray,
              seqs: Optional[Sequence[Sequence[int]]] = None) -> None:
        """Give cells[i] position positions[i] and the sequences seqs[i] (None: sequence 0);
        head moves past the last cell."""
        self.pos[cells] = positions
        self.seq[cells] = False
        if seqs is None:
            self.seq[cells, 0] = True
        else:
            for c, row in zip(cells.tolist(), seqs):
                self.seq[c, list(row)] = True
        self.head = int(cells[-1]) + 1

    def unplace(self, cells: np.ndarray) -> None:
        """Empty `cells` again (a ubatch that failed)."""
        self.pos[cells] = -1
        self.seq[cells] = False

    def store(self, layer: int, cells: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
        """cells: (T,); k, v: (T, Hkv, d)."""
        self.k[layer, cells] = k
        self.v[layer, cells] = v

    # ---- what attention sees ----

    @property
    def used_max_p1(self) -> int:
        """1 + the last occupied cell (0 when empty): the cells attention reads."""
        used = self.pos[::-1] >= 0
        return self.n_ctx - int(np.argmax(used)) if used.any() else 0

    def visible_pos(self, first_seq: Optional[np.ndarray] = None) -> np.ndarray:
        """The positions of cells 0..used_max_p1 as each token's mask sees them (llama.cpp's
        KQ mask: a cell counts for a token when it holds the token's first sequence; -1
        otherwise). first_seq: (T,) or None (sequence 0 for all). Returns (K,) when every
        token has the same sequence, else (T, K)."""
        n = self.used_max_p1
        pos = self.pos[:n]
        if self.seq.shape[1] == 1:  # one sequence: every used cell is its
            return pos.copy()
        if first_seq is None or first_seq.size == 0 or (first_seq == first_seq[0]).all():
            s = 0 if first_seq is None or first_seq.size == 0 else int(first_seq[0])
            return np.where(self.seq[:n, s], pos, -1)
        return np.where(self.seq[:n, first_seq].T, pos[None, :], -1)

    # ---- sequences (llama_memory_seq_*) ----

    def _in_range(self, p0: int, p1: int) -> np.ndarray:
        lo = max(int(p0), 0)
        hi = np.iinfo(np.int64).max if p1 < 0 else int(p1)
        return (self.pos >= lo) & (self.pos < hi)

    def _freed(self, freed: np.ndarray) -> None:
        """Empty the `freed` cells; head moves back to the first of them."""
        idx = np.flatnonzero(freed)
        if idx.size:
            self.pos[idx] = -1
            self.seq[idx] = False
            self.head = min(self.head, int(idx[0]))

    def seq_rm(self, seq_id: int, p0: int, p1: int) -> None:
        """Remove seq_id (< 0: every sequence) from the cells with p0 <= pos < p1 (p1 < 0:
        no end); a cell left without sequences is freed."""
        rng = self._in_range(p0, p1)
        if seq_id < 0:
            self._freed(rng)
            return
        hit = rng & self.seq[:, seq_id]
        self.seq[hit, seq_id] = False
        self._freed(hit & ~self.seq.any(axis=1))

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        """Add dst to the cells of src with p0 <= pos < p1 (no data is copied)."""
        if src != dst:
            self.seq[self._in_range(p0, p1) & self.seq[:, src], dst] = True

    def seq_keep(self, seq_id: int) -> None:
        """Free every cell that does not hold seq_id; the others keep only seq_id."""
        keep = self.seq[:, seq_id].copy()
        self._freed((self.pos >= 0) & ~keep)
        self.seq[keep] = False
        self.seq[keep, seq_id] = True

    def seq_cells(self, seq_id: int, p0: int = 0, p1: int = -1) -> np.ndarray:
        """The cells holding seq_id (< 0: every occupied cell) with p0 <= pos < p1 (p1 < 0:
        no end), in cell order."""
        held = self.pos >= 0 if seq_id < 0 else self.seq[:, seq_id]
        return np.flatnonzero(held & self._in_range(p0, p1))

    def seq_pos_range(self, seq_id: int) -> Tuple[int, int]:
        """(min, max) position of seq_id (< 0: any) in the cache; (-1, -1) when it has none."""
        cells = self.seq_cells(seq_id)
        if cells.size == 0:
            return -1, -1
        p = self.pos[cells]
        return int(p.min()), int(p.max())

    # ---- the single-sequence view the engine's Context uses ----

    def remove(self, p0: int, p1: int) -> None:
        """Forget positions p0 <= p < p1 (p1 < 0: to the end) of every sequence."""
        self.seq_rm(-1, p0, p1)

    def clear(self) -> None:
        self.pos[:] = -1
        self.seq[:] = False
        self.head = 0

    @property
    def n_used(self) -> int:
        """1 + the largest cached position (0 when empty)."""
        return max(int(self.pos.max()), -1) + 1 if self.n_ctx else 0
