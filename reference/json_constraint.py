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

`JSONSchemaPrefix` adds a small JSON-schema subset (`SCHEMA_SUBSET`: types, properties,
required, items, string enums; no $ref, anyOf, patterns, lengths or bounds), for
`response_format={"type": "json_object", "schema": ...}`.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, FrozenSet, Optional, Tuple

__all__ = ["JSONPrefix", "JSONSchemaPrefix", "SchemaNode", "SCHEMA_SUBSET", "JSONConstraint",
           "JSONOutput"]

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
_ESCAPES = frozenset(b'"\\/bfnrt')
_LITERALS = {ord("t"): b"rue", ord("f"): b"alse", ord("n"): b"ull"}


class JSONPrefix:
    """Incremental acceptor of JSON text prefixes (the language is in the module docstring).

    `push(data)` consumes bytes and returns False as soon as they cannot continue a valid
    text; after a False the instance is dead (every later push is False). `valid` says
    whether it is alive, `complete` whether the bytes so far are a whole JSON text. `copy()`
    is cheap (a few scalars and a short string), for trying a continuation.
    """

    __slots__ = ("top", "max_ws", "leading_ws", "valid", "_mode", "_stack", "_sub", "_count", "_lo",
                 "_hi", "_lit", "_is_key", "_ws", "_choices", "_buf", "_int_only")

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
        # hooks for subclasses (JSONSchemaPrefix): the current string's raw content must be a
        # prefix of one of `_choices` (None: free) and, when it closes, equal one; numbers
        # without fraction or exponent when `_int_only`
        self._choices: Optional[Tuple[bytes, ...]] = None
        self._buf = b""
        self._int_only = False

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
        c._choices, c._buf, c._int_only = self._choices, self._buf, self._int_only
        self._copy_extra(c)

    # --- hooks (no-ops here; JSONSchemaPrefix overrides them) -------------------------------
    def _copy_extra(self, c: JSONPrefix) -> None:
        pass

    def _on_start(self, b: int) -> bool:
        """A value starts with byte `b`; False rejects it."""
        return True

    def _on_key_start(self) -> bool:
        """An object key starts (may set `_choices`); False rejects it."""
        return True

    def _on_key(self, key: bytes) -> None:
        """An object key ended; `key` is its raw content when `_choices` was set."""

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
                return True
            if self._sub not in _NUM_COMPLETE:
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
            if mode == _DONE or (mode == _START and not self.leading_ws):
                return False
            self._ws += 1
            return self.max_ws is None or self._ws <= self.max_ws
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
                self._choices, self._buf = None, b""
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

    def _start_value(self, b: int) -> bool:
        self._choices, self._buf, self._int_only = None, b"", False
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

    def _string_byte(self, b: int) -> bool:
        sub = self._sub
        if self._choices is not None:
            if b == 0x22 and sub == _S_CHAR:
                if self._buf not in self._choices:
                    return False
            else:
                self._buf += bytes((b,))
                buf = self._buf
                if not any(c.startswith(buf) for c in self._choices):
                    return False
        if sub == _S_CHAR:
            if b == 0x22:
                if self._is_key:
                    self._on_key(self._buf)
                    self._mode = _COLON
                else:
                    self._end_value()
                return True
            if b == 0x5C:  # backslash
                self._sub = _S_ESCAPE
                return True
            if b < 0x20:
                return False
            if b < 0x80:
                return True
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
            return True
        if sub == _S_UTF8:
            if not self._lo <= b <= self._hi:
                return False
            self._lo, self._hi = 0x80, 0xBF
            self._count -= 1
            if self._count == 0:
                self._sub = _S_CHAR
            return True
        if sub == _S_ESCAPE:
            if b == 0x75:  # "u"
                self._sub, self._count = _S_HEX, 4
                return True
            if b in _ESCAPES:
                self._sub = _S_CHAR
                return True
            return False
        # _S_HEX
        if b not in _HEX:
            return False
        self._count -= 1
        if self._count == 0:
            self._sub = _S_CHAR
        return True

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
    'JSON-schema subset: "type" (a name or a list of "object", "array", "string", "number", '
    '"integer", "boolean", "null"), "properties", "required", "additionalProperties": false '
    '(the default here, as in llama.cpp), "items" (one schema), "enum" / "const" of strings; '
    "annotations (title, description, default, examples, $schema, $id, $comment) are ignored"
)
_TYPES = frozenset(["object", "array", "string", "number", "integer", "boolean", "null"])
_ANNOTATIONS = frozenset(["title", "description", "default", "examples", "$schema", "$id", "$comment"])
_KEYWORDS = frozenset(["type", "properties", "required", "additionalProperties", "items", "enum",
                       "const"]) | _ANNOTATIONS


