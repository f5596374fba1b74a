"""The C tokenizer engine (bitnet_kernels.tokenizer_engine over optimized/bitnet_kernels/kernels/
bn_tok_*.c) gives exactly the ids of the pure-Python reference (engine=None) and of llama.cpp.

Covered: every shipped .inp/.out vector through both paths; hypothesis text on the real BPE and
SPM vocabularies (C vs reference, C vs llama.cpp); synthetic vocabularies with score ties,
merges whose result is no token and missing byte tokens (C merge loops vs the Python ones);
the bench corpus vs llama.cpp; the wiring (BITNET_BACKEND=reference never loads the C, the
warm-up policy, splitter names); the C handles freed; an ASan/UBSan build (slow).
"""

from __future__ import annotations

import ast
import functools
import gc
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple, Union
from unittest import mock

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnet import runtime
from bitnet.errors import InvalidUTF8Error, TokenizationError
from bitnet.gguf import load as gguf_load
from bitnet.tokenizers import load
from bitnet.tokenizers.bpe import BPE
from bitnet.tokenizers.engine import SPLITTERS
from bitnet.tokenizers.gguf_tokenizer import GGUFTokenizer
from bitnet.tokenizers.spm import spm_tokenize, spm_tokenize_chunked
from bitnet.tokenizers.tiktoken_file import TiktokenTokenizer
from bitnet.tokenizers.unicode import BYTE_TO_UNICODE, LETTER, NUMBER, cpt_flags
from bitnet.tokenizers.vocab import Vocab
from bitnet_harness.corpora import CL100K, SMOLLM2, corpus_path, vocab_names
from bitnet_harness.fuzz import first_mismatch, text_strategy
from bitnet_kernels import tokenizer_engine as TE

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not TE.available(),
    reason="the C kernels are not available (not built, or BITNET_OPTIMIZED_DISABLE=1)",
)
EXAMPLES = int(os.environ.get("BITNET_HYPOTHESIS_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SEP = b"\n__ggml_vocab_test__\n"
_LETTER = regex.compile(r"\p{L}")
_NUMBER = regex.compile(r"\p{N}")
VOCABS = vocab_names()
WITH_VECTORS = [
    n for n in VOCABS if corpus_path(f"vocab/ggml-vocab-{n}.gguf").with_suffix(".gguf.inp").exists()
]
# vocabularies whose tokenizer has C code: byte-level BPE with C splitters, SPM
C_VOCABS = ["gpt-2", "llama-bpe", "llama-spm", "qwen2", "qwen35", "starcoder", "gemma-4", "phi-3"]


@functools.lru_cache(maxsize=None)
def c_engine() -> TE.CTokenizerEngine:
    """The C engine these tests compare: handles built on first use (no warm-up)."""
    return TE.CTokenizerEngine(warm_up_bytes=0)


def backend(name: str) -> Any:
    """BITNET_BACKEND=name inside."""
    return mock.patch.dict(os.environ, {"BITNET_BACKEND": name})


def _path(name: str) -> Path:
    return corpus_path(SMOLLM2) if name == "smollm2" else corpus_path(f"vocab/ggml-vocab-{name}.gguf")


@functools.lru_cache(maxsize=None)
def vocab(name: str) -> Vocab:
    """The file's vocabulary as llama.cpp sees it (no metadata repair), as the oracle tests do."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Vocab.from_gguf_kv(gguf_load(_path(name), apply_repairs=False).kv)


@functools.lru_cache(maxsize=None)
def tokenizer(name: str, path: str = "optimized") -> GGUFTokenizer:
    """The vocabulary's tokenizer on the C engine ("optimized") or in pure Python ("reference")."""
    assert path in ("optimized", "reference"), path
    return GGUFTokenizer(vocab(name), engine=c_engine() if path == "optimized" else None)


@functools.lru_cache(maxsize=None)
def oracle(name: str) -> Any:
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.Llama(model_path=str(_path(name)), vocab_only=True, verbose=False)


@pytest.fixture(scope="module", autouse=True)
def _close_oracles() -> Iterator[None]:
    yield
    for name in VOCABS:
        if oracle.cache_info().currsize == 0:
            break
        try:
            oracle(name).close()
        except Exception:  # pragma: no cover - never loaded
            pass
    oracle.cache_clear()


Outcome = Union[List[int], str]


def run(name: str, text: bytes, path: str, add_special: bool = False,
        parse_special: bool = False) -> Outcome:
    """tokenize() on the "reference" or "optimized" path with an empty word cache; a typed
    error becomes its class name, so both paths must raise the same one."""
    tok = tokenizer(name, path)
    if tok._bpe is not None:
        tok._bpe._cache.clear()
    try:
        return tok.tokenize(text, add_special, parse_special)
    except (InvalidUTF8Error, TokenizationError) as e:
        return type(e).__name__
    finally:
        if tok._bpe is not None:
            tok._bpe._cache.clear()


def full_c(name: str, text: bytes) -> Tuple[Outcome, Outcome]:
    """(reference, all-in-C `BPE.tokenize`) ids of one raw-text fragment of a BPE vocabulary."""
    out: List[Outcome] = []
    for path in ("reference", "optimized"):
        tok = tokenizer(name, path)
        assert tok._bpe is not None
        piece = text.replace(b" ", "\u2581".encode()) if tok.vocab.escape_whitespaces else text
        tok._bpe._cache.clear()
        try:
            out.append(tok._bpe.tokenize(piece, tok._exprs))
        except InvalidUTF8Error as e:
            out.append(type(e).__name__)
    return out[0], out[1]


def read_vectors(name: str) -> List[Tuple[bytes, List[int]]]:
    """test-tokenizer-0's cases: .inp split on the separator, .out one line of ids per case."""
    path = _path(name)
    raw = path.with_suffix(".gguf.inp").read_bytes()
    outs = path.with_suffix(".gguf.out").read_bytes().decode("utf-8").split("\n")
    cases = raw.split(SEP)
    if cases and cases[-1] == b"":
        cases.pop()
    return [(c, [int(x) for x in o.split()]) for c, o in zip(cases, outs)]


# --- 1. llama.cpp's vectors through both paths ------------------------------------------------


@pytest.mark.parametrize("name", WITH_VECTORS)
def test_vectors_both_paths(name: str) -> None:
    """Every shipped .inp/.out case: the C path and the reference both give llama.cpp's ids
    (and the all-in-C BPE.tokenize equals the reference's word loop)."""
    is_bpe = tokenizer(name)._bpe is not None
    cases = read_vectors(name)
    assert cases
    for text, ids in cases:
        assert run(name, text, "optimized") == ids, text
        assert run(name, text, "reference") == ids, text
        if is_bpe:
            ref, fast = full_c(name, text)
            assert fast == ref, text


# --- 2. hypothesis: C vs reference, C vs llama.cpp ---------------------------------------------


@pytest.mark.parametrize("name", C_VOCABS)
def test_random_text_c_equals_reference(name: str) -> None:
    tok = tokenizer(name)

    @FUZZ
    @given(st.one_of(text_strategy(tok), st.binary(max_size=24)), st.booleans())
    def check(text: bytes, flags: bool) -> None:
        assert run(name, text, "optimized", flags, flags) == run(name, text, "reference", flags, flags)
        if tok._bpe is not None:
            ref, fast = full_c(name, text)
            assert fast == ref

    check()


@pytest.mark.llamacpp
@pytest.mark.parametrize("name", ["gpt-2", "llama-bpe", "llama-spm", "qwen2"])
def test_random_text_c_equals_llamacpp(name: str) -> None:
    """The C path against llama.cpp itself: ids and detokenization, all four flag pairs."""
    tok, theirs = tokenizer(name), oracle(name)

    @FUZZ
    @given(text_strategy(tok))
    def check(text: bytes) -> None:
        mismatch = first_mismatch(tok, theirs, text)
        assert mismatch is None, str(mismatch)

    check()


def test_code_point_past_unicode_is_the_same_typed_error() -> None:
    """A 4-byte sequence decoding past U+10FFFF (llama.cpp aborts): both paths raise
    InvalidUTF8Error for BPE vocabularies; SPM works on bytes and tokenizes it."""
    bad = b"ok \xf7\xbf\xbf\xbf then"
    for name in ("gpt-2", "llama-bpe", "llama-spm"):
        assert run(name, bad, "optimized") == run(name, bad, "reference")
    assert run("gpt-2", bad, "optimized") == "InvalidUTF8Error"
    assert isinstance(run("llama-spm", bad, "optimized"), list)


@pytest.mark.llamacpp
@pytest.mark.parametrize("name", ["gpt-2", "llama-bpe", "llama-spm"])
def test_bench_corpus_matches_llamacpp(name: str) -> None:
    """128 KB of the bench's mixed corpus (prose, code, CJK): the C path's ids are llama.cpp's."""
    from bitnet_harness.bench import mixed_corpus

    text = mixed_corpus(1 << 17)
    tok = tokenizer(name)
    theirs = oracle(name).tokenize(text, add_bos=False, special=False)
    assert run(name, text, "optimized") == theirs
    if tok._bpe is not None:
        assert tok._bpe.tokenize(text, tok._exprs) == theirs


# --- 3. synthetic vocabularies: the merge loops in isolation ------------------------------------

_SPM_ALPHABET = [b"a", b"b", b"c", "\u2581".encode(), "\u00e9".encode(), b"\n", b"\xff", b"\xe4\xb8"]


@st.composite
def spm_vocab(draw: Any) -> Tuple[Dict[bytes, int], List[float]]:
    """Random pieces over a small alphabet, scores from a small set (so ties happen)."""
    pieces = draw(
        st.lists(
            st.lists(st.sampled_from(_SPM_ALPHABET), min_size=1, max_size=4).map(b"".join),
            min_size=1,
            max_size=40,
            unique=True,
        )
    )
    scores = draw(st.lists(st.sampled_from([0.0, -1.0, -2.5, -7.0, 3.0]), min_size=len(pieces),
                           max_size=len(pieces)))
    return {p: i for i, p in enumerate(pieces)}, scores


@FUZZ
@given(
    spm_vocab(),
    st.lists(st.sampled_from(_SPM_ALPHABET + [b"d", b" "]), max_size=40).map(b"".join),
    st.booleans(),
)
def test_spm_merge_loop_c_equals_python(vocab: Tuple[Dict[bytes, int], List[float]], text: bytes,
                                        all_bytes: bool) -> None:
    """SPM's bigram merge in C vs spm_tokenize (and the chunked variant) on random vocabularies;
    without byte tokens for every byte both must raise TokenizationError."""
    bytes_to_id, scores = vocab

    def byte_to_token(b: int) -> int:
        if all_bytes or b < 0x80:
            return 1000 + b
        raise TokenizationError(f"no token for byte {b}")

    try:
        expected: Outcome = spm_tokenize(text, bytes_to_id, scores, byte_to_token)
    except TokenizationError:
        expected = "TokenizationError"
    got = c_engine().spm(bytes_to_id, scores, byte_to_token).tokenize(text)
    if expected == "TokenizationError":
        assert got is None  # the caller then runs the reference, which raises
        with pytest.raises(TokenizationError):
            spm_tokenize_chunked(text, bytes_to_id, scores, byte_to_token, b"\n")
    else:
        assert got == expected
        assert spm_tokenize_chunked(text, bytes_to_id, scores, byte_to_token, b"\n") == expected


_BPE_ALPHABET = ["a", "b", "c", BYTE_TO_UNICODE[0x20], BYTE_TO_UNICODE[0xC3], BYTE_TO_UNICODE[0xA9]]
_RAW_ALPHABET = ["a", "b", "\u2581", "\u00e9", "\n", "\u4e2d"]


@st.composite
def bpe_vocab(draw: Any, alphabet: List[str]) -> Tuple[Dict[str, int], Dict[Tuple[str, str], int]]:
    """Merges built like a trainer would (pairs of existing symbols), some results left out of
    the vocabulary (their symbols fall back to bytes), some pairs never applicable."""
    tokens = list(alphabet)
    ranks: Dict[Tuple[str, str], int] = {}
    for _ in range(draw(st.integers(0, 30))):
        a, b = draw(st.sampled_from(tokens)), draw(st.sampled_from(tokens))
        if (a, b) in ranks:
            continue
        ranks[(a, b)] = len(ranks)
        if draw(st.integers(0, 4)) and a + b not in tokens:
            tokens.append(a + b)
    drop = draw(st.sets(st.sampled_from(alphabet), max_size=2))  # symbols with no token
    kept = [t for t in tokens if t not in drop]
    return {t: i for i, t in enumerate(kept)}, ranks


@FUZZ
@given(st.data(), st.booleans(), st.booleans())
def test_bpe_merge_loop_c_equals_python(data: st.DataObject, byte_encode: bool,
                                        ignore_merges: bool) -> None:
    """BPE's rank-driven merge in C (one word, and whole texts through the gpt2 / newline
    splitters) vs the Python merge, byte-level and raw-UTF-8 (Gemma 4 style) vocabularies."""
    alphabet = _BPE_ALPHABET if byte_encode else _RAW_ALPHABET
    token_to_id, ranks = data.draw(bpe_vocab(alphabet))
    if not byte_encode:
        for b in range(256):
            token_to_id.setdefault(f"<0x{b:02X}>", 500 + b)
    else:
        # byte fallback looks up single UTF-8 bytes of the byte-level text ('\xc4' of 'Ġ')
        token_to_id.setdefault("\udcc4", 900)
    words = data.draw(st.lists(st.lists(st.sampled_from(alphabet), max_size=12).map("".join),
                               min_size=1, max_size=6))
    flags: Dict[str, Any] = dict(byte_encode=byte_encode, ignore_merges=ignore_merges,
                                 whole_newline_words=not byte_encode)
    reference = BPE(token_to_id, ranks, **flags)
    expected = [reference.encode_word(w) for w in words]
    handle = TE.BPEHandle(c_engine(), token_to_id, ranks, **flags)
    for word, ids in zip(words, expected):
        raw = bytes(BYTE_TO_UNICODE.index(c) for c in word) if byte_encode else word.encode()
        assert handle.encode_word(raw) == ids, word
    fast = BPE(token_to_id, ranks, **flags, engine=c_engine())
    assert [fast.encode_word(w) for w in words] == expected
    # whole texts: the C splitter + merge vs the Python splitter + merge
    exprs = (
        ("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",)
        if byte_encode
        else ("[^\\n]+|[\\n]+",)
    )
    text = "".join(data.draw(st.lists(st.sampled_from(["ab", " a", "\u00e9", "\n", "12", "'s"]),
                                      max_size=10))).encode()
    want = BPE(token_to_id, ranks, **flags).tokenize(text, exprs)
    assert fast.tokenize(text, exprs) == want


# --- 4. tiktoken (cl100k_base) ------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def cl100k() -> Tuple[Any, Any, TE.RankBPEHandle]:
    """(our reference TiktokenTokenizer, the `tiktoken` library's encoding, the C handle)."""
    tiktoken_load = pytest.importorskip("tiktoken.load")
    import tiktoken

    from bitnet.tokenizers.tiktoken_file import CL100K_PATTERN

    path = corpus_path(CL100K)
    enc = tiktoken.Encoding("cl100k_base", pat_str=CL100K_PATTERN,
                            mergeable_ranks=tiktoken_load.load_tiktoken_bpe(str(path)),
                            special_tokens={})
    tok = load(path)
    assert isinstance(tok, TiktokenTokenizer)
    return tok, enc, TE.RankBPEHandle(c_engine(), tok.ranks)


def _unicode_stable(c: str) -> bool:
    """c's \\p{L} / \\p{N} class is the same in llama.cpp's Unicode 15.1 table and the `regex`
    module's (17.0): tiktoken's Rust regex (16.0) agrees with us on these (see
    test_tokenizer_contracts.test_tiktoken_unicode_version_gap for the rest)."""
    f = cpt_flags(ord(c))
    return bool(f & LETTER) == bool(_LETTER.match(c)) and bool(f & NUMBER) == bool(_NUMBER.match(c))


_TRICKY = ["'s", "'S", "'LL", "'Ve", "'re", "'\u017f", "'x", " '", "  ", "\r\n", " \n\n ", "\t",
           "\u00a0", "\u3000", "123456", "\u0661\u0662", "a", "\u00e9t\u00e9", "\u4e2d\u6587",
           "!!", " ?", "\U0001f600", "\u0301", "x\n", "\x1c", "\x85"]


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(_TRICKY), st.text(max_size=6)), max_size=12).map("".join))
def test_cl100k_c_equals_reference(text: str) -> None:
    """cl100k's pattern split and merges in C vs the reference (regex module + Python merge),
    text from all planes plus contractions in odd cases, Unicode spaces and digits."""
    tok, _, engine = cl100k()
    raw = text.encode("utf-8", "surrogatepass")
    try:
        expected: Outcome = tok.tokenize(raw, False, False)
    except InvalidUTF8Error:
        expected = "InvalidUTF8Error"
    got = engine.encode_cl100k(raw)
    assert (got if got is not None else "InvalidUTF8Error") == expected


