"""GBNF grammars: the parser, the recognizer and the JSON-schema converter against llama.cpp.

- Parsing: llama.cpp's examples and hypothesis-drawn grammars (tests/grammar_oracle.py), valid
  and mutated, are accepted or refused exactly as llama.cpp's llama_sampler_init_grammar does.
- Recognition: along random walks (a token the grammar allows at each step, chosen by
  hypothesis), the tokens allowed next are exactly llama.cpp's, compared on a fixed sample of
  SmolLM2's vocabulary (every token of <= 2 bytes, which covers each byte and the partial UTF-8
  cases, the control tokens, plus 1500 others).
- `GrammarPrefix` (bytes in, complete or not) on known answers.
- `json_schema_to_gbnf`: the same text as llama-cpp-python's for hypothesis-drawn schemas, the
  same builtin exception type where it refuses one.
- `LlamaGrammar`: from_string / from_file / from_json_schema errors, `<token>` resolution.
Budget: BITNET_HYPOTHESIS_EXAMPLES (default 25 per property).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnet.constraints.gbnf import GrammarError, parse_gbnf
from bitnet.constraints.grammar import CompiledGrammar, GrammarPrefix, PartialUTF8, accepts, decode_utf8
from bitnet.constraints.grammar_constraint import GrammarConstraint, ReferenceGrammarEngine
from bitnet.llama_compat import Llama, LlamaGrammar
from bitnet.llama_compat import llama_grammar as G
from bitnet_harness.corpora import corpus_path

from .grammar_oracle import LlamaCppGrammar, accepts_by_llama_cpp, grammars, mutated_grammars

EXAMPLES = int(os.environ.get("BITNET_HYPOTHESIS_EXAMPLES", "25"))
SMOLLM2 = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
EXAMPLE_GRAMMARS = {
    n: getattr(G, n)
    for n in (
        "ARITHMETIC_GBNF",
        "C_GBNF",
        "CHESS_GBNF",
        "JAPANESE_GBNF",
        "JSON_ARR_GBNF",
        "JSON_GBNF",
        "LIST_GBNF",
    )
}


@pytest.fixture(scope="module")
def vocab_pair() -> Tuple[Llama, Any]:
    llama_cpp = pytest.importorskip("llama_cpp")
    path = str(corpus_path(SMOLLM2))
    return Llama(path, vocab_only=True, verbose=False), llama_cpp.Llama(path, vocab_only=True, verbose=False)


@pytest.fixture(scope="module")
def sample_ids(vocab_pair: Tuple[Llama, Any]) -> np.ndarray:
    ours, _ = vocab_pair
    vocab = ours._grammar_vocab()
    short = [t for t, p in enumerate(vocab.pieces) if len(p) <= 2]
    special = np.nonzero(vocab.eog)[0].tolist() + list(range(0, 20))
    rest = np.random.default_rng(0).choice(vocab.n_vocab, 1500, replace=False).tolist()
    return np.array(sorted(set(short + special + rest)), dtype=np.int64)


def _ours(llm: Llama, text: str) -> GrammarConstraint:
    grammar = LlamaGrammar.from_string(text)
    return GrammarConstraint(
        grammar.compile(llm._grammar_vocab(), llm._special_token_ids),
        llm._grammar_vocab(),
        engine=ReferenceGrammarEngine(),
    )


def _walk_and_compare(pair: Tuple[Llama, Any], text: str, ids: np.ndarray, choices: List[int]) -> int:
    """Walk the grammar with both engines; assert the allowed sets agree at every step."""
    ours_llm, ref_llm = pair
    mine, theirs = _ours(ours_llm, text), LlamaCppGrammar(ref_llm, text)
    steps = 0
    for choice in choices:
        if len(mine.grammar.sets[mine.sid]) > 32:
            break  # a very ambiguous drawn grammar: slow to check in both, not different
        a = ~mine.reject(ids)
        b = theirs.allowed(ids)
        bad = ids[a != b]
        assert bad.size == 0, (
            text,
            steps,
            [(int(t), ours_llm._grammar_vocab().pieces[int(t)]) for t in bad[:5]],
        )
        allowed = ids[a]
        if allowed.size == 0:
            break
        token = int(allowed[choice % allowed.size])
        if ours_llm._grammar_vocab().eog[token]:
            break
        mine.accept(token)
        theirs.accept(token)
        steps += 1
    return steps


# --- parsing ---------------------------------------------------------------------------------------


@pytest.mark.llamacpp
@pytest.mark.parametrize("name", sorted(EXAMPLE_GRAMMARS))
def test_llama_cpp_example_grammars_parse(vocab_pair: Tuple[Llama, Any], name: str) -> None:
    grammar = parse_gbnf(EXAMPLE_GRAMMARS[name])
    assert grammar.rules and accepts_by_llama_cpp(vocab_pair[1], EXAMPLE_GRAMMARS[name])


@pytest.mark.llamacpp
@settings(
    max_examples=EXAMPLES * 4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(grammars(), mutated_grammars()))
def test_parser_agrees_with_llama_cpp(vocab_pair: Tuple[Llama, Any], text: str) -> None:
    ours_llm, ref_llm = vocab_pair
    try:
        parse_gbnf(text, ours_llm._special_token_ids)
        ok = True
    except GrammarError:
        ok = False
    assert ok == accepts_by_llama_cpp(ref_llm, text), text


PARSE_ERRORS = [
    ('root ::= "a', "unexpected end of input"),
    ("root ::= foo", "Undefined rule identifier 'foo'"),
    ('root ::= root "a"', "left recursion detected for nonterminal at index 0"),
    ('x ::= "a"', "grammar does not contain a 'root' symbol"),
    ('root ::= "a"{3000}', "number of repetitions exceeds sane defaults"),
    ("root ::= [a-", "unexpected end of input"),
    ('root ::= "\\q"', "unknown escape at \\q"),
    ('root ::= "\\x4"', "expecting 2 hex chars at 4"),
    ('root ::= ( "a" ', "expecting ')' at"),
    ('root = "a"', "expecting ::= at"),
    ('root ::= "a" )', "expecting newline or end at )"),
    ("root ::= *", "expecting preceding item to */+/?/{ at"),
    ("root ::= <[42>", "expecting ']' at >"),
    ("root ::= <abc>", "no vocab to parse token at <abc>"),
    ("", "failed to parse grammar"),
]


@pytest.mark.parametrize("text, message", PARSE_ERRORS)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(GrammarError, match=None) as e:
        parse_gbnf(text)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_repetition_expands_as_llama_cpp() -> None:
    """S{2,4} -> S S S'(2); S'(x) ::= S S'(x-1) | ...; llama.cpp's rule numbering."""
    g = parse_gbnf('root ::= "a"{2,4} "b"*')
    a, b, alt, end, ref = (3, 97), (3, 98), (1, 0), (0, 0), 2
    assert g.rules[0] == [a, a, (ref, 2), (ref, 3), end]
    assert g.rules[1] == [a, alt, end]  # root_1 ::= "a" |
    assert g.rules[2] == [a, (ref, 1), alt, end]  # root_2 ::= "a" root_1 |
    assert g.rules[3] == [b, (ref, 3), alt, end]  # root_3 ::= "b" root_3 |


# --- recognition -----------------------------------------------------------------------------------


@pytest.mark.llamacpp
@pytest.mark.parametrize("name", sorted(EXAMPLE_GRAMMARS))
def test_example_grammar_masks_equal_llama_cpp(
    vocab_pair: Tuple[Llama, Any], sample_ids: np.ndarray, name: str
) -> None:
    rng = np.random.default_rng(sum(map(ord, name)))
    steps = _walk_and_compare(
        vocab_pair, EXAMPLE_GRAMMARS[name], sample_ids, rng.integers(0, 10**6, 12).tolist()
    )
    assert steps > 0


@pytest.mark.llamacpp
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=grammars(), choices=st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_grammar_masks_equal_llama_cpp(
    vocab_pair: Tuple[Llama, Any], sample_ids: np.ndarray, text: str, choices: List[int]
) -> None:
    _walk_and_compare(vocab_pair, text, sample_ids, choices)


@pytest.mark.llamacpp
def test_token_elements_and_partial_utf8_equal_llama_cpp(
    vocab_pair: Tuple[Llama, Any], sample_ids: np.ndarray
) -> None:
    """`<[id]>`, `<text>`, `!<...>` elements, and multi-byte characters reached through byte
    tokens (SmolLM2 splits 中 and the emoji into byte pieces)."""
    ours_llm, _ = vocab_pair
    im_end = ours_llm._special_token_ids("<|im_end|>")
    assert len(im_end) == 1
    vocab = ours_llm._grammar_vocab()
    bytes_ = [t for t, p in enumerate(vocab.pieces) if len(p) == 1 and p[0] >= 0x80][:40]
    ids = np.array(sorted(set(sample_ids.tolist()) | set(bytes_) | set(im_end)), dtype=np.int64)
    for text in [
        'root ::= "中" <|im_end|> [^a]* "é"',
        f'root ::= <[{im_end[0]}]> !<[{im_end[0]}]>+ "x"',
        'root ::= ("\U0001f600" | [\\u00e0-\\u00ff]) "a" .',
    ]:
        for seed in range(3):
            choices = np.random.default_rng(seed).integers(0, 10**6, 8).tolist()
            _walk_and_compare(vocab_pair, text, ids, choices)


GRAMMAR_CASES = [
    (
        'root ::= "a"+ "b"',
        [(b"", True, False), (b"aa", True, False), (b"aab", True, True), (b"b", False, False)],
    ),
    (
        'root ::= [^"\\\\]* "!"',
        [(b"x y\xc3", True, False), (b"x y\xc3\xa9!", True, True), (b'"', False, False)],
    ),
    (
        'root ::= "中"',
        [
            (b"\xe4", True, False),
            (b"\xe4\xb8", True, False),
            (b"\xe4\xb8\xad", True, True),
            (b"\xe4\xb9", True, False),
            (b"\xe4\xb9\xad", False, False),
        ],
    ),
    ("root ::= [a-c]{2,3}", [(b"ab", True, True), (b"abc", True, True), (b"abca", False, False)]),
    ("root ::= . .?", [(b"\x01", True, True), (b"\x80", False, False)]),
]


@pytest.mark.parametrize("text, cases", GRAMMAR_CASES)
def test_grammar_prefix_known_answers(text: str, cases: List[Tuple[bytes, bool, bool]]) -> None:
    g = CompiledGrammar(parse_gbnf(text))
    for data, valid, complete in cases:
        p = GrammarPrefix(g)
        assert p.push(data) is valid, data
        assert p.complete is complete, data
    assert accepts(g, cases[-1][0]) is cases[-1][2]


def test_decode_utf8_as_llama_cpp() -> None:
    assert decode_utf8("é中".encode()) == ([0xE9, 0x4E2D], (0, 0))
    assert decode_utf8(b"\xe4\xb8") == ([], (0x4 << 6 | 0x38, 1))  # a partial sequence kept
    cps, end = decode_utf8(b"\xad!", PartialUTF8(0x4 << 6 | 0x38, 1))
    assert (cps, end) == ([0x4E2D, 0x21], (0, 0))
    assert decode_utf8(b"a\x80b") == ([], (0, -1))  # a stray continuation byte: invalid
    assert decode_utf8(b"ab\0c") == ([97, 98], (0, 0))  # a NUL ends the piece


# --- JSON schema -> GBNF ---------------------------------------------------------------------------

LEAVES = st.one_of(
    st.sampled_from([{"type": t} for t in ("string", "integer", "number", "boolean", "null", "object")]),
    st.builds(
        lambda e: {"enum": e},
        st.lists(
            st.one_of(st.integers(-5, 5), st.text('ab"é', max_size=3), st.none()), min_size=1, max_size=3
        ),
    ),
    st.builds(lambda v: {"const": v}, st.one_of(st.integers(), st.text(max_size=4), st.booleans())),
    st.builds(
        lambda lo, hi: {"type": "string", "minLength": lo, "maxLength": lo + hi},
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    st.builds(
        lambda p: {"type": "string", "pattern": p},
        st.sampled_from(["^[a-z]+$", "^a(b|c)*d{2,3}$", "^\\d{3}-[0-9]{2}$", "^x.y?$", "^(ab)+$"]),
    ),
    st.sampled_from([{"type": "string", "format": f} for f in ("date", "time", "date-time", "uuid")]),
    st.sampled_from([{"not": {}}, {"if": {}}, {"type": "foo"}, {"$ref": "#/$defs/missing"}]),
)


def _schemas() -> Any:
    return st.recursive(
        LEAVES,
        lambda inner: st.one_of(
            st.builds(
                lambda props, req, addl: {
                    "type": "object",
                    "properties": props,
                    "required": [k for k in props if k in req],
                    **({"additionalProperties": addl} if addl is not None else {}),
                },
                st.dictionaries(st.sampled_from(["a", "b", "c d", "é"]), inner, max_size=3),
                st.sets(st.sampled_from(["a", "b", "c d", "é"])),
                st.one_of(st.none(), st.booleans(), inner),
            ),
            st.builds(
                lambda items, lo, n: {"type": "array", "items": items, "minItems": lo, "maxItems": lo + n},
                inner,
                st.integers(0, 2),
                st.integers(0, 2),
            ),
            st.builds(lambda xs: {"prefixItems": xs}, st.lists(inner, min_size=1, max_size=2)),
            st.builds(lambda xs: {"anyOf": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(
                lambda xs: {"allOf": xs},
                st.lists(
                    st.builds(
                        lambda p: {"properties": p},
                        st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2),
                    ),
                    min_size=1,
                    max_size=2,
                ),
            ),
            st.builds(lambda x: {"$defs": {"D": x}, "$ref": "#/$defs/D"}, inner),
        ),
        max_leaves=6,
    )


@pytest.mark.llamacpp
@settings(
    max_examples=EXAMPLES * 8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schema=_schemas())
def test_schema_converter_matches_llama_cpp_python(
    vocab_pair: Tuple[Llama, Any], schema: Dict[str, Any]
) -> None:
    """Same text or same exception type; the text parses here iff llama.cpp can load it (a
    pattern with `\\d` converts, in both, to an escape GBNF lacks: llama-cpp-python fails only
    when sampling, `LlamaGrammar.from_json_schema` raises GrammarError at once)."""
    upstream = pytest.importorskip("llama_cpp.llama_grammar")
    text = json.dumps(schema)
    try:
        expected: Any = upstream.json_schema_to_gbnf(text)
    except Exception as e:  # noqa: BLE001 (the exception type is compared)
        expected = e
    if isinstance(expected, Exception):
        with pytest.raises(type(expected)):
            G.json_schema_to_gbnf(text)
        return
    assert G.json_schema_to_gbnf(text) == expected
    try:
        LlamaGrammar.from_json_schema(text)
        ok = True
    except GrammarError:
        ok = False
    assert ok == accepts_by_llama_cpp(vocab_pair[1], expected)


# --- LlamaGrammar ----------------------------------------------------------------------------------


def test_llama_grammar_constructors(tmp_path: Path) -> None:
    g = LlamaGrammar.from_string('root ::= "yes" | "no"')
    assert g._grammar == 'root ::= "yes" | "no"' and g._root == "root"
    f = tmp_path / "g.gbnf"
    f.write_text(G.JSON_GBNF, encoding="utf-8")
    assert LlamaGrammar.from_file(f)._grammar == G.JSON_GBNF
    (tmp_path / "empty.gbnf").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="params_grammer is empty"):
        LlamaGrammar.from_file(tmp_path / "empty.gbnf")
    with pytest.raises(Exception, match="from_file: error reading grammar file"):
        LlamaGrammar.from_file(tmp_path / "missing.gbnf")
    with pytest.raises(ValueError, match="Undefined rule identifier 'nope'"):
        LlamaGrammar.from_string("root ::= nope")
    schema = json.dumps({"type": "object", "properties": {"a": {"type": "integer"}}})
    assert LlamaGrammar.from_json_schema(schema)._grammar == G.json_schema_to_gbnf(schema)
    with pytest.raises(AssertionError, match="Unrecognized schema"):
        LlamaGrammar.from_json_schema(json.dumps({"not": {}}))


def test_named_tokens_resolve_per_vocabulary(vocab_pair: Tuple[Llama, Any]) -> None:
    ours, _ = vocab_pair
    g = LlamaGrammar.from_string('root ::= "a" <|im_end|>')  # parsed without a vocabulary
    with pytest.raises(GrammarError, match="no vocab to parse token <|im_end|>"):
        g.compile()
    compiled = g.compile(ours._grammar_vocab(), ours._special_token_ids)
    assert compiled is g.compile(ours._grammar_vocab(), ours._special_token_ids)  # cached
    im_end = ours._special_token_ids("<|im_end|>")[0]
    assert (8, im_end) in compiled.grammar.rules[0]
    bad = LlamaGrammar.from_string("root ::= <not a token>")
    with pytest.raises(GrammarError, match="invalid token '<not a token>'"):
        bad.compile(ours._grammar_vocab(), ours._special_token_ids)


def test_chat_schema_grammars_keep_strings_strict_json() -> None:
    """The chat handlers' schema grammars (response_format, tool arguments) exclude raw control
    characters in strings, as llama.cpp's own converter and JSON_GBNF do; llama-cpp-python's
    converter text (json_schema_to_gbnf, unchanged) lets "\\n" through. Measured: for the
    get_time tool of tests/test_server_openai.py llama-cpp-python's reply held a raw newline."""
    from bitnet.llama_compat.llama_chat_format import _grammar_for_json_schema

    schema = json.dumps({"type": "object", "properties": {"a": {"type": "string"}}})
    loose = CompiledGrammar(parse_gbnf(G.json_schema_to_gbnf(schema)))
    strict = _grammar_for_json_schema(schema).compile()
    for g, ok in ((loose, True), (strict, False)):
        assert GrammarPrefix(g).push(b'{ "a": "x\ny') is ok
        assert accepts(g, b'{ "a": "x\\ny" }')
