"""pytest plugin: applies BITNET_INJECT_FAULT (see bitnet_harness.faults) in every worker."""

from __future__ import annotations

import os

from bitnet_harness.faults import inject


def pytest_configure(config: object) -> None:
    name = os.environ.get("BITNET_INJECT_FAULT")
    if name:
        inject(name)