def test_cl100k_contractions_and_spaces() -> None:
    """Every contraction in every letter case (and with letters that match under (?i) only),
    before letters, spaces, digits and the end; whitespace runs before text and at the end."""
    tok, enc, engine = cl100k()
    forms = ["s", "d", "m", "t", "ll", "ve", "re", "\u017f", "\u212a", "x"]
    cases = []
    for form in forms:
        for variant in {form, form.upper(), form.capitalize(), form.swapcase()}:
            for after in ["", "abc", " x", "1", "'", "\n"]:
                cases.append("it'" + variant + after)
    for ws in [" ", "  ", "   ", "\n", " \n", "\n ", " \n \n  ", "\t\t", "\u3000 "]:
        cases += [ws, ws + "a", "a" + ws, "a" + ws + "b", ws + "!", ws + "1"]
    for text in cases:
        want = enc.encode_ordinary(text)
        assert tok.tokenize(text.encode(), False, False) == want, repr(text)
        assert engine.encode_cl100k(text.encode()) == want, repr(text)


@pytest.mark.parametrize("seed", range(2))
def test_cl100k_c_equals_tiktoken(seed: int) -> None:
    """The C encoding against the `tiktoken` library: 128 KB of the bench corpus, and random
    text over code points whose class is stable across Unicode versions."""
    from bitnet_harness.bench import mixed_corpus

    _, enc, engine = cl100k()
    if seed == 0:
        text = mixed_corpus(1 << 17).decode("utf-8")
    else:
        import random

        rng = random.Random(seed)
        pool = [c for c in map(chr, range(0x3000)) if c.isprintable() or c in "\n\r\t"]
        pool = [c for c in pool if _unicode_stable(c)] + _TRICKY
        text = "".join(rng.choice(pool) for _ in range(20000))
    assert engine.encode_cl100k(text.encode()) == enc.encode_ordinary(text)


