"""JSON-constrained decoding without a grammar engine: a byte-level JSON prefix automaton.

Role: `response_format={"type": "json_object"}` in `bitnet.llama_compat` (llama-cpp-python does
it with llama.cpp's GBNF `JSON_GBNF`). Instead of a grammar, `JSONPrefix` reads the generated
bytes one at a time and says whether they are still a prefix of a JSON text of the required
kind and whether that text is complete; `JSONConstraint` lets the sampler reject a token whose
bytes would leave that language (see `Llama._sample_constrained`: reject-and-resample).

    p = JSONPrefix(top="object")
    p.push(b'{"a": [1, tr')   # True: still a valid prefix
    p.complete                 # False
    p.completion()             # b'ue]}' -- a shortest-ish way to finish it
    p.push(b'ue]}'), p.complete  # (True, True)

What `JSONPrefix` accepts, exactly: the bytes of an RFC 8259 JSON text encoded in UTF-8
(`ws value`, the value an object when top="object", any value when top="any"), with these
limits:
- no whitespace after the top-level value: once it is complete nothing but the end may follow
  (so a constrained generation ends right after the closing brace); with
  `leading_ws=False` none before it either (JSON_GBNF's `root ::= object`);
- at most `max_ws` whitespace bytes in a row anywhere (None: unbounded), to stop runaway
  whitespace as llama.cpp's grammar does with `ws ::= | " " | "\\n" [ \\t]{0,20}`;
- strings hold any Unicode scalar value except `"`, `\\` and U+0000..U+001F (so DEL is
  allowed, unlike JSON_GBNF), as well-formed UTF-8 (no overlongs, no surrogates, nothing above
  U+10FFFF); a multi-byte character may be split across `push` calls (token pieces split
  UTF-8); `\\uXXXX` takes any 4 hex digits, lone surrogates included (as Python's json does);
- numbers: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, no digit limit;
  NaN / Infinity (a Python json extension) are rejected.
Equivalently: a complete text is one that `json.loads` parses (strictly, without NaN/Infinity
constants) and that does not end in whitespace; a prefix is accepted iff some completion is.

`JSONSchemaPrefix` adds JSON schemas (`SCHEMA_SUBSET`: types and type lists, enum / const of
any values, anyOf / oneOf, local $ref with $defs / definitions (recursion included),
properties / required / additionalProperties, items / prefixItems / minItems / maxItems,
pattern (prefixes by the `regex` module's partial matching) / minLength / maxLength, number
bounds and multipleOf), for `response_format={"type": "json_object", "schema": ...}` and tool
arguments. Soundness: a complete text validates (jsonschema is the test oracle); a prefix of a
valid document is never refused; and the automaton avoids dead ends (an accepted prefix has a
completion, which `completion()` finds) except where noted on `JSONSchemaPrefix`. Readings of
llama.cpp's converter kept on purpose: "properties" without "additionalProperties" closes the
object, oneOf is read as anyOf, an "integer" has no fraction or exponent. `compact=True`
follows the layout of llama-cpp-python's `json_schema_to_gbnf` grammars (see `JSONOutput`).
`LiteralPrefix` accepts one of a few fixed strings (the function-name grammars).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple
from urllib.parse import unquote

import regex

__all__ = ["JSONPrefix", "JSONSchemaPrefix", "LiteralPrefix", "SchemaNode", "SCHEMA_SUBSET",
           "JSONConstraint", "JSONOutput"]

# modes of JSONPrefix
_START = 0  # before the top-level value (whitespace allowed)
_VALUE = 1  # a value is required (after "," in an array, after ":")
_VALUE_OR_CLOSE = 2  # after "[": a value or "]"
_KEY_OR_CLOSE = 3  # after "{": '"' or "}"
_KEY = 4  # after "," in an object: '"'
_COLON = 5  # after a key: ":"
_AFTER = 6  # after a value inside a container: "," or the closing bracket
_STRING = 7  # inside a string
_NUMBER = 8  # inside a number (sub-state in _sub)
_LITERAL = 9  # inside true/false/null (remaining bytes in _lit)
_DONE = 10  # the top-level value is complete

# string sub-states
_S_CHAR = 0
_S_ESCAPE = 1  # after a backslash
_S_HEX = 2  # inside \uXXXX (_count digits left)
_S_UTF8 = 3  # inside a multi-byte character (_count continuation bytes left)

# number sub-states; the ones in _NUM_COMPLETE may end the number
_N_MINUS = 0  # "-"
_N_ZERO = 1  # "0" or "-0"
_N_INT = 2  # [1-9][0-9]*
_N_DOT = 3  # "."
_N_FRAC = 4  # "." digits
_N_EXP = 5  # "e"
_N_EXP_SIGN = 6  # "e+" / "e-"
_N_EXP_DIGITS = 7  # exponent digits
_NUM_COMPLETE = (_N_ZERO, _N_INT, _N_FRAC, _N_EXP_DIGITS)
_NUM_FINISH = {_N_MINUS: b"0", _N_DOT: b"0", _N_EXP: b"0", _N_EXP_SIGN: b"0"}

_WS = frozenset(b" \t\n\r")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord('"'): '"', ord("\\"): "\\", ord("/"): "/", ord("b"): "\b", ord("f"): "\f",
            ord("n"): "\n", ord("r"): "\r", ord("t"): "\t"}
_LITERALS = {ord("t"): b"rue", ord("f"): b"alse", ord("n"): b"ull"}
_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


class JSONPrefix:
    """Incremental acceptor of JSON text prefixes (the language is in the module docstring).

    `push(data)` consumes bytes and returns False as soon as they cannot continue a valid
    text; after a False the instance is dead (every later push is False). `valid` says
    whether it is alive, `complete` whether the bytes so far are a whole JSON text. `copy()`
    is cheap (a few scalars and a short string), for trying a continuation.
    """

    __slots__ = ("top", "max_ws", "leading_ws", "valid", "_mode", "_stack", "_sub", "_count", "_lo",
                 "_hi", "_lit", "_is_key", "_ws", "_int_only", "_track", "_sval", "_hisur", "_ubuf")

    def __init__(self, top: str = "object", max_ws: Optional[int] = None, leading_ws: bool = True) -> None:
        if top not in ("object", "any"):
            raise ValueError(f"top must be 'object' or 'any', got {top!r}")
        self.top = top
        self.max_ws = max_ws
        self.leading_ws = leading_ws
        self.valid = True
        self._mode = _START
        self._stack = ""  # open containers, innermost last: "o" object, "a" array
        self._sub = 0  # string / number sub-state
        self._count = 0  # hex digits or UTF-8 continuation bytes still expected
        self._lo, self._hi = 0x80, 0xBF  # range of the next UTF-8 continuation byte
        self._lit = b""  # rest of a literal
        self._is_key = False  # the current string is an object key
        self._ws = 0  # whitespace bytes in a row
        # for subclasses (the schema branch): numbers without fraction or exponent when
        # `_int_only`; when `_track`, the current string is decoded into `_sval` char by char
        # (`_on_char`, `_on_string_end`; `_hisur` a pending high surrogate escape, `_ubuf` the
        # bytes of a partial UTF-8 character or \u escape)
        self._int_only = False
        self._track = False
        self._sval = ""
        self._hisur: Optional[int] = None
        self._ubuf = b""

    def copy(self) -> JSONPrefix:
        """An independent copy of this state."""
        c = JSONPrefix.__new__(JSONPrefix)
        self._copy_into(c)
        return c

    def _copy_into(self, c: JSONPrefix) -> None:
        c.top, c.max_ws, c.leading_ws, c.valid = self.top, self.max_ws, self.leading_ws, self.valid
        c._mode, c._stack, c._sub, c._count = self._mode, self._stack, self._sub, self._count
        c._lo, c._hi, c._lit = self._lo, self._hi, self._lit
        c._is_key, c._ws = self._is_key, self._ws
        c._int_only, c._track, c._sval = self._int_only, self._track, self._sval
        c._hisur, c._ubuf = self._hisur, self._ubuf
        self._copy_extra(c)

    # --- hooks (no-ops here; JSONSchemaPrefix overrides them) -------------------------------
    def _copy_extra(self, c: JSONPrefix) -> None:
        pass

    def _on_start(self, b: int) -> bool:
        """A value starts with byte `b`; False rejects it."""
        return True

    def _on_key_start(self) -> bool:
        """An object key starts (may set `_track`); False rejects it."""
        return True

    def _on_char(self, ch: str) -> bool:
        """One more decoded character of a tracked string; False rejects it."""
        return True

    def _on_string_end(self) -> bool:
        """A tracked string (`_sval`, key or value) closes; False rejects the quote."""
        return True

    def _on_raw(self, b: int) -> bool:
        """Byte `b` of a tracked string (its closing quote included); False rejects it."""
        return True

    def _on_partial(self) -> bool:
        """A tracked string is inside a character (`_ubuf`: its UTF-8 bytes, or the hex digits
        of a \\u escape); False when no character so begun can be accepted."""
        return True

    def _on_number_byte(self, b: int) -> bool:
        """The current number grew by `b`; False rejects it."""
        return True

    def _on_number_end(self) -> bool:
        """The current number ended (before the byte after it); False rejects that byte."""
        return True

    def _on_comma(self) -> bool:
        """A "," inside the innermost container; False rejects it."""
        return True

    def _on_close(self, kind: str) -> bool:
        """The innermost container ("o" / "a") closes; False rejects it."""
        return True

    @property
    def complete(self) -> bool:
        """True when the bytes pushed so far are a whole JSON text of the required kind."""
        if not self.valid:
            return False
        if self._mode == _DONE:
            return True
        return self._mode == _NUMBER and not self._stack and self._sub in _NUM_COMPLETE

    @property
    def finished(self) -> bool:
        """True when complete and no byte may follow (everything but a top-level number)."""
        return self.valid and self._mode == _DONE

    def push(self, data: bytes) -> bool:
        """Consume `data`; False (and dead) when the text is no longer a valid prefix."""
        if not self.valid:
            return False
        for b in data:
            if not self._byte(b):
                self.valid = False
                return False
        return True

    def push_str(self, text: str) -> bool:
        """`push(text.encode("utf-8"))`."""
        return self.push(text.encode("utf-8"))

    # --- one byte ---------------------------------------------------------------------------
    def _byte(self, b: int) -> bool:  # noqa: C901 (one flat state machine reads best)
        mode = self._mode
        if mode == _STRING:
            return self._string_byte(b)
        if mode == _NUMBER:
            if self._number_byte(b):
                return self._on_number_byte(b)
            if self._sub not in _NUM_COMPLETE or not self._on_number_end():
                return False
            # the number ended before `b`: finish it and read `b` after it
            self._end_value()
            mode = self._mode
            if mode == _DONE:
                return False
        if mode == _LITERAL:
            if b != self._lit[0]:
                return False
            self._lit = self._lit[1:]
            if not self._lit:
                self._end_value()
            return True
        if b in _WS:
            return self._ws_ok(b, mode)
        self._ws = 0
        if mode in (_START, _VALUE, _VALUE_OR_CLOSE):
            if mode == _VALUE_OR_CLOSE and b == 0x5D:  # "]"
                return self._close("a")
            if mode == _START and self.top == "object" and b != 0x7B:
                return False
            return self._start_value(b)
        if mode in (_KEY_OR_CLOSE, _KEY):
            if b == 0x22:  # '"'
                self._mode, self._sub, self._is_key = _STRING, _S_CHAR, True
                self._track = False
                return self._on_key_start()
            return mode == _KEY_OR_CLOSE and b == 0x7D and self._close("o")
        if mode == _COLON:
            if b != 0x3A:  # ":"
                return False
            self._mode = _VALUE
            return True
        if mode == _AFTER:
            inner = self._stack[-1]
            if b == 0x2C:  # ","
                self._mode = _KEY if inner == "o" else _VALUE
                return self._on_comma()
            if b == (0x7D if inner == "o" else 0x5D):
                return self._close(inner)
            return False
        return False  # _DONE

    def _ws_ok(self, b: int, mode: int) -> bool:
        """Whitespace byte `b` outside strings and numbers."""
        if mode == _DONE or (mode == _START and not self.leading_ws):
            return False
        self._ws += 1
        return self.max_ws is None or self._ws <= self.max_ws

    def _start_value(self, b: int) -> bool:
        self._int_only, self._track = False, False
        if not self._on_start(b):
            return False
        if b == 0x7B:  # "{"
            self._stack += "o"
            self._mode = _KEY_OR_CLOSE
        elif b == 0x5B:  # "["
            self._stack += "a"
            self._mode = _VALUE_OR_CLOSE
        elif b == 0x22:
            self._mode, self._sub, self._is_key = _STRING, _S_CHAR, False
        elif b == 0x2D:  # "-"
            self._mode, self._sub = _NUMBER, _N_MINUS
        elif b in _DIGITS:
            self._mode, self._sub = _NUMBER, (_N_ZERO if b == 0x30 else _N_INT)
        elif b in _LITERALS:
            self._mode, self._lit = _LITERAL, _LITERALS[b]
        else:
            return False
        return True

    def _close(self, kind: str) -> bool:
        if not self._on_close(kind):
            return False
        self._stack = self._stack[:-1]
        self._end_value()
        return True

    def _end_value(self) -> None:
        self._mode = _AFTER if self._stack else _DONE

    def _string_byte(self, b: int) -> bool:  # noqa: C901
        sub = self._sub
        track = self._track
        if track and not self._on_raw(b):
            return False
        if sub == _S_CHAR:
            if b == 0x22:
                if track and not self._end_tracked():
                    return False
                if self._is_key:
                    self._mode = _COLON
                else:
                    self._end_value()
                return True
            if b == 0x5C:  # backslash
                self._sub = _S_ESCAPE
                return not track or self._on_partial()
            if b < 0x20:
                return False
            if b < 0x80:
                return not track or self._char(chr(b))
            # UTF-8 lead byte (RFC 3629 table 3-7 of Unicode: well-formed sequences only)
            if 0xC2 <= b <= 0xDF:
                self._count, self._lo, self._hi = 1, 0x80, 0xBF
            elif b == 0xE0:
                self._count, self._lo, self._hi = 2, 0xA0, 0xBF
            elif b == 0xED:  # no surrogates
                self._count, self._lo, self._hi = 2, 0x80, 0x9F
            elif 0xE1 <= b <= 0xEF:
                self._count, self._lo, self._hi = 2, 0x80, 0xBF
            elif b == 0xF0:
                self._count, self._lo, self._hi = 3, 0x90, 0xBF
            elif 0xF1 <= b <= 0xF3:
                self._count, self._lo, self._hi = 3, 0x80, 0xBF
            elif b == 0xF4:  # nothing above U+10FFFF
                self._count, self._lo, self._hi = 3, 0x80, 0x8F
            else:
                return False
            self._sub = _S_UTF8
            if track:
                self._ubuf = bytes((b,))
                return self._on_partial()
            return True
        if sub == _S_UTF8:
            if not self._lo <= b <= self._hi:
                return False
            self._lo, self._hi = 0x80, 0xBF
            self._count -= 1
            if track:
                self._ubuf += bytes((b,))
            if self._count == 0:
                self._sub = _S_CHAR
                if track:
                    return self._char(self._ubuf.decode("utf-8"))
            return not track or self._on_partial()
        if sub == _S_ESCAPE:
            if b == 0x75:  # "u"
                self._sub, self._count = _S_HEX, 4
                self._ubuf = b""
                return not track or self._on_partial()
            if b in _ESCAPES:
                self._sub = _S_CHAR
                return not track or self._char(_ESCAPES[b])
            return False
        # _S_HEX
        if b not in _HEX:
            return False
        self._count -= 1
        if track:
            self._ubuf += bytes((b,))
        if self._count == 0:
            self._sub = _S_CHAR
            if track:
                return self._code(int(self._ubuf, 16))
        return not track or self._on_partial()

    def _char(self, ch: str) -> bool:
        """A decoded character of a tracked string (after a pending lone high surrogate)."""
        if self._hisur is not None:
            pending, self._hisur = self._hisur, None
            if not self._on_char(chr(pending)):
                return False
        return self._on_char(ch)

    def _code(self, code: int) -> bool:
        """A \\uXXXX escape of a tracked string; surrogate pairs combine as in Python's json."""
        if 0xDC00 <= code <= 0xDFFF and self._hisur is not None:
            pending, self._hisur = self._hisur, None
            return self._on_char(chr(0x10000 + ((pending - 0xD800) << 10) + (code - 0xDC00)))
        if 0xD800 <= code <= 0xDBFF:
            ok = True
            if self._hisur is not None:
                ok = self._on_char(chr(self._hisur))
            self._hisur = code
            return ok and self._on_partial()
        return self._char(chr(code))

    def _end_tracked(self) -> bool:
        if self._hisur is not None:
            pending, self._hisur = self._hisur, None
            if not self._on_char(chr(pending)):
                return False
        self._track = False
        return self._on_string_end()

    def _number_byte(self, b: int) -> bool:
        """Extend the number with `b`; False when `b` is not part of it (state unchanged)."""
        sub = self._sub
        digit = b in _DIGITS
        if sub == _N_MINUS:
            if not digit:
                return False
            self._sub = _N_ZERO if b == 0x30 else _N_INT
        elif sub in (_N_ZERO, _N_INT):
            if digit and sub == _N_INT:
                pass
            elif self._int_only:
                return False
            elif b == 0x2E:  # "."
                self._sub = _N_DOT
            elif b in (0x65, 0x45):  # "e" "E"
                self._sub = _N_EXP
            else:
                return False
        elif sub in (_N_DOT, _N_FRAC):
            if digit:
                self._sub = _N_FRAC
            elif sub == _N_FRAC and b in (0x65, 0x45):
                self._sub = _N_EXP
            else:
                return False
        elif sub in (_N_EXP, _N_EXP_SIGN):
            if digit:
                self._sub = _N_EXP_DIGITS
            elif sub == _N_EXP and b in (0x2B, 0x2D):  # "+" "-"
                self._sub = _N_EXP_SIGN
            else:
                return False
        else:  # _N_EXP_DIGITS
            return digit
        return True

    # --- completion -------------------------------------------------------------------------
    def completion(self) -> bytes:
        """Bytes that make the text so far complete (b"" if it is); for tests and repairs.

        Raises ValueError on a dead state.
        """
        if not self.valid:
            raise ValueError("not a valid JSON prefix")
        if self.complete:
            return b""
        mode, tail = self._mode, b""
        if mode == _STRING:
            if self._sub == _S_UTF8:
                tail += bytes([self._lo]) + b"\x80" * (self._count - 1)
            elif self._sub == _S_ESCAPE:
                tail += b"n"
            elif self._sub == _S_HEX:
                tail += b"0" * self._count
            tail += b'"' + (b":null" if self._is_key else b"")
        elif mode == _NUMBER:
            tail += _NUM_FINISH.get(self._sub, b"")
        elif mode == _LITERAL:
            tail += self._lit
        elif mode == _START:
            tail += b"{}" if self.top == "object" else b"null"
        elif mode == _VALUE:
            tail += b"null"
        elif mode == _KEY:
            tail += b'"":null'
        elif mode == _COLON:
            tail += b":null"
        closers = {"o": b"}", "a": b"]"}
        return tail + b"".join(closers[c] for c in reversed(self._stack))

    def __repr__(self) -> str:
        return (f"JSONPrefix(top={self.top!r}, valid={self.valid}, mode={self._mode}, "
                f"stack={self._stack!r}, complete={self.complete})")


