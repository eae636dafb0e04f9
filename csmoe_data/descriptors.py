"""Thematic-climatic descriptors of footprints: class fractions from categorical rasters.

For each footprint and raster: the footprint is transformed into the raster's CRS (edges
densified; the raster is never warped), then into pixel space; every pixel under it is weighted
by the exact area of the footprint inside it (:func:`csmoe_data.engine.coverage.coverage`), so
fractions equal exact area-weighted coverage fractions (what exactextract computes), for
footprints spanning thousands of pixels as for a 1.2 km patch inside one 9 km climate pixel.
Pixels that are nodata (the raster's nodata value, NaN, or a value the legend declares as
nodata, e.g. ocean) are excluded from the valid area; values the legend lacks are excluded too
but counted per value and reported (:attr:`ClassAreas.unknown`), never dropped silently.

Speed: footprints are processed in order of the raster tile (512 x 512 pixels) they start in;
footprints sharing a tile are served by one windowed read; boundaries of thousands of
footprints are cut at pixel lines in one vectorised pass (crossings merged by a linear-time
stable sort); per pixel row, coverage is a few runs of equal value (interior pixels count
fully), kept in run-length form and expanded one window at a time right before that window's
weighted histogram (one ``np.bincount`` over raw values, spread over sub-bins so that runs of
one class do not serialise the additions), then mapped to classes through a lookup table.
With numba installed, 8/16-bit rasters take a compiled path instead (about 3x faster;
:func:`csmoe_data.engine.kernels.jit_kernels`): boundaries are cut edge by edge, and each window's
coverage and histogram are fused in one pass (runs of interior pixels add straight into the
bins of their values). Both paths give the same areas to float rounding (~1e-11 pixel);
``CSMOE_NO_NUMBA=1`` forces the numpy path.

Columns (see ``data_manifests/README.md``):

- land cover: ``lc_<code>`` (float32 fraction of the valid area, NaN where nothing is valid),
  ``lc_valid_frac`` (valid area / footprint area, 0 where the footprint is off the raster),
  ``lc_major`` (Int32 code with the largest fraction; ties go to the first class in legend
  order), ``lc_entropy`` (Shannon entropy of the fractions in nats, i.e. natural log).
- climate: ``kg_<symbol>``, ``kg_valid_frac``, ``kg_major`` (symbol string).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from csmoe_common import manifest as schema
from csmoe_data.engine.area import SphericalRows
from csmoe_data.engine.coverage import (
    Pieces,
    boundary_pieces,
    coverage_raw,
    coverage_runs,
    to_pixel_space,
)
from csmoe_data.engine.io import RasterInfo, read_pixels, whole_raster
from csmoe_data.engine.kernels import jit_kernels
from csmoe_data.legends import NODATA, UNKNOWN, Legend

if TYPE_CHECKING:
    from csmoe_data.sources.tiles import TileIndex

#: footprints starting in the same tile of this many pixels share one windowed read
TILE = 512
#: largest window (pixels) handled in one piece; bigger footprints are processed in row strips
MAX_WINDOW_PIXELS = 1 << 22
#: a chunk's touched region is read in one go up to this many pixels ...
MAX_REGION_PIXELS = 1 << 25
#: ... and when it holds at most this many times the pixels of the windows inside it
REGION_SLACK = 2.0
#: boundary pieces computed in one vectorised batch (about 40 bytes each)
PIECES_PER_BATCH = 1 << 20
#: pixels of the windows processed in one vectorised batch
PIXELS_PER_BATCH = 1 << 21
#: sub-bins per raw value in the weighted histogram (see ClassMapper._histogram)
LANES = 4
#: windows larger than this use a plain weighted bincount (bounds the lane pattern's memory)
MAX_LANE_PIXELS = 1 << 20
#: per-row pixel weights of a batch of windows: ``(weights, offsets, scales)``; the rows of
#: window ``i`` weigh ``weights[offsets[i] : offsets[i] + h] * scales[i]``
RowWeights = tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]
#: areas (in pixels) below this are float noise of the exact coverage, not coverage
EPS = 1e-9


@dataclass
class ClassAreas:
    """Per-footprint class areas (in pixel units) from one raster.

    Attributes:
        area: ``(n, K)`` area of each legend class inside each footprint.
        valid: ``(n,)`` area of valid pixels (sum over classes).
        total: ``(n,)`` footprint area in pixel units (including parts off the raster).
        unknown: raster value -> covered pixel area, for values the legend lacks.
        unknown_rows: number of footprints that touch at least one unknown value.
        unknown_mask: ``(n,)`` which footprints touch one (None: not tracked).
        unit_m2: ``(n,)`` square metres per area unit of each footprint (a pixel of the
            raster, or of the footprint's reference row on a lon/lat raster; None: unknown).
    """

    area: NDArray[np.float64]
    valid: NDArray[np.float64]
    total: NDArray[np.float64]
    unknown: dict[float, float] = field(default_factory=dict)
    unknown_rows: int = 0
    unknown_mask: NDArray[np.bool_] | None = None
    unit_m2: NDArray[np.float64] | None = None


class ClassMapper:
    """Turns raw raster values under coverage weights into class areas (and unknown values).

    For 8/16-bit rasters the weights are first summed per raw value (``np.bincount`` on the
    pixel values, one pass), then per class through a lookup table; other types map values
    through ``np.unique``.
    """

    def __init__(self, info: RasterInfo, legend: Legend) -> None:
        self.legend = legend
        self.k = len(legend.classes)
        self.nodata = info.nodata
        self.dtype = np.dtype(info.dtype)
        self.table: NDArray[np.int32] | None = None
        self._lane: NDArray[np.intp] = np.arange(0, dtype=np.intp)
        self._scratch: NDArray[np.float64] = np.zeros(0)
        self._mark: NDArray[np.uint8] = np.zeros(0, dtype=np.uint8)
        self._ones: NDArray[np.float64] = np.zeros(0)
        #: weighted area of every pixel (any value, nodata included) under each window of the
        #: last call, i.e. the footprint's area inside the window
        self.window_totals: NDArray[np.float64] = np.zeros(0)
        if self.dtype in (np.uint8, np.uint16):
            self.table = legend.lookup_table(256 if self.dtype == np.uint8 else 65536)
            if (
                self.nodata is not None
                and float(self.nodata).is_integer()
                and 0 <= self.nodata < len(self.table)
            ):
                self.table[int(self.nodata)] = NODATA
            # shifted by 2 so that NODATA (-2) and UNKNOWN (-1) are bins 0 and 1
            self.shifted = (self.table + 2).astype(np.int64)

    def classes(self, data: NDArray[Any]) -> NDArray[np.int32]:
        """Class index (or NODATA / UNKNOWN) per pixel."""
        if self.table is not None:
            return self.table[data]
        out = np.full(data.shape, NODATA, dtype=np.int32)
        ok = np.isfinite(data) if data.dtype.kind == "f" else np.ones(data.shape, dtype=bool)
        if self.nodata is not None:
            ok &= data != self.nodata
        if data.dtype.kind == "f":
            # fractional values are not class codes: unknown (counted, reported), not nodata
            frac = ok & (data != np.round(data))
            out[frac] = UNKNOWN
            ok &= ~frac
        if ok.any():
            uniq, inv = np.unique(data[ok].astype(np.int64), return_inverse=True)
            mapped = np.array([self.legend.index_of(int(v)) for v in uniq], dtype=np.int32)
            out[ok] = mapped[inv]
        return out

    def areas(
        self, data: NDArray[Any], weights: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], dict[float, float]]:
        """Weighted area per class and per unknown raw value."""
        if self.table is not None:
            hist = np.bincount(data.ravel(), weights=weights.ravel())
            per = np.bincount(self.shifted[: len(hist)], weights=hist, minlength=self.k + 2)
            self.window_totals = np.array([per.sum()])
            unknown: dict[float, float] = {}
            if per[1] > EPS:
                vals = np.flatnonzero((self.table[: len(hist)] == UNKNOWN) & (hist > EPS))
                unknown = dict(zip(vals.tolist(), hist[vals].tolist(), strict=True))
            return np.asarray(per[2:], dtype=np.float64), unknown
        cls = self.classes(data)
        per = np.bincount((cls + 2).ravel(), weights=weights.ravel(), minlength=self.k + 2)
        self.window_totals = np.array([per.sum()])
        unknown = {}
        if per[1] > EPS:
            unk = (cls == UNKNOWN) & (weights > EPS)
            vals, inv = np.unique(data[unk].astype(np.float64), return_inverse=True)
            sums = np.bincount(inv, weights=weights[unk])
            unknown = {
                (int(v) if float(v).is_integer() else float(v)): a
                for v, a in zip(vals.tolist(), sums.tolist(), strict=True)
            }
        return np.asarray(per[2:], dtype=np.float64), unknown

    def _histogram(
        self, blk: NDArray[Any], weights: NDArray[np.float64], nv: int
    ) -> NDArray[np.float64]:
        """Weighted count of each raw value ``< nv`` in ``blk``.

        Neighbouring pixels mostly share a class, so a plain weighted bincount adds into the
        same bin back to back and waits on each addition; spreading consecutive pixels over
        ``LANES`` sub-bins (key ``value * LANES + i % LANES``) breaks that chain (about 1.6x
        faster), and the sub-bins are summed afterwards.
        """
        size = blk.size
        if size > len(self._lane):
            if size > MAX_LANE_PIXELS:
                hist = np.bincount(blk.ravel(), weights=weights, minlength=nv)
                return np.asarray(hist, dtype=np.float64)
            self._lane = np.arange(size, dtype=np.intp) % LANES
        key = blk.astype(np.intp).ravel()
        key *= LANES
        key += self._lane[:size]
        hist = np.bincount(key, weights=weights, minlength=nv * LANES)
        return hist.reshape(nv, LANES).sum(axis=1)

    def batch_areas(
        self,
        blocks: list[NDArray[Any]],
        runs: tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]],
        row_weights: RowWeights | None = None,
    ) -> tuple[NDArray[np.float64], list[dict[float, float]]]:
        """:meth:`areas` for many windows, given their coverages as runs.

        ``row_weights`` (:data:`RowWeights`) scales every pixel's coverage by its row's weight
        (spherical pixel areas of lon/lat rasters).

        The runs are those of :func:`csmoe_data.engine.coverage.coverage_runs`.

        Each window's coverage is expanded from its runs just before its histogram (still in
        cache when the histogram reads it), then one weighted ``np.bincount`` per window over
        its raw values (cheaper per pixel than one bincount over composite keys), and one
        matrix product maps values to classes.
        """
        values, lengths, bounds = runs
        m = len(blocks)

        def weights(i: int) -> NDArray[np.float64]:
            a, b = bounds[i], bounds[i + 1]
            cov = np.repeat(values[a:b], lengths[a:b])
            if row_weights is None:
                return cov
            h, w = blocks[i].shape
            weights_all, offsets, scales = row_weights
            rw = weights_all[offsets[i] : offsets[i] + h] * scales[i]
            return (cov.reshape(h, w) * rw[:, None]).ravel()

        if self.table is None:
            out = np.zeros((m, self.k))
            totals = np.zeros(m)
            unknown: list[dict[float, float]] = []
            for i, blk in enumerate(blocks):
                per, unk = self.areas(blk, weights(i).reshape(blk.shape))
                out[i] = per
                totals[i] = self.window_totals[0]
                unknown.append(unk)
            self.window_totals = totals
            return out, unknown
        nv = self._nv(blocks)
        hist = np.empty((m, nv))
        for i, blk in enumerate(blocks):
            hist[i] = self._histogram(blk, weights(i), nv)
        self.window_totals = hist.sum(axis=1)
        return self._per_class(hist)

    def _nv(self, blocks: list[NDArray[Any]]) -> int:
        """Histogram length: 256 for uint8 (no scan), else the largest value + 1."""
        if self.dtype == np.uint8:
            return 256
        return max(int(blk.max()) for blk in blocks) + 1 if blocks else 1

    def _per_class(
        self, hist: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], list[dict[float, float]]]:
        """Class areas and unknown values from per-window histograms of raw values."""
        m, nv = hist.shape
        onehot = np.zeros((nv, self.k + 2))
        onehot[np.arange(nv), self.shifted[:nv]] = 1.0
        per = hist @ onehot
        unknown: list[dict[float, float]] = [{} for _ in range(m)]
        table = self.table
        if table is None:  # only the table path builds raw-value histograms
            raise RuntimeError("raw-value histograms need a lookup table")
        for i in np.flatnonzero(per[:, 1] > EPS):
            vals = np.flatnonzero((table[:nv] == UNKNOWN) & (hist[i] > EPS))
            unknown[i] = dict(zip(vals.tolist(), hist[i, vals].tolist(), strict=True))
        return per[:, 2:], unknown

    def fused_areas(
        self,
        kernel: Callable[..., None],
        pixels: WindowPixels,
        pieces: Pieces,
        windows: NDArray[np.int64],
        row_weights: RowWeights | None = None,
    ) -> tuple[NDArray[np.float64], list[dict[float, float]]]:
        """:meth:`batch_areas` through the compiled kernel (8/16-bit rasters only).

        Coverage and histogram of each window in one pass over its pixels, no run-length
        intermediate, every window of the batch in one call
        (:func:`csmoe_data.engine.kernels.jit_kernels`).
        """
        m = len(windows)
        h = windows[:, 1] - windows[:, 0]
        w = windows[:, 3] - windows[:, 2]
        nv = 256 if self.dtype == np.uint8 else pixels.max_value(windows) + 1
        hist = np.empty((m, nv))
        need = int((h * (w + 1)).max()) if m else 0
        if len(self._mark) < need:  # zeroed buffers, left zeroed by the kernel
            self._scratch = np.zeros(2 * need)
            self._mark = np.zeros(need, dtype=np.uint8)
        if row_weights is None:  # planar weights: ones, offset 0, scale 1 for every window
            tallest = int(h.max()) if m else 0
            if len(self._ones) < tallest:
                self._ones = np.ones(tallest)
            weights_all = self._ones
            row_offsets = np.zeros(m, dtype=np.int64)
            scales = np.ones(m)
        else:
            weights_all, row_offsets, scales = row_weights
        kernel(
            pieces.row,
            pieces.col,
            pieces.dy,
            pieces.partial,
            pieces.offsets,
            np.ascontiguousarray(windows, dtype=np.int64),
            pixels.data,
            pixels.base,
            pixels.stride,
            self._scratch,
            self._mark,
            hist,
            weights_all,
            np.ascontiguousarray(row_offsets, dtype=np.int64),
            np.ascontiguousarray(scales, dtype=np.float64),
        )
        self.window_totals = hist.sum(axis=1)
        return self._per_class(hist)


@dataclass
class WindowPixels:
    """The pixels of a batch of windows as one flat array (what the compiled kernel reads).

    Pixel ``(r, c)`` of window ``i`` is ``data[base[i] + r * stride[i] + c]``: ``data`` is a
    raster decoded whole or a region read once (no copy; ``stride`` is its width), or the
    windows' own blocks laid end to end.

    Attributes:
        data: the pixels, 1-D.
        base: ``(m,)`` position of each window's first pixel in ``data``.
        stride: ``(m,)`` elements between two rows of each window in ``data``.
    """

    data: NDArray[Any]
    base: NDArray[np.int64]
    stride: NDArray[np.int64]

    @classmethod
    def of_array(
        cls, array: NDArray[Any], rows: NDArray[np.int64], cols: NDArray[np.int64]
    ) -> WindowPixels:
        """Windows starting at ``(rows, cols)`` of a 2-D array (read in place when C-ordered)."""
        array = np.ascontiguousarray(array)
        width = array.shape[1]
        base = np.asarray(rows, dtype=np.int64) * width + np.asarray(cols, dtype=np.int64)
        return cls(array.reshape(-1), base, np.full(len(base), width, dtype=np.int64))

    @classmethod
    def of_blocks(cls, blocks: Sequence[NDArray[Any]]) -> WindowPixels:
        """Separate blocks, copied end to end."""
        sizes = np.array([b.size for b in blocks], dtype=np.int64)
        base = np.zeros(len(blocks), dtype=np.int64)
        np.cumsum(sizes[:-1], out=base[1:])
        stride = np.array([b.shape[1] for b in blocks], dtype=np.int64)
        data = np.concatenate([b.ravel() for b in blocks]) if len(blocks) else np.zeros(0)
        return cls(data, base, stride)

    def max_value(self, windows: NDArray[np.int64]) -> int:
        """The largest pixel value of the windows (``(m, 4)``: rows and columns of each)."""
        top = 0
        for i, (r0, r1, c0, c1) in enumerate(windows.tolist()):
            a, stride = int(self.base[i]), int(self.stride[i])
            rows = self.data[a : a + (r1 - r0 - 1) * stride + (c1 - c0)]
            if len(rows):
                block = np.lib.stride_tricks.as_strided(
                    rows, (r1 - r0, c1 - c0), (stride * rows.itemsize, rows.itemsize)
                )
                top = max(top, int(block.max()))
        return top


class _GroupReader:
    """Windows of footprints, read once per tile group when the group's union is compact."""

    def __init__(
        self,
        info: RasterInfo,
        r0: NDArray[np.int64],
        r1: NDArray[np.int64],
        c0: NDArray[np.int64],
        c1: NDArray[np.int64],
        idx: NDArray[np.int64],
        g_start: NDArray[np.int64],
        g_end: NDArray[np.int64],
        in_memory: bool = False,
    ) -> None:
        self.info = info
        self.in_memory = in_memory
        self.r0, self.r1, self.c0, self.c1 = r0, r1, c0, c1
        self.idx = idx
        self.group_of = np.repeat(np.arange(len(g_start)), g_end - g_start)
        self.g_start, self.g_end = g_start, g_end
        self.current = -1
        self.buffer: tuple[int, int, NDArray[Any]] | None = None
        self.region: tuple[int, int, NDArray[Any]] | None = None
        if not in_memory and len(idx):
            self._read_region()

    def _read_region(self) -> None:
        """Read the region all windows touch at once when it is small and densely used.

        Windows of a chunk lie close together (footprints are processed in spatial order), so
        the box around them is often smaller than the sum of the windows; reading it in one go
        replaces many small reads. Skipped when the box exceeds :data:`MAX_REGION_PIXELS` or
        holds more than :data:`REGION_SLACK` times the windows' pixels (scattered windows).
        """
        small = (self.r1 - self.r0) * (self.c1 - self.c0) <= MAX_WINDOW_PIXELS
        sel = self.idx[small[self.idx]]
        if len(sel) < 2:
            return
        ur0, ur1 = int(self.r0[sel].min()), int(self.r1[sel].max())
        uc0, uc1 = int(self.c0[sel].min()), int(self.c1[sel].max())
        union = (ur1 - ur0) * (uc1 - uc0)
        windows = int(((self.r1[sel] - self.r0[sel]) * (self.c1[sel] - self.c0[sel])).sum())
        if union <= MAX_REGION_PIXELS and union <= REGION_SLACK * windows:
            self.region = (ur0, uc0, read_pixels(self.info, ur0, ur1, uc0, uc1))
            self.region_rows = small

    def blocks(self, qs: NDArray[np.int64]) -> list[NDArray[Any]]:
        """The windows of the footprints at sorted positions ``qs`` (see :meth:`block`).

        From a raster decoded whole, every window is a slice taken with plain ints (no
        per-window lookup of the raster or numpy scalar indexing: this runs per footprint).
        """
        if not self.in_memory:
            return [self.block(q) for q in qs]
        data = whole_raster(self.info)
        js = self.idx[qs]
        return [
            data[a:b, c:d]
            for a, b, c, d in zip(
                self.r0[js].tolist(),
                self.r1[js].tolist(),
                self.c0[js].tolist(),
                self.c1[js].tolist(),
                strict=True,
            )
        ]

    def pixels(self, qs: NDArray[np.int64]) -> WindowPixels:
        """The windows of the footprints at sorted positions ``qs``, for the compiled kernel.

        In place from a raster decoded whole or from the chunk's region (no copy, no Python
        step per window), else the windows' blocks (:meth:`block`) copied end to end.
        """
        js = self.idx[qs]
        if self.in_memory:
            return WindowPixels.of_array(whole_raster(self.info), self.r0[js], self.c0[js])
        if self.region is not None and self.region_rows[js].all():
            rr0, rc0, data = self.region
            return WindowPixels.of_array(data, self.r0[js] - rr0, self.c0[js] - rc0)
        return WindowPixels.of_blocks([self.block(q) for q in qs])

    def block(self, q: int) -> NDArray[Any]:
        """The window of the footprint at sorted position ``q``."""
        j = self.idx[q]
        if self.in_memory:  # a view of the raster decoded whole: no read at all
            return read_pixels(self.info, self.r0[j], self.r1[j], self.c0[j], self.c1[j], True)
        if self.region is not None and self.region_rows[j]:  # the chunk's region, read once
            rr0, rc0, data = self.region
            return data[self.r0[j] - rr0 : self.r1[j] - rr0, self.c0[j] - rc0 : self.c1[j] - rc0]
        g = self.group_of[q]
        if g != self.current:
            self.current = g
            self.buffer = None
            group = self.idx[self.g_start[g] : self.g_end[g]]
            if len(group) > 1:
                ur0, ur1 = self.r0[group].min(), self.r1[group].max()
                uc0, uc1 = self.c0[group].min(), self.c1[group].max()
                union = (ur1 - ur0) * (uc1 - uc0)
                single = (
                    (self.r1[group] - self.r0[group]) * (self.c1[group] - self.c0[group])
                ).sum()
                if union <= max(2 * single, 4096) and union <= MAX_WINDOW_PIXELS:
                    self.buffer = (ur0, uc0, read_pixels(self.info, ur0, ur1, uc0, uc1))
        if self.buffer is None:
            return read_pixels(self.info, self.r0[j], self.r1[j], self.c0[j], self.c1[j])
        br0, bc0, data = self.buffer
        return data[self.r0[j] - br0 : self.r1[j] - br0, self.c0[j] - bc0 : self.c1[j] - bc0]


