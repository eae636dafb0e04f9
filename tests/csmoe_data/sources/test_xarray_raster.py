"""Tests of csmoe_data.sources.xarray_raster on NetCDF/Zarr files written by xarray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyproj
import pytest
import xarray as xr

from csmoe_data.errors import CsmoeDataError
from csmoe_data.sources.xarray_raster import close_xarray, inspect_xarray, read_xarray_window

CODES = np.arange(1, 13, dtype=np.uint8).reshape(3, 4)  # north-up


@pytest.fixture(autouse=True)
def _close() -> None:
    yield
    close_xarray()


def _lonlat(tmp_path: Path, name: str, ascending: bool, **extra: np.ndarray) -> Path:
    lat = np.array([1.0, 0.0, -1.0])
    data = CODES
    if ascending:
        lat, data = lat[::-1], data[::-1]
    ds = xr.Dataset(
        {"kg": (("lat", "lon"), data, {"_FillValue": np.uint8(255)}), **extra},
        coords={"lat": lat, "lon": [0.5, 1.5, 2.5, 3.5]},
    )
    path = tmp_path / name
    ds.to_netcdf(path)
    return path


@pytest.mark.parametrize("ascending", [False, True])
def test_lonlat_without_grid_mapping_is_epsg4326(tmp_path: Path, ascending: bool) -> None:
    path = _lonlat(tmp_path, "kg.nc", ascending)
    grid = inspect_xarray(str(path), "climate raster")
    assert grid.crs == "EPSG:4326" and "assumed EPSG:4326" in grid.crs_source
    assert grid.transform == (1.0, 0.0, 0.0, 0.0, -1.0, 1.5)
    assert (grid.width, grid.height, grid.dtype, grid.nodata) == (4, 3, "uint8", 255.0)
    assert grid.flip_y is ascending
    assert np.array_equal(read_xarray_window(grid, 0, 3, 0, 4), CODES)  # north-up either way
    assert np.array_equal(read_xarray_window(grid, 1, 3, 2, 4), CODES[1:3, 2:4])


def test_grid_mapping_gives_the_crs(tmp_path: Path) -> None:
    crs = pyproj.CRS.from_epsg(32633)
    ds = xr.Dataset(
        {
            "lc": (("y", "x"), CODES, {"grid_mapping": "crs"}),
            "crs": ((), 0, crs.to_cf()),
        },
        coords={
            "y": [5000150.0, 5000050.0, 4999950.0],
            "x": [400050.0, 400150.0, 400250.0, 400350.0],
        },
    )
    ds.to_netcdf(tmp_path / "lc.nc")
    grid = inspect_xarray(
        str(tmp_path / "lc.nc"), "land-cover raster", var_option="--landcover-var"
    )
    assert grid.crs == "EPSG:32633" and grid.crs_source == "CF grid_mapping 'crs'"
    assert grid.variable == "lc"  # the grid mapping is not a data variable
    assert grid.transform == (100.0, 0.0, 400000.0, 0.0, -100.0, 5000200.0)
    # CF parameters only (no WKT), as other tools write them
    attrs = {k: v for k, v in crs.to_cf().items() if k != "crs_wkt"}
    ds["crs"].attrs = attrs
    ds.to_netcdf(tmp_path / "lc_cf.nc")
    assert inspect_xarray(str(tmp_path / "lc_cf.nc")).crs == "EPSG:32633"


def test_no_crs_needs_the_option(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {"lc": (("y", "x"), CODES)}, coords={"y": [3.0, 2.0, 1.0], "x": [0.0, 1.0, 2.0, 3.0]}
    )
    ds.to_netcdf(tmp_path / "nocrs.nc")
    with pytest.raises(CsmoeDataError, match="--landcover-crs"):
        inspect_xarray(str(tmp_path / "nocrs.nc"), crs_option="--landcover-crs")
    grid = inspect_xarray(str(tmp_path / "nocrs.nc"), crs="EPSG:3035", crs_option="--landcover-crs")
    assert grid.crs == "EPSG:3035" and "--landcover-crs" in grid.crs_source
    with pytest.raises(CsmoeDataError, match="not a CRS"):
        inspect_xarray(str(tmp_path / "nocrs.nc"), crs="EPSG:99999999")


def test_several_variables_are_listed(tmp_path: Path) -> None:
    other = (("lat", "lon"), CODES * 2)
    path = _lonlat(tmp_path, "two.nc", False, main=other)
    with pytest.raises(CsmoeDataError, match=r"2 data variables \(kg, main\).*--climate-var"):
        inspect_xarray(str(path))
    assert inspect_xarray(str(path), variable="main").variable == "main"
    with pytest.raises(CsmoeDataError, match="no such data variable"):
        inspect_xarray(str(path), variable="tas")


def test_extra_dimension_is_a_band(tmp_path: Path) -> None:
    stack = np.stack([CODES, CODES + 20])
    ds = xr.Dataset(
        {"kg": (("period", "lat", "lon"), stack)},
        coords={
            "period": ["1991-2020", "2071-2100"],
            "lat": [1.0, 0.0, -1.0],
            "lon": [0.5, 1.5, 2.5, 3.5],
        },
    )
    ds.to_netcdf(tmp_path / "periods.nc")
    with pytest.raises(CsmoeDataError, match="2 bands.*1991-2020.*--climate-band"):
        inspect_xarray(str(tmp_path / "periods.nc"))
    grid = inspect_xarray(str(tmp_path / "periods.nc"), band="2071-2100")
    assert np.array_equal(read_xarray_window(grid, 0, 3, 0, 4), CODES + 20)
    assert inspect_xarray(str(tmp_path / "periods.nc"), band=1).selector == (("period", 0),)


def test_zarr_store_and_0_360(tmp_path: Path) -> None:
    lon = np.arange(0.5, 360.0, 1.0)
    data = np.tile(np.arange(360, dtype=np.uint16), (2, 1))
    ds = xr.Dataset(
        {"kg": (("latitude", "longitude"), data)},
        coords={"latitude": [0.5, -0.5], "longitude": lon},
    )
    ds.to_zarr(tmp_path / "kg.zarr", mode="w", consolidated=False)
    grid = inspect_xarray(str(tmp_path / "kg.zarr"))
    assert grid.crs == "EPSG:4326" and grid.transform[2] == 0.0 and grid.width == 360
    assert read_xarray_window(grid, 0, 1, 358, 360).tolist() == [[358, 359]]


def test_irregular_or_unreadable(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {"kg": (("lat", "lon"), CODES)},
        coords={"lat": [1.0, 0.0, -3.0], "lon": [0.5, 1.5, 2.5, 3.5]},
    )
    ds.to_netcdf(tmp_path / "irregular.nc")
    with pytest.raises(CsmoeDataError, match="not regularly spaced"):
        inspect_xarray(str(tmp_path / "irregular.nc"))
    (tmp_path / "broken.nc").write_bytes(b"CDF\x01garbage")
    with pytest.raises(CsmoeDataError, match="broken.nc"):
        inspect_xarray(str(tmp_path / "broken.nc"))
