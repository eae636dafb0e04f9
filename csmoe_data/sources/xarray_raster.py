"""NetCDF and Zarr class maps read through xarray: grid, CRS and windowed reads.

A climate map as xarray writes it (``Dataset.to_netcdf``) usually has 1-D ``lat``/``lon``
coordinates and no CF ``grid_mapping``; GDAL then reports no CRS. Here the grid comes from the
coordinates (regularly spaced pixel centres; latitudes ascending or descending) and the CRS, in
this order, from

1. ``--climate-crs`` / ``--landcover-crs`` when given (it overrides the file);
2. the variable's CF ``grid_mapping`` variable (``crs_wkt`` / ``spatial_ref`` attributes, as GDAL
   and rioxarray write them, else its CF parameters through ``pyproj.CRS.from_cf``);
3. a ``spatial_ref`` variable (rioxarray's convention) when the variable names none;
4. EPSG:4326 when the coordinates are named ``lon``/``lat`` (or ``longitude``/``latitude``, or
   carry CF ``degrees_east``/``degrees_north`` units) and lie in degree ranges; this assumption
   is reported (:attr:`XarrayGrid.crs_source`) and shown in the build summary.

Otherwise the map is refused with a message naming the option. Values are read raw
(``mask_and_scale=False``): class codes stay integers, ``_FillValue`` / ``missing_value`` is
the nodata value. Reads are lazy: only the window under a footprint is loaded.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from csmoe_data.errors import CsmoeDataError
from csmoe_data.sources.bands import select_band
from csmoe_data.sources.paths import one_line

__all__ = ["XarrayGrid", "close_xarray", "inspect_xarray", "read_xarray_window"]

_Y_NAMES = ("lat", "latitude", "y", "rlat", "nav_lat")
_X_NAMES = ("lon", "longitude", "x", "rlon", "nav_lon")
_LONLAT = ({"lon", "longitude"}, {"lat", "latitude"})

#: datasets opened by this process, by path (workers keep theirs open)
_OPEN: dict[str, Any] = {}


@dataclass(frozen=True)
class XarrayGrid:
    """A 2-D class map inside a NetCDF file or Zarr store.

    Attributes:
        path: the file or store.
        variable: the data variable.
        y_dim: its row dimension.
        x_dim: its column dimension.
        selector: fixed indices of its other dimensions (``(("time", 0),)``).
        flip_y: rows are stored south to north; reads are flipped so row 0 is the north.
        transform: north-up affine ``(a, 0, c, 0, e, f)`` with ``e < 0``.
        width: columns.
        height: rows.
        dtype: numpy dtype name.
        nodata: ``_FillValue`` or ``missing_value``, or None.
        crs: CRS text (``EPSG:<code>`` where one exists, else WKT).
        crs_source: where the CRS came from, in words.
        block_shape: chunk ``(rows, cols)`` of the store, or a 512 x 512 default.
        band_descriptions: the choices of the selected extra dimension, if any.
        band_index: the 1-based choice along it (1 without one).
    """

    path: str
    variable: str
    y_dim: str
    x_dim: str
    selector: tuple[tuple[str, int], ...]
    flip_y: bool
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    dtype: str
    nodata: float | None
    crs: str
    crs_source: str
    block_shape: tuple[int, int]
    band_descriptions: tuple[str, ...] = ()
    band_index: int = 1


def _open(path: str) -> Any:
    ds = _OPEN.get(path)
    if ds is None:
        import xarray as xr

        kwargs: dict[str, Any] = {"mask_and_scale": False, "decode_times": False}
        try:
            if path.rstrip("/").lower().endswith(".zarr"):
                with warnings.catch_warnings():
                    # stores written without consolidated metadata open fine, only slower
                    warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
                    ds = xr.open_dataset(path, engine="zarr", **kwargs)
            else:
                ds = xr.open_dataset(path, **kwargs)
        except FileNotFoundError as exc:
            raise CsmoeDataError(f"cannot open {path}: not found") from exc
        except ImportError as exc:
            raise CsmoeDataError(
                f"cannot open {path}: {one_line(exc)} (pip install 'csmoe[data]')"
            ) from exc
        except Exception as exc:  # backends raise assorted errors for unreadable files
            raise CsmoeDataError(f"cannot open {path} with xarray: {one_line(exc)}") from exc
        _OPEN[path] = ds
    return ds


def close_xarray() -> None:
    """Close every dataset this process opened (tests, and before a fork)."""
    for ds in _OPEN.values():
        # closing a dataset whose file vanished must not fail the caller
        with contextlib.suppress(Exception):
            ds.close()
    _OPEN.clear()


def forget_xarray() -> None:
    """Drop this process's handles without closing them (a forked worker must not share them)."""
    _OPEN.clear()


def _is_grid_mapping(var: Any) -> bool:
    return "grid_mapping_name" in var.attrs or "crs_wkt" in var.attrs or var.ndim == 0


def _data_variables(ds: Any) -> list[str]:
    bounds = {str(ds[c].attrs.get("bounds", "")) for c in ds.variables}
    out = []
    for name in ds.data_vars:
        var = ds[name]
        if name in bounds or _is_grid_mapping(var) or var.ndim < 2:
            continue
        out.append(str(name))
    return out


