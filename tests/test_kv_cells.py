"""`bitnet.model.kvcache.KVCache`: llama.cpp's cell bookkeeping (src/llama-kv-cache.cpp
find_slot / apply_ubatch / seq_rm / seq_cp / seq_keep), and a forward over several
sequences in one cache. The bits against libllama are tests/c/kv_cells.c and
examples/batched (test_capi_sequences.py, test_capi_examples.py); these pin each rule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from bitnet.model.kvcache import KVCache

HP = SimpleNamespace(n_layer=1, n_head_kv=1, n_embd_head_k=2)


def _cache(n_cells: int = 16, n_seq: int = 3) -> KVCache:
    return KVCache(HP, n_cells, np.float32, n_seq=n_seq)  # type: ignore[arg-type]


def _fill(kv: KVCache, positions: range, seq: int) -> np.ndarray:
    cells = kv.find_slot(len(positions))
    assert cells is not None
    kv.place(cells, np.asarray(positions), [(seq,)] * len(positions))
    return cells


def test_fresh_cells_are_positions_and_head_follows() -> None:
    kv = _cache()
    assert _fill(kv, range(5), 0).tolist() == [0, 1, 2, 3, 4]
    assert kv.head == 5 and kv.used_max_p1 == 5 and kv.n_used == 5
    assert kv.seq_pos_range(0) == (0, 4) and kv.seq_pos_range(1) == (-1, -1)


def test_seq_rm_frees_cells_and_the_search_restarts_there() -> None:
    kv = _cache()
    _fill(kv, range(3), 0)
    for p in range(3, 6):  # interleaved: cells 3.. alternate between sequences 0 and 1
        _fill(kv, range(p, p + 1), 0)
        _fill(kv, range(p - 3, p - 2), 1)
    assert kv.pos.tolist()[:9] == [0, 1, 2, 3, 0, 4, 1, 5, 2]
    kv.seq_rm(0, 4, -1)  # cells 5 and 7
    assert kv.head == 5
    assert kv.find_slot(3).tolist() == [5, 7, 9]  # free cells from the head, not contiguous


def test_head_goes_back_to_zero_when_enough_cells_are_free_before_it() -> None:
    kv = _cache()
    _fill(kv, range(10), 0)
    kv.seq_rm(0, 0, 6)  # head -> 0 (first freed cell)
    kv.head = 10  # as after a later placement at the end
    assert kv.find_slot(2).tolist() == [0, 1]  # 10 > used (4) + 2 * 2
    assert kv.find_slot(3).tolist() == [10, 11, 12]  # 10 <= 4 + 2 * 3: from the head on


def test_search_wraps_and_fails_when_full() -> None:
    kv = _cache(8)
    _fill(kv, range(8), 0)
    kv.seq_rm(0, 0, 2)
    kv.head = 7
    assert kv.find_slot(2).tolist() == [0, 1]
    assert kv.find_slot(3) is None


def test_seq_cp_shares_cells_and_seq_rm_keeps_them_for_the_other_sequence() -> None:
    kv = _cache()
    _fill(kv, range(4), 0)
    kv.seq_cp(0, 2, -1, -1)
    assert kv.seq_cells(2).tolist() == [0, 1, 2, 3]
    kv.seq_rm(0, 2, -1)  # cells 2, 3 stay: sequence 2 holds them
    assert kv.pos.tolist()[:4] == [0, 1, 2, 3] and kv.seq_cells(0).tolist() == [0, 1]
    kv.seq_rm(2, 3, -1)
    assert kv.pos[3] == -1 and kv.head == 3
    kv.seq_keep(2)
    assert kv.seq_cells(-1).tolist() == [0, 1, 2] and kv.seq[:3].tolist() == [[False, False, True]] * 3


def test_visible_positions_follow_each_tokens_first_sequence() -> None:
    kv = _cache()
    _fill(kv, range(2), 0)
    kv.seq_cp(0, 1, -1, -1)
    _fill(kv, range(2, 3), 1)
    assert kv.visible_pos(np.array([0, 0])).tolist() == [0, 1, -1]
    assert kv.visible_pos(np.array([0, 1])).tolist() == [[0, 1, -1], [0, 1, 2]]
