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
        row: pixel row of each piece.
        col: pixel column of each piece.
        dy: signed y extent.
        partial: ``dy * (x_mid - col)``, the piece's signed contribution to its own pixel.
        offsets: ``(n_polygons + 1,)`` start of each polygon's pieces.
    """

    row: NDArray[np.int64]
    col: NDArray[np.int64]
    dy: NDArray[np.float64]
    partial: NDArray[np.float64]
    offsets: NDArray[np.int64]

    def of(self, k: int) -> Pieces:
        """The pieces of polygon ``k`` alone."""
        a, b = self.offsets[k], self.offsets[k + 1]
        return Pieces(
            self.row[a:b], self.col[a:b], self.dy[a:b], self.partial[a:b], np.array([0, b - a])
        )


def _n_crossings(u0: NDArray[np.float64], u1: NDArray[np.float64]) -> NDArray[np.int64]:
    """Number of integer lines strictly between ``u0`` and ``u1`` (as in :func:`_crossings`)."""
    lo = np.floor(np.minimum(u0, u1)) + 1
    hi = np.ceil(np.maximum(u0, u1)) - 1
    return np.maximum(hi - lo + 1, 0).astype(np.int64)


def _crossings(
    u0: NDArray[np.float64], u1: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Integer lines ``u = k`` strictly between ``u0`` and ``u1``, in the direction of travel.

    Returns ``(count per segment, segment of each crossing, t of each crossing)``; within a
    segment the crossings come in increasing ``t``.
    """
    lo = np.floor(np.minimum(u0, u1)) + 1
    hi = np.ceil(np.maximum(u0, u1)) - 1
    n = np.maximum(hi - lo + 1, 0).astype(np.int64)
    seg = np.repeat(np.arange(len(u0)), n)
    j = np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n)
    k = np.where(u1[seg] >= u0[seg], lo[seg] + j, hi[seg] - j)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (k - u0[seg]) / (u1 - u0)[seg]
    return n, seg, np.clip(t, 0.0, np.nextafter(1.0, 0.0))


