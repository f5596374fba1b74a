"""Where the project's source checkout is (its tests/, corpora/, reports/ and docs/).

The harness drives the checkout's pytest suite and writes reports beside it, so it needs
one; `bitnet-compat` installed from a wheel has none unless told where it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

ENV = "BITNET_COMPAT_CHECKOUT"


def _is_checkout(path: Path) -> bool:
    return (path / "tests" / "conftest.py").is_file() and (path / "pyproject.toml").is_file()


def find_checkout() -> Optional[Path]:
    """The checkout: $BITNET_COMPAT_CHECKOUT, else the one this package was imported from
    (an editable install), else the current directory or one of its parents; None outside."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).resolve() if _is_checkout(Path(env)) else None
    here = Path(__file__).resolve().parent.parent.parent  # harness/bitnet_harness/ -> repo
    if _is_checkout(here):
        return here
    cwd = Path.cwd().resolve()
    for cand in (cwd, *cwd.parents):
        if _is_checkout(cand):
            return cand
    return None


def require_checkout() -> Path:
    """The checkout, or SystemExit(2) with one line saying how to point at one."""
    root = find_checkout()
    if root is None:
        raise SystemExit(
            "bitnet-compat: this needs the bitnet-compat source checkout (its tests/ folder); "
            f"run it inside one or set {ENV}=/path/to/checkout"
        )
    return root
