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
from typing import Any, List, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnet.json_constraint import JSONOutput, JSONPrefix, JSONSchemaPrefix

EXAMPLES = int(os.environ.get("BITNET_HYPOTHESIS_EXAMPLES", "60"))
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


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_documents_and_their_prefixes_any(doc: bytes) -> None:
    doc = doc.rstrip(WS)  # no trailing whitespace by design
    assert parses(doc, "any")
    check_every_prefix(doc, "any")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(top="object"))
def test_documents_and_their_prefixes_object(doc: bytes) -> None:
    assert parses(doc, "object")
    check_every_prefix(doc, "object")
    whole = JSONPrefix(top="object")
    assert whole.push(doc) and whole.complete and whole.finished


MUTATION_BYTES = (b'{}[]",:\\/-+.eE0123456789tfnulrsaxNI \t\n\r'
                  b"\x00\x1f\x7f\x80\xbf\xc0\xc3\xe0\xed\xf4\xf5\xff")


@settings(max_examples=EXAMPLES * 3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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

ALL_TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"]


class Pairs(List[Any]):
    """A parsed object as its (key, value) pairs, so duplicate keys stay visible."""


def conforms(value: Any, schema: Any) -> bool:
    """Brute-force validator of the subset (the oracle for JSONSchemaPrefix)."""
    if "enum" in schema or "const" in schema:
        allowed = schema["enum"] if "enum" in schema else [schema["const"]]
        return isinstance(value, str) and value in allowed
    types = schema.get("type", ["object"] if "properties" in schema else ALL_TYPES)
    types = [types] if isinstance(types, str) else types
    kind = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string",
            list: "array", Pairs: "object"}[type(value)]
    if not (kind in types or (kind == "integer" and "number" in types)):
        return False
    if kind == "array":
        return all(conforms(v, schema.get("items", {})) for v in value)
    if kind == "object" and ("properties" in schema or "additionalProperties" in schema):
        props = schema.get("properties", {})
        keys = [k for k, _ in value]
        return (len(set(keys)) == len(keys) and set(keys) <= set(props)
                and set(schema.get("required", [])) <= set(keys)
                and all(conforms(v, props[k]) for k, v in value))
    return True


def schema_parses(data: bytes, schema: Any) -> bool:
    if data[-1:] and data[-1:] in (b" ", b"\t", b"\n", b"\r"):
        return False
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant, object_pairs_hook=Pairs)
    except ValueError:
        return False
    return conforms(value, schema)


@st.composite
def schemas(draw: Any, depth: int = 2) -> Any:
    """A random schema of the subset."""
    leaves = st.sampled_from([{"type": t} for t in ALL_TYPES]
                             + [{}, {"type": ["string", "null"]}, {"type": ["integer", "boolean"]}])
    enums = (st.lists(st.text(max_size=3), min_size=1, max_size=3, unique=True).map(lambda v: {"enum": v})
             | st.text(max_size=3).map(lambda v: {"const": v}))
    kind = draw(st.sampled_from(["leaf", "enum"] + (["array", "object", "object"] if depth else [])))
    if kind == "leaf":
        return draw(leaves)
    if kind == "enum":
        return draw(enums)
    if kind == "array":
        return {"type": "array", "items": draw(schemas(depth - 1))}
    props = draw(st.dictionaries(st.text(max_size=3), schemas(depth - 1), max_size=3))
    required = [k for k in props if draw(st.booleans())]
    return {"type": "object", "properties": props, "required": required}


@st.composite
def instances(draw: Any, schema: Any) -> Any:
    """A random value that conforms to `schema`."""
    if "enum" in schema or "const" in schema:
        return draw(st.sampled_from(schema["enum"] if "enum" in schema else [schema["const"]]))
    types = schema.get("type", ALL_TYPES)
    kind = draw(st.sampled_from([types] if isinstance(types, str) else types))
    if kind == "object" and "properties" in schema:
        props = schema["properties"]
        keys = [k for k in props if k in schema["required"] or draw(st.booleans())]
        keys = draw(st.permutations(keys))
        return {k: draw(instances(props[k])) for k in keys}
    strategies = {"object": st.dictionaries(st.text(max_size=3), json_values, max_size=3),
                  "array": st.lists(instances(schema.get("items", {})), max_size=3),
                  "string": st.text(max_size=5), "integer": st.integers(),
                  "number": st.integers() | st.floats(allow_nan=False, allow_infinity=False),
                  "boolean": st.booleans(), "null": st.none()}
    return draw(strategies[kind])


