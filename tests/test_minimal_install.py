"""`pip install .` without extras, in a fresh venv of Python 3.12 (the interpreter running the
tests where no 3.12 is found): the runtime commands work, a missing extra is one line naming
it, and loading SmolLM2 through `Llama` raises no warning under `python -W error`.

Cost in CI (2 cores): ~2 minutes (a venv, the runtime dependencies, one kernel build); slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from bitnet_harness.corpora import SMOLLM2, corpus_path
from tests.kernel_builds import venv_install

pytestmark = pytest.mark.slow

# what `pip install bitnet-compat` must not pull in (extras only)
_EXTRAS_ONLY = ("fastapi", "pydantic", "uvicorn", "rich", "pytest", "hypothesis", "llama_cpp",
                "gguf", "tiktoken")
PROMPT = "The capital of France is"


def _python312() -> str:
    """A Python 3.12 interpreter: on PATH, under pyenv, or this one."""
    found = shutil.which("python3.12")
    candidates = [found] if found else []
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p) for p in sorted(root.glob("3.12*/bin/python3.12"))]
    for exe in candidates:
        res = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True)
        if res.returncode == 0 and res.stdout.strip() == "(3, 12)":
            return exe
    return sys.executable


def _clean_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "BITNET_"))}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a venv holding `pip install .` of a copy of this checkout, nothing else."""
    root = tmp_path_factory.mktemp("minimal")
    return venv_install(Path(_python312()), root, env=_clean_env()) / "bin"


def _run(bindir: Path, argv: List[str]) -> subprocess.CompletedProcess[str]:
    """argv[0] is a program of the venv."""
    return subprocess.run([str(bindir / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=600, env=_clean_env(), cwd=bindir.parent)


def test_the_install_holds_no_extra_and_the_kernels(install: Path) -> None:
    code = ("import importlib.util as u, sys\n"
            f"print([m for m in {_EXTRAS_ONLY!r} if u.find_spec(m) is not None])\n"
            "print(u.find_spec('bitnet_kernels._kernels') is not None)\n"
            "print(sys.prefix == sys.base_prefix, '%d.%d' % sys.version_info[:2])")
    res = _run(install, ["python", "-c", code])
    assert res.returncode == 0, res.stderr
    want = subprocess.run([_python312(), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True).stdout.strip()
    assert res.stdout.split() == ["[]", "True", "False", want]


def test_version(install: Path) -> None:
    res = _run(install, ["bitnet", "--version"])
    assert res.returncode == 0, res.stderr
    meta = _run(install, ["python", "-c", "import importlib.metadata as m; "
                                          "print(m.version('bitnet-compat'))"])
    assert meta.stdout.strip() and meta.stdout.strip() in res.stdout


def test_serve_help_names_the_server_extra(install: Path) -> None:
    res = _run(install, ["bitnet", "serve", "--help"])
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'bitnet-compat[server]'" in lines[0], res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_generate_prints_what_the_development_install_prints(install: Path) -> None:
    """Greedy text from the minimal install equals the test environment's (whose `bitnet
    generate` test compares it with llama-cpp-python)."""
    argv = ["generate", str(corpus_path(SMOLLM2)), PROMPT, "-n", "12", "--temp", "0"]
    res = _run(install, ["bitnet", *argv])
    assert res.returncode == 0, res.stderr
    dev = subprocess.run([sys.executable, "-m", "bitnet", *argv], capture_output=True, text=True,
                         timeout=600)
    assert dev.returncode == 0, dev.stderr
    assert res.stdout.strip() and res.stdout == dev.stdout


def test_smollm2_loads_through_llama_with_warnings_as_errors(install: Path) -> None:
    code = ("from bitnet.llama_compat import Llama\n"
            f"llm = Llama({str(corpus_path(SMOLLM2))!r}, n_ctx=256, verbose=False)\n"
            f"out = llm({PROMPT!r}, max_tokens=4, temperature=0)\n"
            "print(len(out['choices'][0]['text']) > 0)")
    res = _run(install, ["python", "-W", "error", "-c", code])
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == "True"
