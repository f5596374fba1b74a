"""`bitnet.llama_compat.Llama` side by side with llama-cpp-python's `llama_cpp.Llama`.

Corpora: SmolLM2-135M-Instruct (a real llama-arch model with a GGUF chat template) and the
llama.cpp vocab-only files. Generation is kept short (the numpy engine decodes a token in
~0.3-1 s on this box); prompts, chat renders, tokenization, metadata, signatures and errors
are compared exhaustively since they cost nothing.
"""

from __future__ import annotations

import copy
import inspect
import json
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import jinja2
import numpy as np
import pytest

from bitnet import llama_compat
from bitnet.llama_compat import (
    Llama,
    LlamaRAMCache,
    LlamaState,
    LogitsProcessorList,
    StoppingCriteriaList,
)
from bitnet.llama_compat.llama_chat_format import CHAT_FORMATTERS, Jinja2ChatFormatter
from bitnet_harness.corpora import corpus_path

llama_cpp = pytest.importorskip("llama_cpp")
import llama_cpp.llama_chat_format as ref_chat  # noqa: E402

SMOLLM2 = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
VOCABS = ["gpt-2", "llama-spm", "llama-bpe", "phi-3", "qwen2", "bert-bge", "deepseek-coder",
          "falcon", "command-r", "gemma-4"]

# Near-tie bound for greedy divergence: the reference engine's tests measured the error of
# llama.cpp's top-2 logit margin on this model at p99 0.47 (max 0.55), and every argmax flip
# at margins <= 0.33; a divergence where llama.cpp's margin is below 0.5 is rounding noise.
NEAR_TIE = 0.5


def _smol() -> str:
    return str(corpus_path(SMOLLM2))


@pytest.fixture(scope="module")
def pair() -> Iterator[Tuple[Llama, Any]]:
    """One of each on SmolLM2 (logits_all so that logprobs work and margins can be read)."""
    ours = Llama(_smol(), n_ctx=256, logits_all=True, verbose=False)
    ref = llama_cpp.Llama(_smol(), n_ctx=256, logits_all=True, verbose=False)
    yield ours, ref
    ours.close()
    ref.close()


@pytest.fixture(scope="module")
def vocab_pairs() -> Dict[str, Tuple[Llama, Any]]:
    out = {}
    for name in VOCABS:
        p = str(corpus_path(f"vocab/ggml-vocab-{name}.gguf"))
        out[name] = (Llama(p, vocab_only=True, verbose=False),
                     llama_cpp.Llama(p, vocab_only=True, verbose=False))
    return out


