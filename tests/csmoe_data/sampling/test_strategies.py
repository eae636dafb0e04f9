"""The JS-bounded allocation of ``thematic-climatic`` (a pool dominated by one huge stratum)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from csmoe_data.sampling import STRATEGIES, SamplingOptions, allocate, sample_manifest
from csmoe_data.sampling.strategies import js_bounded_counts

LC = [0, 4, 10, 13, 16]


def _skewed_pool(seed: int = 0) -> pd.DataFrame:
    """3,000 rows of pure barren desert plus 30 small strata of one-hot rare classes.

    Like a pool of 1.2 km patches on 5 km land-cover pixels: every row is one class.
    """
    rng = np.random.default_rng(seed)
    kg = ["BWh"] * 3000
    lc = [16] * 3000
    for i in range(30):
        k = int(rng.integers(3, 12))
        kg += [f"K{i:02d}"] * k
        lc += [int(rng.choice([0, 4, 10, 13]))] * k
    rows = len(kg)
    data: dict[str, object] = {"patch_id": [f"r{i:05d}" for i in range(rows)]}
    for c in LC:
        data[f"lc_{c}"] = (np.asarray(lc) == c).astype(np.float32)
    data["lc_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["lc_major"] = pd.array(lc, dtype="Int32")
    for s in sorted(set(kg)):
        data[f"kg_{s}"] = (np.asarray(kg) == s).astype(np.float32)
    data["kg_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["kg_major"] = pd.array(kg, dtype="string")
    return pd.DataFrame(data)


def _lc_js(sample: pd.DataFrame, pool: pd.DataFrame) -> float:
    cols = [f"lc_{c}" for c in LC]
    p, q = sample[cols].to_numpy().mean(0), pool[cols].to_numpy().mean(0)
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2) ** 2)


def test_js_bounded_counts_keeps_budget_and_coverage() -> None:
    rng = np.random.default_rng(1)
    codes = np.repeat(np.arange(6), [500, 40, 30, 20, 10, 5])
    X = np.eye(3)[np.repeat([0, 1, 2, 1, 2, 1], [500, 40, 30, 20, 10, 5])]
    X = X + rng.uniform(0, 0.01, X.shape)
    counts = allocate(np.bincount(codes), 30, alpha=0.0)
    out = js_bounded_counts(X, codes, counts, bound=0.001)
    assert out.sum() == counts.sum() and (out >= 1).all()
    assert (out <= np.bincount(codes)).all()
    assert out[0] > counts[0]  # budget moved to the huge stratum
    # already within the bound: nothing moves
    assert js_bounded_counts(X, codes, counts, bound=1.0).tolist() == counts.tolist()


def test_dominated_pool_meets_js_bound_with_full_coverage() -> None:
    pool = _skewed_pool()
    strategy = STRATEGIES.get("thematic-climatic")
    sample, meta = sample_manifest(pool, SamplingOptions(n=200, seed=3))
    again, _ = sample_manifest(pool, SamplingOptions(n=200, seed=3))
    assert sample["patch_id"].tolist() == again["patch_id"].tolist()
    assert sample["stratum"].nunique() == 31  # every stratum kept
    assert meta["budget_moved"] > 0
    js = _lc_js(sample, pool)  # one-hot rows: the predicted divergence is the real one
    assert js <= strategy.js_bound
    # without the bound (and without the swap passes, which also hold the divergence down),
    # alpha 0.5 starves the desert stratum and the divergence is far higher
    old = strategy.js_bound, strategy.swap_share, strategy.swap_sweeps
    try:
        strategy.js_bound, strategy.swap_share, strategy.swap_sweeps = None, 0.0, 0
        plain, meta_plain = sample_manifest(pool, SamplingOptions(n=200, seed=3))
    finally:
        strategy.js_bound, strategy.swap_share, strategy.swap_sweeps = old
    assert meta_plain["budget_moved"] == 0
    assert _lc_js(plain, pool) > 2 * js
    assert plain["stratum"].nunique() == 31


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_other_strategies_ignore_the_bound(alpha: float) -> None:
    pool = _skewed_pool()
    _, meta = sample_manifest(pool, SamplingOptions(n=80, strategy="stratified", alpha=alpha))
    assert meta["budget_moved"] == 0
