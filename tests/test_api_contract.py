"""C API contracts: libbitnet_ffi.so + bitnet_ffi.h, a source-level drop-in for llama.h.

Real C programs (tests/c/*.c) are compiled with gcc against the library built on demand and
run on SmolLM2; their output is compared with the Python engine (bitnet.model, the same
default backend as the library), bitnet.llama_compat.Llama and llama-cpp-python. The
current-API program must also compile, unchanged but for the include, against llama.cpp's
own llama.h (shipped in the llama-cpp-python wheel).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Union

import numpy as np
import pytest

from bitnet.harness.corpora import SMOLLM2, corpus_path

C_DIR = Path(__file__).resolve().parent / "c"
PY = sys.executable
PROMPTS = [
    b"Hello world, the capital of France is",
    "Ünïcödé: 東京 🦙 —  two  spaces\tand tab".encode(),
    b"caf\xc3\xa9 \xff\xfe invalid UTF-8 \xe6\x9d",  # C strings are bytes; no UTF-8 check
]
CURRENT_PROMPT = "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
N_GEN = 4
N_CTX = 64  # the programs' cparams.n_ctx / n_batch

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build C programs")


@pytest.fixture(scope="module")
def model_path() -> Path:
    return corpus_path(SMOLLM2)


@pytest.fixture(scope="module")
def ffi_flags() -> str:
    """`python -m bitnet.ffi --cflags --libs`: builds the library once, before any compile."""
    out = subprocess.run([PY, "-m", "bitnet.ffi", "--cflags", "--libs"], check=True,
                         capture_output=True, text=True, timeout=300)
    return out.stdout.strip()


def compile_c(src: Path, out: Path, extra: str = "") -> Path:
    """Literally `gcc app.c $(python -m bitnet.ffi --cflags --libs)`, warnings as errors."""
    flags = f"$({shlex.quote(PY)} -m bitnet.ffi --cflags --libs)"
    cmd = f"gcc -std=c11 -Wall -Wextra -Werror {src} -o {out} {flags} {extra}"
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return out


def run(exe: Path, *args: Union[str, bytes]) -> Dict[str, List[str]]:
    """Run a test program (no LD_LIBRARY_PATH: the rpath must do) and parse "key values..." lines."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    res = subprocess.run([str(exe), *args], capture_output=True, timeout=120, env=env)
    assert res.returncode == 0, (res.returncode, res.stderr.decode(errors="replace"))
    lines = res.stdout.decode().splitlines()
    return {ln.split(" ", 1)[0]: ln.split(" ")[1:] for ln in lines if ln}


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Any:
    """The Python engine with its default backend (the one the library uses)."""
    from bitnet.model import Model

    return Model.load(model_path)


@pytest.fixture(scope="module")
def compat(model_path: Path) -> Any:
    from bitnet.llama_compat import Llama

    return Llama(model_path=str(model_path), vocab_only=True, verbose=False)


@pytest.fixture(scope="module")
def oracle(model_path: Path) -> Any:
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)


def python_logits(model: Any, ids: List[int]) -> np.ndarray:
    """Last-token logits of `ids` from the Python engine, context sized like the C program."""
    from bitnet.model import Context

    ctx = Context(model, n_ctx=N_CTX, n_batch=N_CTX)
    return np.asarray(ctx.eval(ids, 0, all_logits=False)[-1], dtype=np.float32)


# ---------------------------------------------------------------------------------------------


def test_flags_point_at_header_and_library(ffi_flags: str) -> None:
    flags = ffi_flags.split()
    inc = [f[2:] for f in flags if f.startswith("-I")]
    assert inc and (Path(inc[0]) / "bitnet_ffi.h").is_file()
    libdirs = [f[2:] for f in flags if f.startswith("-L")]
    assert libdirs and (Path(libdirs[0]) / "libbitnet_ffi.so").is_file()
    assert "-lbitnet_ffi" in flags
    assert f"-Wl,-rpath,{libdirs[0]}" in flags