@FUZZ
@given(st.binary(max_size=20), st.sets(st.integers(0, 255), max_size=3))
def test_rank_merge_c_equals_python(piece: bytes, missing: Set[int]) -> None:
    """One piece's rank-driven merge in C vs TiktokenTokenizer._merge, on a small rank table
    (some single bytes without a rank: both must refuse those)."""
    ranks = {bytes((b,)): b for b in range(256) if b not in missing}
    for i, extra in enumerate([b"ab", b"bc", b"abc", b"\xc3\xa9", b"  ", b"   ", b"a\x00", b"cab"]):
        ranks.setdefault(extra, 256 + i)
    tok = TiktokenTokenizer(ranks, "x", {})
    try:
        expected: Optional[List[int]] = tok._merge(piece) if piece else []
    except TokenizationError:
        expected = None
    assert TE.RankBPEHandle(c_engine(), ranks).merge(piece) == expected


def test_tiktoken_engine_switches() -> None:
    """CTokenizerEngine.tiktoken: None for another pattern; for cl100k's, None until
    warm_up_bytes of text went through (no handle yet), then the C ids (one handle); a
    TiktokenTokenizer on it gives tiktoken's ids before and after the switch."""
    tok, enc, _ = cl100k()
    assert c_engine().tiktoken(tok.ranks, r"\w+") is None
    engine = TE.CTokenizerEngine(warm_up_bytes=20)
    fast = engine.tiktoken(tok.ranks, tok.pattern)
    assert fast is not None
    assert fast.encode_ordinary("hello world") is None  # 11 bytes seen
    assert engine.live_handles() == 0
    assert fast.encode_ordinary("hello world") == enc.encode_ordinary("hello world")  # 22
    assert engine.live_handles() == 1
    on_c = TiktokenTokenizer(tok.ranks, tok.pattern, {}, engine=TE.CTokenizerEngine(warm_up_bytes=20))
    for text in ("it's 12345", " a warm-up of more than twenty bytes", "it's 12345"):
        assert on_c.tokenize(text.encode(), False, False) == enc.encode_ordinary(text)


