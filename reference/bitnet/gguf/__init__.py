"""GGUF files: the defensive reader, in-memory auto-repair, and a writer for repaired copies.

    from bitnet.gguf import load
    gf = load("model.gguf")      # parse + repair; gf.kv, gf.tensors, gf.fixes, gf.warnings
"""

from __future__ import annotations

import os
import warnings
from typing import Union

from bitnet.gguf.fixes import Fix, apply_fixes
from bitnet.gguf.reader import GGUFFile, GGUFWarning, KVType, TensorInfo, parse

__all__ = ["load", "parse", "GGUFFile", "TensorInfo", "KVType", "Fix", "GGUFWarning"]


def load(path: Union[str, os.PathLike], *, apply_repairs: bool = True) -> GGUFFile:
    """Parse a GGUF file and, unless told not to, repair its metadata in memory."""
    gf = parse(path)
    if not apply_repairs:
        return gf
    rows = {name: t.shape[1] for name, t in gf.tensors.items() if len(t.shape) >= 2}
    gf.kv, gf.fixes, notes = apply_fixes(gf.raw_kv, rows)
    for fix in gf.fixes:
        warnings.warn(f"{gf.path.name}: repaired {fix}", GGUFWarning, stacklevel=2)
    for note in notes:
        warnings.warn(f"{gf.path.name}: {note}", GGUFWarning, stacklevel=2)
    gf.warnings.extend(notes)
    return gf
