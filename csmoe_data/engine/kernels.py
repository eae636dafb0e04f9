"""Compiled kernels of the descriptor engine (numba), with their pure-Python twins.

The ``*_py`` functions are plain Python over numpy arrays: numba compiles them (``njit``) when it
is installed and ``CSMOE_NO_NUMBA`` is not set; otherwise the numpy paths of
:mod:`csmoe_data.engine.coverage` and :mod:`csmoe_data.descriptors` are used, which give the same
results.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: sub-bins per raw value in the compiled histogram (see :func:`_coverage_histograms_py`)
_JIT_LANES = 4


def _coverage_histograms_py(
    row: NDArray[np.int64],
    col: NDArray[np.int64],
    dy: NDArray[np.float64],
    part: NDArray[np.float64],
    offsets: NDArray[np.int64],
    windows: NDArray[np.int64],
    data: NDArray[np.generic],
    base: NDArray[np.int64],
    stride: NDArray[np.int64],
    scratch: NDArray[np.float64],
    mark: NDArray[np.uint8],
    out: NDArray[np.float64],
    row_weight: NDArray[np.float64],
    row_offsets: NDArray[np.int64],
    row_scales: NDArray[np.float64],
) -> None:
    """Weighted histograms of raw values under polygons' exact coverage, one per window.

    The compiled twin (:func:`jit_kernels`) of :func:`csmoe_data.engine.coverage.coverage_raw`
    followed by a weighted bincount, for every window of a batch in one call (a call per window
    cost more in Python than the window's pixels cost here). Window ``i`` is rows
    ``windows[i, 0:2]`` and columns ``windows[i, 2:4]`` of the raster; its pixel ``(r, c)`` is
    ``data[base[i] + r * stride[i] + c]`` (``data`` is the raster decoded whole, a region read
    once, or the windows' blocks laid end to end), and its polygon's pieces are
    ``[offsets[i], offsets[i + 1])``.

    Per window, the pieces are summed per cell into ``scratch`` (``dy``, then partial areas;
    column ``w`` of each row collects the ``dy`` of pieces right of the window), and the
    distinct cells they touch are listed per row (counting sort by row, then by column). Each
    row is then swept right to left (Green's theorem, as in
    :func:`csmoe_data.engine.coverage.coverage_raw`): between two boundary cells every pixel has
    the same coverage (the row's suffix sum of ``dy``), so runs of interior pixels add that
    value straight into the bin of their raw value, runs outside the polygon (coverage exactly
    0) are skipped, and each boundary cell adds its partial area on top. Consecutive pixels go
    to ``_JIT_LANES`` sub-bins so that runs of one value do not chain their additions.

    ``scratch`` (at least ``2 * h * (w + 1)`` zeros for the largest window) and ``mark`` (at
    least ``h * (w + 1)`` zeros) are left zeroed; row ``i`` of ``out`` (longer than the largest
    value) is overwritten with window ``i``'s histogram. Every pixel of window row ``r`` counts
    ``row_weight[row_offsets[i] + r] * row_scales[i]`` times its coverage (ones for planar
    weights; relative spherical pixel areas on lon/lat rasters, see
    :mod:`csmoe_data.engine.area`).
    """
    m = windows.shape[0]
    nv = out.shape[1]
    most_pieces = 0
    tallest = 0
    for i in range(m):
        most_pieces = max(most_pieces, offsets[i + 1] - offsets[i])
        tallest = max(tallest, windows[i, 1] - windows[i, 0])
    cell_r = np.empty(most_pieces, dtype=np.int64)
    cell_c = np.empty(most_pieces, dtype=np.int64)
    cols = np.empty(most_pieces, dtype=np.int64)
    count = np.zeros(tallest + 1, dtype=np.int64)
    fill = np.empty(tallest, dtype=np.int64)
    lanes = np.zeros(nv * _JIT_LANES)  # left zeroed after each window
    for i in range(m):
        row0 = windows[i, 0]
        col0 = windows[i, 2]
        h = windows[i, 1] - row0
        w = windows[i, 3] - col0
        ww = w + 1
        pofs = h * ww  # the partial areas follow the dy sums
        for r in range(h + 1):
            count[r] = 0
        n = 0
        for p in range(offsets[i], offsets[i + 1]):
            r = row[p] - row0
            c = col[p] - col0
            if r < 0 or r >= h or c < 0:
                continue  # other rows, or left of the window: no coverage inside it
            if c >= w:
                scratch[r * ww + w] += dy[p]  # right of the window: its dy covers the whole row
                continue
            k = r * ww + c
            scratch[k] += dy[p]
            scratch[pofs + k] += part[p]
            if mark[k] == 0:
                mark[k] = 1
                cell_r[n] = r
                cell_c[n] = c
                count[r + 1] += 1
                n += 1
        for r in range(h):
            count[r + 1] += count[r]
        for r in range(h):
            fill[r] = count[r]
        for j in range(n):
            r = cell_r[j]
            cols[fill[r]] = cell_c[j]
            fill[r] += 1
        for r in range(h):
            s0, s1 = count[r], count[r + 1]
            # sort the row's cells by column: Shell sort (gaps 1, 4, 13, ...), no allocation
            # and quick to compile (np.sort would add seconds to the first compilation)
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
            cell = r * ww
            px = base[i] + r * stride[i]  # pixel (r, 0) of the window in data
            wr = row_weight[row_offsets[i] + r] * row_scales[i]
            acc = scratch[cell + w]
            scratch[cell + w] = 0.0
            hi = w  # pixels [c + 1, hi) lie between two boundary cells: coverage acc
            for j in range(s1 - 1, s0 - 1, -1):
                c = cols[j]
                if acc != 0.0:
                    accw = acc * wr
                    for x in range(c + 1, hi):
                        lanes[np.intp(data[px + x]) * _JIT_LANES + (x & (_JIT_LANES - 1))] += accw
                k = cell + c
                lanes[np.intp(data[px + c]) * _JIT_LANES + (c & (_JIT_LANES - 1))] += (
                    acc + scratch[pofs + k]
                ) * wr
                acc += scratch[k]
                scratch[k] = 0.0
                scratch[pofs + k] = 0.0
                mark[k] = 0
                hi = c
            if acc != 0.0:
                accw = acc * wr
                for x in range(0, hi):
                    lanes[np.intp(data[px + x]) * _JIT_LANES + (x & (_JIT_LANES - 1))] += accw
        for j in range(nv):
            t = 0.0
            for q in range(_JIT_LANES):
                t += lanes[j * _JIT_LANES + q]
                lanes[j * _JIT_LANES + q] = 0.0
            out[i, j] = t


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
    """Compiled twin of the cutting in :func:`csmoe_data.engine.coverage.boundary_pieces`.

    Edge ``e`` is cut at its crossings with the integer x and y lines (the two sequences merged
    by ``t``, ties x first, as the numpy path orders them) into pieces
    ``[start[e], start[e + 1])``; each piece is attributed to the pixel containing its midpoint.
    """
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
    """numba dispatchers of :func:`_coverage_histograms_py` and :func:`_cut_edges_py`."""

    coverage_histograms: Callable[..., None]
    cut_edges: Callable[..., None]


_KERNELS: list[_Kernels | None] = []  # [kernels or None], filled on first use


def jit_kernels() -> _Kernels | None:
    """The compiled kernels, or None to use the numpy path.

    The kernels are :func:`_coverage_histograms_py` and :func:`_cut_edges_py` compiled by numba.

    numba is imported only here, on first use: importing it and loading the cached machine
    code costs about 0.6 s per process (compiling, the first time, about 2.5 s), paid only by
    processes that describe footprints, which is why small jobs keep the numpy path
    (:data:`csmoe_data.builder.describe.COMPILED_MIN_FOOTPRINTS`). None when ``CSMOE_NO_NUMBA=1`` or numba
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
        except ImportError:  # the numpy path
            pass
        else:

            def jit(f: Callable[..., None]) -> Callable[..., None]:
                try:
                    return numba.njit(cache=True, nogil=True)(f)
                except Exception:  # no writable cache location: compile in memory
                    return numba.njit(cache=False, nogil=True)(f)

            kernels = _Kernels(jit(_coverage_histograms_py), jit(_cut_edges_py))
    _KERNELS.append(kernels)
    return kernels
