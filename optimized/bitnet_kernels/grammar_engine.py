"""The C grammar engine: `bitnet.constraints.grammar_constraint.GrammarEngine` over kernels/bn_grammar.c.

    from bitnet_kernels.grammar_engine import default_engine
    GrammarConstraint(compiled, vocab, engine=default_engine())

(The API surfaces get it from `bitnet.runtime.grammar_engine()`, which honours
BITNET_BACKEND=reference.) `reject` answers what the Python reference
(`ReferenceGrammarEngine`) answers, for the whole vocabulary in one C call
(tests/test_grammar_engine.py compares them). End-of-generation tokens and empty pieces are
decided here in numpy, the rest in C. One C handle per compiled grammar and one per
vocabulary, built on first use and freed with their Python objects; a C failure (out of
memory) falls back to the reference for that call.
"""

from __future__ import annotations

import threading
import weakref
from itertools import accumulate
from typing import Any, List, Optional

import numpy as np

from bitnet.constraints.grammar_constraint import GrammarConstraint, ReferenceGrammarEngine


def _library() -> Any:
    import bitnet_kernels

    if bitnet_kernels._lib is None:
        raise RuntimeError(f"C kernels unavailable: {bitnet_kernels.unavailable_reason()}")
    if not hasattr(bitnet_kernels._lib, "bn_grammar_reject"):
        raise RuntimeError("the C kernels were built without bn_grammar.c: rebuild them")
    return bitnet_kernels._ffi, bitnet_kernels._lib


def available() -> bool:
    """True when the C grammar kernels are built and loadable."""
    try:
        _library()
    except RuntimeError:
        return False
    return True


class CGrammarEngine:
    """Candidate rejection in C; handles cached per grammar and per vocabulary."""

    def __init__(self) -> None:
        self.ffi, self.lib = _library()
        self._lock = threading.Lock()
        self._grammars: Any = weakref.WeakKeyDictionary()
        self._vocabs: Any = weakref.WeakKeyDictionary()
        self._fallback = ReferenceGrammarEngine()

    def _grammar_handle(self, grammar: Any) -> Any:
        with self._lock:
            h = self._grammars.get(grammar)
            if h is None:
                types = np.asarray(grammar.types, dtype=np.int32)
                values = np.asarray(grammar.values, dtype=np.uint32)
                starts = np.asarray(grammar.rule_start, dtype=np.int32)
                ffi = self.ffi
                raw = self.lib.bn_grammar_new(
                    ffi.from_buffer("int32_t[]", types), ffi.from_buffer("uint32_t[]", values), len(types),
                    ffi.from_buffer("int32_t[]", starts), len(starts))
                if raw == ffi.NULL:
                    raise MemoryError("bn_grammar_new failed")
                h = self._grammars[grammar] = ffi.gc(raw, self.lib.bn_grammar_free)
            return h

    def _vocab_handle(self, vocab: Any) -> Any:
        with self._lock:
            h = self._vocabs.get(vocab)
            if h is None:
                ffi = self.ffi
                blob = b"".join(vocab.pieces)
                offs = np.fromiter(accumulate(map(len, vocab.pieces), initial=0), dtype=np.int64)
                raw = self.lib.bn_grammar_vocab_new(ffi.from_buffer("uint8_t[]", blob or b"\0"),
                                                    ffi.from_buffer("int64_t[]", offs), len(vocab.pieces))
                if raw == ffi.NULL:
                    raise MemoryError("bn_grammar_vocab_new failed")
                h = self._vocabs[vocab] = ffi.gc(raw, self.lib.bn_grammar_vocab_free)
            return h

    def reject(self, constraint: GrammarConstraint, ids: np.ndarray) -> np.ndarray:
        """bool [len(ids)]: True where token ids[i] is not allowed next."""
        vocab, grammar = constraint.vocab, constraint.grammar
        ids = np.asarray(ids, dtype=np.int64)
        rejected = vocab.dead[ids].copy()
        eog = vocab.eog[ids]
        rejected[eog] = not constraint.can_end
        todo = np.nonzero(~rejected & ~eog)[0]
        if todo.size == 0:
            return rejected
        stacks: List[tuple] = list(grammar.sets[constraint.sid])
        data = np.array([p for s in stacks for p in s] or [0], dtype=np.uint32)
        lens = np.array([len(s) for s in stacks], dtype=np.int32)
        sub = np.ascontiguousarray(ids[todo], dtype=np.int32)
        out = np.zeros(sub.shape[0], dtype=np.uint8)
        ffi = self.ffi
        rc = self.lib.bn_grammar_reject(
            self._grammar_handle(grammar), self._vocab_handle(vocab), ffi.from_buffer("uint32_t[]", data),
            ffi.from_buffer("int32_t[]", lens), len(stacks), constraint.partial.value,
            constraint.partial.n_remain, ffi.from_buffer("int32_t[]", sub), sub.shape[0],
            ffi.from_buffer("uint8_t[]", out))
        if rc != 0:
            return self._fallback.reject(constraint, ids)
        rejected[todo] = out.astype(bool)
        return rejected


_default: List[CGrammarEngine] = []
_default_lock = threading.Lock()


def default_engine() -> Optional[CGrammarEngine]:
    """The process-wide C engine, or None when the kernels are not built."""
    if not _default:
        if not available():
            return None
        with _default_lock:
            if not _default:
                _default.append(CGrammarEngine())
    return _default[0]
