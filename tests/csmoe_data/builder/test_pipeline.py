"""build_manifest: end to end on generated data; determinism across workers and Dask."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from rasterio.transform import from_origin

from csmoe_common.errors import CsmoeError
from csmoe_data.builder import BuildInputs, ExecutionOptions, build_manifest, sample_pool
from csmoe_data.builder import describe as describe_mod
from csmoe_data.builder.options import DEFAULT_CHUNK_SIZE
from csmoe_data.manifest import read_manifest

X0, Y0 = 500000.0, 5000000.0


@pytest.fixture
def inputs(tmp_path, geotiff):
    """20 footprints (10 m land cover in UTM 33N, Beck-coded 1 km climate in EPSG:4326)."""
    rng = np.random.default_rng(3)
    lc = rng.choice(np.array([10, 20, 30, 40, 80], dtype=np.uint8), size=(300, 300))
    lc[:40, :40] = 0  # WorldCover nodata
    lc[-5:, -5:] = 77  # a value the legend lacks
    geotiff(tmp_path / "lc.tif", lc, from_origin(X0, Y0, 10, 10), nodata=0)
    # climate: 0.01 deg grid around 45 N 15 E; two zones (Beck 15 = Cfb, 8 = Csa)
    kg = np.full((100, 100), 15, dtype=np.uint8)
    kg[:, 50:] = 8
    geotiff(tmp_path / "kg.tif", kg, from_origin(14.5, 45.6, 0.01, 0.01), crs="EPSG:4326")
    geoms = [
        shapely.box(X0 + x, Y0 - y - 240, X0 + x + 240, Y0 - y)
        for x, y in zip(rng.uniform(0, 2800, 20), rng.uniform(0, 2800, 20), strict=True)
    ]
    geoms[-1] = shapely.box(
        X0 + 2800, Y0 - 3000, X0 + 3000, Y0 - 2800
    )  # over the unknown-code corner
    fp = gpd.GeoDataFrame(
        {
            "patch_id": [f"p{i:02d}" for i in range(20)],
            "season": ["summer"] * 20,
            "score": np.arange(20.0),
        },
        geometry=geoms,
        crs="EPSG:32633",
    )
    fp.to_file(tmp_path / "fp.gpkg")
    return tmp_path


def _execution(workers=1, dask_scheduler=None, chunk_size=DEFAULT_CHUNK_SIZE):
    return ExecutionOptions(workers, dask_scheduler, chunk_size, progress=False)


def _build(inputs, out, sampling=None, **execution):
    rasters = BuildInputs(
        inputs / "fp.gpkg",
        landcover=inputs / "lc.tif",
        landcover_legend="worldcover",
        climate=inputs / "kg.tif",
        climate_legend="koppen-beck",
    )
    return build_manifest(rasters, out, _execution(**execution), sampling=sampling)


def test_build_end_to_end(inputs):
    res = _build(inputs, inputs / "out" / "m.parquet")
    gdf, meta = read_manifest(res.path)
    assert len(gdf) == 20 and res.rows == 20
    assert list(gdf["patch_id"]) == [f"p{i:02d}" for i in range(20)]  # input order
    assert gdf.crs.to_epsg() == 4326 and set(gdf["crs"]) == {"EPSG:32633"}
    assert list(gdf["season"]) == ["summer"] * 20 and list(gdf["score"]) == list(np.arange(20.0))
    lc_cols = [f"lc_{c}" for c in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)]
    assert [c for c in gdf.columns if c.startswith("lc_") and c[3:].isdigit()] == lc_cols
    sums = gdf[lc_cols].sum(axis=1)
    ok = gdf["lc_valid_frac"] > 0
    np.testing.assert_allclose(sums[ok], 1.0, atol=1e-5)
    assert gdf["kg_major"].isin(["Cfb", "Csa"]).all()
    assert (gdf["kg_valid_frac"] == 1.0).all()
    # geometry: the UTM boxes in lon/lat near 15 E, 45 N
    b = gdf.total_bounds
    assert 14.9 < b[0] < b[2] < 15.1 and 45.0 < b[1] < b[3] < 45.2
    # metadata: inputs with checksums, legends, parameters, unknown codes
    assert meta["inputs"]["landcover"]["sha256"] and meta["inputs"]["climate"]["crs"] == "EPSG:4326"
    assert (
        meta["inputs"]["footprints"]["crs"] == ["EPSG:32633"]
        and len(meta["inputs"]["footprints"]["sha256"]) == 64
    )
    assert meta["legends"]["landcover"]["name"] == "worldcover"
    assert meta["legends"]["climate"]["columns"][0] == "kg_Af"
    assert meta["tool"]["version"]
    assert meta["footprints"]["repaired"] == 0
    # the last footprint (20 x 20 px) covers the 5 x 5 px corner of code 77, which worldcover lacks
    assert meta["unknown_codes"]["landcover"] == {"values": {"77": pytest.approx(25.0)}, "rows": 1}
    assert res.unknown_codes["landcover"] == {77: pytest.approx(25.0)}
    assert gdf["lc_valid_frac"].iloc[-1] == pytest.approx(375 / 400)
    assert meta["unknown_codes"]["climate"] == {"values": {}, "rows": 0}


@pytest.fixture(params=["compiled", "numpy"])
def engine(request, monkeypatch):
    """Both engine paths: the compiled kernels (forced on for these small jobs) and numpy."""
    monkeypatch.setattr(
        describe_mod, "COMPILED_MIN_FOOTPRINTS", 0 if request.param == "compiled" else 10**12
    )
    return request.param


def test_workers_and_chunks_give_identical_files(inputs, engine):
    a = _build(inputs, inputs / "a.parquet", chunk_size=20)
    b = _build(inputs, inputs / "b.parquet", chunk_size=3, workers=2)
    assert a.path.read_bytes() == b.path.read_bytes()


def test_dask_gives_identical_file(inputs, engine):
    distributed = pytest.importorskip("distributed")
    a = _build(inputs, inputs / "a.parquet", chunk_size=7)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        b = _build(
            inputs, inputs / "b.parquet", chunk_size=4, dask_scheduler=cluster.scheduler_address
        )
    assert a.path.read_bytes() == b.path.read_bytes()


def test_interrupt_leaves_nothing(inputs, monkeypatch):
    calls = {"n": 0}
    real = describe_mod.describe_chunk

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(describe_mod, "describe_chunk", flaky)
    out = inputs / "out"
    with pytest.raises(KeyboardInterrupt):
        _build(inputs, out / "m.parquet", chunk_size=5)
    assert not any(out.iterdir()) if out.exists() else True


def test_overwrite_checked_before_work(inputs, monkeypatch):
    out = inputs / "m.parquet"
    out.write_bytes(b"keep me")
    monkeypatch.setattr(describe_mod, "describe_chunk", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(CsmoeError, match="--overwrite"):
        _build(inputs, out)
    assert out.read_bytes() == b"keep me"


def test_sampling_options_are_applied(inputs):
    from csmoe_data.sampling import SamplingOptions

    res = _build(
        inputs, inputs / "s.parquet", sampling=SamplingOptions(n=5, seed=1, min_valid_frac=0.0)
    )
    gdf, meta = read_manifest(res.path)
    assert len(gdf) == 5 and res.pool_rows == 20
    assert "stratum" in gdf.columns and meta["sampling"]["seed"] == 1
    # --pool: sample the pool manifest without rasters, same rows for the same seed
    pool = _build(inputs, inputs / "pool.parquet")
    res2 = sample_pool(
        pool.path, inputs / "s2.parquet", SamplingOptions(n=5, seed=1, min_valid_frac=0.0)
    )
    gdf2, meta2 = read_manifest(res2.path)
    assert list(gdf2["patch_id"]) == list(gdf["patch_id"])
    assert meta2["pool"]["rows"] == 20 and meta2["legends"] == meta["legends"]


def test_only_climate(inputs):
    res = build_manifest(
        BuildInputs(inputs / "fp.gpkg", climate=inputs / "kg.tif", climate_legend="koppen-beck"),
        inputs / "k.parquet",
        _execution(),
    )
    gdf, meta = read_manifest(res.path)
    assert not any(c.startswith("lc_") for c in gdf.columns)
    assert "landcover" not in meta["inputs"]
    json.dumps(meta)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"landcover_legend": None}, "needs --landcover-legend"),
        ({"landcover": None}, "without --landcover"),
        ({"climate_legend": "worldcover"}, "not a climate legend"),
        ({"landcover_legend": "nope"}, "unknown landcover legend"),
        ({"workers": 0}, "--workers"),
    ],
)
def test_bad_arguments(inputs, kw, match):
    args = dict(
        landcover=inputs / "lc.tif",
        landcover_legend="worldcover",
        climate=inputs / "kg.tif",
        climate_legend="koppen-beck",
    )
    args.update(kw)
    workers = args.pop("workers", 1)
    with pytest.raises(CsmoeError, match=match):
        build_manifest(
            BuildInputs(inputs / "fp.gpkg", **args), inputs / "x.parquet", _execution(workers)
        )
    assert not (inputs / "x.parquet").exists()


def test_imagery_paths_relative_below_or_in_same_project_else_absolute(tmp_path):
    """Contract: relative below the manifest's folder; ``..`` only inside one project tree."""
    import pandas as pd

    from csmoe_data.builder import relative_paths

    proj = tmp_path / "proj"
    (proj / "imgs" / "a").mkdir(parents=True)
    (proj / "manifests").mkdir()
    (proj / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    outside = tmp_path / "elsewhere" / "b"
    outside.mkdir(parents=True)
    vals = pd.Series([str(proj / "imgs" / "a"), str(outside), None])
    # below the manifest's folder: relative, no ..
    assert relative_paths(vals, proj).tolist()[:2] == ["imgs/a", str(outside.resolve())]
    # same project tree (pyproject.toml above both): relative with ..
    got = relative_paths(vals, proj / "manifests").tolist()
    assert got[0] == "../imgs/a" and got[1] == str(outside.resolve()) and pd.isna(got[2])
    # no project around the manifest (e.g. a scratch folder): absolute, never ../../..
    from csmoe_data.builder import project_root

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if project_root(scratch) is not None:  # pragma: no cover - tmp inside a checkout
        pytest.skip("the temporary folder lies inside a project tree")
    assert relative_paths(vals, scratch).tolist()[0] == str((proj / "imgs" / "a").resolve())


def test_image_path_column_written_relative(inputs):
    """``image_path`` (folders of patch rasters) follows the same rule as s1/s2 paths."""
    fp = gpd.read_file(inputs / "fp.gpkg")
    (inputs / "out").mkdir()
    fp["image_path"] = [str(inputs / "out" / f"{i}.tif") for i in fp["patch_id"]]
    fp.to_file(inputs / "fp.gpkg")
    _build(inputs, inputs / "out" / "m.parquet")
    gdf, _ = read_manifest(inputs / "out" / "m.parquet")
    assert sorted(gdf["image_path"]) == sorted(f"{i}.tif" for i in fp["patch_id"])
