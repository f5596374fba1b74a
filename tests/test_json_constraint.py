"""JSON-constrained decoding: the prefix automaton against Python's json, and end to end.

The oracle for the automaton is `json.loads` (strict, NaN/Infinity refused): a byte string is
complete iff it parses (and does not end in whitespace, which the automaton refuses by
design); every proper prefix of a document is a valid prefix; a valid prefix plus the
automaton's own `completion()` parses (so "valid prefix" is never claimed for a text no
completion can fix).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bitnet.constraints import JSONOutput, JSONPrefix, JSONSchemaPrefix

EXAMPLES = int(os.environ.get("BITNET_HYPOTHESIS_EXAMPLES", "60"))
# BITNET_HYPOTHESIS_NOSHRINK=1: report the first failing example as drawn (faster to debug)
PHASES = ([Phase.explicit, Phase.reuse, Phase.generate] if os.environ.get("BITNET_HYPOTHESIS_NOSHRINK")
          else list(Phase))
WS = b" \t\n\r"


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-RFC constant {name}")


def parses(data: bytes, top: str) -> bool:
    """json.loads accepts `data` strictly (UTF-8, no NaN/Infinity), of the right top kind,
    without trailing whitespace (refused by the automaton on purpose)."""
    if data[-1:] and data[-1:] in (b" ", b"\t", b"\n", b"\r"):
        return False
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError and _no_constant
        return False
    return top == "any" or isinstance(value, dict)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)


@st.composite
def documents(draw: Any, top: str = "any") -> bytes:
    """json.dumps of a random value with random separators, indent, escaping and leading ws."""
    value = draw(st.dictionaries(st.text(max_size=4), json_values, max_size=4) if top == "object"
                 else json_values)
    item_sep = draw(st.sampled_from([",", ", ", " ,\t", ",\r\n "]))
    key_sep = draw(st.sampled_from([":", ": ", " :\n"]))
    indent = draw(st.sampled_from([None, 0, 2, "\t"]))
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), indent=indent,
                      separators=(item_sep, key_sep))
    lead = draw(st.text(alphabet=" \t\n\r", max_size=3))
    return (lead + text).encode("utf-8")


def check_every_prefix(doc: bytes, top: str) -> None:
    """Each byte prefix of a valid document: accepted, complete iff it parses, completable."""
    p = JSONPrefix(top=top)
    for i in range(len(doc)):
        prefix = doc[:i]
        assert p.valid, (prefix, p)
        assert p.complete == parses(prefix, top), (prefix, p)
        assert parses(prefix + p.completion(), top), (prefix, p.completion())
        assert p.push(doc[i : i + 1]), (doc[: i + 1], p)
    assert p.complete, (doc, p)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=PHASES)
@given(doc=documents())
def test_documents_and_their_prefixes_any(doc: bytes) -> None:
    doc = doc.rstrip(WS)  # no trailing whitespace by design
    assert parses(doc, "any")
    check_every_prefix(doc, "any")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=PHASES)
@given(doc=documents(top="object"))
def test_documents_and_their_prefixes_object(doc: bytes) -> None:
    assert parses(doc, "object")
    check_every_prefix(doc, "object")
    whole = JSONPrefix(top="object")
    assert whole.push(doc) and whole.complete and whole.finished


MUTATION_BYTES = (b'{}[]",:\\/-+.eE0123456789tfnulrsaxNI \t\n\r'
                  b"\x00\x1f\x7f\x80\xbf\xc0\xc3\xe0\xed\xf4\xf5\xff")


@settings(max_examples=EXAMPLES * 3, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=PHASES)
@given(doc=documents(), top=st.sampled_from(["any", "object"]), data=st.data())
def test_mutations_agree_with_json_loads(doc: bytes, top: str, data: Any) -> None:
    """Random byte edits: complete iff json.loads parses; an accepted prefix can be completed."""
    buf = bytearray(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        i = data.draw(st.integers(0, len(buf)))
        b = data.draw(st.sampled_from(list(MUTATION_BYTES)))
        if op == "insert":
            buf.insert(i, b)
        elif i < len(buf):
            if op == "delete":
                del buf[i]
            else:
                buf[i] = b
    text = bytes(buf)
    p = JSONPrefix(top=top)
    accepted = p.push(text)
    assert p.complete == parses(text, top), (text, p)
    if accepted:
        assert parses(text + p.completion(), top), (text, p.completion())
    else:
        # the rejection is final and happens at one byte: the longest accepted prefix can
        # still be completed, the next byte kills it
        q = JSONPrefix(top=top)
        n = next(i for i in range(len(text) + 1) if not JSONPrefix(top=top).push(text[:i]))
        assert q.push(text[: n - 1]) and parses(text[: n - 1] + q.completion(), top)
        assert not q.push(text[n - 1 : n]) and not q.push(b"}")


@pytest.mark.parametrize(
    "text, top, valid, complete",
    [
        (b'{"a": [1, tr', "object", True, False),
        (b'{"a": 1} ', "object", False, False),  # nothing after the value
        (b"[1]", "object", False, False),  # json_object: the top level is an object
        (b"[1]", "any", True, True),
        (b"12", "any", True, True),  # complete, and "123" would be too
        (b"NaN", "any", False, False),
        (b'{"a": 01}', "object", False, False),
        (b'{"a": 1.}', "object", False, False),
        (b'"\x01"', "any", False, False),  # control character in a string
        (b'"\x7f"', "any", True, True),  # DEL is allowed by RFC 8259
        (b'"\xc0\x80"', "any", False, False),  # overlong UTF-8
        (b'"\xed\xa0\x80"', "any", False, False),  # UTF-16 surrogate encoded in UTF-8
        (b'"\xf4\x90\x80\x80"', "any", False, False),  # above U+10FFFF
        (b'"\xf0\x9f\x98', "any", True, False),  # a split 4-byte character: a prefix
        (b'"\\ud800"', "any", True, True),  # escaped lone surrogate: Python's json takes it
        (b'"\\x"', "any", False, False),
        (b"\xef\xbb\xbf{}", "object", False, False),  # UTF-8 BOM
    ],
    ids=lambda v: repr(v)[:24],
)
def test_known_cases(text: bytes, top: str, valid: bool, complete: bool) -> None:
    p = JSONPrefix(top=top)
    assert p.push(text) == valid
    assert p.complete == complete
    if not valid:
        return
    assert parses(text + p.completion(), top)


def test_whitespace_limits() -> None:
    p = JSONPrefix(max_ws=3)
    assert p.push(b'{   "a"   :   1   }')
    assert not JSONPrefix(max_ws=3).push(b"{    }")
    assert not JSONPrefix(leading_ws=False).push(b" {}")
    assert JSONPrefix(leading_ws=True).push(b" {}")
    assert not JSONPrefix(leading_ws=False).copy().push(b"\n")


# --- JSON-schema subset ------------------------------------------------------------------------
# Oracle: the `jsonschema` package (Draft 2020-12) on the parsed document. One reading differs on
# purpose and is applied to the oracle's copy of each schema: "properties" without
# "additionalProperties" closes the object (llama.cpp's json-schema-to-grammar does the same).

jsonschema = pytest.importorskip("jsonschema")

ALL_TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"]
PATTERNS = ["^[a-z]+$", "^[0-9]{3}-[0-9]{2}$", "ab", "^(foo|bar)baz", "[A-Z]", "^x*y?$", "é."]


def oracle_schema(schema: Any) -> Any:
    """`schema` with additionalProperties: false where properties stand alone (see above)."""
    if isinstance(schema, list):
        return [oracle_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: Dict[str, Any] = {}
    for k, v in schema.items():
        if k in ("properties", "$defs"):
            out[k] = {name: oracle_schema(s) for name, s in v.items()}
        elif k in ("items", "additionalProperties", "anyOf", "oneOf", "prefixItems"):
            out[k] = oracle_schema(v)
        else:
            out[k] = v
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _pairs_no_duplicates(pairs: Any) -> Any:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def validates(data: bytes, schema: Any, compact: bool = False) -> bool:
    """A strict JSON text (no NaN, no duplicate keys, no trailing whitespace but the one space
    compact output may end with) whose value jsonschema validates against `schema`."""
    if compact and data.endswith(b" "):
        data = data[:-1]
    if data[-1:] and data[-1:] in (b" ", b"\t", b"\n", b"\r"):
        return False
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant,
                           object_pairs_hook=_pairs_no_duplicates)
    except ValueError:
        return False
    return bool(jsonschema.Draft202012Validator(oracle_schema(schema)).is_valid(value))


small_values = st.none() | st.booleans() | st.integers(-50, 50) | st.text(max_size=3)
# const values: any JSON, numbers of moderate size (each digit of a huge float const costs a
# rational-arithmetic reachability check; correctness there is covered by the known cases)
const_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20)
    | st.floats(min_value=-1e12, max_value=1e12, allow_nan=False) | st.text(max_size=4),
    lambda children: (st.lists(children, max_size=3)
                      | st.dictionaries(st.text(max_size=3), children, max_size=3)),
    max_leaves=8,
)


@st.composite
def schemas(draw: Any, depth: int = 2) -> Any:
    """A random schema of the supported subset."""
    kinds = ["leaf", "string", "integer", "number", "enum", "const", "nullable"]
    if depth:
        kinds += ["array", "object", "object", "anyOf", "oneOf"]
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        return draw(st.sampled_from([{"type": t} for t in ALL_TYPES] + [{}]))
    if kind == "nullable":
        return {"type": [draw(st.sampled_from(["string", "integer", "boolean"])), "null"]}
    if kind == "string":
        s: Dict[str, Any] = {"type": "string"}
        if draw(st.booleans()):
            s["pattern"] = draw(st.sampled_from(PATTERNS))
        else:
            lo = draw(st.integers(0, 3))
            s["minLength"] = lo
            if draw(st.booleans()):
                s["maxLength"] = lo + draw(st.integers(0, 4))
        return s
    if kind in ("integer", "number"):
        s = {"type": kind}
        lo = draw(st.integers(-1000, 1000))
        if draw(st.booleans()):
            s[draw(st.sampled_from(["minimum", "exclusiveMinimum"]))] = lo
        if draw(st.booleans()):
            # a gap wide enough for a multiple of multipleOf (<= 7) between exclusive bounds
            s[draw(st.sampled_from(["maximum", "exclusiveMaximum"]))] = lo + draw(st.integers(16, 3000))
        if kind == "integer" and draw(st.booleans()):
            s["multipleOf"] = draw(st.integers(1, 7))
        return s
    if kind == "enum":
        return {"enum": draw(st.lists(small_values, min_size=1, max_size=4, unique_by=json.dumps))}
    if kind == "const":
        return {"const": draw(const_values)}
    if kind == "anyOf":
        return {"anyOf": draw(st.lists(schemas(depth - 1), min_size=1, max_size=3))}
    if kind == "oneOf":  # exactly one branch matches: branches of distinct types
        types = draw(st.lists(st.sampled_from(["string", "boolean", "null", "array", "object"]),
                              min_size=1, max_size=3, unique=True))
        return {"oneOf": [{"type": t} for t in types]}
    if kind == "array":
        s = {"type": "array", "items": draw(schemas(depth - 1))}
        if draw(st.booleans()):
            s["prefixItems"] = draw(st.lists(schemas(depth - 1), max_size=2))
        lo = draw(st.integers(0, 2))
        if lo:
            s["minItems"] = lo
        if draw(st.booleans()):
            s["maxItems"] = lo + draw(st.integers(0, 2))
        return s
    props = draw(st.dictionaries(st.text(max_size=3), schemas(depth - 1), max_size=3))
    s = {"type": "object", "properties": props, "required": [k for k in props if draw(st.booleans())]}
    extra = draw(st.sampled_from(["absent", "false", "true", "schema"]))
    if extra == "false":
        s["additionalProperties"] = False
    elif extra == "true":
        s["additionalProperties"] = True
    elif extra == "schema":
        s["additionalProperties"] = draw(schemas(depth - 1))
    return s


@st.composite
def rooted_schemas(draw: Any) -> Any:
    """A schema, sometimes behind "$ref"s into "$defs" / "definitions"."""
    schema = draw(schemas())
    how = draw(st.sampled_from(["plain", "plain", "ref", "nested-ref"]))
    if how == "ref":
        return {"$defs": {"a b": schema}, "$ref": "#/$defs/a%20b"}
    if how == "nested-ref":
        return {"definitions": {"x": schema}, "type": "object",
                "properties": {"p": {"$ref": "#/definitions/x"}, "q": {"$ref": "#/definitions/x"}},
                "required": ["p"]}
    return schema


def _resolve(schema: Any, root: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"][2:].replace("%20", " ")
        target = root
        for part in ref.split("/"):
            target = target[part]
        schema = target
    return schema


@st.composite
def instances(draw: Any, schema: Any, root: Any, compact: bool) -> Any:  # noqa: C901
    """A random value that the schema (as this module reads it) accepts."""
    schema = _resolve(schema, root)
    if schema is True:
        schema = {}
    if "anyOf" in schema or "oneOf" in schema:
        return draw(instances(draw(st.sampled_from(schema.get("anyOf") or schema["oneOf"])), root, compact))
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    types = schema.get("type", ["object"] if "properties" in schema else ALL_TYPES)
    kind = draw(st.sampled_from([types] if isinstance(types, str) else types))
    if kind == "string":
        lo, hi = schema.get("minLength", 0), schema.get("maxLength")
        if "pattern" in schema:
            return draw(st.from_regex(schema["pattern"]).filter(lambda s: "\n" not in s[-1:]))
        return draw(st.text(min_size=lo, max_size=hi if hi is not None else lo + 5))
    if kind == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -10**6 - 1) + 1)
        hi = schema.get("maximum", schema.get("exclusiveMaximum", 10**6 + 1) - 1)
        m = schema.get("multipleOf", 1)
        return draw(st.integers(-(-lo // m), hi // m)) * m
    if kind == "number":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        elo, ehi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        return draw(st.floats(min_value=lo if lo is not None else elo,
                              max_value=hi if hi is not None else ehi,
                              exclude_min=lo is None and elo is not None,
                              exclude_max=hi is None and ehi is not None,
                              allow_nan=False, allow_infinity=False))
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "null":
        return None
    if kind == "array":
        prefix = schema.get("prefixItems", [])
        lo, hi = schema.get("minItems", 0), schema.get("maxItems")
        n = draw(st.integers(lo, hi if hi is not None else lo + 3))
        return [draw(instances(prefix[i] if i < len(prefix) else schema.get("items", {}), root, compact))
                for i in range(n)]
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", False if "properties" in schema else True)
    keys = [k for k in props if k in schema.get("required", [])]
    keys += [k for k in props if k not in keys and draw(st.booleans())]
    if not compact:
        keys = draw(st.permutations(keys))
    out = {k: draw(instances(props[k], root, compact)) for k in keys}
    if extra is not False:
        for k in draw(st.lists(st.text(max_size=3), max_size=2)):
            if k not in props and k not in out:
                out[k] = draw(json_values if extra is True else instances(extra, root, compact))
    return out


@st.composite
def schema_documents(draw: Any, compact: bool = False) -> Any:
    """(schema, a matching document as bytes); compact ones laid out as llama-cpp-python's
    grammars want them (at most one space, keys in order, ASCII)."""
    schema = draw(rooted_schemas())
    value = draw(instances(schema, schema, compact))
    if compact:
        seps = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
        text = json.dumps(value, separators=seps)  # (a trailing space: test_compact_layout)
    else:
        text = json.dumps(value, ensure_ascii=draw(st.booleans()),
                          indent=draw(st.sampled_from([None, 2])),
                          separators=(draw(st.sampled_from([",", ", "])),
                                      draw(st.sampled_from([":", ": "])))).rstrip()
    return schema, text.encode("utf-8")


def _prefix(schema: Any, compact: bool) -> JSONSchemaPrefix:
    return JSONSchemaPrefix(schema, compact=compact, leading_ws=not compact)


@pytest.mark.parametrize("compact", [False, True], ids=["free", "compact"])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=PHASES)
@given(data=st.data())
def test_schema_documents_and_their_prefixes(compact: bool, data: Any) -> None:
    """No valid prefix of a valid document is refused; complete iff jsonschema validates;
    every accepted prefix has a completion that validates."""
    schema, doc = data.draw(schema_documents(compact))
    assert validates(doc, schema, compact), (schema, doc)
    p = _prefix(schema, compact)
    for i in range(len(doc)):
        prefix = doc[:i]
        assert p.complete == validates(prefix, schema, compact), (schema, prefix)
        tail = p.completion()
        assert validates(prefix + tail, schema, compact), (schema, prefix, tail)
        assert p.push(doc[i : i + 1]), (schema, doc[: i + 1])
    assert p.complete


@pytest.mark.parametrize("compact", [False, True], ids=["free", "compact"])
@settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=PHASES)
@given(data=st.data())
def test_schema_mutations(compact: bool, data: Any) -> None:
    """Edits: complete only if jsonschema validates; an accepted text can be completed."""
    schema, doc = data.draw(schema_documents(compact))
    buf = bytearray(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(buf)))
        buf[i:i + data.draw(st.integers(0, 2))] = data.draw(st.sampled_from(
            [b"", b",", b'"', b"}", b"]", b"1", b".5", b"-", b"e9", b"null", b'"a"', b"{}", b"[]",
             b" ", b"\\u0041", b"\xc3\xa9"]))
    text = bytes(buf)
    p = _prefix(schema, compact)
    accepted = p.push(text)
    if p.complete:
        assert validates(text, schema, compact), (schema, text)
    if accepted:
        assert validates(text + p.completion(), schema, compact), (schema, text, p.completion())


WALK_BYTES = list(b'{}[]",:-.e0123456789tfnulrsaxyzbAZ _\\') + [0xC3, 0xA9]


@pytest.mark.parametrize("compact", [False, True], ids=["free", "compact"])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=PHASES)
@given(schema=rooted_schemas(), data=st.data())
def test_constrained_generation_validates(compact: bool, schema: Any, data: Any) -> None:
    """Constrained generation as the sampler does it: at each step a random allowed byte (the
    "model"), drifting towards the automaton's own completion; whatever the walk, no dead end
    is ever reached and the generated document validates."""
    p = _prefix(schema, compact)
    out = b""
    budget = data.draw(st.integers(0, 60))
    for step in range(budget + 2000):
        if p.complete and (step >= budget or data.draw(st.booleans())):
            break
        tail = p.completion()  # never raises: an accepted prefix is never a dead end
        if step >= budget:
            choice = tail[:1]
        else:
            allowed = [bytes([b]) for b in WALK_BYTES if p.copy().push(bytes([b]))]
            choice = data.draw(st.sampled_from(allowed + [tail[:1]]))
        assert p.push(choice), (schema, out, choice)
        out += choice
    assert p.complete and validates(out, schema, compact), (schema, out)


RECURSIVE = {
    "$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer", "minimum": 0},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["v"]}},
    "$ref": "#/$defs/node",
}


@pytest.mark.parametrize(
    "schema, text, valid, complete",
    [
        ({"type": "string", "pattern": "^[0-9]{3}-[0-9]{2}$"}, b'"12', True, False),
        ({"type": "string", "pattern": "^[0-9]{3}-[0-9]{2}$"}, b'"12a', False, False),
        ({"type": "string", "pattern": "^[0-9]{3}-[0-9]{2}$"}, b'"123-45"', True, True),
        ({"type": "string", "pattern": "ab"}, b'"xx', True, False),  # patterns search
        ({"type": "string", "pattern": "ab"}, b'"xxab"', True, True),
        ({"type": "string", "minLength": 2, "maxLength": 3}, b'"\\u00e9"', False, False),
        ({"type": "string", "minLength": 2, "maxLength": 3}, b'"ab\\ud83d\\ude00"', True, True),
        ({"type": "string", "maxLength": 1}, b'"a\\n', False, False),
        ({"enum": [1, "one", None, [1]]}, b"1", True, True),
        ({"enum": [1, "one", None, [1]]}, b"1.0", True, True),  # 1.0 == 1 for jsonschema
        ({"enum": [1, "one", None, [1]]}, b"2", False, False),
        ({"enum": [1, "one", None, [1]]}, b'"o\\u006ee"', True, True),
        ({"enum": [1, "one", None, [1]]}, b"[1,", False, False),
        ({"const": {"a": [True]}}, b'{"a": [true]}', True, True),
        ({"const": {"a": [True]}}, b'{"a": [false', False, False),
        ({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]}, b'"ab', False, False),
        ({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]}, b"7", True, True),
        ({"type": ["integer", "null"], "minimum": 10}, b"null", True, True),
        ({"type": "integer", "minimum": 10, "maximum": 20}, b"3", False, False),  # 30+ too big
        ({"type": "integer", "minimum": 10, "maximum": 20}, b"1", True, False),
        ({"type": "integer", "minimum": 10, "maximum": 20}, b"-", False, False),
        ({"type": "integer", "exclusiveMaximum": 0}, b"-0", False, False),
        ({"type": "number", "exclusiveMinimum": 0.5}, b"0.5", True, False),  # "0.51" will do
        ({"type": "number", "multipleOf": 0.5}, b"1.5", True, True),
        ({"type": "integer", "multipleOf": 3}, b"[", False, False),
        ({"type": "array", "prefixItems": [{"type": "string"}], "items": False}, b'["a",', False, False),
        ({"type": "array", "items": {"type": "null"}, "minItems": 2}, b"[null]", False, False),
        ({"type": "array", "items": {"type": "null"}, "maxItems": 1}, b"[null,", False, False),
        ({"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
         b'{"b": 1, "a": "x", "c": 2}', True, True),
        ({"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
         b'{"b": "x"', False, False),
        ({"type": "object", "properties": {"a": {}}}, b'{"b"', False, False),
        ({"type": "object", "required": ["zz"]}, b'{"a": 1', True, False),
        ({"type": "object", "required": ["zz"]}, b'{"a": 1}', False, False),
        (RECURSIVE, b'{"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}', True, True),
        (RECURSIVE, b'{"v": 1, "kids": [{"v": -2', False, False),
        ({"const": -1.7976931348623157e+308}, b"-1.7976931348623157e+308", True, True),
        ({"const": 5e-324}, b"4.9e-324", True, True),  # parses to the same float
        ({"const": 2.8712642652500416e+16}, b"28712642652500416", True, True),
        ({"type": "number", "exclusiveMinimum": 0, "maximum": 16}, b"5e-324", True, True),
        ({"type": "number", "minimum": 877, "exclusiveMaximum": 894}, b"894", False, False),
        ({"type": "number", "minimum": 1, "maximum": 3}, b"5", False, False),  # not even 5e-1
        ({"type": "number", "minimum": 1, "maximum": 3}, b"0", True, False),  # 0.1e1 will do
    ],
    ids=lambda v: repr(v)[:28],
)
def test_schema_known_cases(schema: Any, text: bytes, valid: bool, complete: bool) -> None:
    p = JSONSchemaPrefix(schema)
    assert p.push(text) == valid
    assert p.complete == complete
    if complete:
        assert validates(text, schema)
    if valid:
        assert validates(text + p.completion(), schema)


def test_compact_layout() -> None:
    """compact: llama-cpp-python's json_schema_to_gbnf layout (one optional space, declared
    keys in order and as json.dumps writes them, no space after an enum / const value)."""
    schema = {"type": "object", "properties": {"é": {"enum": ['x"y', "z"]}, "b": {"type": "integer"},
                                               "c": {"type": "string"}}, "required": ["é"]}
    good = [b'{"\\u00e9": "x\\"y", "b": 3} ', b'{ "\\u00e9":"z","c" : "q" }', b'{"\\u00e9": "z", "c": "q"}']
    bad = [b'{"\xc3\xa9": "z"}', b'{"b": 3, "\\u00e9": "z"}', b'{"\\u00e9": "z" }', b'{"\\u00e9": "z"}  ',
           b'{  "\\u00e9": "z"}',
           b'{"\\u00e9": "z", "c": "q", "b": 1}', b'{\n"\\u00e9": "z"}', b' {"\\u00e9": "z"}']
    for text in good:
        p = JSONSchemaPrefix(schema, compact=True, leading_ws=False)
        assert p.push(text) and p.complete, text
    for text in bad:
        p = JSONSchemaPrefix(schema, compact=True, leading_ws=False)
        assert not (p.push(text) and p.complete), text
        assert JSONSchemaPrefix(schema).push(text.strip()), text  # fine without compact


@pytest.mark.parametrize("schema, keyword", [
    ({"allOf": [{}]}, "allOf"), ({"not": {}}, "not"), ({"if": {}}, "if"),
    ({"type": "object", "patternProperties": {}}, "patternProperties"),
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    ({"type": "array", "items": [{}]}, "items as a list"),
    ({"$ref": "https://example.com/s.json"}, "only local references"),
    ({"$ref": "#/$defs/a", "type": "object", "$defs": {"a": {}}}, "beside"),
    ({"type": "number", "exclusiveMinimum": True}, "only numbers"),
])
def test_schema_outside_the_subset_is_named(schema: Any, keyword: str) -> None:
    with pytest.raises(NotImplementedError, match=keyword):
        JSONSchemaPrefix(schema)
    with pytest.raises(NotImplementedError, match="JSON-schema subset"):
        JSONOutput(schema=schema)


def test_malformed_schemas_raise_value_error() -> None:
    bad: List[Dict[str, Any]] = [{"$ref": "#/nowhere"}, {"type": "string", "pattern": "("}, {"anyOf": []},
                                 {"type": "object", "properties": {}, "required": ["a"]}, {"enum": []}]
    for schema in bad:
        with pytest.raises(ValueError):
            JSONSchemaPrefix(schema)


# --- end to end ------------------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Describe a cat as a JSON object with keys name and age."}]


def _check_content(result: Any) -> Optional[dict]:
    """The chat result's content: a parsed dict on "stop", a valid JSON prefix on "length"."""
    choice = result["choices"][0]
    content = choice["message"]["content"]
    if choice["finish_reason"] == "stop":
        value = json.loads(content)
        assert isinstance(value, dict), content
        return value
    assert choice["finish_reason"] == "length"
    assert JSONPrefix(max_ws=20, leading_ws=False).push(content.encode("utf-8")), content
    return None


