"""Grammar-constrained sampling over a vocabulary: llama.cpp's grammar sampler.

`GrammarConstraint` is llama_grammar over token pieces: which candidate tokens keep the text a
prefix of the grammar (llama_grammar_apply_impl) and the state after one (llama_grammar_
accept_impl). `GrammarSampler` puts it in a `bitnet.sampling` chain where llama-cpp-python's
`_init_sampler` puts `llama_sampler_init_grammar`: it sets the logits of rejected tokens to
-inf.

    vocab = VocabPieces([tok.token_to_piece(t, 0, True) for t in range(n)], eog_flags)
    sampler = GrammarSampler(GrammarConstraint(CompiledGrammar(parse_gbnf(text)), vocab), need=40)

Rules (llama.cpp's): an end-of-generation token is allowed iff the empty stack is among the
stacks; a token with an empty piece (or one starting with NUL) never is; any other token iff
its piece, decoded from the pending partial UTF-8 sequence, is accepted
(`CompiledGrammar.token_allowed`). Accepting an EOG token leaves the state alone.

`need`: the chain after the grammar only looks at the `need` best candidates (1 for greedy,
k for top-k; None: all of them, e.g. dist or mirostat). The sampler then checks candidates in
descending logit order until it has `need` allowed ones (ties at the boundary included) and
masks every unchecked token too: the next sampler sees exactly what llama.cpp's full mask
would give it. When that cannot be guaranteed (equal logits among the best allowed ones under
a top-k), it checks the whole vocabulary.

Engines: the whole-vocabulary check (`reject`) runs on a `GrammarEngine`, the reference one
in Python (`ReferenceGrammarEngine`) unless `bitnet.runtime.grammar_engine()` supplies the C
hot path (same answers, tested against this module).
"""

from __future__ import annotations

from typing import Any, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from bitnet.constraints.grammar import NO_PARTIAL, CompiledGrammar, PartialUTF8, decode_utf8
from bitnet.sampling import Sampler, TokenDataArray


class VocabPieces:
    """A vocabulary's pieces as llama.cpp's grammar reads them, decoded once.

    pieces[t]: bytes of token t (token_to_piece with special=True); eog: bool [n_vocab].
    `code_points[t]` / `end_partial[t]`: the decoding from no pending partial sequence;
    `first_cp[t]`: its first code point (-1: none); `dead[t]`: empty piece or leading NUL.
    """

    def __init__(self, pieces: Sequence[bytes], eog: Sequence[bool]) -> None:
        if len(pieces) != len(eog):
            raise ValueError(f"{len(pieces)} pieces but {len(eog)} EOG flags")
        self.pieces: List[bytes] = [bytes(p) for p in pieces]
        self.eog = np.asarray(eog, dtype=bool)  # [n_vocab]
        self.code_points: List[Tuple[int, ...]] = []
        self.end_partial: List[PartialUTF8] = []
        for p in self.pieces:
            cps, end = decode_utf8(p, NO_PARTIAL)
            self.code_points.append(tuple(cps))
            self.end_partial.append(end)
        self.first_cp = np.array([c[0] if c else -1 for c in self.code_points], dtype=np.int64)
        self.dead = np.array([len(p) == 0 or p[0] == 0 for p in self.pieces], dtype=bool)

    @property
    def n_vocab(self) -> int:
        return len(self.pieces)


class GrammarEngine(Protocol):
    """Computes which candidates a grammar state rejects (the per-step hot path)."""

    def reject(self, constraint: GrammarConstraint, ids: np.ndarray) -> np.ndarray:
        """bool [len(ids)]: True where token ids[i] is not allowed next."""
        ...


class GrammarConstraint:
    """The grammar's state over tokens: `allows`, `reject` (many at once), `accept`."""

    def __init__(self, grammar: CompiledGrammar, vocab: VocabPieces,
                 engine: Optional[GrammarEngine] = None) -> None:
        self.grammar = grammar
        self.vocab = vocab
        self.engine: GrammarEngine = engine if engine is not None else ReferenceGrammarEngine()
        self.sid = grammar.initial
        self.partial = NO_PARTIAL

    def copy(self) -> GrammarConstraint:
        c = GrammarConstraint.__new__(GrammarConstraint)
        c.grammar, c.vocab, c.engine = self.grammar, self.vocab, self.engine
        c.sid, c.partial = self.sid, self.partial
        return c

    @property
    def can_end(self) -> bool:
        """End of generation is allowed (some stack is empty)."""
        return self.grammar.can_end(self.sid)

    def decoded(self, token: int) -> Tuple[Tuple[int, ...], PartialUTF8]:
        """Code points and trailing partial sequence of `token` in the current state."""
        if self.partial == NO_PARTIAL:
            return self.vocab.code_points[token], self.vocab.end_partial[token]
        cps, end = decode_utf8(self.vocab.pieces[token], self.partial)
        return tuple(cps), end

    def allows(self, token: int) -> bool:
        """True if `token` may come next."""
        token = int(token)
        if self.vocab.eog[token]:
            return self.can_end
        if self.vocab.dead[token]:
            return False
        cps, end = self.decoded(token)
        return self.grammar.token_allowed(self.sid, token, cps, end)

    def reject(self, ids: np.ndarray) -> np.ndarray:
        """bool [len(ids)]: True where the token is not allowed next (the engine's answer)."""
        return self.engine.reject(self, np.asarray(ids, dtype=np.int64))

    def accept(self, token: int) -> None:
        """Advance past `token` (llama_grammar_accept_impl); RuntimeError if no stack is left,
        with llama.cpp's message."""
        token = int(token)
        if self.vocab.eog[token]:
            if not self.can_end:
                raise RuntimeError(f"grammar: end of generation (token {token}) before the "
                                   "text is complete")
            return
        cps, end = self.decoded(token)
        sid = self.grammar.accept_token(self.sid, token, cps)
        if sid == self.grammar.EMPTY:
            piece = self.vocab.pieces[token].decode("utf-8", errors="replace")
            raise RuntimeError("Unexpected empty grammar stack after accepting piece: "
                               f"{piece} ({token})")
        self.sid, self.partial = sid, end


