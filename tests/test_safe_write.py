"""No command loses a user's file: bitnet.safe_write refuses outputs that are an input or not
a regular file, and leaves nothing behind on errors and signals (fix, quantize, convert)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest

from bitnet.safe_write import UnsafeOutputError, atomic_output, check_output, write_bytes
from bitnet_harness.synthetic import synthetic_path

POSIX = pytest.mark.skipif(os.name != "posix", reason="hard links, FIFOs and devices are POSIX")


def _bitnet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitnet", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hf_checkpoint(d: Path) -> Path:
    """A tiny Hugging Face BitNet checkpoint folder (config.json + model.safetensors)."""
    from bitnet.tools.convert import write_safetensors

    d.mkdir()
    rng = np.random.default_rng(0)
    hidden, inter, n_vocab = 64, 128, 32
    (d / "config.json").write_text(json.dumps(
        {"hidden_act": "silu", "hidden_size": hidden, "intermediate_size": inter,
         "num_attention_heads": 4, "num_hidden_layers": 1, "vocab_size": n_vocab,
         "max_position_embeddings": 128, "rms_norm_eps": 1e-6}))
    vocab = {f"t{i}": i for i in range(n_vocab)}

    (d / "tokenizer.json").write_text(json.dumps(
        {"model": {"type": "BPE", "vocab": vocab, "merges": []}, "added_tokens": []}))
    tensors = {"model.embed_tokens.weight": rng.standard_normal((n_vocab, hidden)).astype(np.float32),
               "model.norm.weight": np.ones(hidden, np.float32)}
    p = "model.layers.0."
    tensors.update({
        p + "input_layernorm.weight": np.ones(hidden, np.float32),
        p + "post_attention_layernorm.weight": np.ones(hidden, np.float32),
        p + "self_attn.q_proj.weight": rng.standard_normal((hidden, hidden)).astype(np.float32),
        p + "self_attn.k_proj.weight": rng.standard_normal((hidden, hidden)).astype(np.float32),
        p + "self_attn.v_proj.weight": rng.standard_normal((hidden, hidden)).astype(np.float32),
        p + "self_attn.o_proj.weight": rng.standard_normal((hidden, hidden)).astype(np.float32),
        p + "mlp.gate_proj.weight": rng.standard_normal((inter, hidden)).astype(np.float32),
        p + "mlp.up_proj.weight": rng.standard_normal((inter, hidden)).astype(np.float32),
        p + "mlp.down_proj.weight": rng.standard_normal((hidden, inter)).astype(np.float32),
    })
    write_safetensors(d / "model.safetensors", tensors)
    return d


# Each command: (argv builder given (input, output)), the input to protect.
def _commands(tmp: Path) -> Dict[str, Callable[[Path], List[str]]]:
    return {
        "fix": lambda out: ["fix", "in.gguf", str(out)],
        "quantize": lambda out: ["quantize", "in.gguf", str(out), "--type", "q8_0"],
        "convert": lambda out: ["convert", "hf", str(out), "--outtype", "f16"],
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "in.gguf").write_bytes(synthetic_path("llama-f16").read_bytes())
    _hf_checkpoint(tmp_path / "hf")
    return tmp_path


def _snapshot(d: Path) -> Dict[str, str]:
    """Every regular file under d (names and contents) and every other entry's name."""
    out = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        out[rel] = _digest(p) if p.is_file() and not p.is_symlink() else os.readlink(p) \
            if p.is_symlink() else "dir" if p.is_dir() else "special"
    return out


