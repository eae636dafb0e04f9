"""Distances between footprints on the sphere, for ``min_distance``.

A footprint is summarised by the centre of its longitude/latitude bounding box and a radius:
the great-circle distance (haversine, mean Earth radius) from that centre to the farthest
bounding-box corner, plus 1% margin. The distance between two footprints is then taken as
``max(0, d(centre_a, centre_b) - r_a - r_b)``: a lower bound of the true distance between the
footprints, so enforcing it guarantees the true gap is at least ``min_distance`` (it may reject
a few pairs that are in fact slightly farther apart; for 1 km tiles the slack is < 1 km).
Neighbour search uses a KD-tree on unit-sphere 3-D points (chord length is monotonic in the
great-circle distance), so no per-pair Python runs except over actual near pairs.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree

#: mean Earth radius, metres (IUGG)
EARTH_RADIUS_M = 6_371_008.8


def haversine(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance in metres between points given in degrees (broadcasting)."""
    lon1, lat1, lon2, lat2 = (
        np.radians(np.asarray(a, dtype=np.float64)) for a in (lon1, lat1, lon2, lat2)
    )
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def footprint_circles(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (lon, lat in degrees) and radius (metres) of every EPSG:4326 footprint.

    Footprints split at the antimeridian (bounding box wider than 180 degrees) are measured
    with their western longitudes shifted by +360 so that the box stays tight.
    """
    bounds = shapely.bounds(np.asarray(geoms, dtype=object))
    xmin, ymin, xmax, ymax = (bounds[:, i].copy() for i in range(4))
    wide = (xmax - xmin) > 180.0
    for i in np.flatnonzero(wide):  # rare: only footprints that cross the antimeridian
        coords = shapely.get_coordinates(geoms[i])
        lon = np.where(coords[:, 0] < 0, coords[:, 0] + 360.0, coords[:, 0])
        xmin[i], xmax[i] = lon.min(), lon.max()
    lon = (xmin + xmax) / 2.0
    lat = (ymin + ymax) / 2.0
    radius = np.zeros(len(lon))
    for cx, cy in ((xmin, ymin), (xmin, ymax), (xmax, ymin), (xmax, ymax)):
        radius = np.maximum(radius, haversine(lon, lat, cx, cy))
    lon = ((lon + 180.0) % 360.0) - 180.0
    radius = np.where(np.isfinite(radius), radius * 1.01, 0.0)
    return lon, lat, radius


def unit_xyz(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Points on the unit sphere, shape (N, 3)."""
    lo, la = np.radians(lon), np.radians(lat)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _chord(metres: float) -> float:
    angle = min(metres / EARTH_RADIUS_M, np.pi)
    return float(2.0 * np.sin(angle / 2.0))


class FootprintIndex:
    """Spatial index of footprints answering "which rows are closer than ``d`` metres"."""

    def __init__(self, lon: np.ndarray, lat: np.ndarray, radius: np.ndarray, min_distance: float):
        self.lon = np.asarray(lon, dtype=np.float64)
        self.lat = np.asarray(lat, dtype=np.float64)
        self.radius = np.asarray(radius, dtype=np.float64)
        self.min_distance = float(min_distance)
        self.xyz = unit_xyz(self.lon, self.lat)
        self.r_max = float(self.radius.max()) if len(self.radius) else 0.0

    def _close(self, i: int, js: np.ndarray) -> np.ndarray:
        d = haversine(self.lon[i], self.lat[i], self.lon[js], self.lat[js])
        return js[d - self.radius[i] - self.radius[js] < self.min_distance]

    def clear_of(self, i: int, rows: np.ndarray) -> bool:
        """Whether row ``i`` keeps ``min_distance`` to every row of ``rows`` (itself excluded)."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[rows != i]
        return len(rows) == 0 or len(self._close(int(i), rows)) == 0

    def conflicts(self, rows: np.ndarray, among: np.ndarray) -> list[np.ndarray]:
        """For every row of ``rows``, the rows of ``among`` closer than ``min_distance``.

        Args:
            rows: query row indices.
            among: candidate row indices (a KD-tree is built over them).
        """
        rows = np.asarray(rows, dtype=np.int64)
        among = np.asarray(among, dtype=np.int64)
        if len(among) == 0 or len(rows) == 0:
            return [np.empty(0, dtype=np.int64) for _ in rows]
        tree = cKDTree(self.xyz[among])
        out: list[np.ndarray] = []
        for i in rows:
            reach = _chord(self.min_distance + self.radius[i] + self.r_max)
            hits = among[np.asarray(tree.query_ball_point(self.xyz[i], reach), dtype=np.int64)]
            hits = hits[hits != i]
            out.append(self._close(int(i), hits) if len(hits) else hits)
        return out

    def thin(self, ordered: np.ndarray, accepted: np.ndarray) -> np.ndarray:
        """Greedy thinning: keep rows of ``ordered`` in order unless too close to a kept one.

        Args:
            ordered: candidate rows, best first.
            accepted: rows already kept (candidates must keep their distance to these too).

        Returns:
            The kept candidates, in their original order.
        """
        ordered = np.asarray(ordered, dtype=np.int64)
        if len(ordered) == 0:
            return ordered
        blocked = np.zeros(len(ordered), dtype=bool)
        if len(accepted):
            for k, hits in enumerate(self.conflicts(ordered, np.asarray(accepted))):
                blocked[k] = len(hits) > 0
        pos = {int(r): k for k, r in enumerate(ordered)}
        neighbours = self.conflicts(ordered, ordered)
        keep = np.zeros(len(ordered), dtype=bool)
        for k in range(len(ordered)):
            if blocked[k]:
                continue
            keep[k] = True
            for j in neighbours[k]:
                blocked[pos[int(j)]] = True
        return ordered[keep]