def test_bpe_warm_up_policy() -> None:
    """A BPE vocabulary's C handle is built once warm_up_bytes of text went through the
    tokenizer (before: the Python merges, no handle); the ids never change."""
    engine = TE.CTokenizerEngine(warm_up_bytes=1000)
    tok = GGUFTokenizer(vocab("gpt-2"), engine=engine)
    fast = tok._bpe.vocab_engine() if tok._bpe is not None else None
    assert isinstance(fast, TE.WarmBPE)
    text = b"The quick brown fox jumps over the lazy dog. 12345 " * 12  # 612 bytes
    want = tokenizer("gpt-2", "reference").tokenize(text, False, False)
    assert tok.tokenize(text, False, False) == want
    assert fast.handle is None and engine.live_handles() == 0
    assert tok.tokenize(text, False, False) == want
    assert fast.handle is not None and engine.live_handles() == 1


def test_splitter_names_match_the_c_header() -> None:
    """Every splitter name of the engine interface maps to its BN_SPLIT_* constant."""
    header = (ROOT / "optimized" / "bitnet_kernels" / "kernels" / "bn_api_tokenize.h").read_text()
    defined = {m.group(1).lower(): int(m.group(2))
               for m in re.finditer(r"#define BN_SPLIT_(\w+) (\d+)", header)}
    assert set(SPLITTERS) == set(TE.SPLITTER_IDS) == set(defined)
    assert TE.SPLITTER_IDS == defined