def _axis_dims(var: Any, ds: Any) -> tuple[str, str]:
    dims = [str(d) for d in var.dims]

    def by_attrs(axis: str, names: tuple[str, ...], units: tuple[str, ...]) -> str | None:
        for d in dims:
            if d.lower() in names:
                return d
        for d in dims:
            if d in ds.variables:
                attrs = ds[d].attrs
                if str(attrs.get("axis", "")).upper() == axis:
                    return d
                if str(attrs.get("units", "")).lower() in units:
                    return d
                if str(attrs.get("standard_name", "")) in names:
                    return d
        return None

    y = by_attrs("Y", _Y_NAMES, ("degrees_north", "degree_north", "degrees_n"))
    x = by_attrs("X", _X_NAMES, ("degrees_east", "degree_east", "degrees_e"))
    if (x is None or y is None) and len(dims) == 2:
        y, x = dims
    if x is None or y is None or x == y:
        raise CsmoeDataError(
            f"variable {var.name!r} has dimensions {dims}; cannot tell its x and y "
            "(expected lon/lat, longitude/latitude or x/y)"
        )
    return y, x


def _axis(ds: Any, dim: str, path: str) -> tuple[float, float, int]:
    """First centre, step and size of a regularly spaced coordinate."""
    if dim not in ds.variables:
        raise CsmoeDataError(f"{path}: dimension {dim!r} has no coordinate values")
    values = np.asarray(ds[dim].values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise CsmoeDataError(f"{path}: coordinate {dim!r} needs at least 2 values along one axis")
    steps = np.diff(values)
    step = float((values[-1] - values[0]) / (len(values) - 1))
    if step == 0 or not np.allclose(steps, step, rtol=1e-5, atol=abs(step) * 1e-5):
        raise CsmoeDataError(
            f"{path}: coordinate {dim!r} is not regularly spaced; only regular grids are supported"
        )
    return float(values[0]), step, len(values)


def _crs_from_mapping(gm: Any) -> Any:
    import pyproj

    for key in ("crs_wkt", "spatial_ref"):
        if key in gm.attrs:
            return pyproj.CRS.from_user_input(str(gm.attrs[key]))
    return pyproj.CRS.from_cf(dict(gm.attrs))


def _resolve_crs(
    ds: Any,
    var: Any,
    x_dim: str,
    y_dim: str,
    bounds: tuple[float, float, float, float],
    crs: str | None,
    crs_option: str,
    path: str,
) -> tuple[str, str]:
    import pyproj
    from pyproj.exceptions import CRSError

    from csmoe_data.geometry import crs_string

    if crs is not None:
        try:
            return crs_string(pyproj.CRS.from_user_input(crs)), f"given by {crs_option}"
        except CRSError as exc:
            raise CsmoeDataError(f"{crs_option} {crs!r} is not a CRS: {one_line(exc)}") from exc
    names = []
    gm_attr = str(var.attrs.get("grid_mapping", "")).strip()
    if gm_attr:
        names.append(gm_attr.split(":")[0].split()[0])
    if "spatial_ref" in ds.variables and "spatial_ref" not in names:
        names.append("spatial_ref")
    for name in names:
        if name not in ds.variables:
            raise CsmoeDataError(
                f"{path}: variable {var.name!r} names grid_mapping {name!r}, which is missing"
            )
        try:
            found = _crs_from_mapping(ds[name])
        except CRSError as exc:
            raise CsmoeDataError(
                f"{path}: grid_mapping {name!r} is not a CRS pyproj reads: {one_line(exc)}"
            ) from exc
        return crs_string(found), f"CF grid_mapping {name!r}"
    left, bottom, right, top = bounds

    def units(d: str) -> str:
        return str(ds[d].attrs.get("units", "")).lower() if d in ds.variables else ""

    lon_named = x_dim.lower() in _LONLAT[0] or units(x_dim).startswith("degree")
    lat_named = y_dim.lower() in _LONLAT[1] or units(y_dim).startswith("degree")
    in_range = left >= -180.5 and right <= 360.5 and bottom >= -90.5 and top <= 90.5
    if lon_named and lat_named and in_range:
        return "EPSG:4326", (
            f"assumed EPSG:4326: no CRS in the file, coordinates {x_dim}/{y_dim} are degrees"
        )
    raise CsmoeDataError(
        f"{path}: variable {var.name!r} has no CRS (no CF grid_mapping or spatial_ref, and "
        f"{x_dim}/{y_dim} are not lon/lat degrees); give it with {crs_option} EPSG:<code>"
    )


def inspect_xarray(
    path: str,
    role: str = "raster",
    variable: str | None = None,
    band: str | int | None = None,
    crs: str | None = None,
    var_option: str = "--climate-var",
    band_option: str = "--climate-band",
    crs_option: str = "--climate-crs",
) -> XarrayGrid:
    """Open a NetCDF file or Zarr store and describe the class map in it.

    Args:
        path: the file or store.
        role: words for messages.
        variable: the data variable (needed when there are several).
        band: index (1-based) or coordinate value along the one extra dimension of size > 1.
        crs: a CRS overriding the file's (needed when the file has none and is not lon/lat).
        var_option: the option naming the variable, for messages.
        band_option: the option naming the band, for messages.
        crs_option: the option naming the CRS, for messages.

    Raises:
        CsmoeDataError: unreadable file, no or several data variables without ``variable`` (the
            message lists them), unknown variable, irregular or missing coordinates, several
            extra dimensions, no CRS, or a type that is not integer or float.
    """
    ds = _open(path)
    candidates = _data_variables(ds)
    if variable is None:
        if not candidates:
            raise CsmoeDataError(f"{role} {path} holds no 2-D data variable")
        if len(candidates) > 1:
            raise CsmoeDataError(
                f"{role} {path} holds {len(candidates)} data variables ({', '.join(candidates)}); "
                f"choose one with {var_option} NAME"
            )
        variable = candidates[0]
    if variable not in ds.data_vars:
        listed = ", ".join(candidates) or "none"
        raise CsmoeDataError(
            f"{var_option} {variable!r}: {path} has no such data variable (2-D variables: {listed})"
        )
    var = ds[variable]
    y_dim, x_dim = _axis_dims(var, ds)
    selector: list[tuple[str, int]] = []
    extra = [str(d) for d in var.dims if str(d) not in (x_dim, y_dim)]
    wide = [d for d in extra if var.sizes[d] > 1]
    if len(wide) > 1:
        raise CsmoeDataError(
            f"{role} {path}: variable {variable!r} has several dimensions besides {y_dim}/{x_dim} "
            f"({', '.join(f'{d}={var.sizes[d]}' for d in wide)}); select a 2-D map first"
        )
    descriptions: tuple[str, ...] = ()
    band_index = 1
    for d in extra:
        if d in wide:
            labels = (
                [str(v) for v in np.asarray(ds[d].values).tolist()]
                if d in ds.variables
                else [None] * var.sizes[d]
            )
            index = select_band(band, labels, path, band_option)
            selector.append((d, index - 1))
            band_index = index
            descriptions = tuple("" if v is None else str(v) for v in labels)
        else:
            selector.append((d, 0))
    if not wide and band is not None:
        select_band(band, [variable], path, band_option)  # only 1 (or its name) is valid
    x0, dx, width = _axis(ds, x_dim, path)
    y0, dy, height = _axis(ds, y_dim, path)
    if dx < 0:
        raise CsmoeDataError(f"{path}: {x_dim} decreases along the grid; not supported")
    flip_y = dy > 0  # stored south to north
    ady = abs(dy)
    top = (y0 + dy * (height - 1) if flip_y else y0) + ady / 2.0
    left = x0 - dx / 2.0
    bounds = (left, top - ady * height, left + dx * width, top)
    crs_text, crs_source = _resolve_crs(ds, var, x_dim, y_dim, bounds, crs, crs_option, path)
    dtype = np.dtype(var.dtype)
    if dtype.kind not in "iuf":
        raise CsmoeDataError(f"{role} {path}: variable {variable!r} is {dtype}, not class codes")
    nodata = None
    for key in ("_FillValue", "missing_value"):
        value = var.attrs.get(key, var.encoding.get(key))
        if value is not None:
            arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
            nodata = float(arr[0])
            break
    chunks = var.encoding.get("chunks") or var.encoding.get("chunksizes")
    block = (min(512, height), min(512, width))
    if chunks:
        sizes = dict(zip([str(d) for d in var.dims], chunks, strict=False))
        block = (int(sizes.get(y_dim, block[0])), int(sizes.get(x_dim, block[1])))
    return XarrayGrid(
        path=path,
        variable=variable,
        y_dim=y_dim,
        x_dim=x_dim,
        selector=tuple(selector),
        flip_y=flip_y,
        transform=(dx, 0.0, left, 0.0, -ady, top),
        width=width,
        height=height,
        dtype=dtype.name,
        nodata=nodata,
        crs=crs_text,
        crs_source=crs_source,
        block_shape=block,
        band_descriptions=descriptions,
        band_index=band_index,
    )


def read_xarray_window(
    grid: XarrayGrid, row0: int, row1: int, col0: int, col1: int
) -> NDArray[Any]:
    """Rows ``[row0, row1)`` and columns ``[col0, col1)`` of the north-up map.

    Raises:
        CsmoeDataError: if the values cannot be read.
    """
    ds = _open(grid.path)
    rows = slice(grid.height - row1, grid.height - row0) if grid.flip_y else slice(row0, row1)
    index: dict[str, Any] = {grid.y_dim: rows, grid.x_dim: slice(col0, col1)}
    index.update(dict(grid.selector))
    try:
        data = ds[grid.variable].isel(index).transpose(grid.y_dim, grid.x_dim).values
    except Exception as exc:  # backend decoding errors
        raise CsmoeDataError(
            f"cannot read {grid.variable!r} of {grid.path}: {one_line(exc)}"
        ) from exc
    if grid.flip_y:
        data = data[::-1]
    return np.ascontiguousarray(data)
