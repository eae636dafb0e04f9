"""``csmoe-data build-manifest`` through Typer's CliRunner: success, summary, bad input."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.manifest import read_manifest

X0, Y0 = 500000.0, 5000000.0
runner = CliRunner()


@pytest.fixture
def data(tmp_path, geotiff):
    lc = np.full((100, 100), 40, dtype=np.uint8)
    lc[:, 50:] = 10
    geotiff(tmp_path / "lc.tif", lc, from_origin(X0, Y0, 10, 10), crs="EPSG:32633", nodata=0)
    kg = np.full((10, 10), 10, dtype=np.uint8)  # Rubel 10 = Cfb
    kg_transform = from_origin(14.0, 46.0, 0.2, 0.2)
    geotiff(tmp_path / "kg.tif", kg, kg_transform, crs="EPSG:4326", nodata=32)
    geoms = [shapely.box(X0 + 100 * i, Y0 - 300, X0 + 100 * i + 200, Y0 - 100) for i in range(6)]
    gpd.GeoDataFrame({"tile_id": [f"t{i}" for i in range(6)]}, geometry=geoms, crs=32633).to_file(
        tmp_path / "fp.geojson"
    )
    return tmp_path


def _args(d, out="m.parquet", **over):
    opts = {
        "--footprints": str(d / "fp.geojson"),
        "--landcover": str(d / "lc.tif"),
        "--landcover-legend": "worldcover",
        "--climate": str(d / "kg.tif"),
        "--climate-legend": "koppen-rubel",
        "--out": str(d / out),
        "--id-column": "tile_id",
    }
    opts.update(over)
    args = ["build-manifest"]
    for k, v in opts.items():
        if v is not None:
            args += [k, v]
    return args


def test_cli_builds_and_summarises(data):
    res = runner.invoke(app, _args(data))
    assert res.exit_code == 0, res.output
    flat = "".join(res.stdout.split())
    assert "rows6" in flat and "".join(str(data / "m.parquet").split()) in flat
    gdf, meta = read_manifest(data / "m.parquet")
    assert list(gdf["patch_id"]) == [f"t{i}" for i in range(6)]
    assert gdf["lc_major"].tolist() == [40, 40, 40, 40, 10, 10]  # t4: a tie, first in legend order
    assert gdf["lc_40"].tolist()[3:] == pytest.approx([1.0, 0.5, 0.0])
    assert (gdf["kg_major"] == "Cfb").all()
    assert meta["parameters"]["id_column"] == "tile_id"
    # no --overwrite: refused, file untouched
    before = (data / "m.parquet").read_bytes()
    res = runner.invoke(app, _args(data))
    assert res.exit_code != 0 and "--overwrite" in res.stderr
    assert (data / "m.parquet").read_bytes() == before
    res = runner.invoke(app, [*_args(data), "--overwrite", "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert (data / "m.parquet").read_bytes() == before


def test_cli_unknown_codes_reported(data):
    with rasterio.open(data / "lc.tif", "r+") as ds:
        arr = ds.read(1)
        arr[27:30, :5] = 123
        ds.write(arr, 1)
    res = runner.invoke(app, _args(data))
    assert res.exit_code == 0, res.output
    assert "unknown landcover codes" in res.stdout and "123" in res.stdout
    meta = read_manifest(data / "m.parquet")[1]
    assert meta["unknown_codes"]["landcover"]["values"] == {
        "123": pytest.approx(15.0)
    }  # 3 x 5 px under t0


def test_cli_sampling_and_pool(data):
    res = runner.invoke(app, [*_args(data, "pool.parquet")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "build-manifest",
            "--pool",
            str(data / "pool.parquet"),
            "--n",
            "3",
            "--seed",
            "2",
            "--out",
            str(data / "s.parquet"),
        ],
    )
    assert res.exit_code == 0, res.output
    gdf, meta = read_manifest(data / "s.parquet")
    assert len(gdf) == 3 and meta["sampling"]["seed"] == 2 and "selected from 6" in res.stdout
    res = runner.invoke(app, [*_args(data, "s2.parquet"), "--n", "3", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert list(read_manifest(data / "s2.parquet")[0]["patch_id"]) == list(gdf["patch_id"])
    res = runner.invoke(app, [*_args(data, "bad.parquet"), "--split", "train=0.5,val=0.2"])
    assert res.exit_code != 0 and "--split" in res.stderr


def test_a_sample_in_another_folder_points_at_the_pool_imagery(data):
    fp = gpd.read_file(data / "fp.geojson")
    for i in range(6):
        (data / "img" / f"t{i}").mkdir(parents=True)
    fp["s2_path"] = [str(data / "img" / f"t{i}") for i in range(6)]
    fp["s1_path"] = [f"s3://bucket/s1/t{i}.tif" for i in range(6)]  # a URL stays as written
    fp.to_file(data / "fp.geojson")
    res = runner.invoke(app, _args(data, "pool.parquet"))
    assert res.exit_code == 0, res.output
    pool = read_manifest(data / "pool.parquet")[0]
    assert list(pool["s2_path"]) == [f"img/t{i}" for i in range(6)]  # relative to the pool
    for out in ("same.parquet", "deeper/down/s.parquet"):
        (data / out).parent.mkdir(parents=True, exist_ok=True)
        args = ["build-manifest", "--pool", str(data / "pool.parquet"), "--n", "4"]
        res = runner.invoke(app, [*args, "--out", str(data / out)])
        assert res.exit_code == 0, res.output
        sample = read_manifest(data / out)[0]
        folder = (data / out).parent
        for pid, s2, s1 in zip(
            sample["patch_id"], sample["s2_path"], sample["s1_path"], strict=True
        ):
            assert (folder / s2).resolve() == (data / "img" / pid).resolve()
            assert s1 == f"s3://bucket/s1/{pid}.tif"
    same = read_manifest(data / "same.parquet")[0]
    assert all(v.startswith("img/") for v in same["s2_path"])  # same folder: values unchanged


def _fail(res, data, out="x.parquet"):
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert not (data / out).exists()
    assert not [p for p in data.iterdir() if p.name.startswith(".x.parquet")]
    return lines[0]


def test_bad_input_missing_files(data):
    assert "not found" in _fail(
        runner.invoke(app, _args(data, "x.parquet", **{"--footprints": str(data / "none.gpkg")})),
        data,
    )
    assert "not found" in _fail(
        runner.invoke(app, _args(data, "x.parquet", **{"--landcover": str(data / "none.tif")})),
        data,
    )
    assert "sample" in _fail(
        runner.invoke(app, _args(data, "x.parquet", **{"--climate": "sample:nope"})), data
    )


def test_bad_input_corrupt_and_crsless_rasters(data, geotiff):
    (data / "corrupt.tif").write_bytes(b"II*\x00" + b"\x00" * 200)
    msg = _fail(
        runner.invoke(app, _args(data, "x.parquet", **{"--landcover": str(data / "corrupt.tif")})),
        data,
    )
    assert "corrupt.tif" in msg
    geotiff(data / "nocrs.tif", np.ones((4, 4), dtype=np.uint8), from_origin(0, 4, 1, 1), crs=None)
    assert "no CRS" in _fail(
        runner.invoke(app, _args(data, "x.parquet", **{"--climate": str(data / "nocrs.tif")})), data
    )


def test_bad_input_footprints(data):
    (data / "empty.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    msg = _fail(
        runner.invoke(
            app, _args(data, "x.parquet", **{"--footprints": str(data / "empty.geojson")})
        ),
        data,
    )
    assert "empty" in msg.lower() or "no footprints" in msg.lower()
    geoms = [shapely.box(X0, Y0 - 100, X0 + 100, Y0)] * 2
    gpd.GeoDataFrame({"tile_id": ["a", "a"]}, geometry=geoms, crs=32633).to_file(
        data / "dup.geojson"
    )
    assert (
        "duplicate"
        in _fail(
            runner.invoke(
                app, _args(data, "x.parquet", **{"--footprints": str(data / "dup.geojson")})
            ),
            data,
        ).lower()
    )
    gpd.GeoDataFrame({"tile_id": ["a", None]}, geometry=geoms, crs=32633).to_file(
        data / "nullid.geojson"
    )
    msg = _fail(
        runner.invoke(
            app, _args(data, "x.parquet", **{"--footprints": str(data / "nullid.geojson")})
        ),
        data,
    )
    assert "empty" in msg or "missing" in msg
    msg = _fail(runner.invoke(app, _args(data, "x.parquet", **{"--id-column": "nope"})), data)
    assert "nope" in msg


def test_bad_input_legends(data):
    msg = _fail(
        runner.invoke(app, _args(data, "x.parquet", **{"--landcover-legend": "landsat"})), data
    )
    assert "unknown landcover legend 'landsat'" in msg and "worldcover" in msg
    msg = _fail(
        runner.invoke(app, _args(data, "x.parquet", **{"--climate-legend": "koppen"})), data
    )
    assert "koppen-rubel" in msg
    (data / "leg.csv").write_text("value;label\n1;x\n")
    assert "code,name" in _fail(
        runner.invoke(
            app, _args(data, "x.parquet", **{"--landcover-legend": str(data / "leg.csv")})
        ),
        data,
    )


def test_unreachable_dask_scheduler_is_one_line_before_footprints(data):
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # footprints that do not exist: loading them would fail with another message
    args = _args(data, "x.parquet", **{"--footprints": str(data / "none.parquet")})
    msg = _fail(runner.invoke(app, [*args, "--dask-scheduler", f"tcp://127.0.0.1:{port}"]), data)
    assert f"cannot connect to the Dask scheduler at tcp://127.0.0.1:{port}" in msg


def test_footprints_off_the_globe_are_dropped_and_counted(data):
    """Latitudes beyond +-90 and projected coordinates outside their CRS's domain."""
    ok = shapely.box(X0, Y0 - 300, X0 + 200, Y0 - 100)
    utm = [ok, shapely.box(X0, 1e8, X0 + 200, 1e8 + 200), shapely.box(1e9, 0, 1e9 + 200, 200)]
    utm.append(shapely.box(-100000, Y0 - 300, -99800, Y0 - 100))  # far west, still valid
    frame = {"tile_id": ["ok", "north", "east", "west"]}
    gpd.GeoDataFrame(frame, geometry=utm, crs=32633).to_parquet(data / "utm.parquet")
    res = runner.invoke(
        app, _args(data, "u.parquet", **{"--footprints": str(data / "utm.parquet")})
    )
    assert res.exit_code == 0, res.output
    gdf = read_manifest(data / "u.parquet")[0]
    assert list(gdf["patch_id"]) == ["ok", "west"]
    flat = " ".join(res.stdout.split())
    assert "2 footprint(s) outside the valid coordinates of their CRS dropped" in flat
    lonlat = [shapely.box(14.0, 45.0, 14.1, 45.1), shapely.box(14.0, 89.9, 14.1, 95.0)]
    gpd.GeoDataFrame({"tile_id": ["in", "beyond"]}, geometry=lonlat, crs=4326).to_parquet(
        data / "ll.parquet"
    )
    res = runner.invoke(app, _args(data, "l.parquet", **{"--footprints": str(data / "ll.parquet")}))
    assert res.exit_code == 0, res.output
    assert list(read_manifest(data / "l.parquet")[0]["patch_id"]) == ["in"]
    assert "latitudes beyond +-90 degrees dropped" in " ".join(res.stdout.split())
    assert (read_manifest(data / "l.parquet")[0].geometry.bounds["maxy"] <= 90).all()
