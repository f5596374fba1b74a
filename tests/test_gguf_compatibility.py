"""GGUF format contracts: the reader, its defences, and the auto-repair fixes.

Oracles: the `gguf` package's GGUFReader (every KV and tensor info) and llama.cpp itself
(llama-cpp-python) for the defaults a repaired file must reproduce.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnet.errors import MODEL_LOAD_FAILED, MODEL_NOT_FOUND, GGUFError, ModelNotFoundError
from bitnet.gguf import GGUFWarning, load, parse
from bitnet.gguf.fixes import detect_pre_tokenizer
from bitnet.gguf.writer import write_repaired_copy
from bitnet_harness.corpora import SMOLLM2, corpus_path, vocab_names

from .gguf_builder import KV, Builder, Tensor, valid_builder

EXAMPLES = int(os.environ.get("BITNET_HYPOTHESIS_EXAMPLES", "60"))
VOCABS = vocab_names()
REAL_FILES = [f"vocab/ggml-vocab-{v}.gguf" for v in VOCABS] + [SMOLLM2]


def _load_quiet(path: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GGUFWarning)
        return load(path, **kw)


# --- differential: every KV and tensor info equals gguf-py's ---------------------------------

def _gguf_py_value(f: Any) -> Any:
    if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
        if len(f.types) > 1 and f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8", "surrogateescape") for i in f.data]
        return np.array([f.parts[i][0] for i in f.data])
    return f.contents()


@pytest.mark.parametrize("rel", REAL_FILES, ids=lambda r: Path(r).stem)
def test_real_files_match_gguf_py(rel: str) -> None:
    path = corpus_path(rel)
    ours = parse(path)
    theirs = gguf.GGUFReader(path)
    expected = {k: f for k, f in theirs.fields.items() if not k.startswith("GGUF.")}
    assert list(ours.kv) == list(expected)
    for key, f in expected.items():
        want, got = _gguf_py_value(f), ours.kv[key]
        if isinstance(want, np.ndarray):
            assert isinstance(got, np.ndarray), key
            assert np.array_equal(got, want), key
        else:
            assert got == want, key
    assert [t.name for t in ours.tensors.values()] == [t.name for t in theirs.tensors]
    for t in theirs.tensors:
        mine = ours.tensors[t.name]
        assert mine.shape == tuple(int(d) for d in t.shape), t.name
        assert mine.type_id == int(t.tensor_type), t.name
        assert mine.offset == int(t.data_offset), t.name
        assert mine.nbytes == int(t.n_bytes), t.name
        assert np.array_equal(ours.tensor_bytes(t.name), np.asarray(t.data).view(np.uint8).ravel())


def test_tensor_data_is_zero_copy() -> None:
    gf = parse(corpus_path(SMOLLM2))
    view = gf.tensor_bytes("token_embd.weight")
    assert not view.flags.owndata and not view.flags.writeable


# --- fix 1: the pre-tokenizer is detected when missing ----------------------------------------

def _rewrite_with_gguf_writer(src: Path, dst: Path, drop: Tuple[str, ...]) -> None:
    """Copy a (tensor-less) vocab file with the gguf package's writer, minus `drop` keys."""
    gf = parse(src)
    writer = gguf.GGUFWriter(str(dst), gf.architecture)
    for key, value in gf.kv.items():
        if key in drop or key == "general.architecture":
            continue
        vtype = gf.kv_types[key]
        sub = gguf.GGUFValueType(vtype.element.type_id) if vtype.element else None
        if isinstance(value, np.ndarray):
            value = value.tolist()
        writer.add_key_value(key, value, gguf.GGUFValueType(vtype.type_id), sub_type=sub)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@lru_cache(maxsize=None)
def _vocab_kv(vocab: str) -> Dict[str, Any]:
    return parse(corpus_path(f"vocab/ggml-vocab-{vocab}.gguf")).kv


# llama.cpp's gpt2 vocabularies that carry a pre key (aquila and gpt-neox ship without one)
GPT2_VOCABS_WITH_PRE = ["command-r", "deepseek-coder", "deepseek-llm", "falcon", "gpt-2",
                        "llama-bpe", "mpt", "qwen2", "qwen35", "refact", "starcoder"]


