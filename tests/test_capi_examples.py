"""llama.cpp 0.3.36's own example programs, unchanged, against libbitnet_ffi and against
libllama: only -I / -L / -l differ. On SmolLM2 with the peer-exact numerics
(BITNET_NUMERICS=llama.cpp):

- examples/simple prints libllama's text; examples/simple-chat builds and chats;
- common/ (common.cpp, sampling.cpp, log.cpp, arg.cpp, chat.cpp and the rest of the library)
  builds against bitnet_ffi.h with ggml's headers, and the tokenize, embedding and batched
  examples and tests/test-save-load-state.cpp print what their libllama builds print.

Flash attention: llama.cpp's C default (flash_attn_type AUTO) runs its flash-attention kernel
on the CPU; the engine reproduces its float order (bitnet.numerics.flash), so `simple` (which
cannot turn it off) prints libllama's text on every prompt. The programs that take `-fa off`
are compared with it as well.

Building common/ twice (-O0) is the cost of this module: ~3.5 min on 2 quiet cores (the
objects are built once per session, shared by the xdist workers); marked slow.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pytest

from bitnet_harness.corpora import SMOLLM2, corpus_path
from tests.capi_programs import (
    ROOT,
    bitnet_flags,
    ensure_library,
    llama_cpp_dirs,
    llama_cpp_source,
    run_program,
)

pytestmark = [pytest.mark.llamacpp,
              pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is needed")]
PEER = {"BITNET_NUMERICS": "llama.cpp"}
INCLUDE = ROOT / "reference" / "bitnet" / "ffi" / "include"


@pytest.fixture(scope="module")
def model_path() -> Path:
    return corpus_path(SMOLLM2)


def _link_flags(lib: str) -> List[str]:
    """How each library is linked: ours (+ ggml's own libraries where ggml's API is called),
    or llama.cpp's."""
    ggml = llama_cpp_dirs()["lib"]
    if lib == "bitnet":
        return bitnet_flags() + ["-lbitnet_ffi_ext", f"-L{ggml}", "-lggml", "-lggml-base",
                                 f"-Wl,-rpath,{ggml}"]
    return [f"-L{ggml}", "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{ggml}"]


def _include_flags(lib: str, src: Path) -> List[str]:
    ours = [f"-I{INCLUDE}", f"-I{src / 'ggml' / 'include'}"] if lib == "bitnet" else \
        [f"-I{llama_cpp_dirs()['include']}"]
    return ours + [f"-I{src / 'common'}", f"-I{src / 'vendor'}", f"-I{src / 'vendor' / 'cpp-httplib'}"]


def _gxx(args: List[str]) -> None:
    res = subprocess.run(["g++", "-std=c++17", "-O0", "-g0", "-fPIC", *args], capture_output=True,
                         text=True, timeout=1800)
    assert res.returncode == 0, f"g++ {' '.join(args)}\n{res.stderr[-4000:]}"


def build_program(src_file: Path, out: Path, lib: str, extra_objs: Sequence[Path] = ()) -> Path:
    src = llama_cpp_source()
    _gxx([*_include_flags(lib, src), str(src_file), "-o", str(out), *map(str, extra_objs),
          *_link_flags(lib), "-lpthread"])
    return out


def _common_sources(src: Path, work: Path) -> List[Path]:
    info = (src / "common" / "build-info.cpp.in").read_text()
    for key, value in (("@LLAMA_BUILD_NUMBER@", "0"), ("@LLAMA_BUILD_COMMIT@", "unknown"),
                       ("@BUILD_COMPILER@", "gcc"), ("@BUILD_TARGET@", "x86_64")):
        info = info.replace(key, value)
    (work / "build-info.cpp").write_text(info)
    common = src / "common"
    return (sorted(common.glob("*.cpp")) + sorted((common / "jinja").glob("*.cpp"))
            + sorted((common / "parsers").glob("*.cpp"))
            + [work / "build-info.cpp", src / "vendor" / "cpp-httplib" / "httplib.cpp"])


