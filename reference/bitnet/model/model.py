"""`Model` (weights + hyperparameters of one GGUF file) and `Context` (a KV cache and eval).

    model = Model.load("SmolLM2-135M-Instruct.Q4_1.gguf")
    ctx = Context(model, n_ctx=512)
    logits = ctx.eval([1, 2, 3])          # (3, n_vocab): one row per token
    logits = ctx.eval([4], all_logits=False)  # (1, n_vocab), position 3
    ctx.kv_cache_seq_rm(2, -1)            # forget positions >= 2; n_past becomes 2

One sequence per context (`seq_id`, 0 unless the C API's per-sequence streams set it; the
C API's unified cache runs ubatches of several sequences through `graphs.forward` on one
`KVCache` itself). Tokens go into the cells llama.cpp's KV cache would pick for them
(`bitnet.model.kvcache`). `eval(tokens, n_past)` follows llama-cpp-python's
`Llama.eval`: positions n_past.. are (re)written and anything cached at or after n_past is
dropped first.

Schedule: a batch is computed as one llama.cpp ubatch, so with a backend in llama.cpp's
numerics the results are llama.cpp's bits when the tokens are split into evals as
llama-cpp-python splits them (n_batch chunks of a prompt, then one token per eval; its
default n_ubatch = n_batch = 512): kernel choices (tinyBLAS, GEMM, tiled) depend on a
matmul's row count, and only the output rows (all of them with all_logits, else the last)
go through the last layer's FFN and the output matmul.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from bitnet.errors import ContextLengthExceededError, InferenceError, ModelLoadError
from bitnet.model.graphs import KVCache, finish_rows, forward, output_logits
from bitnet.model.hparams import HParams, check_architecture, hparams_from_kv
from bitnet.model.weights import ModelWeights, load_weights
from bitnet.ops import Backend, NumpyBackend

KV_DTYPES = {"f32": np.float32, "f16": np.float16}


class Model:
    """A loaded model: GGUF metadata, hyperparameters, weights and the backend that runs them.

    backend: a `bitnet.ops.Backend`; None gives the numpy reference (`NumpyBackend` with this
    activation_quant). The API surfaces get theirs from `bitnet.runtime.load_model`.
    """

    def __init__(self, gf: Any, *, backend: Optional[Backend] = None,
                 activation_quant: str = "none") -> None:
        self.gguf = gf
        self.kv = gf.kv
        check_architecture(gf.kv)
        embd = gf.tensors.get("token_embd.weight")
        if embd is None or len(embd.shape) != 2:
            raise ModelLoadError("missing 2-D tensor token_embd.weight")
        self.hparams: HParams = hparams_from_kv(gf.kv, n_vocab=int(embd.shape[1]))
        self.weights: ModelWeights = load_weights(gf, self.hparams)
        self.backend: Backend = backend or NumpyBackend(activation_quant=activation_quant)

    @classmethod
    def load(cls, path: Union[str, os.PathLike[str]], *, backend: Optional[Backend] = None,
             activation_quant: str = "none") -> Model:
        """Read `path` with bitnet.gguf.load; unknown architectures raise UnsupportedError."""
        from bitnet.gguf import load

        return cls(load(path), backend=backend, activation_quant=activation_quant)

    @property
    def arch(self) -> str:
        return self.hparams.arch

    @property
    def n_vocab(self) -> int:
        return self.hparams.n_vocab

    @property
    def n_embd(self) -> int:
        return self.hparams.n_embd


class Context:
    """A KV cache of `n_ctx` cells for one sequence, and the eval loop over it.

    n_seq: the sequence ids its cache may hold (llama.cpp's n_seq_max); seq_id: the one
    `eval` writes (attribute).

    kv_type: "f32" (exact) or "f16" (llama.cpp's default cache type); by default "f16" when
    the model's backend rounds activations like the peers (activation_quant="peer"), else
    "f32".
    flash_attn: attention as llama.cpp's flash-attention kernel (its context's
    flash_attn_type ENABLED, or AUTO on CPU); its float order for one token over >= 512
    cells depends on llama.cpp's thread count: n_threads for one token, n_threads_batch for
    more (attributes; change them as llama_set_n_threads does).
    """

    def __init__(self, model: Model, *, n_ctx: int = 512, n_batch: int = 512,
                 kv_type: Optional[str] = None, flash_attn: bool = False, n_threads: int = 1,
                 n_threads_batch: int = 1, n_seq: int = 1) -> None:
        if n_ctx <= 0 or n_batch <= 0:
            raise ValueError(f"n_ctx={n_ctx} and n_batch={n_batch} must be positive")
        if kv_type is None:
            peer = getattr(model.backend, "activation_quant", "none") == "peer"
            kv_type = "f16" if peer else "f32"
        if kv_type not in KV_DTYPES:
            raise ValueError(f"kv_type={kv_type!r}; expected one of {sorted(KV_DTYPES)}")
        self.model = model
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.cache = KVCache(model.hparams, n_ctx, KV_DTYPES[kv_type], n_seq=n_seq)
        self.seq_id = 0
        self.flash_attn = bool(flash_attn)
        self.n_threads, self.n_threads_batch = int(n_threads), int(n_threads_batch)
        self.logits: Optional[np.ndarray] = None  # (n_out, V) of the last eval
        # per batch of the last eval: (hidden (n_out, D) after output_norm, the last layer's
        # FFN input (T, D) when not every row was an output)
        self._batches: List[Tuple[np.ndarray, Optional[np.ndarray]]] = []
        self._embeddings: Optional[np.ndarray] = None
        # called as layer_hook(il, x) with each layer's output (T, D); for per-layer diffs
        self.layer_hook: Optional[Callable[[int, np.ndarray], None]] = None

    @property
    def n_past(self) -> int:
        """Positions currently cached (1 + the largest cached position)."""
        return self.cache.n_used

    @property
    def embeddings(self) -> Optional[np.ndarray]:
        """(T, D) hidden states after output_norm of every token of the last eval, as
        llama.cpp computes them when every token is an output (its embedding mode); rows
        that were not outputs get their last-layer FFN now. None before any eval."""
        if self._embeddings is None and self._batches:
            hp, w, ops = self.model.hparams, self.model.weights, self.model.backend
            parts = [h if rest is None else finish_rows(ops, hp, w, rest) for h, rest in self._batches]
            self._embeddings = np.concatenate(parts, axis=0)
        return self._embeddings

    def reset(self) -> None:
        """Empty the KV cache."""
        self.cache.clear()
        self.logits = None
        self._batches = []
        self._embeddings = None

    def kv_cache_seq_rm(self, p0: int, p1: int = -1) -> None:
        """Forget cached positions p0 <= p < p1 (p1 < 0: to the end)."""
        self.cache.remove(p0, p1)

    def eval(self, tokens: Sequence[int], n_past: Optional[int] = None, *,
             all_logits: bool = True) -> np.ndarray:
        """Decode `tokens` at positions n_past, n_past+1, ... and return their logits.

        n_past defaults to the current `n_past`; positions >= n_past are dropped from the
        cache first. Returns (len(tokens), V) or, with all_logits=False, (1, V) for the last
        token. Tokens past n_batch go in further batches (see the module docstring: the
        split is part of llama.cpp's schedule).
        """
        ids = np.asarray(list(tokens), dtype=np.int64)
        if ids.size == 0:
            raise InferenceError("eval of an empty token list")
        if ids.min() < 0 or ids.max() >= self.model.n_vocab:
            bad = int(ids[(ids < 0) | (ids >= self.model.n_vocab)][0])
            raise InferenceError(f"token id {bad} out of range [0, {self.model.n_vocab})")
        start = self.n_past if n_past is None else int(n_past)
        if start < 0 or start + ids.size > self.n_ctx:
            raise ContextLengthExceededError(
                f"positions {start}..{start + ids.size - 1} do not fit n_ctx={self.n_ctx}"
            )
        self.cache.remove(start, -1)
        hp, w, ops = self.model.hparams, self.model.weights, self.model.backend
        self._batches = []
        self._embeddings = None
        logit_parts = []
        for b0 in range(0, ids.size, self.n_batch):
            chunk = ids[b0 : b0 + self.n_batch]
            positions = np.arange(start + b0, start + b0 + chunk.size, dtype=np.int64)
            last = b0 + self.n_batch >= ids.size
            n_out = chunk.size if all_logits else int(last)  # llama.cpp's output rows
            hidden, rest = forward(ops, hp, w, self.cache, chunk, positions, self.layer_hook, n_out,
                                   flash_attn=self.flash_attn,
                                   n_threads=self.n_threads if chunk.size == 1 else self.n_threads_batch,
                                   seqs=[(self.seq_id,)] * chunk.size if self.seq_id else None)
            self._batches.append((hidden, rest))
            if n_out:
                logit_parts.append(output_logits(ops, w, hidden))  # (n_out, V)
        self.logits = np.concatenate(logit_parts, axis=0)
        return self.logits