@pytest.mark.parametrize("vocab", GPT2_VOCABS_WITH_PRE)
def test_missing_pre_is_detected(vocab: str, tmp_path: Path) -> None:
    src = corpus_path(f"vocab/ggml-vocab-{vocab}.gguf")
    original = _vocab_kv(vocab)["tokenizer.ggml.pre"]
    stripped = tmp_path / "stripped.gguf"
    _rewrite_with_gguf_writer(src, stripped, ("tokenizer.ggml.pre",))
    assert "tokenizer.ggml.pre" not in parse(stripped).kv
    gf = _load_quiet(stripped)
    fix = next(f for f in gf.fixes if f.key == "tokenizer.ggml.pre")
    assert fix.old is None
    if original == "qwen35":
        # Documented limit: qwen35 ships qwen2's byte-identical vocabulary (same tokens, same
        # merges, architecture 'qwen2' in this file); nothing in the file can tell them apart.
        assert fix.new == "qwen2" and "qwen35" in fix.reason
    else:
        assert fix.new == original


def test_smollm2_pre_is_detected(tmp_path: Path) -> None:
    """The real model file: strip its pre with our writer (it has tensors) and detect it."""
    gf = parse(corpus_path(SMOLLM2))
    kv = {k: v for k, v in gf.kv.items() if k != "tokenizer.ggml.pre"}
    out = tmp_path / "smollm2-no-pre.gguf"
    write_repaired_copy(gf, out, kv=kv)
    repaired = _load_quiet(out)
    assert repaired.kv["tokenizer.ggml.pre"] == "smollm"
    assert "tokenizer.ggml.pre" not in repaired.raw_kv