def shape(obj: Any, key: str = "") -> Any:
    """The structure of a result: dict keys, list lengths, value types (not values)."""
    if isinstance(obj, dict):
        if key == "top_logprobs" or key.endswith("top_logprobs[]"):  # token-string keys
            return ("dict", sorted({type(v).__name__ for v in obj.values()}))
        return {k: shape(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [shape(v, key + "[]") for v in obj]
    return type(obj).__name__


# ---------------------------------------------------------------------------------------------
# API surface


PUBLIC_METHODS = [
    "__init__", "tokenize", "detokenize", "set_cache", "set_seed", "reset", "eval", "sample",
    "generate", "create_embedding", "embed", "create_completion", "__call__",
    "create_chat_completion", "create_chat_completion_openai_v1", "save_state", "load_state",
    "n_ctx", "n_embd", "n_vocab", "tokenizer", "token_eos", "token_bos", "token_nl",
    "pooling_type", "close", "logits_to_logprobs", "longest_token_prefix", "from_pretrained",
    "_init_sampler", "_create_completion",
]


def _params(fn: Any) -> List[Tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


# keywords Llama adds to llama-cpp-python's (documented in docs/COMPATIBILITY.md)
EXTRA_INIT_KEYWORDS = ["numerics"]


@pytest.mark.parametrize("name", PUBLIC_METHODS)
def test_signatures_match_llama_cpp_python(name: str) -> None:
    ours = _params(getattr(Llama, name))
    if name == "__init__":
        extras = [p for p in ours if p[0] in EXTRA_INIT_KEYWORDS]
        assert extras == [(k, inspect.Parameter.KEYWORD_ONLY, None) for k in EXTRA_INIT_KEYWORDS]
        ours = [p for p in ours if p[0] not in EXTRA_INIT_KEYWORDS]
    assert ours == _params(getattr(llama_cpp.Llama, name))


@pytest.mark.parametrize("cls", ["LlamaState", "LogitsProcessorList", "StoppingCriteriaList",
                                 "LlamaRAMCache", "LlamaDiskCache", "MinTokensLogitsProcessor"])
def test_helper_classes_match(cls: str) -> None:
    ours = getattr(llama_compat, cls)
    ref = getattr(llama_cpp, cls, None) or getattr(llama_cpp.llama, cls)
    assert _params(ours.__init__) == _params(ref.__init__)
    if "__call__" in vars(ref):
        assert _params(ours.__call__) == _params(ref.__call__)


def test_static_helpers_agree() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 50)).astype(np.float32) * 5
    logits[1, 3] = -np.inf
    np.testing.assert_array_equal(Llama.logits_to_logprobs(logits),
                                  llama_cpp.Llama.logits_to_logprobs(logits))
    for a, b in [([1, 2, 3], [1, 2, 4]), ([], [1]), ([5], [5])]:
        assert Llama.longest_token_prefix(a, b) == llama_cpp.Llama.longest_token_prefix(a, b)


# ---------------------------------------------------------------------------------------------
# vocabulary: tokenize / detokenize / metadata / special ids


def _vocab_cases(name: str) -> List[str]:
    inp = corpus_path(f"vocab/ggml-vocab-{name}.gguf").with_suffix(".gguf.inp")
    cases = inp.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n") if inp.exists() else []
    return cases[:24] + ["", "Hello <s> world</s>", "<|im_start|>user\nhi<|im_end|>",
                         "<|endoftext|>x", "[CLS] a [SEP]", " \u00e9\u4e2d\U0001f600"]


@pytest.mark.parametrize("name", VOCABS)
def test_tokenize_detokenize_identical(vocab_pairs: Dict[str, Tuple[Llama, Any]], name: str) -> None:
    ours, ref = vocab_pairs[name]
    for text in _vocab_cases(name):
        raw = text.encode("utf-8")
        for add_bos in (False, True):
            for special in (False, True):
                ids = ours.tokenize(raw, add_bos=add_bos, special=special)
                assert ids == ref.tokenize(raw, add_bos=add_bos, special=special), (text, add_bos, special)
                for sp in (False, True):
                    assert ours.detokenize(ids, special=sp) == ref.detokenize(ids, special=sp), (text, sp)
    tok = ours.tokenizer()
    assert tok.encode("Hello world") == ref.tokenizer().encode("Hello world")


@pytest.mark.parametrize("name", VOCABS)
def test_vocab_only_facts_and_metadata(vocab_pairs: Dict[str, Tuple[Llama, Any]], name: str) -> None:
    ours, ref = vocab_pairs[name]
    assert ours.metadata == ref.metadata
    for fn in ("n_vocab", "token_bos", "token_eos", "token_nl", "n_ctx"):
        assert getattr(ours, fn)() == getattr(ref, fn)(), fn
    assert ours.chat_format == ref.chat_format
    assert ours.n_batch == ref.n_batch


def test_smollm2_facts(pair: Tuple[Llama, Any]) -> None:
    ours, ref = pair
    assert ours.metadata == ref.metadata
    for fn in ("n_vocab", "n_embd", "n_ctx", "token_bos", "token_eos", "token_nl", "pooling_type"):
        assert getattr(ours, fn)() == getattr(ref, fn)(), fn
    assert ours.chat_format == ref.chat_format == "chat_template.default"
    assert ours.scores.shape == ref.scores.shape and ours.input_ids.shape == ref.input_ids.shape


@pytest.mark.parametrize("n_ctx,n_batch", [(0, 512), (100, 512), (512, 64), (300, 1000)])
def test_context_sizes(n_ctx: int, n_batch: int) -> None:
    ours = Llama(_smol(), n_ctx=n_ctx, n_batch=n_batch, vocab_only=True, verbose=False)
    ref = llama_cpp.Llama(_smol(), n_ctx=n_ctx, n_batch=n_batch, verbose=False)
    assert (ours.n_ctx(), ours.n_batch, ours.context_params.n_ctx) == (
        ref.n_ctx(), ref.n_batch, ref.context_params.n_ctx)


# ---------------------------------------------------------------------------------------------
# errors


def test_missing_model_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.gguf")
    with pytest.raises(ValueError) as ours:
        Llama(missing, verbose=False)
    with pytest.raises(ValueError) as ref:
        llama_cpp.Llama(missing, verbose=False)
    assert str(ours.value) == str(ref.value)


def test_vocab_file_without_weights_fails_to_load() -> None:
    p = str(corpus_path("vocab/ggml-vocab-gpt-2.gguf"))
    with pytest.raises(ValueError) as ref:
        llama_cpp.Llama(p, verbose=False)
    with pytest.raises(ValueError) as ours:
        Llama(p, verbose=False)
    assert str(ours.value).startswith(str(ref.value))


def test_logprobs_and_embed_errors(vocab_pairs: Dict[str, Tuple[Llama, Any]]) -> None:
    ours, ref = vocab_pairs["gpt-2"]  # logits_all=False, embedding=False
    for llm in (ours, ref):
        with pytest.raises(ValueError, match="logprobs is not supported for models created with "
                                             "logits_all=False"):
            llm.create_completion("Hello", max_tokens=1, logprobs=1)
        with pytest.raises(RuntimeError, match="must be created with embedding=True"):
            llm.embed("Hello")


def test_context_overflow_message(pair: Tuple[Llama, Any]) -> None:
    ours, ref = pair
    prompt = "hello " * 300
    with pytest.raises(ValueError) as a:
        ours(prompt, max_tokens=1)
    with pytest.raises(ValueError) as b:
        ref(prompt, max_tokens=1)
    assert str(a.value) == str(b.value)
    assert str(a.value).startswith("Requested tokens (301) exceed context window of 256")


def test_exceptions_have_llama_cpp_pythons_builtin_types(pair: Tuple[Llama, Any]) -> None:
    """eval past the context: llama-cpp-python raises RuntimeError ("llama_decode returned 1");
    ours is a RuntimeError and a ValueError, raised before anything is evaluated. Generating
    with a vocab-only model: AssertionError in both ("Memory is not initialized")."""
    ours, ref = pair
    for llm in pair:
        llm.reset()
        with pytest.raises(RuntimeError):
            llm.eval(list(range(1000, 1300)))  # 300 tokens > n_ctx 256
        llm.reset()
    with pytest.raises(ValueError, match=r"Requested tokens \(300\) exceed context window of 256"):
        ours.eval(list(range(1000, 1300)))
    assert ours.n_tokens == 0
    path = str(corpus_path("vocab/ggml-vocab-llama-spm.gguf"))
    vocab_only = (Llama(path, vocab_only=True, verbose=False),
                  llama_cpp.Llama(path, vocab_only=True, verbose=False))
    for llm in vocab_only:
        assert llm._ctx.ctx is not None and llm._is_recurrent is False and llm._is_hybrid is False
        with pytest.raises(AssertionError):
            llm("Hello", max_tokens=2)
        with pytest.raises(AssertionError):
            llm.eval([1, 2])
    with pytest.raises(RuntimeError, match="Memory is not initialized"):
        vocab_only[0].create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=1)