def build_common(lib: str, work: Path) -> Path:
    """libcommon.a of llama.cpp's common/ (and cpp-httplib) compiled against `lib`'s headers."""
    src = llama_cpp_source()
    work.mkdir(parents=True, exist_ok=True)
    sources = _common_sources(src, work)
    objs = [work / f"{i:02d}_{s.stem}.o" for i, s in enumerate(sources)]
    flags = _include_flags(lib, src)
    with ThreadPoolExecutor(max_workers=2) as pool:  # the machine's two cores
        list(pool.map(lambda so: _gxx([*flags, "-c", str(so[0]), "-o", str(so[1])]),
                      zip(sources, objs)))
    archive = work / "libcommon.a"
    subprocess.run(["ar", "rcs", str(archive), *map(str, objs)], check=True, timeout=300)
    return archive


EXAMPLES = {"tokenize": "tools/tokenize/tokenize.cpp", "embedding": "examples/embedding/embedding.cpp",
            "batched": "examples/batched/batched.cpp",
            "test-save-load-state": "tests/test-save-load-state.cpp"}


@pytest.fixture(scope="module")
def common_examples(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Dict[str, Dict[str, Path]]:
    """The four programs built on common/ for both libraries; built once per session (a file
    lock in the session's temp root, which the xdist workers share)."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    work = root / "capi-common"
    work.mkdir(exist_ok=True)
    ensure_library()
    src = llama_cpp_source()
    out: Dict[str, Dict[str, Path]] = {}
    with open(work / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for lib in ("bitnet", "llama"):
            archive = work / lib / "libcommon.a"
            if not archive.is_file():
                build_common(lib, work / lib)
            out[lib] = {}
            for name, rel in EXAMPLES.items():
                exe = work / lib / name
                if not exe.is_file():
                    build_program(src / rel, exe, lib, [archive])
                out[lib][name] = exe
    return out


# ---- simple, simple-chat ---------------------------------------------------------------------


SIMPLE_PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time",
                  "The three primary colors are", "Water boils at"]


def test_simple_prints_libllama_text(tmp_path: Path, model_path: Path) -> None:
    """simple runs llama.cpp's default context (flash attention AUTO: on): 32 greedy tokens
    of each prompt print the same bytes."""
    src = llama_cpp_source() / "examples" / "simple" / "simple.cpp"
    ours = build_program(src, tmp_path / "simple_bitnet", "bitnet")
    ref = build_program(src, tmp_path / "simple_llama", "llama")
    differ = []
    for prompt in SIMPLE_PROMPTS:
        args = ("-m", str(model_path), "-n", "32", prompt)
        got = run_program(ours, *args, env=PEER).stdout
        want = run_program(ref, *args).stdout
        if got != want:
            differ.append((prompt, got, want))
        assert got.startswith(prompt.encode()) and len(got) > 60
    assert not differ, f"{len(differ)}/{len(SIMPLE_PROMPTS)} prompts differ: {differ[:2]}"


def test_simple_chat_builds_and_chats(tmp_path: Path, model_path: Path) -> None:
    src = llama_cpp_source() / "examples" / "simple-chat" / "simple-chat.cpp"
    ours = build_program(src, tmp_path / "chat_bitnet", "bitnet")
    build_program(src, tmp_path / "chat_llama", "llama")  # the same source builds both ways
    res = subprocess.run([str(ours), "-m", str(model_path), "-c", "512"], input=b"Name a colour.\n\n",
                         capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    text = res.stdout.decode(errors="replace")
    # it samples with a random seed (LLAMA_DEFAULT_SEED): the answer ends at an end-of-turn
    # token (the second prompt follows) or at the context's end (simple-chat says so, exit 0)
    answer = text.split("> ", 1)[1].split("> ", 1)[0]
    assert text.startswith("\x1b[32m> ") and len(answer) > 20, text
    assert text.count("> ") >= 2 or "context size exceeded" in res.stderr.decode(errors="replace"), text


# ---- the programs built on common/ -----------------------------------------------------------

PROMPT3 = "Hello world\nThe capital of France is Paris\nBye"  # three sequences in one batch


@pytest.mark.slow
def test_tokenize_example(common_examples: Dict[str, Dict[str, Path]], model_path: Path) -> None:
    args = ("-m", str(model_path), "-p", "Hello world, the capital of France is", "--ids",
            "--log-disable")
    got = run_program(common_examples["bitnet"]["tokenize"], *args).stdout
    assert got == run_program(common_examples["llama"]["tokenize"], *args).stdout
    assert json.loads(got.decode().strip().splitlines()[-1]) == [19556, 905, 28, 260, 3575, 282, 4649, 314]


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["none", "mean", "cls", "last"])
def test_embedding_example(common_examples: Dict[str, Dict[str, Path]], model_path: Path,
                           pooling: str) -> None:
    """Three sequences in one batch, every pooling: the same printed embeddings."""
    args = ("-m", str(model_path), "-p", PROMPT3, "--pooling", pooling, "-fa", "off")
    got = run_program(common_examples["bitnet"]["embedding"], *args, env=PEER).stdout
    want = run_program(common_examples["llama"]["embedding"], *args).stdout
    assert got == want
    assert got.count(b"embedding ") == (3 if pooling != "none" else 10) or pooling == "none"


@pytest.mark.slow
def test_embedding_example_with_flash_attention(common_examples: Dict[str, Dict[str, Path]],
                                                model_path: Path) -> None:
    """llama.cpp's default (flash attention on): every token's embedding is libllama's."""
    args = ("-m", str(model_path), "-p", PROMPT3, "--pooling", "none", "--embd-output-format", "json")
    got = json.loads(run_program(common_examples["bitnet"]["embedding"], *args, env=PEER).stdout)
    want = json.loads(run_program(common_examples["llama"]["embedding"], *args).stdout)
    a = np.array([d["embedding"] for d in got["data"]])
    b = np.array([d["embedding"] for d in want["data"]])
    assert a.shape == b.shape == (10, 576)
    assert np.array_equal(a, b), [i for i in range(len(a)) if not np.array_equal(a[i], b[i])]


BATCHED_RUNS = [  # (prompt, -np, -fa, -s)
    ("Hello my name is", "1", "off", "42"),
    ("Hello my name is", "4", "off", "42"),
    ("Hello my name is", "4", "on", "42"),
    ("def fibonacci(n):", "8", "off", "7"),
]


@pytest.mark.slow
def test_batched_example(common_examples: Dict[str, Dict[str, Path]], model_path: Path) -> None:
    """One stream, and several (a prompt shared by n sequences in one unified cache, then a
    batch of n tokens per step, each stream sampled with its own seeded sampler), with and
    without flash attention: the same text as libllama. The streams part from each other
    there because each sequence's cells sit in other lanes of its attention sums; the engine
    places cells and masks them as llama.cpp does."""
    for prompt, n_parallel, fa, seed in BATCHED_RUNS:
        args = ("-m", str(model_path), "-p", prompt, "-n", "40", "-kvu", "-s", seed, "-fa", fa,
                "-np", n_parallel)
        got = run_program(common_examples["bitnet"]["batched"], *args, env=PEER).stdout.decode()
        want = run_program(common_examples["llama"]["batched"], *args).stdout.decode()
        assert got == want, args
        if n_parallel != "1":
            streams = [s.split(":", 1)[1].strip() for s in want.split("sequence ")[1:]]
            assert len(streams) == int(n_parallel) and all(streams)
            if fa == "off":  # flash attention skips masked cells: the streams stay one text
                assert len(set(streams)) > 1, "the streams part (lanes differ per sequence)"


@pytest.mark.slow
def test_save_load_state_test_program(common_examples: Dict[str, Dict[str, Path]], model_path: Path,
                                      tmp_path: Path) -> None:
    """llama.cpp's tests/test-save-load-state.cpp: all nine tests pass on both libraries (exit
    status 0), and the baseline generation is the same 8 tokens."""
    args = ("-m", str(model_path), "-p",
            "The three primary colors are red, yellow and blue. The three secondary colors are",
            "-n", "8")
    baseline: Dict[str, List[str]] = {}
    for lib in ("bitnet", "llama"):
        cwd = tmp_path / lib
        cwd.mkdir()
        res = run_program(common_examples[lib]["test-save-load-state"], *args, env=PEER, cwd=cwd)
        text = res.stdout.decode(errors="replace")
        # the exit status is the verdict (0: every test passed; run_program checks it): the
        # program's last lines go through common/'s log thread, which exit can cut short
        assert "FAIL" not in text and "=== Test 1: baseline ===" in text, (lib, text)
        baseline[lib] = text.split("=== Test 1: baseline ===", 1)[1].split("===", 1)[0].split()
    assert baseline["bitnet"] == baseline["llama"] and len(baseline["llama"]) == 8
