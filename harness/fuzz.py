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
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as fixed_seed
from hypothesis import strategies as st

from ..tokenizers.gguf_tokenizer import GGUFTokenizer
from .corpora import corpus_path, vocab_names

REGRESSIONS = Path(__file__).resolve().parent.parent / "corpora" / "regressions" / "tokenizers"


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
    from ..tokenizers.differential import compare_with_llamacpp

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
    path.write_text(json.dumps(case, indent=1))
    return path


def fuzz_vocab(vocab: str, examples: int, seed: int,
               save_to: Optional[Path] = REGRESSIONS) -> Optional[Dict[str, Any]]:
    """Run one vocabulary's campaign; the shrunk mismatch (as a dict) or None."""
    import llama_cpp

    from ..gguf import load as gguf_load
    from ..tokenizers import from_gguf_kv
    path = corpus_path(f"vocab/ggml-vocab-{vocab}.gguf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = from_gguf_kv(gguf_load(path, apply_repairs=False).kv)  # what llama.cpp sees
    oracle = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    found: List[Any] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data: st.DataObject) -> None:
        mismatch = first_mismatch(tok, oracle, data.draw(text_strategy(tok), label="text"))
        if mismatch is not None:
            found[:] = [mismatch]
            raise AssertionError(str(mismatch))

    try:
        fixed_seed(seed)(check)()
    except AssertionError:
        m = found[-1]  # the last failure hypothesis saw is the shrunk one
        out = {"vocab": vocab, "what": m.what, "text_hex": m.text.hex(), "text": repr(m.text),
               "add_special": m.add_special, "parse_special": m.parse_special,
               "ours": repr(m.ours), "llama.cpp": repr(m.theirs)}
        if save_to is not None:
            out["regression"] = str(_save_regression(vocab, m.text, m.add_special,
                                                     m.parse_special, m.what, save_to))
        return out
    finally:
        oracle.close()
    return None


def fuzz_tokenizers(vocabs: Sequence[str] = (), examples: int = 1000, seed: int = 0,
                    report_root: Optional[Path] = None) -> int:
    """The campaign over `vocabs` (default: every shipped one); exit code 1 on any mismatch."""
    from rich.progress import Progress

    names = list(vocabs) or vocab_names()
    run_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = (report_root or Path(__file__).resolve().parent.parent / "reports") / f"fuzz-{run_id}"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = {"campaign": "tokenizers", "seed": seed, "examples_per_vocab": examples,
                               "vocabs": {}}
    with Progress() as progress:
        task = progress.add_task("fuzz tokenizers", total=len(names))
        for name in names:
            progress.update(task, description=f"fuzz {name}")
            results["vocabs"][name] = fuzz_vocab(name, examples, seed) or "no mismatch"
            progress.advance(task)
    (out_dir / "tokenizers.json").write_text(json.dumps(results, indent=1))
    bad = {k: v for k, v in results["vocabs"].items() if v != "no mismatch"}
    print(f"{len(names)} vocabularies x {examples} texts x 4 flag combinations: "
          f"{len(bad)} with a mismatch; report {out_dir / 'tokenizers.json'}")
    for name, m in bad.items():
        print(f"  {name}: {m['what']} on {m['text']} -> {m.get('regression')}")
    return 1 if bad else 0


def replay(case_file: Path) -> Optional[str]:
    """Re-run a saved regression case against llama.cpp: None when it now agrees."""
    import llama_cpp

    from ..gguf import load as gguf_load
    from ..tokenizers import from_gguf_kv
    from ..tokenizers.differential import compare_with_llamacpp

    case = json.loads(Path(case_file).read_text())
    path = corpus_path(f"vocab/ggml-vocab-{case['vocab']}.gguf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = from_gguf_kv(gguf_load(path, apply_repairs=False).kv)
    oracle = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        mismatch = compare_with_llamacpp(tok, oracle, bytes.fromhex(case["text_hex"]),
                                         case["add_special"], case["parse_special"])
    finally:
        oracle.close()
    return None if mismatch is None else str(mismatch)
