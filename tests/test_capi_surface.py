"""The C API's surface against llama.h 0.3.36: every function declared with the same type,
the documented failures stubbed as docs/COMPATIBILITY.md lists them, the header usable from
C99, C11, C17 and C++11..20 (both API generations), with and without ggml's own headers."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from bitnet.ffi import surface
from bitnet_harness.corpora import SMOLLM2, corpus_path
from tests.capi_programs import (
    C_DIR,
    ROOT,
    bitnet_flags,
    compile_program,
    ensure_library,
    llama_cpp_dirs,
    parse_lines,
    run_program,
)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("g++") is None,
                                reason="gcc and g++ are needed to build C programs")
INCLUDE = ROOT / "reference" / "bitnet" / "ffi" / "include"
DOCS = ROOT / "docs" / "COMPATIBILITY.md"


def aux_info(tu: str, includes: List[Path], tmp: Path) -> Dict[str, Tuple[str, str]]:
    """name -> (return type, parameter types) of every function a C11 translation unit declares,
    as gcc -aux-info prints them (typedef names kept, spacing canonical)."""
    src, info = tmp / "tu.c", tmp / "aux.txt"
    src.write_text(tu)
    subprocess.run(["gcc", "-std=c11", "-fsyntax-only", f"-aux-info={info}",
                    *[f"-I{d}" for d in includes], str(src)], check=True, capture_output=True,
                   text=True, timeout=120)
    out: Dict[str, Tuple[str, str]] = {}
    for line in info.read_text().splitlines():
        m = re.match(r"/\* (\S+):\d+:\w+ \*/ extern (.*?)\b(\w+) \((.*)\);$", line)
        if m and Path(m.group(1)).name.startswith(("llama.h", "bitnet_ffi")) \
                and not m.group(3).startswith("ggml_"):
            out[m.group(3)] = (m.group(2).strip(), m.group(4))
    return out


@pytest.fixture(scope="module")
def llama_h_functions(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Tuple[str, str]]:
    inc = llama_cpp_dirs()["include"]
    got = aux_info('#include "llama.h"\n', [inc], tmp_path_factory.mktemp("llama_h"))
    assert len(got) == 255, len(got)  # llama.h 0.3.36 declares 255 functions
    return got


@pytest.mark.llamacpp
def test_every_llama_h_function_is_declared_with_its_type(
        llama_h_functions: Dict[str, Tuple[str, str]], tmp_path: Path) -> None:
    """The function lists of llama.h 0.3.36 and bitnet_ffi.h: none missing, every one with the
    same return and parameter types, whether ggml's headers are found or not."""
    ggml_inc = llama_cpp_dirs()["include"]
    ours_with_ggml = aux_info('#include "bitnet_ffi.h"\n', [INCLUDE, ggml_inc], tmp_path)
    # without ggml's headers on the include path: the header's own ggml declarations
    ours_alone = aux_info('#include "bitnet_ffi.h"\n', [INCLUDE], tmp_path)
    for ours in (ours_with_ggml, ours_alone):
        missing = sorted(set(llama_h_functions) - set(ours))
        assert not missing, missing
        differ = {n: (llama_h_functions[n], ours[n]) for n in llama_h_functions
                  if ours[n] != llama_h_functions[n]}
        assert not differ, differ
    # and the header parser the build uses sees exactly these (plus the extensions)
    parsed = surface.parse_header()
    assert set(llama_h_functions) <= set(parsed)
    extra = set(parsed) - set(llama_h_functions)
    assert all(n.startswith(("bitnet_", "llama_sample_", "llama_sampling_", "llama_kv_cache_",
                             "llama_eval",
                             "llama_set_rng_seed")) for n in extra), sorted(extra)


