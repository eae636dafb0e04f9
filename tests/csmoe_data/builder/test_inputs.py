"""Inputs as users have them, through the whole build: tile sets in several CRSs, 0..360 maps,
NetCDF through xarray, bands, GDAL paths (/vsizip/, a local /vsicurl/ server), legends that fit."""

from __future__ import annotations

import http.server
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import rasterio
import shapely
import xarray as xr
from affine import Affine

from csmoe_data.builder.options import BuildInputs, ExecutionOptions
from csmoe_data.builder.pipeline import build_manifest
from csmoe_data.errors import CsmoeDataError
from csmoe_data.manifest import read_manifest
from csmoe_data.samples import resolve_path

QUIET = ExecutionOptions(progress=False)


def _utm_squares(lonlat: list[tuple[float, float]], size: float) -> gpd.GeoDataFrame:
    """Squares of ``size`` m centred on lon/lat points, all in EPSG:32633."""
    t = pyproj.Transformer.from_crs(4326, 32633, always_xy=True)
    x, y = t.transform([p[0] for p in lonlat], [p[1] for p in lonlat])
    h = size / 2
    geoms = shapely.box(np.array(x) - h, np.array(y) - h, np.array(x) + h, np.array(y) + h)
    return gpd.GeoDataFrame(
        {"patch_id": [f"p{i}" for i in range(len(lonlat))]}, geometry=geoms, crs=32633
    )


def _build(
    tmp_path: Path, name: str, footprints: Path, **inputs: object
) -> tuple[gpd.GeoDataFrame, dict]:
    out = tmp_path / f"{name}.parquet"
    build_manifest(BuildInputs(footprints=footprints, **inputs), out, QUIET)  # type: ignore[arg-type]
    return read_manifest(out)