def test_undetectable_pre_falls_back_to_default_with_warning(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    b = Builder(kvs=[KV("general.architecture", 8, "llama"), KV("tokenizer.ggml.model", 8, "gpt2"),
                     KV("tokenizer.ggml.tokens", 9, ["a", "b", "ab"], elem_type=8),
                     KV("tokenizer.ggml.merges", 9, ["a b"], elem_type=8)])
    path = tmp_path / "odd.gguf"
    path.write_bytes(b.build())
    with caplog.at_level(logging.INFO, logger="bitnet.gguf"):
        gf = load(path)
    assert gf.kv["tokenizer.ggml.pre"] == "default"
    # the value is llama.cpp's own default (INFO); the degraded tokenization is a WARNING
    pre = [r for r in caplog.records if "repaired tokenizer.ggml.pre" in r.getMessage()]
    assert [r.levelno for r in pre] == [logging.INFO]
    assert any(r.levelno == logging.WARNING and "using 'default'" in r.getMessage()
               for r in caplog.records)


def test_detector_without_pre_on_shipped_vocabs() -> None:
    """aquila and gpt-neox ship without a pre key; gpt-neox's vocabulary is MPT's."""
    kv = parse(corpus_path("vocab/ggml-vocab-gpt-neox.gguf")).kv
    assert detect_pre_tokenizer(kv)[0] == "mpt"


# --- fixes 2-5, checked against llama.cpp's own defaults --------------------------------------

def _strip_and_load(vocab: str, keys: Tuple[str, ...], tmp_path: Path) -> Tuple[Any, Path]:
    out = tmp_path / f"{vocab}-stripped.gguf"
    _rewrite_with_gguf_writer(corpus_path(f"vocab/ggml-vocab-{vocab}.gguf"), out, keys)
    return _load_quiet(out), out


@pytest.mark.llamacpp
@pytest.mark.parametrize("vocab", ["llama-spm", "phi-3", "baichuan"])
def test_missing_special_ids_match_llamacpp_defaults_for_spm(vocab: str, tmp_path: Path) -> None:
    import llama_cpp

    keys = ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.unknown_token_id")
    gf, path = _strip_and_load(vocab, keys, tmp_path)
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    assert gf.kv["tokenizer.ggml.bos_token_id"] == llm.token_bos()
    assert gf.kv["tokenizer.ggml.eos_token_id"] == llm.token_eos()
    assert gf.kv["tokenizer.ggml.unknown_token_id"] == 0  # '<unk>', llama.cpp's SPM default


@pytest.mark.parametrize("vocab", ["gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "falcon"])
def test_missing_special_ids_recover_the_original(vocab: str, tmp_path: Path) -> None:
    """For gpt2 vocabularies llama.cpp would guess id 11; we recover the real ids."""
    original = _vocab_kv(vocab)
    keys = ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id")
    gf, _ = _strip_and_load(vocab, keys, tmp_path)
    for key in keys:
        fixed = gf.kv[key]
        assert 0 <= fixed < len(gf.kv["tokenizer.ggml.tokens"])
        # the recovered token has the same text as the original id's token
        assert gf.kv["tokenizer.ggml.tokens"][fixed] == original["tokenizer.ggml.tokens"][original[key]]


def test_nothing_guessed_when_nothing_fits(tmp_path: Path) -> None:
    b = Builder(kvs=[KV("general.architecture", 8, "llama"), KV("tokenizer.ggml.model", 8, "gpt2"),
                     KV("tokenizer.ggml.pre", 8, "gpt-2"),
                     KV("tokenizer.ggml.tokens", 9, ["x", "y", "xy"], elem_type=8),
                     KV("tokenizer.ggml.merges", 9, ["x y"], elem_type=8)])
    path = tmp_path / "nospecial.gguf"
    path.write_bytes(b.build())
    gf = _load_quiet(path)
    assert "tokenizer.ggml.bos_token_id" not in gf.kv
    assert any("bos_token_id is missing and no token text fits" in w for w in gf.warnings)


@pytest.mark.llamacpp
@pytest.mark.parametrize("vocab,expected", [("llama-spm", True), ("phi-3", True),
                                            ("gpt-2", False)])
def test_missing_add_space_prefix_and_byte_fallback(vocab: str, expected: bool,
                                                    tmp_path: Path) -> None:
    gf, path = _strip_and_load(vocab, ("tokenizer.ggml.add_space_prefix",), tmp_path)
    assert gf.kv["tokenizer.ggml.add_space_prefix"] is expected
    has_bytes = "<0x41>" in gf.kv["tokenizer.ggml.tokens"]
    assert gf.kv["tokenizer.ggml.byte_fallback"] is has_bytes
    # llama.cpp applies the same default: with the prefix, "hello" starts with a "▁" piece
    import llama_cpp

    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    first = llm.tokenize(b"hello", add_bos=False)[0]
    assert gf.kv["tokenizer.ggml.tokens"][first].startswith("\u2581") is expected


def test_vocab_size_mismatch_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    b = valid_builder()
    b.kvs += [KV("tokenizer.ggml.model", 8, "llama"), KV("llama.vocab_size", 4, 5),
              KV("tokenizer.ggml.tokens", 9, ["<unk>", "<s>", "</s>"], elem_type=8)]
    path = tmp_path / "mismatch.gguf"
    path.write_bytes(b.build())
    with caplog.at_level(logging.WARNING, logger="bitnet.gguf"):
        gf = load(path)
    assert any(r.levelno == logging.WARNING and "vocab_size = 5 but the vocabulary has 3 tokens"
               in r.getMessage() for r in caplog.records)
    assert len(gf.tensors) == 3


# --- the handcrafted bad-file corpus ----------------------------------------------------------

def _case(mutate: Callable[[Builder], Optional[bytes]]) -> Callable[[], bytes]:
    def make() -> bytes:
        b = valid_builder()
        out = mutate(b)
        return out if out is not None else b.build()
    return make


def _set(attr: str, value: Any) -> Callable[[Builder], None]:
    return lambda b: setattr(b, attr, value)


def _kv(b: Builder, **changes: Any) -> None:
    for k, v in changes.items():
        setattr(b.kvs[2], k, v)


def _tensor(b: Builder, **changes: Any) -> None:
    for k, v in changes.items():
        setattr(b.tensors[1], k, v)


def _align_kv(value: int, type_id: int = 4) -> Callable[[Builder], None]:
    return lambda b: b.kvs.append(KV("general.alignment", type_id, value))


def _align_64(b: Builder) -> None:
    _align_kv(64)(b)
    b.alignment = 64


# name -> (file bytes factory, expected: ("error", field substring) or ("load", warning substring))
BAD_FILES: Dict[str, Tuple[Callable[[], bytes], Tuple[str, str]]] = {
    "empty_file": (lambda: b"", ("error", "magic")),
    "header_bad_magic": (_case(_set("magic", b"FUGG")), ("error", "magic")),
    "header_bad_version_0": (_case(_set("version", 0)), ("error", "version")),
    "header_bad_version_1": (_case(_set("version", 1)), ("error", "version")),
    "header_bad_version_future": (_case(_set("version", 4)), ("error", "version")),
    "header_n_tensors_2^64-1": (_case(_set("n_tensors", 2**64 - 1)), ("error", "n_tensors")),
    "header_n_kv_2^64-1": (_case(_set("n_kv", 2**64 - 1)), ("error", "n_kv")),
    "header_n_kv_too_many": (_case(_set("n_kv", 17)), ("error", "tensor[")),
    "kv_bad_key_size": (_case(lambda b: _kv(b, raw_key_len=2**64 - 1)), ("error", "kv[2].key")),
    "kv_empty_key": (_case(lambda b: _kv(b, key="")), ("error", "kv[2].key")),
    "kv_bad_type": (_case(lambda b: _kv(b, type_id=13)), ("error", "kv 'test.u8'")),
    "kv_string_longer_than_file": (
        _case(lambda b: b.build().replace(b"\x04\x00\x00\x00\x00\x00\x00\x00tiny",
                                          b"\xff\xff\xff\xff\x00\x00\x00\x00tiny")),
        ("error", "general.name")),
    "kv_array_longer_than_file": (
        _case(lambda b: b.build().replace(b"\x05\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00",
                                          b"\x05\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x0f")),
        ("error", "test.arr_i32")),
    "kv_string_array_count_2^64-1": (
        _case(lambda b: b.build().replace(b"\x08\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00",
                                          b"\x08\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff")),
        ("error", "test.arr_str")),
    "kv_array_bad_element_type": (
        _case(lambda b: b.build().replace(b"\x09\x00\x00\x00\x05\x00\x00\x00",
                                          b"\x09\x00\x00\x00\x63\x00\x00\x00")),
        ("error", "element type id 99")),
    "kv_duplicate_key": (_case(lambda b: b.kvs.append(KV("test.u8", 0, 1))), ("error", "duplicate key")),
    "kv_alignment_0": (_case(_align_kv(0)), ("load", "not a power of two")),
    "kv_alignment_13": (_case(_align_kv(13)), ("load", "not a power of two")),
    "kv_alignment_int32_typed": (_case(_align_kv(32, type_id=5)), ("load", "expected UINT32")),
    "kv_alignment_64_valid": (_case(_align_64), ("load", "")),
    "tensor_name_too_long": (_case(lambda b: _tensor(b, name="t" * 64)), ("error", ".name")),
    "tensor_n_dims_5": (_case(lambda b: _tensor(b, shape=[32, 2, 1, 1, 1])), ("error", "n_dims")),
    "tensor_negative_dim": (_case(lambda b: _tensor(b, shape=[32, -1])), ("error", "ne[1]")),
    "tensor_dims_overflow": (_case(lambda b: _tensor(b, shape=[4 * 2**31, 4 * 2**31])),
                             ("error", "overflows")),
    "tensor_nbytes_pad_wrap": (_case(lambda b: _tensor(b, type_id=0,
                                                       shape=[4, 2**30 - 1, 2**30 + 1])),
                               ("error", "past the end")),
    "tensor_ne0_not_block_multiple": (_case(lambda b: _tensor(b, type_id=8, shape=[33, 2])),
                                      ("error", "block size")),
    "tensor_bad_type": (_case(lambda b: _tensor(b, type_id=43)), ("error", "unknown tensor type 43")),
    "tensor_removed_type": (_case(lambda b: _tensor(b, type_id=31)), ("error", "Q4_0_4_4")),
    "tensor_offset_2^64-1": (_case(lambda b: _tensor(b, offset=2**64 - 1)), ("error", "past the end")),
    "tensor_offset_past_eof": (_case(lambda b: _tensor(b, offset=4096)), ("error", "past the end")),
    "tensor_offset_misaligned": (_case(lambda b: _tensor(b, offset=40)), ("load", "not a multiple")),
    "tensor_duplicate_name": (_case(lambda b: _tensor(b, name="a.weight")),
                              ("error", "duplicate tensor")),
    "tensor_zero_dim": (_case(lambda b: _tensor(b, shape=[32, 0], data=b"")), ("load", "")),
    "data_not_enough": (_case(lambda b: b.build()[:-33]), ("error", "past the end")),
    "data_mem_size_overflow": (_case(lambda b: setattr(b, "tensors", [
        Tensor("x", [0x7FFFFFFFFFFFFFC0], 24, b"\0" * 32),
        Tensor("y", [0x7FFFFFFFFFFFFFC0], 24, b"\0" * 32)])), ("error", "past the end")),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_corpus(name: str, tmp_path: Path) -> None:
    make, (outcome, detail) = BAD_FILES[name]
    data = make()
    path = tmp_path / f"{name}.gguf"
    path.write_bytes(data)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if outcome == "error":
                with pytest.raises(GGUFError, match=None) as info:
                    parse(path)
                message = str(info.value)
                assert detail in message, message
                assert info.value.code == MODEL_LOAD_FAILED
                assert "offset=" in message or info.value.offset is not None or name == "empty_file"
            else:
                gf = parse(path)
                # repairs are logged (bitnet.gguf) and kept on the file, never Python warnings
                messages = list(gf.warnings)
                assert any(detail in m for m in messages) if detail else not messages, messages
                assert not caught, [str(w.message) for w in caught]
                assert gf.tensors
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # Budgets from the contract: within 1 s, and never an allocation beyond a small multiple of
    # the file. The largest here is the mmap'd file itself (not traced); Python-side parsing of
    # these ~1 KB files peaks near 60 KB, so 256 KB + 8x the file catches any count-driven
    # allocation (a 2^64 count would need exabytes).
    assert elapsed < 1.0
    assert peak < 256 * 1024 + 8 * len(data), peak


def test_valid_file_loads_with_all_types_and_values(tmp_path: Path) -> None:
    path = tmp_path / "valid.gguf"
    path.write_bytes(valid_builder().build())
    gf = parse(path)
    assert gf.kv["test.u32"] == 4000000000 and gf.kv["test.i64"] == -(2**40)
    assert gf.kv["test.bool"] is True and gf.kv["test.arr_str"] == ["a", "bc", ""]
    assert gf.tensor_array("b.weight").shape == (2, 32)
    assert np.array_equal(gf.tensor_array("a.weight"), np.arange(8, dtype=np.float32))


def test_big_endian_v3_reads_like_little_endian(tmp_path: Path) -> None:
    le, be = tmp_path / "le.gguf", tmp_path / "be.gguf"
    le.write_bytes(valid_builder("<").build())
    be.write_bytes(valid_builder(">").build())
    a, b = parse(le), parse(be)
    assert b.byte_order == ">"
    assert a.kv.keys() == b.kv.keys()
    for key in a.kv:
        assert np.array_equal(np.asarray(a.kv[key]), np.asarray(b.kv[key])), key
    assert np.array_equal(a.tensor_array("b.weight"), b.tensor_array("b.weight"))


def test_v2_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "v2.gguf"
    path.write_bytes(valid_builder(version=2).build())
    assert parse(path).version == 2


def test_v1_is_rejected_naming_supported_versions(tmp_path: Path) -> None:
    path = tmp_path / "v1.gguf"
    path.write_bytes(valid_builder(version=1).build())
    with pytest.raises(GGUFError, match="supported versions are 2, 3"):
        parse(path)


# string arrays: the bulk reader (lengths walked, one decode, one split) against the one-by-one
# reader; where bulk does not apply (long or non-UTF-8 strings, no free separator byte, a bad
# length) the one-by-one reader runs, so strings, end position and errors are the same
STRING_ARRAYS: Dict[str, Tuple[List[bytes], Optional[List[int]], bool]] = {
    "plain": ([b"a", b"", b"bc", "\u2581x".encode()], None, True),
    "all_empty": ([b""] * 5, None, True),
    "nul_inside": ([b"a\x00b", b"", b"\x00"], None, True),
    "no_free_separator": ([bytes(range(1, 128)), b"\x00"], None, False),
    "long_strings": ([b"x" * 300, b"y" * 70000, b"z"], None, False),
    "invalid_utf8": ([b"\xff", b"ok", b"\xed\xa0\x80"], None, False),
    "sequence_split_across_strings": ([b"\xe2\x96", b"\x81"], None, False),
    "length_past_end": ([b"abc", b"def"], [3, 10], False),
    "length_high_bytes": ([b"abc", b"def"], [3, 1 << 16 | 3], False),
    "length_huge": ([b"abc", b"def"], [3, 1 << 40], False),
}


@pytest.mark.parametrize("name", list(STRING_ARRAYS))
def test_string_arrays_read_in_bulk_as_one_by_one(name: str) -> None:
    from bitnet.gguf import reader

    strings, lengths, bulk = STRING_ARRAYS[name]
    blob = b"".join(struct.pack("<Q", len(s) if lengths is None else lengths[i]) + s
                    for i, s in enumerate(strings)) + b"tail"
    results = []
    for read in (reader._read_strings, reader._read_strings_checked):
        cur = reader._Cursor(blob, len(blob), "<")
        try:
            results.append((read(cur, len(strings), "f"), cur.pos))
        except GGUFError as e:
            results.append((str(e), -1))
    assert results[0] == results[1]
    if lengths is None:
        assert results[0][0] == [s.decode("utf-8", "surrogateescape") for s in strings]
    cur = reader._Cursor(blob, len(blob), "<")
    assert (reader._read_strings_bulk(cur, len(strings)) is not None) == bulk


def test_missing_file_has_code_minus_4() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        parse("/nonexistent/model.gguf")
    assert info.value.code == MODEL_NOT_FOUND


def test_truncated_at_every_section_boundary(tmp_path: Path) -> None:
    b = valid_builder()
    data = b.build()
    # past the last tensor's bytes only padding is cut, which a reader need not have
    last_data_end = len(data) - (-len(b.tensors[-1].data) % b.alignment)
    boundaries = sorted(cut for _, end in b.sections for cut in (end - 1, end)
                        if cut < last_data_end)
    assert len(boundaries) > 20
    for cut in boundaries:
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(data[:cut])
        with pytest.raises(GGUFError):
            parse(path)


# --- hypothesis: mutations raise only the typed error ------------------------------------------

_VALID = valid_builder().build()


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(_VALID)),
       flips=st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=8))
@pytest.mark.fuzz
def test_mutations_raise_only_gguf_error(cut: int, flips: List[Tuple[int, int]],
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    data = bytearray(_VALID)
    for pos, byte in flips:
        data[pos] = byte
    path = tmp_path_factory.mktemp("mut") / "m.gguf"
    path.write_bytes(bytes(data[:cut]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GGUFWarning)
            load(path)
    except GGUFError:
        pass


# --- CLI ----------------------------------------------------------------------------------------

def _bitnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitnet.tools.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_inspect_good_and_bad(tmp_path: Path) -> None:
    ok = _bitnet("inspect", str(corpus_path(SMOLLM2)), "--json")
    assert ok.returncode == 0, ok.stderr
    import json

    info = json.loads(ok.stdout)
    assert info["kv"]["general.architecture"]["value"] == "llama"
    assert any(t["name"] == "token_embd.weight" and t["type"] == "Q8_0" for t in info["tensors"])
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(valid_builder().build()[:100])
    res = _bitnet("inspect", str(bad))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_fix_writes_a_repaired_copy_never_in_place(tmp_path: Path) -> None:
    src = tmp_path / "gpt2-nopre.gguf"
    _rewrite_with_gguf_writer(corpus_path("vocab/ggml-vocab-gpt-2.gguf"), src, ("tokenizer.ggml.pre",))
    before = src.read_bytes()
    out = tmp_path / "fixed.gguf"
    res = _bitnet("fix", str(src), str(out))
    assert res.returncode == 0, res.stderr
    assert src.read_bytes() == before
    fixed = gguf.GGUFReader(out)  # the second oracle reads our output
    assert fixed.fields["tokenizer.ggml.pre"].contents() == "gpt-2"
    same = _bitnet("fix", str(src), str(src))
    assert same.returncode != 0 and "refusing to write" in same.stderr
    assert len(same.stderr.strip().splitlines()) == 1
    assert src.read_bytes() == before


# --- repairs are logged, never raised as warnings ---------------------------------------------

def test_repairs_log_info_when_llama_cpp_does_the_same_else_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    """SmolLM2 needs one repair (byte_fallback, llama.cpp's own behaviour: INFO); gpt-neox's
    vocabulary gets a detected pre-tokenizer that llama.cpp would not pick (WARNING)."""
    with caplog.at_level(logging.DEBUG, logger="bitnet.gguf"):
        smol = load(corpus_path(SMOLLM2))
    assert [f.key for f in smol.fixes] == ["tokenizer.ggml.byte_fallback"]
    assert {r.levelno for r in caplog.records} == {logging.INFO}
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="bitnet.gguf"):
        neox = load(corpus_path("vocab/ggml-vocab-gpt-neox.gguf"))
    pre = next(f for f in neox.fixes if f.key == "tokenizer.ggml.pre")
    assert pre.new == "mpt" and not pre.as_llama_cpp
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("tokenizer.ggml.pre" in m for m in warned)
    assert not any("add_space_prefix" in m for m in warned)  # llama.cpp's default: INFO
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="bitnet.gguf"):
        load(corpus_path(SMOLLM2), quiet=True)
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}