def test_grammar_errors_and_schema_fallback(pair: Tuple[Llama, Any]) -> None:
    """grammar= that is not a LlamaGrammar fails with llama-cpp-python's builtin type; a
    response_format schema its converter refuses ({"not": ...}) falls back to plain JSON
    (JSON_GBNF) there and here, and the replies agree token for token up to a near tie among
    the tokens the grammar allows."""
    from bitnet.llama_compat.llama_chat_format import _grammar_for_response_format

    for llm in pair:
        with pytest.raises(AttributeError):
            llm("Hi", max_tokens=1, grammar=object())
    fmt = {"type": "json_object", "schema": {"not": {"type": "string"}}}
    assert _grammar_for_response_format(fmt)._grammar == ref_chat._grammar_for_response_format(fmt)._grammar
    assert _grammar_for_response_format(fmt)._grammar == ref_chat.llama_grammar.JSON_GBNF
    msgs = [{"role": "user", "content": "Give me a JSON object with one key."}]
    a, b = (llm.create_chat_completion(msgs, response_format=fmt, max_tokens=12, temperature=0)
            for llm in pair)
    ta, tb = (list(llm.input_ids[: llm.n_tokens]) for llm in pair)
    assert a["choices"][0]["message"]["content"].startswith("{")
    if ta != tb:
        at = Llama.longest_token_prefix(ta, tb)
        n_prompt = a["usage"]["prompt_tokens"]
        assert at > n_prompt
        # measured: they split after 9 generated tokens inside a string, where llama.cpp's two
        # best allowed tokens are 0.083 apart (ours 0.031): rounding noise, not the grammar
        assert _allowed_margin(pair[0], _grammar_for_response_format(fmt), tb[n_prompt:at],
                               pair[1].scores[at - 1]) < NEAR_TIE


def _allowed_margin(llm: Llama, grammar: Any, generated: List[int], row: np.ndarray) -> float:
    """Top-2 margin of `row` among the tokens `grammar` allows after `generated`."""
    from bitnet.constraints.grammar_constraint import GrammarConstraint

    state = GrammarConstraint(grammar.compile(llm._grammar_vocab(), llm._special_token_ids),
                              llm._grammar_vocab())
    for t in generated:
        state.accept(t)
    allowed = ~state.reject(np.arange(row.shape[0]))
    return _margin(row[allowed])


# ---------------------------------------------------------------------------------------------
# chat prompts


CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"}],
    [{"role": "user", "content": "Ünïcödé 中文 \U0001f600"}, {"role": "assistant", "content": "ok"},
     {"role": "user", "content": "again"}],
]


@pytest.mark.parametrize("fmt", sorted(CHAT_FORMATTERS))
def test_builtin_chat_formats_render_identically(pair: Tuple[Llama, Any], fmt: str) -> None:
    ours, ref = pair
    ref_formatter = getattr(ref_chat, _FORMAT_FUNCS[fmt])
    for messages in CONVERSATIONS:
        a = CHAT_FORMATTERS[fmt](messages=messages)
        b = ref_formatter(messages=messages)
        assert (a.prompt, a.stop, a.added_special) == (b.prompt, b.stop, b.added_special)
        ids_a = ours.tokenize(a.prompt.encode("utf-8"), add_bos=True, special=True)
        assert ids_a == ref.tokenize(b.prompt.encode("utf-8"), add_bos=True, special=True)


_FORMAT_FUNCS = {
    "llama-2": "format_llama2", "llama-3": "format_llama3", "alpaca": "format_alpaca",
    "qwen": "format_qwen", "vicuna": "format", "oasst_llama": "format_oasst_llama",
    "baichuan-2": "format_baichuan2", "baichuan": "format_baichuan", "openbuddy": "format_openbuddy",
    "redpajama-incite": "format_redpajama_incite", "snoozy": "format_snoozy", "phind": "format_phind",
    "intel": "format_intel", "open-orca": "format_open_orca", "mistrallite": "format_mistrallite",
    "zephyr": "format_zephyr", "pygmalion": "format_pygmalion", "chatml": "format_chatml",
    "mistral-instruct": "format_mistral_instruct", "chatglm3": "format_chatglm3",
    "openchat": "format_openchat", "saiga": "format_saiga", "gemma": "format_gemma",
}


def test_every_builtin_format_is_covered() -> None:
    assert set(CHAT_FORMATTERS) == set(_FORMAT_FUNCS)
    registered = set(ref_chat.LlamaChatCompletionHandlerRegistry()._chat_handlers)
    assert set(_FORMAT_FUNCS) <= registered


@pytest.mark.parametrize("conv", range(len(CONVERSATIONS)))
def test_gguf_template_renders_token_identical(pair: Tuple[Llama, Any], conv: int) -> None:
    ours, ref = pair
    messages = CONVERSATIONS[conv]
    ids, result = ours.render_chat_prompt(messages)
    eos, bos = ref.token_eos(), ref.token_bos()
    formatter = ref_chat.Jinja2ChatFormatter(
        template=ref.metadata["tokenizer.chat_template"],
        eos_token=ref._model.token_get_text(eos), bos_token=ref._model.token_get_text(bos),
        stop_token_ids=[eos])
    b = formatter(messages=messages)  # type: ignore[arg-type]
    assert result.prompt == b.prompt and result.stop == b.stop
    assert ids == ref.tokenize(b.prompt.encode("utf-8"), add_bos=not b.added_special, special=True)


