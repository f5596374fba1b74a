"""`JSONSchemaPrefix`: `JSONPrefix` whose text must also match a JSON schema (`SchemaNode`).

A set of deterministic runs (`_Branch`, a `JSONPrefix` following one alternative of each
union), forked when a union's value starts; `completion()` finds a short way to finish the
text with a matching document (`_minimal` for whole values, `json_numbers` for strings and
numbers). See `JSONSchemaPrefix` for the guarantees and the dead ends left.
"""

from __future__ import annotations

import json
from typing import Any, Callable, FrozenSet, List, Optional, Tuple

from bitnet.constraints.json_numbers import (
    _MAX_COMPLETION,
    _int_reachable,
    _number_candidates,
    _number_suffix,
    _raw,
    _raw_ascii,
    _string_tail,
)
from bitnet.constraints.json_prefix import (
    _COLON,
    _DIGITS,
    _DONE,
    _KEY,
    _KEY_OR_CLOSE,
    _LITERAL,
    _N_INT,
    _N_MINUS,
    _N_ZERO,
    _NUM_COMPLETE,
    _NUM_FINISH,
    _NUMBER,
    _PRINTABLE,
    _S_CHAR,
    _S_ESCAPE,
    _S_HEX,
    _S_UTF8,
    _START,
    _STRING,
    _VALUE,
    _VALUE_OR_CLOSE,
    _WS,
    JSONPrefix,
)
from bitnet.constraints.json_schema import _ANY, _NEVER, SchemaNode


