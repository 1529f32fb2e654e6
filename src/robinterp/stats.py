"""Statistics of per-image results: the mean with its bootstrap interval, and row-wise correlations.

`bootstrap_mean` gives the mean and 95% interval that inversion distances, attribution metrics and
the randomisation check report (FID has its own interval: `fid.fid_interval`); `pearson_rows` and
`spearman_rows` correlate two sets of per-image values row by row (faithfulness correlation,
parameter randomisation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import RobinterpError

if TYPE_CHECKING:
    import torch

MIN_BOOTSTRAP_ROUNDS = 20


def bootstrap_mean(values, rounds: int, seed: int, level: float = 0.95) -> dict:
    """Mean and percentile bootstrap interval of the mean (resampling images).

    Resampling with replacement leaves the mean unbiased, so the interval is centred on it (unlike
    FID's, see fid.fid_interval); too few rounds would make the percentiles single draws.
    """
    if 0 < rounds < MIN_BOOTSTRAP_ROUNDS:
        raise RobinterpError(
            f"bootstrap rounds {rounds}: use 0 (no interval) or >= {MIN_BOOTSTRAP_ROUNDS} "
            f"so the 95% percentiles are not single draws"
        )
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"n": 0, "mean": None, "low": None, "high": None}
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (rounds, len(v)))].mean(1) if rounds > 0 else v.mean()[None]
    low, high = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return {"n": int(len(v)), "mean": float(v.mean()), "low": float(low), "high": float(high), "level": level}


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Pearson correlation (NaN where a row is constant)."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Spearman correlation of two N x P arrays (average ranks for ties)."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    return (ra * rb).sum(1) / np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
