"""Categorical raster I/O: validation, per-process open datasets, windowed reads.

The descriptor engine never warps a raster; :func:`inspect_raster` checks up front everything a
worker would otherwise fail on (missing file, no CRS, rotated transform, corrupt blocks).
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

#: rasterio datasets opened by this process, by resolved path (workers keep theirs open)
_OPEN: dict[str, DatasetReader] = {}


@dataclass(frozen=True)
class RasterInfo:
    """What the engine needs to know about a categorical raster (band 1).

    Attributes:
        path: resolved file path.
        crs: canonical CRS text (``EPSG:<code>`` where one exists, else WKT).
        transform: affine coefficients ``(a, b, c, d, e, f)`` (rasterio order).
        width: columns.
        height: rows.
        dtype: numpy dtype name of band 1.
        nodata: the band's nodata value, or None.
        res: pixel size ``(x, y)`` in CRS units.
        block_shape: internal block ``(rows, cols)`` of band 1.
        is_geographic: whether the CRS is longitude/latitude.
        bounds: ``(left, bottom, right, top)``.
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

    def to_metadata(self) -> dict[str, Any]:
        """JSON form for the manifest's ``inputs`` entry (sha256 is added by the caller)."""
        return {
            "path": self.path,
            "crs": self.crs,
            "resolution": list(self.res),
            "size": [self.width, self.height],
            "dtype": self.dtype,
            "nodata": self.nodata,
            "bounds": list(self.bounds),
        }


def inspect_raster(path: str | Path, role: str = "raster") -> RasterInfo:
    """Open and validate a categorical raster; return its :class:`RasterInfo`.

    Args:
        path: file path (or ``sample:<name>``).
        role: word used in error messages (``land-cover raster``, ``climate raster``).

    Raises:
        CsmoeDataError: missing or unreadable file, not a raster GDAL can read (corrupt), no CRS,
            a rotated/sheared transform, or a non-integer band that is not float either.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    from csmoe_data.geometry import crs_string
    from csmoe_data.samples import resolve_path

    p = resolve_path(path)
    if not p.exists():
        raise CsmoeDataError(f"{role} not found: {p}")
    if p.is_dir():
        raise CsmoeDataError(f"{role} {p} is a directory, not a raster file")
    if not os.access(p, os.R_OK):
        raise CsmoeDataError(f"{role} {p} is not readable (permission denied)")
    try:
        with rasterio.open(p) as ds:
            if ds.crs is None:
                raise CsmoeDataError(
                    f"{role} {p} has no CRS; assign one (e.g. gdal_edit.py -a_srs)"
                )
            t = ds.transform
            if t.b != 0 or t.d != 0:
                raise CsmoeDataError(
                    f"{role} {p} has a rotated geotransform, which is not supported"
                )
            if ds.count < 1:
                raise CsmoeDataError(f"{role} {p} has no bands")
            dtype = ds.dtypes[0]
            if not (
                np.issubdtype(np.dtype(dtype), np.integer)
                or np.issubdtype(np.dtype(dtype), np.floating)
            ):
                raise CsmoeDataError(f"{role} {p} has a {dtype} band; expected integer class codes")
            crs = crs_string(ds.crs)
            info = RasterInfo(
                path=str(p.resolve()),
                crs=crs,
                transform=(t.a, t.b, t.c, t.d, t.e, t.f),
                width=ds.width,
                height=ds.height,
                dtype=dtype,
                nodata=None if ds.nodata is None else float(ds.nodata),
                res=(abs(t.a), abs(t.e)),
                block_shape=tuple(ds.block_shapes[0]),
                is_geographic=bool(ds.crs.is_geographic),
                bounds=tuple(ds.bounds),
            )
            # decode one block: a truncated or corrupt file fails here, not in a worker
            h, w = info.block_shape
            ds.read(1, window=((0, min(h, ds.height)), (0, min(w, ds.width))))
    except CsmoeDataError:
        raise
    except (RasterioIOError, OSError) as exc:
        raise CsmoeDataError(f"{role} {p} is not a readable raster: {exc}") from exc
    except Exception as exc:  # GDAL raises assorted errors for corrupt data
        raise CsmoeDataError(f"{role} {p} could not be decoded: {exc}") from exc
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
            raise CsmoeDataError(f"cannot open raster {path}: {exc}") from exc
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
    """Read band 1 rows ``[row0, row1)`` and columns ``[col0, col1)`` (inside the raster).

    Raises:
        CsmoeDataError: if the pixels cannot be decoded (corrupt block).
    """
    ds = open_dataset(info.path)
    try:
        return ds.read(1, window=((row0, row1), (col0, col1)))
    except Exception as exc:  # rasterio/GDAL decoding errors
        raise CsmoeDataError(f"cannot read pixels of {info.path}: {exc}") from exc
