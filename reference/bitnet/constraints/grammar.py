"""A GBNF recognizer: llama.cpp's pushdown stacks over code points (llama-grammar.cpp).

    g = CompiledGrammar(parse_gbnf('root ::= "a"+ "b"'))
    p = GrammarPrefix(g)
    p.push(b"aa"), p.complete        # (True, False)
    p.push(b"b"), p.complete         # (True, True)

State: a set of stacks (each a tuple of element positions, bottom first; the top is the next
terminal to match) plus a partial UTF-8 sequence. `advance` expands rule references at the top
until every stack ends at a terminal (llama_grammar_advance_stack); `step` consumes one code
point (llama_grammar_accept over all stacks); the text so far is a valid prefix while some
stack is left, and complete when the empty stack is among them (end of generation allowed).

Token-level checks (`token_allowed`) follow llama_grammar_reject_candidates_for_stack exactly:
a token whose piece decodes (from the pending partial UTF-8) to code points c1..cn is allowed
iff some run of stacks consumes all of them, and a trailing partial sequence could still match
the next terminal; a TOKEN / TOKEN_NOT element reached while code points remain decides by the
token id alone. Pieces decode as llama.cpp decodes them (`decode_utf8`: no validation of
continuation bytes, a NUL ends the piece, a stray continuation byte makes it invalid).

Sets of stacks are interned (ids) and transitions memoized, so the checks of one sampling
step share work. This module is the readable reference; `bitnet.constraints.grammar_engine`
holds the engine interface the C hot path plugs into.
"""

from __future__ import annotations

import threading
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from bitnet.constraints.gbnf import (
    ALT,
    CHAR,
    CHAR_ALT,
    CHAR_ANY,
    CHAR_NOT,
    CHAR_RNG_UPPER,
    DEFAULT_ROOT,
    END,
    RULE_REF,
    TOKEN,
    TOKEN_NOT,
    Grammar,
)

Stack = Tuple[int, ...]  # element positions, bottom first
StackSet = Tuple[Stack, ...]
_MEMO_LIMIT = 1 << 20  # transitions kept before the memo is cleared


class PartialUTF8(NamedTuple):
    """llama_partial_utf8: bits decoded so far and continuation bytes still expected
    (n_remain < 0: an invalid sequence)."""

    value: int = 0
    n_remain: int = 0


NO_PARTIAL = PartialUTF8(0, 0)
_LEAD_LEN = (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 4)  # by the first byte's high nibble


def decode_utf8(piece: bytes, partial: PartialUTF8 = NO_PARTIAL) -> Tuple[List[int], PartialUTF8]:
    """Code points of `piece` continuing `partial`, and the partial sequence left at its end.

    llama.cpp's decode_utf8(std::string, llama_partial_utf8): stops at a NUL byte; a lead byte
    10xxxxxx (or a non-continuation byte while `partial` expects one) aborts with no code
    points and n_remain = -1; continuation bytes of a new sequence are not validated.
    """
    nul = piece.find(b"\0")
    if nul >= 0:
        piece = piece[:nul]
    value, n_remain = partial.value, partial.n_remain
    pos, n = 0, len(piece)
    out: List[int] = []
    while pos < n and n_remain > 0:  # continue the previous sequence
        b = piece[pos]
        if b >> 6 != 2:
            return [], PartialUTF8(0, -1)
        value = (value << 6) + (b & 0x3F)
        pos += 1
        n_remain -= 1
    if partial.n_remain > 0 and n_remain == 0:
        out.append(value)
    while pos < n:
        first = piece[pos]
        n_remain = _LEAD_LEN[first >> 4] - 1
        if n_remain < 0:
            return [], PartialUTF8(0, n_remain)
        value = first & ((1 << (7 - n_remain)) - 1)
        pos += 1
        while pos < n and n_remain > 0:
            value = (value << 6) + (piece[pos] & 0x3F)
            pos += 1
            n_remain -= 1
        if n_remain == 0:
            out.append(value)
    # subtle: llama.cpp keeps the last value with n_remain == 0 too; it is never read then
    return out, (PartialUTF8(value, n_remain) if n_remain != 0 else NO_PARTIAL)


