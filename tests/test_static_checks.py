"""The tree is legible to tools and holds its architecture: import paths equal file paths, ruff
and mypy are clean over the whole tree, mypy resolves first-party imports (a cross-module type
error is caught), the reference core imports no C kernels (statically and at run time), and no
source file is over 1000 lines nor any function over 150 (Python and C).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"bitnet": "reference", "bitnet_kernels": "optimized", "bitnet_harness": "harness"}


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.is_file():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (it comes with the [test] extra)")
    return found


def test_every_module_path_ends_with_its_dotted_name() -> None:
    """reference/bitnet/gguf/reader.py is bitnet.gguf.reader, for every importable module."""
    seen = 0
    for pkg_name, root in PACKAGES.items():
        pkg = importlib.import_module(pkg_name)
        assert Path(pkg.__file__ or "").resolve() == ROOT / root / pkg_name / "__init__.py"
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            spec = importlib.util.find_spec(info.name)
            assert spec is not None and spec.origin is not None, info.name
            origin = Path(spec.origin).resolve()
            parts = info.name.split(".")
            tail = Path(*parts) / "__init__.py" if info.ispkg else Path(*parts[:-1]) / (parts[-1] + ".py")
            if origin.suffix != ".py":  # a compiled extension: bitnet_kernels/_kernels.abi3.so
                tail = tail.with_name(origin.name)
            assert origin == ROOT / root / tail, f"{info.name} lives at {origin}"
            seen += 1
    assert seen > 50


def test_ruff_clean() -> None:
    r = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


# the tree is typed against numpy 2.0-2.4's stubs: numpy 1.24 (Python 3.8's last) types
# scalars and ufuncs otherwise, and 2.5's reject ndarray.min() and ufunc.reduce() calls that
# 2.4's accept (16 lines, none of them wrong)
NUMPY_STUBS = tuple(int(x) for x in np.__version__.split(".")[:2])


@pytest.mark.skipif(not (2, 0) <= NUMPY_STUBS <= (2, 4), reason=f"numpy {np.__version__}'s stubs "
                    "(the tree is typed against numpy 2.0-2.4's)")
def test_mypy_clean_over_the_whole_tree(tmp_path: Path) -> None:
    """pyproject's [tool.mypy] names the three packages and their source roots."""
    r = subprocess.run([_tool("mypy"), "--cache-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_mypy_sees_a_cross_module_type_error(tmp_path: Path) -> None:
    """An injected `x: int = bitnet.gguf.load` is reported (imports are resolved, not Any)."""
    probe = tmp_path / "probe.py"
    probe.write_text("from bitnet.gguf import load\n\nx: int = load\n")
    r = subprocess.run([_tool("mypy"), "--cache-dir", str(tmp_path / "cache"), str(probe)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "probe.py:3: error: Incompatible types in assignment" in r.stdout, r.stdout


# --- a pure reference core ----------------------------------------------------------------------

# the reference core: readable Python + numpy, no C kernels (API surfaces and tools are apart)
CORE = ("errors", "ggml_types", "gguf", "quants", "tokenizers", "ops", "model", "sampling",
        "numerics", "metrics")


def _core_files() -> List[Path]:
    base = ROOT / "reference" / "bitnet"
    files = [base / "__init__.py"]
    for name in CORE:
        path = base / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    return files


def _forbidden(module: str) -> bool:
    parts = module.split(".")
    return parts[0] in ("bitnet_kernels", "cffi") or any(p == "_kernels" for p in parts)


def _imported_modules(path: Path, source_root: Path) -> List[Tuple[int, str]]:
    """(line, absolute module name) of every import in the file, function-local ones included,
    relative ones resolved, and importlib.import_module / __import__ calls with a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = ".".join(path.relative_to(source_root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    else:
        package = package[: -len(".__init__")]
    found: List[Tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def test_reference_core_imports_no_kernels_statically() -> None:
    """Every import statement of the reference core (module level and inside functions),
    and every importlib call with a literal name: none names bitnet_kernels, _kernels or cffi."""
    files = _core_files()
    assert len(files) > 30, files
    bad = [f"{p.relative_to(ROOT)}:{line}: {mod}" for p in files
           for line, mod in _imported_modules(p, ROOT / "reference") if _forbidden(mod)]
    assert not bad, "the reference core imports the C kernels:\n" + "\n".join(bad)


def test_static_import_scan_sees_every_form(tmp_path: Path) -> None:
    """The scanner above catches a module-level, a function-local, a relative and an importlib
    import (a check that cannot fail proves nothing)."""
    pkg = tmp_path / "reference" / "bitnet" / "probe"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    probe = pkg / "mod.py"
    probe.write_text(textwrap.dedent("""
        import os
        import bitnet_kernels
        def f():
            from cffi import FFI
            from .. import _kernels
            import importlib
            return importlib.import_module("bitnet_kernels.tokenizer_engine")
        """))
    mods = [m for _, m in _imported_modules(probe, tmp_path / "reference") if _forbidden(m)]
    assert mods == ["bitnet_kernels", "cffi", "cffi.FFI", "bitnet._kernels",
                    "bitnet_kernels.tokenizer_engine"], mods


def test_reference_core_imports_no_kernels_at_run_time() -> None:
    """Importing every module of the reference core in a fresh interpreter loads neither
    bitnet_kernels nor cffi."""
    code = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        names = []
        for short in {CORE!r}:
            mod = importlib.import_module("bitnet." + short)
            names.append(mod.__name__)
            if hasattr(mod, "__path__"):
                for info in pkgutil.walk_packages(mod.__path__, prefix=mod.__name__ + "."):
                    importlib.import_module(info.name)
                    names.append(info.name)
        loaded = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("bitnet_kernels", "cffi") or "_kernels" in m.split("."))
        print(len(names), loaded)
        """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    count, loaded = r.stdout.split(" ", 1)
    assert int(count) > 30, r.stdout
    assert loaded.strip() == "[]", f"the reference core loaded {loaded.strip()}"


# --- sizes: files and functions ---------------------------------------------------------------

MAX_FILE_LINES = 1000
MAX_FUNCTION_LINES = 150
SIZE_ROOTS = ("reference", "optimized", "harness", "tests")
# generated tables, exempt from the file-size limit (each says how it is generated)
GENERATED_TABLES = {"reference/bitnet/tokenizers/_unicode_data.py"}  # by _gen_unicode_data.py
_SKIP_DIRS = {"__pycache__", "build", ".hypothesis"}


def _sources(*suffixes: str) -> List[Path]:
    out: List[Path] = []
    for root in SIZE_ROOTS:
        for path in sorted((ROOT / root).rglob("*")):
            rel = path.relative_to(ROOT)
            if (path.suffix in suffixes and path.is_file()
                    and not any(part in _SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts)):
                out.append(path)
    return out


def _line_count(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def test_no_source_file_over_1000_lines() -> None:
    """Python and C sources under reference/, optimized/, harness/ and tests/ (generated tables
    aside) stay under 1000 lines."""
    files = _sources(".py", ".c", ".h")
    assert len(files) > 100
    big = [f"{p.relative_to(ROOT)}: {n} lines" for p in files
           if (n := _line_count(p)) > MAX_FILE_LINES and str(p.relative_to(ROOT)) not in GENERATED_TABLES]
    assert not big, f"files over {MAX_FILE_LINES} lines:\n" + "\n".join(big)


def _python_functions(path: Path) -> List[Tuple[str, int, int]]:
    """(qualified name, def line, lines) of every function and method."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: List[Tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    out.append((name, child.lineno, (child.end_lineno or child.lineno) - child.lineno + 1))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def test_no_python_function_over_150_lines() -> None:
    """Every Python function and method, from its `def` line to its last line."""
    long = [f"{p.relative_to(ROOT)}:{line}: {name} ({n} lines)" for p in _sources(".py")
            for name, line, n in _python_functions(p) if n > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def _blank_c(text: str) -> str:
    """C source with comments, string and char literals' contents and preprocessor directives
    (with their continuation lines) replaced by spaces; newlines kept, so offsets map to lines."""
    out = list(text)
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#" or (line_start and c in " \t" and text[i:].lstrip(" \t")[:1] == "#"):
            j = i
            while j < n and not (text[j] == "\n" and text[j - 1] != "\\"):
                j += 1
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i, j = i + 1, j  # keep the quotes, blank what is between
        else:
            line_start = c == "\n" or (line_start and c in " \t")
            i += 1
            continue
        for k in range(i, min(j, n)):
            if out[k] != "\n":
                out[k] = " "
        i = j + (1 if c in "\"'" else 0)
        line_start = False
    return "".join(out)


def _c_functions(text: str) -> List[Tuple[str, int, int]]:
    """(name, first line, lines) of every function defined at file scope: a `{` at file scope
    whose preceding declaration ends with `)`, matched to its `}`; counted from the line of the
    function's name."""
    code = _blank_c(text)
    out: List[Tuple[str, int, int]] = []
    stack: List[Tuple[str, str, int]] = []  # (kind, function name, its line) per open brace
    head_start = 0
    for i, c in enumerate(code):
        if c == "{":
            depth = sum(1 for kind, _, _ in stack if kind != "extern")
            head = code[head_start:i]
            if depth == 0 and re.fullmatch(r'\s*extern\s*"\s*"\s*', head):
                stack.append(("extern", "", 0))
            elif depth == 0 and head.rstrip().endswith(")"):
                name, at = _c_function_name(head)
                stack.append(("function", name, code.count("\n", 0, head_start + at) + 1))
            else:
                stack.append(("block", "", 0))
            head_start = i + 1
        elif c == "}" and stack:
            kind, name, first = stack.pop()
            if kind == "function":
                out.append((name, first, code.count("\n", 0, i) + 1 - first + 1))
            head_start = i + 1
        elif c == ";" and not any(kind != "extern" for kind, _, _ in stack):
            head_start = i + 1
    return out


def _c_function_name(head: str) -> Tuple[str, int]:
    """(identifier before the parameter list, its offset) of a function's declaration `head`;
    the parameter list is the last top-level parenthesis group that is not an attribute."""
    groups = []  # offsets of top-level "("
    depth = 0
    for i, c in enumerate(head):
        if c == "(":
            if depth == 0:
                groups.append(i)
            depth += 1
        elif c == ")":
            depth -= 1
    for at in reversed(groups):
        m = re.search(r"(\w+)\s*$", head[:at])
        if m and m.group(1) != "__attribute__":
            return m.group(1), m.start(1)
    return "", len(head)


def test_c_function_scan_measures_functions() -> None:
    """The C scan finds functions (past comments, strings, macros, struct bodies, extern "C"
    blocks and initializers) and measures them from their name to their closing brace."""
    src = textwrap.dedent("""\
        /* a comment { */
        #define M(x) { x; \\
            }
        typedef struct { int a; } s;
        static const int t[2] = {1, 2};
        extern "C" {
        static int
        f(int a) { /* } */
            const char *s = "}{";
            if (a) { return '}'; }
            return 0;
        }
        }
        int g(void) __attribute__((unused));
        int g(void) { return 1; }
        """)
    assert _c_functions(src) == [("f", 8, 5), ("g", 15, 1)]


def test_no_c_function_over_150_lines() -> None:
    """Every C function in the sources (kernels, the C API headers, the C test programs)."""
    files = _sources(".c", ".h")
    assert files
    found = [(p, name, line, n) for p in files
             for name, line, n in _c_functions(p.read_text(encoding="utf-8", errors="replace"))]
    assert len(found) > 100, len(found)
    long = [f"{p.relative_to(ROOT)}:{line}: {name} ({n} lines)" for p, name, line, n in found
            if n > MAX_FUNCTION_LINES]
    assert not long, f"C functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