def _utm_tile(
    geotiff: Callable[..., Path], path: Path, epsg: int, lon0: float, lon1: float, value: int
) -> Path:
    t = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    xs, ys = t.transform([lon0, lon1, lon0, lon1], [47.0, 47.0, 48.0, 48.0])
    left, right = min(xs), max(xs)
    bottom, top = min(ys), max(ys)
    res = 200.0
    w, h = int((right - left) // res) + 1, int((top - bottom) // res) + 1
    return geotiff(
        path,
        np.full((h, w), value, dtype=np.uint8),
        Affine(res, 0, left, 0, -res, top),
        crs=f"EPSG:{epsg}",
    )


def test_tiles_in_two_utm_zones(tmp_path: Path, geotiff: Callable[..., Path]) -> None:
    tiles = tmp_path / "tiles"
    (tiles / "sub").mkdir(parents=True)
    a = _utm_tile(
        geotiff, tiles / "a_32632.tif", 32632, 10.5, 12.3, 10
    )  # overlaps b over 11.7-12.3
    b = _utm_tile(geotiff, tiles / "sub" / "b_32633.tif", 32633, 11.7, 13.5, 20)
    fp = _utm_squares(
        [(11.0, 47.5), (13.0, 47.5), (12.0, 47.5), (12.3, 47.5), (20.0, 47.5)], 10_000
    )
    fp.to_parquet(tmp_path / "fp.parquet")
    gdf, meta = _build(
        tmp_path,
        "folder",
        tmp_path / "fp.parquet",
        landcover=str(tiles),
        landcover_legend="worldcover",
    )
    got = gdf.set_index("patch_id")
    assert got.loc["p0", "lc_10"] == pytest.approx(1.0) and got.loc["p1", "lc_20"] == pytest.approx(
        1.0
    )
    # in the overlap everything belongs to the first tile, counted once
    assert got.loc["p2", "lc_10"] == pytest.approx(1.0) and got.loc[
        "p2", "lc_valid_frac"
    ] == pytest.approx(1.0, abs=1e-6)
    # across tile a's east edge: each part weighted by its area
    with rasterio.open(a) as ds:
        edge = shapely.box(*ds.bounds)
    square = pyproj.Transformer.from_crs(32633, 32632, always_xy=True)
    f3 = shapely.transform(
        fp.geometry.iloc[3], lambda c: np.column_stack(square.transform(c[:, 0], c[:, 1]))
    )
    share_a = shapely.intersection(shapely.segmentize(f3, 100), edge).area / f3.area
    assert 0.2 < share_a < 0.8
    assert got.loc["p3", "lc_10"] == pytest.approx(share_a, abs=2e-3)
    assert got.loc["p3", "lc_20"] == pytest.approx(1 - share_a, abs=2e-3)
    assert got.loc["p3", "lc_valid_frac"] == pytest.approx(1.0, abs=1e-3)
    assert got.loc["p4", "lc_valid_frac"] == 0.0  # on no tile
    entry = meta["inputs"]["landcover"]
    assert entry["tiles"] == 2 and entry["crs"] == ["EPSG:32632", "EPSG:32633"]
    assert {s["path"] for s in entry["sources"]} == {str(a.resolve()), str(b.resolve())}
    assert all(len(s["sha256"]) == 64 and s["size"] > 0 for s in entry["sources"])
    # the same tiles as a glob and as a repeated option
    for value in (str(tiles / "**" / "*.tif"), (str(a), str(b))):
        again, _ = _build(
            tmp_path,
            "again",
            tmp_path / "fp.parquet",
            landcover=value,
            landcover_legend="worldcover",
        )
        cols = ["lc_10", "lc_20", "lc_valid_frac"]
        assert np.allclose(again[cols].to_numpy(), gdf[cols].to_numpy(), equal_nan=True)
        (tmp_path / "again.parquet").unlink()


def _koppen() -> tuple[np.ndarray, dict]:
    with rasterio.open(resolve_path("sample:koppen-rubel")) as ds:
        return ds.read(1), ds.profile


def _global_footprints(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    lon = np.r_[
        rng.uniform(-180, 180, 60), -0.1, 0.05, 359.9 - 360.0, 179.95, -179.95, -10.0, -75.0
    ]
    lat = np.r_[rng.uniform(-55, 70, 60), 10.0, 45.0, 52.0, -16.0, 65.0, 40.0, 5.0]
    boxes = shapely.box(lon - 0.3, lat - 0.3, lon + 0.3, lat + 0.3)
    gdf = gpd.GeoDataFrame(
        {"patch_id": [f"g{i}" for i in range(len(lon))]}, geometry=boxes, crs=4326
    )
    gdf.to_parquet(tmp_path / "global.parquet")
    return tmp_path / "global.parquet"


def test_rolled_0_360_koppen_matches_the_original(
    tmp_path: Path, geotiff: Callable[..., Path]
) -> None:
    data, profile = _koppen()
    half = data.shape[1] // 2
    rolled = np.roll(data, -half, axis=1)  # column 0 is now longitude 0
    t = profile["transform"]
    path = geotiff(
        tmp_path / "kg_0_360.tif",
        rolled,
        Affine(t.a, 0, 0.0, 0, t.e, t.f),
        crs="EPSG:4326",
        nodata=profile["nodata"],
        compress="deflate",
    )
    fp = _global_footprints(tmp_path)
    ref, _ = _build(
        tmp_path, "ref", fp, climate="sample:koppen-rubel", climate_legend="koppen-rubel"
    )
    got, meta = _build(tmp_path, "rolled", fp, climate=str(path), climate_legend="koppen-rubel")
    cols = [c for c in ref.columns if c.startswith("kg_") and c != "kg_major"]
    assert np.allclose(
        got[cols].to_numpy(float), ref[cols].to_numpy(float), atol=1e-6, equal_nan=True
    )
    assert (got["kg_major"].fillna("") == ref["kg_major"].fillna("")).all()
    west = ref.geometry.centroid.x < 0
    assert (
        west.sum() > 20
        and (got.loc[west, "kg_valid_frac"] > 0).sum() == (ref.loc[west, "kg_valid_frac"] > 0).sum()
    )
    assert meta["inputs"]["climate"]["longitude_window"] == [0.0, 360.0]
    # the same map as NetCDF written by xarray: lon 0..360, latitudes ascending, no grid_mapping
    lat = t.f + t.e * (np.arange(data.shape[0]) + 0.5)
    lon = t.a * (np.arange(data.shape[1]) + 0.5)
    ds = xr.Dataset(
        {"kg": (("lat", "lon"), rolled[::-1], {"_FillValue": np.uint8(profile["nodata"])})},
        coords={"lat": lat[::-1], "lon": lon},
    )
    ds.to_netcdf(tmp_path / "kg.nc", encoding={"kg": {"zlib": True}})
    nc, meta_nc = _build(
        tmp_path, "nc", fp, climate=str(tmp_path / "kg.nc"), climate_legend="koppen-rubel"
    )
    assert np.allclose(
        nc[cols].to_numpy(float), ref[cols].to_numpy(float), atol=1e-6, equal_nan=True
    )
    assert any("assumed EPSG:4326" in w for w in meta_nc["warnings"])
    assert meta_nc["inputs"]["climate"]["reader"] == "xarray"


def test_bands(tmp_path: Path, geotiff: Callable[..., Path]) -> None:
    label = np.full((50, 50), 30, dtype=np.uint8)
    stack = np.stack([np.full((50, 50), 200, np.uint8), np.full((50, 50), 201, np.uint8), label])
    t = Affine(100, 0, 400000, 0, -100, 5300000)
    path = geotiff(
        tmp_path / "dw.tif", stack, t, crs="EPSG:32633", descriptions=["water", "trees", "label"]
    )
    fp = gpd.GeoDataFrame(
        {"patch_id": ["a"]}, geometry=[shapely.box(401000, 5296000, 403000, 5298000)], crs=32633
    )
    fp.to_parquet(tmp_path / "fp.parquet")
    with pytest.raises(
        CsmoeDataError, match=r"3 bands: 1 \(water\), 2 \(trees\), 3 \(label\).*--landcover-band"
    ):
        _build(
            tmp_path,
            "x",
            tmp_path / "fp.parquet",
            landcover=str(path),
            landcover_legend="worldcover",
        )
    for band in ("label", "3"):
        gdf, meta = _build(
            tmp_path,
            f"b{band}",
            tmp_path / "fp.parquet",
            landcover=str(path),
            landcover_legend="worldcover",
            landcover_band=band,
        )
        assert gdf["lc_30"].iloc[0] == pytest.approx(1.0)
        assert meta["inputs"]["landcover"]["band"] == 3


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP range requests (what GDAL's /vsicurl/ reads with)."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        spec = self.headers.get("Range")
        if spec and spec.startswith("bytes="):
            lo_text, hi_text = spec[6:].split("-")
            lo, hi = int(lo_text), min(int(hi_text or len(data) - 1), len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
            body = data[lo : hi + 1]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local HTTP server over tmp_path/www on 127.0.0.1 (stopped after the test)."""
    root = tmp_path / "www"
    root.mkdir()
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")

    def handler(*args: object, **kwargs: object) -> _RangeHandler:
        return _RangeHandler(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_vsizip_and_vsicurl(tmp_path: Path, geotiff: Callable[..., Path], served: str) -> None:
    rng = np.random.default_rng(0)
    data = rng.choice(np.array([10, 20, 30], dtype=np.uint8), size=(200, 200))
    t = Affine(50, 0, 400000, 0, -50, 5300000)
    tif = geotiff(tmp_path / "www" / "lc.tif", data, t, crs="EPSG:32633")
    with zipfile.ZipFile(tmp_path / "tiles.zip", "w") as zf:
        zf.write(tif, "inner/lc.tif")
    fp = _utm_squares([], 1)
    xs = rng.uniform(401000, 408000, 20)
    ys = rng.uniform(5292000, 5299000, 20)
    fp = gpd.GeoDataFrame(
        {"patch_id": [f"q{i}" for i in range(20)]},
        geometry=shapely.box(xs, ys, xs + 900, ys + 900),
        crs=32633,
    )
    fp.to_parquet(tmp_path / "fp.parquet")
    kw = {"landcover_legend": "worldcover"}
    ref, _ = _build(tmp_path, "file", tmp_path / "fp.parquet", landcover=str(tif), **kw)
    cols = ["lc_10", "lc_20", "lc_30", "lc_valid_frac"]
    zipped = f"/vsizip/{tmp_path / 'tiles.zip'}/inner/lc.tif"
    got, meta = _build(tmp_path, "zip", tmp_path / "fp.parquet", landcover=zipped, **kw)
    assert np.allclose(got[cols].to_numpy(), ref[cols].to_numpy())
    assert meta["inputs"]["landcover"]["path"] == zipped  # passed to GDAL untouched
    source = meta["inputs"]["landcover"]["sources"][0]
    assert source["archive"] == str(tmp_path / "tiles.zip") and len(source["sha256"]) == 64
    url = f"/vsicurl/{served}/lc.tif"
    got, meta = _build(tmp_path, "curl", tmp_path / "fp.parquet", landcover=url, **kw)
    assert np.allclose(got[cols].to_numpy(), ref[cols].to_numpy())
    assert meta["inputs"]["landcover"]["sources"][0]["remote"] is True
    assert len(meta["inputs"]["landcover"]["checksum"]) == 1
    with pytest.raises(CsmoeDataError) as info:
        _build(
            tmp_path,
            "missing",
            tmp_path / "fp.parquet",
            landcover=f"/vsizip/{tmp_path / 'tiles.zip'}/nope.tif",
            **kw,
        )
    message = str(info.value)
    assert (
        "nope.tif" in message
        and "\n" not in message
        and message.startswith("cannot open land-cover raster")
    )


def test_legends_that_fit(tmp_path: Path, geotiff: Callable[..., Path]) -> None:
    # Beck's main-group map: 1 A ... 5 E, 0 ocean, over several continents
    rng = np.random.default_rng(1)
    main = rng.integers(0, 6, size=(180, 360)).astype(np.uint8)
    path = geotiff(
        tmp_path / "main.tif", main, Affine(1, 0, -180, 0, -1, 90), crs="EPSG:4326", nodata=None
    )
    fp = _global_footprints(tmp_path)
    gdf, meta = _build(tmp_path, "wrong", fp, climate=str(path), climate_legend="koppen-beck")
    assert any("koppen-beck-main" in w for w in meta["warnings"])
    gdf, meta = _build(tmp_path, "right", fp, climate=str(path), climate_legend="koppen-beck-main")
    assert [c for c in gdf.columns if c.startswith("kg_") and len(c) == 4] == [
        "kg_A",
        "kg_B",
        "kg_C",
        "kg_D",
        "kg_E",
    ]
    assert not meta["warnings"]
    beck = tmp_path / "beck_main.json"
    beck.write_text(
        json.dumps(
            {
                "0": "ocean/nodata",
                "1": "A tropical",
                "2": "B arid",
                "3": "C temperate",
                "4": "D cold",
                "5": "E polar",
            }
        )
    )
    from_file, meta_file = _build(tmp_path, "file", fp, climate=str(path), climate_legend=str(beck))
    assert np.allclose(
        from_file[["kg_A", "kg_E", "kg_valid_frac"]].to_numpy(float),
        gdf[["kg_A", "kg_E", "kg_valid_frac"]].to_numpy(float),
        equal_nan=True,
    )
    assert meta_file["legends"]["climate"]["nodata"] == [0]
    # a 30-class map read with the main-group legend: values it lacks, the 30-class legends named
    full = rng.integers(1, 31, size=(180, 360)).astype(np.uint8)
    path30 = geotiff(tmp_path / "full.tif", full, Affine(1, 0, -180, 0, -1, 90), crs="EPSG:4326")
    _, meta30 = _build(
        tmp_path, "level", fp, climate=str(path30), climate_legend="koppen-beck-main"
    )
    assert any("koppen-beck" in w and "lacks" in w for w in meta30["warnings"])


def test_fractional_values_are_unknown_codes_not_nodata(
    tmp_path: Path, geotiff: Callable[..., Path]
) -> None:
    data = np.full((40, 40), 10.0, dtype=np.float32)
    data[:, 20:] = 10.5  # not a class code
    data[:5, :] = np.nan  # nodata
    path = geotiff(
        tmp_path / "f.tif",
        data,
        Affine(100, 0, 400000, 0, -100, 5300000),
        crs="EPSG:32633",
        nodata=np.nan,
    )
    fp = gpd.GeoDataFrame(
        {"patch_id": ["a"]}, geometry=[shapely.box(400000, 5296000, 404000, 5300000)], crs=32633
    )
    fp.to_parquet(tmp_path / "fp.parquet")
    gdf, meta = _build(
        tmp_path,
        "frac",
        tmp_path / "fp.parquet",
        landcover=str(path),
        landcover_legend="worldcover",
    )
    unknown = meta["unknown_codes"]["landcover"]
    assert unknown["rows"] == 1 and unknown["values"] == {"10.5": pytest.approx(35 * 20)}
    assert gdf["lc_10"].iloc[0] == pytest.approx(1.0)  # of the valid area
    assert gdf["lc_valid_frac"].iloc[0] == pytest.approx(
        35 * 20 / 1600
    )  # NaN rows and 10.5 excluded