@POSIX
@pytest.mark.parametrize("command", ["fix", "quantize", "convert"])
def test_outputs_that_would_damage_something_are_refused(command: str, workdir: Path) -> None:
    """Hard link / symlink to the input, the input itself, X.part -> X's input, a directory,
    a FIFO, /dev/null: one line, exit 1, and every file's bytes unchanged, nothing added."""
    src = workdir / ("hf/model.safetensors" if command == "convert" else "in.gguf")
    os.link(src, workdir / "hard")
    (workdir / "sym").symlink_to(src)
    os.mkfifo(workdir / "fifo")
    (workdir / "dir").mkdir()
    before = _snapshot(workdir)
    argv = _commands(workdir)[command]
    for out in [workdir / "hard", workdir / "sym", src, workdir / "dir", workdir / "fifo",
                Path("/dev/null")]:
        res = _bitnet(*argv(out), cwd=workdir)
        assert res.returncode == 1, (out, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "refusing to write" in lines[0], (out, res.stderr)
        assert "Traceback" not in res.stderr
        assert _snapshot(workdir) == before, out
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


@pytest.mark.parametrize("command", ["fix", "quantize"])
def test_input_named_like_a_temporary_of_the_output_survives(command: str, workdir: Path) -> None:
    """`bitnet quantize m.gguf.part m.gguf` once destroyed its input (the temporary name was
    OUT + '.part'); temporaries are unique names now."""
    os.rename(workdir / "in.gguf", workdir / "m.gguf.part")
    before = _digest(workdir / "m.gguf.part")
    argv = ["fix", "m.gguf.part", "m.gguf"] if command == "fix" else \
        ["quantize", "m.gguf.part", "m.gguf", "--type", "q8_0"]
    res = _bitnet(*argv, cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert _digest(workdir / "m.gguf.part") == before
    from bitnet.gguf import parse

    assert parse(workdir / "m.gguf").tensors  # a complete, readable output
    assert sorted(p.name for p in workdir.iterdir()) == ["hf", "m.gguf", "m.gguf.part"]


# `bitnet quantize` whose second tensor's conversion announces itself (a file) and then waits:
# the signal reaches it while the temporary output is open, whatever the machine's load.
# Ctrl-C gets Python's handler back: a background job (nohup, `cmd &` in a script) inherits
# SIGINT ignored, and Python then installs none.
_PAUSED_QUANTIZE = """
import runpy, signal, sys, time
import bitnet.tools.quantize as q
signal.signal(signal.SIGINT, signal.default_int_handler)
real, calls = q._convert_tensor, []
def paused(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        open({marker!r}, "w").close()
        time.sleep(600)
    return real(*args, **kwargs)
q._convert_tensor = paused
sys.argv = ["bitnet", "quantize", "in.gguf", "out.gguf", "--type", "q4_k"]
runpy.run_module("bitnet", run_name="__main__")
"""


@POSIX
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_write_leaves_nothing_behind(sig: int, workdir: Path,
                                                 tmp_path_factory: pytest.TempPathFactory
                                                 ) -> None:
    """A signal while quantize writes (its second tensor): exit non-zero, the input unchanged,
    an existing OUT unchanged, no temporary file left."""
    (workdir / "out.gguf").write_bytes(b"previous content")
    before = _snapshot(workdir)
    marker = tmp_path_factory.mktemp("marker") / "writing"
    proc = subprocess.Popen([sys.executable, "-c", _PAUSED_QUANTIZE.format(marker=str(marker))],
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists():  # the temporary output is open, one tensor written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(list(workdir.glob(".out.gguf.*.tmp"))) == 1
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err  # 130 (Ctrl-C), 143 (SIGTERM)
    assert "Traceback" not in err
    assert _snapshot(workdir) == before


def test_atomic_output_cleans_up_on_error_and_keeps_permissions(tmp_path: Path) -> None:
    out = tmp_path / "o.bin"
    out.write_bytes(b"old")
    os.chmod(out, 0o640)
    with pytest.raises(RuntimeError), atomic_output(out) as fh:
        fh.write(b"partial")
        raise RuntimeError("boom")
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["o.bin"]
    write_bytes(out, b"new")
    assert out.read_bytes() == b"new" and os.listdir(tmp_path) == ["o.bin"]
    if os.name == "posix":
        assert (out.stat().st_mode & 0o777) == 0o640


def test_symlinked_output_replaces_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UnsafeOutputError, match="does not exist"):
        check_output(tmp_path / "nope" / "o.bin")


@POSIX
def test_a_new_output_gets_the_usual_permissions(tmp_path: Path) -> None:
    """0o666 minus the umask, as `open(path, "w")` would give (not mkstemp's 0o600)."""
    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "new.bin", b"x")
    finally:
        os.umask(old)
    assert ((tmp_path / "new.bin").stat().st_mode & 0o777) == 0o640
