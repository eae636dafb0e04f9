"""Tests of csmoe_data.sources.paths: files, folders, globs, GDAL paths, provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from csmoe_data.errors import CsmoeDataError
from csmoe_data.sources.paths import (
    expand_raster_values,
    is_gdal_path,
    is_xarray_path,
    source_provenance,
)


def _tiles(tmp_path: Path, geotiff) -> list[Path]:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / ".hidden").mkdir()
    data = np.ones((4, 4), dtype=np.uint8)
    t = Affine(10, 0, 0, 0, -10, 40)
    paths = [
        geotiff(tmp_path / "a" / "t2.tif", data, t),
        geotiff(tmp_path / "a" / "b" / "t1.tif", data, t),
        geotiff(tmp_path / "a" / ".hidden" / "t3.tif", data, t),
    ]
    (tmp_path / "a" / "notes.txt").write_text("not a raster")
    (tmp_path / "a" / "map.zarr").mkdir()
    (tmp_path / "a" / "map.zarr" / "zarr.json").write_text("{}")
    return paths


def test_folder_glob_file_and_repeats(tmp_path: Path, geotiff) -> None:
    t2, t1, _ = _tiles(tmp_path, geotiff)
    store = str((tmp_path / "a" / "map.zarr").resolve())
    folder = expand_raster_values(str(tmp_path / "a"), "land-cover raster")
    assert folder == [str(t1.resolve()), store, str(t2.resolve())]
    globbed = expand_raster_values(str(tmp_path / "a" / "**" / "*.tif"), "land-cover raster")
    assert globbed == [str(t1.resolve()), str(t2.resolve())]  # hidden and txt skipped
    repeated = expand_raster_values([str(t2), str(t1), str(t2)], "land-cover raster")
    assert repeated == [str(t2.resolve()), str(t1.resolve())]
    assert expand_raster_values(store, "climate raster") == [store]  # a store is one dataset


def test_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for value, words in (
        (str(tmp_path / "missing.tif"), "not found"),
        (str(tmp_path / "empty"), "no raster"),
        (str(tmp_path / "*.tif"), "no file matches"),
    ):
        with pytest.raises(CsmoeDataError, match=words) as info:
            expand_raster_values(value, "land-cover raster")
        assert "\n" not in str(info.value)
    with pytest.raises(CsmoeDataError):
        expand_raster_values([], "land-cover raster")


def test_gdal_paths_and_urls_pass_untouched() -> None:
    values = [
        "/vsizip/tiles.zip/a.tif",
        "/vsicurl/https://example.org/a.tif",
        "/vsis3/bucket/a.tif",
        "s3://bucket/key.tif",
        "https://example.org/map.tif",
        "zip://archive.zip!a.tif",
    ]
    assert all(is_gdal_path(v) for v in values)
    assert expand_raster_values(values, "climate raster") == values
    assert not is_gdal_path("/tmp/a.tif") and not is_gdal_path("relative/a.tif")
    assert is_xarray_path("x.nc") and is_xarray_path("x.zarr/") and not is_xarray_path("x.tif")


def test_provenance_follows_vrt_sources(tmp_path: Path, geotiff) -> None:
    tile = geotiff(
        tmp_path / "tile.tif", np.ones((4, 4), dtype=np.uint8), Affine(1, 0, 0, 0, -1, 4)
    )
    vrt = tmp_path / "mosaic.vrt"
    vrt.write_text(
        '<VRTDataset rasterXSize="4" rasterYSize="4"><VRTRasterBand dataType="Byte" band="1">'
        '<SimpleSource><SourceFilename relativeToVRT="1">tile.tif</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
    )
    before = source_provenance(str(vrt))
    assert [e["path"] for e in before] == [str(vrt), str(tile.resolve())]
    assert before[1]["size"] == tile.stat().st_size and len(before[1]["sha256"]) == 64
    geotiff(tile, np.zeros((4, 4), dtype=np.uint8), Affine(1, 0, 0, 0, -1, 4))
    after = source_provenance(str(vrt))
    assert after[0]["sha256"] == before[0]["sha256"]  # the VRT itself did not change
    assert after[1]["sha256"] != before[1]["sha256"]  # its tile did, and the record shows it
