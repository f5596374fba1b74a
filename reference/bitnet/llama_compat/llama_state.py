"""`LlamaState`: a snapshot of a Llama (llama-cpp-python's `llama_cpp.llama.LlamaState`), and
the save / restore behind `Llama.save_state` / `load_state`."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from bitnet.llama_compat.llama import Llama


class LlamaState:
    """Token buffer, scores, KV-cache bytes (`llama_state`, this engine's own format) and seed.

    input_ids: intc [n_ctx]; scores: float32 [n_tokens, n_vocab] (rows kept with logits_all).
    """

    def __init__(
        self,
        input_ids: np.ndarray,
        scores: np.ndarray,
        n_tokens: int,
        llama_state: bytes,
        llama_state_size: int,
        seed: int,
    ) -> None:
        self.input_ids = input_ids
        self.scores = scores
        self.n_tokens = n_tokens
        self.llama_state = llama_state
        self.llama_state_size = llama_state_size
        self.seed = seed


def save_llama_state(llm: Llama) -> LlamaState:
    """Snapshot: the KV cache's used cells in cell order (k, v, positions) and the last logits
    as an npz."""
    ctx = llm._require_engine()
    cells = ctx.cache.seq_cells(-1)
    buf = io.BytesIO()
    arrays = {"k": ctx.cache.k[:, cells], "v": ctx.cache.v[:, cells], "pos": ctx.cache.pos[cells]}
    if llm._batch_logits is not None:
        arrays["logits"] = llm._batch_logits
    np.savez(buf, **arrays)
    data = buf.getvalue()
    return LlamaState(scores=llm._scores.copy(), input_ids=llm.input_ids.copy(), n_tokens=llm.n_tokens,
                      llama_state=data, llama_state_size=len(data), seed=llm._seed)


def load_llama_state(llm: Llama, state: LlamaState) -> None:
    """Restore a snapshot (RuntimeError "Failed to set llama state data" if it does not fit);
    the cells go in from cell 0, as llama.cpp restores a whole state."""
    ctx = llm._require_engine()
    try:
        with np.load(io.BytesIO(bytes(state.llama_state[: state.llama_state_size]))) as z:
            k, v, pos = z["k"], z["v"], z["pos"]
            logits = z["logits"] if "logits" in z.files else None
        n_used = pos.shape[0]
        same_shape = k.shape[0] == ctx.cache.k.shape[0] and k.shape[2:] == ctx.cache.k.shape[2:]
        if not same_shape or n_used > ctx.n_ctx:
            raise ValueError("state does not fit this context")
    except Exception as e:
        raise RuntimeError("Failed to set llama state data") from e
    n = state.scores.shape[0]
    llm.scores[:n, :] = state.scores.copy()
    rest = llm.scores[n:, :]
    rest[rest > 0] = 0.0
    llm.input_ids = state.input_ids.copy()
    llm.n_tokens = state.n_tokens
    llm._requires_eval = True
    llm._seed = state.seed
    ctx.cache.clear()
    if n_used:
        cells = np.arange(n_used)
        ctx.cache.place(cells, pos)
        ctx.cache.head = 0
        ctx.cache.k[:, cells] = k
        ctx.cache.v[:, cells] = v
    llm._batch_logits = logits


__all__ = ["LlamaState"]