@pytest.mark.llamacpp
def test_legacy_api_program(tmp_path: Path, ffi_flags: str, model_path: Path, engine: Any,
                            compat: Any, oracle: Any) -> None:
    """Locked API: ids == Llama.tokenize == llama-cpp-python's; argmax == the Python engine's."""
    exe = compile_c(C_DIR / "legacy_api.c", tmp_path / "legacy_api")
    model = engine
    from bitnet.tokenizers import load as load_tokenizer

    tok = load_tokenizer(model_path)
    for prompt in PROMPTS:
        out = run(exe, str(model_path), prompt)
        data = prompt
        ids = [int(t) for t in out["tokens"][1:]]
        assert int(out["tokens"][0]) == len(ids)
        assert ids == compat.tokenize(data, add_bos=True, special=False)
        assert ids == oracle.tokenize(data, add_bos=True, special=False)
        assert int(out["n_vocab"][0]) == oracle.n_vocab() == model.n_vocab
        assert int(out["n_ctx"][0]) == N_CTX
        bos, eos, nl = (int(x) for x in out["special"])
        assert (bos, eos) == (oracle.token_bos(), oracle.token_eos())
        assert nl == tok.vocab.nl_id

        logits = python_logits(model, ids)
        best = int(out["argmax"][0])
        assert best == int(np.argmax(logits))
        # same engine, same backend, same tokens in both processes: measured bit-identical
        # (%.9g round-trips float32), so no tolerance is needed
        c_vals = np.array([float(x) for x in out["logits"]], dtype=np.float32)
        assert np.array_equal(c_vals, logits[[0, 1, best]])
        piece = bytes(int(x, 16) for x in out["piece"])
        assert piece == tok.token_to_piece(best, 0, False)

        nxt = python_logits(model, ids + [best])
        assert int(out["argmax2"][0]) == int(np.argmax(nxt))


@pytest.mark.llamacpp
def test_current_api_program(tmp_path: Path, ffi_flags: str, model_path: Path, engine: Any,
                             oracle: Any) -> None:
    """Current API (vocab, batch, decode, greedy chain): same tokens and greedy ids as Python."""
    exe = compile_c(C_DIR / "current_api.c", tmp_path / "current_api")
    out = run(exe, str(model_path), CURRENT_PROMPT, str(N_GEN))
    ids = [int(t) for t in out["tokens"][1:]]
    assert ids == oracle.tokenize(CURRENT_PROMPT.encode(), add_bos=True, special=True)
    from bitnet.model import Context

    ctx = Context(engine, n_ctx=N_CTX, n_batch=N_CTX)
    expected: List[int] = []
    logits = ctx.eval(ids, 0, all_logits=False)
    for _ in range(N_GEN):
        tok = int(np.argmax(logits[-1]))
        expected.append(tok)
        if tok == oracle.token_eos():
            break
        logits = ctx.eval([tok], all_logits=False)
    assert [int(t) for t in out["generated"]] == expected
    assert int(out["eos"][0]) == oracle.token_eos()


def test_logits_rows(tmp_path: Path, ffi_flags: str, model_path: Path, engine: Any) -> None:
    """logits_all keeps every row; batch.logits flags select rows for llama_get_logits_ith."""
    exe = compile_c(C_DIR / "logits_rows.c", tmp_path / "logits_rows")
    prompt = PROMPTS[0]
    out = run(exe, str(model_path), prompt)
    from bitnet.model import Context
    from bitnet.tokenizers import load as load_tokenizer

    ids = load_tokenizer(model_path).tokenize(prompt, True, False)
    ctx = Context(engine, n_ctx=N_CTX, n_batch=N_CTX)
    want = np.argmax(ctx.eval(ids, 0, all_logits=True), axis=1)
    assert [int(out[f"all_{i}"][0]) for i in range(len(ids))] == want.tolist()
    flagged = [i for i in range(len(ids)) if i % 2 == 0 or i == len(ids) - 1]
    assert sorted(int(k[5:]) for k in out if k.startswith("flag_")) == flagged
    assert [int(out[f"flag_{i}"][0]) for i in flagged] == want[flagged].tolist()
    assert int(out["first"][0]) == int(want[0])


def test_calls_from_threads(tmp_path: Path, ffi_flags: str, model_path: Path, engine: Any) -> None:
    """Concurrent calls from C threads (own contexts, shared model) are serialized, not broken."""
    exe = compile_c(C_DIR / "threads.c", tmp_path / "threads", extra="-pthread")
    out = run(exe, str(model_path), PROMPTS[0])
    from bitnet.tokenizers import load as load_tokenizer

    ids = load_tokenizer(model_path).tokenize(PROMPTS[0], True, False)
    want = int(np.argmax(python_logits(engine, ids)))
    assert [int(v[0]) for k, v in sorted(out.items())] == [want] * 3


def _llama_cpp_include() -> Path:
    llama_cpp = pytest.importorskip("llama_cpp")
    inc = Path(llama_cpp.__file__).resolve().parent.parent / "include"
    if not (inc / "llama.h").is_file():
        pytest.skip(f"llama.cpp headers not installed next to llama_cpp ({inc})")
    return inc