@pytest.mark.llamacpp
def test_warnings_as_errors_never_break_a_load_llama_cpp_does() -> None:
    """`python -W error`: SmolLM2 loads through Llama (and bitnet.gguf.load), as it does
    through llama-cpp-python under the same flag."""
    code = ("import sys; from bitnet.llama_compat import Llama; from bitnet.gguf import load; "
            "p = sys.argv[1]; load(p); "
            "llm = Llama(model_path=p, n_ctx=64, verbose=True); "
            "print(llm.tokenize(b'Hello'))")
    res = subprocess.run([sys.executable, "-W", "error", "-c", code, str(corpus_path(SMOLLM2))],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    oracle = subprocess.run(
        [sys.executable, "-W", "error", "-c",
         "import sys, llama_cpp; llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, "
         "verbose=False); print(llm.tokenize(b'Hello'))", str(corpus_path(SMOLLM2))],
        capture_output=True, text=True, timeout=300)
    assert oracle.returncode == 0, oracle.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == oracle.stdout.strip().splitlines()[-1]


def test_inspect_tells_which_repairs_match_llama_cpp() -> None:
    import json

    res = _bitnet("inspect", str(corpus_path("vocab/ggml-vocab-gpt-neox.gguf")), "--json")
    assert res.returncode == 0, res.stderr
    fixes = {f["key"]: f["as_llama_cpp"] for f in json.loads(res.stdout)["fixes"]}
    assert fixes["tokenizer.ggml.pre"] is False
    assert fixes["tokenizer.ggml.add_space_prefix"] is True
    text = _bitnet("inspect", str(corpus_path("vocab/ggml-vocab-gpt-neox.gguf")))
    assert "[differs from llama.cpp]" in text.stdout and "[as llama.cpp]" in text.stdout