@pytest.fixture(scope="module")
def tiny() -> Any:
    from bitnet.llama_compat import Llama
    from bitnet_harness.synthetic import synthetic_path

    return Llama(str(synthetic_path("llama-q8_0")), n_ctx=512, verbose=False, seed=1)


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"seed": 1}, {"seed": 7}],
                         ids=["greedy", "seed1", "seed7"])
def test_tiny_model_json_object(tiny: Any, sampling: Any) -> None:
    r = tiny.create_chat_completion(MESSAGES, response_format={"type": "json_object"},
                                    max_tokens=48, **sampling)
    parsed = _check_content(r)  # a JSON object on "stop", a valid JSON prefix on "length"
    if not sampling.get("seed"):
        assert parsed is not None  # greedy: its vocabulary has "{}" and it stops
    # random weights: unconstrained, the same request is not JSON
    free = tiny.create_chat_completion(MESSAGES, max_tokens=24, **sampling)
    with pytest.raises(ValueError):
        json.loads(free["choices"][0]["message"]["content"])


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"seed": 3}], ids=["greedy", "seed3"])
def test_tiny_model_without_the_easy_way_out(tiny: Any, sampling: Any) -> None:
    """Tokens holding both braces banned: the constraint must build the object piece by piece
    (it runs out of tokens inside a long key, so the content must be a valid prefix)."""
    tok = tiny._vocab_tok
    ban = {t: float("-inf") for t in range(tiny.n_vocab())
           if {ord("{"), ord("}")} <= set(tok.token_to_piece(t, 0, False))}
    r = tiny.create_chat_completion(MESSAGES, response_format={"type": "json_object"},
                                    max_tokens=32, logit_bias=ban, **sampling)
    content = r["choices"][0]["message"]["content"]
    assert content.startswith("{") and content != "{}"
    _check_content(r)


