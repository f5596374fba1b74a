"""Several sequences per context and state save / restore through the C API (tests/c/multi_seq.c,
tests/c/state.c), on SmolLM2: a 2-sequence batch gives each sequence the greedy tokens it gets
alone; a saved state (whole, one sequence; memory, files) continues exactly as the context it
came from; corrupt and truncated states restore nothing. The same sources built against
libllama, with the peer-exact numerics, give the same tokens."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

import pytest

from bitnet_harness.corpora import SMOLLM2, corpus_path
from tests.capi_programs import C_DIR, bitnet_flags, compile_program, llama_flags, parse_lines, run_program

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed")
PROMPTS = ("The capital of France is", "def fibonacci(n):")
N_GEN = 8
PEER = {"BITNET_NUMERICS": "llama.cpp"}  # llama.cpp 0.3.36's float order


@pytest.fixture(scope="module")
def model_path() -> Path:
    return corpus_path(SMOLLM2)


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    out = tmp_path_factory.mktemp("seq")
    flags = bitnet_flags()
    return {name: compile_program(C_DIR / f"{name}.c", out / name, flags, extra=["-DUSE_BITNET"])
            for name in ("multi_seq", "state")}


@pytest.mark.parametrize("unified", ["0", "1"])
def test_two_sequences_in_one_batch_equal_each_alone(programs: Dict[str, Path], model_path: Path,
                                                     unified: str) -> None:
    out = parse_lines(run_program(programs["multi_seq"], str(model_path), str(N_GEN), unified,
                                  *PROMPTS).stdout)
    for s in ("0", "1"):
        assert len(out[f"batched_{s}"]) == N_GEN
        assert out[f"batched_{s}"] == out[f"single_{s}"]
    assert out["batched_0"] != out["batched_1"]
    # per-sequence caches: n_ctx = 512 split in 2 (256 each); unified: 512 shared
    assert int(out["n_ctx_seq"][0]) == (512 if unified == "1" else 256)


def test_coupled_prompt_with_per_sequence_streams(programs: Dict[str, Path], model_path: Path) -> None:
    """A prompt whose tokens belong to sequences 0 and 1 of a context with per-sequence streams
    (libllama refuses it: "coupled sequences ... use -kvu"; here it is computed once and its
    cells copied to the other stream): each sequence then continues as the prompt alone."""
    out = parse_lines(run_program(programs["multi_seq"], str(model_path), str(N_GEN), "0",
                                  *PROMPTS, "coupled").stdout)
    assert len(out["coupled_0"]) == N_GEN
    assert out["coupled_0"] == out["coupled_1"] == out["single_0"]


STATE_CASES = ("from_data", "from_file", "seq_into_1", "seq_file_into_1", "seq_cp")


def run_state(exe: Path, model_path: Path, tmp: Path, env: Dict[str, str]) -> Dict[str, List[str]]:
    """The state program, its files named relative to its working directory `tmp`."""
    return parse_lines(run_program(exe, str(model_path), "The three primary colors are", "8",
                                   "state.bin", "seq.bin", env=env, cwd=tmp).stdout)


def test_state_save_restore_continues_identically(programs: Dict[str, Path], model_path: Path,
                                                  tmp_path: Path) -> None:
    out = run_state(programs["state"], model_path, tmp_path, {})
    assert len(out["baseline"]) == 8
    for case in STATE_CASES:
        assert out[case] == out["baseline"], case
    for check in ("state_size_matches", "state_save_file", "seq_size_matches", "seq_save_file_ok",
                  "set_data_read_all", "load_file", "seq_set_read_all", "seq0_empty",
                  "seq_load_file_ok"):
        assert out[check] == ["1"], check
    assert out["load_file_tokens"] == ["4", "1"]  # the prompt but its last token, as saved
    assert out["restored_pos_max"] == ["3"] and out["cp_then_rm"] == ["-1", "3"]
    # corrupt (one flipped byte) and truncated states: 0 bytes read, the sequence left empty,
    # the other sequence untouched (libllama accepts the flipped byte)
    assert out["corrupt_seq_set"] == ["0"] and out["corrupt_seq_left_empty"] == ["1"]
    assert out["other_seq_kept"] == ["1"]
    assert out["truncated_seq_set"] == ["0"] and out["truncated_state_set"] == ["0"]


@pytest.mark.llamacpp
def test_sequences_and_states_as_libllama(programs: Dict[str, Path], model_path: Path,
                                          tmp_path: Path) -> None:
    """The same two programs on libllama: the same greedy tokens (peer-exact numerics), and
    libllama's own restores continue as its baseline (the programs test what they claim)."""
    flags = llama_flags()
    ref_multi = compile_program(C_DIR / "multi_seq.c", tmp_path / "multi_ll", flags)
    ref_state = compile_program(C_DIR / "state.c", tmp_path / "state_ll", flags)
    args = (str(model_path), str(N_GEN), "0", *PROMPTS)
    got = parse_lines(run_program(programs["multi_seq"], *args, env=PEER).stdout)
    want = parse_lines(run_program(ref_multi, *args).stdout)
    assert got == want
    (tmp_path / "ours").mkdir()
    (tmp_path / "ref").mkdir()
    ours = run_state(programs["state"], model_path, tmp_path / "ours", PEER)
    ref = run_state(ref_state, model_path, tmp_path / "ref", {})
    assert ours["baseline"] == ref["baseline"]
    for case in STATE_CASES:
        assert ref[case] == ref["baseline"], case
        assert ours[case] == ref["baseline"], case


@pytest.mark.llamacpp
def test_unified_cache_cells_are_llamacpps(model_path: Path, tmp_path: Path) -> None:
    """tests/c/kv_cells.c on both libraries: a unified cache of three sequences through seq_cp,
    mixed batches, seq_rm between other sequences' cells, seq_keep and a sequence state restored
    into another sequence; every output's logits have the same bits (argmax and a hash of the
    row), so each token sits in the cell llama.cpp picks and sees the cells it masks in."""
    ours = compile_program(C_DIR / "kv_cells.c", tmp_path / "ours", bitnet_flags(), extra=["-DUSE_BITNET"])
    theirs = compile_program(C_DIR / "kv_cells.c", tmp_path / "theirs", llama_flags())
    for prompt in PROMPTS:
        got = run_program(ours, str(model_path), prompt, env=PEER).stdout.decode()
        want = run_program(theirs, str(model_path), prompt).stdout.decode()
        assert got == want, prompt
        assert want.count("step_") == 23 and "decode" not in want
