"""JSON schemas compiled for `JSONSchemaPrefix`: `SchemaNode` and the supported subset.

`SchemaNode(schema)` compiles a schema of `SCHEMA_SUBSET` (types and type lists, enum / const
of any values, anyOf / oneOf, local $ref with $defs / definitions, recursion included,
properties / required / additionalProperties, items / prefixItems / minItems / maxItems,
pattern / minLength / maxLength, number bounds and multipleOf) into a graph of nodes; a
keyword outside the subset raises NotImplementedError naming it, a malformed schema
ValueError. Nodes answer the checks the automaton needs (`string_ok`, `number_ok`,
`int_range`, ...).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Any, Dict, FrozenSet, List, Optional, Tuple
from urllib.parse import unquote

import regex

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