def test_tiny_model_stream_and_create_completion(tiny: Any) -> None:
    from bitnet.llama_compat import LogitsProcessorList

    chunks = tiny.create_chat_completion(MESSAGES, response_format={"type": "json_object"},
                                         max_tokens=48, seed=2, stream=True)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert isinstance(json.loads(text), dict)
    r = tiny.create_completion("Q: a value? A:", max_tokens=32, seed=5,
                               logits_processor=LogitsProcessorList([JSONOutput(top="any")]))
    if r["choices"][0]["finish_reason"] == "stop":
        json.loads(r["choices"][0]["text"])
    else:
        assert JSONPrefix(top="any", max_ws=20).push(r["choices"][0]["text"].encode("utf-8"))


@pytest.fixture(scope="module")
def smol() -> Any:
    from bitnet.llama_compat import Llama
    from bitnet_harness.corpora import corpus_path

    path = corpus_path("models/SmolLM2-135M-Instruct.Q4_1.gguf")
    return Llama(str(path), n_ctx=512, verbose=False, seed=1)


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"seed": 3}], ids=["greedy", "seed3"])
def test_smollm2_json_object(smol: Any, sampling: Any) -> None:
    r = smol.create_chat_completion(MESSAGES, response_format={"type": "json_object"},
                                    max_tokens=48, **sampling)
    # measured: both settings end the object in 19-31 tokens
    assert r["choices"][0]["finish_reason"] == "stop"
    value = _check_content(r)
    assert value is not None and r["choices"][0]["message"]["content"].startswith("{")