def _documented_failures() -> Dict[str, str]:
    """name -> what docs/COMPATIBILITY.md says, from its "Documented failures" table."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("### Documented failures"):]
    section = section[:section.index("\n## ")]
    return {m.group(1): m.group(2).strip()
            for m in re.finditer(r"^\| `(\w+)` \| (.*?) \|", section, flags=re.M)}


def test_documented_failure_list_matches_the_library() -> None:
    """docs/COMPATIBILITY.md lists exactly the functions the library stubs (UNSUPPORTED) or
    supports in part (PARTIAL), with the same failure value."""
    docs = _documented_failures()
    assert set(docs) == set(surface.UNSUPPORTED) | set(surface.PARTIAL)
    for name, (value, _why) in surface.UNSUPPORTED.items():
        assert docs[name].startswith(f"`{value or 'nothing (void)'}`"), (name, docs[name])


def test_unsupported_functions_return_the_documented_value(tmp_path: Path) -> None:
    """A generated program calls every UNSUPPORTED function with zeroed arguments: each
    returns its documented failure value and sets the last error to -1 with a reason."""
    functions = surface.parse_header()
    lines = ['#include <stdio.h>', '#include <string.h>', '#include "bitnet_ffi.h"',
             "int main(void) {"]
    for name in sorted(surface.UNSUPPORTED):
        fn = functions[name]
        decls = "".join(f"    {p.type} a{i}; memset(&a{i}, 0, sizeof a{i});\n"
                        for i, p in enumerate(fn.params))
        args = ", ".join(f"a{i}" for i in range(len(fn.params)))
        call = f"{name}({args})"
        shown = "0" if fn.ret == "void" else (f"(long long)(intptr_t){call}" if fn.ret.endswith("*")
                                            else f"(long long){call}")
        pre = f"    {call};\n" if fn.ret == "void" else ""
        lines.append(f"  {{\n{decls}{pre}    long long v = {shown};\n"
                     f'    printf("{name} %lld %d %s\\n", v, bitnet_last_error(), '
                     f"bitnet_last_error_message());\n  }}")
    lines.append("  return 0;\n}\n")
    src = tmp_path / "unsupported.c"
    src.write_text("\n".join(lines).replace("#include <string.h>",
                                            "#include <string.h>\n#include <stdint.h>"))
    exe = compile_program(src, tmp_path / "unsupported", bitnet_flags())
    out = run_program(exe).stdout.decode().splitlines()
    got = {ln.split(" ")[0]: ln.split(" ", 3)[1:] for ln in out}
    expect = {"NULL": 0, "false": 0, "": 0, "-1": -1, "-2": -2, "0": 0}
    for name, (value, why) in surface.UNSUPPORTED.items():
        v, err, msg = got[name]
        assert int(v) == expect[value], name
        assert int(err) == -1 and why in msg, (name, err, msg)


def test_python_side_implements_the_rest() -> None:
    """Every function neither in C nor UNSUPPORTED has a Python implementation, and the built
    library exports every function of the header."""
    from bitnet.ffi import capi

    assert set(surface.python_implemented()) == set(capi.core.EXPORTS)
    lib = ensure_library()
    nm = subprocess.run(["nm", "-D", "--defined-only", str(lib)], check=True, capture_output=True,
                        text=True).stdout
    exported = set(re.findall(r" T (\w+)$", nm, flags=re.M))
    assert set(surface.parse_header()) <= exported
    assert not {n for n in exported if n.startswith("bitnet__")}  # internals stay hidden


# ---- languages and standards -----------------------------------------------------------------

C_STANDARDS = ["c99", "c11", "c17"]
CXX_STANDARDS = ["c++11", "c++14", "c++17", "c++20"]


@pytest.mark.parametrize("std", C_STANDARDS + CXX_STANDARDS)
def test_current_and_legacy_programs_build(tmp_path: Path, std: str) -> None:
    """current_api.c (today's llama.h) builds with -Werror in every standard (C: also
    -pedantic); legacy_api.c (the locked legacy API) too, except in C99, which reaches the
    legacy forms by BITNET_FFI_LEGACY_API or bitnet_model_* (legacy_c99.c)."""
    cxx = std.startswith("c++")
    flags = bitnet_flags() + ([] if cxx else ["-pedantic"])
    programs = ["current_api", "legacy_c99"] if std == "c99" else ["current_api", "legacy_api",
                                                                  "legacy_c99", "error_paths"]
    for name in programs:
        src = C_DIR / f"{name}.c"
        if cxx:  # the same source as C++
            src = tmp_path / f"{name}.cpp"
            src.write_text((C_DIR / f"{name}.c").read_text())
        compile_program(src, tmp_path / name, flags, cxx=cxx, std=std)


@pytest.mark.llamacpp
@pytest.mark.parametrize("std", ["c99", "c11", "c++11", "c++17"])
def test_current_api_program_builds_against_llama_h_too(tmp_path: Path, std: str) -> None:
    """The same current-API program, only the include changed, builds with llama.h."""
    src = (C_DIR / "current_api.c").read_text()
    assert src.count('#include "bitnet_ffi.h"') == 1
    real = tmp_path / ("current.cpp" if std.startswith("c++") else "current.c")
    real.write_text(src.replace('#include "bitnet_ffi.h"', '#include "llama.h"'))
    cmd = ["g++" if std.startswith("c++") else "gcc", f"-std={std}", "-fsyntax-only", "-Wall",
           "-Wextra", "-Werror", f"-I{llama_cpp_dirs()['include']}", str(real)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("order", ["ggml_first", "ours_first"])
@pytest.mark.parametrize("lang", ["c", "c++"])
def test_header_coexists_with_ggml_h(tmp_path: Path, order: str, lang: str) -> None:
    """ggml.h before or after bitnet_ffi.h, in C and C++: ggml's types come from ggml.h (no
    redefinition), llama.h's functions that take them compile."""
    ggml_inc = llama_cpp_dirs()["include"]
    heads = ['#include "ggml.h"', '#include "ggml-backend.h"', '#include "bitnet_ffi.h"']
    if order == "ours_first":
        heads = heads[2:] + heads[:2]
    body = ("int main(void) {\n  enum ggml_type t = GGML_TYPE_Q4_K;\n"
            "  struct llama_context_params p = llama_context_default_params();\n"
            "  p.type_k = t;\n  ggml_backend_dev_t dev = 0;\n  (void)dev;\n"
            "  return (int)p.type_k == 12 ? 0 : 1;\n}\n")
    src = tmp_path / ("coexist.cpp" if lang == "c++" else "coexist.c")
    src.write_text("\n".join(heads) + "\n" + body)
    cmd = ["g++" if lang == "c++" else "gcc", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
           f"-I{INCLUDE}", f"-I{ggml_inc}", str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def model_path() -> Path:
    return corpus_path(SMOLLM2)


def test_c99_program_on_todays_api_runs(tmp_path: Path, model_path: Path) -> None:
    """current_api.c as C99 (-pedantic -Werror): llama_tokenize(vocab, ...) and
    llama_token_to_piece(vocab, ...) reach the current API; it generates what its C11 build
    does; legacy_c99.c (the locked legacy API in C99) generates the same greedy tokens."""
    flags = bitnet_flags()
    prompt = "The capital of France is"
    c99 = compile_program(C_DIR / "current_api.c", tmp_path / "c99", flags + ["-pedantic"], std="c99")
    c11 = compile_program(C_DIR / "current_api.c", tmp_path / "c11", flags)
    out99 = parse_lines(run_program(c99, str(model_path), prompt, "6").stdout)
    out11 = parse_lines(run_program(c11, str(model_path), prompt, "6").stdout)
    assert out99 == out11 and len(out99["generated"]) == 6
    legacy = compile_program(C_DIR / "legacy_c99.c", tmp_path / "legacy_c99",
                             flags + ["-pedantic"], std="c99")
    out = parse_lines(run_program(legacy, str(model_path), prompt, "6").stdout)
    # current_api.c tokenizes with add_special and parse_special as legacy_c99.c does
    assert out["tokens"] == out99["tokens"]
    assert out["generated"] == out99["generated"]


@pytest.mark.llamacpp
def test_model_vocab_and_context_getters_print_what_libllama_prints(tmp_path: Path,
                                                                    model_path: Path) -> None:
    """model_info.c (every getter of a model, its vocabulary and contexts of 1-3 sequences,
    per-sequence and unified) prints libllama's lines, metadata in gguf_kv's walk order
    included. One known difference: llama_vocab_eot, where llama.cpp takes the first EOT-like
    token its token_to_id hash map yields and bitnet.tokenizers.vocab the first of llama.cpp's
    text list (docs/COMPATIBILITY.md, C API)."""
    dirs = llama_cpp_dirs()
    src = C_DIR / "model_info.c"
    ours = compile_program(src, tmp_path / "ours", bitnet_flags(), extra=["-DUSE_BITNET"])
    theirs = compile_program(src, tmp_path / "theirs", [
        f"-I{dirs['include']}", f"-L{dirs['lib']}", "-lllama", f"-Wl,-rpath,{dirs['lib']}"])
    a = run_program(theirs, str(model_path)).stdout.decode().splitlines()
    b = run_program(ours, str(model_path)).stdout.decode().splitlines()
    assert len(a) == len(b) > 100
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    # SmolLM2: '<|endoftext|>' (0) for llama.cpp, '<|im_end|>' (2) here
    assert diff == [("specials 1 2 0 -1 198 2 -1", "specials 1 2 2 -1 198 2 -1")], diff


def test_unordered_map_walk_order_is_libstdcxx(tmp_path: Path) -> None:
    """bitnet.ffi.capi.stdmap replays libstdc++'s unordered_map (hash, buckets, rehashes):
    the walk order of a real std::unordered_map<std::string, int> for 1..20000 keys."""
    from bitnet.ffi.capi.stdmap import unordered_order

    src = tmp_path / "walk.cpp"
    src.write_text("#include <iostream>\n#include <string>\n#include <unordered_map>\n"
                   "int main() { std::unordered_map<std::string, int> m; std::string s; int i = 0;\n"
                   "  while (std::getline(std::cin, s)) m.emplace(s, i++);\n"
                   "  for (auto &kv : m) std::cout << kv.second << '\\n'; }\n")
    exe = compile_program(src, tmp_path / "walk", [], cxx=True)
    rng = random.Random(7)
    for n in (1, 13, 14, 30, 200, 20000):
        keys = ["".join(rng.choice("ab.z_09") for _ in range(rng.randint(0, 17))) for _ in range(n)]
        res = subprocess.run([str(exe)], input="\n".join(keys) + "\n", capture_output=True,
                             text=True, timeout=60, check=True)
        assert [int(x) for x in res.stdout.split()] == unordered_order(k.encode() for k in keys), n
