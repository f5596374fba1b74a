"""Greedy text through `bitnet serve` equals llama-cpp-python's server (`python -m
llama_cpp.server`, llama.cpp 0.3.36) for the same model and settings: SmolLM2, n_ctx 1024,
both servers' defaults (repeat_penalty 1.1, logits_all), temperature 0, completions and chat,
plain and streamed, the same requests sent to both through the official openai client.

Our server runs in llama.cpp's numerics (the engine's default once that is "llama.cpp",
else `--numerics llama.cpp`): the continuations are compared with ==.
Cost: ~30-60 s on 2 loaded cores (two servers, 10 generations each).
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Iterator, List, Tuple

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("llama_cpp")
pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server extra is not installed")
pytest.importorskip("fastapi")

from bitnet import runtime  # noqa: E402
from bitnet_harness.corpora import corpus_path  # noqa: E402

from .server_process import Process, Server, clean_env, free_port  # noqa: E402

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]
N_CTX = "1024"
PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]
CHATS: List[List[Dict[str, str]]] = [
    [{"role": "user", "content": "What is the boiling point of water?"}],
    [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Greet me."}],
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Any, Any]]:
    d = tmp_path_factory.mktemp("server_vs_llamacpp")
    model = str(corpus_path("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    numerics = [] if runtime.DEFAULT_NUMERICS == "llama.cpp" else ["--numerics", "llama.cpp"]
    ours = Server([model, "--n_ctx", N_CTX, *numerics], d / "bitnet.log")
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        N_CTX,
        "--verbose",
        "False",
        "--interrupt_requests",
        "False",
    ]
    peer = Process(cmd, clean_env(), d / "llama_cpp.log", port, ready_path="/v1/models")
    make = lambda s: openai.OpenAI(base_url=s.base + "/v1", api_key="none", max_retries=0, timeout=600)  # noqa: E731
    yield make(ours), make(peer)
    ours.stop()
    peer.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_greedy_completions_equal(servers: Tuple[Any, Any], stream: bool) -> None:
    ours, peer = servers
    for prompt in PROMPTS:
        kw: Dict[str, Any] = dict(model="smol", prompt=prompt, max_tokens=32, temperature=0, stream=stream)
        got = [ours.completions.create(**kw), peer.completions.create(**kw)]
        if stream:
            texts = ["".join(c.choices[0].text for c in g) for g in got]
        else:
            texts = [g.choices[0].text for g in got]
            assert got[0].usage.model_dump() == got[1].usage.model_dump()
        assert texts[0] == texts[1], prompt


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_greedy_chat_equal(servers: Tuple[Any, Any], stream: bool) -> None:
    ours, peer = servers
    for messages in CHATS:
        kw: Dict[str, Any] = dict(
            model="smol", messages=messages, max_tokens=32, temperature=0, stream=stream
        )
        got = [ours.chat.completions.create(**kw), peer.chat.completions.create(**kw)]
        if stream:
            texts = ["".join(c.choices[0].delta.content or "" for c in g if c.choices) for g in got]
        else:
            texts = [g.choices[0].message.content for g in got]
            assert [g.choices[0].finish_reason for g in got] == [got[1].choices[0].finish_reason] * 2
        assert texts[0] == texts[1], messages