def boundary_pieces(polygons: Any, compiled: bool = True) -> Pieces:
    """Cut every ring of (pixel-space, oriented) polygons at the integer x and y lines.

    Vectorised over all edges of all polygons at once (numpy calls cost per call, not per
    element, so batching thousands of footprints is what makes this fast). Each edge's
    crossings with vertical and with horizontal pixel lines are two sequences already ordered
    along the edge; they are merged without sorting (``np.searchsorted`` of one into the other
    gives each crossing its slot). Each piece between consecutive points is attributed to the
    pixel containing its midpoint.

    Args:
        polygons: one shapely Polygon or an array of them.
        compiled: use the compiled kernel when numba is available (:func:`jit_kernels`).

    Returns:
        :class:`Pieces`, grouped by polygon in input order.
    """
    polys = np.atleast_1d(np.asarray(polygons, dtype=object))
    n_poly = len(polys)
    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
    same = ring_idx[1:] == ring_idx[:-1]  # consecutive vertices of one ring form an edge
    x0 = coords[:-1, 0][same]
    y0 = coords[:-1, 1][same]
    x1 = coords[1:, 0][same]
    y1 = coords[1:, 1][same]
    edge_poly = ring_poly[ring_idx[:-1][same]]
    n_edges = len(x0)
    kernels = jit_kernels() if compiled else None
    if kernels is not None:
        # compiled path: each edge's crossings merged in one loop (same pieces, same order)
        n_pts = _n_crossings(x0, x1) + _n_crossings(y0, y1) + 2
        start = np.zeros(n_edges + 1, dtype=np.int64)
        np.cumsum(n_pts - 1, out=start[1:])
        total = int(start[-1])
        row = np.empty(total, dtype=np.int64)
        col = np.empty(total, dtype=np.int64)
        dy = np.empty(total)
        partial = np.empty(total)
        kernels.cut_edges(x0, y0, x1, y1, start, row, col, dy, partial)
        offsets = np.zeros(n_poly + 1, dtype=np.int64)
        np.cumsum(np.bincount(edge_poly, weights=n_pts - 1, minlength=n_poly), out=offsets[1:])
        return Pieces(row=row, col=col, dy=dy, partial=partial, offsets=offsets)
    nx, ex, tx = _crossings(x0, x1)
    ny, ey, ty = _crossings(y0, y1)
    # slots: each edge holds its start, its crossings merged by t (ties: x first), its end.
    # Integer keys (edge, then t quantised to the bits the edge count leaves free, 2**-42 for a
    # million edges) make the x and y crossings two sorted runs; a stable argsort merges them
    # in linear time (timsort), ties keep x first. The quantisation only decides the order of
    # crossings closer than that fraction of their edge (a piece of negligible length).
    n_pts = nx + ny + 2
    start = np.zeros(n_edges + 1, dtype=np.int64)
    np.cumsum(n_pts, out=start[1:])
    t_all = np.concatenate([tx, ty])
    e_all = np.concatenate([ex, ey])
    shift = 62 - max(1, int(n_edges).bit_length())
    scale = float(1 << shift)
    q = np.minimum(np.floor(t_all * scale), scale - 1.0).astype(np.int64)
    merge = np.argsort((e_all << shift) | q, kind="stable")
    e_sorted = e_all[merge]
    total = int(start[-1])
    t = np.empty(total)
    eid = np.repeat(np.arange(n_edges), n_pts)
    t[start[:-1]] = 0.0
    t[start[1:] - 1] = 1.0
    # the i-th crossing overall sits after its edge's start and the 2 endpoints of each edge
    # before it
    t[np.arange(len(merge)) + 2 * e_sorted + 1] = t_all[merge]
    px = x0[eid] + t * (x1 - x0)[eid]
    py = y0[eid] + t * (y1 - y0)[eid]
    keep = np.ones(total - 1, dtype=bool)
    keep[start[1:-1] - 1] = False  # no piece from one edge's end to the next edge's start
    ax, bx = px[:-1][keep], px[1:][keep]
    ay, by = py[:-1][keep], py[1:][keep]
    owner = edge_poly[eid[:-1][keep]]
    xm = 0.5 * (ax + bx)
    ym = 0.5 * (ay + by)
    col = np.floor(xm).astype(np.int64)
    row = np.floor(ym).astype(np.int64)
    dy = by - ay
    offsets = np.zeros(n_poly + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n_poly), out=offsets[1:])
    return Pieces(row=row, col=col, dy=dy, partial=dy * (xm - col), offsets=offsets)