class CompiledGrammar:
    """A parsed grammar flattened into one element array, with memoized stack operations.

    `types[p]`, `values[p]`: the element at position p (all rules concatenated, each ending in
    END); `rule_start[r]`: the position of rule r's first element. A stack holds positions.
    """

    def __init__(self, grammar: Grammar, root: str = DEFAULT_ROOT) -> None:
        self.grammar = grammar
        self.types: List[int] = []
        self.values: List[int] = []
        self.rule_start: List[int] = []
        for rule in grammar.rules:
            self.rule_start.append(len(self.types))
            for kind, value in rule:
                self.types.append(kind)
                self.values.append(value)
        self._advance_memo: Dict[Stack, List[Stack]] = {}
        self._set_ids: Dict[StackSet, int] = {}
        self.sets: List[StackSet] = []  # id -> set of stacks
        self._step_memo: Dict[Tuple[int, int], int] = {}
        self._lock = threading.Lock()  # one grammar may serve several Llama instances at once
        self.EMPTY = self.intern(())  # no stack left: the text is not a valid prefix
        self.initial = self.intern(self._initial_stacks(grammar.start(root)))

    # --- elements --------------------------------------------------------------------------
    def is_end_of_sequence(self, pos: int) -> bool:
        return self.types[pos] in (END, ALT)

    def match_char(self, pos: int, c: int) -> Tuple[bool, int]:
        """(does code point c satisfy the char class at pos, position after the class):
        llama_grammar_match_char."""
        types, values = self.types, self.values
        positive = types[pos] in (CHAR, CHAR_ANY)
        found = False
        while True:
            if types[pos + 1] == CHAR_RNG_UPPER:
                found = found or values[pos] <= c <= values[pos + 1]
                pos += 2
            elif types[pos] == CHAR_ANY:
                found = True
                pos += 1
            else:
                found = found or values[pos] == c
                pos += 1
            if types[pos] != CHAR_ALT:
                return found == positive, pos

    def match_partial_char(self, pos: int, partial: PartialUTF8) -> bool:
        """Could some completion of `partial` satisfy the char class at pos
        (llama_grammar_match_partial_char)."""
        types, values = self.types, self.values
        positive = types[pos] in (CHAR, CHAR_ANY)
        value, n_remain = partial
        if n_remain < 0 or (n_remain == 1 and value < 2):  # invalid, or an overlong 7-bit char
            return False
        low = value << (n_remain * 6)
        high = low | ((1 << (n_remain * 6)) - 1)
        if low == 0:
            low = {2: 1 << 11, 3: 1 << 16}.get(n_remain, low)
        while True:
            if types[pos + 1] == CHAR_RNG_UPPER:
                if values[pos] <= high and low <= values[pos + 1]:
                    return positive
                pos += 2
            elif types[pos] == CHAR_ANY:
                return True
            else:
                if low <= values[pos] <= high:
                    return positive
                pos += 1
            if types[pos] != CHAR_ALT:
                return not positive

    def match_token(self, pos: int, token: int) -> bool:
        """llama_grammar_match_token: TOKEN matches its id, TOKEN_NOT every other id."""
        if self.types[pos] == TOKEN:
            return self.values[pos] == token
        return self.values[pos] != token

    def is_token_element(self, pos: int) -> bool:
        return self.types[pos] in (TOKEN, TOKEN_NOT)

    # --- stacks ----------------------------------------------------------------------------
    def advance(self, stack: Stack) -> List[Stack]:
        """The stacks `stack` expands to, each empty or topped by a terminal
        (llama_grammar_advance_stack, same order)."""
        memo = self._advance_memo.get(stack)
        if memo is not None:
            return memo
        out: List[Stack] = []
        todo = [stack]
        seen = set()
        while todo:
            cur = todo.pop()
            if cur in seen:
                continue
            seen.add(cur)
            if not cur:
                if cur not in out:
                    out.append(cur)
                continue
            pos = cur[-1]
            kind = self.types[pos]
            if kind == RULE_REF:
                sub = self.rule_start[self.values[pos]]
                while True:  # one new stack per alternative of the referenced rule
                    nxt = cur[:-1]
                    if not self.is_end_of_sequence(pos + 1):
                        nxt += (pos + 1,)
                    if not self.is_end_of_sequence(sub):
                        nxt += (sub,)
                    todo.append(nxt)
                    while not self.is_end_of_sequence(sub):
                        sub += 1
                    if self.types[sub] != ALT:
                        break
                    sub += 1
            elif kind in (CHAR, CHAR_NOT, CHAR_ANY, TOKEN, TOKEN_NOT):
                if cur not in out:
                    out.append(cur)
            else:
                raise AssertionError(f"grammar stack left on element type {kind} at {pos}")
        self._advance_memo[stack] = out
        return out

    def _initial_stacks(self, start_rule: int) -> StackSet:
        out: List[Stack] = []
        pos = self.rule_start[start_rule]
        while True:
            stack: Stack = () if self.is_end_of_sequence(pos) else (pos,)
            for s in self.advance(stack):
                if s not in out:
                    out.append(s)
            while not self.is_end_of_sequence(pos):
                pos += 1
            if self.types[pos] != ALT:
                return tuple(out)
            pos += 1

    def intern(self, stacks: StackSet) -> int:
        """The id of a set of stacks (registered on first sight)."""
        sid = self._set_ids.get(stacks)
        if sid is None:
            with self._lock:
                sid = self._set_ids.get(stacks)
                if sid is None:
                    self.sets.append(stacks)
                    sid = self._set_ids[stacks] = len(self.sets) - 1
        return sid

    def step(self, sid: int, c: int) -> int:
        """The stack set after code point `c` (llama_grammar_accept): stacks whose top char
        class matches move past it and advance; the others (tokens included) drop out."""
        key = (sid, c)
        nxt = self._step_memo.get(key)
        if nxt is not None:
            return nxt
        out: List[Stack] = []
        for stack in self.sets[sid]:
            if not stack or self.is_token_element(stack[-1]):
                continue
            ok, after = self.match_char(stack[-1], c)
            if not ok:
                continue
            base = stack[:-1] if self.is_end_of_sequence(after) else stack[:-1] + (after,)
            for s in self.advance(base):
                if s not in out:
                    out.append(s)
        if len(self._step_memo) > _MEMO_LIMIT:
            self._step_memo.clear()
        nxt = self._step_memo[key] = self.intern(tuple(out))
        return nxt

    def can_end(self, sid: int) -> bool:
        """True if the empty stack is in the set: the text is complete (EOG allowed)."""
        return any(not s for s in self.sets[sid])

    # --- tokens ----------------------------------------------------------------------------
    def token_allowed(self, sid: int, token: int, code_points: Sequence[int],
                      end: PartialUTF8) -> bool:
        """Is a (non-EOG, non-empty) token with these decoded code points and trailing partial
        sequence allowed from stack set `sid` (llama_grammar_reject_candidates)."""
        sets = self.sets
        for c in code_points:
            for stack in sets[sid]:
                if stack and self.is_token_element(stack[-1]) and self.match_token(stack[-1], token):
                    return True
            sid = self.step(sid, c)
            if sid == self.EMPTY:
                return False
        if end.n_remain == 0:
            return True
        return any(stack and not self.is_token_element(stack[-1])
                   and self.match_partial_char(stack[-1], end) for stack in sets[sid])

    def accept_token(self, sid: int, token: int, code_points: Sequence[int]) -> int:
        """The stack set after a token (llama_grammar_accept_token): stacks topped by a token
        element move on if it matches `token`; the others consume the code points."""
        out: List[Stack] = []
        for stack in self.sets[sid]:
            if not stack:
                continue
            if self.is_token_element(stack[-1]):
                if self.match_token(stack[-1], token):
                    pos = stack[-1] + 1
                    base = stack[:-1] if self.is_end_of_sequence(pos) else stack[:-1] + (pos,)
                    survivors = self.advance(base)
                else:
                    survivors = []
            else:
                one = self.intern((stack,))
                for c in code_points:
                    one = self.step(one, c)
                    if one == self.EMPTY:
                        break
                survivors = list(self.sets[one])
            for s in survivors:
                if s not in out:
                    out.append(s)
        return self.intern(tuple(out))


