"""llama_chat_apply_template / llama_chat_builtin_templates: one program (tests/c/chat.c)
built against libllama and against libbitnet_ffi prints the same bytes for every built-in
name, the 102 real templates of llama.cpp's test suite and models/templates, four
conversations, with and without the assistant prompt (also what a too-small buffer gets)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import List

import pytest

from tests.capi_programs import (
    C_DIR,
    bitnet_flags,
    compile_program,
    llama_cpp_source,
    llama_flags,
    run_program,
)

pytestmark = [pytest.mark.llamacpp,
              pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed")]


def real_templates() -> List[str]:
    """models/templates/*.jinja and the template strings of tests/test-chat-template.cpp."""
    src = llama_cpp_source()
    out = [p.read_text(encoding="utf-8") for p in sorted((src / "models" / "templates").glob("*.jinja"))]
    code = (src / "tests" / "test-chat-template.cpp").read_text(encoding="utf-8")
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'"}
    for m in re.finditer(r'/\* \.template_str= \*/\s*(?:u8)?"((?:[^"\\]|\\.)*)"', code):
        out.append(re.sub(r"\\(.)", lambda e: escapes.get(e.group(1), "\\" + e.group(1)), m.group(1)))
    return out


def test_chat_templates_byte_identical_to_libllama(tmp_path: Path) -> None:
    templates = real_templates()
    assert len(templates) == 102
    data = tmp_path / "templates.txt"
    data.write_text("\n<<<END>>>\n".join(templates), encoding="utf-8")
    ours = compile_program(C_DIR / "chat.c", tmp_path / "chat_bitnet", bitnet_flags(),
                           extra=["-DUSE_BITNET"])
    ref = compile_program(C_DIR / "chat.c", tmp_path / "chat_llama", llama_flags())
    got, want = run_program(ours, str(data)).stdout, run_program(ref, str(data)).stdout
    assert got == want
    lines = got.decode().splitlines()
    assert lines[0].startswith("builtin 54 ")
    # every line of a real template: 102 templates x 4 conversations x 2 (add_ass)
    assert sum(1 for ln in lines if re.match(r"^\d+ ", ln) and int(ln.split()[0]) < 1000) == 816
    unknown = sum(1 for ln in lines if re.match(r"^\d+ \d \d -1 ?$", ln))
    assert 0 < unknown < 816  # some real templates match no built-in format (-1 in both)
