"""Categorical raster I/O: validation, per-process open datasets, windowed reads.

The descriptor engine never warps a raster; :func:`inspect_raster` checks up front everything a
worker would otherwise fail on (missing file, no CRS, rotated transform, corrupt blocks).

Read strategy, per raster (decided once per job by :func:`plan_in_memory`): rasters small enough
for the memory budget (``--raster-memory``, :data:`DEFAULT_RASTER_MEMORY_MB`; coarse global maps
such as the 5 km MODIS or 5 arc-minute Köppen maps, 9-26 MB) are decoded whole once per process
and every footprint window is a slice of that array (:func:`read_pixels`), instead of thousands
of small GDAL reads; larger rasters are read by windows, grouped by 512-pixel tile so that one
read serves the neighbouring footprints of a tile (:mod:`csmoe_data.descriptors`). Both give the
same pixels, so the same output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from csmoe_data.errors import CsmoeDataError

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

    from csmoe_data.sources.xarray_raster import XarrayGrid

#: rasterio datasets opened by this process, by resolved path (workers keep theirs open)
_OPEN: dict[str, DatasetReader] = {}
#: rasters decoded whole by this process (the in-memory read strategy), by resolved path
_IN_MEMORY: dict[str, NDArray[np.generic]] = {}
#: default memory budget (MB, per process) for rasters read whole into memory
DEFAULT_RASTER_MEMORY_MB = 512


@dataclass(frozen=True)
class RasterInfo:
    """What the engine needs to know about a categorical raster (one band of a file or store).

    Attributes:
        path: resolved file path, or a GDAL path / URL exactly as given.
        crs: canonical CRS text (``EPSG:<code>`` where one exists, else WKT).
        transform: affine coefficients ``(a, b, c, d, e, f)`` (rasterio order).
        width: columns.
        height: rows.
        dtype: numpy dtype name of the band.
        nodata: the band's nodata value, or None.
        res: pixel size ``(x, y)`` in CRS units.
        block_shape: internal block ``(rows, cols)`` of the band.
        is_geographic: whether the CRS is longitude/latitude (pixels are then weighted by their
            area on the sphere, :mod:`csmoe_data.engine.area`).
        bounds: ``(left, bottom, right, top)``.
        band: the 1-based band read (``--landcover-band`` / ``--climate-band``).
        band_description: that band's description, or None.
        xarray: the NetCDF/Zarr variable when the raster is read through xarray, else None.
        crs_source: where the CRS came from (``file``, a CF grid mapping, an option, an
            assumption), said in the summary when it is not the file's own.
        lon_west: west edge of the longitude window of a geographic raster that lies outside
            ``[-180, 180]`` (a 0..360 map); footprints are moved into it
            (:func:`csmoe_data.sources.longitudes.fit_longitudes`). None otherwise.
    """

    path: str
    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    dtype: str
    nodata: float | None
    res: tuple[float, float]
    block_shape: tuple[int, int]
    is_geographic: bool
    bounds: tuple[float, float, float, float]
    band: int = 1
    band_description: str | None = None
    xarray: XarrayGrid | None = None
    crs_source: str = "file"
    lon_west: float | None = None

    @property
    def spherical(self) -> bool:
        """Whether pixels are weighted by their area on the sphere (geographic rasters)."""
        return self.is_geographic

    def to_metadata(self) -> dict[str, Any]:
        """JSON form for the manifest's ``inputs`` entry (checksums are added by the caller)."""
        entry: dict[str, Any] = {
            "path": self.path,
            "crs": self.crs,
            "resolution": list(self.res),
            "size": [self.width, self.height],
            "dtype": self.dtype,
            "nodata": self.nodata,
            "bounds": list(self.bounds),
            "band": self.band,
            "pixel_weights": "spherical area" if self.spherical else "planar (equal)",
        }
        if self.band_description:
            entry["band_description"] = self.band_description
        if self.xarray is not None:
            entry["variable"] = self.xarray.variable
            entry["reader"] = "xarray"
        if self.crs_source != "file":
            entry["crs_source"] = self.crs_source
        if self.lon_west is not None:
            entry["longitude_window"] = [self.lon_west, self.lon_west + 360.0]
        return entry


@dataclass(frozen=True)
class RasterOptions:
    """How to read one raster kind: band, variable, CRS override, and the options' names.

    Attributes:
        band: 1-based index or band description (None: the only band).
        variable: NetCDF/Zarr data variable (None: the only one).
        crs: CRS overriding the file's (needed for a file without CRS).
        option: the raster's option (``--landcover``), whose siblings name the others
            (``--landcover-band``, ``--landcover-var``, ``--landcover-crs``) in messages.
    """

    band: str | int | None = None
    variable: str | None = None
    crs: str | None = None
    option: str = "--landcover"