class GrammarPrefix:
    """Byte-level state of a grammar (the constraint-engine interface of JSONPrefix):
    `push(bytes)` consumes text (False once no stack is left), `complete` says the text so
    far is a sentence of the grammar, `finished` that nothing may follow it."""

    __slots__ = ("grammar", "sid", "partial", "valid")

    def __init__(self, grammar: CompiledGrammar) -> None:
        self.grammar = grammar
        self.sid = grammar.initial
        self.partial = NO_PARTIAL
        self.valid = True

    def copy(self) -> GrammarPrefix:
        c = GrammarPrefix.__new__(GrammarPrefix)
        c.grammar, c.sid, c.partial, c.valid = self.grammar, self.sid, self.partial, self.valid
        return c

    def push(self, data: bytes) -> bool:
        """Consume `data` (llama_grammar_accept_str); False, and dead, if it leaves the
        language."""
        if not self.valid:
            return False
        code_points, partial = decode_utf8(bytes(data), self.partial)
        sid = self.sid
        for c in code_points:
            sid = self.grammar.step(sid, c)
            if sid == self.grammar.EMPTY:
                break
        if sid == self.grammar.EMPTY or partial.n_remain < 0:
            self.valid = False
            return False
        self.sid, self.partial = sid, partial
        return True

    def push_str(self, text: str) -> bool:
        return self.push(text.encode("utf-8"))

    @property
    def complete(self) -> bool:
        return self.valid and self.partial.n_remain == 0 and self.grammar.can_end(self.sid)

    @property
    def finished(self) -> bool:
        return self.complete and all(not s for s in self.grammar.sets[self.sid])

    def __repr__(self) -> str:
        n = len(self.grammar.sets[self.sid]) if self.valid else 0
        return f"GrammarPrefix(valid={self.valid}, stacks={n}, complete={self.complete})"


def accepts(grammar: CompiledGrammar, text: bytes) -> bool:
    """True if `text` is a complete sentence of the grammar."""
    p = GrammarPrefix(grammar)
    return p.push(text) and p.complete


def stack_of(grammar: CompiledGrammar, sid: int) -> Optional[StackSet]:
    """The stacks behind an id (for debugging and the C engine)."""
    return grammar.sets[sid] if 0 <= sid < len(grammar.sets) else None
