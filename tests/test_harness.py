"""The harness holds itself to account: every spec clause is registered, and injected faults
turn the right contract red (mutation checks)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bitnet.harness.contracts import CONTRACTS, Contract, contract_ids, status
from bitnet.harness.faults import EXPECTED_RED
from bitnet.harness.runner import run

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "docs" / "spec-COMPATIBILITY.md"  # vendored copy of shared/spec/COMPATIBILITY.md
UPSTREAM = REPO.parent / "shared" / "spec" / "COMPATIBILITY.md"


def test_vendored_spec_is_current() -> None:
    if not UPSTREAM.exists():
        pytest.skip("no shared/ checkout beside the repo to compare with")
    assert SPEC.read_text() == UPSTREAM.read_text(), "re-copy shared/spec/COMPATIBILITY.md"


def test_every_locked_c_function_and_truth_table_row_is_registered() -> None:
    text = SPEC.read_text()
    locked = set(re.findall(r"\b(llama_[a-z_]+)\(", text.split("**Error codes are locked:**")[0]))
    rows = set(re.findall(r"^\| `(llama_[a-z_]+?)_?\*?` \|", text, flags=re.M))
    ids = set(contract_ids())
    for fn in sorted(locked | rows):
        assert any(i == f"capi.{fn}" or i == f"capi.{fn.rstrip('_')}" for i in ids), fn


def test_every_error_code_and_tokenizer_type_is_registered() -> None:
    text = SPEC.read_text()
    codes = set(re.findall(r"^\| `(-?\d+)` \|", text, flags=re.M))
    assert codes == {"0", "-1", "-2", "-3", "-4", "-5", "-6", "-7", "-8", "-9", "-10"}
    assert "errors.codes" in contract_ids()
    for name in ("gpt2-bpe", "llama3-bpe", "sentencepiece", "tiktoken", "falcon"):
        assert f"tokenizer.{name}" in contract_ids()
    for fix in ("pre", "add_space_prefix", "byte_fallback", "special_ids"):
        assert f"gguf.fix.{fix}" in contract_ids()


def test_status_never_passes_without_checks() -> None:
    bare = Contract("x", "s", "c")
    assert status(bare, {"tests/a.py::t": "passed"})[0] == "unproven"
    one = Contract("y", "s", "c", ("tests/a.py::t",))
    assert status(one, {})[0] == "unproven"
    assert status(one, {"tests/a.py::t": "skipped"})[0] == "unproven"
    assert status(one, {"tests/a.py::t": "passed"})[0] == "passed"
    assert status(one, {"tests/a.py::t[x]": "passed", "tests/a.py::t[y]": "failed"})[0] == "failed"
    assert status(one, {"tests/a.py::tt": "passed"})[0] == "unproven"  # prefix of a name only


MUTATION_TESTS = {
    "flipped-kernel-sign": ["tests/test_optimized_kernels.py::test_matmul_matches_reference"],
    "wrong-tokenizer-merge": ["tests/test_tokenizer_contracts.py::test_llamacpp_vectors[gpt-2]",
                              "tests/test_tokenizer_contracts.py::test_differential_vs_llamacpp[gpt-2]"],
    "missing-gguf-fix": ["tests/test_gguf_compatibility.py::test_missing_pre_is_detected[gpt-2]",
                         "tests/test_gguf_compatibility.py::test_smollm2_pre_is_detected"],
    "wrong-error-code": ["tests/test_gguf_compatibility.py::test_missing_file_has_code_minus_4",
                         "tests/test_gguf_compatibility.py::test_bad_file_corpus"],
}


@pytest.mark.parametrize("fault", sorted(EXPECTED_RED))
def test_injected_fault_turns_its_contract_red(fault: str, tmp_path: Path) -> None:
    contract = EXPECTED_RED[fault]
    if fault == "flipped-kernel-sign":
        import bitnet.optimized

        if not bitnet.optimized.available():
            pytest.skip(f"no C kernels to break: {bitnet.optimized.unavailable_reason()}")
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    assert run(report_dir=str(clean), workers="0", tests=MUTATION_TESTS[fault], quiet=True) == 0
    assert run(report_dir=str(faulty), workers="0", tests=MUTATION_TESTS[fault],
               inject_fault=fault, quiet=True) != 0

    def state(d: Path) -> str:
        summary = json.loads((d / "summary.json").read_text())
        return next(c["status"] for c in summary["contracts"] if c["id"] == contract)

    assert state(clean) == "passed"
    assert state(faulty) == "failed"
    assert json.loads((faulty / "summary.json").read_text())["injected_fault"] == fault


def test_registry_ids_are_unique_and_stable_shaped() -> None:
    ids = contract_ids()
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9]+(\.[A-Za-z0-9_\-]+)+", i) for i in ids), ids
    assert len(CONTRACTS) >= 40


def test_reports_render_diff_and_docs(tmp_path: Path) -> None:
    from bitnet.harness.report import TRUTH_BEGIN, diff, index_html, update_docs, write_reports
    from bitnet.harness.runner import _summary

    node = "tests/test_gguf_compatibility.py::test_v2_is_accepted"
    good = _summary("r1", True, 0, {node: "passed"})
    bad = _summary("r2", True, 0, {node: "failed"})
    versions = next(c for c in good["contracts"] if c["id"] == "gguf.versions")
    assert versions["status"] == "passed" and versions["checks"] == [node]
    write_reports(tmp_path, bad)
    page = (tmp_path / "index.html").read_text()
    assert "gguf.versions" in page and "failed" in page and "<script" not in page
    # self-contained: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:|url\(\s*["']?https?:|@import""", page)
    changes = diff(good, bad)
    assert "gguf.versions: passed -> failed" in changes
    assert all(line.endswith("passed -> failed") for line in changes)
    assert index_html(good).count("<tr>") == len(CONTRACTS) + 1
    doc = tmp_path / "COMPATIBILITY.md"
    doc.write_text("# intro\n")
    update_docs(doc, good)
    update_docs(doc, good)  # idempotent: the generated block is replaced, not appended twice
    text = doc.read_text()
    assert text.count(TRUTH_BEGIN) == 1 and text.startswith("# intro")
    assert "| `gguf.versions` | GGUF format | ✓ |" in text
    assert "| `capi.llama_eval` | C API | • |" in text  # no check yet: never shown as ✓


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from bitnet.harness.report import chromium, write_reports
    from bitnet.harness.runner import _summary

    if chromium() is None:
        pytest.skip("Debian's chromium-headless-shell is not installed (scripts/setup.sh installs it)")
    write_reports(tmp_path, _summary("shot", True, 0, {}))
    png = tmp_path / "index.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 60_000  # the rendered table (~470 KB); a blank page is ~14 KB