def _open_error(role: str, path: str, exc: BaseException) -> CsmoeDataError:
    from csmoe_data.sources.paths import one_line

    return CsmoeDataError(f"cannot open {role} {path}: {one_line(exc)}")


def _inspect_xarray(path: str, role: str, options: RasterOptions) -> RasterInfo:
    from csmoe_data.geometry import to_crs
    from csmoe_data.sources.longitudes import raster_lon_window
    from csmoe_data.sources.xarray_raster import inspect_xarray, read_xarray_window

    o = options.option
    grid = inspect_xarray(
        path,
        role,
        variable=options.variable,
        band=options.band,
        crs=options.crs,
        var_option=f"{o}-var",
        band_option=f"{o}-band",
        crs_option=f"{o}-crs",
    )
    a, b, c, d, e, f = grid.transform
    bounds = (c, f + e * grid.height, c + a * grid.width, f)
    geographic = bool(to_crs(grid.crs).is_geographic)
    band = grid.band_index
    info = RasterInfo(
        path=path,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        dtype=grid.dtype,
        nodata=grid.nodata,
        res=(abs(a), abs(e)),
        block_shape=grid.block_shape,
        is_geographic=geographic,
        bounds=bounds,
        band=band,
        band_description=grid.band_descriptions[band - 1] if grid.band_descriptions else None,
        xarray=grid,
        crs_source=grid.crs_source,
        lon_west=raster_lon_window(bounds[0], bounds[2]) if geographic else None,
    )
    h, w = info.block_shape
    read_xarray_window(grid, 0, min(h, grid.height), 0, min(w, grid.width))  # decodes
    return info