CVE_2024_34359 = (
    "{% for x in ().__class__.__base__.__subclasses__() %}{% if \"warning\" in x.__name__ %}"
    "{{x()._module.__builtins__['__import__']('os').popen(\"touch {MARK}\")}}{%endif%}{% endfor %}"
)


def test_chat_template_injection_is_sandboxed(tmp_path: Path) -> None:
    """The llama-cpp-python CVE-2024-34359 payload, shipped in a GGUF's chat template."""
    from bitnet.gguf import load
    from bitnet.gguf.writer import write_repaired_copy

    mark = tmp_path / "pwned"
    template = CVE_2024_34359.replace("{MARK}", str(mark))
    src = load(corpus_path("vocab/ggml-vocab-gpt-2.gguf"))
    evil = tmp_path / "evil.gguf"
    write_repaired_copy(src, evil, kv={**src.kv, "tokenizer.chat_template": template})
    llm = Llama(str(evil), vocab_only=True, verbose=False)
    assert llm.chat_format == "chat_template.default"
    with pytest.raises(jinja2.exceptions.SecurityError):
        llm.render_chat_prompt([{"role": "user", "content": "hi"}])
    with pytest.raises(jinja2.exceptions.SecurityError):
        llm.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=1)
    with pytest.raises(jinja2.exceptions.SecurityError):
        Jinja2ChatFormatter(template, "</s>", "<s>")(messages=[])
    assert not mark.exists()


# ---------------------------------------------------------------------------------------------
# generation


PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time", "Q: What is 2+2?\nA:",
           "import numpy as np\n",
           "<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n"]  # special tokens
N_GREEDY = 8


def _generated_ids(llm: Any, n_prompt: int, text: str) -> List[int]:
    return [int(t) for t in llm.input_ids[n_prompt: llm.n_tokens]]


def _margin(row: np.ndarray) -> float:
    top2 = np.sort(row)[-2:]
    return float(top2[1] - top2[0])


@pytest.fixture(scope="module")
def greedy(pair: Tuple[Llama, Any]) -> List[Tuple[str, Dict[str, Any], Dict[str, Any], float]]:
    """(prompt, ours, ref, llama.cpp's margin at the first divergence or inf)."""
    ours, ref = pair
    out = []
    for prompt in PROMPTS:
        a = ours(prompt, max_tokens=N_GREEDY, temperature=0)
        b = ref(prompt, max_tokens=N_GREEDY, temperature=0)
        n_prompt = a["usage"]["prompt_tokens"]
        ia = [int(t) for t in ours.input_ids[: ours.n_tokens]]
        ib = [int(t) for t in ref.input_ids[: ref.n_tokens]]
        margin = float("inf")
        if a["choices"][0]["text"] != b["choices"][0]["text"]:
            at = Llama.longest_token_prefix(ia, ib)
            at = max(at, n_prompt)  # first generated position that differs (or the last one)
            margin = _margin(ref.scores[at - 1])
        out.append((prompt, a, b, margin))
    return out


def test_greedy_completions_agree_up_to_near_ties(greedy: List[Any]) -> None:
    # Measured here: 4 of 6 prompts identical over 8 tokens (one ends early on EOS); "The
    # capital of France is" splits after 5 tokens at a llama.cpp top-2 margin of 0.33, the
    # chat-style prompt after 0 tokens at a margin of 0.025 (see NEAR_TIE).
    for prompt, a, b, margin in greedy:
        assert a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"], prompt
        assert margin == float("inf") or margin < NEAR_TIE, (prompt, a["choices"][0]["text"],
                                                              b["choices"][0]["text"], margin)
    identical = sum(m == float("inf") for *_, m in greedy)
    assert identical >= 3, f"only {identical} of {len(greedy)} greedy completions match llama.cpp"


def test_completion_dict_structure(greedy: List[Any]) -> None:
    for prompt, a, b, margin in greedy:
        assert shape(a) == shape(b)
        assert a["object"] == "text_completion" and a["id"].startswith("cmpl-")
        if margin == float("inf"):
            assert a["choices"][0]["finish_reason"] == b["choices"][0]["finish_reason"]
            assert a["usage"] == b["usage"], prompt


def test_stream_chunks_match(pair: Tuple[Llama, Any]) -> None:
    ours, ref = pair
    kw: Dict[str, Any] = dict(max_tokens=6, temperature=0, stream=True, stop=["if n"])
    a = list(ours("def fibonacci(n):", **kw))
    b = list(ref("def fibonacci(n):", **kw))
    assert [shape(c) for c in a] == [shape(c) for c in b]
    assert [c["choices"][0]["text"] for c in a] == [c["choices"][0]["text"] for c in b]
    assert a[-1]["choices"][0]["finish_reason"] == b[-1]["choices"][0]["finish_reason"] == "stop"
    # the non-streamed text equals the streamed pieces joined (stop string held back)
    full = ours("def fibonacci(n):", max_tokens=6, temperature=0, stop=["if n"])
    assert "".join(c["choices"][0]["text"] for c in a) == full["choices"][0]["text"]


def test_logprobs_structure(pair: Tuple[Llama, Any]) -> None:
    ours, ref = pair
    for kw in (dict(echo=True), dict(echo=False), dict(stream=True)):
        a = ours("Hi", max_tokens=2, temperature=0, logprobs=2, **kw)
        b = ref("Hi", max_tokens=2, temperature=0, logprobs=2, **kw)
        if kw.get("stream"):
            a, b = list(a), list(b)
        assert shape(a) == shape(b), kw


