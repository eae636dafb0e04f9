"""``stats --baseline random`` / ``--compare``, the eligibility breakdown and per-split distributions."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.manifest import read_manifest, write_manifest
from csmoe_data.sampling import SamplingOptions, sample_manifest
from csmoe_data.sampling.eligibility import eligibility_breakdown, eligible_positions
from csmoe_data.stats import (
    BETTER,
    compare_figures,
    compute_stats,
    eligible_pool,
    random_baseline,
    split_distributions,
)

LC = [0, 10, 12, 16]
KG = ["Cfb", "Dfb", "BWh", "ET"]
FIGURE_KEYS = list(BETTER)


def make_pool(rows: int = 400, seed: int = 0) -> gpd.GeoDataFrame:
    """A pool with a few rare strata (skewed Dirichlet fractions) on a sparse lon/lat lattice."""
    rng = np.random.default_rng(seed)
    lc = rng.dirichlet(np.array([2.0, 1.0, 0.3, 0.1]), size=rows)
    kg = rng.dirichlet(np.array([2.0, 0.6, 0.2, 0.05]), size=rows)
    data: dict[str, object] = {
        "patch_id": pd.array([f"c{i:04d}" for i in range(rows)], dtype="string")
    }
    data["crs"] = pd.array(["EPSG:4326"] * rows, dtype="string")
    for j, c in enumerate(LC):
        data[f"lc_{c}"] = lc[:, j].astype(np.float32)
    data["lc_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["lc_major"] = pd.array(np.asarray(LC)[lc.argmax(1)], dtype="Int32")
    for j, s in enumerate(KG):
        data[f"kg_{s}"] = kg[:, j].astype(np.float32)
    data["kg_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["kg_major"] = pd.array(np.asarray(KG)[kg.argmax(1)], dtype="string")
    x = (np.arange(rows) % 25) * 2.0 - 20
    y = (np.arange(rows) // 25) * 2.0 + 10
    return gpd.GeoDataFrame(
        pd.DataFrame(data), geometry=shapely.box(x, y, x + 0.5, y + 0.5), crs="EPSG:4326"
    )


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture()
def files(tmp_path):
    pool = make_pool()
    pool.loc[:29, "kg_valid_frac"] = 0.2  # 30 rows fail the climate valid fraction
    pool.loc[20:39, "lc_valid_frac"] = np.nan  # 20 rows fail land cover (10 of them both)
    geoms = np.asarray(pool.geometry.values, dtype=object)
    geoms[390:] = None  # 10 rows without a footprint
    pool = pool.set_geometry(gpd.GeoSeries(geoms, crs="EPSG:4326"))
    pool_path = tmp_path / "pool.parquet"
    write_manifest(pool, pool_path, {"tool": {"name": "csmoe"}})
    sample_path = tmp_path / "sample.parquet"
    r = run(
        "build-manifest", "--pool", pool_path, "--n", "60", "--where", "lc_12 < 0.9",
        "--split", "train=0.8,val=0.1,test=0.1", "--split-block-size", "300000",
        "--out", sample_path,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return pool_path, sample_path


def test_random_baseline_is_seeded_and_from_the_pool() -> None:
    pool = make_pool()
    a, b, c = (
        random_baseline(pool, 50, 0),
        random_baseline(pool, 50, 0),
        random_baseline(pool, 50, 1),
    )
    assert len(a) == 50 and a.index.is_unique and set(a.index) <= set(pool.index)
    assert a["patch_id"].tolist() == b["patch_id"].tolist() != c["patch_id"].tolist()
    assert len(random_baseline(pool, 10_000, 0)) == len(pool)


def test_compare_figures_marks_directions_and_winners() -> None:
    sample = {"strata_coverage": 0.9, "kcenter_mean_radius": 0.2, "landcover_js_divergence": 0.03}
    base = {"strata_coverage": 0.4, "kcenter_mean_radius": 0.3, "landcover_js_divergence": 0.01}
    c = compare_figures(sample, base)
    assert set(c) == set(BETTER)
    assert c["strata_coverage"]["better"] == "higher" and c["strata_coverage"]["winner"] == "sample"
    assert (
        c["kcenter_mean_radius"]["better"] == "lower"
        and c["kcenter_mean_radius"]["winner"] == "sample"
    )
    assert c["landcover_js_divergence"]["winner"] == "baseline"
    assert c["climate_js_divergence"]["winner"] is None  # missing on both sides
    assert (
        compare_figures({"strata_coverage": 0.5}, {"strata_coverage": 0.5})["strata_coverage"][
            "winner"
        ]
        == "tie"
    )


def test_eligibility_breakdown_counts_each_condition(files) -> None:
    pool, _ = read_manifest(files[0])
    opts = SamplingOptions(min_valid_frac=0.5, where="lc_12 < 0.9")
    b = eligibility_breakdown(pool, opts)
    by = {c["name"]: c for c in b["conditions"]}
    assert by["kg_valid_frac"]["failing"] == 30
    assert by["lc_valid_frac"]["failing"] == 20
    assert by["coordinates"]["failing"] == 10
    where_fail = int((pool["lc_12"] >= 0.9).sum())
    assert by["where"]["failing"] == where_fail
    # independent count of the rows passing everything
    ok = (
        (pool["kg_valid_frac"] >= 0.5)
        & (pool["lc_valid_frac"].fillna(-1) >= 0.5)
        & (pool["lc_12"] < 0.9)
        & pool.geometry.notna()
    )
    assert b["eligible"] == int(ok.sum()) == len(eligible_positions(pool, opts))
    assert b["ineligible"] == len(pool) - b["eligible"]
    assert by["lc_valid_frac"]["failing_only_this"] == 10  # the other 10 fail climate too


def test_sampler_never_picks_an_ineligible_row(files) -> None:
    sample, _ = read_manifest(files[1])
    assert sample.geometry.notna().all()
    assert (sample["kg_valid_frac"] >= 0.5).all() and (sample["lc_12"] < 0.9).all()


def test_stats_baseline_json_and_plots(files, tmp_path) -> None:
    pool_path, sample_path = files
    out_json, figs = tmp_path / "stats.json", tmp_path / "figs"
    r = run(
        "stats", sample_path, "--baseline", "random", "--baseline-seed", "3",
        "--json", out_json, "--plots", figs,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "random (seed 3)" in r.output and "better" in r.output and "pool eligibility" in r.output
    figures = json.loads(out_json.read_text())
    sample, meta = read_manifest(sample_path)
    pool, _ = read_manifest(pool_path)
    eligible = eligible_pool(pool, meta["sampling"])
    # the baseline is a seeded random draw of the same size from the same eligible rows
    expected = compute_stats(random_baseline(eligible, len(sample), 3), eligible)
    base = figures["baseline"]
    assert base["kind"] == "random" and base["seed"] == 3 and base["rows"] == len(sample)
    assert base["pool_rows"] == figures["pool_rows"] == len(eligible)
    for key in FIGURE_KEYS:
        assert base[key] == pytest.approx(expected[key]), key
        c = figures["comparison"][key]
        assert c["better"] == BETTER[key] == figures["better"][key]
        assert c["sample"] == pytest.approx(figures[key]) and c["baseline"] == pytest.approx(
            base[key]
        )
    assert figures["baseline"]["strata_coverage"] < figures["strata_coverage"]
    assert figures["comparison"]["strata_coverage"]["winner"] == "sample"
    elig = figures["eligibility"]
    assert elig["pool_rows"] == 400 and elig["eligible"] == len(eligible)
    assert {c["name"] for c in elig["conditions"]} == {
        "lc_valid_frac", "kg_valid_frac", "where", "coordinates"
    }  # fmt: skip
    per_split = figures["split_distributions"]
    assert list(per_split) == ["train", "val", "test"]
    assert sum(v["rows"] for v in per_split.values()) == len(sample)
    names = sorted(p.name for p in figs.iterdir())
    assert "baseline_comparison.png" in names and "splits_map.png" in names


def test_stats_compare_with_another_manifest(files, tmp_path) -> None:
    pool_path, sample_path = files
    pool, meta = read_manifest(pool_path)
    other, entry = sample_manifest(pool, SamplingOptions(n=60, strategy="random", seed=5))
    other_path = tmp_path / "other.parquet"
    write_manifest(other, other_path, {**meta, "sampling": entry})
    out_json = tmp_path / "c.json"
    r = run("stats", sample_path, "--compare", other_path, "--json", out_json)
    assert r.exit_code == 0, r.output
    figures = json.loads(out_json.read_text())
    assert figures["baseline"]["kind"] == "manifest" and figures["baseline"]["rows"] == 60
    assert set(figures["comparison"]) == set(BETTER)


def test_stats_baseline_errors_are_one_line(files, tmp_path) -> None:
    pool_path, sample_path = files
    lone, meta = read_manifest(sample_path)
    meta = {k: v for k, v in meta.items() if k != "pool"}
    lone_path = tmp_path / "lone.parquet"
    write_manifest(lone, lone_path, meta)
    for args in (
        ["stats", lone_path, "--baseline", "random"],
        ["stats", sample_path, "--baseline", "random", "--compare", sample_path],
    ):
        r = run(*args)
        assert r.exit_code != 0 and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1, r.output


def test_split_distributions_match_hand_means() -> None:
    pool = make_pool(200)
    pool["split"] = np.where(
        np.arange(200) < 150, "train", np.where(np.arange(200) < 175, "val", "test")
    )
    d = split_distributions(pool)
    assert list(d) == ["train", "val", "test"]
    assert d["val"]["rows"] == 25
    assert d["val"]["landcover_mean"]["lc_10"] == pytest.approx(
        float(pool["lc_10"][150:175].mean())
    )
    assert d["test"]["climate_mean"]["kg_ET"] == pytest.approx(float(pool["kg_ET"][175:].mean()))
    assert sum(d["train"]["kg_major"].values()) == 150