SCHEMA_SUBSET = (
    'JSON-schema subset: "type" (a name or a list), "enum" / "const" (any JSON values), "anyOf" / '
    '"oneOf" (oneOf is read as anyOf, as llama.cpp does), "$ref" to "#" or a JSON pointer inside '
    'the schema ("$defs" / "definitions"), "properties", "required", "additionalProperties" '
    '(false when absent and "properties" is given, as in llama.cpp), "items", "prefixItems", '
    '"minItems", "maxItems", "pattern", "minLength", "maxLength", "minimum", "maximum", '
    '"exclusiveMinimum", "exclusiveMaximum" (numbers), "multipleOf"; annotations (title, '
    'description, default, examples, format, $schema, $id, $comment, readOnly, writeOnly, '
    'deprecated) are ignored'
)
_TYPES = frozenset(["object", "array", "string", "number", "integer", "boolean", "null"])
_ANNOTATIONS = frozenset(["title", "description", "default", "examples", "$schema", "$id", "$comment",
                          "format", "readOnly", "writeOnly", "deprecated", "$defs", "definitions"])
_KEYWORDS = frozenset(["type", "properties", "required", "additionalProperties", "items",
                       "prefixItems", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf",
                       "$ref", "pattern", "minLength", "maxLength", "minimum", "maximum",
                       "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]) | _ANNOTATIONS
_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class SchemaNode:
    """One compiled (sub)schema.

    A union (`alts` set: anyOf / oneOf / enum) or one set of constraints: allowed `types`;
    objects: declared `props` (key -> node), `required`, `addl` (the node of other keys, None:
    no other keys); arrays: `prefix` item nodes, then `items` (None: no more), `min_items`,
    `max_items`; strings: `choices` (const strings), `pattern`, `min_len`, `max_len`;
    booleans: `bool_value`; numbers: the bounds and `multiple_of` (checked on the complete
    number; integers are pruned while written). Raises NotImplementedError outside
    `SCHEMA_SUBSET`, ValueError for an unsatisfiable or malformed one.
    """

    __slots__ = ("types", "alts", "props", "required", "addl", "prefix", "items", "min_items",
                 "max_items", "choices", "pattern", "_partial", "_search", "min_len", "max_len",
                 "bool_value", "minimum", "maximum", "exmin", "exmax", "multiple_of", "literal",
                 "const_text")

    def __init__(self, schema: Any = None, where: str = "schema", _compiler: Any = None) -> None:
        self.types: FrozenSet[str] = _TYPES
        self.alts: Optional[Tuple[SchemaNode, ...]] = None
        self.props: Dict[str, SchemaNode] = {}
        self.required: FrozenSet[str] = frozenset()
        self.addl: Optional[SchemaNode] = None
        self.prefix: Tuple[SchemaNode, ...] = ()
        self.items: Optional[SchemaNode] = None
        self.min_items, self.max_items = 0, None  # type: int, Optional[int]
        self.choices: Optional[Tuple[str, ...]] = None
        self.pattern: Optional[str] = None
        self._partial: Any = None
        self._search: Any = None
        self.min_len, self.max_len = 0, None  # type: int, Optional[int]
        self.bool_value: Optional[bool] = None
        self.minimum: Any = None
        self.maximum: Any = None
        self.exmin: Any = None
        self.exmax: Any = None
        self.multiple_of: Any = None
        self.literal = False  # a const / enum value (a grammar literal: no space after it)
        self.const_text: Optional[bytes] = None  # that value as JSON text
        if _compiler is None and schema is not None:
            _Compiler(schema).fill(self, schema, where)

    def item(self, i: int) -> Optional[SchemaNode]:
        """The node of array item `i` (None: no such item allowed)."""
        if self.max_items is not None and i >= self.max_items:
            return None
        return self.prefix[i] if i < len(self.prefix) else self.items

    def flat(self) -> List[SchemaNode]:
        """The non-union alternatives of this node."""
        out: List[SchemaNode] = []
        seen: set = set()

        def walk(n: SchemaNode) -> None:
            if id(n) in seen:
                return
            seen.add(id(n))
            if n.alts is None:
                out.append(n)
            else:
                for a in n.alts:
                    walk(a)

        walk(self)
        return out

    # --- checks on values (complete) and prefixes -------------------------------------------
    def string_prefix_ok(self, s: str) -> bool:
        if self.max_len is not None and len(s) > self.max_len:
            return False
        if self.choices is not None and not any(c.startswith(s) for c in self.choices):
            return False
        return self._partial is None or self._partial.fullmatch(s, partial=True) is not None

    def string_ok(self, s: str) -> bool:
        if len(s) < self.min_len or (self.max_len is not None and len(s) > self.max_len):
            return False
        if self.choices is not None and s not in self.choices:
            return False
        return self._search is None or self._search.search(s) is not None

    def number_ok(self, v: Any) -> bool:
        """The bounds as jsonschema checks them (Python comparisons of the parsed value)."""
        if self.minimum is not None and v < self.minimum:
            return False
        if self.maximum is not None and v > self.maximum:
            return False
        if self.exmin is not None and v <= self.exmin:
            return False
        if self.exmax is not None and v >= self.exmax:
            return False
        m = self.multiple_of
        if m is not None:
            if isinstance(m, float):
                try:
                    q = v / m
                    return bool(int(q) == q)
                except OverflowError:
                    return (Fraction(v) / Fraction(m)).denominator == 1
                except ValueError:  # inf / nan quotient
                    return False
            return not v % m
        return True

    def int_range(self) -> Tuple[Optional[int], Optional[int]]:
        """The integers [lo, hi] the bounds allow (None: unbounded)."""
        lo: Optional[int] = None
        hi: Optional[int] = None
        for v, excl in ((self.minimum, False), (self.exmin, True)):
            if v is not None and v == v and abs(v) != float("inf"):
                a = math.floor(v) + 1 if excl else math.ceil(v)
                lo = a if lo is None else max(lo, a)
        for v, excl in ((self.maximum, False), (self.exmax, True)):
            if v is not None and v == v and abs(v) != float("inf"):
                b = math.ceil(v) - 1 if excl else math.floor(v)
                hi = b if hi is None else min(hi, b)
        return lo, hi

    def has_bounds(self) -> bool:
        return any(v is not None for v in (self.minimum, self.maximum, self.exmin, self.exmax))


def _never() -> SchemaNode:
    n = SchemaNode()
    n.types = frozenset()
    return n


_ANY = SchemaNode()
_ANY.addl = _ANY
_ANY.items = _ANY
_NEVER = _never()


def _pointer(root: Any, ref: str, where: str) -> Any:
    if not ref.startswith("#"):
        raise NotImplementedError(f"{where}: $ref {ref!r}: only local references ('#...') are "
                                  f"supported; {SCHEMA_SUBSET}")
    target = root
    path = unquote(ref[1:])
    if path:
        if not path.startswith("/"):
            raise NotImplementedError(f"{where}: $ref {ref!r}: anchors are not supported; {SCHEMA_SUBSET}")
        for part in path[1:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            try:
                target = target[int(part)] if isinstance(target, list) else target[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ValueError(f"{where}: $ref {ref!r} does not resolve") from None
    return target


class _Compiler:
    """Schema dicts -> SchemaNodes; one node per schema object, so recursive $refs terminate."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.memo: Dict[int, SchemaNode] = {}
        self.keep: List[Any] = []  # keeps merged dicts alive (their ids key `memo`)

    def node(self, schema: Any, where: str) -> SchemaNode:
        if schema is True:
            return _ANY
        if schema is False:
            return _NEVER
        if isinstance(schema, dict) and not (set(schema) - _ANNOTATIONS):
            return _ANY
        key = id(schema)
        if key in self.memo:
            return self.memo[key]
        n = SchemaNode(_compiler=self)
        self.memo[key] = n
        self.fill(n, schema, where)
        return n

    def fill(self, n: SchemaNode, schema: Any, where: str) -> None:  # noqa: C901
        self.memo.setdefault(id(schema), n)
        if schema is True or (isinstance(schema, dict) and not (set(schema) - _ANNOTATIONS)):
            n.addl, n.items = _ANY, _ANY  # anything
            return
        if schema is False:
            n.types = frozenset()
            return
        if not isinstance(schema, dict):
            raise NotImplementedError(f"{where}: {schema!r} is not supported; {SCHEMA_SUBSET}")
        unknown = sorted(set(schema) - _KEYWORDS)
        if unknown:
            raise NotImplementedError(f"{where}: keyword(s) {unknown} not supported; {SCHEMA_SUBSET}")
        rest = {k: v for k, v in schema.items() if k not in _ANNOTATIONS}
        if "$ref" in rest:
            if len(rest) > 1:
                raise NotImplementedError(f"{where}: $ref beside {sorted(set(rest) - {'$ref'})} is "
                                          f"not supported; {SCHEMA_SUBSET}")
            target = _pointer(self.root, schema["$ref"], where)
            n.alts = (self.node(target, schema["$ref"]),)
            return
        for union in ("anyOf", "oneOf"):
            if union in rest:
                branches = rest.pop(union)
                if not isinstance(branches, list) or not branches:
                    raise ValueError(f"{where}: {union} must be a non-empty list")
                if rest:  # sibling keywords apply to every branch
                    merged = []
                    for i, b in enumerate(branches):
                        if isinstance(b, dict) and "$ref" in b:
                            b = _pointer(self.root, b["$ref"], f"{where}.{union}[{i}]")
                        if not isinstance(b, dict) or set(b) & set(rest):
                            raise NotImplementedError(
                                f"{where}: {union} branches that repeat the keywords beside it "
                                f"({sorted(rest)}) are not supported; {SCHEMA_SUBSET}")
                        merged.append({**b, **rest})
                    self.keep.append(merged)
                    branches = merged
                n.alts = tuple(self.node(b, f"{where}.{union}[{i}]") for i, b in enumerate(branches))
                return
        if "enum" in rest or "const" in rest:
            values = list(rest["enum"]) if "enum" in rest else [rest["const"]]
            types = rest.get("type")
            others = set(rest) - {"enum", "const", "type"}
            if others:
                raise NotImplementedError(f"{where}: enum/const beside {sorted(others)} is not "
                                          f"supported; {SCHEMA_SUBSET}")
            if types is not None:
                wanted = {types} if isinstance(types, str) else set(types)
                values = [v for v in values if _json_type(v) in wanted
                          or (_json_type(v) == "integer" and "number" in wanted)
                          or ("integer" in wanted and isinstance(v, float) and v.is_integer())]
            if not values:
                raise ValueError(f"{where}: no value of enum/const is allowed")
            n.alts = tuple(_const(v) for v in values)
            return
        types = rest.get("type")
        if types is None:
            # no "type" but properties: an object (as llama.cpp's json-schema-to-grammar reads it)
            types = ["object"] if "properties" in rest else sorted(_TYPES)
        types = [types] if isinstance(types, str) else list(types)
        if not types or not set(types) <= _TYPES:
            raise NotImplementedError(f"{where}: type {rest.get('type')!r} not supported; {SCHEMA_SUBSET}")
        n.types = frozenset(types)
        # objects
        props = rest.get("properties", {})
        n.props = {k: self.node(v, f"{where}.properties.{k}") for k, v in props.items()
                   if v is not False}
        if "additionalProperties" in rest:
            addl = rest["additionalProperties"]
            n.addl = None if addl is False else self.node(addl, f"{where}.additionalProperties")
        else:
            n.addl = None if "properties" in rest else _ANY
        n.required = frozenset(rest.get("required", []))
        missing = [k for k in n.required if k not in n.props and n.addl is None]
        if missing and "object" in n.types:
            raise ValueError(f"{where}: required {sorted(missing)} not among the properties")
        # arrays
        if isinstance(rest.get("items"), list):
            raise NotImplementedError(f"{where}: items as a list (use prefixItems); {SCHEMA_SUBSET}")
        n.prefix = tuple(self.node(v, f"{where}.prefixItems[{i}]")
                         for i, v in enumerate(rest.get("prefixItems", [])))
        items = rest.get("items", True)
        n.items = None if items is False else self.node(items, f"{where}.items")
        n.min_items = int(rest.get("minItems", 0))
        n.max_items = int(rest["maxItems"]) if "maxItems" in rest else None
        # strings
        n.min_len = int(rest.get("minLength", 0))
        n.max_len = int(rest["maxLength"]) if "maxLength" in rest else None
        if "pattern" in rest:
            n.pattern = rest["pattern"]
            try:
                n._search = regex.compile(n.pattern)
                # a prefix is fine iff some extension contains a match (patterns search)
                n._partial = regex.compile(r"(?s:.*?)(?:" + n.pattern + r")(?s:.*)")
            except regex.error as e:
                raise ValueError(f"{where}: pattern {n.pattern!r}: {e}") from None
        # numbers
        for name, attr in zip(_NUMERIC, ("minimum", "maximum", "exmin", "exmax", "multiple_of")):
            if name in rest:
                if not _is_number(rest[name]):
                    raise NotImplementedError(f"{where}: {name} {rest[name]!r}: only numbers are "
                                              f"supported; {SCHEMA_SUBSET}")
                setattr(n, attr, rest[name])
        if n.multiple_of is not None and n.multiple_of <= 0:
            raise ValueError(f"{where}: multipleOf must be > 0")


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    raise ValueError(f"{v!r} is not a JSON value")


def _const(v: Any) -> SchemaNode:
    """The node of `{"const": v}`."""
    n = SchemaNode()
    n.literal = True
    kind = _json_type(v)
    if kind not in ("integer", "number") or (v == v and abs(v) != float("inf")):
        n.const_text = json.dumps(v, separators=(",", ":")).encode("ascii")
    if kind == "null":
        n.types = frozenset(["null"])
    elif kind == "boolean":
        n.types, n.bool_value = frozenset(["boolean"]), v
    elif kind in ("integer", "number"):
        if v != v or abs(v) == float("inf"):
            raise ValueError(f"const {v!r} is not a JSON number")
        n.types, n.minimum, n.maximum = frozenset(["number"]), v, v
    elif kind == "string":
        n.types, n.choices = frozenset(["string"]), (v,)
    elif kind == "array":
        n.types = frozenset(["array"])
        n.prefix = tuple(_const(x) for x in v)
        n.min_items = n.max_items = len(v)
    else:
        n.types = frozenset(["object"])
        n.props = {k: _const(x) for k, x in v.items()}
        n.required = frozenset(v)
        n.addl = None
    return n


def _int_reachable(neg: bool, digits: str, lo: Optional[int], hi: Optional[int], m: int = 1) -> bool:
    """Whether an integer written so far as "-"? digits can still end inside [lo, hi] on a
    multiple of m."""
    # the magnitudes allowed
    if neg:
        mlo, mhi = (0 if hi is None else max(-hi, 0)), (None if lo is None else -lo)
    else:
        mlo, mhi = (0 if lo is None else max(lo, 0)), hi
    if mhi is not None and mhi < mlo:
        return False
    if not digits:  # "-" alone: any magnitude but 0 ("-0" is 0)
        if mhi is None:
            return True
        first = -(-max(mlo, 0) // m) * m
        return first <= mhi
    d = int(digits)
    if digits[0] == "0":  # "0" / "-0" cannot grow
        return mlo <= d and (mhi is None or d <= mhi)
    k = 0
    while True:
        a, b = max(d * 10**k, mlo), (d + 1) * 10**k - 1
        if mhi is not None:
            if d * 10**k > mhi:
                return False
            b = min(b, mhi)
        if a <= b and -(-a // m) * m <= b:
            return True
        k += 1


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


_MAX_COMPLETION = 4096


def _raw_ascii(text: str) -> bytes:
    """Bytes between the quotes of json.dumps(text) (ASCII, as llama-cpp-python's literals)."""
    return json.dumps(text)[1:-1].encode("ascii")


def _raw(text: str) -> bytes:
    """Bytes between the quotes of `text` serialized as JSON, ASCII (what completions write:
    valid everywhere, compact literals included)."""
    return _raw_ascii(text)


def _string_tail(node: SchemaNode, s: str) -> str:
    """Characters that make `s` a complete string of `node` (ValueError if none is found)."""
    if node.string_ok(s):
        return ""
    if node.choices is not None:
        for c in node.choices:
            if c.startswith(s) and node.string_ok(c):
                return c[len(s):]
        raise ValueError("no choice continues the string")
    if node.pattern is None:
        if node.max_len is not None and node.min_len > node.max_len:
            raise ValueError("minLength > maxLength")
        return "a" * max(0, node.min_len - len(s))
    # breadth-first over a small alphabet: the pattern's own characters first
    alphabet = list(dict.fromkeys(ch for ch in node.pattern if ch.isprintable() and ch not in "\\^$")) + \
        list("a0A _-.")
    frontier = [""]
    seen = 0
    while frontier and seen < 20000:
        nxt = []
        for tail in frontier:
            for ch in alphabet:
                t = tail + ch
                seen += 1
                if node.string_ok(s + t):
                    return t
                if node.string_prefix_ok(s + t):
                    nxt.append(t)
        frontier = nxt[:400]
    raise ValueError(f"no completion of {s!r} found for pattern {node.pattern!r}")


def _ulp_band(v: Any) -> Tuple[Fraction, Fraction]:
    """The exact decimals that json.loads turns into the float `v` lie in this band (its
    ends, halfway to the neighbours, round to even: kept only when v's mantissa is even)."""
    f = Fraction(v)
    if not isinstance(v, float) or v == 0:
        return f, f
    import numpy as np  # (math.nextafter is Python 3.9+)

    below, above = float(np.nextafter(v, -np.inf)), float(np.nextafter(v, np.inf))
    fb = Fraction(below) if not math.isinf(below) else 2 * f - Fraction(above)
    fa = Fraction(above) if not math.isinf(above) else 2 * f - Fraction(below)
    lo, hi = (f + fb) / 2, (f + fa) / 2
    if int(v.hex().split("p")[0][-1], 16) % 2:  # odd: the halfway points round away
        shrink = (hi - lo) / 10**6
        lo, hi = lo + shrink, hi - shrink
    return lo, hi


def _beyond(a: Fraction, b: Fraction) -> Fraction:
    """A step just outside the band [a, b] (for exclusive bounds)."""
    # (at 0: just past half the smallest subnormal 5e-324 = math.ulp(0.0), below which
    # decimals parse to 0.0)
    return max((b - a) / 10**6, abs(a) / 10**30, Fraction(5e-324) / 2 + Fraction(1, 10**400))


def _number_suffix(node: SchemaNode, text: str) -> Optional[str]:
    """A suffix that makes the number prefix `text` a complete number inside `node`'s bounds
    (multipleOf aside), or None when no extension of `text` can land inside them."""
    neg = text.startswith("-")
    body = text[1:] if neg else text
    mant, _, exp = body.partition("e") if "e" in body else body.partition("E")
    in_exp = len(mant) < len(body)
    ipart, dot, fpart = mant.partition(".")
    # the values allowed, widened to the decimals that parse to the bound floats
    vlo: Optional[Fraction] = None
    vhi: Optional[Fraction] = None
    for v, excl in ((node.minimum, False), (node.exmin, True)):
        if v is not None:
            a, b = _ulp_band(v)
            x = b + _beyond(a, b) if excl else a
            vlo = x if vlo is None else max(vlo, x)
    for v, excl in ((node.maximum, False), (node.exmax, True)):
        if v is not None:
            a, b = _ulp_band(v)
            x = a - _beyond(a, b) if excl else b
            vhi = x if vhi is None else min(vhi, x)
    # ... as magnitudes of a number of this sign
    if neg:
        lo = Fraction(0) if vhi is None else max(Fraction(0), -vhi)
        hi = None if vlo is None else -vlo
    else:
        lo = Fraction(0) if vlo is None else max(Fraction(0), vlo)
        hi = vhi
    if hi is not None and hi < lo:
        return None
    if in_exp:
        return _exponent_suffix(Fraction(ipart + "." + (fpart or "0")), exp, lo, hi)
    digits = (ipart + fpart).lstrip("0")
    finish = "0" if (not ipart or (dot and not fpart)) else ""
    if not digits:  # so far a zero: any magnitude is still reachable
        if lo == 0:
            return finish
        found = _short_decimal(lo, hi, None)
        if found is None:
            return None
        k, q = found
        if not ipart:  # "-" alone: write the number anew
            return f"{k}e{q}" if q else str(k)
        # "0" / "0.00": continue the fraction, then scale with an exponent
        lead = "" if dot else "."
        written = Fraction(int(str(k)), 10 ** (len(fpart) + len(str(k))))
        e = _exp10(Fraction(k) * Fraction(10) ** q / written)
        return lead + str(k) + (f"e{e}" if e else "")
    g = int(digits)
    found = _short_decimal(lo, hi, g)
    if found is None:
        return None
    k, q = found
    ks = str(k)
    while len(ks) < len(digits):
        ks += "0"
    rest = ks[len(digits):]
    new_mant = ipart + (("." + fpart + rest) if dot else rest)
    if dot and not fpart and not rest:
        rest, new_mant = "0", new_mant + "0"
    e = _exp10(Fraction(k) * Fraction(10) ** q / Fraction(new_mant))
    return rest + (f"e{e}" if e else "")


def _exp10(ratio: Fraction) -> int:
    """log10 of an exact power of ten."""
    e = 0
    while ratio >= 10:
        ratio /= 10
        e += 1
    while ratio < 1:
        ratio *= 10
        e -= 1
    return e


def _short_decimal(lo: Fraction, hi: Optional[Fraction], g: Optional[int]) -> Optional[Tuple[int, int]]:
    """A short positive decimal k * 10**q in [lo, hi] (lo > 0 unless g is given) whose
    significant digits start with those of g (any when None); None if there is none."""
    if hi is not None and hi <= 0:
        return None
    # decades to try: around lo, around hi
    anchor = lo if lo > 0 else (hi if hi is not None else Fraction(1))
    if anchor <= 0:
        anchor = Fraction(1)
    base = _exp10_floor(anchor)
    js = range(base - 2, base + 3) if hi is not None or lo > 0 else range(base, base + 1)
    if g is not None:
        n = len(str(g))
        for j in sorted(set(list(js) + ([_exp10_floor(hi)] if hi is not None and hi > 0 else []))):
            a = Fraction(g) * Fraction(10) ** (j - n + 1)
            b = Fraction(g + 1) * Fraction(10) ** (j - n + 1)
            a2, b2 = max(a, lo), (b if hi is None else min(b, hi))
            if a2 > b2 or (a2 == b2 and b2 == b):
                continue
            if a2 == b2:  # one value: its exact digits
                point = _decimal_of(a2)
                if point is not None and a2 < b:
                    return point
                continue
            for q in range(j - n + 1, j - n - 25, -1):
                unit = Fraction(10) ** q
                # the middle first: at the edges of a float's band decimals may round away
                for k in (round((a2 + b2) / 2 / unit), math.ceil(a2 / unit)):
                    if a2 <= k * unit <= b2 and k * unit < b:
                        return k, q
        if hi is None:
            j = max(base, 0) + 1
            return g, j
        if lo == 0:  # tiny magnitudes: g * 10**q for a very negative q
            q = _exp10_floor(hi) - len(str(g)) - 1
            return g, q
        return None
    hi_ = hi if hi is not None else lo * 10 + 1
    for q in range(_exp10_floor(hi_) + 1, _exp10_floor(hi_) - 40, -1):
        unit = Fraction(10) ** q
        for k in (round((lo + hi_) / 2 / unit), math.ceil(lo / unit)):
            if k > 0 and lo <= k * unit <= hi_:
                return k, q
    return None


def _decimal_of(x: Fraction) -> Optional[Tuple[int, int]]:
    """x as k * 10**q with k an integer (None if x is not a finite decimal)."""
    d, p = x.denominator, 0
    while d % 10 == 0:
        d //= 10
        p += 1
    while d % 2 == 0 or d % 5 == 0:
        d = d // 2 if d % 2 == 0 else d // 5
        p += 1
    if d != 1:
        return None
    k, q = int(x * 10**p), -p
    while k and k % 10 == 0:
        k //= 10
        q += 1
    return k, q


def _exp10_floor(x: Fraction) -> int:
    """floor(log10(x)) of a positive fraction, exactly."""
    e = len(str(x.numerator)) - len(str(x.denominator))
    p = Fraction(10) ** e
    while p > x:
        e -= 1
        p /= 10
    while p * 10 <= x:
        e += 1
        p *= 10
    return e


def _exponent_suffix(m: Fraction, exp: str, lo: Fraction, hi: Optional[Fraction]) -> Optional[str]:
    """Exponent digits after `exp` ("", "+", "-", "-1", ...) putting m * 10**E in [lo, hi]."""
    typed = exp.lstrip("+-")
    if m == 0:
        return ("" if typed else "0") if lo == 0 else None
    # the exponents allowed: [elo, ehi] (None: unbounded)
    elo: Optional[int] = None
    if lo > 0:
        elo = _exp10_floor(lo / m)
        if m * Fraction(10) ** elo < lo:
            elo += 1
    ehi = None if hi is None else _exp10_floor(hi / m) if hi > 0 else None
    if hi is not None and hi <= 0:
        return None
    if elo is not None and ehi is not None and elo > ehi:
        return None
    signs = [(-1 if exp.startswith("-") else 1)] if exp else [1, -1]
    for sgn in signs:
        # the magnitudes of E wanted: [a, b] (b None: unbounded)
        if sgn > 0:
            a, b = max(elo or 0, 0), ehi
        else:
            a = max(-ehi, 0) if ehi is not None else 0
            b = None if elo is None else -elo
        if b is not None and a > b:
            continue
        lead = ("-" if sgn < 0 else "") if not exp else ""
        if not typed:
            return lead + str(a)
        t = int(typed)
        for k in range(0, 9):
            first, last = t * 10**k, t * 10**k + 10**k - 1
            if b is not None and first > b:
                break
            if last >= a:
                v = max(first, a)
                return str(v - first).zfill(k) if k else ""
    return None


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


def _number_candidates(node: SchemaNode, integer: bool) -> List[str]:
    lo, hi = node.int_range()
    cands = [0]
    if lo is not None:
        cands.append(lo)
    if hi is not None:
        cands.append(hi)
    if lo is not None and hi is not None and lo <= hi:
        cands.append((lo + hi) // 2)
    m = node.multiple_of
    if m is not None and isinstance(m, int) and m > 0:
        if lo is not None:
            cands.append(-(-lo // m) * m)
        if hi is not None:
            cands.append((hi // m) * m)
    out = [str(c) for c in cands]
    if not integer:
        for v in (node.minimum, node.maximum, node.exmin, node.exmax, m):
            if v is not None:
                out.append(json.dumps(v))
        bounds = [v for v in (node.minimum, node.exmin) if v is not None]
        tops = [v for v in (node.maximum, node.exmax) if v is not None]
        if bounds and tops:
            out.append(repr((max(bounds) + min(tops)) / 2))
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


class LiteralPrefix:
    """Prefix acceptor of a finite set of texts, the GBNF `root ::= "a" | "b" | ...`."""

    __slots__ = ("choices", "buf", "valid")

    def __init__(self, choices: Any) -> None:
        self.choices: Tuple[bytes, ...] = tuple(
            c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in choices)
        if not self.choices:
            raise ValueError("choices must not be empty")
        self.buf = b""
        self.valid = True

    def copy(self) -> LiteralPrefix:
        c = LiteralPrefix.__new__(LiteralPrefix)
        c.choices, c.buf, c.valid = self.choices, self.buf, self.valid
        return c

    def push(self, data: bytes) -> bool:
        if not self.valid:
            return False
        buf = self.buf + data
        if not any(c.startswith(buf) for c in self.choices):
            self.valid = False
            return False
        self.buf = buf
        return True

    @property
    def complete(self) -> bool:
        return self.valid and self.buf in self.choices

    @property
    def finished(self) -> bool:
        return self.complete and not any(len(c) > len(self.buf) and c.startswith(self.buf)
                                         for c in self.choices)

    def completion(self) -> bytes:
        if not self.valid:
            raise ValueError("not a valid prefix")
        if self.complete:
            return b""
        return next(c for c in self.choices if c.startswith(self.buf))[len(self.buf):]

    def __repr__(self) -> str:
        return f"LiteralPrefix(buf={self.buf!r}, valid={self.valid})"


class JSONConstraint:
    """Which next tokens keep a generation a valid JSON text (`JSONPrefix` over token pieces).

    `allows(token)`: an end-of-generation token only when the text is complete; any other
    token only when its bytes (`piece(token)`, non-empty) keep the text a valid prefix.
    `accept(token)` advances the state. Pieces are cached per constraint.
    """

    def __init__(
        self,
        piece: Callable[[int], bytes],
        is_eog: Callable[[int], bool],
        top: str = "object",
        max_ws: Optional[int] = 20,
        leading_ws: bool = False,
        schema: Optional[Any] = None,
        choices: Optional[Sequence[str]] = None,
        compact: bool = False,
    ) -> None:
        self.piece = piece
        self.is_eog = is_eog
        self.state: Any
        if choices is not None:
            self.state = LiteralPrefix(choices)
        elif schema is not None:
            self.state = JSONSchemaPrefix(schema, max_ws=max_ws, leading_ws=leading_ws,
                                          compact=compact)
        else:
            self.state = JSONPrefix(top=top, max_ws=max_ws, leading_ws=leading_ws)
        self._pieces: Dict[int, bytes] = {}
        self._tried: Dict[int, Any] = {}  # this step's checks: token -> next state or None

    def _piece(self, token: int) -> bytes:
        p = self._pieces.get(token)
        if p is None:
            p = self._pieces[token] = self.piece(token)
        return p

    def allows(self, token: int) -> bool:
        """True if `token` may come next."""
        token = int(token)
        if token in self._tried:
            return self._tried[token] is not None
        if self.is_eog(token):
            ok = self.state.complete
            self._tried[token] = self.state if ok else None
            return ok
        piece = self._piece(token)
        nxt: Any = None
        if piece and not self.state.finished:
            nxt = self.state.copy()
            if not nxt.push(piece):
                nxt = None
        self._tried[token] = nxt
        return nxt is not None

    def accept(self, token: int) -> None:
        """Advance past `token` (which `allows`); the next step's checks start afresh."""
        if not self.allows(token):
            raise ValueError(f"token {token} does not continue the JSON text")
        nxt = self._tried[int(token)]
        assert nxt is not None
        self.state = nxt
        self._tried = {}


class JSONOutput:
    """Marker for a `logits_processor` list: constrain the generation to JSON text.

        llm.create_completion(prompt, logits_processor=LogitsProcessorList([JSONOutput()]))

    `bitnet.llama_compat.Llama` takes it out of the list and samples with a `JSONConstraint`
    (reject-and-resample); `response_format={"type": "json_object"}` adds one. Called as a
    plain logits processor (e.g. by llama-cpp-python) it does nothing. With `schema` the JSON
    must match it (SCHEMA_SUBSET); with `choices` the text must instead be one of these
    strings (the function-name grammars of llama-cpp-python's chat handlers). `compact`
    (schemas only) follows the layout of llama-cpp-python's `json_schema_to_gbnf` grammars:
    at most one space between tokens and after the value, declared keys in their order
    (required first) and written without escapes, enum strings without escapes.
    """

    def __init__(
        self,
        top: str = "object",
        max_ws: Optional[int] = 20,
        leading_ws: bool = False,
        schema: Optional[Any] = None,
        choices: Optional[Sequence[str]] = None,
        compact: bool = False,
    ) -> None:
        JSONPrefix(top=top, max_ws=max_ws)  # validates the options
        self.compact = compact
        # a schema (SCHEMA_SUBSET; NotImplementedError outside it) replaces `top`
        self.schema = None if schema is None else SchemaNode(schema)
        self.choices: Optional[Tuple[str, ...]] = None
        if choices is not None:
            LiteralPrefix(choices)  # validates them
            self.choices = tuple(choices)
        self.top = top
        self.max_ws = max_ws
        self.leading_ws = leading_ws

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return scores

    def __repr__(self) -> str:
        return f"JSONOutput(top={self.top!r}, max_ws={self.max_ws}, leading_ws={self.leading_ws})"