class _Branch(JSONPrefix):
    """A deterministic run of the schema automaton: `JSONPrefix` plus one alternative of every
    union met so far (JSONSchemaPrefix keeps a set of these)."""

    __slots__ = ("_next", "_frames", "_snode", "_nnode", "_ntext", "_compact", "_nospace")

    def __init__(self, node: SchemaNode, max_ws: Optional[int] = None, leading_ws: bool = True,
                 compact: bool = False) -> None:
        super().__init__(top="any", max_ws=max_ws, leading_ws=leading_ws)
        self._compact = compact
        self._nospace = False  # compact: the value being read is a literal (no space after it)
        self._next = node
        # open containers, innermost last: ("o", node, keys used) / ("a", node, items started)
        self._frames: Tuple[Tuple[str, SchemaNode, Any], ...] = ()
        self._snode: Optional[SchemaNode] = None  # the current string's node (None: a key)
        self._nnode: SchemaNode = _ANY  # the current number's node
        self._ntext = ""  # the current number's text

    def _copy_extra(self, c: JSONPrefix) -> None:
        assert isinstance(c, _Branch)
        c._next, c._frames, c._snode = self._next, self._frames, self._snode
        c._nnode, c._ntext, c._compact = self._nnode, self._ntext, self._compact
        c._nospace = self._nospace

    def _end_value(self) -> None:
        JSONPrefix._end_value(self)
        if self._nospace:
            self._ws, self._nospace = 1, False

    def _ws_ok(self, b: int, mode: int) -> bool:
        if not self._compact:
            return JSONPrefix._ws_ok(self, b, mode)
        # llama-cpp-python's json_schema_to_gbnf: `space ::= " "?` after every token, the
        # top-level value included
        if b != 0x20 or (mode == _START and not self.leading_ws):
            return False
        self._ws += 1
        return self._ws <= 1

    @property
    def finished(self) -> bool:
        return self.valid and self._mode == _DONE and (not self._compact or self._ws >= 1)

    def _keys_open(self, node: SchemaNode, used: FrozenSet[str]) -> List[str]:
        """Declared keys that may come next (compact: llama-cpp-python's order, the required
        ones first in declaration order, then optional ones in order, then other keys)."""
        if not self._compact:
            return [k for k in node.props if k not in used]
        missing = [k for k in node.props if k in node.required and k not in used]
        if missing:
            return missing[:1]
        if any(k not in node.props for k in used):
            return []
        optional = [k for k in node.props if k not in node.required]
        last = max((i for i, k in enumerate(optional) if k in used), default=-1)
        return optional[last + 1:]

    def _others_open(self, node: SchemaNode, used: FrozenSet[str]) -> bool:
        """Whether a key outside the declared ones may come next."""
        if node.addl is None:
            return False
        return not self._compact or all(k in used for k in node.props if k in node.required)

    def copy(self) -> _Branch:
        c = _Branch.__new__(_Branch)
        self._copy_into(c)
        return c

    @property
    def at_value(self) -> bool:
        """True when the next non-whitespace byte may start a value (of `_next`)."""
        return self._mode in (_START, _VALUE, _VALUE_OR_CLOSE)

    def _on_start(self, b: int) -> bool:
        node = self._next
        frames = self._frames
        self._nospace = self._compact and node.literal and b not in (0x7B, 0x5B)
        if frames and frames[-1][0] == "a":
            _, anode, count = frames[-1]
            if anode.item(count) is None:
                return False
            self._frames = frames[:-1] + (("a", anode, count + 1),)
        if b == 0x7B:
            kind = "object"
        elif b == 0x5B:
            kind = "array"
        elif b == 0x22:
            kind = "string"
        elif b in (0x74, 0x66):
            kind = "boolean"
            if node.bool_value is not None and node.bool_value != (b == 0x74):
                return False
        elif b == 0x6E:
            kind = "null"
        elif b == 0x2D or b in _DIGITS:
            if "number" not in node.types and "integer" not in node.types:
                return False
            self._int_only = "number" not in node.types
            self._nnode, self._ntext = node, chr(b)
            return self._number_prefix_ok()
        else:
            return False
        if kind not in node.types:
            return False
        if kind == "string":
            self._track, self._snode, self._sval, self._hisur = True, node, "", None
        elif kind == "object":
            self._frames += (("o", node, frozenset()),)
        elif kind == "array":
            self._frames += (("a", node, 0),)
            self._next = node.item(0) or _NEVER
        return True

    def _on_key_start(self) -> bool:
        _, node, used = self._frames[-1]
        self._track, self._snode, self._sval, self._hisur = True, None, "", None
        return self._others_open(node, used) or bool(self._keys_open(node, used))

    def _on_char(self, ch: str) -> bool:
        sval = self._sval = self._sval + ch
        node = self._snode
        if node is None:  # a key
            _, onode, used = self._frames[-1]
            return self._others_open(onode, used) or any(
                k.startswith(sval) for k in self._keys_open(onode, used))
        return node.string_prefix_ok(sval)

    def _next_chars(self) -> Optional[List[str]]:
        """The characters that may come next in the current string (None: not a short list)."""
        sval = self._sval
        node = self._snode
        if node is None:
            _, onode, used = self._frames[-1]
            if self._others_open(onode, used):
                return None
            return [k[len(sval)] for k in self._keys_open(onode, used) if len(k) > len(sval)
                    and k.startswith(sval)]
        if node.max_len is not None and len(sval) >= node.max_len and self._hisur is None:
            return []
        if node.choices is not None:
            return [c[len(sval)] for c in node.choices if len(c) > len(sval) and c.startswith(sval)]
        return None

    def _on_raw(self, b: int) -> bool:
        if not self._compact:
            return True
        # compact: declared keys and enum strings are grammar literals, json.dumps(x) verbatim
        sval = self._sval
        node = self._snode
        if node is None:
            _, onode, used = self._frames[-1]
            if self._others_open(onode, used):
                return True
            texts: Any = self._keys_open(onode, used)
        elif node.choices is not None:
            texts = node.choices
        else:
            return True
        raw = _raw_ascii(sval) + (b"\\u%04x" % self._hisur if self._hisur is not None else b"")
        raw += self._escape_raw() if self._sub != _S_CHAR else b""
        raw += bytes((b,))
        for t in texts:
            lit = _raw_ascii(t) + b'"'
            if lit.startswith(raw):
                return True
        return False

    def _escape_raw(self) -> bytes:
        """The raw bytes of the character being read (escape or UTF-8) so far."""
        if self._sub == _S_UTF8:
            return self._ubuf
        if self._sub == _S_ESCAPE:
            return b"\\"
        return b"\\u" + self._ubuf

    def _on_partial(self) -> bool:
        chars = self._next_chars()
        if self._sub == _S_CHAR:  # a high surrogate escape is pending: its pair must be wanted
            if chars is None:
                return True
            pending = self._hisur
            assert pending is not None
            return any(ord(ch) >= 0x10000 and 0xD800 + ((ord(ch) - 0x10000) >> 10) == pending
                       for ch in chars) or any(ch == chr(pending) for ch in chars)
        if chars is None:
            node = self._snode
            if node is None or node._partial is None or self._hisur is not None:
                return True
            typed = self._ubuf.decode("latin-1").lower() if self._sub == _S_HEX else ""
            if typed[:1] == "d" and (len(typed) < 2 or typed[1] in "89ab"):
                return True  # the high half of a surrogate pair: judged with its low half
            # a pattern: some character so begun must keep the string a possible match
            chars = [ch for ch in self._pattern_chars(node) if node.string_prefix_ok(self._sval + ch)]
        if self._sub == _S_ESCAPE:
            return bool(chars) or self._hisur is not None
        done = self._ubuf
        if self._sub == _S_UTF8:
            return any(ch.encode("utf-8").startswith(done) for ch in chars)
        hexes = []
        pending = self._hisur
        for ch in chars:
            code = ord(ch)
            if code >= 0x10000:  # written as a surrogate pair
                code -= 0x10000
                if pending is None:
                    code = 0xD800 + (code >> 10)
                elif 0xD800 + (code >> 10) == pending:
                    code = 0xDC00 + (code & 0x3FF)
                else:
                    continue
            elif pending is not None:
                continue
            hexes.append(f"{code:04x}")
        if pending is not None and chr(pending) in chars:
            return True  # a lone surrogate wanted: judged once it is flushed
        return any(h.startswith(done.decode().lower()) for h in hexes)

    def _pattern_chars(self, node: SchemaNode) -> List[str]:
        """Characters to try for a partial character of a pattern string: printable ASCII,
        the pattern's own characters, and the lowest / highest that the bytes so far allow."""
        out = list(_PRINTABLE) + [ch for ch in node.pattern or "" if ord(ch) > 0x7E] + list("\t\n")
        done = self._ubuf
        typed = done.decode("latin-1")
        if self._sub == _S_UTF8 and done:
            need = self._count
            for fill in (bytes([self._lo]) + b"\x80" * (need - 1), bytes([self._hi]) + b"\xbf" * (need - 1)):
                try:
                    out.append((done + fill).decode("utf-8"))
                except UnicodeDecodeError:
                    pass
        elif self._sub == _S_HEX:
            for digit in ("0", "f"):
                code = int(typed + digit * (4 - len(typed)), 16) if len(typed) < 4 else 0
                if not 0xD800 <= code <= 0xDFFF:
                    out.append(chr(code))
        return out

    def _on_string_end(self) -> bool:
        node = self._snode
        if node is not None:
            return node.string_ok(self._sval)
        key = self._sval
        _, onode, used = self._frames[-1]
        if key in used:
            return False
        if key in onode.props:
            if key not in self._keys_open(onode, used):
                return False
            nxt: Optional[SchemaNode] = onode.props[key]
        else:
            nxt = onode.addl if self._others_open(onode, used) else None
        if nxt is None:
            return False
        self._next = nxt
        self._frames = self._frames[:-1] + (("o", onode, used | {key}),)
        return True

    def _number_prefix_ok(self) -> bool:
        """Whether the number so far can still end inside the bounds (exact for integers, an
        integer multipleOf included; for other numbers up to the rounding of decimals to
        floats, multipleOf aside)."""
        node = self._nnode
        if not node.has_bounds():
            return True
        text = self._ntext
        if not self._int_only:
            return _number_suffix(node, text) is not None
        neg = text.startswith("-")
        lo, hi = node.int_range()
        m = node.multiple_of if isinstance(node.multiple_of, int) else 1
        return _int_reachable(neg, text[1:] if neg else text, lo, hi, m)

    def _on_number_byte(self, b: int) -> bool:
        self._ntext += chr(b)
        return self._number_prefix_ok()

    def _number_value_ok(self) -> bool:
        node = self._nnode
        if not node.has_bounds() and node.multiple_of is None:
            return True
        return node.number_ok(json.loads(self._ntext))

    def _on_number_end(self) -> bool:
        return self._number_value_ok()

    @property
    def complete(self) -> bool:
        if not JSONPrefix.complete.fget(self):  # type: ignore[attr-defined]
            return False
        return self._mode != _NUMBER or self._number_value_ok()

    def _on_comma(self) -> bool:
        kind, node, data = self._frames[-1]
        if kind == "a":
            item = node.item(data)
            if item is None:
                return False
            self._next = item
            return True
        return self._others_open(node, data) or bool(self._keys_open(node, data))

    def _on_close(self, kind: str) -> bool:
        k, node, data = self._frames[-1]
        if k == "o" and not node.required <= data:
            return False
        if k == "a" and data < node.min_items:
            return False
        self._frames = self._frames[:-1]
        self._nospace = self._compact and node.literal
        return True

    # --- completion: a short way to a complete document -----------------------------------
    def _missing(self) -> List[str]:
        _, node, used = self._frames[-1]
        return [k for k in node.props if k in node.required and k not in used] + sorted(
            k for k in node.required if k not in used and k not in node.props)

    def _step(self) -> bytes:  # noqa: C901
        """Bytes that bring this (live, incomplete) state closer to complete."""
        mode = self._mode
        if mode == _STRING:
            if self._sub != _S_CHAR:
                return self._partial_step()
            if self._hisur is not None:  # the low half of a surrogate pair the text wants
                wanted = self._next_chars()
                for ch in wanted or []:
                    code = ord(ch) - 0x10000
                    if code >= 0 and 0xD800 + (code >> 10) == self._hisur:
                        return b"\\u%04x" % (0xDC00 + (code & 0x3FF))
                if wanted is None:
                    return b"\\udc00"
            if self._snode is None:
                _, onode, used = self._frames[-1]
                keys = sorted((k for k in self._keys_open(onode, used) if k.startswith(self._sval)),
                              key=lambda k: (k not in onode.required, len(k)))
                if keys:
                    return _raw(keys[0][len(self._sval):]) + b'"'
                key = self._sval
                while key in used or key in onode.props:
                    key += "_"
                return _raw(key[len(self._sval):]) + b'"'
            return _raw(_string_tail(self._snode, self._sval)) + b'"'
        if mode == _NUMBER:
            if self._sub in _NUM_COMPLETE and self._number_value_ok():
                return self._after_value_step()
            return _number_tail(self._nnode, self._ntext, self._sub)
        if mode == _LITERAL:
            return self._lit
        if mode in (_START, _VALUE):
            return self._value_step()
        if mode == _VALUE_OR_CLOSE:
            _, node, count = self._frames[-1]
            return self._value_step() if count < node.min_items else b"]"
        if mode in (_KEY, _KEY_OR_CLOSE):
            _, node, used = self._frames[-1]
            missing = self._missing()
            if missing:
                return b'"' + _raw(missing[0]) + b'"'
            if mode == _KEY_OR_CLOSE:
                return b"}"
            free = self._keys_open(node, used)
            if free:
                return b'"' + _raw(min(free, key=len)) + b'"'
            key = "_"
            while key in node.props or key in used:
                key += "_"
            return b'"' + _raw(key) + b'"'
        if mode == _COLON:
            return b":"
        return self._after_value_step()

    def _partial_step(self) -> bytes:
        """Bytes that finish a partial UTF-8 character or escape with an acceptable char."""
        sval = self._sval
        if self._snode is None:
            _, onode, used = self._frames[-1]
            wanted = [k[len(sval)] for k in onode.props if k not in used and k.startswith(sval)
                      and len(k) > len(sval)]
        elif self._snode.choices is not None:
            wanted = [c[len(sval)] for c in self._snode.choices if c.startswith(sval) and len(c) > len(sval)]
        else:
            wanted = []
        exact = len(wanted)  # the characters a declared key / a choice needs come first
        if self._snode is not None:
            wanted += [ch for ch in (self._snode.pattern or "") if ch.isprintable()]
        cands: List[bytes] = []
        done = self._ubuf
        for i, ch in enumerate(wanted + list("a0 A\u00e9\u4e2d\U0001f600\n")):
            if i == exact:
                first = len(cands)
            code = ord(ch)
            if code >= 0x10000:  # a surrogate pair: the half that comes next
                code -= 0x10000
                code = 0xDC00 + (code & 0x3FF) if self._hisur is not None else 0xD800 + (code >> 10)
            if self._sub == _S_UTF8:
                enc = ch.encode("utf-8")
                if enc.startswith(done) and len(enc) > len(done):
                    cands.append(enc[len(done):])
            elif self._sub == _S_ESCAPE:
                esc = json.dumps(ch)[1:-1]
                if esc.startswith("\\") and len(esc) == 2:
                    cands.append(esc[1:].encode())
                cands.append(f"u{code:04x}".encode())
            else:  # _S_HEX
                h = f"{code:04x}"
                if h.startswith(done.decode().lower()):
                    cands.append(h[len(done):].encode())
        cands.append(bytes([self._lo]) + b"\x80" * (self._count - 1) if self._sub == _S_UTF8
                     else b"n" if self._sub == _S_ESCAPE else b"0" * self._count)
        for cand in cands[:first]:
            if self.copy().push(cand):
                return cand
        for whole in (True, False):  # then: ones that finish a character
            for cand in cands[first:]:
                c = self.copy()
                if c.push(cand) and (c._hisur is None or not whole):
                    return cand
        return cands[-1]

    def _value_step(self) -> bytes:
        """A whole minimal value for `_next` (a union is narrowed to the alternative used)."""
        alt, text = _minimal_alt(self._next)
        self._next = alt
        return text

    def _after_value_step(self) -> bytes:
        kind, node, data = self._frames[-1]
        if kind == "o":
            return b"," if self._missing() else b"}"
        return b"," if data < node.min_items else b"]"

    def completion(self) -> bytes:
        """Bytes that complete the text into a document matching the schema (b"" if it is).

        Raises ValueError when none is found (a dead end or an unsatisfiable schema)."""
        if not self.valid:
            raise ValueError("not a valid JSON prefix")
        return _drive(JSONSchemaPrefix._of([self.copy()]), b"", lambda b, depth: b._step(), 0)


