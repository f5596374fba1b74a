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


class NoCheckoutError(RuntimeError):
    """No source checkout was found; the message says how to point at one (one line)."""


def require_checkout(what: str = "this command") -> Path:
    """The checkout, or NoCheckoutError with one line saying how to point at one."""
    root = find_checkout()
    if root is None:
        raise NoCheckoutError(
            f"{what} needs the bitnet-compat source checkout (its tests/ folder): run it "
            f"inside one or set {ENV}=/path/to/checkout")
    return root


def reports_root() -> Path:
    """Where run and campaign reports go by default: the checkout's reports/ folder."""
    return require_checkout("writing a report without --report") / "reports"


def regressions_root() -> Path:
    """Where fuzz findings are saved and replayed: the checkout's corpora/regressions/, else
    a `regressions` folder beside the corpora data directory."""
    root = find_checkout()
    if root is not None:
        return root / "corpora" / "regressions"
    from bitnet_harness.corpora import data_dir

    return data_dir().parent / "regressions"