def _suffix_sums_within_rows(
    values: np.ndarray, row_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Suffix sums of ``values`` restarted at every row, for cells sorted by row.

    Returns the sums and the mask of each row's first cell (global suffix minus the suffix where
    the next row starts).
    """
    n = len(values)
    suffix = np.cumsum(values[::-1])[::-1]
    first = np.ones(n, dtype=bool)
    np.not_equal(row_ids[1:], row_ids[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    nxt = np.zeros(len(starts))
    nxt[:-1] = suffix[starts[1:]]
    return suffix - np.repeat(nxt, np.diff(np.append(starts, n))), first


def coverage_raw(pieces: Pieces, row0: int, row1: int, col0: int, col1: int) -> NDArray[np.float64]:
    """Exact area of one polygon inside each pixel of a window, ``(rows, cols)``, unclipped.

    Green's theorem per pixel row: the area of the polygon inside the band of column ``i``
    equals the integral over the boundary of ``clamp(x, i, i + 1) - i`` dy (positive for
    counter-clockwise shells). A boundary piece inside pixel (row ``r``, column ``c``) thus
    contributes ``dy * (x_mid - c)`` to that pixel and the full ``dy`` to every pixel left of
    it (columns < c) in the same row. Along a row, the pixels between two consecutive pieces
    therefore share one value (a suffix sum of the pieces' ``dy``): the runs are expanded with
    one ``np.repeat`` (a dense cumulative sum would cost much more), then the pieces' partial
    areas are added to their own pixels. Pieces right of the window add their ``dy`` to the
    whole row; pieces left of it or in other rows do not touch it.

    Args:
        pieces: the pieces of ONE polygon (``Pieces.of(k)``), shells counter-clockwise in
            pixel space.
        row0, row1, col0, col1: the window, half-open.

    Returns:
        ``(row1 - row0, col1 - col0)`` array of covered area per pixel (float noise may leave
        values a hair outside [0, 1]).
    """
    h, w = row1 - row0, col1 - col0
    r = pieces.row - row0
    c = pieces.col - col0
    dy = pieces.dy
    part = pieces.partial
    if len(r) and (r.min() < 0 or r.max() >= h or c.min() < 0):
        sel = (r >= 0) & (r < h) & (c >= 0)
        r, c, dy, part = r[sel], c[sel], dy[sel], part[sel]
    right = c >= w
    if right.any():
        c = np.where(right, w, c)  # pieces right of the window: one bucket after its last column
        part = np.where(right, 0.0, part)
    ww = w + 1
    # group pieces by pixel with a counting sort (a bincount over the window's cells is cheap, a
    # comparison sort is not); every row gets an entry in its last bucket (column w), so that
    # each row's runs end there
    key = r * ww + c
    counts = np.bincount(key, minlength=h * ww)
    counts[w::ww] += 1
    cells = np.flatnonzero(counts)  # sorted by row, then column
    which = np.searchsorted(cells, key)  # each piece's cell
    dsum = np.bincount(which, weights=dy, minlength=len(cells))
    psum = np.bincount(which, weights=part, minlength=len(cells))
    ur = cells // ww
    uc = cells - ur * ww
    n = len(cells)
    local, first = _suffix_sums_within_rows(dsum, ur)
    # cell i closes the run of columns [column of the previous cell in its row (or 0), its column)
    prev = np.zeros(n, dtype=uc.dtype)
    prev[1:] = uc[:-1]
    prev[first] = 0
    out = np.repeat(local, uc - prev)
    inside = uc < w  # cells are unique, so a plain fancy-index add is safe
    out[ur[inside] * w + uc[inside]] += psum[inside]
    return out.reshape(h, w)


def coverage(pieces: Pieces, row0: int, row1: int, col0: int, col1: int) -> NDArray[np.float64]:
    """:func:`coverage_raw` clipped to [0, 1] (removes float noise)."""
    return np.clip(coverage_raw(pieces, row0, row1, col0, col1), 0.0, 1.0)


def coverage_batch(pieces: Pieces, windows: NDArray[np.int64]) -> NDArray[np.float64]:
    """:func:`coverage_raw` for many polygons at once, each in its own window.

    Args:
        pieces: pieces of ``m`` polygons (``pieces.offsets`` has ``m + 1`` entries).
        windows: ``(m, 4)`` rows ``(row0, row1, col0, col1)``, one window per polygon.

    Returns:
        The windows' coverages, each row-major, concatenated (length ``sum(h * w)``).
    """
    values, lengths, _ = coverage_runs(pieces, windows)
    return np.repeat(values, lengths)


def coverage_runs(
    pieces: Pieces, windows: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Run-length form of :func:`coverage_batch`: runs of equal coverage along pixel rows.

    The same row-run construction, vectorised over all polygons (numpy calls cost per call, so
    one call for a hundred footprints beats a hundred calls): cells are numbered across all
    windows, every window row ends in its own bucket, and the runs of all rows of all windows
    are expanded by one ``np.repeat``.

    Args:
        pieces: pieces of ``m`` polygons (``pieces.offsets`` has ``m + 1`` entries).
        windows: ``(m, 4)`` rows ``(row0, row1, col0, col1)``, one window per polygon.

    Returns:
        ``(values, lengths, bounds)``: ``np.repeat(values, lengths)`` is the windows'
        coverages, each row-major, concatenated; the runs of window ``i`` are
        ``[bounds[i], bounds[i + 1])``, so a caller can expand one window at a time while it
        is hot in cache.
    """
    m = len(windows)
    r0, r1, c0, c1 = (windows[:, i].astype(np.int64) for i in range(4))
    h = r1 - r0
    w = c1 - c0
    ww = w + 1
    cell_base = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(h * ww, out=cell_base[1:])
    pix_base = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(h * w, out=pix_base[1:])
    row_base = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(h, out=row_base[1:])
    k = np.repeat(np.arange(m), np.diff(pieces.offsets))
    r = pieces.row - r0[k]
    c = pieces.col - c0[k]
    wk = w[k]
    dy, part = pieces.dy, pieces.partial
    sel = (r >= 0) & (r < h[k]) & (c >= 0)
    if not sel.all():  # windows clipped at the raster's edge (rare): drop pieces outside
        k, r, c, wk = k[sel], r[sel], c[sel], wk[sel]
        dy, part = dy[sel], part[sel]
    right = c >= wk
    if right.any():
        c = np.where(right, wk, c)  # right of the window: the row's bucket
        part = np.where(right, 0.0, part)
    # every row of every window ends in its bucket (column w): appended as pieces without area
    row_k = np.repeat(np.arange(m), h)
    row_r = np.arange(int(row_base[-1])) - row_base[row_k]
    k = np.concatenate([k, row_k])
    r = np.concatenate([r, row_r])
    c = np.concatenate([c, w[row_k]])
    dy = np.concatenate([dy, np.zeros(len(row_k))])
    part = np.concatenate([part, np.zeros(len(row_k))])
    # group by cell, ordered by window, row, column: the keys are nearly sorted already (each
    # window's ring, then its row buckets), which a stable sort (timsort) exploits
    key = cell_base[k] + r * ww[k] + c
    order = np.argsort(key, kind="stable")
    skey = key[order]
    distinct = np.ones(len(skey), dtype=bool)
    np.not_equal(skey[1:], skey[:-1], out=distinct[1:])
    which = np.cumsum(distinct) - 1  # cell of each sorted piece
    n = int(which[-1]) + 1 if len(which) else 0
    dsum = np.bincount(which, weights=dy[order], minlength=n)
    psum = np.bincount(which, weights=part[order], minlength=n)
    head = order[distinct]  # one piece per cell gives the cell's window, row and column
    ck, cr, cc = k[head], r[head], c[head]
    rowid = row_base[ck] + cr
    value, first = _suffix_sums_within_rows(dsum, rowid)
    # cell i covers columns [column of the previous cell in its row (or 0), its column) with
    # value[i]; the first of them is the previous cell's own pixel, which also gets that cell's
    # partial area: two runs per cell, expanded by one np.repeat
    prev = np.zeros(n, dtype=np.int64)
    prev[1:] = cc[:-1]
    prev[first] = 0
    own = np.ones(n, dtype=np.int64)
    own[first] = 0
    runs = np.empty((n, 2))
    runs[:, 0] = value
    runs[1:, 0] += psum[:-1]
    runs[:, 1] = value
    lengths = np.empty((n, 2), dtype=np.int64)
    lengths[:, 0] = own
    lengths[:, 1] = cc - prev - own
    bounds = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(2 * np.bincount(ck, minlength=m), out=bounds[1:])
    return runs.ravel(), lengths.ravel(), bounds


#: sub-bins per raw value in the compiled histogram (see :func:`_coverage_histogram_py`)
_JIT_LANES = 4


def _coverage_histogram_py(
    row: NDArray[np.int64],
    col: NDArray[np.int64],
    dy: NDArray[np.float64],
    part: NDArray[np.float64],
    a: int,
    b: int,
    row0: int,
    col0: int,
    block: NDArray[Any],
    scratch: NDArray[np.float64],
    mark: NDArray[np.uint8],
    out: NDArray[np.float64],
) -> None:
    """Weighted histogram of raw values under one polygon's exact coverage, fused in one pass.

    The compiled twin (:func:`jit_kernels`) of :func:`coverage_raw` followed by a
    weighted bincount. The pieces ``[a, b)`` are summed per cell of the window into
    ``scratch`` (``dy``, then partial areas; column ``w`` of each row collects the ``dy`` of
    pieces right of the window), and the distinct cells they touch are listed per row (counting
    sort by row, then by column). Each row is then swept right to left (Green's theorem, as in
    :func:`coverage_raw`): between two boundary cells every pixel has the same coverage (the
    row's suffix sum of ``dy``), so runs of interior pixels add that value straight into the
    bin of their raw value, runs outside the polygon (coverage exactly 0) are skipped, and each
    boundary cell adds its partial area on top. Consecutive pixels go to ``_JIT_LANES``
    sub-bins so that runs of one value do not chain their additions.

    ``scratch`` (at least ``2 * h * (w + 1)`` zeros) and ``mark`` (at least ``h * (w + 1)``
    zeros) are left zeroed for the next call; ``out`` (longer than the largest value) is
    overwritten.
    """
    h, w = block.shape
    ww = w + 1
    pofs = h * ww  # the partial areas follow the dy sums
    n = b - a
    cell_r = np.empty(n, dtype=np.int64)
    cell_c = np.empty(n, dtype=np.int64)
    count = np.zeros(h + 1, dtype=np.int64)
    m = 0
    for i in range(a, b):
        r = row[i] - row0
        c = col[i] - col0
        if r < 0 or r >= h or c < 0:
            continue  # other rows, or left of the window: no coverage inside it
        if c >= w:
            scratch[r * ww + w] += dy[i]  # right of the window: its dy covers the whole row
            continue
        k = r * ww + c
        scratch[k] += dy[i]
        scratch[pofs + k] += part[i]
        if mark[k] == 0:
            mark[k] = 1
            cell_r[m] = r
            cell_c[m] = c
            count[r + 1] += 1
            m += 1
    for r in range(h):
        count[r + 1] += count[r]
    fill = count[:h].copy()
    cols = np.empty(m, dtype=np.int64)
    for j in range(m):
        r = cell_r[j]
        cols[fill[r]] = cell_c[j]
        fill[r] += 1
    nv = out.shape[0]
    lanes = np.zeros(nv * _JIT_LANES)
    for r in range(h):
        s0, s1 = count[r], count[r + 1]
        # sort the row's cells by column: Shell sort (gaps 1, 4, 13, ...), no allocation and
        # quick to compile (np.sort would add seconds to the first compilation)
        gap = 1
        while gap < (s1 - s0) // 3:
            gap = 3 * gap + 1
        while gap > 0:
            for j in range(s0 + gap, s1):
                v = cols[j]
                q = j - gap
                while q >= s0 and cols[q] > v:
                    cols[q + gap] = cols[q]
                    q -= gap
                cols[q + gap] = v
            gap //= 3
        base = r * ww
        acc = scratch[base + w]
        scratch[base + w] = 0.0
        hi = w  # pixels [c + 1, hi) lie between two boundary cells: coverage acc
        for j in range(s1 - 1, s0 - 1, -1):
            c = cols[j]
            if acc != 0.0:
                for x in range(c + 1, hi):
                    lanes[np.intp(block[r, x]) * _JIT_LANES + (x & (_JIT_LANES - 1))] += acc
            k = base + c
            lanes[np.intp(block[r, c]) * _JIT_LANES + (c & (_JIT_LANES - 1))] += (
                acc + scratch[pofs + k]
            )
            acc += scratch[k]
            scratch[k] = 0.0
            scratch[pofs + k] = 0.0
            mark[k] = 0
            hi = c
        if acc != 0.0:
            for x in range(0, hi):
                lanes[np.intp(block[r, x]) * _JIT_LANES + (x & (_JIT_LANES - 1))] += acc
    for j in range(nv):
        t = 0.0
        for q in range(_JIT_LANES):
            t += lanes[j * _JIT_LANES + q]
        out[j] = t


def _cut_edges_py(
    x0: NDArray[np.float64],
    y0: NDArray[np.float64],
    x1: NDArray[np.float64],
    y1: NDArray[np.float64],
    start: NDArray[np.int64],
    row: NDArray[np.int64],
    col: NDArray[np.int64],
    dy: NDArray[np.float64],
    partial: NDArray[np.float64],
) -> None:
    """Compiled twin of the cutting in :func:`boundary_pieces`: edge ``e`` is cut at its
    crossings with the integer x and y lines (the two sequences merged by ``t``, ties x
    first, as the numpy path orders them) into pieces ``[start[e], start[e + 1])``; each piece
    is attributed to the pixel containing its midpoint."""
    last = np.nextafter(1.0, 0.0)
    for e in range(len(x0)):
        ax, ay, bx, by = x0[e], y0[e], x1[e], y1[e]
        ddx, ddy = bx - ax, by - ay
        # x lines: k runs from kx to kx_end (inclusive) in the direction of travel
        xlo = np.floor(min(ax, bx)) + 1.0
        xhi = np.ceil(max(ax, bx)) - 1.0
        nx = int(max(xhi - xlo + 1.0, 0.0))
        xstep = 1.0 if bx >= ax else -1.0
        kx = xlo if bx >= ax else xhi
        ylo = np.floor(min(ay, by)) + 1.0
        yhi = np.ceil(max(ay, by)) - 1.0
        ny = int(max(yhi - ylo + 1.0, 0.0))
        ystep = 1.0 if by >= ay else -1.0
        ky = ylo if by >= ay else yhi
        ix = 0
        iy = 0
        tx = 2.0
        ty = 2.0
        if nx > 0:
            tx = min(max((kx - ax) / ddx, 0.0), last)
        if ny > 0:
            ty = min(max((ky - ay) / ddy, 0.0), last)
        px = ax + 0.0 * ddx
        py = ay + 0.0 * ddy
        o = start[e]
        for _ in range(nx + ny + 1):
            if ix < nx and (iy >= ny or tx <= ty):
                t = tx
                ix += 1
                if ix < nx:
                    tx = min(max((kx + xstep * ix - ax) / ddx, 0.0), last)
            elif iy < ny:
                t = ty
                iy += 1
                if iy < ny:
                    ty = min(max((ky + ystep * iy - ay) / ddy, 0.0), last)
            else:
                t = 1.0
            qx = ax + t * ddx
            qy = ay + t * ddy
            xm = 0.5 * (px + qx)
            ym = 0.5 * (py + qy)
            c = np.floor(xm)
            d = qy - py
            row[o] = np.int64(np.floor(ym))
            col[o] = np.int64(c)
            dy[o] = d
            partial[o] = d * (xm - c)
            o += 1
            px = qx
            py = qy


@dataclass(frozen=True)
class _Kernels:
    """numba dispatchers of :func:`_coverage_histogram_py` and :func:`_cut_edges_py`."""

    coverage_histogram: Any
    cut_edges: Any


_KERNELS: list[_Kernels | None] = []  # [kernels or None], filled on first use


def jit_kernels() -> _Kernels | None:
    """The compiled kernels (:func:`_coverage_histogram_py`, :func:`_cut_edges_py`), or None
    to use the numpy path.

    numba is imported only here, on first use: importing it and loading the cached machine
    code costs about 0.6 s per process (compiling, the first time, about 2.5 s), paid only by
    processes that describe footprints, which is why small jobs keep the numpy path
    (:data:`csmoe_data.build.COMPILED_MIN_FOOTPRINTS`). None when ``CSMOE_NO_NUMBA=1`` or numba
    is missing. Compiled code is cached on disk where a cache directory is writable (numba
    tries ``NUMBA_CACHE_DIR``, the package's ``__pycache__``, then the user's cache); where
    none is, it compiles in memory instead of failing.
    """
    if _KERNELS:
        return _KERNELS[0]
    kernels = None
    if os.environ.get("CSMOE_NO_NUMBA", "") not in ("1", "true", "yes"):
        try:
            import numba
        except ImportError:
            numba = None
        if numba is not None:

            def jit(f: Any) -> Any:
                try:
                    return numba.njit(cache=True, nogil=True)(f)
                except Exception:  # no writable cache location: compile in memory
                    return numba.njit(cache=False, nogil=True)(f)

            kernels = _Kernels(jit(_coverage_histogram_py), jit(_cut_edges_py))
    _KERNELS.append(kernels)
    return kernels
