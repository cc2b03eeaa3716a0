"""Aggregate statistics of returns: interquartile mean and bootstrap confidence intervals.

IQM and stratified-bootstrap intervals follow Agarwal et al. 2021, "Deep Reinforcement
Learning at the Edge of the Statistical Precipice" (arXiv:2108.13264).
"""

from __future__ import annotations

import numpy as np


def iqm(values: np.ndarray | list[float]) -> float:
    """Interquartile mean: the mean of the middle 50% of values (25% trimmed from each end).

    With n values, floor(n/4) are dropped from each end, so for n < 4 it is the plain mean.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0:
        return float("nan")
    cut = x.size // 4
    return float(x[cut : x.size - cut].mean())


def bootstrap_ci(
    values: np.ndarray | list[float],
    statistic=iqm,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over `values` (e.g. one value per seed)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(resamples, x.size))]  # (R, n)
    stats = np.array([statistic(row) for row in samples])
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))
