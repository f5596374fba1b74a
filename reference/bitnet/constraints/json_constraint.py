"""JSON-constrained decoding without a grammar engine: `JSONConstraint` and `JSONOutput`.

Role: a bitnet extension next to the GBNF grammars (`bitnet.constraints.grammar`): a
`JSONOutput()` marker in `logits_processor` makes `bitnet.llama_compat.Llama` sample with a
`JSONConstraint` (reject-and-resample: a token whose bytes would leave the language is masked
and the sampler runs again, see `Llama`'s `_sampling.sample_constrained`). The languages:

- `JSONPrefix` (json_prefix.py): any JSON text, or an object, with llama.cpp-like whitespace
  limits;
- `JSONSchemaPrefix` (json_schema_prefix.py): text matching a schema of `SCHEMA_SUBSET`
  (json_schema.py), with exact numeric bounds and patterns (json_numbers.py) and `compact`
  layout (llama-cpp-python's `json_schema_to_gbnf` spacing and key order);
- `LiteralPrefix`: one of a few fixed strings (the function-name grammars).

Every state object offers copy() / push(bytes) -> bool / complete / finished / completion().
Soundness of the schema automaton: a complete text validates (jsonschema is the test oracle);
a prefix of a valid document is never refused; and it avoids dead ends except where noted on
`JSONSchemaPrefix`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from bitnet.constraints.json_prefix import JSONPrefix
from bitnet.constraints.json_schema import SCHEMA_SUBSET, SchemaNode
from bitnet.constraints.json_schema_prefix import JSONSchemaPrefix

__all__ = ["JSONPrefix", "JSONSchemaPrefix", "LiteralPrefix", "SchemaNode", "SCHEMA_SUBSET",
           "JSONConstraint", "JSONOutput"]


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