@pytest.mark.llamacpp
def test_current_api_program_compiles_against_llama_h(tmp_path: Path) -> None:
    """Source compatibility: the same program, only the include changed, builds with llama.h."""
    inc = _llama_cpp_include()
    src = (C_DIR / "current_api.c").read_text()
    assert src.count('#include "bitnet_ffi.h"') == 1
    real = tmp_path / "current_api_llama.c"
    real.write_text(src.replace('#include "bitnet_ffi.h"', '#include "llama.h"'))
    res = subprocess.run(["gcc", "-std=c11", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                          f"-I{inc}", str(real)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_library_builds_on_demand(tmp_path: Path) -> None:
    """`--libs` with an empty cache builds the library (the package install never compiles it)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = subprocess.run([PY, "-m", "bitnet.ffi", "--libdir"], check=True, capture_output=True,
                         text=True, timeout=300, env=env)
    libdir = Path(out.stdout.strip())
    assert str(libdir).startswith(str(tmp_path / "cache"))
    assert (libdir / "libbitnet_ffi.so").is_file()
    assert [p.name for p in libdir.iterdir()] == ["libbitnet_ffi.so"]  # no build leftovers


def test_programs_compile_as_cpp(tmp_path: Path, ffi_flags: str) -> None:
    """C++ gets overloads instead of _Generic: both programs build as C++ too."""
    inc = next(f for f in ffi_flags.split() if f.startswith("-I"))
    for name in ("legacy_api", "current_api"):
        src = tmp_path / f"{name}.cpp"
        src.write_text((C_DIR / f"{name}.c").read_text())
        res = subprocess.run(["g++", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", inc, str(src)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr


def test_error_paths(tmp_path: Path, ffi_flags: str, model_path: Path) -> None:
    """Documented error values and last-error codes; no crash on NULL/bogus/freed handles."""
    from bitnet import errors as E

    exe = compile_c(C_DIR / "error_paths.c", tmp_path / "error_paths")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"this is not a GGUF file\n")
    out = run(exe, str(model_path), str(garbage), str(tmp_path / "missing.gguf"))
    got = {k: (int(v[0]), int(v[1])) for k, v in out.items() if k != "message"}
    int32_min = -(2**31)
    expected = {
        "load_missing_is_null": (1, E.MODEL_NOT_FOUND),
        "load_garbage_is_null": (1, E.MODEL_LOAD_FAILED),
        "load_null_path_is_null": (1, E.GENERIC_ERROR),
        "free_null": (0, 0),
        "free_model_null": (0, 0),
        "ctx_null_model_is_null": (1, E.INVALID_MODEL_ID),
        "ctx_bogus_model_is_null": (1, E.INVALID_MODEL_ID),
        "eval_null_ctx": (1, E.INVALID_MODEL_ID),
        "eval_bogus_ctx": (1, E.INVALID_MODEL_ID),
        "logits_null_ctx_is_null": (1, E.INVALID_MODEL_ID),
        "n_vocab_null": (0, E.INVALID_MODEL_ID),
        "n_ctx_null": (0, E.INVALID_MODEL_ID),
        "bos_null": (-1, E.INVALID_MODEL_ID),
        "tokenize_null_model": (int32_min, E.INVALID_MODEL_ID),
        "decode_null_ctx": (-1, E.INVALID_MODEL_ID),
        "vocab_null_is_null": (1, E.INVALID_MODEL_ID),
        "load_model_ok": (1, 0),
        "tokenize_negative_len": (int32_min, E.GENERIC_ERROR),
        "piece_bad_token": (int32_min, E.GENERIC_ERROR),
        "ctx_ok": (1, 0),
        "logits_before_eval_is_null": (1, E.GENERIC_ERROR),
        "eval_ok": (0, 0),
        "eval_past_n_ctx": (1, E.CONTEXT_LENGTH_EXCEEDED),
        "eval_too_many_tokens": (1, E.CONTEXT_LENGTH_EXCEEDED),
        "eval_bad_token": (1, E.INFERENCE_FAILED),
        "eval_zero_tokens": (1, E.GENERIC_ERROR),
        "eval_null_tokens": (1, E.GENERIC_ERROR),
        "decode_past_n_ctx": (1, E.CONTEXT_LENGTH_EXCEEDED),
        "eval_again_ok": (0, 0),
        "logits_after_eval_nonnull": (1, 0),
        "logits_ith_no_output_is_null": (1, E.GENERIC_ERROR),
        "eval_after_free": (1, E.INVALID_MODEL_ID),
        "n_ctx_after_free": (0, E.INVALID_MODEL_ID),
        "vocab_only_load_ok": (1, 0),
        "vocab_only_ctx_is_null": (1, E.MODEL_LOAD_FAILED),
        "tokenize_after_free_model": (int32_min, E.INVALID_MODEL_ID),
    }
    for key, value in expected.items():
        assert got[key] == value, key
    # buffer too small: -(needed), as llama.cpp, and not an error
    n = got["tokenize_ok"][0]
    assert n > 3
    assert got["tokenize_small_buffer"] == (-n, 0)
    assert got["tokenize_count_only"] == (-n, 0)
    assert got["vocab_only_tokenize"] == (n, 0)
    needed, err = got["piece_small_buffer"]
    assert needed < -1 and err == 0
    assert "vocab_only" in " ".join(out["message"])
