"""Budget allocation over strata: n_s proportional to N_s ** alpha, at least one each, capped."""

from __future__ import annotations

import numpy as np


def _water_fill(
    weights: np.ndarray, lower: np.ndarray, upper: np.ndarray, total: float
) -> np.ndarray:
    """Continuous x_s = clip(c * w_s, lower_s, upper_s) with sum x = total (c by bisection).

    The returned sum never exceeds ``total`` (the lower end of the bisection bracket is kept),
    so that flooring cannot overshoot the budget.
    """
    if lower.sum() >= total:
        return lower.astype(np.float64)
    lo, hi = 0.0, 1.0
    while np.clip(hi * weights, lower, upper).sum() < total:
        hi *= 2.0
        if hi > 1e300:  # pragma: no cover - total exceeds capacity, guarded by the caller
            break
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.clip(mid * weights, lower, upper).sum() <= total:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return np.clip(lo * weights, lower, upper)


def allocate(
    sizes: np.ndarray | list[int],
    n: int,
    alpha: float = 0.5,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Split a budget of ``n`` samples over strata of ``sizes`` rows.

    Rules, in order: the total is exactly ``min(n, sum(sizes))``; no stratum gets more than its
    size; when the total is at least the number of non-empty strata, every non-empty stratum
    gets at least one; the rest follows n_s ∝ N_s ** alpha (times ``weights`` when given), with
    whatever a capped stratum cannot take redistributed to the others (water-filling), and
    integer rounding by largest remainder (ties: larger weight, then lower index).

    Args:
        sizes: rows per stratum (zeros allowed: empty strata get nothing).
        n: the budget.
        alpha: 1 proportional (representative), 0 equal (diverse), anything between.
        weights: optional extra non-negative factor per stratum (e.g. descriptor spread).

    Returns:
        int64 counts, same length as ``sizes``.

    Raises:
        ValueError: on negative sizes, a negative budget, or a negative/non-finite alpha or weight.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1:
        raise ValueError("sizes must be one-dimensional")
    if (sizes < 0).any():
        raise ValueError("stratum sizes must be non-negative")
    if n < 0:
        raise ValueError(f"the budget must be non-negative, not {n}")
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, not {alpha}")
    counts = np.zeros(len(sizes), dtype=np.int64)
    nonempty = sizes > 0
    total = int(min(n, sizes.sum()))
    if total == 0:
        return counts
    w = np.zeros(len(sizes), dtype=np.float64)
    w[nonempty] = sizes[nonempty].astype(np.float64) ** alpha
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != sizes.shape or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("weights must be finite, non-negative and one per stratum")
        # a zero weight must not starve a stratum of its guaranteed first sample
        positive = weights[nonempty & (weights > 0)]
        floor = positive.min() * 1e-6 if positive.size else 1.0
        w[nonempty] *= np.maximum(weights[nonempty], floor)
    upper = sizes.astype(np.float64)
    lower = np.zeros(len(sizes), dtype=np.float64)
    if total >= int(nonempty.sum()):
        lower[nonempty] = 1.0
    x = _water_fill(w, lower, upper, float(total))
    counts = np.floor(x).astype(np.int64)
    counts = np.minimum(counts, sizes)
    left = total - int(counts.sum())
    # largest remainder; a stratum that is full cannot take more
    remainder = x - counts
    order = np.lexsort((np.arange(len(sizes)), -w, -remainder))
    while left > 0:
        room = order[counts[order] < sizes[order]]
        take = room[:left]
        counts[take] += 1
        left -= len(take)
    return counts