def test_chat_completion_structure(pair: Tuple[Llama, Any]) -> None:
    ours, ref = pair
    msgs = CONVERSATIONS[0]
    a = ours.create_chat_completion(msgs, max_tokens=3, temperature=0)
    b = ref.create_chat_completion(msgs, max_tokens=3, temperature=0)
    assert shape(a) == shape(b) and a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]
    assert a["object"] == "chat.completion" and a["id"].startswith("chatcmpl-")
    sa = list(ours.create_chat_completion(msgs, max_tokens=3, temperature=0, stream=True))
    sb = list(ref.create_chat_completion(msgs, max_tokens=3, temperature=0, stream=True))
    assert [shape(c) for c in sa] == [shape(c) for c in sb]
    assert sa[0]["choices"][0]["delta"] == {"role": "assistant"} and sa[-1]["choices"][0]["delta"] == {}
    la = ours.create_chat_completion(msgs, max_tokens=2, temperature=0, logprobs=True, top_logprobs=2)
    lb = ref.create_chat_completion(msgs, max_tokens=2, temperature=0, logprobs=True, top_logprobs=2)
    assert shape(la) == shape(lb)


def test_generate_send_and_processors(pair: Tuple[Llama, Any]) -> None:
    ours, _ = pair
    tokens = ours.tokenize(b"One, two, three,", add_bos=False)
    banned: List[int] = []

    def ban(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if banned:
            scores[banned] = -np.inf
        return scores

    gen = ours.generate(tokens, temp=0, logits_processor=LogitsProcessorList([ban]))
    first = next(gen)
    banned.append(first)
    second = gen.send([first])  # `send` feeds extra tokens to evaluate before sampling
    gen.close()
    assert second != first
    stop = StoppingCriteriaList([lambda ids, logits: len(ids) >= len(tokens) + 2])
    got = list(ours.generate(tokens, temp=0, stopping_criteria=stop))
    assert len(got) == 2


def test_logit_bias_forces_token(pair: Tuple[Llama, Any]) -> None:
    ours, _ = pair
    target = ours.tokenize(b" banana", add_bos=False)[0]
    out = ours("I like", max_tokens=1, temperature=0, logit_bias={target: 100.0})
    assert out["choices"][0]["text"] == " banana"


def test_seeded_sampling_is_reproducible(pair: Tuple[Llama, Any]) -> None:
    ours, _ = pair
    a = ours("Colors:", max_tokens=3, temperature=1.0, seed=1234)
    b = ours("Colors:", max_tokens=3, temperature=1.0, seed=1234)
    assert a["choices"][0]["text"] == b["choices"][0]["text"]


def test_save_load_state_and_cache(pair: Tuple[Llama, Any]) -> None:
    ours, _ = pair
    ours("Paris is", max_tokens=1, temperature=0)
    state = ours.save_state()
    assert isinstance(state, LlamaState) and state.n_tokens == ours.n_tokens
    before = ours.sample(temp=0)
    ours.reset()
    ours.eval(ours.tokenize(b"Unrelated", add_bos=False))
    ours.load_state(state)
    assert ours.n_tokens == state.n_tokens and ours.sample(temp=0) == before
    cache = LlamaRAMCache()
    ours.set_cache(cache)
    try:
        x = ours("Paris is", max_tokens=2, temperature=0)
        ours.reset()
        y = ours("Paris is", max_tokens=2, temperature=0)  # restored from the cache
        assert x["choices"][0]["text"] == y["choices"][0]["text"] and cache.cache_size > 0
    finally:
        ours.set_cache(None)


def test_threads_share_one_instance(pair: Tuple[Llama, Any]) -> None:
    ours, _ = pair
    expected = ours("Rome is", max_tokens=2, temperature=0)["choices"][0]["text"]
    results: List[str] = []
    errors: List[BaseException] = []

    def work() -> None:
        try:
            results.append(ours("Rome is", max_tokens=2, temperature=0)["choices"][0]["text"])
            assert ours.detokenize(ours.tokenize(b"Rome")) == b"Rome"
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [expected] * 3


def test_embeddings_match(tmp_path: Path) -> None:
    ours = Llama(_smol(), n_ctx=256, embedding=True, verbose=False)
    ref = llama_cpp.Llama(_smol(), n_ctx=256, embedding=True, verbose=False)
    a, b = ours.embed("Hello world"), ref.embed("Hello world")
    assert np.asarray(a).shape == np.asarray(b).shape  # pooling NONE: one vector per token
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    nmse = float(np.sum((x - y) ** 2) / np.sum(y ** 2))
    # measured NMSE of the per-token hidden states vs llama.cpp: 6.5e-4 ("Hello world"),
    # 2.6e-3 (a 10-token sentence) — the engine's logit agreement level (mean ~2e-3); 1e-2
    # leaves ~4x headroom
    assert nmse < 1e-2, nmse
    ca = ours.create_embedding(["Hi", "there"])
    cb = ref.create_embedding(["Hi", "there"])
    assert shape(ca) == shape(cb) and ca["usage"] == cb["usage"]
    na = np.asarray(ours.embed("Hi", normalize=True)[0])
    assert abs(float(np.linalg.norm(na)) - 1.0) < 1e-6
    with Llama(_smol(), vocab_only=True, verbose=False) as llm:
        assert llm.n_vocab() == ours.n_vocab()


def test_from_pretrained_local_dir(tmp_path: Path) -> None:
    target = tmp_path / "repo" / "sub"
    target.mkdir(parents=True)
    (target / "tok.gguf").write_bytes(corpus_path("vocab/ggml-vocab-gpt-2.gguf").read_bytes())
    llm = Llama.from_pretrained(str(tmp_path / "repo"), "*.gguf", vocab_only=True, verbose=False)
    assert llm.n_vocab() == 50257
    with pytest.raises(ValueError, match="No file found"):
        Llama.from_pretrained(str(tmp_path / "repo"), "*.bin", vocab_only=True, verbose=False)


def test_pickle_state_roundtrip_kwargs() -> None:
    llm = Llama(str(corpus_path("vocab/ggml-vocab-gpt-2.gguf")), vocab_only=True, verbose=False,
                n_ctx=300, seed=7, unknown_kwarg=1)
    state = llm.__getstate__()
    assert json.loads(json.dumps({k: v for k, v in state.items() if k != "chat_handler"}))
    assert state["n_ctx"] == 300 and state["seed"] == 7


def test_backend_selector(monkeypatch: pytest.MonkeyPatch) -> None:
    from bitnet.ops import NumpyBackend

    monkeypatch.setenv("BITNET_BACKEND", "reference")
    llm = Llama(_smol(), n_ctx=256, verbose=False)
    assert isinstance(llm.model.backend, NumpyBackend)


def test_stream_never_splits_utf8(pair: Tuple[Llama, Any]) -> None:
    # SmolLM2 spells each emoji here with 2-3 byte-level tokens (measured with llama.cpp:
    # the greedy continuation is more emoji, most of its pieces partial UTF-8 sequences)
    ours, ref = pair
    prompt = "Emoji: \U0001f600\U0001f600\U0001f600"
    chunks = [c["choices"][0]["text"] for c in ours(prompt, max_tokens=6, temperature=0, stream=True)]
    full = ours(prompt, max_tokens=6, temperature=0)["choices"][0]["text"]
    assert "".join(chunks) == full and chunks[-1] == ""
    assert len(chunks) - 1 < 6, chunks  # pieces of one character were held back and joined
    assert all("\ufffd" not in c for c in chunks)
    ref_chunks = [c["choices"][0]["text"] for c in ref(prompt, max_tokens=6, temperature=0, stream=True)]
    if full == ref(prompt, max_tokens=6, temperature=0)["choices"][0]["text"]:
        assert chunks == ref_chunks


def test_empty_prompt_without_bos(pair: Tuple[Llama, Any]) -> None:
    # SmolLM2 has add_bos_token=false: no prompt token to sample after; llama-cpp-python
    # trips `assert self.n_tokens > 0` in sample(), and so does this port
    for llm in pair:
        with pytest.raises(AssertionError):
            llm.create_completion("", max_tokens=2, temperature=0)


@pytest.mark.parametrize("kw", [dict(prompt="Hi", suffix=" there"),
                                dict(prompt="Hi", echo=True), dict(prompt="Hi", stop=["-"]),
                                dict(prompt="Hi", stop="-", stream=True)],
                         ids=["suffix", "echo", "stop-list", "stop-str-stream"])
def test_prompt_assembly_and_stops(pair: Tuple[Llama, Any], kw: Dict[str, Any]) -> None:
    """Prompt tokens (BOS/FIM quirks included), echo and stop handling as llama-cpp-python."""
    ours, ref = pair
    a = ours.create_completion(max_tokens=2, temperature=0, **kw)
    b = ref.create_completion(max_tokens=2, temperature=0, **kw)
    if kw.get("stream"):
        a, b = list(a), list(b)
        assert [shape(c) for c in a] == [shape(c) for c in b]
        return
    assert shape(a) == shape(b)
    assert a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]
    ta, tb = a["choices"][0]["text"], b["choices"][0]["text"]
    if ta == tb:
        assert a["usage"] == b["usage"]
        assert a["choices"][0]["finish_reason"] == b["choices"][0]["finish_reason"]
    if kw.get("echo"):
        assert ta.startswith(kw["prompt"])


