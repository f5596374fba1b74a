"""Agreement metrics between two implementations' outputs.

NMSE is llama.cpp test-backend-ops' metric: sum((ours - ref)^2) / sum(ref^2), computed in
float64. `nmse` reduces over the last axis (one value per row); `nmse_total` over everything.
"""

from __future__ import annotations

import numpy as np


def nmse(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-row NMSE of `ours` against `ref` over the last axis. (..., N), (..., N) -> (...).

    A row whose reference is all zeros divides by 1 (its NMSE is then its squared error)."""
    ours64, ref64 = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    den = (ref64**2).sum(-1)
    return np.asarray(((ours64 - ref64) ** 2).sum(-1) / np.where(den > 0, den, 1.0))


def nmse_total(ours: np.ndarray, ref: np.ndarray) -> float:
    """NMSE over all elements (one number for a whole tensor)."""
    return float(nmse(np.ravel(ours), np.ravel(ref)))
