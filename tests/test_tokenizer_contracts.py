"""Tokenizer contracts: llama.cpp's vectors, differential fuzz vs llama.cpp, tiktoken, round trips.

Every vocabulary llama.cpp ships (corpora/data/vocab) plus SmolLM2's (the `smollm`
pre-tokenizer) is checked, on the tokenizer engine the API surfaces use
(`bitnet.runtime.tokenizer_engine()`: the C one when built, pure Python under
BITNET_BACKEND=reference); tests/test_tokenizer_fastpath.py holds the two paths equal.
Budgets: BITNET_HYPOTHESIS_EXAMPLES examples per vocabulary and test (default 30); each
example runs all four add_special x parse_special combinations.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnet import runtime
from bitnet.errors import InvalidUTF8Error, UnsupportedError
from bitnet.gguf import load as gguf_load
from bitnet.tokenizers import (
    SUPPORTED_MODEL_TYPES,
    SUPPORTED_PRE_TOKENIZERS,
    compare_with_llamacpp,
    from_gguf_kv,
    load,
)
from bitnet.tokenizers.gguf_tokenizer import GGUFTokenizer
from bitnet.tokenizers.tiktoken_file import CL100K_PATTERN, CL100K_SPECIAL_TOKENS
from bitnet.tokenizers.unicode import BYTE_TO_UNICODE, LETTER, NUMBER, cpt_flags
from bitnet.tokenizers.vocab import _AUTO_SPECIALS, merge_ranks
from bitnet_harness.corpora import CL100K, SMOLLM2, corpus_path, vocab_names
from bitnet_harness.fuzz import first_mismatch, text_strategy

EXAMPLES = int(os.environ.get("BITNET_HYPOTHESIS_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VOCABS = vocab_names()  # e.g. 'gpt-2', 'llama-spm', ...
WITH_VECTORS = [
    n for n in VOCABS if corpus_path(f"vocab/ggml-vocab-{n}.gguf").with_suffix(".gguf.inp").exists()
]
ALL_FILES = VOCABS + ["smollm2"]  # smollm2: the real model's vocabulary (pre 'smollm')
SEP = b"\n__ggml_vocab_test__\n"
_EOT_TEXTS = dict(_AUTO_SPECIALS)["eot_id"]


def _path(name: str) -> Path:
    return (
        corpus_path(SMOLLM2) if name == "smollm2" else corpus_path(f"vocab/ggml-vocab-{name}.gguf")
    )


@functools.lru_cache(maxsize=None)
def raw_tokenizer(name: str) -> GGUFTokenizer:
    """Built from the file's metadata as stored (what llama.cpp sees), no auto-repair."""
    gf = gguf_load(_path(name), apply_repairs=False)
    return from_gguf_kv(gf.kv, engine=runtime.tokenizer_engine())


