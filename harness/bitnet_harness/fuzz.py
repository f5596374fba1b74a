"""Fuzz campaigns: hypothesis-generated inputs, differential against the peer, shrunk
failures saved as regression cases.

    bitnet-compat fuzz tokenizers [--examples N] [--seed S] [--vocab NAME ...]

Each vocabulary runs `--examples` generated texts through `compare_with_llamacpp` in all four
add_special x parse_special combinations. A mismatch is shrunk by hypothesis to a minimal
input, written to the campaign report (`reports/fuzz-<id>/tokenizers.json`) and saved under
`corpora/regressions/tokenizers/` as a JSON case that `tests/test_regressions.py` replays.
The same strategy drives the pytest property (with a small budget).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as fixed_seed
from hypothesis import strategies as st

from bitnet.safe_write import write_text
from bitnet.tokenizers.gguf_tokenizer import GGUFTokenizer
from bitnet_harness.checkout import regressions_root, reports_root
from bitnet_harness.corpora import corpus_path, vocab_names

REGRESSIONS = regressions_root() / "tokenizers"


_WS = " \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2000\u2028\u3000"
_CODE = [
    "def f(x):\n    return x**2\n",
    "if (a<b) { c++; } else {}",
    "#include <stdio.h>",
    "$x = @y; // ok",
    "a_b-c.d/e\\f",
    "<html><body>",
    "0x1F + 1e-3",
    "\t\tfoo();\r\n",
]
_WORDS = ["the", "The", "to", "it", "is", "time", "test", "Hello", "world", "tokenizer",
          "don't", "I'm", "naïve", "café", "日本語", "3.14", "x", "a", ""]
_CONTRACTIONS = [
    "'s",
    "'t",
    "'re",
    "'ve",
    "'m",
    "'ll",
    "'d",
    "'S",
    "'RE",
    "'Ll",
    "n't",
    " ' ",
    " 's",
    " ?",
    " !",
    " .",
    " ,",
    "don't",
    "I'M",
]


def text_strategy(tok: GGUFTokenizer) -> st.SearchStrategy[bytes]:
    """Mixed text that stresses a tokenizer: all planes, whitespace runs, contractions, digits,
    code, CJK, emoji, vocab words glued together, raw bytes, special-token texts."""
    v = tok.vocab
    token_text = st.integers(0, v.n_tokens - 1).map(lambda t: v.text_bytes(t))
    token_piece = st.integers(0, v.n_tokens - 1).map(lambda t: tok.token_to_piece(t))
    pieces = [
        st.text(max_size=12).map(lambda s: s.encode("utf-8", "surrogatepass")),  # all planes
        st.text(alphabet=_WS, min_size=1, max_size=6).map(str.encode),
        st.sampled_from(_CONTRACTIONS).map(str.encode),
        st.integers(0, 10**15).map(lambda i: str(i).encode()),
        st.sampled_from(_CODE).map(str.encode),
        st.text(
            alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
            min_size=1,
            max_size=4,
        ).map(str.encode),  # CJK
        st.text(
            alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
            min_size=1,
            max_size=3,
        ).map(str.encode),  # emoji
        st.lists(token_text, min_size=1, max_size=4).map(b"".join),  # vocab words glued
        st.lists(token_piece, min_size=1, max_size=6).map(b"".join),  # ... as the text they stand for
        st.lists(st.sampled_from(_WORDS), min_size=1, max_size=6).map(" ".join).map(str.encode),
        st.binary(max_size=4),  # arbitrary bytes, often invalid UTF-8
    ]
    if v.special_tokens:
        around = st.sampled_from([b"", b" ", b"  ", b"\n", b" \n "])
        pieces.append(
            st.tuples(around, st.sampled_from(v.special_tokens).map(v.text_bytes), around).map(
                b"".join
            )
        )
    return st.lists(st.one_of(pieces), max_size=8).map(b"".join)




def first_mismatch(tok: Any, oracle: Any, text: bytes) -> Optional[Any]:
    """The first disagreement with llama.cpp over the four add_special x parse_special flags."""
    from bitnet.tokenizers.differential import compare_with_llamacpp

    for add_special in (False, True):
        for parse_special in (False, True):
            mismatch = compare_with_llamacpp(tok, oracle, text, add_special, parse_special)
            if mismatch is not None:
                return mismatch
    return None


def _save_regression(vocab: str, text: bytes, add_special: bool, parse_special: bool,
                     detail: str, root: Path = REGRESSIONS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    case = {"vocab": vocab, "text_hex": text.hex(), "add_special": add_special,
            "parse_special": parse_special, "detail": detail}
    name = hashlib.sha256(json.dumps(case, sort_keys=True).encode()).hexdigest()[:12]
    path = root / f"{vocab}-{name}.json"
    write_text(path, json.dumps(case, indent=1))
    return path


class VocabFuzzer:
    """One vocabulary's tokenizer (as llama.cpp sees the file) and its llama.cpp oracle,
    loaded once and fuzzed in seeded batches."""

    def __init__(self, vocab: str) -> None:
        import llama_cpp

        from bitnet.gguf import load as gguf_load
        from bitnet.runtime import tokenizer_engine
        from bitnet.tokenizers import from_gguf_kv

        self.vocab = vocab
        path = corpus_path(f"vocab/ggml-vocab-{vocab}.gguf")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kv = gguf_load(path, apply_repairs=False).kv  # what llama.cpp sees
            self.tok = from_gguf_kv(kv, engine=tokenizer_engine())  # the API surfaces' path
        self.oracle = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)

    def close(self) -> None:
        self.oracle.close()

    def batch(self, examples: int, seed: int, save_to: Optional[Path] = REGRESSIONS,
              deadline: Optional[float] = None) -> Tuple[int, Optional[Dict[str, Any]]]:
        """Up to `examples` generated texts from `seed`: (texts checked, shrunk mismatch or
        None). Past `deadline` (time.monotonic()) the remaining examples are not checked."""
        tok, oracle = self.tok, self.oracle
        found: List[Any] = []
        checked = [0]

        @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def check(data: st.DataObject) -> None:
            text = data.draw(text_strategy(tok), label="text")
            if deadline is not None and time.monotonic() > deadline and not found:
                return  # budget spent: let hypothesis finish the batch without work
            checked[0] += 1
            mismatch = first_mismatch(tok, oracle, text)
            if mismatch is not None:
                found[:] = [mismatch]
                raise AssertionError(str(mismatch))

        try:
            fixed_seed(seed)(check)()
        except AssertionError:
            m = found[-1]  # the last failure hypothesis saw is the shrunk one
            out = {"vocab": self.vocab, "what": m.what, "text_hex": m.text.hex(),
                   "text": repr(m.text), "add_special": m.add_special,
                   "parse_special": m.parse_special, "ours": repr(m.ours),
                   "llama.cpp": repr(m.theirs)}
            if save_to is not None:
                out["regression"] = str(_save_regression(self.vocab, m.text, m.add_special,
                                                         m.parse_special, m.what, save_to))
            return checked[0], out
        return checked[0], None


def fuzz_vocab(vocab: str, examples: int, seed: int,
               save_to: Optional[Path] = REGRESSIONS) -> Optional[Dict[str, Any]]:
    """Run one vocabulary's campaign; the shrunk mismatch (as a dict) or None."""
    fuzzer = VocabFuzzer(vocab)
    try:
        return fuzzer.batch(examples, seed, save_to)[1]
    finally:
        fuzzer.close()


