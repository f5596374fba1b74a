"""llama_decode / llama_encode / the legacy llama_eval, and the outputs they leave (logits,
embeddings, pooled embeddings).

A batch is checked as llama.cpp's batch allocator does (token ids, sequence ids, positions
consecutive per sequence and following what the cache holds, no partial sequence sets), then:

- kv_unified = true (one stream): split into ubatches of n_ubatch tokens in batch order
  (llama.cpp's split_simple); each ubatch runs as one forward, its tokens in the cells the
  cache's search picks, each attending to its own sequence's cells (llama.cpp's KQ mask), a
  token of several sequences in one cell that all of them share;
- kv_unified = false (a stream per sequence): each sequence's tokens run through its stream.
  Tokens shared by several sequences whose streams are all empty (a prompt decoded for n
  parallel streams) are computed once and their cells copied to the other streams.
"""

from __future__ import annotations

import time
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

import numpy as np

from bitnet import errors as E
from bitnet.ffi.capi.contexts import Context, context_of, timed_eval
from bitnet.ffi.capi.core import RT, CAPIError, export


class Batch:
    """A validated llama_batch: ids, positions, sequence sets and output flags per token."""

    def __init__(self, ids: np.ndarray, pos: np.ndarray, seqs: List[Tuple[int, ...]],
                 outputs: np.ndarray) -> None:
        self.ids = ids
        self.pos = pos
        self.seqs = seqs
        self.outputs = outputs  # batch indices with an output, in order


def _invalid(message: str) -> CAPIError:
    return CAPIError(E.GENERIC_ERROR, message, value=-1)


def read_batch(c: Context, b: Any, encode: bool) -> Batch:
    """Validate a C llama_batch like llama_batch_allocr::init (-1 on any problem); encoding
    outputs every token and does not continue the cache."""
    ffi = RT.ffi
    n = int(b.n_tokens)
    if n <= 0:
        raise _invalid(f"n_tokens = {n}: the batch is empty")
    if n > c.n_batch:
        raise _invalid(f"n_tokens = {n} > n_batch = {c.n_batch} (llama.cpp asserts here)")
    if b.embd != ffi.NULL:
        raise _invalid("embedding input (batch.embd) is not supported")
    if b.token == ffi.NULL:
        raise _invalid("batch has neither token ids nor embeddings")
    ids = np.frombuffer(ffi.buffer(b.token, 4 * n), dtype=np.int32).copy()
    n_vocab = c.model.tokenizer.vocab.n_tokens
    bad = np.nonzero((ids < 0) | (ids >= n_vocab))[0]
    if bad.size:
        raise _invalid(f"invalid token[{int(bad[0])}] = {int(ids[bad[0]])}")
    seqs: List[Tuple[int, ...]] = []
    for i in range(n):
        if b.seq_id == ffi.NULL:
            seqs.append((0,))
            continue
        ns = int(b.n_seq_id[i]) if b.n_seq_id != ffi.NULL else 1
        if ns < 1 or b.seq_id[i] == ffi.NULL:
            raise _invalid(f"batch token {i} has no sequence id")
        # in the batch's order: llama.cpp masks (and numbers positions) by the first id
        row = tuple(dict.fromkeys(int(b.seq_id[i][j]) for j in range(ns)))
        if min(row) < 0 or max(row) >= c.n_seq_max:
            raise _invalid(f"invalid seq_id[{i}] = {row} >= n_seq_max = {c.n_seq_max}")
        seqs.append(row)
    if b.pos != ffi.NULL:
        pos = np.frombuffer(ffi.buffer(b.pos, 4 * n), dtype=np.int32).astype(np.int64)
    else:  # after each sequence's cached positions, from its first sequence id
        nxt: Dict[int, int] = {}
        pos = np.empty(n, dtype=np.int64)
        for i, row in enumerate(seqs):
            s = row[0]
            pos[i] = nxt.get(s, c.pos_range(s)[1] + 1)
            nxt[s] = int(pos[i]) + 1
    _check_positions(c, pos, seqs, encode)
    if encode or c.embeddings:  # llama.cpp: embeddings need every token as an output
        outputs = np.arange(n)
    elif b.logits != ffi.NULL:
        outputs = np.nonzero(np.frombuffer(ffi.buffer(b.logits, n), dtype=np.int8))[0]
    else:
        outputs = np.array([n - 1])
    return Batch(ids, pos, seqs, outputs)