def class_areas(
    geoms: NDArray[np.object_],
    info: RasterInfo,
    legend: Legend,
    compiled: bool = True,
    in_memory: bool = False,
) -> ClassAreas:
    """Exact area of every legend class inside every footprint.

    Args:
        geoms: polygons already in the raster's CRS (None/empty rows get zero areas).
        info: the raster.
        legend: its legend.
        compiled: use the compiled kernels when numba is available
            (:func:`csmoe_data.engine.kernels.jit_kernels`; 8/16-bit rasters); the numpy path gives the
            same areas to about 1e-11 pixel (float summation order) and avoids numba's start-up
            cost (about 0.6 s per process), which pays off only for larger jobs.
        in_memory: read the raster whole once per process and slice every window from it
            (:func:`csmoe_data.engine.io.read_pixels`); the same areas as windowed reads.

    Returns:
        A :class:`ClassAreas` with one row per geometry, in the input order.

    Raises:
        CsmoeDataError: if raster pixels cannot be read.
    """
    n = len(geoms)
    k = len(legend.classes)
    area = np.zeros((n, k), dtype=np.float64)
    mapper = ClassMapper(info, legend)
    # compiled fused kernel for 8/16-bit rasters (None: numpy path; see jit_kernels)
    kernels = jit_kernels() if compiled and mapper.table is not None else None
    kernel = kernels.coverage_histograms if kernels is not None else None
    unknown: dict[float, float] = {}
    unknown_owner = np.zeros(n, dtype=bool)
    geoms = np.asarray(geoms, dtype=object)
    px = to_pixel_space(geoms, info)
    parts, owner = shapely.get_parts(px, return_index=True)
    poly = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, owner = parts[poly], owner[poly]
    if not len(parts):
        total = np.zeros(n)
        return ClassAreas(
            area=area,
            valid=area.sum(axis=1),
            total=total,
            unknown_mask=np.zeros(n, dtype=bool),
            unit_m2=np.ones(n),
        )
    b = shapely.bounds(parts)
    c0 = np.clip(np.floor(b[:, 0]), 0, info.width).astype(np.int64)
    c1 = np.clip(np.ceil(b[:, 2]), 0, info.width).astype(np.int64)
    r0 = np.clip(np.floor(b[:, 1]), 0, info.height).astype(np.int64)
    r1 = np.clip(np.ceil(b[:, 3]), 0, info.height).astype(np.int64)
    # lon/lat rasters: every pixel weighted by its area on the sphere, in pixels of each
    # footprint's reference row (csmoe_data.engine.area); projected rasters: planar weights
    spherical: SphericalRows | None = None
    weighed = np.zeros(len(parts), dtype=bool)  # parts whose weighted total is summed
    if info.spherical:
        spherical = SphericalRows(info.transform, info.height, px, int(r0.min()), int(r1.max()))
        total = np.zeros(n)
    else:
        total = np.bincount(owner, weights=shapely.area(parts), minlength=n).astype(np.float64)

    def weigh_total(js: NDArray[np.int64]) -> None:
        # row-weighted footprint area inside the windows: every pixel's weighted coverage,
        # whatever its value (see SphericalRows)
        if spherical is not None:
            np.add.at(total, owner[js], mapper.window_totals)
            weighed[js] = True

    def row_w(js: NDArray[np.int64], rows0: Any) -> RowWeights | None:
        if spherical is None:
            return None
        return spherical.windows(owner[js], np.atleast_1d(rows0))

    idx = np.flatnonzero((c1 > c0) & (r1 > r0))
    # process by the tile each window starts in: one read serves a tile's footprints
    key = (r0[idx] // TILE) * ((info.width // TILE) + 1) + (c0[idx] // TILE)
    sort = np.argsort(key, kind="stable")
    idx, key = idx[sort], key[sort]
    g_start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    g_end = np.r_[g_start[1:], len(idx)]
    reader = _GroupReader(info, r0, r1, c0, c1, idx, g_start, g_end, in_memory)

    def add(
        j_parts: NDArray[np.int64], per: NDArray[np.float64], unk: list[dict[float, float]]
    ) -> None:
        np.add.at(area, owner[j_parts], per)
        for j, u in zip(j_parts, unk, strict=True):
            if u:
                unknown_owner[owner[j]] = True
                for v, a in u.items():
                    unknown[v] = unknown.get(v, 0.0) + a

    npx = (r1[idx] - r0[idx]) * (c1[idx] - c0[idx])
    big = npx > MAX_WINDOW_PIXELS
    # huge windows (a 100 km tile on a 10 m raster): one at a time, in row strips
    for q in np.flatnonzero(big):
        j = idx[q]
        pc = boundary_pieces(parts[j : j + 1], kernel is not None)
        strip = max(1, MAX_WINDOW_PIXELS // int(c1[j] - c0[j]))
        for sr0 in range(int(r0[j]), int(r1[j]), strip):
            sr1 = min(sr0 + strip, int(r1[j]))
            block = read_pixels(info, sr0, sr1, int(c0[j]), int(c1[j]), in_memory)
            rw = row_w(np.array([j]), sr0)
            if kernel is not None:
                win = np.array([[sr0, sr1, c0[j], c1[j]]], dtype=np.int64)
                per2, unk2 = mapper.fused_areas(
                    kernel,
                    WindowPixels.of_array(block, np.zeros(1, np.int64), np.zeros(1, np.int64)),
                    pc,
                    win,
                    rw,
                )
                weigh_total(np.array([j]))
                add(np.array([j]), per2, unk2)
                continue
            cov = coverage_raw(pc, sr0, sr1, int(c0[j]), int(c1[j]))
            if rw is not None:
                cov = cov * (rw[0][rw[1][0] : rw[1][0] + sr1 - sr0] * rw[2][0])[:, None]
            per, unk = mapper.areas(block, cov)
            weigh_total(np.array([j]))
            add(np.array([j]), per[None, :], [unk])
    # everything else in batches bounded by boundary pieces and by pixels (bounded memory)
    small = np.flatnonzero(~big)
    if len(small):
        bw = b[idx[small], 2] - b[idx[small], 0]
        bh = b[idx[small], 3] - b[idx[small], 1]
        est_p = np.cumsum(
            2 * (np.ceil(bw) + np.ceil(bh)) + shapely.get_num_coordinates(parts[idx[small]]) + 4
        )
        est_x = np.cumsum(npx[small])
        a = 0
        while a < len(small):
            base_p = est_p[a - 1] if a else 0.0
            base_x = est_x[a - 1] if a else 0
            e = min(
                int(np.searchsorted(est_p, base_p + PIECES_PER_BATCH, side="right")),
                int(np.searchsorted(est_x, base_x + PIXELS_PER_BATCH, side="right")),
            )
            e = max(e, a + 1)
            qs = small[a:e]
            js = idx[qs]
            pieces = boundary_pieces(parts[js], kernel is not None)
            windows = np.stack([r0[js], r1[js], c0[js], c1[js]], axis=1)
            rws = row_w(js, r0[js])
            if kernel is not None:
                batch_per, batch_unk = mapper.fused_areas(
                    kernel, reader.pixels(qs), pieces, windows, rws
                )
            else:
                batch_per, batch_unk = mapper.batch_areas(
                    reader.blocks(qs), coverage_runs(pieces, windows), rws
                )
            weigh_total(js)
            add(js, batch_per, batch_unk)
            a = e
    if spherical is not None:
        # parts reaching off the raster: the area beyond it, from their outline
        off = (
            ~weighed
            | (b[:, 0] < 0)
            | (b[:, 1] < 0)
            | (b[:, 2] > info.width)
            | (b[:, 3] > info.height)
        )
        if off.any():
            rest = np.flatnonzero(off)
            beyond = np.where(
                weighed[rest],
                shapely.difference(parts[rest], shapely.box(0, 0, info.width, info.height)),
                parts[rest],
            )
            a_, _, c_, _, e_, f_ = info.transform
            beyond_ll = shapely.transform(
                beyond, lambda xy: np.column_stack([c_ + a_ * xy[:, 0], f_ + e_ * xy[:, 1]])
            )
            np.add.at(total, owner[rest], spherical.outline_total(beyond_ll, owner[rest]))
    area[area < EPS] = 0.0  # float noise of pixels the footprint only touches
    return ClassAreas(
        area=area,
        valid=area.sum(axis=1),
        total=total,
        unknown=unknown,
        unknown_rows=int(unknown_owner.sum()),
        unknown_mask=unknown_owner,
        unit_m2=spherical.ref_weight if spherical is not None else np.full(n, pixel_m2(info)),
    )


def pixel_m2(info: RasterInfo) -> float:
    """Area of one pixel of a projected raster in square metres (CRS units converted)."""
    from csmoe_data.geometry import to_crs

    crs = to_crs(info.crs)
    factor = 1.0
    try:
        if crs.axis_info:
            factor = float(crs.axis_info[0].unit_conversion_factor) or 1.0
    except (AttributeError, IndexError, TypeError, ValueError):
        factor = 1.0
    return float(info.res[0] * info.res[1] * factor * factor)


def _measure(geoms: NDArray[np.object_], info: RasterInfo) -> NDArray[np.float64]:
    """Area of footprints in a tile's CRS: spherical m^2 on lon/lat tiles, planar otherwise."""
    from csmoe_data.engine.area import spherical_area

    out = np.zeros(len(geoms))
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if present.any():
        g = geoms[present]
        out[present] = spherical_area(g) if info.spherical else shapely.area(g)
    return out


def tiled_class_areas(
    in_crs: Callable[[str], NDArray[np.object_]],
    lonlat: NDArray[np.object_],
    tiles: Sequence[RasterInfo],
    index: TileIndex,
    legend: Legend,
    compiled: bool = True,
) -> ClassAreas:
    """Class areas of footprints over a set of tiles (mixed CRSs), in square metres.

    Each footprint meets only the tiles whose outline it touches (:class:`TileIndex`); within
    each it is cut to the tile's domain (so overlapping tiles count each place once), described
    by :func:`class_areas`, and the parts are added in square metres, so a footprint spanning
    tiles gets fractions over their union, each part weighted by its area. Its total area is
    the covered area divided by the share of the footprint the tiles cover (each share measured
    in the tile's own CRS, where distortion cancels).

    Args:
        in_crs: the footprints in a given CRS (cached by the caller).
        lonlat: the footprints in EPSG:4326 (for the index).
        tiles: the tiles.
        index: their index.
        legend: the legend shared by the tiles.
        compiled: see :func:`class_areas`.

    Raises:
        CsmoeDataError: if raster pixels cannot be read.
    """
    from csmoe_data.sources.longitudes import fit_longitudes

    n = len(lonlat)
    k = len(legend.classes)
    area = np.zeros((n, k))
    covered = np.zeros(n)
    share = np.zeros(n)
    unknown: dict[float, float] = {}
    unknown_mask = np.zeros(n, dtype=bool)
    for t, idx in enumerate(index.touching(lonlat)):
        if not len(idx):
            continue
        info = tiles[t]
        g = in_crs(info.crs)[idx]
        if info.lon_west is not None:
            g = fit_longitudes(g, info.lon_west)
        part = index.clip(t, g)
        ca = class_areas(part, info, legend, compiled)
        unit = ca.unit_m2 if ca.unit_m2 is not None else np.ones(len(idx))
        area[idx] += ca.area * unit[:, None]
        covered[idx] += ca.total * unit
        whole = _measure(g, info)
        with np.errstate(divide="ignore", invalid="ignore"):
            share[idx] += np.where(whole > 0, _measure(part, info) / whole, 0.0)
        for v, a in ca.unknown.items():
            unknown[v] = unknown.get(v, 0.0) + a
        if ca.unknown_mask is not None:
            unknown_mask[idx] |= ca.unknown_mask
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.where(share > 0, covered / np.minimum(share, 1.0), 0.0)
    area[area < EPS] = 0.0
    return ClassAreas(
        area=area,
        valid=area.sum(axis=1),
        total=total,
        unknown=unknown,
        unknown_rows=int(unknown_mask.sum()),
        unknown_mask=unknown_mask,
        unit_m2=np.ones(n),
    )


def _fractions(
    ca: ClassAreas,
) -> tuple[NDArray[np.float64], NDArray[np.float32], NDArray[np.bool_]]:
    has = ca.valid > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = ca.area / ca.valid[:, None]
        valid_frac = np.where(ca.total > 0, ca.valid / ca.total, 0.0)
    frac[~has] = np.nan
    return frac, np.clip(valid_frac, 0.0, 1.0).astype(np.float32), has


@dataclass
class DescriptorArrays:
    """The descriptor columns of one raster kind as plain numpy arrays (rows of any order).

    What a worker sends back for a chunk (cheaper to build and to pickle than a DataFrame,
    whose construction costs per column, not per row); the parent concatenates the chunks,
    puts the rows in input order and builds one frame per batch (:meth:`frame`).

    Attributes:
        kind: ``landcover`` or ``climate``.
        columns: column name -> values: float32 fractions and valid fraction, then the
            majority class (land cover: the reported code; climate: the symbol, None where
            nothing is valid) and, for land cover, the entropy.
        has: where any pixel is valid (the land-cover majority is null elsewhere).
    """

    kind: str
    columns: dict[str, NDArray[Any]]
    has: NDArray[np.bool_]

    @classmethod
    def concat(cls, parts: Sequence[DescriptorArrays]) -> DescriptorArrays:
        """The rows of ``parts`` one after the other (at least one part)."""
        first = parts[0]
        return cls(
            first.kind,
            {c: np.concatenate([p.columns[c] for p in parts]) for c in first.columns},
            np.concatenate([p.has for p in parts]),
        )

    def take(self, rows: NDArray[np.int64]) -> DescriptorArrays:
        """The given rows, in that order."""
        return DescriptorArrays(
            self.kind, {c: v[rows] for c, v in self.columns.items()}, self.has[rows]
        )

    def frame(self) -> pd.DataFrame:
        """The descriptor columns as the manifest holds them (see :func:`landcover_columns`)."""
        cols: dict[str, Any] = dict(self.columns)
        if self.kind == "landcover":
            major = pd.array(cols[schema.LC_MAJOR], dtype="Int32")
            major[~self.has] = pd.NA
            cols[schema.LC_MAJOR] = major
        else:
            cols[schema.KG_MAJOR] = pd.array(cols[schema.KG_MAJOR], dtype="string")
        return pd.DataFrame(cols)


def descriptor_arrays(ca: ClassAreas, legend: Legend) -> DescriptorArrays:
    """The descriptor columns of the legend's kind as plain arrays (see :func:`describe`)."""
    frac, valid_frac, has = _fractions(ca)
    cols: dict[str, Any] = {c: frac[:, i].astype(np.float32) for i, c in enumerate(legend.columns)}
    best = np.argmax(np.nan_to_num(frac, nan=-1.0), axis=1)
    if legend.kind == "landcover":
        cols[schema.LC_VALID_FRAC] = valid_frac
        cols[schema.LC_MAJOR] = legend.codes[best]
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(frac > 0, frac * np.log(np.where(frac > 0, frac, 1.0)), 0.0)
        entropy = np.where(has, np.maximum(-plogp.sum(axis=1), 0.0), np.nan)
        cols[schema.LC_ENTROPY] = entropy.astype(np.float32)
        return DescriptorArrays("landcover", cols, has)
    cols[schema.KG_VALID_FRAC] = valid_frac
    symbols = np.array(legend.keys, dtype=object)
    major = symbols[best] if len(has) else symbols[:0]
    cols[schema.KG_MAJOR] = np.where(has, major, np.array(None, dtype=object))
    return DescriptorArrays("climate", cols, has)


def landcover_columns(ca: ClassAreas, legend: Legend) -> pd.DataFrame:
    """``lc_<code>``, ``lc_valid_frac``, ``lc_major`` (Int32), ``lc_entropy`` (nats)."""
    return descriptor_arrays(ca, legend).frame()


def climate_columns(ca: ClassAreas, legend: Legend) -> pd.DataFrame:
    """``kg_<symbol>``, ``kg_valid_frac``, ``kg_major`` (symbol string, null where nothing valid)."""
    return descriptor_arrays(ca, legend).frame()


def describe(ca: ClassAreas, legend: Legend) -> pd.DataFrame:
    """Descriptor columns of the legend's kind (land cover or climate)."""
    return descriptor_arrays(ca, legend).frame()


def footprint_descriptors(
    geoms: NDArray[np.object_],
    crs_values: NDArray[np.object_] | list[str],
    info: RasterInfo,
    legend: Legend,
    densify_pts: int = 21,
    compiled: bool = True,
) -> tuple[pd.DataFrame, ClassAreas]:
    """Transform footprints (each in its own CRS) into the raster's CRS and describe them.

    Args:
        geoms: footprint polygons, each in the CRS given by ``crs_values``.
        crs_values: each footprint's CRS (mixed UTM zones are fine).
        info: the raster.
        legend: its legend.
        densify_pts: extra vertices per edge before reprojection.
        compiled: see :func:`class_areas`.

    Returns:
        ``(columns, class_areas)``.

    Raises:
        CsmoeDataError: unknown CRS, unreadable pixels.
    """
    from csmoe_data.geometry import transform_geometries_by_crs
    from csmoe_data.sources.longitudes import fit_longitudes

    in_raster = transform_geometries_by_crs(geoms, list(crs_values), info.crs, densify_pts)
    ca = class_areas(fit_longitudes(in_raster, info.lon_west), info, legend, compiled)
    return describe(ca, legend), ca