class ReferenceGrammarEngine:
    """`reject` in Python: first code points checked once per distinct value, then each
    surviving token walked through the memoized transitions."""

    def reject(self, constraint: GrammarConstraint, ids: np.ndarray) -> np.ndarray:
        vocab, grammar, sid = constraint.vocab, constraint.grammar, constraint.sid
        rejected = vocab.dead[ids].copy()  # bool [len(ids)]
        eog = vocab.eog[ids]
        rejected[eog] = not constraint.can_end
        todo = ~rejected & ~eog
        tops_are_chars = not any(s and grammar.is_token_element(s[-1]) for s in grammar.sets[sid])
        if constraint.partial == NO_PARTIAL and tops_are_chars:
            first = vocab.first_cp[ids]
            has_first = todo & (first >= 0)
            values, inverse = np.unique(first[has_first], return_inverse=True)
            ok = np.array([grammar.step(sid, int(c)) != grammar.EMPTY for c in values.tolist()],
                          dtype=bool)
            idx = np.nonzero(has_first)[0]
            rejected[idx[~ok[inverse]]] = True
            todo &= ~rejected
        for i in np.nonzero(todo)[0].tolist():
            token = int(ids[i])
            cps, end = constraint.decoded(token)
            rejected[i] = not grammar.token_allowed(sid, token, cps, end)
        return rejected


class GrammarSampler(Sampler):
    """llama_sampler_init_grammar in a chain: rejected tokens get logit -inf; `accept`
    advances the grammar. `need`: see the module docstring."""

    name = "grammar"

    def __init__(self, constraint: GrammarConstraint, need: Optional[int] = None) -> None:
        self.constraint = constraint
        self.need = need

    def apply(self, cur: TokenDataArray) -> None:
        logits = cur.logits  # float32 [n]
        if self.need is not None and 0 < self.need < cur.size and self._apply_best(cur):
            return
        rejected = self.constraint.reject(cur.ids)
        logits = logits.copy()
        logits[rejected] = -np.inf
        cur.logits = logits

    def _apply_best(self, cur: TokenDataArray) -> bool:
        """Keep only allowed tokens among the best ones (see `need`); False when the full
        mask is required (ties under a top-k, NaN logits)."""
        logits = cur.logits
        if np.isnan(logits).any():
            return False
        need = int(self.need or 0)
        order = np.argsort(-logits, kind="stable")  # positions, best first
        allowed: List[int] = []
        done, chunk, n = 0, 64, cur.size
        while done < n:
            block = order[done : done + chunk]
            rejected = self.constraint.reject(cur.ids[block])
            allowed.extend(block[~rejected].tolist())
            done += block.shape[0]
            chunk *= 4
            if len(allowed) >= need:
                threshold = logits[allowed[need - 1]]
                if done >= n or logits[order[done - 1]] < threshold:
                    break
        if len(allowed) < need or logits[allowed[need - 1]] == -np.inf:
            return done >= n and self._keep(cur, allowed)
        best = logits[np.array(allowed[:need])]
        if need > 1 and (np.unique(best).shape[0] < need
                         or (len(allowed) > need and logits[allowed[need]] == best[-1])):
            return False  # equal logits: the partial sort's order depends on the whole array
        return self._keep(cur, allowed)

    @staticmethod
    def _keep(cur: TokenDataArray, positions: List[int]) -> bool:
        logits = np.full(cur.size, -np.inf, dtype=np.float32)
        idx = np.array(positions, dtype=np.int64)
        logits[idx] = cur.logits[idx]
        cur.logits = logits
        return True

    def accept(self, token: int) -> None:
        self.constraint.accept(token)

    def clone(self) -> GrammarSampler:
        return GrammarSampler(self.constraint.copy(), self.need)

    def __repr__(self) -> str:
        return f"GrammarSampler(need={self.need})"


def vocab_pieces(tokenizer: Any, n_vocab: int, is_eog: Any) -> VocabPieces:
    """VocabPieces of a bitnet tokenizer: token_to_piece(t, lstrip=0, special=True)."""
    return VocabPieces([tokenizer.token_to_piece(t, 0, True) for t in range(n_vocab)],
                       [bool(is_eog(t)) for t in range(n_vocab)])