@st.composite
def schema_documents(draw: Any) -> Any:
    schema = draw(schemas())
    value = draw(instances(schema))
    text = json.dumps(value, ensure_ascii=False,  # enum strings and keys match as written
                      indent=draw(st.sampled_from([None, 2])),
                      separators=(draw(st.sampled_from([",", ", "])), draw(st.sampled_from([":", ": "]))))
    return schema, text.encode("utf-8").rstrip(WS)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=schema_documents())
def test_schema_documents_and_their_prefixes(case: Any) -> None:
    schema, doc = case
    assert schema_parses(doc, schema), (schema, doc)
    p = JSONSchemaPrefix(schema)
    for i in range(len(doc)):
        prefix = doc[:i]
        assert p.complete == schema_parses(prefix, schema), (schema, prefix)
        assert schema_parses(prefix + p.completion(), schema), (schema, prefix, p.completion())
        assert p.push(doc[i : i + 1]), (schema, doc[: i + 1])
    assert p.complete


@settings(max_examples=EXAMPLES * 3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=schema_documents(), data=st.data())
def test_schema_mutations(case: Any, data: Any) -> None:
    """Edits (bytes, or a swap for a document of another schema): complete only if the
    validator agrees; an accepted prefix can be completed into a matching document."""
    schema, doc = case
    buf = bytearray(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(buf)))
        buf[i:i + data.draw(st.integers(0, 2))] = data.draw(st.sampled_from(
            [b"", b",", b'"', b"}", b"]", b"1", b".5", b"null", b'"a"', b"{}", b"[]"]))
    text = bytes(buf)
    p = JSONSchemaPrefix(schema)
    accepted = p.push(text)
    if p.complete:
        assert schema_parses(text, schema), (schema, text)
    if accepted:
        assert schema_parses(text + p.completion(), schema), (schema, text, p.completion())


def test_schema_outside_the_subset_is_named() -> None:
    with pytest.raises(NotImplementedError, match=r"\['pattern'\] not supported; JSON-schema subset"):
        JSONSchemaPrefix({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}})
    with pytest.raises(NotImplementedError, match="additionalProperties"):
        JSONOutput(schema={"type": "object", "additionalProperties": True})
    with pytest.raises(NotImplementedError, match="enum"):
        JSONSchemaPrefix({"enum": [1, 2]})


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
    from bitnet.harness.synthetic import synthetic_path
    from bitnet.llama_compat import Llama

    return Llama(str(synthetic_path("llama-q8_0")), n_ctx=512, verbose=False, seed=1)


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"seed": 1}, {"seed": 7}],
                         ids=["greedy", "seed1", "seed7"])
def test_tiny_model_json_object(tiny: Any, sampling: Any) -> None:
    r = tiny.create_chat_completion(MESSAGES, response_format={"type": "json_object"},
                                    max_tokens=48, **sampling)
    assert r["choices"][0]["finish_reason"] == "stop"  # its vocabulary has "{}": it stops
    assert _check_content(r) is not None
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
    from bitnet.harness.corpora import corpus_path
    from bitnet.llama_compat import Llama

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
    assert schema_parses(content, CAT_SCHEMA), content


def test_tiny_model_json_schema(tiny: Any) -> None:
    fmt = {"type": "json_object", "schema": CAT_SCHEMA}
    r = tiny.create_chat_completion(MESSAGES, response_format=fmt, max_tokens=32, temperature=0.0)
    content = r["choices"][0]["message"]["content"].encode("utf-8")
    assert content.startswith(b'{"')  # "{}" is not allowed: keys are required
    if r["choices"][0]["finish_reason"] == "stop":
        assert schema_parses(content, CAT_SCHEMA), content
    else:
        assert JSONSchemaPrefix(CAT_SCHEMA).push(content), content


def test_unsupported_schema_raises(tiny: Any) -> None:
    with pytest.raises(NotImplementedError, match="anyOf"):
        tiny.create_chat_completion(MESSAGES, response_format={"type": "json_object",
                                                               "schema": {"anyOf": [{}]}})
