"""Exact pixel coverage of polygons: pixel space, boundary pieces, Green's-theorem row sweeps.

Footprints are brought into the raster's CRS and then into *pixel space* (x = column, y = row,
one unit per pixel) through the inverse of the raster's affine transform; :func:`coverage` returns
the exact area of a polygon inside every pixel of a window, so a sub-pixel footprint on a coarse
raster still gets the class of the pixel it lies in (pixel-centre inclusion alone would find no
pixel at all).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from csmoe_data.engine.io import RasterInfo
from csmoe_data.engine.kernels import jit_kernels


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


def boundary_pieces(
    polygons: shapely.Geometry | NDArray[np.object_], compiled: bool = True
) -> Pieces:
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
        row0: first row of the window.
        row1: row after the window's last.
        col0: first column of the window.
        col1: column after the window's last.

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