def test_eval_and_sample_low_level(pair: Tuple[Llama, Any]) -> None:
    ours, ref = pair
    tokens = ours.tokenize(b"The capital of France is", add_bos=False)
    for llm in (ours, ref):
        llm.reset()
        llm.eval(tokens)
        assert llm.n_tokens == len(tokens) and list(llm.input_ids[: llm.n_tokens]) == tokens
    a, b = ours.sample(temp=0), ref.sample(temp=0)
    assert a == b or _margin(ref.scores[len(tokens) - 1]) < NEAR_TIE
    np.testing.assert_array_equal(ours._input_ids, ref._input_ids)
    assert ours.eval_tokens == ref.eval_tokens


def test_logit_bias_with_logits_processor(pair: Tuple[Llama, Any]) -> None:
    # divergence on purpose: llama-cpp-python drops both (list.extend returns None)
    ours, _ = pair
    target = ours.tokenize(b" banana", add_bos=False)[0]
    seen: List[int] = []

    def spy(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        seen.append(len(input_ids))
        return scores

    out = ours("I like", max_tokens=1, temperature=0, logit_bias={target: 100.0},
               logits_processor=LogitsProcessorList([spy]))
    assert out["choices"][0]["text"] == " banana" and seen


def test_tokenizer_override_and_pickle(tmp_path: Path) -> None:
    import pickle

    p = str(corpus_path("vocab/ggml-vocab-gpt-2.gguf"))
    base = Llama(p, vocab_only=True, verbose=False)

    class Upper:
        def tokenize(self, text: bytes, add_bos: bool = True, special: bool = True) -> List[int]:
            return base.tokenize(text.upper(), add_bos, special)

        def detokenize(self, tokens: List[int], prev_tokens: Any = None, special: bool = False) -> bytes:
            return base.detokenize(tokens, special=special)

    llm = Llama(p, vocab_only=True, verbose=False, tokenizer=Upper())
    assert llm.detokenize(llm.tokenize(b"abc")) == b"ABC"
    clone = pickle.loads(pickle.dumps(base))
    assert clone.tokenize(b"hello") == base.tokenize(b"hello")


def test_disk_cache_roundtrip(pair: Tuple[Llama, Any], tmp_path: Path) -> None:
    from bitnet.llama_compat import LlamaDiskCache

    ours, _ = pair
    cache = LlamaDiskCache(str(tmp_path / "cache"))
    ours.set_cache(cache)
    try:
        x = ours("Berlin is", max_tokens=1, temperature=0)
        key = ours.tokenize(b"Berlin is", add_bos=False)
        assert key in cache and cache.cache_size > 0
        ours.reset()
        y = ours("Berlin is", max_tokens=1, temperature=0)
        assert x["choices"][0]["text"] == y["choices"][0]["text"]
    finally:
        ours.set_cache(None)


# ---------------------------------------------------------------------------------------------
# function calling and JSON schemas, side by side (llama-cpp-python constrains with GBNF
# grammars; here the same languages come from bitnet.constraints: see its docstrings)

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add numbers",
        "parameters": {"type": "object", "properties": {
            "a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}},
]
WEATHER = [{"role": "system", "content": "You are a helpful assistant."},
           {"role": "user", "content": "What is the weather in Paris? Answer in celsius."}]


def _force(name: str) -> Dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


@pytest.fixture(scope="module")
def fc_pair() -> Iterator[Tuple[Llama, Any]]:
    """SmolLM2 with room for the tool prompts (~280 tokens)."""
    ours = Llama(_smol(), n_ctx=512, logits_all=True, verbose=False)
    ref = llama_cpp.Llama(_smol(), n_ctx=512, logits_all=True, verbose=False)
    yield ours, ref
    ours.close()
    ref.close()


def _both(fc_pair: Tuple[Llama, Any], fmt: str, **kw: Any) -> Tuple[Any, Any, List[List[int]]]:
    """(ours, ref, [our tokens, ref tokens] of the last evaluation) for the same call; each
    gets its own copy of the messages (functionary renames function messages in place)."""
    out, tokens = [], []
    for llm in fc_pair:
        llm.chat_format = fmt
        try:
            r = llm.create_chat_completion(copy.deepcopy(WEATHER), temperature=0,
                                           **{"max_tokens": 32, **kw})
            if kw.get("stream"):
                r = list(r)
        except Exception as e:  # noqa: BLE001 (errors are compared)
            r = (type(e), str(e))
        out.append(r)
        tokens.append([int(t) for t in llm.input_ids[: llm.n_tokens]])
    return out[0], out[1], tokens


def _call_ids_match(a: Dict[str, Any], b: Dict[str, Any]) -> None:
    """Tool-call ids: same format, each embedding its own completion id."""
    for ca, cb in zip(a["choices"][0]["message"]["tool_calls"], b["choices"][0]["message"]["tool_calls"]):
        pa, pb = ca["id"].rsplit("_cmpl-", 1)[0], cb["id"].rsplit("_cmpl-", 1)[0]
        assert pa == pb and ca["id"] != cb["id"]


@pytest.mark.parametrize("fmt, tool", [("chat_template.default", "get_weather"),
                                       ("chatml-function-calling", "get_weather"),
                                       ("functionary", "add")])
def test_forced_tool_call_identical(fc_pair: Tuple[Llama, Any], fmt: str, tool: str) -> None:
    """A named tool_choice: same prompt tokens, same dict, same arguments (constrained by the
    tool's schema; measured identical token for token with SmolLM2 at temperature 0)."""
    a, b, (ta, tb) = _both(fc_pair, fmt, tools=TOOLS, tool_choice=_force(tool))
    assert shape(a) == shape(b)
    assert ta == tb  # prompt and generated tokens
    ma, mb = a["choices"][0]["message"], b["choices"][0]["message"]
    assert a["choices"][0]["finish_reason"] == b["choices"][0]["finish_reason"] == "tool_calls"
    assert ma["tool_calls"][0]["function"] == mb["tool_calls"][0]["function"]
    assert ma["function_call"] == mb["function_call"] and a["usage"] == b["usage"]
    if fmt == "functionary":
        assert ma["tool_calls"][0]["id"] == mb["tool_calls"][0]["id"] == tool
    else:
        _call_ids_match(a, b)
    assert isinstance(json.loads(ma["tool_calls"][0]["function"]["arguments"]), dict)


def test_legacy_functions_and_stream(fc_pair: Tuple[Llama, Any]) -> None:
    functions = [t["function"] for t in TOOLS]
    a, b, (ta, tb) = _both(fc_pair, "chat_template.default", functions=functions,
                           function_call={"name": "add"})
    assert shape(a) == shape(b) and ta == tb
    assert a["choices"][0]["message"]["function_call"] == b["choices"][0]["message"]["function_call"]
    a, b, (ta, tb) = _both(fc_pair, "chatml-function-calling", tools=TOOLS, tool_choice=_force("add"),
                           stream=True)
    assert [shape(c) for c in a] == [shape(c) for c in b] and ta == tb
    assert a[-1]["choices"][0]["finish_reason"] == "tool_calls"
    text = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in a[1:-1])
    assert text == "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                           for c in b[1:-1])


def test_chatml_function_calling_auto(fc_pair: Tuple[Llama, Any]) -> None:
    """Automatic choice: the function name constrained to the tools' names (greedy), then the
    arguments, then "another call or <|im_end|>": same calls, same quirks (the legacy
    "function_call" name is the follow-up's text), same usage."""
    a, b, (ta, tb) = _both(fc_pair, "chatml-function-calling", tools=TOOLS, tool_choice="auto")
    assert shape(a) == shape(b) and ta == tb
    ma, mb = a["choices"][0]["message"], b["choices"][0]["message"]
    assert [c["function"] for c in ma["tool_calls"]] == [c["function"] for c in mb["tool_calls"]]
    assert ma.get("function_call") == mb.get("function_call") and a["usage"] == b["usage"]
    _call_ids_match(a, b)
    # no tools: a plain ChatML chat (measured identical)
    a, b, (ta, tb) = _both(fc_pair, "chatml-function-calling")
    assert shape(a) == shape(b) and ta == tb and a["choices"][0]["message"] == b["choices"][0]["message"]


@pytest.mark.parametrize("fmt, kw", [
    ("chatml-function-calling", dict(tools=TOOLS, tool_choice="auto", stream=True)),
    ("chatml-function-calling", dict(tools=TOOLS, tool_choice=_force("nope"))),
    ("chat_template.default", dict(tools=TOOLS, tool_choice=_force("nope"))),
    ("functionary", dict(tools=TOOLS, tool_choice=_force("add"), stream=True)),
    ("functionary-v2", dict(tools=TOOLS)),
    ("functionary-v1", dict()),
])
def test_function_calling_errors_match(fc_pair: Tuple[Llama, Any], fmt: str, kw: Dict[str, Any]) -> None:
    a, b, _ = _both(fc_pair, fmt, max_tokens=4, **kw)
    assert isinstance(a, tuple) and a == b


def test_functionary_plain_chat(fc_pair: Tuple[Llama, Any]) -> None:
    """functionary without functions: the same prompt; greedy text equal up to a near tie."""
    a, b, (ta, tb) = _both(fc_pair, "functionary")
    n = a["usage"]["prompt_tokens"]
    assert shape(a) == shape(b) and n == b["usage"]["prompt_tokens"] and ta[:n] == tb[:n]
    if ta != tb:
        at = Llama.longest_token_prefix(ta, tb)
        # measured: the texts split after 19 generated tokens, llama.cpp top-2 margin 0.018
        assert _margin(fc_pair[1].scores[at - 1]) < NEAR_TIE


SCHEMAS = [
    {"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
     "required": ["name", "age"]},
    {"type": "object", "properties": {
        "answer": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "mood": {"enum": ["happy", "sad"]}}, "required": ["answer", "mood"]},
]


@pytest.mark.parametrize("schema", range(len(SCHEMAS)))
def test_response_format_schema_identical(fc_pair: Tuple[Llama, Any], schema: int) -> None:
    """response_format with a schema: llama-cpp-python's json_schema_to_gbnf language (one
    optional space, keys in order) and ours agree token for token here (measured)."""
    fmt = {"type": "json_object", "schema": SCHEMAS[schema]}
    a, b, (ta, tb) = _both(fc_pair, "chat_template.default", response_format=fmt)
    assert shape(a) == shape(b) and ta == tb
    assert a["choices"][0]["message"] == b["choices"][0]["message"]


def test_response_format_json_object_up_to_near_ties(fc_pair: Tuple[Llama, Any]) -> None:
    """Plain json_object (llama-cpp-python: JSON_GBNF): the same tokens until a near tie."""
    a, b, (ta, tb) = _both(fc_pair, "chat_template.default", response_format={"type": "json_object"})
    assert shape(a) == shape(b) and a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]
    if ta != tb:
        at = Llama.longest_token_prefix(ta, tb)
        # measured: they split after 13 generated tokens inside a key, llama.cpp's top-2
        # margin there 0.36 (ours 0.008): rounding noise, not the grammar
        assert at > a["usage"]["prompt_tokens"] and _margin(fc_pair[1].scores[at - 1]) < NEAR_TIE
    assert a["choices"][0]["message"]["content"].startswith("{")


