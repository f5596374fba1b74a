"""The public surface of `llama_cpp` 0.3.36, module by module, against `bitnet.llama_compat`.

A module's public names are the names in its dir() without a leading underscore, excluding
imported modules and the stdlib / typing names a module merely imports (classes and functions
defined outside llama_cpp, typing constructs). Every such name of every public llama_cpp module
must exist under the same name in the mirror, except the documented list (docs/COMPATIBILITY.md,
"Python API"): the low-level ctypes bindings -- the C functions, structs, pointer and callback
types of `llama_cpp.llama_cpp` (re-exported by `llama_cpp`), and the ctypes-only modules
`llama_cpp_ext`, `llava_cpp`, `mtmd_cpp` -- plus the `server` package (`bitnet serve`).
Constants must have llama.cpp's values, TypedDicts the same keys, and functions / classes the
same parameter names.
"""

from __future__ import annotations

import ctypes
import importlib
import inspect
import types
from typing import Any, Dict, List, Set

import pytest

llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.llamacpp

MIRROR = "bitnet.llama_compat"
MODULES = ["", ".llama", ".llama_types", ".llama_chat_format", ".llama_grammar",
           ".llama_speculative", ".llama_tokenizer", ".llama_cache", ".llama_cpp"]
# documented exceptions: modules that are ctypes bindings only, or the server
NOT_MIRRORED_MODULES = ["llama_cpp.llama_cpp_ext", "llama_cpp.llava_cpp", "llama_cpp.mtmd_cpp",
                        "llama_cpp.server"]
TYPING = ("typing", "typing_extensions")
EXTRA_KEYWORDS = {"Llama": ["numerics"]}  # documented additions
CTYPES_MODULES = ("llama_cpp.llama_cpp", "llama_cpp._ctypes_extensions", "llama_cpp.llama_cpp_ext",
                  "_ctypes", "ctypes")


def is_ctypes_binding(value: Any) -> bool:
    """A C function wrapper, struct, pointer, callback or scalar ctypes type of the bindings."""
    if inspect.isclass(value) and issubclass(value, (ctypes._SimpleCData, ctypes.Structure,
                                                      ctypes.Union, ctypes._Pointer)):
        return True
    if inspect.isclass(value) and value.__module__ in ("ctypes", "_ctypes"):
        return True  # CFUNCTYPE callback types
    if isinstance(value, type(ctypes.c_int)) or type(value).__module__ in ("_ctypes", "ctypes"):
        return True
    return callable(value) and getattr(value, "__module__", "") in CTYPES_MODULES


def public_names(module: types.ModuleType) -> Dict[str, Any]:
    """name -> value for the names the module offers (see the module docstring)."""
    out = {}
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if isinstance(value, types.ModuleType) or getattr(value, "__module__", None) in TYPING:
            continue
        owner = getattr(value, "__module__", None) or ""
        if (inspect.isclass(value) or inspect.isfunction(value)) and not owner.startswith("llama_cpp"):
            continue
        if name in ("annotations", "TYPE_CHECKING"):  # __future__ / typing flags
            continue
        out[name] = value
    return out


def exceptions_of(module: types.ModuleType) -> Set[str]:
    return {n for n, v in public_names(module).items() if is_ctypes_binding(v)}


@pytest.mark.parametrize("suffix", MODULES, ids=lambda s: "llama_cpp" + s)
def test_every_public_name_is_mirrored(suffix: str) -> None:
    ref = importlib.import_module("llama_cpp" + suffix)
    ours = importlib.import_module(MIRROR + suffix)
    names = public_names(ref)
    excepted = exceptions_of(ref)
    missing = sorted(n for n in names if n not in excepted and not hasattr(ours, n))
    assert not missing, f"llama_cpp{suffix} names missing from {MIRROR}{suffix}: {missing}"
    # the exception list is what it says: only ctypes bindings
    assert all(is_ctypes_binding(names[n]) for n in excepted)