CAT_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                   "mood": {"enum": ["happy", "grumpy"]}},
    "required": ["name", "age", "mood"],
}


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"seed": 3}], ids=["greedy", "seed3"])
def test_smollm2_json_schema(smol: Any, sampling: Any) -> None:
    fmt = {"type": "json_object", "schema": CAT_SCHEMA}
    r = smol.create_chat_completion(MESSAGES, response_format=fmt, max_tokens=48, **sampling)
    content = r["choices"][0]["message"]["content"].encode("utf-8")
    assert r["choices"][0]["finish_reason"] == "stop", content  # measured: 28-30 tokens
    assert validates(content, CAT_SCHEMA, compact=True), content


def test_tiny_model_json_schema(tiny: Any) -> None:
    fmt = {"type": "json_object", "schema": CAT_SCHEMA}
    r = tiny.create_chat_completion(MESSAGES, response_format=fmt, max_tokens=32, temperature=0.0)
    content = r["choices"][0]["message"]["content"].encode("utf-8")
    assert content.startswith(b'{"')  # "{}" is not allowed: keys are required
    if r["choices"][0]["finish_reason"] == "stop":
        assert validates(content, CAT_SCHEMA, compact=True), content
    else:
        assert JSONSchemaPrefix(CAT_SCHEMA, compact=True, leading_ws=False).push(content), content


def test_allof_schema_follows_the_merged_object(tiny: Any) -> None:
    """allOf no longer raises: as llama-cpp-python does, the parts' properties are merged into
    one object grammar (parts outside an anyOf are required), and the reply follows it."""
    from bitnet.constraints.grammar import GrammarPrefix
    from bitnet.llama_compat import LlamaGrammar

    schema = {"allOf": [{"properties": {"name": {"type": "string"}}},
                        {"properties": {"age": {"type": "integer"}}}]}
    fmt = {"type": "json_object", "schema": schema}
    r = tiny.create_chat_completion(MESSAGES, response_format=fmt, max_tokens=32, temperature=0.0)
    content = r["choices"][0]["message"]["content"]
    state = GrammarPrefix(LlamaGrammar.from_json_schema(json.dumps(schema)).compile())
    assert content.startswith('{') and state.push(content.encode("utf-8")), content
    if r["choices"][0]["finish_reason"] == "stop":
        assert state.complete and set(json.loads(content)) == {"name", "age"}