# --- 5. wiring and memory ----------------------------------------------------------------------


def test_reference_backend_builds_no_c_handle() -> None:
    """BITNET_BACKEND=reference: `runtime.tokenizer_engine()` is None, so the tokenizer the API
    surfaces build holds no engine, makes no C handle, and in a fresh interpreter tokenizing
    does not even import bitnet_kernels. Unset: the C engine, whose BPE vocabulary builds its
    handle past the warm-up; the same ids."""
    kv = gguf_load(_path("gpt-2"), apply_repairs=False).kv
    text = b"The quick brown fox jumps over the lazy dog. " * 400  # 18 KB: past the warm-up
    with backend("reference"):
        assert runtime.tokenizer_engine() is None
        tok = runtime.tokenizer_from_kv(kv)
    assert tok.engine is None and tok._bpe is not None and tok._bpe.engine is None
    ref_ids = tok.tokenize(text, False, False)
    assert tok._bpe.vocab_engine() is None
    with backend(""):
        tok2 = runtime.tokenizer_from_kv(kv)
    assert tok2.engine is not None and tok2.engine is TE.default_engine()
    assert tok2.tokenize(text, False, False) == ref_ids
    fast = tok2._bpe.vocab_engine() if tok2._bpe is not None else None
    assert isinstance(fast, TE.WarmBPE) and fast.handle is not None
    code = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        from bitnet import runtime
        from bitnet.gguf import load
        tok = runtime.tokenizer_from_kv(load({str(_path("gpt-2"))!r}, apply_repairs=False).kv)
        assert tok.engine is None
        print(tok.tokenize(b"The quick brown fox", False, False))
        assert "bitnet_kernels" not in sys.modules, "the C library was loaded"
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, BITNET_BACKEND="reference"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert ast.literal_eval(r.stdout.strip()) == tok.tokenize(b"The quick brown fox", False, False)


