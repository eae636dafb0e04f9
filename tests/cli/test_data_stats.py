"""``csmoe-data stats`` and ``build-manifest --pool`` through the CLI (CliRunner)."""

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
from csmoe_data.stats import compute_stats

LC = [0, 10, 12, 16]
KG = ["Cfb", "Dfb", "BWh"]


@pytest.fixture()
def pool_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = 300
    lc = rng.dirichlet(np.ones(len(LC)) * 0.5, size=rows)
    kg = rng.dirichlet(np.ones(len(KG)) * 0.5, size=rows)
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
    x = (np.arange(rows) % 20) * 0.5
    y = (np.arange(rows) // 20) * 0.5 + 40
    gdf = gpd.GeoDataFrame(
        pd.DataFrame(data), geometry=shapely.box(x, y, x + 0.2, y + 0.2), crs="EPSG:4326"
    )
    path = tmp_path / "pool.parquet"
    write_manifest(gdf, path, {"tool": {"name": "csmoe"}})
    return path


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_readme_examples_pool_reuse_then_stats(pool_file, tmp_path) -> None:
    train = tmp_path / "train.parquet"
    # README: csmoe-data build-manifest --pool pool.parquet --n 400 --split ... --out train.parquet
    r = run(
        "build-manifest", "--pool", str(pool_file), "--n", "40",
        "--split", "train=0.8,val=0.1,test=0.1", "--out", str(train),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    sample, meta = read_manifest(train)
    assert len(sample) == 40 and {"stratum", "split"} <= set(sample.columns)
    assert (
        meta["sampling"]["strategy"] == "thematic-climatic" and meta["sampling"]["pool_size"] == 300
    )
    # the same call on the read pool gives the same rows (pool reuse is deterministic)
    pool, _ = read_manifest(pool_file)
    again, _ = sample_manifest(
        pool, SamplingOptions(n=40, split={"train": 0.8, "val": 0.1, "test": 0.1})
    )
    assert again["patch_id"].tolist() == sample["patch_id"].tolist()
    assert again["split"].tolist() == sample["split"].tolist()

    # README: csmoe-data stats train.parquet --json stats.json --plots figures/
    out_json, figs = tmp_path / "stats.json", tmp_path / "figures"
    r = run("stats", str(train), "--json", str(out_json), "--plots", str(figs))
    assert r.exit_code == 0, r.output
    assert "strata_coverage" in r.output and "land cover" in r.output and "climate" in r.output
    figures = json.loads(out_json.read_text())
    expected = compute_stats(sample, pool)
    for key in ("strata_coverage", "kcenter_mean_radius", "kcenter_max_radius", "landcover_js_divergence",
                "climate_js_divergence", "normalized_entropy", "class_counts"):  # fmt: skip
        assert figures[key] == pytest.approx(expected[key]), key
    assert figures["pool"] is not None and figures["pool_rows"] == 300  # found via the metadata
    assert sum(figures["splits"].values()) == 40
    assert sorted(p.name for p in figs.iterdir()) == sorted(
        [
            "class_distributions.png",
            "climate_landcover_heatmap.png",
            "world_map.png",
            "splits_map.png",
        ]
    )


def test_stats_explicit_pool_no_pool_and_overwrite(pool_file, tmp_path) -> None:
    pool, meta = read_manifest(pool_file)
    sample, entry = sample_manifest(pool, SamplingOptions(n=25, strategy="random"))
    s_path = tmp_path / "s.parquet"
    write_manifest(sample, s_path, {**meta, "sampling": entry})  # no pool path in the metadata
    out_json = tmp_path / "s.json"
    r = run("stats", str(s_path), "--json", str(out_json))
    assert r.exit_code == 0, r.output
    own = json.loads(out_json.read_text())
    assert own["pool_is_sample"] is True and own["strata_coverage"] == 1.0
    r = run("stats", str(s_path), "--json", str(out_json))
    assert r.exit_code != 0 and "--overwrite" in r.output and "Traceback" not in r.output
    r = run("stats", str(s_path), "--pool", str(pool_file), "--json", str(out_json), "--overwrite")
    assert r.exit_code == 0, r.output
    vs_pool = json.loads(out_json.read_text())
    assert vs_pool["pool_rows"] == 300 and vs_pool["kcenter_mean_radius"] > 0


def test_stats_missing_manifest_is_one_line(tmp_path) -> None:
    r = run("stats", str(tmp_path / "nope.parquet"))
    assert r.exit_code != 0
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_stats_judges_against_the_eligible_pool(pool_file, tmp_path) -> None:
    pool, meta = read_manifest(pool_file)
    ocean = pool.copy()
    ocean.loc[:99, "kg_valid_frac"] = 0.0  # "ocean" rows the sampler may not choose
    ocean.loc[
        :99,
        [
            c
            for c in ocean.columns
            if c.startswith("kg_") and c not in ("kg_valid_frac", "kg_major")
        ],
    ] = np.nan
    ocean.loc[:99, "kg_major"] = pd.NA
    p = tmp_path / "ocean_pool.parquet"
    write_manifest(ocean, p, meta)
    r = run("build-manifest", "--pool", str(p), "--n", "30", "--out", str(tmp_path / "s.parquet"))
    assert r.exit_code == 0, r.output
    out = tmp_path / "s.json"
    r = run("stats", str(tmp_path / "s.parquet"), "--json", str(out))
    assert r.exit_code == 0, r.output
    figures = json.loads(out.read_text())
    assert figures["pool_rows"] == 200 and figures["pool_rows_total"] == 300
    assert figures["strata_coverage"] == 1.0  # the ocean's "no climate" stratum is not counted
    r = run(
        "stats", str(tmp_path / "s.parquet"), "--json", str(out), "--overwrite", "--all-pool-rows"
    )
    assert r.exit_code == 0, r.output
    everything = json.loads(out.read_text())
    assert everything["pool_rows"] == 300 and everything["strata_coverage"] < 1.0
