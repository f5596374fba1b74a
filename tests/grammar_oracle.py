"""Helpers for the grammar tests: llama.cpp's grammar sampler as the oracle, and a hypothesis
strategy of GBNF grammars.

`LlamaCppGrammar` drives llama.cpp's own grammar sampler (llama_sampler_init_grammar /
llama_sampler_apply / llama_sampler_accept through llama-cpp-python's ctypes bindings) over a
vocab-only model: which candidate tokens it masks, state by state. Only tokens it allows are
ever accepted (llama.cpp aborts on anything else).

`grammars()` draws GBNF texts from a small syntax tree: rules root, r1, r2 (a rule refers only
to later rules, plus an occasional self-recursive rule with the recursion not leftmost, so no
left recursion), sequences, alternations, groups, literals and character classes over an
alphabet with multi-byte characters (é, 中, an emoji), ranges and negation, `.`, every
repetition operator, escapes (\\x.. \\u.... \\t \\n \\\\ \\" \\[ \\] \\-), comments and line breaks.
"""

from __future__ import annotations

import ctypes
from typing import Any, List

import numpy as np
from hypothesis import strategies as st

ALPHABET = ["a", "b", "c", " ", "0", "-", "é", "中", "\n", '"', "\\", "]", "\U0001f600", "{", ":"]


class LlamaCppGrammar:
    """llama.cpp's grammar sampler over `llm`'s vocabulary (a llama_cpp.Llama)."""

    def __init__(self, llm: Any, text: str, root: str = "root") -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.smpl = llama_cpp.llama_sampler_init_grammar(
            llm._model.vocab, text.encode("utf-8"), root.encode("utf-8")
        )
        if not self.smpl:
            raise ValueError("llama.cpp refused the grammar")

    def allowed(self, ids: np.ndarray) -> np.ndarray:
        """bool [len(ids)]: the candidates llama.cpp leaves finite."""
        import llama_cpp

        n = int(ids.shape[0])
        data = (llama_cpp.llama_token_data * n)()
        for i, t in enumerate(ids.tolist()):
            data[i].id, data[i].logit, data[i].p = int(t), 0.0, 0.0
        arr = llama_cpp.llama_token_data_array(data=data, size=n, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(self.smpl, ctypes.byref(arr))
        return np.array([np.isfinite(data[i].logit) for i in range(n)], dtype=bool)

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self.smpl, int(token))

    def __del__(self) -> None:
        if getattr(self, "smpl", None):
            self._lib.llama_sampler_free(self.smpl)
            self.smpl = None


def accepts_by_llama_cpp(llm: Any, text: str) -> bool:
    """True if llama.cpp parses and initializes the grammar."""
    try:
        LlamaCppGrammar(llm, text)
    except ValueError:
        return False
    return True


# --- grammar texts ------------------------------------------------------------------------------


def _literal_char(c: str, form: int) -> str:
    """One character inside "...": escaped when it must be, sometimes by code."""
    if c == '"':
        return '\\"'
    if c == "\\":
        return "\\\\"
    if c == "\n":
        return "\\n"
    if form == 1 and ord(c) < 0x100:
        return f"\\x{ord(c):02X}"
    if form == 2 and ord(c) < 0x10000:
        return f"\\u{ord(c):04x}"
    return c


def _class_char(c: str) -> str:
    if c in "]\\-":
        return "\\" + c
    if c == "\n":
        return "\\n"
    if c == "^":
        return "\\x5E"
    return c


@st.composite
def _atom(draw: Any, refs: List[str]) -> str:
    kind = draw(
        st.sampled_from(["lit", "lit", "class", "dot", "ref"] if refs else ["lit", "lit", "class", "dot"])
    )
    if kind == "lit":
        chars = draw(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=3))
        return '"' + "".join(_literal_char(c, draw(st.integers(0, 2))) for c in chars) + '"'
    if kind == "class":
        items = []
        for _ in range(draw(st.integers(1, 3))):
            a, b = sorted(draw(st.lists(st.sampled_from(ALPHABET), min_size=2, max_size=2)), key=ord)
            items.append(_class_char(a) if draw(st.booleans()) else f"{_class_char(a)}-{_class_char(b)}")
        return "[" + ("^" if draw(st.booleans()) else "") + "".join(items) + "]"
    if kind == "dot":
        return "."
    return draw(st.sampled_from(refs))


def _op(draw: Any) -> str:
    return draw(st.sampled_from(["", "", "", "*", "+", "?", "{2}", "{0,2}", "{1,}", "{1,3}"]))


@st.composite
def _expr(draw: Any, refs: List[str], depth: int, nested: bool = False) -> str:
    """An alternation of sequences of (atoms | groups), each with an optional repetition;
    line breaks only inside groups (at the top level a newline ends the rule)."""
    alts = []
    for _ in range(draw(st.integers(1, 3))):
        items = []
        for _ in range(draw(st.integers(1, 3))):
            if depth > 0 and draw(st.integers(0, 3)) == 0:
                inner = draw(_expr(refs, depth - 1, nested=True))
                items.append(f"({inner})" + _op(draw))
            else:
                items.append(draw(_atom(refs)) + _op(draw))
        alts.append(draw(st.sampled_from([" ", "  ", "\t"])).join(items))
    sep = draw(st.sampled_from([" | ", "|", "\n  | "] if nested else [" | ", "|"]))
    return sep.join(alts)


@st.composite
def grammars(draw: Any) -> str:
    """A valid GBNF grammar text (see the module docstring)."""
    names = ["root", "r1", "r2"][: draw(st.integers(1, 3))]
    lines = []
    for i, name in enumerate(names):
        body = draw(_expr(names[i + 1 :], 2))
        if name != "root" and draw(st.integers(0, 4)) == 0:
            body = f'"(" {name} ")" | {body}'  # recursion, not leftmost
        comment = draw(st.sampled_from(["", "", "  # a comment"]))
        lines.append(f"{name} ::= {body}{comment}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n# end\n"]))


@st.composite
def mutated_grammars(draw: Any) -> str:
    """A grammar with a few random edits (often invalid): a parser-agreement input."""
    text = draw(grammars())
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["delete", "insert"]))
        if edit == "delete" and pos < len(text):
            text = text[:pos] + text[pos + 1 :]
        else:
            ch = draw(st.sampled_from(list('"[]()|*+?{},:=^-\\.# \nx0<>!') + ["::=", "\\x4", "\\u12"]))
            text = text[:pos] + ch + text[pos:]
    return text