def _check_positions(c: Context, pos: np.ndarray, seqs: List[Tuple[int, ...]],
                     encode: bool) -> None:
    per_seq: Dict[int, List[int]] = {}
    sets: Dict[int, FrozenSet[int]] = {}
    for p, row in zip(pos.tolist(), seqs):
        for s in row:
            per_seq.setdefault(s, []).append(p)
            cur = sets.get(s, frozenset(range(c.n_seq_max))) & frozenset(row)
            if not cur:
                raise _invalid(f"sequence {s} belongs to incompatible sequence sets (not allowed)")
            sets[s] = cur
    for s, ps in per_seq.items():
        if any(b != a + 1 for a, b in zip(ps, ps[1:])):
            raise _invalid(f"sequence {s} positions are not consecutive: {ps[:8]}...")
        if ps[0] < 0:
            raise _invalid(f"sequence {s}: negative position {ps[0]}")
        last = -1 if encode else c.pos_range(s)[1]
        if last >= 0 and ps[0] != last + 1:
            raise _invalid(f"sequence {s}: the cache ends at position {last} and the batch starts "
                           f"at {ps[0]}; positions must stay consecutive")
        if ps[-1] >= c.n_ctx_seq:
            raise CAPIError(E.CONTEXT_LENGTH_EXCEEDED, f"sequence {s}: position {ps[-1]} does not fit "
                            f"n_ctx_seq = {c.n_ctx_seq}", value=1)
    if c.kv_unified and not encode and c.used_cells() + len(pos) > c.n_ctx:  # one cell per token
        raise CAPIError(E.CONTEXT_LENGTH_EXCEEDED, f"no room for {len(pos)} more cells in the "
                        f"unified cache of n_ctx = {c.n_ctx}", value=1)


def _plan(batch: Batch, empty: Any) -> List[Tuple[Tuple[int, ...], List[int]]]:
    """(sequences, batch indices) to evaluate in order. Tokens shared by sequences that all
    start empty (`empty(seq_id)`) and are shared at their start are computed once, for the
    first of them."""
    shared: Dict[Tuple[int, ...], List[int]] = {}
    own: Dict[int, List[int]] = {}
    for i, row in enumerate(batch.seqs):
        if len(row) > 1:
            shared.setdefault(row, []).append(i)
        else:
            own.setdefault(row[0], []).append(i)
    plan: List[Tuple[Tuple[int, ...], List[int]]] = []
    simple = all(all(empty(s) for s in row) for row in shared)
    first_own = {s: min(idx) for s, idx in own.items()}
    simple = simple and all(max(idx) < first_own.get(s, len(batch.ids))
                            for row, idx in shared.items() for s in row)
    if not simple:  # every sequence evaluates all of its tokens
        for s in sorted({s for row in batch.seqs for s in row}):
            plan.append(((s,), [i for i, row in enumerate(batch.seqs) if s in row]))
        return plan
    plan += list(shared.items())
    plan += [((s,), idx) for s, idx in sorted(own.items())]
    return plan


def _run_ubatches(c: Context, batch: Batch, want: FrozenSet[int]) -> Tuple[Dict[int, np.ndarray],
                                                                             Dict[int, np.ndarray]]:
    """The unified stream: ubatches of n_ubatch tokens, each one forward over all of its
    sequences. Returns (logits, hidden) of the output tokens by batch index."""
    from bitnet.model.graphs import forward, output_logits

    engine = c.check_model()
    stream = c.seq(0)
    ops, hp, w = engine.backend, engine.hparams, engine.weights
    hidden: Dict[int, np.ndarray] = {}
    logits: Dict[int, np.ndarray] = {}
    for u0 in range(0, len(batch.ids), c.n_ubatch):
        if c.aborted():
            raise CAPIError(E.INFERENCE_FAILED, "aborted by abort_callback", value=2)
        idx = list(range(u0, min(len(batch.ids), u0 + c.n_ubatch)))
        out = [j for j, i in enumerate(idx) if i in want]
        # llama.cpp's last layer runs its output rows only; rows other than a suffix are
        # computed with every row there
        n_out = len(out) if out == list(range(len(idx) - len(out), len(idx))) else len(idx)
        h, _ = forward(ops, hp, w, stream.cache, batch.ids[idx], batch.pos[idx], n_out=n_out,
                          flash_attn=c.flash_attn, seqs=[batch.seqs[i] for i in idx],
                          n_threads=c.n_threads if len(idx) == 1 else c.n_threads_batch)
        rows = np.asarray(out) - (len(idx) - h.shape[0])
        if out:
            lg = output_logits(ops, w, h[rows])
            for r, j in enumerate(out):
                logits[idx[j]], hidden[idx[j]] = lg[r], h[rows[r]]
    return logits, hidden


