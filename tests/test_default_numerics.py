"""The default numerics: llama.cpp's bits through the public API, and how the runtime picks them.

`bitnet.runtime` chooses the kernels for every API surface: numerics "llama.cpp" (the
default; the C kernels' llama.cpp order, or numpy's PeerBackend without them), "float" or
"reference", from the `numerics=` keyword or $BITNET_NUMERICS. Checked here:

- the knob: keyword over environment over default, bad values rejected, the backend each
  mode gets, a missing kernel build reported once (and an error with
  BITNET_BACKEND=optimized), the rebuild advice of `bitnet_kernels.unavailable_reason()`;
- `bitnet.llama_compat.Llama` with default settings against `llama_cpp.Llama` 0.3.36 (equal
  bytes or equal tokens, never a tolerance): greedy continuations at 1 and 2 threads on
  SmolLM2 and the synthetic ternary models, every row of `scores` with logits_all, logprobs,
  embeddings, and seeded sampling (top_k / top_p / min_p / temperature). A representative
  subset runs quick; the full set (>= 30 prompts x 64 tokens) is marked slow;
- `Llama(flash_attn=True)` likewise (llama.cpp's flash-attention kernel: its one-chunk,
  tiled and split-KV paths), at 1 and 2 threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest

from bitnet import runtime
from bitnet.ops import NumpyBackend

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------
# the knob


def test_numerics_mode_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """numerics= beats $BITNET_NUMERICS beats the default ("llama.cpp"); the old knob
    BITNET_BACKEND=reference means "reference" when nothing else is set."""
    monkeypatch.delenv("BITNET_NUMERICS", raising=False)
    monkeypatch.delenv("BITNET_BACKEND", raising=False)
    assert runtime.DEFAULT_NUMERICS == "llama.cpp"
    assert runtime.numerics_mode() == "llama.cpp"
    monkeypatch.setenv("BITNET_NUMERICS", "float")
    assert runtime.numerics_mode() == "float"
    assert runtime.numerics_mode("reference") == "reference"
    monkeypatch.delenv("BITNET_NUMERICS")
    monkeypatch.setenv("BITNET_BACKEND", "reference")
    assert runtime.numerics_mode() == "reference"
    for bad in ("llama", "exact", "FLOAT"):
        with pytest.raises(ValueError, match="expected one of"):
            runtime.numerics_mode(bad)


def test_each_mode_gets_its_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the kernels: llama.cpp -> the C peer order, float -> the C float path,
    reference -> numpy; BITNET_BACKEND=reference gives numpy's PeerBackend for llama.cpp."""
    import bitnet_kernels
    from bitnet.numerics import PeerBackend

    monkeypatch.delenv("BITNET_BACKEND", raising=False)
    assert type(runtime.make_backend("reference")) is NumpyBackend
    if bitnet_kernels.available():
        peer = runtime.make_backend("llama.cpp", arch="bitnet")
        assert isinstance(peer, bitnet_kernels.OptimizedBackend) and peer.activation_quant == "peer"
        assert peer.plain == {"token_embd.weight"}  # the bitnet arch multiplies it unrepacked
        flt = runtime.make_backend("float")
        assert isinstance(flt, bitnet_kernels.OptimizedBackend) and flt.activation_quant == "none"
    monkeypatch.setenv("BITNET_BACKEND", "reference")
    assert type(runtime.make_backend("llama.cpp")) is PeerBackend
    assert type(runtime.make_backend("float")) is NumpyBackend
    monkeypatch.setenv("BITNET_BACKEND", "fastest")
    with pytest.raises(ValueError, match="BITNET_BACKEND"):
        runtime.make_backend("llama.cpp")


