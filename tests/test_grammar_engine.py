"""The C grammar engine (kernels/bn_grammar.c via bitnet_kernels.grammar_engine) against the
Python reference (`ReferenceGrammarEngine`): the same rejected tokens in every state.

States come from random walks over hypothesis-drawn grammars and llama.cpp's example grammars
on SmolLM2's vocabulary (its byte tokens reach partial UTF-8 states); the reference checks a
fixed sample of the vocabulary, the C engine the same sample. The C entry points refuse bad
stacks with an error code (no crash), and a sanitizer build (ASan + UBSan) gives the same
answers (slow).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnet.constraints.grammar_constraint import GrammarConstraint, ReferenceGrammarEngine
from bitnet.llama_compat import Llama, LlamaGrammar
from bitnet.llama_compat import llama_grammar as G
from bitnet_harness.corpora import corpus_path

from .grammar_oracle import grammars

grammar_engine = pytest.importorskip("bitnet_kernels.grammar_engine")
if not grammar_engine.available():
    pytest.skip("the C kernels (with bn_grammar.c) are not built", allow_module_level=True)

EXAMPLES = int(os.environ.get("BITNET_HYPOTHESIS_EXAMPLES", "25"))
# walks stop past this many stacks (drawn grammars like (.+|x)+ multiply the stacks; measured: a
# 124-stack state costs ~2 s per whole-vocabulary check in C, ~20 s in Python)
MAX_STACKS = 32
EXAMPLE_GRAMMARS = [
    G.JSON_GBNF,
    G.C_GBNF,
    G.LIST_GBNF,
    G.JAPANESE_GBNF,
    G.ARITHMETIC_GBNF,
    'root ::= [^a-z]* "é" ("中" | "\U0001f600")+ <[42]> !<[42]> .',
]


@pytest.fixture(scope="module")
def llm() -> Llama:
    return Llama(str(corpus_path("models/SmolLM2-135M-Instruct.Q4_1.gguf")), vocab_only=True, verbose=False)


@pytest.fixture(scope="module")
def ids(llm: Llama) -> np.ndarray:
    vocab = llm._grammar_vocab()
    short = [t for t, p in enumerate(vocab.pieces) if len(p) <= 2]
    rest = np.random.default_rng(1).choice(vocab.n_vocab, 2000, replace=False).tolist()
    return np.array(sorted(set(short + rest + np.nonzero(vocab.eog)[0].tolist())), dtype=np.int64)


def walk_compare(llm: Llama, text: str, ids: np.ndarray, choices: List[int]) -> int:
    """Walk `text` choosing allowed tokens; assert C == reference at each state."""
    vocab = llm._grammar_vocab()
    c_engine, ref_engine = grammar_engine.CGrammarEngine(), ReferenceGrammarEngine()
    state = GrammarConstraint(LlamaGrammar.from_string(text).compile(vocab, llm._special_token_ids), vocab)
    steps = 0
    for choice in choices:
        if len(state.grammar.sets[state.sid]) > MAX_STACKS:
            break  # a very ambiguous grammar: checks get slow, not different
        a, b = c_engine.reject(state, ids), ref_engine.reject(state, ids)
        assert np.array_equal(a, b), (text, steps, ids[a != b][:5])
        allowed = ids[~a & ~vocab.eog[ids]]
        if allowed.size == 0:
            break
        state.accept(int(allowed[choice % allowed.size]))
        steps += 1
    return steps


@pytest.mark.parametrize("index", range(len(EXAMPLE_GRAMMARS)))
def test_example_grammars(llm: Llama, ids: np.ndarray, index: int) -> None:
    choices = np.random.default_rng(index).integers(0, 10**6, 16).tolist()
    assert walk_compare(llm, EXAMPLE_GRAMMARS[index], ids, choices) > 0


@settings(
    max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=grammars(), choices=st.lists(st.integers(0, 10**6), min_size=1, max_size=10))
def test_hypothesis_grammars(llm: Llama, ids: np.ndarray, text: str, choices: List[int]) -> None:
    walk_compare(llm, text, ids, choices)


def test_whole_vocabulary_once(llm: Llama) -> None:
    """Every token of the vocabulary, in a string state and right after a partial byte."""
    vocab = llm._grammar_vocab()
    state = GrammarConstraint(LlamaGrammar.from_string(G.JSON_GBNF).compile(), vocab)
    for t in llm._vocab_tok.tokenize(b'{"k": "caf', add_special=False, parse_special=False):
        state.accept(t)
    every = np.arange(vocab.n_vocab)
    c_engine = grammar_engine.CGrammarEngine()
    assert np.array_equal(c_engine.reject(state, every), ReferenceGrammarEngine().reject(state, every))
    lead = next(t for t, p in enumerate(vocab.pieces) if p == b"\xc3")  # the first byte of é
    state.accept(lead)
    assert state.partial.n_remain == 1
    assert np.array_equal(c_engine.reject(state, every), ReferenceGrammarEngine().reject(state, every))


def test_bad_input_is_an_error_code(llm: Llama) -> None:
    engine = grammar_engine.CGrammarEngine()
    ffi, lib = engine.ffi, engine.lib
    compiled = LlamaGrammar.from_string('root ::= "a"').compile()
    g = engine._grammar_handle(compiled)
    v = engine._vocab_handle(llm._grammar_vocab())
    out = ffi.new("uint8_t[]", 1)
    ids = ffi.new("int32_t[]", [5])
    bad_stack = ffi.new("uint32_t[]", [10**6])  # a position past the elements
    assert lib.bn_grammar_reject(g, v, bad_stack, ffi.new("int32_t[]", [1]), 1, 0, 0, ids, 1, out) == -1
    stack = ffi.new("uint32_t[]", [compiled.sets[compiled.initial][0][0]])
    bad_id = ffi.new("int32_t[]", [llm.n_vocab()])
    assert lib.bn_grammar_reject(g, v, stack, ffi.new("int32_t[]", [1]), 1, 0, 0, bad_id, 1, out) == -1
    assert lib.bn_grammar_reject(g, v, stack, ffi.new("int32_t[]", [1]), 0, 0, 0, ids, 1, out) == -1
    types = ffi.new("int32_t[]", [3, 1])  # not ending in END
    assert (
        lib.bn_grammar_new(types, ffi.new("uint32_t[]", [97, 0]), 2, ffi.new("int32_t[]", [0]), 1) == ffi.NULL
    )


@pytest.mark.slow
def test_sanitizer_build_grammar(tmp_path: Path) -> None:
    """bn_grammar.c built with -fsanitize=address,undefined answers as the reference on the
    example grammars (no sanitizer report: the process would abort)."""
    from .kernel_builds import SANITIZER_OPTIONS, build_kernels, libasan, run_with_kernels

    asan = libasan()
    if asan is None:
        pytest.skip("gcc with libasan not available")
    so = build_kernels(tmp_path, sanitize=True)
    body = f"""
        import numpy as np
        from bitnet.constraints.grammar_constraint import GrammarConstraint, ReferenceGrammarEngine
        from bitnet.llama_compat import Llama, LlamaGrammar
        from bitnet_kernels.grammar_engine import CGrammarEngine
        llm = Llama({str(corpus_path("models/SmolLM2-135M-Instruct.Q4_1.gguf"))!r},
                    vocab_only=True, verbose=False)
        vocab = llm._grammar_vocab()
        ids = np.random.default_rng(0).choice(vocab.n_vocab, 3000, replace=False)
        bad = 0
        for i, text in enumerate({EXAMPLE_GRAMMARS!r}):
            compiled = LlamaGrammar.from_string(text).compile(vocab, llm._special_token_ids)
            state = GrammarConstraint(compiled, vocab)
            rng = np.random.default_rng(i)
            for _ in range(8):
                a = CGrammarEngine().reject(state, ids)
                bad += int((a != ReferenceGrammarEngine().reject(state, ids)).sum())
                ok = ids[~a & ~vocab.eog[ids]]
                if ok.size == 0:
                    break
                state.accept(int(rng.choice(ok)))
        print("grammar sanitizer mismatches:", bad)
    """
    env = dict(os.environ, LD_PRELOAD=asan, **SANITIZER_OPTIONS)
    r = run_with_kernels(so, body, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "grammar sanitizer mismatches: 0" in r.stdout
