"""Categorical rasters: validation, per-process open datasets, exact pixel coverage.

The descriptor engine never warps a raster. Footprints are brought into the raster's CRS and
then into *pixel space* (x = column, y = row, one unit per pixel) through the inverse of the
raster's affine transform; :func:`coverage` returns the exact area of a polygon inside every
pixel of a window, so a sub-pixel footprint on a coarse raster still gets the class of the pixel
it lies in (pixel-centre inclusion alone would find no pixel at all).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from csmoe_data.errors import CsmoeDataError

#: rasterio datasets opened by this process, by resolved path (workers keep theirs open)
_OPEN: dict[str, Any] = {}


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
                raise CsmoeDataError(f"{role} {p} has no CRS; assign one (e.g. gdal_edit.py -a_srs)")
            t = ds.transform
            if t.b != 0 or t.d != 0:
                raise CsmoeDataError(f"{role} {p} has a rotated geotransform, which is not supported")
            if ds.count < 1:
                raise CsmoeDataError(f"{role} {p} has no bands")
            dtype = ds.dtypes[0]
            if not (np.issubdtype(np.dtype(dtype), np.integer) or np.issubdtype(np.dtype(dtype), np.floating)):
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


def open_dataset(path: str) -> Any:
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


def read_window(info: RasterInfo, row0: int, row1: int, col0: int, col1: int) -> NDArray[Any]:
    """Read band 1 rows ``[row0, row1)`` and columns ``[col0, col1)`` (inside the raster).

    Raises:
        CsmoeDataError: if the pixels cannot be decoded (corrupt block).
    """
    ds = open_dataset(info.path)
    try:
        return ds.read(1, window=((row0, row1), (col0, col1)))
    except Exception as exc:  # rasterio/GDAL decoding errors
        raise CsmoeDataError(f"cannot read pixels of {info.path}: {exc}") from exc


def to_pixel_space(geoms: NDArray[np.object_], info: RasterInfo) -> NDArray[np.object_]:
    """Map geometries from the raster's CRS to pixel space (x = column, y = row).

    Polygons are re-oriented afterwards (shells counter-clockwise in pixel space, holes the
    other way), which :func:`coverage` relies on.
    """
    a, _, c, _, e, f = info.transform
    # inverse of x = a*col + c, y = e*row + f (no rotation, checked by inspect_raster)
    inv = [1.0 / a, 0.0, 0.0, 1.0 / e, -c / a, -f / e]
    px = _affine(geoms, inv)
    return shapely.orient_polygons(px, exterior_cw=False)


def _affine(geoms: NDArray[np.object_], m: list[float]) -> NDArray[np.object_]:
    a, b, d, e, xo, yo = m

    def f(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = coords[:, 0], coords[:, 1]
        return np.column_stack([a * x + b * y + xo, d * x + e * y + yo])

    return shapely.transform(geoms, f)


@dataclass
class Pieces:
    """Polygon boundaries cut at every pixel line: each piece lies inside one pixel.

    Pieces are grouped by polygon: those of polygon ``k`` are ``[offsets[k], offsets[k + 1])``.

    Attributes:
        col: pixel column of each piece.
        row: pixel row of each piece.
        dx: signed x extent.
        partial: signed area between the piece and its pixel's top edge, ``dx * (y_mid - row)``.
        offsets: ``(n_polygons + 1,)`` start of each polygon's pieces.
    """

    col: NDArray[np.int64]
    row: NDArray[np.int64]
    dx: NDArray[np.float64]
    partial: NDArray[np.float64]
    offsets: NDArray[np.int64]

    def of(self, k: int) -> Pieces:
        """The pieces of polygon ``k`` alone."""
        a, b = self.offsets[k], self.offsets[k + 1]
        return Pieces(self.col[a:b], self.row[a:b], self.dx[a:b], self.partial[a:b], np.array([0, b - a]))


def boundary_pieces(polygons: Any) -> Pieces:
    """Cut every ring of (pixel-space, oriented) polygons at the integer x and y lines.

    Vectorised over all edges of all polygons at once (numpy calls cost per call, not per
    element, so batching thousands of footprints is what makes this fast): each edge is split
    at the parameters where it crosses a pixel line, and each piece is attributed to the pixel
    containing its midpoint.

    Args:
        polygons: one shapely Polygon or an array of them.

    Returns:
        :class:`Pieces`, grouped by polygon in input order.
    """
    polys = np.atleast_1d(np.asarray(polygons, dtype=object))
    n_poly = len(polys)
    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
    same = ring_idx[1:] == ring_idx[:-1]  # consecutive vertices of one ring form an edge
    seg = (coords[:-1, 0][same], coords[:-1, 1][same], coords[1:, 0][same], coords[1:, 1][same])
    owner = ring_poly[ring_idx[:-1][same]]
    # cut at vertical pixel lines, then each column segment at horizontal lines; crossings are
    # generated in the direction of travel, so no sort is needed
    seg, parent = _split(*seg, axis=0)
    owner = owner[parent]
    (ax, ay, bx, by), parent = _split(*seg, axis=1)
    owner = owner[parent]
    xm = 0.5 * (ax + bx)
    ym = 0.5 * (ay + by)
    col = np.floor(xm).astype(np.int64)
    row = np.floor(ym).astype(np.int64)
    dx = bx - ax
    offsets = np.zeros(n_poly + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n_poly), out=offsets[1:])
    return Pieces(col=col, row=row, dx=dx, partial=dx * (ym - row), offsets=offsets)


def _split(
    x0: NDArray[np.float64], y0: NDArray[np.float64], x1: NDArray[np.float64], y1: NDArray[np.float64], axis: int
) -> tuple[tuple[NDArray[np.float64], ...], NDArray[np.int64]]:
    """Split segments where they cross integer lines of one axis (0: x = k, 1: y = k).

    Returns the sub-segments ``(x0, y0, x1, y1)`` in order along each segment, and the index of
    the segment each came from (non-decreasing, since segments stay in input order).
    """
    u0, u1 = (x0, x1) if axis == 0 else (y0, y1)
    lo = np.floor(np.minimum(u0, u1)) + 1  # integer lines strictly between the endpoints
    hi = np.ceil(np.maximum(u0, u1)) - 1
    n_cross = np.maximum(hi - lo + 1, 0).astype(np.int64)
    n_seg = len(u0)
    n_pts = n_cross + 2  # start, crossings, end
    start = np.zeros(n_seg + 1, dtype=np.int64)
    np.cumsum(n_pts, out=start[1:])
    total = int(start[-1])
    sid = np.repeat(np.arange(n_seg), n_pts)
    j = np.arange(total) - start[sid]  # 0 .. n_cross + 1 within each segment
    ascending = u1[sid] >= u0[sid]
    # the j-th crossing (j = 1..n_cross) in the direction of travel
    k = np.where(ascending, lo[sid] + (j - 1), hi[sid] - (j - 1))
    du = (u1 - u0)[sid]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(j == 0, 0.0, np.where(j == n_pts[sid] - 1, 1.0, (k - u0[sid]) / du))
    px = x0[sid] + t * (x1 - x0)[sid]
    py = y0[sid] + t * (y1 - y0)[sid]
    keep = sid[1:] == sid[:-1]
    return (px[:-1][keep], py[:-1][keep], px[1:][keep], py[1:][keep]), sid[:-1][keep]


def coverage_t(pieces: Pieces, row0: int, row1: int, col0: int, col1: int) -> NDArray[np.float64]:
    """Exact area of one polygon inside each pixel of a window, column-major: ``(cols, rows)``.

    Green's theorem per pixel column: the area of the polygon inside the band of row ``j``
    equals, up to the orientation sign, the integral over the boundary of
    ``clamp(y, j, j + 1) - j`` dx. A boundary piece inside pixel (row ``r``, column ``c``) thus
    contributes ``dx * (y_mid - r)`` to that pixel and the full ``dx`` to every pixel above it
    (rows < r) in the same column. Per column, the pixels between two consecutive piece rows
    therefore share one value (a suffix sum of the pieces' ``dx``): those runs are expanded with
    one ``np.repeat`` (no dense cumulative sum, whose cost grows with the window), and the
    pieces' partial areas are added to their own pixels. Pieces outside the window's columns
    are ignored (those pixels are not asked for); pieces below the window add their ``dx`` to
    every row of it.

    Args:
        pieces: the pieces of ONE polygon (``Pieces.of(k)``), shells counter-clockwise in
            pixel space.
        row0, row1, col0, col1: the window, half-open.

    Returns:
        ``(col1 - col0, row1 - row0)`` array: entry ``[c, r]`` is the covered area of pixel
        (row ``row0 + r``, column ``col0 + c``).
    """
    h, w = row1 - row0, col1 - col0
    c = pieces.col - col0
    r = pieces.row - row0
    dx = pieces.dx
    part = pieces.partial
    if len(c) and (c.min() < 0 or c.max() >= w or r.min() < 0):
        sel = (c >= 0) & (c < w) & (r >= 0)
        c, r, dx, part = c[sel], r[sel], dx[sel], part[sel]
    below = r >= h
    r = np.where(below, h, r)  # pieces below the window: one bucket under its last row
    part = np.where(below, 0.0, part)
    hh = h + 1
    # group pieces by pixel with a counting sort (bincount over the window's cells is cheap;
    # a comparison sort is not); every column gets an entry in its bottom bucket (row h) so
    # that each column's runs end there
    key = c * hh + r
    size = w * hh
    counts = np.bincount(key, minlength=size)
    counts[h::hh] += 1
    cells = np.flatnonzero(counts)  # sorted by column, then row
    dsum = np.bincount(key, weights=dx, minlength=size)[cells]
    psum = np.bincount(key, weights=part, minlength=size)[cells]
    uc = cells // hh
    ur = cells - uc * hh
    n = len(cells)
    # suffix sums within each column (global suffix minus the suffix where the next column starts)
    suffix = np.cumsum(dsum[::-1])[::-1]
    first = np.ones(n, dtype=bool)
    np.not_equal(uc[1:], uc[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    nxt = np.zeros(len(starts))
    nxt[:-1] = suffix[starts[1:]]
    local = suffix - np.repeat(nxt, np.diff(np.append(starts, n)))
    # cell i closes the run of rows [row of the previous cell in its column (or 0), its row)
    prev_row = np.zeros(n, dtype=ur.dtype)
    prev_row[1:] = ur[:-1]
    prev_row[first] = 0
    out = np.repeat(-local, ur - prev_row)
    # partial areas of the pieces in their own pixels (cells are unique)
    inside = ur < h
    out[uc[inside] * h + ur[inside]] -= psum[inside]
    # counter-clockwise shells have a positive shoelace area, i.e. a negative integral of y dx
    return out.reshape(w, h)


def coverage(pieces: Pieces, row0: int, row1: int, col0: int, col1: int) -> NDArray[np.float64]:
    """Like :func:`coverage_t`, row-major: ``(rows, cols)``, clipped to [0, 1] (float noise)."""
    return np.clip(coverage_t(pieces, row0, row1, col0, col1).T, 0.0, 1.0)
