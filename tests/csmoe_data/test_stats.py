"""Quality figures on a constructed pool whose answers are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from csmoe_common.divergence import js_divergence
from csmoe_data.stats import (
    compute_stats,
    nearest_distances,
    pool_path_from_metadata,
)

KEYS = {
    "strata_coverage",
    "kcenter_mean_radius",
    "kcenter_max_radius",
    "landcover_js_divergence",
    "climate_js_divergence",
    "normalized_entropy",
    "class_counts",
}


def hand_pool() -> pd.DataFrame:
    """Four rows; descriptors (lc_1, lc_2, kg_Cfb, kg_Dfb):

    A = (1, 0, 1, 0)   stratum Cfb|1
    B = (NaN, 1, 1, 0) stratum Cfb|2 (NaN counts as 0)
    C = (1, 0, 0, 1)   stratum Dfb|1
    D = (.5, .5, .5, .5) stratum Cfb|1
    """
    return pd.DataFrame(
        {
            "patch_id": ["A", "B", "C", "D"],
            "lc_1": np.array([1.0, np.nan, 1.0, 0.5], dtype=np.float32),
            "lc_2": np.array([0.0, 1.0, 0.0, 0.5], dtype=np.float32),
            "lc_valid_frac": np.ones(4, dtype=np.float32),
            "lc_major": pd.array([1, 2, 1, 1], dtype="Int32"),
            "lc_entropy": np.zeros(4, dtype=np.float32),
            "kg_Cfb": np.array([1.0, 1.0, 0.0, 0.5], dtype=np.float32),
            "kg_Dfb": np.array([0.0, 0.0, 1.0, 0.5], dtype=np.float32),
            "kg_valid_frac": np.ones(4, dtype=np.float32),
            "kg_major": pd.array(["Cfb", "Cfb", "Dfb", "Cfb"], dtype="string"),
            "split": ["train", "val", "train", "test"],
        }
    )


def test_hand_computed_figures() -> None:
    pool = hand_pool()
    sample = pool.iloc[[0, 1]]
    st = compute_stats(sample, pool)
    assert set(st) >= KEYS
    # strata Cfb|1, Cfb|2, Dfb|1; the sample holds the first two
    assert st["strata_coverage"] == pytest.approx(2 / 3)
    # nearest selected: A 0, B 0, C sqrt(2) (to A), D 1 (to A or B)
    assert st["kcenter_mean_radius"] == pytest.approx((math.sqrt(2) + 1) / 4, rel=1e-6)
    assert st["kcenter_max_radius"] == pytest.approx(math.sqrt(2), rel=1e-6)
    # land cover: sample mean (.5, .5), pool mean (.625, .375); climate: (1, 0) vs (.625, .375)
    m = np.array([0.5625, 0.4375])
    js_lc = 0.5 * (0.5 * math.log2(0.5 / m[0]) + 0.5 * math.log2(0.5 / m[1])) + 0.5 * (
        0.625 * math.log2(0.625 / m[0]) + 0.375 * math.log2(0.375 / m[1])
    )
    assert st["landcover_js_divergence"] == pytest.approx(js_lc, rel=1e-6)
    assert st["landcover_js_divergence"] == pytest.approx(0.011482406826015, rel=1e-9)
    m = np.array([0.8125, 0.1875])
    js_kg = 0.5 * (1.0 * math.log2(1.0 / m[0])) + 0.5 * (
        0.625 * math.log2(0.625 / m[0]) + 0.375 * math.log2(0.375 / m[1])
    )
    assert st["climate_js_divergence"] == pytest.approx(js_kg, rel=1e-6)
    # two strata, one row each, out of three pool strata
    assert st["normalized_entropy"] == pytest.approx(math.log(2) / math.log(3))
    assert st["class_counts"] == {"lc_1": 1, "lc_2": 1, "kg_Cfb": 2, "kg_Dfb": 0}
    assert st["rows"] == 2 and st["pool_rows"] == 4
    assert st["strata_pool"] == 3 and st["strata_sample"] == 2
    assert st["splits"] == {"train": 1, "val": 1}


def test_without_pool_the_sample_is_its_own_pool() -> None:
    pool = hand_pool()
    st = compute_stats(pool)
    assert st["strata_coverage"] == 1.0
    assert st["kcenter_mean_radius"] == 0.0 and st["kcenter_max_radius"] == 0.0
    assert st["landcover_js_divergence"] == 0.0 and st["climate_js_divergence"] == 0.0
    assert st["pool_is_sample"] is True
    # strata counts 2, 1, 1 over 3 strata
    p = np.array([0.5, 0.25, 0.25])
    assert st["normalized_entropy"] == pytest.approx(float(-(p * np.log(p)).sum() / np.log(3)))


def test_js_matches_scipy_and_bounds() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        p, q = rng.random(7), rng.random(7)
        assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-9)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence([1, 2], [2, 4]) == pytest.approx(0.0, abs=1e-12)


def test_nearest_distances_match_brute_force_across_chunks(monkeypatch) -> None:
    import csmoe_data.stats as stats

    monkeypatch.setattr(stats, "NN_CHUNK", 7)
    rng = np.random.default_rng(1)
    pool, sample = rng.random((50, 4)), rng.random((6, 4))
    brute = np.sqrt(((pool[:, None, :] - sample[None, :, :]) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(nearest_distances(pool, sample), brute, rtol=1e-9)


def test_empty_sample() -> None:
    pool = hand_pool()
    st = compute_stats(pool.iloc[[]], pool)
    assert st["strata_coverage"] == 0.0 and st["rows"] == 0
    assert st["kcenter_max_radius"] is None  # infinite: nothing selected
    assert all(v == 0 for v in st["class_counts"].values())


def test_pool_path_from_metadata(tmp_path) -> None:
    pool = tmp_path / "pool.parquet"
    pool.write_bytes(b"x")
    sample = tmp_path / "s.parquet"
    assert pool_path_from_metadata({"pool": {"path": str(pool)}}, sample) == pool
    # a path from a file is followed only inside the manifest's folder (issue 10)
    assert pool_path_from_metadata({"pool": {"path": str(pool)}}) is None
    inner = tmp_path / "inner"
    inner.mkdir()
    refused: list = []
    assert (
        pool_path_from_metadata({"pool": {"path": str(pool)}}, inner / "s.parquet", refused) is None
    )
    assert (
        pool_path_from_metadata({"pool": "../pool.parquet"}, inner / "s.parquet", refused) is None
    )
    assert refused == [pool, inner / "../pool.parquet"]
    assert (
        pool_path_from_metadata({"sampling": {"pool_path": "pool.parquet"}}, tmp_path / "s.parquet")
        == pool
    )
    assert (
        pool_path_from_metadata({"pool": {"path": str(tmp_path / "gone.parquet")}}, sample) is None
    )
    assert pool_path_from_metadata({}) is None


def test_progress_bar_does_not_change_figures() -> None:
    pool = hand_pool()
    quiet = compute_stats(pool.iloc[[0, 1]], pool, progress=False)
    shown = compute_stats(pool.iloc[[0, 1]], pool, progress=True)
    assert quiet["kcenter_mean_radius"] == shown["kcenter_mean_radius"]