GGUF_REGRESSIONS = REGRESSIONS.parent / "gguf"


def mutation_base() -> bytes:
    """A small valid GGUF v3 file (gguf-py's writer, fixed content): scalar, string and
    array KVs and F32 / F16 / Q8_0 tensors; the GGUF campaign mutates it."""
    import tempfile

    import gguf
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.gguf"
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_uint32("llama.context_length", 64)
        w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        w.add_bool("tokenizer.ggml.add_bos_token", True)
        w.add_string("general.name", "mutation base")
        w.add_tokenizer_model("gpt2")
        w.add_token_list(["a", "b", "ab", "<s>"])
        w.add_token_types([1, 1, 1, 3])
        w.add_array("tokenizer.ggml.merges", ["a b"])
        rng = np.random.default_rng(0)
        w.add_tensor("token_embd.weight", rng.standard_normal((4, 32)).astype(np.float32))
        w.add_tensor("output_norm.weight", rng.standard_normal(32).astype(np.float16))
        q8 = np.zeros((2, 34), dtype=np.uint8)  # two Q8_0 blocks: f16 scale + 32 int8
        q8[:, 2:] = rng.integers(0, 256, size=(2, 32))
        w.add_tensor("output.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path.read_bytes()


def parse_only_gguf_errors(data: bytes, workdir: Path) -> Optional[str]:
    """Load `data` as a GGUF file: None when it loads or raises GGUFError (the typed error
    every bad file must give), else the unexpected exception."""
    from bitnet.errors import GGUFError
    from bitnet.gguf import load as gguf_load

    path = workdir / "m.gguf"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gguf_load(path).close()
    except GGUFError:
        return None
    except Exception as exc:  # what the campaign hunts for
        return f"{type(exc).__name__}: {exc}"
    return None


class GGUFFuzzer:
    """Truncations and byte flips of `mutation_base()`: only GGUFError may come out."""

    def __init__(self) -> None:
        import tempfile

        self.base = mutation_base()
        self._tmp = tempfile.TemporaryDirectory()
        self.workdir = Path(self._tmp.name)

    def close(self) -> None:
        self._tmp.cleanup()

    def batch(self, examples: int, seed: int, save_to: Optional[Path] = GGUF_REGRESSIONS,
              deadline: Optional[float] = None) -> Tuple[int, Optional[Dict[str, Any]]]:
        """As VocabFuzzer.batch: (files checked, shrunk finding or None)."""
        base, checked = self.base, [0]
        found: List[Tuple[bytes, str]] = []
        mutation = st.tuples(st.integers(0, len(base)), st.lists(
            st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=8))

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(mutation)
        def check(m: Tuple[int, List[Tuple[int, int]]]) -> None:
            if deadline is not None and time.monotonic() > deadline and not found:
                return
            checked[0] += 1
            data = bytearray(base)
            for pos, byte in m[1]:
                data[pos] = byte
            error = parse_only_gguf_errors(bytes(data[: m[0]]), self.workdir)
            if error is not None:
                found[:] = [(bytes(data[: m[0]]), error)]
                raise AssertionError(error)

        try:
            fixed_seed(seed)(check)()
        except AssertionError:
            data, error = found[-1]
            out: Dict[str, Any] = {"what": error, "size": len(data)}
            if save_to is not None:
                save_to.mkdir(parents=True, exist_ok=True)
                case = {"data_hex": data.hex(), "detail": error}
                name = hashlib.sha256(data).hexdigest()[:12]
                path = save_to / f"gguf-{name}.json"
                write_text(path, json.dumps(case, indent=1))
                out["regression"] = str(path)
            return checked[0], out
        return checked[0], None


def replay_gguf(case_file: Path) -> Optional[str]:
    """Re-load a saved GGUF regression case: None when only GGUFError (or nothing) comes out."""
    import tempfile

    case = json.loads(Path(case_file).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        return parse_only_gguf_errors(bytes.fromhex(case["data_hex"]), Path(tmp))


def budgeted_campaigns(budget_s: float, seed: int = 0, vocabs: Sequence[str] = (),
                       batch: int = 10, save_to: Optional[Path] = REGRESSIONS,
                       gguf_save_to: Optional[Path] = GGUF_REGRESSIONS,
                       progress: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """The fuzz campaigns under one wall-clock budget, in seeded batches of `batch` inputs
    (`4 * batch` files for GGUF):
    "tokenizers" (ours vs llama.cpp, round-robin over the vocabularies, their order rotated
    by `seed`) and "gguf" (mutated files must raise only GGUFError), one GGUF batch after
    each tokenizer batch. No batch starts once `budget_s` seconds are spent and a running
    one skips its remaining inputs (a vocabulary being loaded, or a finding being shrunk,
    still finishes). A budget <= 0 runs nothing; a positive one checks at least one batch of
    each campaign. Returns the summary's "budget" entry (schema in bitnet_harness.runner)."""
    start = time.monotonic()
    deadline = start + max(0.0, budget_s)
    names = list(vocabs) or vocab_names()
    if names:
        k = seed % len(names)
        names = names[k:] + names[:k]
    per_vocab: Dict[str, Dict[str, Any]] = {}
    fuzzers: Dict[str, VocabFuzzer] = {}
    tok_time = gguf_time = 0.0
    gguf_batch = 4 * batch  # a mutated file parses in ~20 ms, a tokenizer check takes longer
    gguf: Dict[str, Any] = {"kind": "fuzz", "cases": 0, "batches": 0, "batch": gguf_batch,
                            "mismatches": 0, "finding": None}
    gguf_fuzzer: Optional[GGUFFuzzer] = None
    round_no = 0

    def batch_seed(*key: object) -> int:  # every (seed, round, target) draws its own inputs
        text = ":".join(str(k) for k in (seed,) + key)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")

    def gguf_step(key: object) -> None:
        nonlocal gguf_fuzzer, gguf_time
        t0 = time.monotonic()
        first = gguf_fuzzer is None
        if gguf_fuzzer is None:
            gguf_fuzzer = GGUFFuzzer()
        if progress:
            progress(f"fuzz gguf (round {round_no + 1})")
        n, finding = gguf_fuzzer.batch(gguf_batch, batch_seed(round_no, key, "gguf"), gguf_save_to,
                                       None if first else deadline)
        gguf["cases"] += n
        gguf["batches"] += 1
        if finding is not None:
            gguf["finding"], gguf["mismatches"] = finding, 1
        gguf_time += time.monotonic() - t0

    try:
        while budget_s > 0 and (round_no == 0 or time.monotonic() < deadline):
            progressed = False
            targets: List[Optional[str]] = list(names) if names else [None]
            for name in targets:
                if time.monotonic() >= deadline and (progressed or round_no > 0):
                    break
                if name is not None:
                    t0 = time.monotonic()
                    if name not in fuzzers:
                        fuzzers[name] = VocabFuzzer(name)
                        per_vocab[name] = {"cases": 0, "batches": 0, "mismatch": None}
                    if progress:
                        progress(f"fuzz tokenizers {name} (round {round_no + 1})")
                    # each campaign's first batch always completes (see the docstring)
                    first = round_no == 0 and not progressed
                    n, found = fuzzers[name].batch(batch, batch_seed(round_no, name), save_to,
                                                   None if first else deadline)
                    entry = per_vocab[name]
                    entry["cases"] += n
                    entry["batches"] += 1
                    if found is not None:
                        entry["mismatch"] = found
                        names.remove(name)  # one shrunk case per vocabulary is enough
                    tok_time += time.monotonic() - t0
                    progressed = True
                if gguf["finding"] is None and (gguf_fuzzer is None
                                                or time.monotonic() < deadline):
                    gguf_step(name)
                    progressed = True
            round_no += 1
            if not progressed:
                break  # every campaign has its finding: nothing left to look for
    finally:
        for f in fuzzers.values():
            f.close()
        if gguf_fuzzer is not None:
            gguf_fuzzer.close()
    used = time.monotonic() - start
    tokenizers = {"kind": "fuzz", "cases": sum(v["cases"] for v in per_vocab.values()),
                  "used_s": tok_time, "rounds": round_no, "batch": batch, "vocabs": per_vocab,
                  "mismatches": sum(1 for v in per_vocab.values() if v["mismatch"])}
    gguf["used_s"] = gguf_time
    return {"budget_s": budget_s, "used_s": used, "seed": seed,
            "campaigns": {"tokenizers": tokenizers, "gguf": gguf}}


def fuzz_tokenizers(vocabs: Sequence[str] = (), examples: int = 1000, seed: int = 0,
                    report_root: Optional[Path] = None) -> int:
    """The campaign over `vocabs` (default: every shipped one); exit code 1 on any mismatch."""
    from rich.progress import Progress

    names = list(vocabs) or vocab_names()
    run_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = (report_root or reports_root()) / f"fuzz-{run_id}"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = {"campaign": "tokenizers", "seed": seed, "examples_per_vocab": examples,
                               "vocabs": {}}
    with Progress() as progress:
        task = progress.add_task("fuzz tokenizers", total=len(names))
        for name in names:
            progress.update(task, description=f"fuzz {name}")
            results["vocabs"][name] = fuzz_vocab(name, examples, seed) or "no mismatch"
            progress.advance(task)
    write_text(out_dir / "tokenizers.json", json.dumps(results, indent=1))
    bad = {k: v for k, v in results["vocabs"].items() if v != "no mismatch"}
    print(f"{len(names)} vocabularies x {examples} texts x 4 flag combinations: "
          f"{len(bad)} with a mismatch; report {out_dir / 'tokenizers.json'}")
    for name, m in bad.items():
        print(f"  {name}: {m['what']} on {m['text']} -> {m.get('regression')}")
    return 1 if bad else 0


def replay(case_file: Path) -> Optional[str]:
    """Re-run a saved regression case against llama.cpp: None when it now agrees."""
    import llama_cpp

    from bitnet.gguf import load as gguf_load
    from bitnet.runtime import tokenizer_engine
    from bitnet.tokenizers import from_gguf_kv
    from bitnet.tokenizers.differential import compare_with_llamacpp

    case = json.loads(Path(case_file).read_text())
    path = corpus_path(f"vocab/ggml-vocab-{case['vocab']}.gguf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = from_gguf_kv(gguf_load(path, apply_repairs=False).kv, engine=tokenizer_engine())
    oracle = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        mismatch = compare_with_llamacpp(tok, oracle, bytes.fromhex(case["text_hex"]),
                                         case["add_special"], case["parse_special"])
    finally:
        oracle.close()
    return None if mismatch is None else str(mismatch)
