"""`JSONPrefix`: a byte-level automaton for JSON texts and their prefixes (no grammar engine).

    p = JSONPrefix(top="object")
    p.push(b'{"a": [1, tr')   # True: still a valid prefix
    p.complete                 # False
    p.completion()             # b'ue]}' -- a shortest-ish way to finish it
    p.push(b'ue]}'), p.complete  # (True, True)

What it accepts, exactly: the bytes of an RFC 8259 JSON text encoded in UTF-8 (`ws value`,
the value an object when top="object", any value when top="any"), with these limits:
- no whitespace after the top-level value: once it is complete nothing but the end may follow
  (so a constrained generation ends right after the closing brace); with `leading_ws=False`
  none before it either (JSON_GBNF's `root ::= object`);
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
Subclasses (`json_schema_prefix._Branch`) hook the `_on_*` methods to follow a schema.
"""

from __future__ import annotations

from typing import Optional

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