def test_handles_are_freed() -> None:
    """Each handle is released (its C free run) when its owner goes: counted per engine, a
    fresh one here, so no other object of the process counts."""
    engine = TE.CTokenizerEngine(warm_up_bytes=0)
    v = vocab("llama-spm")
    bpe = tokenizer("gpt-2", "reference")._bpe
    assert bpe is not None
    handles: List[Any] = [engine.spm(v.bytes_to_id, v.scores, v.byte_to_token) for _ in range(3)]
    handles.append(TE.BPEHandle(engine, bpe.token_to_id, bpe.ranks, byte_encode=True,
                                ignore_merges=False, whole_newline_words=False))
    assert engine.live_handles() == 4
    del handles
    gc.collect()
    assert engine.live_handles() == 0
    # a tokenizer's SPM handle: made on its first tokenization, kept, gone with the tokenizer
    spm = GGUFTokenizer(v, engine=engine)
    assert engine.live_handles() == 0
    spm.tokenize(b"hello world", False, False)
    spm.tokenize(b"again", False, False)
    assert engine.live_handles() == 1
    del spm
    gc.collect()
    assert engine.live_handles() == 0


# --- 6. sanitizers --------------------------------------------------------------------------------


@pytest.mark.slow
def test_sanitizer_build_tokenizers(tmp_path: Path) -> None:
    """The kernels built with -fsanitize=address,undefined (as test_optimized_kernels does), then
    every vector of the C vocabularies, random bytes and cl100k text through the C paths in a
    subprocess with ASan preloaded: any out-of-bounds access or UB aborts it; ids must equal
    the reference's; once the tokenizers are gone, no C handle is left (the process's count)."""
    from .kernel_builds import SANITIZER_OPTIONS, build_kernels, libasan, run_with_kernels

    asan = libasan()
    if asan is None:
        pytest.skip("gcc with libasan not available")
    so = build_kernels(tmp_path, sanitize=True)
    body = textwrap.dedent(
        f"""
        import os, random, warnings
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import gc
        from bitnet_kernels import tokenizer_engine as TE
        assert TE._library()[1] is mod.lib
        import test_tokenizer_fastpath as T
        rng = random.Random(0)
        bad = 0
        for name in T.C_VOCABS:
            is_bpe = T.tokenizer(name)._bpe is not None
            texts = [t for t, _ in T.read_vectors(name)] if name in T.WITH_VECTORS else []
            texts += [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(50)]
            texts += [b"", b"\\n" * 70, b"x" * 5000, "\u2581 \u4e2d\u6587 ' 's 123456".encode() * 30]
            for text in texts:
                if T.run(name, text, "optimized") != T.run(name, text, "reference"):
                    bad += 1
                if is_bpe:
                    ref, fast = T.full_c(name, text)
                    bad += ref != fast
        tk, _, engine = T.cl100k()
        texts = [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(50)]
        texts += [t.encode() for t in T._TRICKY] + ["".join(T._TRICKY * 20).encode(), b""]
        for text in texts:
            try:
                want = tk.tokenize(text, False, False)
            except Exception:
                want = None
            bad += engine.encode_cl100k(text) != want
        print("tokenizer sanitizer mismatches:", bad)
        del tk, engine
        T.tokenizer.cache_clear()
        T.cl100k.cache_clear()
        gc.collect()
        print("C handles alive after release:", TE.c_live_handles())
        sys.exit(min(bad, 125))
        """
    )
    env = dict(os.environ, LD_PRELOAD=asan, **SANITIZER_OPTIONS)
    env.pop("BITNET_BACKEND", None)
    r = run_with_kernels(so, body, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    assert "tokenizer sanitizer mismatches: 0" in r.stdout
    assert "C handles alive after release: 0" in r.stdout
