"""GGUF files: the defensive reader, in-memory auto-repair, and a writer for repaired copies.

    from bitnet.gguf import load
    gf = load("model.gguf")      # parse + repair; gf.kv, gf.tensors, gf.fixes, gf.warnings
"""

from __future__ import annotations

import logging
import os
from typing import Union

from bitnet.gguf.fixes import Fix, Note, apply_fixes
from bitnet.gguf.reader import LOG, GGUFFile, GGUFWarning, KVType, TensorInfo, parse

__all__ = ["load", "parse", "GGUFFile", "TensorInfo", "KVType", "Fix", "Note", "GGUFWarning", "LOG"]


def load(path: Union[str, os.PathLike], *, apply_repairs: bool = True, quiet: bool = False
         ) -> GGUFFile:
    """Parse a GGUF file and, unless told not to, repair its metadata in memory.

    Each repair and note goes to the `bitnet.gguf` logger (INFO when llama.cpp behaves the
    same on this file, WARNING when the repair changes behaviour compared with llama.cpp;
    DEBUG when `quiet`) and stays in `gf.fixes` / `gf.warnings`. Nothing is raised as a
    Python warning, so `-W error` never turns a repair into a failed load."""
    gf = parse(path)
    if not apply_repairs:
        return gf
    rows = {name: t.shape[1] for name, t in gf.tensors.items() if len(t.shape) >= 2}
    gf.kv, gf.fixes, notes = apply_fixes(gf.raw_kv, rows)

    def level(as_llama_cpp: bool) -> int:
        return logging.DEBUG if quiet else logging.INFO if as_llama_cpp else logging.WARNING

    for fix in gf.fixes:
        LOG.log(level(fix.as_llama_cpp), "%s: repaired %s", gf.path.name, fix)
    for note in notes:
        LOG.log(level(getattr(note, "as_llama_cpp", False)), "%s: %s", gf.path.name, note)
    gf.warnings.extend(notes)
    return gf
