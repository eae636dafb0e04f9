"""A spatial index over the tiles of a raster set, built once per job.

Raster sets: ESA WorldCover's 2,651 tiles, UTM-zoned products, a folder of anything.

Each tile's outline (its bounds, densified) is taken to lon/lat once and put into a shapely
``STRtree``; a footprint then meets only the tiles whose outline it intersects, so it opens
only those. Tiles may overlap (UTM-zoned products repeat a strip along each zone seam): every
place then belongs to the first tile that covers it, in the set's order, so no area counts
twice. A tile's *domain* is its bounds less the bounds of the earlier tiles overlapping it,
in its own CRS; tiles that overlap no earlier tile have no domain to clip with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

__all__ = ["TileIndex"]

#: outline edges are cut to this many pieces before reprojection (edges of UTM tiles curve)
_DENSIFY = 64
#: overlaps smaller than this share of a tile's area are float noise along shared edges
_OVERLAP_EPS = 1e-9


@dataclass
class TileIndex:
    """Outlines (EPSG:4326) and domains of a set of raster tiles.

    Attributes:
        crs: each tile's CRS text.
        bounds: each tile's ``(left, bottom, right, top)`` in its CRS.
        outlines: each tile's outline in EPSG:4326 (split at the antimeridian).
        domains: each tile's domain in its own CRS, or None where it overlaps no earlier tile.
        tree: the ``STRtree`` of the outlines.
    """

    crs: list[str]
    bounds: list[tuple[float, float, float, float]]
    outlines: NDArray[np.object_]
    domains: list[shapely.Geometry | None]
    tree: shapely.STRtree

    @classmethod
    def build(
        cls, crs: Sequence[str], bounds: Sequence[tuple[float, float, float, float]]
    ) -> TileIndex:
        """Index tiles given their CRSs and bounds.

        Raises:
            CsmoeDataError: if a CRS is not understood.
        """
        from csmoe_data.geometry import _split_one, is_geographic, transform_geometries

        crs = [str(c) for c in crs]
        bounds = [tuple(float(v) for v in b) for b in bounds]  # type: ignore[misc]
        boxes = np.asarray([shapely.box(*b) for b in bounds], dtype=object)
        outlines = np.empty(len(boxes), dtype=object)
        for value in dict.fromkeys(crs):
            sel = np.flatnonzero(np.asarray(crs, dtype=object) == value)
            if is_geographic(value):
                # lon/lat tiles may lie in 0..360: cut at 180 without unwrapping (a whole turn
                # would unwrap to nothing); datum shifts are far below a tile's size
                outlines[sel] = [_split_one(boxes[k]) for k in sel]
                continue
            outlines[sel] = transform_geometries(
                boxes[sel], value, "EPSG:4326", densify_pts=_DENSIFY, min_segment=0.0
            )
        tree = shapely.STRtree(outlines)
        domains: list[shapely.Geometry | None] = [None] * len(boxes)
        for i in range(len(boxes)):
            if outlines[i] is None:
                continue
            earlier = [
                j
                for j in tree.query(outlines[i], predicate="intersects").tolist()
                if j < i and outlines[j] is not None
            ]
            if not earlier:
                continue
            overlap = shapely.union_all(
                [shapely.intersection(outlines[i], outlines[j]) for j in earlier]
            )
            if shapely.area(overlap) <= _OVERLAP_EPS * shapely.area(outlines[i]):
                continue  # neighbours sharing an edge
            others = [
                boxes[j]
                if crs[j] == crs[i]
                else transform_geometries(
                    boxes[j : j + 1], crs[j], crs[i], densify_pts=_DENSIFY, min_segment=0.0
                )[0]
                for j in earlier
            ]
            others = [g for g in others if g is not None]
            domains[i] = shapely.difference(boxes[i], shapely.union_all(others))
        return cls(crs=crs, bounds=list(bounds), outlines=outlines, domains=domains, tree=tree)

    def __len__(self) -> int:
        return len(self.crs)

    def touching(self, geoms_lonlat: NDArray[np.object_]) -> list[NDArray[np.int64]]:
        """For each tile, the indices of the footprints (EPSG:4326) that intersect its outline."""
        arr = np.asarray(geoms_lonlat, dtype=object)
        present = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
        out: list[NDArray[np.int64]] = [np.zeros(0, dtype=np.int64) for _ in range(len(self))]
        if not present.any():
            return out
        idx = np.flatnonzero(present)
        geom_i, tile_i = self.tree.query(arr[idx], predicate="intersects")
        order = np.lexsort((geom_i, tile_i))
        geom_i, tile_i = idx[geom_i[order]], tile_i[order]
        if not len(tile_i):
            return out
        starts = np.flatnonzero(np.r_[True, tile_i[1:] != tile_i[:-1]])
        ends = np.r_[starts[1:], len(tile_i)]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            out[int(tile_i[s])] = np.unique(geom_i[s:e]).astype(np.int64)
        return out

    def clip(self, tile: int, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
        """Footprints (in the tile's CRS) cut to the tile's domain, or to its bounds without one.

        Footprints well inside are returned as they are (no intersection computed).
        """
        domain = self.domains[tile]
        region = domain if domain is not None else shapely.box(*self.bounds[tile])
        out = np.asarray(geoms, dtype=object).copy()
        present = ~(shapely.is_missing(out) | shapely.is_empty(out))
        if not present.any():
            return out
        shapely.prepare(region)
        sel = np.flatnonzero(present)
        inside = shapely.contains_properly(region, out[sel])
        cut = sel[~inside]
        if len(cut):
            out[cut] = shapely.intersection(out[cut], region)
        return out