def run_batch(c: Context, batch: Batch, encode: bool) -> None:
    """Evaluate `batch` and keep its outputs (logits; embeddings when enabled). Encoding runs
    on fresh caches and leaves the context's memory as it was."""
    from bitnet.model.graphs import output_logits

    engine = c.check_model()
    want = set(batch.outputs.tolist())
    if c.kv_unified and not encode:
        logits, hidden = _run_ubatches(c, batch, frozenset(want))
        _keep_outputs(c, batch, engine, logits, hidden)
        return
    scratch: Dict[int, Any] = {}

    def cache_of(s: int) -> Any:
        if not encode:
            return c.seq(s)
        if s not in scratch:
            scratch[s] = c.new_cache()
        return scratch[s]

    def empty(s: int) -> bool:
        return encode or c.pos_range(s)[1] < 0

    hidden, logits = {}, {}
    for row, idx in _plan(batch, empty):
        if c.aborted():
            raise CAPIError(E.INFERENCE_FAILED, "aborted by abort_callback", value=2)
        cache = cache_of(row[0])
        ids = batch.ids[idx]
        start = int(batch.pos[idx[0]])
        cache.eval(ids.tolist(), start, all_logits=False)
        h = np.asarray(cache.embeddings)
        out = [j for j, i in enumerate(idx) if i in want]
        if out:
            last_only = out == [len(idx) - 1]
            rows = cache.logits if last_only else output_logits(
                engine.backend, engine.weights, h, np.asarray(out))
            for r, j in enumerate(out):
                logits[idx[j]] = rows[r]
                hidden[idx[j]] = h[j]
        src = cache.cache
        cells = src.seq_cells(-1)  # the cells just written (the stream was empty)
        for s in row[1:]:  # copy the shared cells to the other (empty) streams
            dst = cache_of(s).cache
            dst.k[:, cells] = src.k[:, cells]
            dst.v[:, cells] = src.v[:, cells]
            dst.place(cells, src.pos[cells], [(s,)] * cells.size)
    _keep_outputs(c, batch, engine, logits, hidden)


def _keep_outputs(c: Context, batch: Batch, engine: Any, logits: Dict[int, np.ndarray],
                  hidden: Dict[int, np.ndarray]) -> None:
    order = sorted(logits)
    V = engine.hparams.n_vocab
    lg = np.stack([logits[i] for i in order]) if order else np.zeros((0, V), np.float32)
    embd = np.stack([hidden[i] for i in order]) if order and c.embeddings else None
    c.outputs.set(lg, embd, order)
    if c.embeddings and c.pooling != "none":
        _pool(c, batch, hidden)


def _pool(c: Context, batch: Batch, hidden: Dict[int, np.ndarray]) -> None:
    """llama_get_embeddings_seq: MEAN / CLS (first) / LAST token of each sequence's tokens."""
    for s in sorted({s for row in batch.seqs for s in row}):
        idx = [i for i, row in enumerate(batch.seqs) if s in row and i in hidden]
        if not idx:
            continue
        rows = np.stack([hidden[i] for i in idx])
        if c.pooling == "mean":
            vec = rows.mean(axis=0, dtype=np.float32)
        elif c.pooling == "cls":
            vec = rows[0]
        else:
            vec = rows[-1]
        arr = np.ascontiguousarray(vec, dtype=np.float32)
        c.outputs.seq_embd[s] = (arr, RT.ffi.from_buffer("float[]", arr))


def _decode(c: Context, b: Any, encode: bool) -> int:
    if b == RT.ffi.NULL:
        raise _invalid("batch is NULL")
    c.check_model()
    batch = read_batch(c, b, encode)
    t0 = time.monotonic()
    try:
        run_batch(c, batch, encode)
    except CAPIError:
        raise
    except E.BitNetError as exc:
        raise CAPIError(E.INFERENCE_FAILED, str(exc), value=-3) from exc
    except Exception as exc:  # noqa: BLE001 - a compute failure
        raise CAPIError(E.INFERENCE_FAILED, f"{type(exc).__name__}: {exc}", value=-3) from exc
    timed_eval(c, len(batch.ids), t0)
    return 0


@export
def llama_decode(ctx: Any, b: Any) -> int:
    return _decode(context_of(ctx), b, encode=False)


@export
def llama_encode(ctx: Any, b: Any) -> int:
    return _decode(context_of(ctx), b, encode=True)