def inspect_raster(
    path: str | Path, role: str = "raster", options: RasterOptions | None = None
) -> RasterInfo:
    """Open and validate a categorical raster; return its :class:`RasterInfo`.

    GDAL virtual paths and URLs (``/vsizip/``, ``/vsicurl/``, ``s3://``, ``https://``, ...) go
    to GDAL untouched; NetCDF files and Zarr stores are read through xarray
    (:mod:`csmoe_data.sources.xarray_raster`).

    Args:
        path: file path, GDAL path, URL, or ``sample:<name>``.
        role: word used in error messages (``land-cover raster``, ``climate raster``).
        options: band, variable, CRS override (default: the only band, the file's CRS).

    Raises:
        CsmoeDataError: missing or unreadable file, not a raster GDAL can read (corrupt; the
            message carries GDAL's reason), several bands without a band option (the message
            lists them), no CRS, a rotated/sheared transform, or a band that is neither integer
            nor float.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    from csmoe_data.geometry import crs_string, to_crs
    from csmoe_data.samples import resolve_path
    from csmoe_data.sources.bands import select_band
    from csmoe_data.sources.longitudes import raster_lon_window
    from csmoe_data.sources.paths import is_gdal_path, is_xarray_path, one_line

    options = options or RasterOptions()
    o = options.option
    if is_gdal_path(path):
        p = str(path)
    else:
        local = resolve_path(path)
        if not local.exists():
            raise CsmoeDataError(f"{role} not found: {local}")
        if local.is_dir() and not is_xarray_path(local):
            raise CsmoeDataError(f"{role} {local} is a directory, not a raster file")
        if not os.access(local, os.R_OK):
            raise CsmoeDataError(f"{role} {local} is not readable (permission denied)")
        p = str(local.resolve())
    if is_xarray_path(p) and not is_gdal_path(p):
        return _inspect_xarray(p, role, options)
    if options.variable is not None:
        raise CsmoeDataError(f"{o}-var applies to NetCDF/Zarr; {p} is read by GDAL")
    try:
        ds = rasterio.open(p)
    except (RasterioIOError, OSError) as exc:
        raise _open_error(role, p, exc) from exc
    try:
        with ds:
            if ds.count < 1:
                raise CsmoeDataError(f"{role} {p} has no bands")
            band = select_band(options.band, list(ds.descriptions), p, f"{o}-band")
            crs_source = "file"
            if options.crs is not None:
                crs = crs_string(options.crs)
                crs_source = f"given by {o}-crs"
            elif ds.crs is None:
                raise CsmoeDataError(
                    f"{role} {p} has no CRS; give it with {o}-crs EPSG:<code> "
                    "(or assign one with gdal_edit.py -a_srs)"
                )
            else:
                crs = crs_string(ds.crs)
            t = ds.transform
            if t.b != 0 or t.d != 0:
                raise CsmoeDataError(
                    f"{role} {p} has a rotated geotransform, which is not supported"
                )
            dtype = ds.dtypes[band - 1]
            if not (
                np.issubdtype(np.dtype(dtype), np.integer)
                or np.issubdtype(np.dtype(dtype), np.floating)
            ):
                raise CsmoeDataError(f"{role} {p} has a {dtype} band; expected integer class codes")
            nodata = ds.nodatavals[band - 1]
            geographic = bool(to_crs(crs).is_geographic)
            bounds = tuple(float(v) for v in ds.bounds)
            info = RasterInfo(
                path=p,
                crs=crs,
                transform=(t.a, t.b, t.c, t.d, t.e, t.f),
                width=ds.width,
                height=ds.height,
                dtype=dtype,
                nodata=None if nodata is None else float(nodata),
                res=(abs(t.a), abs(t.e)),
                block_shape=tuple(ds.block_shapes[band - 1]),
                is_geographic=geographic,
                bounds=bounds,  # type: ignore[arg-type]
                band=band,
                band_description=ds.descriptions[band - 1],
                crs_source=crs_source,
                lon_west=raster_lon_window(bounds[0], bounds[2]) if geographic else None,
            )
            # decode one block: a truncated or corrupt file fails here, not in a worker
            h, w = info.block_shape
            ds.read(band, window=((0, min(h, ds.height)), (0, min(w, ds.width))))
    except CsmoeDataError:
        raise
    except (RasterioIOError, OSError) as exc:
        raise CsmoeDataError(f"{role} {p} is not a readable raster: {one_line(exc)}") from exc
    except Exception as exc:  # GDAL raises assorted errors for corrupt data
        raise CsmoeDataError(f"{role} {p} could not be decoded: {one_line(exc)}") from exc
    return info


def open_dataset(path: str) -> DatasetReader:
    """Return this process's open rasterio dataset for ``path`` (opened once, kept open).

    Raises:
        CsmoeDataError: if the file cannot be opened.
    """
    ds = _OPEN.get(path)
    if ds is None or ds.closed:
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            ds = rasterio.open(path)
        except (RasterioIOError, OSError) as exc:
            raise _open_error("raster", path, exc) from exc
        _OPEN[path] = ds
    return ds


def close_datasets() -> None:
    """Close every dataset this process opened (tests, and before a fork)."""
    for ds in _OPEN.values():
        ds.close()
    _OPEN.clear()


def read_window(
    info: RasterInfo, row0: int, row1: int, col0: int, col1: int
) -> NDArray[np.generic]:
    """Read the band's rows ``[row0, row1)`` and columns ``[col0, col1)`` (inside the raster).

    Raises:
        CsmoeDataError: if the pixels cannot be decoded (corrupt block).
    """
    if info.xarray is not None:
        from csmoe_data.sources.xarray_raster import read_xarray_window

        return read_xarray_window(info.xarray, row0, row1, col0, col1)
    ds = open_dataset(info.path)
    try:
        return ds.read(info.band, window=((row0, row1), (col0, col1)))
    except Exception as exc:  # rasterio/GDAL decoding errors
        raise CsmoeDataError(f"cannot read pixels of {info.path}: {exc}") from exc


def raster_nbytes(info: RasterInfo) -> int:
    """Bytes of band 1 decoded whole."""
    return int(info.width) * int(info.height) * np.dtype(info.dtype).itemsize


def plan_in_memory(infos: list[RasterInfo], budget_mb: float) -> set[str]:
    """Paths of the rasters to decode whole: smallest first, while their sum fits the budget.

    Args:
        infos: the rasters of a job.
        budget_mb: memory per process for whole rasters, in MB (10**6 bytes); 0 reads every
            raster by windows.
    """
    budget = float(budget_mb) * 1e6
    chosen: set[str] = set()
    used = 0
    for info in sorted(infos, key=raster_nbytes):
        size = raster_nbytes(info)
        if used + size <= budget:
            chosen.add(info.path)
            used += size
    return chosen


def whole_raster(info: RasterInfo) -> NDArray[np.generic]:
    """Band 1 decoded whole, once per process (kept for the process's later chunks).

    Raises:
        CsmoeDataError: if the pixels cannot be decoded.
    """
    data = _IN_MEMORY.get(info.path)
    if data is None:
        data = read_window(info, 0, info.height, 0, info.width)
        data.setflags(write=False)
        _IN_MEMORY[info.path] = data
    return data


def read_pixels(
    info: RasterInfo, row0: int, row1: int, col0: int, col1: int, in_memory: bool = False
) -> NDArray[np.generic]:
    """Band 1 rows ``[row0, row1)``, columns ``[col0, col1)``, from memory or by a window read.

    With ``in_memory`` a slice of the raster decoded whole (:func:`whole_raster`), else a
    windowed read; the same pixels either way.

    Raises:
        CsmoeDataError: if the pixels cannot be decoded.
    """
    if in_memory:
        return whole_raster(info)[row0:row1, col0:col1]
    return read_window(info, row0, row1, col0, col1)
