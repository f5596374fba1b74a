"""The `bitnet` command's subcommands reach their modules (help, a real quantize run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from bitnet.gguf import parse
from bitnet.tools.cli import DELEGATES
from bitnet_harness.synthetic import synthetic_path


def _bitnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitnet.tools.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("name", sorted(DELEGATES))
def test_subcommand_help_reaches_its_module(name: str) -> None:
    res = _bitnet(name, "--help")
    assert res.returncode == 0, res.stderr
    assert f"usage: bitnet {name}" in res.stdout


def test_quantize_through_the_cli(tmp_path: Path) -> None:
    src = synthetic_path("llama-f16")
    out = tmp_path / "q8.gguf"
    res = _bitnet("quantize", str(src), str(out), "--type", "Q8_0")
    assert res.returncode == 0, res.stderr
    types = {t.type_name for t in parse(out).tensors.values()}
    assert "Q8_0" in types
    again = _bitnet("quantize", str(out), str(out), "--type", "Q8_0")
    assert again.returncode != 0 and "Traceback" not in again.stderr


def test_output_cut_short_by_the_reader_is_not_an_error(tmp_path: Path) -> None:
    """`bitnet inspect FILE | head -1`: exit 0 and nothing on stderr when the pipe closes.
    2000 tensors make ~150 KB of output, more than a pipe holds, so the write really fails."""
    from .gguf_builder import KV, Builder, Tensor

    b = Builder(kvs=[KV("general.architecture", 8, "llama")],
                tensors=[Tensor(f"t{i}.weight", [8], 0, bytes(32)) for i in range(2000)])
    path = tmp_path / "many.gguf"
    path.write_bytes(b.build())
    proc = subprocess.Popen([sys.executable, "-m", "bitnet.tools.cli", "inspect", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert b"GGUF v3" in proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert err == b""


# --- a CLI without surprises --------------------------------------------------------------------

def _run(*argv: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300,
                          env=env)


def test_version_and_python_dash_m_bitnet() -> None:
    import bitnet

    res = _run("-m", "bitnet", "--version")
    assert res.returncode == 0 and res.stdout.strip() == f"bitnet {bitnet.__version__}"
    res = _run("-m", "bitnet_harness.cli", "--version")
    assert res.returncode == 0 and res.stdout.strip() == f"bitnet-compat {bitnet.__version__}"
    res = _run("-m", "bitnet", "--help")
    assert res.returncode == 0 and "inspect" in res.stdout and "quantize" in res.stdout


@pytest.mark.parametrize("command", ["generate", "quantize", "convert", "fix", "inspect"])
def test_help_shows_the_default_of_every_option(command: str) -> None:
    """Every option with a value or a flag says its default (argparse's `(default: ...)`)."""
    import re

    res = _bitnet(command, "--help")
    assert res.returncode == 0, res.stderr
    text = re.split(r"\n(?:options|optional arguments):", res.stdout)[-1]  # (the latter < 3.10)
    options = [line for line in text.split("\n\n")[0].splitlines()
               if line.strip().startswith("-") and not line.strip().startswith("-h")]
    assert options
    for opt in options:
        name = opt.strip().split()[0].rstrip(",")
        block = text[text.index(opt):].split("\n  -")[0]
        assert "(default:" in " ".join(block.split()), (command, name, block)


def test_generate_help_explains_the_samplers() -> None:
    out = " ".join(_bitnet("generate", "--help").stdout.split())
    for opt, words in [("--top-k", "most likely"), ("--top-p", "probability"),
                       ("--min-p", "top token's probability"), ("--repeat-penalty", "penalty"),
                       ("--numerics", "llama.cpp")]:
        assert opt in out and words in out, opt


def test_prompt_longer_than_the_context_is_an_error() -> None:
    from bitnet_harness.corpora import SMOLLM2, corpus_path

    res = _bitnet("generate", str(corpus_path(SMOLLM2)), "a much longer prompt than two tokens",
                  "-c", "2", "-n", "4", "--temp", "0")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "longer than the context (2)" in res.stderr


@pytest.mark.parametrize("numerics", ["reference", "llama.cpp"])
def test_generate_numerics_choice_reaches_the_runtime(numerics: str) -> None:
    """Greedy SmolLM2 continuation in two numerics modes: both produce text (the modes'
    agreement with llama.cpp is asserted in test_peer_numerics / test_llama_compat)."""
    from bitnet_harness.corpora import SMOLLM2, corpus_path

    res = _bitnet("generate", str(corpus_path(SMOLLM2)), "The capital of France is", "-n", "3",
                  "--temp", "0", "--numerics", numerics)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()


def test_quantize_types_listed_once_and_llama_cpp_names() -> None:
    import re

    from bitnet.tools.quantize import TARGET_TYPES, canonical_type

    help_text = " ".join(_bitnet("quantize", "--help").stdout.split())
    for t in TARGET_TYPES:
        assert len(re.findall(rf"(?<![\w-]){t}(?![\w-])", help_text)) == 1, t
        assert not re.search(rf"(?<![\w-]){t.lower()}(?![\w-])", help_text), t
    assert canonical_type("q5_k_s") == "Q5_K" and canonical_type("Q8_0") == "Q8_0"
    res = _bitnet("quantize", "a.gguf", "b.gguf", "--type", "Q4_K_M")
    assert res.returncode == 2 and "per-layer mixture" in res.stderr and "--type Q4_K" in res.stderr
    res = _bitnet("quantize", "a.gguf", "b.gguf", "--type", "IQ2_XS")
    assert res.returncode == 2 and "unsupported quantization type 'IQ2_XS'" in res.stderr


_BLOCK = ("import sys, runpy\n"
          "class Block:\n"
          "    def find_spec(self, name, path=None, target=None):\n"
          "        if name.split('.')[0] in {blocked!r}:\n"
          "            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)\n"
          "sys.meta_path.insert(0, Block())\n"
          "sys.argv = {argv!r}\n"
          "runpy.run_module({module!r}, run_name='__main__')\n")


@pytest.mark.parametrize("module,argv,blocked,extra", [
    ("bitnet", ["bitnet", "serve", "--help"], ["pydantic", "fastapi"], "server"),
    ("bitnet_harness.cli", ["bitnet-compat", "bench", "load"], ["rich", "llama_cpp"], "harness"),
    ("bitnet_harness.cli", ["bitnet-compat", "fuzz", "tokenizers"], ["hypothesis"], "harness"),
    ("bitnet_harness.cli", ["bitnet-compat", "run", "--quick"], ["pytest", "xdist"], "test"),
])
def test_a_missing_extra_is_one_line_naming_it(module: str, argv: List[str], blocked: List[str],
                                               extra: str, tmp_path: Path) -> None:
    """The module is made unimportable in a child process (as in a runtime-only install)."""
    before = set((Path(__file__).parent.parent / "reports").glob("*"))
    res = _run("-c", _BLOCK.format(blocked=set(blocked), argv=argv, module=module))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'bitnet-compat[{extra}]'" in lines[0], res.stderr
    assert set((Path(__file__).parent.parent / "reports").glob("*")) == before  # no empty report


@pytest.mark.parametrize("argv", [["report", "{d}"], ["diff", "{d}", "{d}"],
                                  ["docs", "--run", "{d}", "--output", "{d}/doc.md"]])
def test_harness_commands_without_a_summary_say_so(argv: List[str], tmp_path: Path) -> None:
    res = _run("-m", "bitnet_harness.cli", *[a.format(d=tmp_path) for a in argv])
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "holds no summary.json" in res.stderr


def test_outside_a_checkout_the_harness_says_so(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "BITNET_COMPAT_CHECKOUT"}
    env["BITNET_COMPAT_CHECKOUT"] = str(tmp_path)  # points at no checkout
    res = _run("-m", "bitnet_harness.cli", "run", "--quick", env=env)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "source checkout" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_fetch_and_the_writers_need_no_rich() -> None:
    """`bitnet-compat fetch` (corpora already present: no download) runs without rich, and
    so do the runtime's progress displays."""
    res = _run("-c", _BLOCK.format(blocked={"rich"}, argv=["bitnet-compat", "fetch", "--quiet"],
                                   module="bitnet_harness.cli"))
    assert res.returncode == 0, res.stderr
    assert "corpora up to date" in res.stdout


def test_the_runtime_imports_nothing_of_the_harness_extra() -> None:
    """Every module of bitnet and bitnet_kernels imports with the harness extra's packages
    (rich, gguf, pytest, hypothesis, llama-cpp-python, tiktoken) unimportable, as in
    `pip install bitnet-compat` (the server's modules need only the server extra)."""
    code = ("import importlib, pkgutil, bitnet, bitnet_kernels\n"
            "names = [m.name for p in (bitnet, bitnet_kernels) for m in pkgutil.walk_packages("
            "p.__path__, p.__name__ + '.') if not m.name.endswith('__main__')]\n"
            "for n in names: importlib.import_module(n)\n"
            "print(len(names))\n")
    blocked = {"rich", "gguf", "pytest", "hypothesis", "llama_cpp", "tiktoken", "_pytest", "xdist"}
    res = _run("-c", _BLOCK.format(blocked=blocked, argv=["x"], module="runpy").replace(
        "runpy.run_module('runpy', run_name='__main__')\n", code))
    assert res.returncode == 0, res.stderr[-3000:]
    assert int(res.stdout.split()[-1]) > 50