@functools.lru_cache(maxsize=None)
def product_tokenizer(name: str) -> GGUFTokenizer:
    """`bitnet.tokenizers.load`: the file's metadata after bitnet.gguf's auto-repair."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = load(_path(name), engine=runtime.tokenizer_engine())
    assert isinstance(tok, GGUFTokenizer)
    return tok


@functools.lru_cache(maxsize=None)
def llama(name: str) -> Any:
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.Llama(model_path=str(_path(name)), vocab_only=True, verbose=False)


@pytest.fixture(scope="module", autouse=True)
def _close_oracles() -> Iterator[None]:
    """Free the llama.cpp vocabularies before interpreter exit (their __del__ is noisy then)."""
    yield
    for name in ALL_FILES:
        if llama.cache_info().currsize == 0:
            break
        try:
            llama(name).close()
        except Exception:  # pragma: no cover - an oracle that never loaded
            pass
    llama.cache_clear()


def read_vectors(name: str) -> List[Tuple[bytes, List[int]]]:
    """Cases as tests/test-tokenizer-0.cpp reads them: .inp split on the separator (the file
    ends with one, so there is no empty last case), .out one stripped line of ids per case."""
    path = _path(name)
    raw = path.with_suffix(".gguf.inp").read_bytes()
    outs = path.with_suffix(".gguf.out").read_bytes().decode("utf-8").split("\n")
    cases: List[bytes] = []
    pos = 0
    while pos < len(raw):
        nxt = raw.find(SEP, pos)
        if nxt < 0:
            cases.append(raw[pos:])
            break
        cases.append(raw[pos:nxt])
        pos = nxt + len(SEP)
    assert len(outs) >= len(cases)
    return [(c, [int(x) for x in o.split()]) for c, o in zip(cases, outs)]


# --- 1. llama.cpp's vectors ----------------------------------------------------------------


@pytest.mark.parametrize("name", WITH_VECTORS)
def test_llamacpp_vectors(name: str) -> None:
    """100% of the shipped .inp/.out cases, add_special=False, parse_special=False."""
    tok = product_tokenizer(name)
    failures = [
        (text, tok.tokenize(text, False, False), ids)
        for text, ids in read_vectors(name)
        if tok.tokenize(text, False, False) != ids
    ]
    assert not failures, f"{len(failures)} cases differ, first: {failures[0]!r}"


def test_every_shipped_vocab_has_a_tokenizer() -> None:
    for name in ALL_FILES:
        tok = product_tokenizer(name)
        assert tok.n_vocab == tok.vocab.n_tokens > 0


# --- 2. differential against llama.cpp -----------------------------------------------------

@pytest.mark.llamacpp
@pytest.mark.fuzz
@pytest.mark.parametrize("name", ALL_FILES)
def test_differential_vs_llamacpp(name: str) -> None:
    """ids, llama_detokenize (4 flag combinations) and Llama.detokenize identical to llama.cpp."""
    tok = raw_tokenizer(name)
    oracle = llama(name)

    @FUZZ
    @given(st.data())
    def check(data: st.DataObject) -> None:
        mismatch = first_mismatch(tok, oracle, data.draw(text_strategy(tok), label="text"))
        assert mismatch is None, str(mismatch)

    check()


@pytest.mark.llamacpp
@pytest.mark.parametrize("name", ALL_FILES)
def test_vocab_metadata_matches_llamacpp(name: str) -> None:
    """Special ids, add_* flags, EOG membership and token attributes as llama.cpp loads them."""
    llama_cpp = pytest.importorskip("llama_cpp")

    v = raw_tokenizer(name).vocab
    lv = llama_cpp.llama_model_get_vocab(llama(name).model)
    null = -1

    def ours(x: object) -> int:
        return null if x is None else int(x)  # type: ignore[call-overload]

    assert ours(v.bos_id) == llama_cpp.llama_vocab_bos(lv)
    assert ours(v.eos_id) == llama_cpp.llama_vocab_eos(lv)
    assert ours(v.sep_id) == llama_cpp.llama_vocab_sep(lv)
    assert ours(v.pad_id) == llama_cpp.llama_vocab_pad(lv)
    assert v.add_bos == llama_cpp.llama_vocab_get_add_bos(lv)
    assert v.add_eos == llama_cpp.llama_vocab_get_add_eos(lv)
    assert v.add_sep == llama_cpp.llama_vocab_get_add_sep(lv)
    assert v.n_tokens == llama_cpp.llama_vocab_n_tokens(lv)
    assert ours(v.nl_id) == llama_cpp.llama_vocab_nl(lv)
    assert ours(v.mask_id) == llama_cpp.llama_vocab_mask(lv)
    for ours_id, theirs_fn in ((v.fim_pre_id, llama_cpp.llama_vocab_fim_pre),
                               (v.fim_suf_id, llama_cpp.llama_vocab_fim_suf),
                               (v.fim_mid_id, llama_cpp.llama_vocab_fim_mid),
                               (v.fim_pad_id, llama_cpp.llama_vocab_fim_pad),
                               (v.fim_rep_id, llama_cpp.llama_vocab_fim_rep),
                               (v.fim_sep_id, llama_cpp.llama_vocab_fim_sep)):
        assert ours(ours_id) == theirs_fn(lv)
    sample = sorted(
        set(v.special_tokens)
        | set(range(0, v.n_tokens, max(1, v.n_tokens // 3000)))
        | set(range(v.n_tokens - 300, v.n_tokens))
    )
    attrs = [(t, v.attrs[t], int(llama_cpp.llama_vocab_get_attr(lv, t))) for t in sample]
    assert [a for a in attrs if a[1] != a[2]] == []
    eog = [(t, v.is_eog(t), bool(llama_cpp.llama_vocab_is_eog(lv, t))) for t in sample]
    assert [e for e in eog if e[1] != e[2]] == []
    eot_candidates = [t for t in _EOT_TEXTS if t in v.token_to_id]
    if ours(v.eot_id) != llama_cpp.llama_vocab_eot(lv) and len(eot_candidates) > 1:
        pytest.xfail(
            f"eot_id: llama.cpp takes the first of {eot_candidates} in its hash map's "
            f"order (id {llama_cpp.llama_vocab_eot(lv)}), we the first in its list "
            f"(id {v.eot_id}); see bitnet.tokenizers.vocab"
        )
    assert ours(v.eot_id) == llama_cpp.llama_vocab_eot(lv)


_ABORT_SCRIPT = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
llm.tokenize(b"a\\xf7\\xbf\\xbf\\xbfb", add_bos=False, special=False)
print("survived")
"""