@export
def llama_eval(ctx: Any, tokens: Any, n_tokens: int, n_past: int, n_threads: int) -> int:
    """The legacy API: sequence 0 at n_past (anything cached from n_past on is dropped)."""
    c = context_of(ctx)
    engine = c.check_model()
    if n_tokens <= 0:
        raise CAPIError(E.GENERIC_ERROR, f"n_tokens={n_tokens}; need at least one token")
    if tokens == RT.ffi.NULL:
        raise CAPIError(E.GENERIC_ERROR, "tokens is NULL")
    if n_past < 0:
        raise CAPIError(E.GENERIC_ERROR, f"n_past={n_past} is negative")
    ids = np.frombuffer(RT.ffi.buffer(tokens, 4 * n_tokens), dtype=np.int32).tolist()
    t0 = time.monotonic()
    cache = c.seq(0)
    all_rows = c.logits_all or c.embeddings
    logits = cache.eval(ids, int(n_past), all_logits=all_rows)
    h = np.asarray(cache.embeddings)
    rows = list(range(len(ids))) if all_rows else [len(ids) - 1]
    c.outputs.set(logits, h[rows] if c.embeddings else None, rows)
    del engine
    timed_eval(c, len(ids), t0)
    return 0


# ---- outputs ---------------------------------------------------------------------------------


def _row(c: Context, i: int) -> int:
    out = c.outputs
    if out.logits is None:
        raise CAPIError(E.GENERIC_ERROR, "no outputs: nothing decoded yet")
    if i < 0:
        r = out.logits.shape[0] + i
        if r < 0:
            raise CAPIError(E.GENERIC_ERROR, f"invalid output index {i}")
        return r
    if i not in out.rows:
        raise CAPIError(E.GENERIC_ERROR, f"batch index {i} produced no output")
    return out.rows[i]


def logits_row(c: Context, i: int) -> np.ndarray:
    """The logits of output `i` (llama_get_logits_ith's indexing)."""
    return c.outputs.logits[_row(c, i)]  # type: ignore[index]


@export
def llama_get_logits(ctx: Any) -> Any:
    c = context_of(ctx)
    if c.outputs.logits_ptr is None:
        raise CAPIError(E.GENERIC_ERROR, "no logits: nothing decoded yet")
    return c.outputs.logits_ptr


@export
def llama_get_logits_ith(ctx: Any, i: int) -> Any:
    c = context_of(ctx)
    r = _row(c, int(i))
    return c.outputs.logits_ptr + r * c.outputs.logits.shape[1]  # type: ignore[union-attr]


def _need_embd(c: Context) -> None:
    if not c.embeddings:
        raise CAPIError(E.GENERIC_ERROR, "no embeddings: the context was created with "
                        "embeddings = false (llama.cpp returns NULL too)")
    if c.outputs.embd_ptr is None:
        raise CAPIError(E.GENERIC_ERROR, "no embeddings: nothing decoded since embeddings were on")


@export
def llama_get_embeddings(ctx: Any) -> Any:
    c = context_of(ctx)
    _need_embd(c)
    return c.outputs.embd_ptr


@export
def llama_get_embeddings_ith(ctx: Any, i: int) -> Any:
    c = context_of(ctx)
    _need_embd(c)
    r = _row(c, int(i))
    return c.outputs.embd_ptr + r * c.outputs.embd.shape[1]  # type: ignore[union-attr]


@export
def llama_get_embeddings_seq(ctx: Any, seq_id: int) -> Any:
    c = context_of(ctx)
    if c.pooling == "none":
        raise CAPIError(E.GENERIC_ERROR, "pooling_type is NONE: use llama_get_embeddings_ith")
    got: Optional[Tuple[np.ndarray, Any]] = c.outputs.seq_embd.get(int(seq_id))
    if got is None:
        raise CAPIError(E.GENERIC_ERROR, f"no pooled embedding for sequence {seq_id}")
    return got[1]


# backend sampling is never configured: as llama.cpp then, nothing was sampled


@export
def llama_get_sampled_token_ith(ctx: Any, i: int) -> int:
    context_of(ctx)
    return -1


@export
def llama_get_sampled_probs_ith(ctx: Any, i: int) -> Any:
    context_of(ctx)
    return RT.ffi.NULL


@export
def llama_get_sampled_probs_count_ith(ctx: Any, i: int) -> int:
    context_of(ctx)
    return 0


@export
def llama_get_sampled_logits_ith(ctx: Any, i: int) -> Any:
    context_of(ctx)
    return RT.ffi.NULL


@export
def llama_get_sampled_logits_count_ith(ctx: Any, i: int) -> int:
    context_of(ctx)
    return 0


@export
def llama_get_sampled_candidates_ith(ctx: Any, i: int) -> Any:
    context_of(ctx)
    return RT.ffi.NULL


@export
def llama_get_sampled_candidates_count_ith(ctx: Any, i: int) -> int:
    context_of(ctx)
    return 0