def test_fuzz_campaign_shrinks_and_saves_a_regression(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Clean: no mismatch. With a wrong merge: a shrunk mismatch saved as a regression case
    that the replay (tests/test_regressions.py) flags."""
    from bitnet.harness.faults import inject
    from bitnet.harness.fuzz import fuzz_vocab, replay
    from bitnet.tokenizers import bpe

    assert fuzz_vocab("gpt-2", examples=15, seed=3, save_to=tmp_path) is None
    monkeypatch.setattr(bpe.BPE, "__init__", bpe.BPE.__init__)  # restored after the test
    inject("wrong-tokenizer-merge")
    found = fuzz_vocab("gpt-2", examples=200, seed=3, save_to=tmp_path)
    assert found is not None and found["what"] == "ids"
    assert len(bytes.fromhex(found["text_hex"])) <= 8  # shrunk (e.g. b" t")
    saved = Path(found["regression"])
    assert saved.parent == tmp_path and saved.exists()
    assert replay(saved) is not None  # still failing while the fault is in


@pytest.mark.parametrize("impl", ["bitnet", "llama.cpp"])
def test_bench_worker_runs_and_reports(impl: str) -> None:
    """The decode benchmark's worker runs both implementations (numbers are not asserted)."""
    import subprocess
    import sys

    from bitnet.harness.synthetic import synthetic_path

    model = synthetic_path("llama-q8_0")
    res = subprocess.run([sys.executable, "-m", "bitnet.harness.bench_worker", impl, str(model),
                          "--threads", "1", "--prompt", "4", "--decode", "2"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(metrics) == {"load_s", "prompt_tps", "decode_tps", "peak_rss_mb"}
    assert all(v > 0 for v in metrics.values())


def test_impl_selection() -> None:
    from bitnet.harness.runner import IMPLS, selection

    args, env = selection(True, IMPLS, 7)
    assert args == ["--hypothesis-seed=7", "-m", "not slow"] and env == {}
    args, env = selection(False, ["reference", "optimized"], 0)
    assert args[-2:] == ["-m", "not llamacpp"] and env == {}
    args, env = selection(True, ["reference"], 0)
    assert "--ignore=tests/test_optimized_kernels.py" in args
    assert args[-1] == "not slow and not llamacpp" and env == {"BITNET_BACKEND": "reference"}
    with pytest.raises(ValueError, match="unknown implementation"):
        selection(True, ["bitnet.rs"], 0)


def test_run_reference_only_subset(tmp_path: Path) -> None:
    """`--impl reference` runs the suite without llama.cpp and without the C kernels."""
    node = "tests/test_gguf_compatibility.py::test_v2_is_accepted"
    assert run(report_dir=str(tmp_path), workers="0", tests=[node], quiet=True,
               impls=["reference"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tests"]["passed"] == 1