def _raw(text: str) -> bytes:
    """Bytes between the quotes of `text` serialized as JSON (non-ASCII kept as UTF-8)."""
    return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")


class SchemaNode:
    """One compiled (sub)schema: allowed types; for objects the declared properties (raw key
    bytes -> node; None: any keys) and the required ones; for arrays the items' node; for
    strings the allowed raw contents (None: any)."""

    __slots__ = ("types", "props", "required", "items", "enum")

    def __init__(self, schema: Any, where: str = "schema") -> None:
        if schema is True or schema == {}:
            schema = {}
        if not isinstance(schema, dict):
            raise NotImplementedError(f"{where}: {schema!r} is not supported; {SCHEMA_SUBSET}")
        unknown = sorted(set(schema) - _KEYWORDS)
        if unknown:
            raise NotImplementedError(f"{where}: keyword(s) {unknown} not supported; {SCHEMA_SUBSET}")
        # no "type" but properties: an object (as llama.cpp's json-schema-to-grammar reads it)
        default = ["object"] if "properties" in schema else sorted(_TYPES)
        types = schema.get("type", default)
        types = [types] if isinstance(types, str) else list(types)
        if not types or not set(types) <= _TYPES:
            raise NotImplementedError(f"{where}: type {schema.get('type')!r} not supported; {SCHEMA_SUBSET}")
        self.types: FrozenSet[str] = frozenset(types)
        self.enum: Optional[Tuple[bytes, ...]] = None
        if "enum" in schema or "const" in schema:
            values = list(schema["enum"]) if "enum" in schema else [schema["const"]]
            if not values or not all(isinstance(v, str) for v in values):
                raise NotImplementedError(f"{where}: enum/const {values!r}: only non-empty lists of "
                                          f"strings are supported; {SCHEMA_SUBSET}")
            self.types = frozenset(["string"])
            self.enum = tuple(_raw(v) for v in values)
        if schema.get("additionalProperties", False) is not False:
            raise NotImplementedError(f"{where}: additionalProperties other than false is not "
                                      f"supported; {SCHEMA_SUBSET}")
        self.props: Optional[Dict[bytes, SchemaNode]] = None
        self.required: FrozenSet[bytes] = frozenset()
        if "properties" in schema or "additionalProperties" in schema:
            props = schema.get("properties", {})
            self.props = {_raw(k): SchemaNode(v, f"{where}.properties.{k}") for k, v in props.items()}
            required = [_raw(k) for k in schema.get("required", [])]
            missing = [k for k in required if k not in self.props]
            if missing:
                raise ValueError(f"{where}: required {missing} not among the properties")
            self.required = frozenset(required)
        self.items: Optional[SchemaNode] = (
            SchemaNode(schema["items"], f"{where}.items") if "items" in schema else None
        )


_ANY = SchemaNode({})
_ANY.items = _ANY