def _number_tail(node: SchemaNode, text: str, sub: int) -> bytes:
    """Bytes that finish the number `text` inside `node`'s bounds (ValueError if not found)."""

    def ok(t: str) -> bool:
        b = _Branch(node)
        return b.push((text + t).encode()) and b.complete

    cands = [_NUM_FINISH.get(sub, b"").decode()]
    tail = _number_suffix(node, text)
    if tail is not None:
        cands.append(tail)
    if sub in (_N_ZERO, _N_INT, _N_MINUS):  # grow the integer part
        neg = text.startswith("-")
        digits = text[1:] if neg else text
        lo, hi = node.int_range()
        m = node.multiple_of if isinstance(node.multiple_of, int) else 1
        if not digits:  # "-" alone
            top = -1 if hi is None else min(hi, -1)
            cands += [str(-v) for v in (top, (top // m) * m, lo if lo is not None else top)
                      if v <= -1 and (lo is None or v >= lo)]
        elif digits[0] != "0":
            d = int(digits)
            # the magnitudes the bounds allow
            mlo = (0 if hi is None else max(-hi, 0)) if neg else max(lo or 0, 0)
            mhi = (None if lo is None else -lo) if neg else hi
            for k in range(1, 40):
                a, b = max(d * 10**k, mlo), (d + 1) * 10**k - 1
                if mhi is not None:
                    if d * 10**k > mhi:
                        break
                    b = min(b, mhi)
                mag = -(-a // m) * m
                if a <= mag <= b and node.number_ok(-mag if neg else mag):
                    cands.append(str(mag)[len(digits):])
                    break
    for t in cands:
        if ok(t):
            return t.encode()
    # a short search over suffixes, checked by the automaton
    frontier = [""]
    for _ in range(4):
        nxt = []
        for t0 in frontier:
            for ch in "0159e-":
                t = t0 + ch
                b = _Branch(node)
                if not b.push((text + t).encode()):
                    continue
                if b.complete:
                    return t.encode()
                nxt.append(t)
        frontier = nxt
    raise ValueError(f"no completion of the number {text!r} found")


def _minimal(node: SchemaNode, depth: int = 0) -> bytes:
    """A short document matching `node` (ValueError if none is found)."""
    return _minimal_alt(node, depth)[1]


def _minimal_alt(node: SchemaNode, depth: int = 0) -> Tuple[SchemaNode, bytes]:
    """(the non-union alternative used, a short document matching it)."""
    if depth > 32:
        raise ValueError("schema too deep (or recursive without a way out)")
    errors = []
    for alt in node.flat():
        if alt.const_text is not None:
            return alt, alt.const_text
        for kind in ("null", "boolean", "integer", "number", "string", "array", "object"):
            if kind not in alt.types:
                continue
            try:
                return alt, _minimal_of(alt, kind, depth)
            except ValueError as e:
                errors.append(str(e))
    raise ValueError(f"no document matches this schema ({'; '.join(errors[:3])})")


def _minimal_of(node: SchemaNode, kind: str, depth: int) -> bytes:
    if kind == "null":
        return b"null"
    if kind == "boolean":
        return b"false" if node.bool_value is False else b"true"
    if kind in ("integer", "number"):
        for text in _number_candidates(node, kind == "integer"):
            if node.number_ok(json.loads(text)):
                return text.encode()
        raise ValueError("no number found within the bounds")
    if kind == "string":
        return b'"' + _raw(_string_tail(node, "")) + b'"'
    # a run that must take this kind: push the opening byte and let _step finish it
    opening = b"[" if kind == "array" else b"{"
    w = JSONSchemaPrefix._of([_Branch(node)])
    if not w.push(opening):
        raise ValueError(f"no {kind} allowed")

    def step(b: _Branch, depth: int) -> bytes:
        if b._mode not in (_START, _VALUE, _VALUE_OR_CLOSE) or \
                (b._mode == _VALUE_OR_CLOSE and b._frames[-1][2] >= b._frames[-1][1].min_items):
            return b._step()
        b._next, text = _minimal_alt(b._next, depth + 1)
        return text

    return opening + _drive(w, opening, step, depth)


def _drive(w: JSONSchemaPrefix, done: bytes, step: Callable[[_Branch, int], bytes], depth: int) -> bytes:
    """Push `step(run)` of the first live run until `w` is complete; the bytes pushed."""
    out = b""
    while not w.complete:
        if len(out) > _MAX_COMPLETION:
            raise ValueError("no short completion found")
        piece = step(w._branches[0], depth)
        if not w.push(piece):
            raise ValueError(f"no completion found after {done + out!r}")
        out += piece
    return out


class JSONSchemaPrefix:
    """`JSONPrefix` whose text must also match a schema of the subset in `SCHEMA_SUBSET`.

    A set of deterministic runs (`_Branch`), forked at each union (anyOf / oneOf / enum / a
    $ref) when its value starts; the text is a valid prefix while one run is alive, complete
    when one run is. Object keys: declared ones (any order, each at most once) and, when
    additionalProperties allows, others; "," only while a member may follow, "}" only once
    the required keys are there. Arrays: item schemas by position, "]" / "," by
    minItems / maxItems. Strings: decoded (escapes, surrogate pairs) and checked character by
    character (maxLength, const prefixes, `pattern` by `regex` partial matching, a partial
    escape or UTF-8 sequence only if some character so begun fits), and whole at the closing
    quote. Numbers: pruned while written so that they can still land inside the bounds
    (exact for integers, integer multipleOf included; for other numbers up to decimal ->
    float rounding); bounds and multipleOf are checked on the complete number. Dead ends
    left: a non-integer multipleOf, a pattern whose partial match cannot meet the length
    limits, characters outside the sample `_pattern_chars` tries. Raises
    NotImplementedError for a schema outside the subset, ValueError for a malformed one.
    """

    __slots__ = ("_branches", "valid", "max_ws", "leading_ws", "top")

    def __init__(self, schema: Any, max_ws: Optional[int] = None, leading_ws: bool = True,
                 compact: bool = False) -> None:
        node = schema if isinstance(schema, SchemaNode) else SchemaNode(schema)
        self.max_ws, self.leading_ws, self.top = max_ws, leading_ws, "any"
        self._branches: List[_Branch] = [_Branch(node, max_ws=max_ws, leading_ws=leading_ws,
                                                 compact=compact)]
        self.valid = True

    @staticmethod
    def _of(branches: List[_Branch]) -> JSONSchemaPrefix:
        w = JSONSchemaPrefix.__new__(JSONSchemaPrefix)
        w.max_ws, w.leading_ws, w.top, w.valid = None, True, "any", True
        w._branches = branches
        return w

    def copy(self) -> JSONSchemaPrefix:
        c = JSONSchemaPrefix.__new__(JSONSchemaPrefix)
        c.max_ws, c.leading_ws, c.top, c.valid = self.max_ws, self.leading_ws, self.top, self.valid
        c._branches = [b.copy() for b in self._branches]
        return c

    @staticmethod
    def _expand(branch: _Branch) -> List[_Branch]:
        """`branch` with a union `_next` replaced by one branch per alternative."""
        if branch._next.alts is None:
            return [branch]
        out = []
        for alt in branch._next.flat():
            c = branch.copy()
            c._next = alt
            out.append(c)
        return out

    def push(self, data: bytes) -> bool:
        """Consume `data`; False (and dead) when no run can continue."""
        if not self.valid:
            return False
        branches = self._branches
        for b in data:
            nxt = []
            for br in branches:
                runs = (self._expand(br) if br.at_value and b not in _WS
                        and not (b == 0x5D and br._mode == _VALUE_OR_CLOSE) else [br])
                for run in runs:
                    if run._byte(b):
                        nxt.append(run)
            if not nxt:
                self.valid = False
                self._branches = []
                return False
            branches = nxt
        self._branches = branches
        return True

    def push_str(self, text: str) -> bool:
        return self.push(text.encode("utf-8"))

    @property
    def complete(self) -> bool:
        return self.valid and any(b.complete for b in self._branches)

    @property
    def finished(self) -> bool:
        return self.valid and all(b.finished for b in self._branches)

    def completion(self) -> bytes:
        """Bytes that complete the text into a matching document (b"" if it is); ValueError
        when no run finds one."""
        if not self.valid:
            raise ValueError("not a valid JSON prefix")
        best: Optional[bytes] = None
        errors = []
        for br in self._branches:
            for run in (self._expand(br) if br.at_value else [br]):
                try:
                    tail = run.completion()
                except ValueError as e:
                    errors.append(str(e))
                    continue
                if best is None or len(tail) < len(best):
                    best = tail
        if best is None:
            raise ValueError(f"no completion found: {'; '.join(errors[:3])}")
        return best

    def __repr__(self) -> str:
        return f"JSONSchemaPrefix(valid={self.valid}, runs={len(self._branches)}, complete={self.complete})"