def test_exception_list_is_the_ctypes_bindings() -> None:
    """The excepted names of the package: the C functions and types of llama_cpp.llama_cpp
    (measured in 0.3.36: 293 names, 266 of them functions), nothing from llama.py."""
    excepted = exceptions_of(llama_cpp)
    assert excepted and excepted.isdisjoint(public_names(importlib.import_module("llama_cpp.llama")))
    funcs = {n for n in excepted
             if callable(getattr(llama_cpp, n)) and not inspect.isclass(getattr(llama_cpp, n))}
    assert "llama_decode" in funcs and "llama_sampler_init_grammar" in funcs
    for module in NOT_MIRRORED_MODULES:
        with pytest.raises(ImportError):
            importlib.import_module(module.replace("llama_cpp", MIRROR, 1))


def test_constants_have_llama_cpp_values() -> None:
    from bitnet.llama_compat import llama_cpp as ours

    ref = importlib.import_module("llama_cpp.llama_cpp")
    ints = {n: v for n, v in public_names(ref).items() if type(v) is int}
    assert len(ints) == 213  # measured: llama-cpp-python 0.3.36 defines 213 LLAMA_* / GGML_*
    assert {n: getattr(ours, n, None) for n in ints} == ints
    import bitnet.llama_compat as package

    assert all(getattr(package, n) == v for n, v in ints.items())  # re-exported, as by llama_cpp


def _typed_dicts(module: types.ModuleType) -> List[str]:
    return [n for n, v in public_names(module).items() if hasattr(v, "__required_keys__")]


def test_typed_dicts_have_the_same_keys() -> None:
    ref = importlib.import_module("llama_cpp.llama_types")
    ours = importlib.import_module(MIRROR + ".llama_types")
    names = _typed_dicts(ref)
    assert len(names) >= 50
    for n in names:
        a, b = getattr(ours, n), getattr(ref, n)
        assert (a.__required_keys__, a.__optional_keys__) == (b.__required_keys__, b.__optional_keys__), n


def _parameter_names(obj: Any) -> List[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return [p.name for p in inspect.signature(target).parameters.values()]
    except (TypeError, ValueError):
        return []


def test_functions_and_classes_take_the_same_parameters() -> None:
    """Same parameter names for every public function, class and public method (the vision
    handlers, which cannot be constructed here, and documented extra keywords aside)."""
    from bitnet.llama_compat._chat_vision import Llava15ChatHandler

    checked = 0
    for suffix in MODULES[1:-1]:
        ref = importlib.import_module("llama_cpp" + suffix)
        ours = importlib.import_module(MIRROR + suffix)
        for name, value in public_names(ref).items():
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            if hasattr(value, "__required_keys__"):  # TypedDicts: test_typed_dicts_have_the_same_keys
                continue
            mine = getattr(ours, name)
            if inspect.isclass(mine) and issubclass(mine, Llava15ChatHandler):
                continue
            if inspect.isclass(value):
                for meth, fn in vars(value).items():
                    if not meth.startswith("_") and inspect.isfunction(fn) and hasattr(mine, meth):
                        assert _parameter_names(getattr(mine, meth)) == _parameter_names(fn), f"{name}.{meth}"
                        checked += 1
            ref_params = _parameter_names(value)
            if ref_params and ref_params not in (["self", "args", "kwargs"], ["args", "kwargs"]):
                extra = EXTRA_KEYWORDS.get(name, [])
                assert [p for p in _parameter_names(mine) if p not in extra] == ref_params, f"{suffix} {name}"
                checked += 1
    assert checked >= 100  # measured: 108 signatures compared


def test_string_constants_are_llama_cpp_pythons() -> None:
    """Templates, grammars and rule texts (llama_chat_format's CHATML_CHAT_TEMPLATE,
    llama_grammar's JSON_GBNF / SPACE_RULE / DOTALL, ...): the same strings."""
    checked = 0
    for suffix in MODULES[1:]:
        ref = importlib.import_module("llama_cpp" + suffix)
        ours = importlib.import_module(MIRROR + suffix)
        for name, value in public_names(ref).items():
            if isinstance(value, str) and name.isupper():
                assert getattr(ours, name) == value, f"llama_cpp{suffix}.{name}"
                checked += 1
    assert checked >= 15  # measured: 19 string constants