def _without_kernels(body: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run python `body` where the C extension counts as missing (BITNET_OPTIMIZED_DISABLE=1)."""
    full_env = dict(os.environ, BITNET_OPTIMIZED_DISABLE="1", **env)
    full_env.pop("BITNET_BACKEND", None)
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], env=full_env, capture_output=True,
                          text=True, timeout=300)


def test_missing_kernels_warn_once_and_run_numpy() -> None:
    """Without the C extension the numpy code of the same numerics runs, after ONE warning
    naming the reason and the slowdown; BITNET_BACKEND=optimized makes it an error."""
    r = _without_kernels("""
        import warnings
        from bitnet import runtime
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = runtime.make_backend("llama.cpp")
            b = runtime.make_backend("float")
        print(type(a).__name__, type(b).__name__)
        print(len(caught), caught[0].category.__name__, caught[0].message)
        """)
    assert r.returncode == 0, r.stderr
    kinds, warning = r.stdout.splitlines()[:2]
    assert kinds == "PeerBackend NumpyBackend"
    assert warning.startswith("1 RuntimeWarning bitnet: C kernels unavailable "
                              "(disabled by BITNET_OPTIMIZED_DISABLE=1)")
    assert f"~{runtime.NUMPY_SLOWDOWN}x slower" in warning
    r = _without_kernels("""
        from bitnet import runtime
        runtime.make_backend("llama.cpp")
        """, BITNET_BACKEND="optimized")
    assert r.returncode != 0 and "BITNET_BACKEND=optimized but the C kernels are unavailable" in r.stderr


def test_unavailable_reason_advises_a_reinstall() -> None:
    """A missing extension names the cause and how to rebuild as an installed package (pip
    with a C compiler), not a source-checkout command."""
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import sys
            sys.modules["bitnet_kernels._kernels"] = None  # an import that fails
            import bitnet_kernels
            print(bitnet_kernels.unavailable_reason())
            """)],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    reason = r.stdout.strip()
    assert "not importable" in reason
    assert "pip install --force-reinstall --no-binary bitnet-compat bitnet-compat" in reason
    assert "C compiler" in reason and "-e ." not in reason


# --------------------------------------------------------------------------------------
# Llama with default settings against llama-cpp-python


def _paths() -> Dict[str, Path]:
    from bitnet_harness.corpora import SMOLLM2, corpus_path
    from bitnet_harness.synthetic import synthetic_path

    return {"SmolLM2": corpus_path(SMOLLM2), "TQ2_0": synthetic_path("bitnet-tq2_0"),
            "TQ1_0": synthetic_path("bitnet-tq1_0")}


def _exact_build() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from bitnet.numerics import emulates_llamacpp_build

    if not emulates_llamacpp_build(llama_cpp.llama_print_system_info().decode()):
        pytest.skip("llama.cpp's build is not the x86 AVX-512 one llama.cpp numerics reproduce")


