"""Replays every saved fuzz regression case (corpora/regressions/) against the peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitnet_harness.fuzz import REGRESSIONS, replay

CASES = sorted(REGRESSIONS.glob("*.json")) if REGRESSIONS.is_dir() else []


@pytest.mark.llamacpp
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_regression_case_agrees_with_llamacpp(case: Path) -> None:
    mismatch = replay(case)
    assert mismatch is None, mismatch