def test_hf_tokenizer_from_a_local_directory(tmp_path: Path) -> None:
    """LlamaHFTokenizer over a Hugging Face tokenizer saved locally (transformers reads
    SmolLM2's tokenizer out of the GGUF file): the same ids and bytes as llama-cpp-python's
    LlamaHFTokenizer wrapping the same tokenizer, used by Llama(tokenizer=...); a hub id is a
    ValueError (no downloads)."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")  # transformers reads GGUF files through torch
    from bitnet.llama_compat.llama_tokenizer import LlamaHFTokenizer

    model = corpus_path(SMOLLM2)
    hf = transformers.AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name)
    hf.save_pretrained(tmp_path)
    ours = LlamaHFTokenizer.from_pretrained(str(tmp_path))
    ref = llama_cpp.llama_tokenizer.LlamaHFTokenizer(ours.hf_tokenizer)
    text = "Hello world, <|im_start|>user\nÜnïcödé 中文".encode()
    for special in (True, False):
        ids = ours.tokenize(text, special=special)
        assert ids == ref.tokenize(text, special=special)
        assert ours.detokenize(ids, special=special) == ref.detokenize(ids, special=special)
        assert ours.detokenize(ids[3:], prev_tokens=ids[:3]) == ref.detokenize(ids[3:], prev_tokens=ids[:3])
    llm = Llama(str(model), vocab_only=True, verbose=False, tokenizer=ours)
    assert llm.tokenize(text) == ours.tokenize(text, add_bos=True, special=False)
    with pytest.raises(ValueError, match="local files only"):
        LlamaHFTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