@pytest.mark.llamacpp
@pytest.mark.parametrize("name", ["gpt-2", "bert-bge"])
def test_codepoint_past_u10ffff_is_where_llamacpp_fails(name: str) -> None:
    """BPE/WPM: a 4-byte sequence decoding past U+10FFFF kills llama.cpp (uncaught
    std::invalid_argument 'invalid codepoint'); we raise InvalidUTF8Error (code -2) instead."""
    pytest.importorskip("llama_cpp")
    with pytest.raises(InvalidUTF8Error) as err:
        raw_tokenizer(name).tokenize(b"a\xf7\xbf\xbf\xbfb", False, False)
    assert err.value.code == -2
    env = dict(os.environ, GGML_NO_BACKTRACE="1")  # no gdb backtrace on abort
    proc = subprocess.run(
        [sys.executable, "-c", _ABORT_SCRIPT, str(_path(name))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode != 0 and "survived" not in proc.stdout
    assert "invalid codepoint" in proc.stderr


@pytest.mark.llamacpp
@pytest.mark.parametrize(
    "name",
    ["gpt-2", "llama-bpe", "llama-spm", "bert-bge", "nomic-bert-moe", "gemma-4", "deepseek-llm"],
)
@pytest.mark.parametrize(
    "text",
    [
        b"a\xffb",
        b"\xc0\xaf",
        b"\xed\xa0\x80x",
        b"\xe4\xb8",
        b"\x80\x80 z",
        b"\xf0\x9f\x98",
        b" \xfe\xff ",
    ],
)
def test_invalid_utf8_like_llamacpp(name: str, text: bytes) -> None:
    """Other invalid UTF-8 is accepted: U+FFFD per bad byte (BPE/WPM/UGM), raw bytes (SPM)."""
    for add_special in (False, True):
        for parse_special in (False, True):
            mismatch = compare_with_llamacpp(
                raw_tokenizer(name), llama(name), text, add_special, parse_special
            )
            assert mismatch is None, str(mismatch)


def test_spm_and_ugm_accept_any_bytes() -> None:
    for name in ("llama-spm", "nomic-bert-moe"):
        assert raw_tokenizer(name).tokenize(b"a\xf7\xbf\xbf\xbfb", False, False)


@pytest.mark.parametrize("name", [n for n in VOCABS if n != "gpt-neox"] + ["smollm2"])
def test_auto_repair_keeps_tokenization(name: str) -> None:
    """bitnet.gguf's repairs (missing ids, byte_fallback, ...) do not change the ids. The one
    intended exception: gpt-neox has no pre-tokenizer key; llama.cpp falls back to 'default'
    while the repair recognizes the vocabulary (MPT's) and uses 'mpt' (aquila stays 'default')."""
    texts = [c for c, _ in read_vectors("gpt-2")] + [b"<|endoftext|> <s>[CLS]"]
    raw, fixed = raw_tokenizer(name), product_tokenizer(name)
    for text in texts:
        for flags in ((False, False), (True, True)):
            assert raw.tokenize(text, *flags) == fixed.tokenize(text, *flags)


def test_missing_pre_uses_llamacpp_default_without_repair() -> None:
    v = raw_tokenizer("gpt-neox").vocab
    assert v.pre == "" and v.pre_type == "default"


def test_merge_ranks_read_merges_as_llamacpp() -> None:
    """Split at the first space after the first character, no space: ("", ""), a repeated
    pair keeps its first rank (llama_vocab::impl::load's emplace); in the merges' order."""
    merges = ["a b", "  c", "ab c", "a b", "nospace", " x y", "a  b", "ab c"]
    want = {("a", "b"): 0, (" ", "c"): 1, ("ab", "c"): 2, ("", ""): 4, (" x", "y"): 5,
            ("a", " b"): 6}
    assert list(merge_ranks(merges).items()) == list(want.items())
    assert merge_ranks(merges[:3]) == {("a", "b"): 0, (" ", "c"): 1, ("ab", "c"): 2}


def test_merges_and_max_token_len_are_made_on_first_use() -> None:
    kv = gguf_load(corpus_path(SMOLLM2)).kv
    tok = from_gguf_kv(kv, engine=runtime.tokenizer_engine())
    v = tok.vocab
    assert v._merges is None and v._max_token_len is None  # not made by the constructor
    # llama.cpp's ids (the Python merges: the engine is not warm yet)
    assert tok.tokenize(b"Hello world, merges", False, False) == [19556, 905, 28, 11778, 266]
    assert v.merges == merge_ranks(kv["tokenizer.ggml.merges"])
    assert v.max_token_len == max(len(t.encode("utf-8", "surrogateescape")) for t in v.tokens)


# --- 3. unsupported inputs say what is supported ------------------------------------------


def test_unsupported_model_type_lists_supported() -> None:
    kv = dict(gguf_load(_path("gpt-2"), apply_repairs=False).kv)
    kv["tokenizer.ggml.model"] = "rwkv"
    with pytest.raises(UnsupportedError) as err:
        from_gguf_kv(kv)
    for name in SUPPORTED_MODEL_TYPES:
        assert name in str(err.value)


def test_unsupported_pre_tokenizer_lists_supported() -> None:
    kv = dict(gguf_load(_path("gpt-2"), apply_repairs=False).kv)
    kv["tokenizer.ggml.pre"] = "kimi-k2"
    with pytest.raises(UnsupportedError) as err:
        from_gguf_kv(kv)
    assert "llama-bpe" in str(err.value) and "qwen2" in str(err.value)
    for needed in (
        "gpt-2",
        "llama-bpe",
        "falcon",
        "qwen2",
        "qwen35",
        "deepseek-llm",
        "deepseek-coder",
        "starcoder",
        "refact",
        "command-r",
        "mpt",
        "smollm",
        "default",
        "gemma4",
    ):
        assert needed in SUPPORTED_PRE_TOKENIZERS


# --- 4. tiktoken ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _tiktoken_pair() -> Tuple[Any, Any]:
    pytest.importorskip("tiktoken")
    import tiktoken.load

    path = corpus_path(CL100K)
    oracle = tiktoken.Encoding(
        "cl100k_base",
        pat_str=CL100K_PATTERN,
        mergeable_ranks=tiktoken.load.load_tiktoken_bpe(str(path)),
        special_tokens=CL100K_SPECIAL_TOKENS,
    )
    return load(path, engine=runtime.tokenizer_engine()), oracle


def _real_text_files() -> List[Path]:
    root = Path(__file__).resolve().parent.parent
    files = (
        sorted(root.glob("reference/**/*.py"))
        + sorted(root.glob("*.md"))
        + sorted(root.glob("docs/*.md"))
    )
    try:
        import llama_cpp

        files += sorted(Path(llama_cpp.__file__).parent.glob("*.py"))
    except ImportError:  # pragma: no cover
        pass
    return files


def test_tiktoken_real_text_identical() -> None:
    tok, enc = _tiktoken_pair()
    files = _real_text_files()
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert tok.tokenize(text.encode(), False, False) == enc.encode(
            text, disallowed_special=()
        ), path
        marked = text[:2000] + "<|endoftext|> x<|fim_prefix|>" + text[2000:4000]
        ids = tok.tokenize(marked.encode(), False, True)
        assert ids == enc.encode(marked, allowed_special="all"), path
        assert tok.detokenize(ids) == enc.decode_bytes(ids)


_LETTER = regex.compile(r"\p{L}")
_NUMBER = regex.compile(r"\p{N}")


def _unicode_stable(c: str) -> bool:
    """Is c's letter/number class the same in Unicode 15.1 (llama.cpp's table) and in the
    `regex` module's newer tables? tiktoken's Rust regex (Unicode 16.0) and the `regex`
    module (17.0) only disagree on code points outside this set."""
    f = cpt_flags(ord(c))
    return (bool(f & LETTER) == bool(_LETTER.match(c))) and (
        bool(f & NUMBER) == bool(_NUMBER.match(c))
    )


@pytest.mark.fuzz
@FUZZ
@given(
    st.text(alphabet=st.characters(codec="utf-8").filter(_unicode_stable), max_size=200),
    st.booleans(),
)
def test_tiktoken_fuzz_identical(text: str, parse_special: bool) -> None:
    """Fuzz over code points whose class no Unicode version since 15.1 changed (see
    test_tiktoken_unicode_version_gap for the rest)."""
    tok, enc = _tiktoken_pair()
    if parse_special:
        expected = enc.encode(text, allowed_special="all")
    else:
        expected = enc.encode(text, disallowed_special=())
    ids = tok.tokenize(text.encode(), False, parse_special)
    assert ids == expected
    assert tok.detokenize(ids) == enc.decode_bytes(expected) == text.encode()


# the regex module's Unicode: 17.0 in its 2025 releases (a gap with tiktoken's 16.0), older
# on Python 3.8 (no gap)
REGEX_HAS_UNICODE_17 = regex.match(r"\p{L}", "\U00018d80") is not None


@pytest.mark.xfail(REGEX_HAS_UNICODE_17, strict=True, reason="known gap: the regex module has "
                   "Unicode 17.0, tiktoken's Rust regex 16.0: U+18D80 (Tangut, new in 17.0) is a "
                   "letter only for us")
def test_tiktoken_unicode_version_gap() -> None:
    tok, enc = _tiktoken_pair()
    text = "\U00018d80:A"
    assert tok.tokenize(text.encode(), False, False) == enc.encode(text, disallowed_special=())


def test_tiktoken_rejects_invalid_utf8() -> None:
    tok, _ = _tiktoken_pair()
    with pytest.raises(InvalidUTF8Error):
        tok.tokenize(b"\xff", False, False)


# --- 5. round trip -------------------------------------------------------------------------

# WPM (bert-bge) lowercases, strips accents and drops spacing; UGM (nomic-bert-moe) applies
# the charsmap normalization and collapses whitespace: neither round-trips, by design.
ROUND_TRIP = [n for n in ALL_FILES if n not in ("bert-bge", "nomic-bert-moe")]


@pytest.mark.fuzz
@pytest.mark.parametrize("name", ROUND_TRIP)
def test_round_trip(name: str) -> None:
    """detokenize(tokenize(s)) == s for valid UTF-8, add_special=False, parse_special=False.

    Rules: SPM's prepended space is removed again by llama_detokenize (first piece, lstrip 1);
    vocabs with clean_spaces (gpt-2, llama-bpe, falcon, ...) are compared through
    detokenize_pieces, since llama_detokenize rewrites " ?" to "?" etc. by design; Gemma 4
    reads a literal '▁' as a space, so the alphabet excludes it; text containing a
    user-defined token's text is not round-tripped by SPM (a space is prepended after it);
    byte-level vocabs lacking a single-byte token lose that byte (llama.cpp drops it)."""
    tok = raw_tokenizer(name)
    v = tok.vocab
    user_texts = [v.tokens[t] for t in v.special_tokens if not v.is_control(t)]
    alphabet = st.characters(codec="utf-8", exclude_characters="\u2581")

    # byte-level vocabs without a token for some byte drop it, as llama.cpp does
    # (falcon: 28 bytes; refact, starcoder, smollm: 14; mpt: 13 -- e.g. 0xF1 for U+40000+)
    missing = set()
    if v.type == "bpe" and v.pre_type != "gemma4":
        missing = {b for b in range(256) if BYTE_TO_UNICODE[b] not in v.token_to_id}

    @FUZZ
    @given(st.text(alphabet=alphabet, max_size=60))
    def check(s: str) -> None:
        if v.type == "spm" and any(u in s for u in user_texts):
            return
        if missing & set(s.encode()):
            return
        ids = tok.tokenize(s.encode(), False, False)
        back = tok.detokenize_pieces(ids) if v.clean_spaces else tok.detokenize(ids)
        if v.type == "spm" and not v.clean_spaces:
            back = tok.detokenize(ids)
        assert back == s.encode()

    check()


def test_gguf_tokenizer_detokenize_is_llama_detokenize_for_bos() -> None:
    """After a BOS, llama_detokenize keeps the SPM leading space unless remove_special drops it;
    llama-cpp-python's Llama.detokenize drops it (known answer from llama-vocab.cpp's rules)."""
    tok = raw_tokenizer("llama-spm")
    ids = tok.tokenize(b"Hello", True, False)
    assert ids[0] == tok.bos_id
    assert tok.detokenize(ids) == b" Hello"  # BOS piece is empty but consumed the lstrip
    assert tok.detokenize(ids, remove_special=True) == b" Hello"
    assert tok.detokenize(ids[1:]) == b"Hello"
    assert tok.detokenize_pieces(ids) == b"Hello"


def _cases_summary() -> Dict[str, int]:  # pragma: no cover - handy in a REPL
    return {n: len(read_vectors(n)) for n in WITH_VECTORS}


def test_every_supported_pre_tokenizer_runs() -> None:
    """Each pre-tokenizer llama.cpp knows and we claim (most have no shipped vocab to diff
    against) compiles and splits mixed text into pieces that cover it exactly."""
    from bitnet.tokenizers import pretokenizers as P

    sample = "Hello WORLD's 12345 ünïcödé 中文 😀 \t\n\n  x<sentinel:12> IMGIMGABZ $%^ 3.14".encode()
    for name in SUPPORTED_PRE_TOKENIZERS:
        spec = P.PRE_TOKENIZERS[name]
        exprs, _ = P.REGEXES[spec.type]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. re's FutureWarning on a nested set
            cpts, offsets = P.regex_split(sample, exprs)
        assert sum(offsets) == len(cpts), name


# --- the spec's "breaks llama.cpp" configuration ---------------------------------------------

GPT2_WITH_PRE_AND_VECTORS = ["command-r", "deepseek-coder", "deepseek-llm", "falcon", "gpt-2",
                             "llama-bpe", "mpt", "qwen2", "refact", "starcoder"]


@pytest.mark.parametrize("name", GPT2_WITH_PRE_AND_VECTORS)
def test_missing_pre_tokenizes_like_the_original(name: str, tmp_path: Path) -> None:
    """`tokenizer.ggml.model = gpt2` with `tokenizer.ggml.pre` removed (llama.cpp degrades to
    'default') passes 100% of the original file's vectors through the auto-detection.
    (qwen35 is left out: it shares qwen2's byte-identical vocabulary, see bitnet.gguf.fixes.)"""
    from bitnet.gguf.writer import write_repaired_copy

    gf = gguf_load(_path(name), apply_repairs=False)
    stripped = tmp_path / f"{name}-no-pre.gguf"
    write_repaired_copy(gf, stripped, kv={k: v for k, v in gf.kv.items()
                                          if k != "tokenizer.ggml.pre"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = load(stripped, engine=runtime.tokenizer_engine())
    cases = read_vectors(name)
    failures = [text for text, ids in cases if tok.tokenize(text, False, False) != ids]
    assert not failures, f"{len(failures)}/{len(cases)} cases differ, first: {failures[0]!r}"