class JSONSchemaPrefix(JSONPrefix):
    """`JSONPrefix` whose text must also match a schema of the subset in `SCHEMA_SUBSET`.

    Object keys: declared ones only (any order, each at most once), "," only while one is
    left, "}" only once the required ones are there; numbers under "integer" have no fraction
    or exponent. Every accepted prefix can still be completed into a matching document.
    Raises NotImplementedError for a schema outside the subset.
    """

    __slots__ = ("_frames", "_next")

    def __init__(self, schema: Any, max_ws: Optional[int] = None, leading_ws: bool = True) -> None:
        super().__init__(top="any", max_ws=max_ws, leading_ws=leading_ws)
        self._next = schema if isinstance(schema, SchemaNode) else SchemaNode(schema)
        # open containers, innermost last: (node, keys used) for objects, (node, None) arrays
        self._frames: Tuple[Tuple[SchemaNode, Optional[FrozenSet[bytes]]], ...] = ()

    def _copy_extra(self, c: JSONPrefix) -> None:
        assert isinstance(c, JSONSchemaPrefix)
        c._frames, c._next = self._frames, self._next

    def copy(self) -> JSONSchemaPrefix:
        c = JSONSchemaPrefix.__new__(JSONSchemaPrefix)
        self._copy_into(c)
        return c

    def _remaining(self) -> Optional[Tuple[bytes, ...]]:
        node, used = self._frames[-1]
        if node.props is None:
            return None
        assert used is not None
        return tuple(k for k in node.props if k not in used)

    def _on_start(self, b: int) -> bool:
        node = self._next
        if b == 0x7B:
            kind = "object"
        elif b == 0x5B:
            kind = "array"
        elif b == 0x22:
            kind = "string"
        elif b in (0x74, 0x66):
            kind = "boolean"
        elif b == 0x6E:
            kind = "null"
        else:
            if "number" not in node.types and "integer" not in node.types:
                return False
            self._int_only = "number" not in node.types
            return True
        if kind not in node.types:
            return False
        if kind == "string":
            self._choices = node.enum
        elif kind == "object":
            self._frames += ((node, frozenset()),)
        elif kind == "array":
            self._frames += ((node, None),)
            self._next = node.items or _ANY
        return True

    def _on_key_start(self) -> bool:
        remaining = self._remaining()
        if remaining is None:
            return True
        self._choices = remaining
        return bool(remaining)

    def _on_key(self, key: bytes) -> None:
        node, used = self._frames[-1]
        if node.props is None:
            self._next = _ANY
            return
        assert used is not None
        self._next = node.props[key]
        self._frames = self._frames[:-1] + ((node, used | {key}),)

    def _on_comma(self) -> bool:
        node, used = self._frames[-1]
        if used is None:  # array
            self._next = node.items or _ANY
            return True
        remaining = self._remaining()
        return remaining is None or bool(remaining)

    def _on_close(self, kind: str) -> bool:
        node, used = self._frames[-1]
        if used is not None and not node.required <= used:
            return False
        self._frames = self._frames[:-1]
        return True

    def completion(self) -> bytes:
        """Bytes that complete the text into a document matching the schema (b"" if it is)."""
        if not self.valid:
            raise ValueError("not a valid JSON prefix")
        if self.complete:
            return b""
        mode, tail = self._mode, b""
        frames = list(self._frames)
        has_member = mode != _KEY_OR_CLOSE

        def use(key: bytes) -> bytes:
            node, used = frames[-1]
            assert used is not None
            frames[-1] = (node, used | {key})
            return b":" + _minimal((node.props or {}).get(key, _ANY))

        if mode == _STRING:
            if self._choices is not None:
                choice = next(c for c in self._choices if c.startswith(self._buf))
                tail += choice[len(self._buf):] + b'"'
                if self._is_key:
                    tail += use(choice)
            else:
                # the plain completion of the string (and ':null' for a key of a free object),
                # without its closing brackets
                tail += super().completion()[: -len(self._stack) or None]
        elif mode == _NUMBER:
            tail += _NUM_FINISH.get(self._sub, b"")
        elif mode == _LITERAL:
            tail += self._lit
        elif mode in (_START, _VALUE):
            tail += _minimal(self._next)
        elif mode == _COLON:
            tail += b":" + _minimal(self._next)
        elif mode == _KEY:
            remaining = self._remaining()
            if remaining is None:
                tail += b'"":' + _minimal(_ANY)
            else:
                node, used = frames[-1]
                key = min(remaining, key=lambda k: k not in node.required)  # required first
                tail += b'"' + key + b'"' + use(key)
        for node, used in reversed(frames):
            if used is None:
                tail += b"]"
            else:
                for key in node.props or {}:
                    if key in node.required and key not in used:
                        sep = b"," if has_member else b""
                        tail += sep + b'"' + key + b'":' + _minimal((node.props or {})[key])
                        has_member = True
                tail += b"}"
            has_member = True
        return tail


def _minimal(node: SchemaNode) -> bytes:
    """A short document matching `node`."""
    if node.enum is not None:
        return b'"' + node.enum[0] + b'"'
    for kind, text in (("null", b"null"), ("boolean", b"true"), ("integer", b"0"), ("number", b"0"),
                       ("string", b'""'), ("array", b"[]")):
        if kind in node.types:
            return text
    props = node.props or {}
    return b"{" + b",".join(b'"' + k + b'":' + _minimal(props[k]) for k in props
                            if k in node.required) + b"}"


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
    ) -> None:
        self.piece = piece
        self.is_eog = is_eog
        self.state: JSONPrefix = (
            JSONPrefix(top=top, max_ws=max_ws, leading_ws=leading_ws) if schema is None
            else JSONSchemaPrefix(schema, max_ws=max_ws, leading_ws=leading_ws)
        )
        self._pieces: Dict[int, bytes] = {}
        self._tried: Dict[int, Optional[JSONPrefix]] = {}  # this step's checks

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
        nxt: Optional[JSONPrefix] = None
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
    plain logits processor (e.g. by llama-cpp-python) it does nothing.
    """

    def __init__(
        self,
        top: str = "object",
        max_ws: Optional[int] = 20,
        leading_ws: bool = False,
        schema: Optional[Any] = None,
    ) -> None:
        JSONPrefix(top=top, max_ws=max_ws)  # validates the options
        # a schema (SCHEMA_SUBSET; NotImplementedError outside it) replaces `top`
        self.schema = None if schema is None else SchemaNode(schema)
        self.top = top
        self.max_ws = max_ws
        self.leading_ws = leading_ws

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return scores

    def __repr__(self) -> str:
        return f"JSONOutput(top={self.top!r}, max_ws={self.max_ws}, leading_ws={self.leading_ws})"
