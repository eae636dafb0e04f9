"""``stats`` figures against an independent computation written from issue 3 §2's definitions.

Nothing here calls the project's helpers for the reference values: strata, descriptor,
distances, divergences and entropies are computed afresh with plain numpy / scipy /
scikit-learn, on a small random pool with NaNs, several climates and land-cover classes, null
majorities and rows that fail ``--min-valid-frac``. Then :func:`csmoe_data.stats.compute_stats`
and ``csmoe-data stats --json`` must give the same numbers.
"""

from __future__ import annotations

import json
import math
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.spatial.distance import cdist, jensenshannon
from scipy.stats import entropy
from sklearn.metrics import pairwise_distances_argmin_min
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.manifest import write_manifest
from csmoe_data.stats import compute_stats

LC = [0, 1, 4, 10, 12, 13, 16]
KG = ["Af", "BWh", "Cfa", "Cfb", "Dfb", "ET"]
ROWS = 240


def _pool(seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    # a few strong "types" plus noise so that strata have very different sizes
    lc = rng.dirichlet(np.full(len(LC), 0.3), size=ROWS)
    kg = rng.dirichlet(np.full(len(KG), 0.3), size=ROWS)
    lc_valid = rng.uniform(0.3, 1.0, ROWS)
    kg_valid = rng.uniform(0.3, 1.0, ROWS)
    lc_nan = rng.random(ROWS) < 0.06  # nothing valid: every lc_* NaN, majority null
    kg_nan = rng.random(ROWS) < 0.06
    lc_valid[lc_nan] = 0.0
    kg_valid[kg_nan] = 0.0
    data: dict[str, object] = {
        "patch_id": pd.array([f"p{i:04d}" for i in range(ROWS)], dtype="string"),
        "crs": pd.array(["EPSG:4326"] * ROWS, dtype="string"),
    }
    for j, c in enumerate(LC):
        v = lc[:, j].astype(np.float32)
        v[lc_nan] = np.nan
        v[rng.random(ROWS) < 0.02] = np.nan  # scattered NaNs inside valid rows too
        data[f"lc_{c}"] = v
    data["lc_valid_frac"] = lc_valid.astype(np.float32)
    lc_major = pd.array(np.asarray(LC)[lc.argmax(1)], dtype="Int32")
    lc_major[lc_nan] = pd.NA
    data["lc_major"] = lc_major
    data["lc_entropy"] = np.zeros(ROWS, dtype=np.float32)  # a summary, never a class
    for j, s in enumerate(KG):
        v = kg[:, j].astype(np.float32)
        v[kg_nan] = np.nan
        data[f"kg_{s}"] = v
    data["kg_valid_frac"] = kg_valid.astype(np.float32)
    kg_major = pd.array(np.asarray(KG)[kg.argmax(1)], dtype="string")
    kg_major[kg_nan] = pd.NA
    data["kg_major"] = kg_major
    x = (np.arange(ROWS) % 20) * 0.5
    y = (np.arange(ROWS) // 20) * 0.5 + 40
    return gpd.GeoDataFrame(
        pd.DataFrame(data), geometry=shapely.box(x, y, x + 0.2, y + 0.2), crs="EPSG:4326"
    )


def _reference(sample: pd.DataFrame, pool: pd.DataFrame) -> dict[str, object]:
    """Issue 3 §2, straight from the definitions."""
    lc_cols = [c for c in pool.columns if re.fullmatch(r"lc_\d+", str(c))]
    kg_cols = [
        c
        for c in pool.columns
        if str(c).startswith("kg_") and c not in ("kg_valid_frac", "kg_major", "kg_entropy")
    ]
    assert len(lc_cols) == len(LC) and len(kg_cols) == len(KG)

    def descriptor(df: pd.DataFrame) -> np.ndarray:
        return np.column_stack(
            [df[c].astype("float64").fillna(0.0).to_numpy() for c in lc_cols + kg_cols]
        )

    def strata(df: pd.DataFrame) -> list[tuple[object, object]]:
        kg = [None if pd.isna(v) else str(v) for v in df["kg_major"]]
        lc = [None if pd.isna(v) else int(v) for v in df["lc_major"]]
        return list(zip(kg, lc, strict=True))

    P, S = descriptor(pool), descriptor(sample)
    pool_strata, sample_strata = set(strata(pool)), strata(sample)
    # nearest selected row for each pool row, two independent ways
    _, nearest = pairwise_distances_argmin_min(P, S, metric="euclidean")
    np.testing.assert_allclose(nearest, cdist(P, S).min(axis=1), atol=1e-9)

    n_lc = len(lc_cols)

    def js(a: np.ndarray, b: np.ndarray) -> float:
        # scipy gives the JS *distance*; the divergence is its square (base 2: bits)
        return float(jensenshannon(a / a.sum(), b / b.sum(), base=2) ** 2)

    counts = pd.Series(sample_strata).value_counts().to_numpy()
    return {
        "strata_coverage": len(pool_strata & set(sample_strata)) / len(pool_strata),
        "kcenter_mean_radius": float(nearest.mean()),
        "kcenter_max_radius": float(nearest.max()),
        "landcover_js_divergence": js(S[:, :n_lc].mean(0), P[:, :n_lc].mean(0)),
        "climate_js_divergence": js(S[:, n_lc:].mean(0), P[:, n_lc:].mean(0)),
        # over the pool's strata: 1 = the sample spreads evenly over every stratum of the pool
        "normalized_entropy": float(entropy(counts) / math.log(len(pool_strata))),
        "strata_evenness": float(entropy(counts) / math.log(len(counts))),
        "class_counts": {c: int((S[:, j] >= 0.05).sum()) for j, c in enumerate(lc_cols + kg_cols)},
    }


def _compare(got: dict, ref: dict) -> None:
    for key in (
        "strata_coverage",
        "kcenter_mean_radius",
        "kcenter_max_radius",
        "landcover_js_divergence",
        "climate_js_divergence",
        "normalized_entropy",
        "strata_evenness",
    ):
        # descriptors are float32 in the manifest: 1e-5 absolute is far below any real change
        assert got[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key
    assert got["class_counts"] == ref["class_counts"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compute_stats_matches_independent_definitions(seed: int) -> None:
    pool = _pool(seed)
    rng = np.random.default_rng(100 + seed)
    sample = pool.iloc[np.sort(rng.choice(ROWS, 25, replace=False))].reset_index(drop=True)
    ref = _reference(sample, pool)
    assert 0 < ref["strata_coverage"] < 1  # the fixture must not make the check trivial
    assert ref["kcenter_max_radius"] > ref["kcenter_mean_radius"] > 0
    _compare(compute_stats(sample, pool, progress=False), ref)


def test_stats_json_matches_independent_definitions_on_eligible_pool(tmp_path) -> None:
    """The CLI judges against the rows the sampler could choose (valid fractions >= 0.5)."""
    pool = _pool(5)
    pool_path, sample_path = tmp_path / "pool.parquet", tmp_path / "sample.parquet"
    write_manifest(pool, pool_path, {"tool": {"name": "csmoe"}})
    r = CliRunner().invoke(
        app,
        ["build-manifest", "--pool", str(pool_path), "--n", "30", "--out", str(sample_path)],
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "stats.json"
    r = CliRunner().invoke(
        app, ["stats", str(sample_path), "--pool", str(pool_path), "--json", str(out)]
    )
    assert r.exit_code == 0, r.output
    got = json.loads(out.read_text())
    sample = gpd.read_parquet(sample_path)

    lc_ok = pool["lc_valid_frac"].astype("float64").fillna(-1) >= 0.5
    kg_ok = pool["kg_valid_frac"].astype("float64").fillna(-1) >= 0.5
    eligible = pool[(lc_ok & kg_ok).to_numpy()]
    assert 0 < len(eligible) < len(pool) and got["pool_rows"] == len(eligible)
    assert got["pool_rows_total"] == len(pool)
    # every selected row is eligible, so each pool row's nearest pick is one of them
    assert set(sample["patch_id"]) <= set(eligible["patch_id"])
    _compare(got, _reference(sample, eligible))

    # --all-pool-rows judges against every row (ocean/nodata included)
    out_all = tmp_path / "stats_all.json"
    r = CliRunner().invoke(
        app,
        ["stats", str(sample_path), "--pool", str(pool_path), "--all-pool-rows",
         "--json", str(out_all)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    _compare(json.loads(out_all.read_text()), _reference(sample, pool))