def _pair(path: Path, threads: int, **kw: Any) -> Tuple[Any, Any]:
    """(ours, llama-cpp-python's) Llama on the same file and arguments, default numerics."""
    import llama_cpp

    from bitnet.llama_compat import Llama

    os.environ.pop("BITNET_NUMERICS", None)
    common = dict(n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Llama(str(path), **common), llama_cpp.Llama(str(path), **common)


@pytest.fixture
def no_numerics_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("BITNET_NUMERICS", raising=False)
    monkeypatch.delenv("BITNET_BACKEND", raising=False)
    yield


PROMPTS = [
    "The capital of France is", "def fibonacci(n):\n    ", "Once upon a time,",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", "The quick brown fox",
    "import numpy as np\n", "In 1492, Columbus", "Water boils at", "My favourite colour is",
    "Q: Why is the sky blue?\nA:", "The three laws of robotics are", "SELECT * FROM users WHERE",
    "Dear Sir or Madam,\n", "The recipe for pancakes:\n1.", "Translate to French: cat ->",
    "A haiku about autumn:\n", "The mitochondria is", "To be or not to be,", "Step 1: open the",
    "The largest planet in the solar system", "function add(a, b) {", "Breaking news:",
]


def _greedy(llm: Any, prompt: str, n: int) -> str:
    return str(llm.create_completion(prompt, max_tokens=n, temperature=0.0)["choices"][0]["text"])


def _llama_cpp_texts(path: Path, prompts: List[str], n_tokens: int) -> List[str]:
    """llama-cpp-python's greedy continuations, computed at 1 thread (its bits do not depend
    on the thread count: the first two prompts are checked at 2 threads too)."""
    import llama_cpp

    kw: Dict[str, Any] = dict(n_ctx=512, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = llama_cpp.Llama(str(path), n_threads=1, n_threads_batch=1, **kw)
        texts = [_greedy(one, p, n_tokens) for p in prompts]
        del one
        two = llama_cpp.Llama(str(path), n_threads=2, n_threads_batch=2, **kw)
        assert [_greedy(two, p, n_tokens) for p in prompts[:2]] == texts[:2]
    return texts


def _check_greedy(model: str, prompts: List[str], n_tokens: int) -> None:
    """Ours at 1 and at 2 threads, with default settings, print llama-cpp-python's text."""
    from bitnet.llama_compat import Llama

    path = _paths()[model]
    want = _llama_cpp_texts(path, prompts, n_tokens)
    os.environ.pop("BITNET_NUMERICS", None)
    for threads in (1, 2):
        ours = Llama(str(path), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
        differ = [p for p, w in zip(prompts, want) if _greedy(ours, p, n_tokens) != w]
        assert not differ, \
            f"{model}, {threads} threads: {len(differ)}/{len(prompts)} continuations differ: {differ[:3]}"


@pytest.mark.llamacpp
def test_greedy_text_is_llamacpp_quick(no_numerics_env: None) -> None:
    """3 prompts x 24 greedy tokens on SmolLM2 and the synthetic TQ2_0 model: the same text."""
    _exact_build()
    for model in ("SmolLM2", "TQ2_0"):
        _check_greedy(model, PROMPTS[-3:], 24)


@pytest.mark.slow
@pytest.mark.llamacpp
@pytest.mark.parametrize("model", ["SmolLM2", "TQ2_0", "TQ1_0"])
def test_greedy_text_is_llamacpp_full(model: str, no_numerics_env: None) -> None:
    """The acceptance set: 22 prompts on SmolLM2 plus 8 on each synthetic ternary model (38
    continuations), 64 greedy tokens each, at 1 and 2 threads: all equal."""
    _exact_build()
    _check_greedy(model, PROMPTS if model == "SmolLM2" else PROMPTS[:8], 64)


@pytest.mark.llamacpp
def test_bitnet_generate_prints_llamacpp_text(no_numerics_env: None) -> None:
    """`bitnet generate --temp 0` with its default numerics prints llama-cpp-python's greedy
    continuation (the server and C programs: test_server_llamacpp, test_api_contract)."""
    import io

    from bitnet.tools.generate import generate

    _exact_build()
    prompts = PROMPTS[4:7]
    want = _llama_cpp_texts(_paths()["SmolLM2"], prompts, 32)
    for prompt, text in zip(prompts, want):
        out = io.StringIO()
        generate(str(_paths()["SmolLM2"]), prompt, n_predict=32, temp=0.0, out=out)
        assert out.getvalue() == text + "\n", prompt


@pytest.mark.llamacpp
def test_scores_logprobs_and_sampling_are_llamacpp(no_numerics_env: None) -> None:
    """logits_all=True: every row of `scores` equal (bytes); create_completion's logprobs
    equal; seeded sampling with top_k / top_p / min_p / temperature picks the same tokens."""
    _exact_build()
    ours, theirs = _pair(_paths()["SmolLM2"], 2, logits_all=True)
    tokens = theirs.tokenize(b"The capital of France is Paris, and the capital of Italy is", add_bos=True)
    for llm in (ours, theirs):
        llm.reset()
        llm.eval(tokens)
    n = len(tokens)
    assert np.asarray(ours.scores[:n]).tobytes() == np.asarray(theirs.scores[:n]).tobytes()
    lp = {}
    for name, llm in (("ours", ours), ("theirs", theirs)):
        out = llm.create_completion("Water boils at", max_tokens=8, temperature=0.0, logprobs=3)
        lp[name] = out["choices"][0]["logprobs"]
    assert lp["ours"]["tokens"] == lp["theirs"]["tokens"]
    assert lp["ours"]["token_logprobs"] == lp["theirs"]["token_logprobs"]
    assert lp["ours"]["top_logprobs"] == lp["theirs"]["top_logprobs"]
    for seed in (1, 42):
        kw = dict(max_tokens=24, temperature=0.9, top_k=40, top_p=0.9, min_p=0.05, seed=seed)
        a = ours.create_completion("Once upon a time", **kw)["choices"][0]["text"]
        b = theirs.create_completion("Once upon a time", **kw)["choices"][0]["text"]
        assert a == b, (seed, a, b)


@pytest.mark.llamacpp
@pytest.mark.parametrize("pooling", ["NONE", "MEAN"])
def test_embeddings_are_llamacpp(pooling: str, no_numerics_env: None) -> None:
    """Llama(embedding=True).embed: every token's hidden state (pooling NONE) and the pooled
    vector (MEAN: llama.cpp computes it as an F32 matmul by the 1/n row, in that matmul's
    order), equal to llama-cpp-python's."""
    _exact_build()
    import llama_cpp

    for pooling_type in (getattr(llama_cpp, f"LLAMA_POOLING_TYPE_{pooling}"),):
        ours, theirs = _pair(_paths()["SmolLM2"], 2, embedding=True, pooling_type=pooling_type)
        for text in ("Hello world", "The quick brown fox jumps over the lazy dog."):
            a, b = ours.embed(text), theirs.embed(text)
            assert np.asarray(a, dtype=np.float32).tobytes() == np.asarray(b, dtype=np.float32).tobytes(), \
                (pooling, text)


def test_kv_cache_type_follows_type_k(no_numerics_env: None) -> None:
    """type_k None or GGML_TYPE_F16: llama.cpp's default F16 cache; GGML_TYPE_F32: F32; a
    quantized cache type (llama.cpp's, with flash attention) is refused with a ValueError."""
    from bitnet.llama_compat import Llama
    from bitnet.llama_compat.llama_cpp import GGML_TYPE_F16, GGML_TYPE_F32, GGML_TYPE_Q8_0

    path = str(_paths()["TQ2_0"])
    for type_k, dtype in ((None, np.float16), (GGML_TYPE_F16, np.float16), (GGML_TYPE_F32, np.float32)):
        llm = Llama(path, n_ctx=256, type_k=type_k, verbose=False)
        assert llm.ctx.cache.k.dtype == dtype, type_k
        llm.close()
    with pytest.raises(ValueError, match="type_k"):
        Llama(path, n_ctx=256, type_k=GGML_TYPE_Q8_0, verbose=False)


# --------------------------------------------------------------------------------------
# flash attention (Llama(flash_attn=True); the C API's default)


def test_flash_attn_default_is_llama_cpp_pythons() -> None:
    """Llama's flash_attn default is llama-cpp-python 0.3.36's (False: flash_attn_type
    DISABLED; the C API's own default, AUTO, turns it on)."""
    import inspect

    llama_cpp = pytest.importorskip("llama_cpp")
    from bitnet.llama_compat import Llama

    ours = inspect.signature(Llama.__init__).parameters["flash_attn"].default
    theirs = inspect.signature(llama_cpp.Llama.__init__).parameters["flash_attn"].default
    assert ours is theirs is False


def _same_scores(ours: Any, theirs: Any, tokens: List[int]) -> None:
    """eval(tokens) from an empty cache on both: every row of `scores` the same bytes."""
    for llm in (ours, theirs):
        llm.reset()
        llm.eval(tokens)
    n = len(tokens)
    a, b = np.asarray(ours.scores[:n]), np.asarray(theirs.scores[:n])
    assert a.tobytes() == b.tobytes(), [i for i in range(n) if a[i].tobytes() != b[i].tobytes()]


@pytest.mark.llamacpp
@pytest.mark.parametrize("threads", [1, 2])
def test_flash_attention_is_llamacpp(threads: int, no_numerics_env: None) -> None:
    """Llama(flash_attn=True) against llama_cpp.Llama(flash_attn=True) on SmolLM2: every
    prompt row of `scores` (logits_all) the same bytes, and 32 greedy tokens the same text."""
    _exact_build()
    ours, theirs = _pair(_paths()["SmolLM2"], threads, flash_attn=True, logits_all=True)
    for prompt in PROMPTS[:3]:
        _same_scores(ours, theirs, theirs.tokenize(prompt.encode()))
        assert _greedy(ours, prompt, 32) == _greedy(theirs, prompt, 32), prompt


@pytest.mark.llamacpp
def test_flash_attention_long_context_is_llamacpp(no_numerics_env: None) -> None:
    """A 300-token prompt (llama.cpp's tiled path: >= 64 queries) then decode steps over a
    512-cell KV view (its split-KV path: a chunk of cells per thread, merged): the prompt's
    rows and each step's logits the same bytes as llama-cpp-python's, at 2 threads (at one,
    the split-KV order is the one-chunk order the test above covers)."""
    _exact_build()
    ours, theirs = _pair(_paths()["SmolLM2"], 2, flash_attn=True, logits_all=True)
    text = " ".join(f"Item {i} costs {i * 7 % 13} coins." for i in range(60))
    tokens = theirs.tokenize(text.encode())[:300]
    _same_scores(ours, theirs, tokens)
    token = int(np.argmax(theirs.scores[len(tokens) - 1]))
    for step in range(6):
        for llm in (ours, theirs):
            llm.eval([token])
        row = theirs.n_tokens - 1
        a, b = np.asarray(ours.scores[row]), np.asarray(theirs.scores[row])
        assert a.tobytes() == b.tobytes(), step
        token = int(np.argmax(b))
