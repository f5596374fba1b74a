"""`Llama.embed`: hidden states after the output norm, pooled as llama.cpp pools them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Union

import numpy as np

from bitnet.ggml_types import GGMLType
from bitnet.llama_compat._internals import normalize_embedding
from bitnet.llama_compat.llama_cpp import (
    LLAMA_POOLING_TYPE_CLS,
    LLAMA_POOLING_TYPE_LAST,
    LLAMA_POOLING_TYPE_MEAN,
    LLAMA_POOLING_TYPE_NONE,
)
from bitnet.ops import QTensor

if TYPE_CHECKING:  # pragma: no cover
    from bitnet.llama_compat.llama import Llama


def mean_rows(hidden: np.ndarray, backend: Any) -> np.ndarray:
    """The mean of hidden's rows [T, D] as llama.cpp's MEAN pooling computes it: an F32
    ggml_mul_mat of hidden transposed by a row of 1/T, through `backend` (a llama.cpp-order
    backend gives its bits; any other, its own float matmul)."""
    t, d = hidden.shape
    w = QTensor("inp_mean", int(GGMLType.F32), (t, d),
                np.ascontiguousarray(hidden.T, dtype=np.float32).view(np.uint8).reshape(-1))
    return np.asarray(backend.matmul(w, np.full((1, t), 1.0 / t, dtype=np.float32)))[0]


def pool(hidden: np.ndarray, pooling: int, normalize: bool, backend: Any) -> Any:
    """hidden [T, D] pooled as llama.cpp pools (NONE: one row per token; RANK: not here)."""
    if pooling == LLAMA_POOLING_TYPE_NONE:
        rows = [row.tolist() for row in hidden]
        return [normalize_embedding(r) for r in rows] if normalize else rows
    if pooling == LLAMA_POOLING_TYPE_MEAN:
        vec = mean_rows(hidden, backend)
    elif pooling == LLAMA_POOLING_TYPE_CLS:
        vec = hidden[0]
    elif pooling == LLAMA_POOLING_TYPE_LAST:
        vec = hidden[-1]
    else:
        raise NotImplementedError(f"pooling type {pooling} (rank) needs a classifier head")
    emb = vec.astype(np.float32).tolist()
    return normalize_embedding(emb) if normalize else emb


def embed_texts(llm: Llama, input: Union[str, List[str]], normalize: bool, truncate: bool,
                return_count: bool) -> Any:
    """One embedding per text (or per token with pooling NONE), each text evaluated alone."""
    if llm.context_params.embeddings is False:
        raise RuntimeError("Llama model must be created with embedding=True to call this method")
    ctx = llm._require_engine()
    n_batch = llm.n_batch
    pooling = llm.pooling_type()
    inputs = [input] if isinstance(input, str) else input
    data: List[Any] = []
    total_tokens = 0
    for text in inputs:
        tokens = llm.tokenize(text.encode("utf-8"))
        if truncate:
            tokens = tokens[:n_batch]
        n_tokens = len(tokens)
        total_tokens += n_tokens
        if n_tokens > n_batch:
            raise ValueError(f"Requested tokens ({n_tokens}) exceed batch size of {n_batch}")
        if n_tokens == 0:
            raise RuntimeError("llama_decode returned -1")  # llama.cpp rejects empty batches
        ctx.reset()
        ctx.eval(tokens, 0, all_logits=False)
        hidden = np.asarray(ctx.embeddings, dtype=np.float32)  # (T, D) after output_norm
        data.append(pool(hidden, pooling, normalize, ctx.model.backend))
    output = data[0] if isinstance(input, str) else data
    ctx.reset()
    llm.reset()
    llm._batch_logits = None
    if return_count:
        return output, total_tokens
    return output
