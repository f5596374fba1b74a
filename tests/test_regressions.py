"""Replays every saved fuzz regression case (corpora/regressions/) against the peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitnet_harness.fuzz import REGRESSIONS, replay

CASES = sorted(REGRESSIONS.glob("*.json")) if REGRESSIONS.is_dir() else []


@pytest.mark.llamacpp
# getattr: with no cases pytest 8.3 asks the ids of NOTSET
@pytest.mark.parametrize("case", CASES, ids=lambda p: getattr(p, "stem", str(p)))
def test_regression_case_agrees_with_llamacpp(case: Path) -> None:
    mismatch = replay(case)
    assert mismatch is None, mismatch
