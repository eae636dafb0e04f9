"""Spatially blocked train/val/test splits.

Blocks are the connected components of a graph whose nodes are the selected footprints and
coarse spatial cells: two footprints are linked when they overlap or touch (within
``touch_tolerance`` degrees, so that grid neighbours whose shared edge moved by floating-point
noise in reprojection still count as touching), and every footprint is linked to the cell of
its centre (cells of about ``block_size`` metres: latitude bands of that height, each cut in
longitude so that cells keep roughly that width). Whole blocks go to one split, so no footprint
of one split overlaps or touches a footprint of another, and footprints of one cell stay together
(less spatial autocorrelation between splits).

Blocks are shuffled with the seed, then placed largest first into the split whose row count
lies furthest below its target (fraction x rows), which meets the fractions closely whenever
blocks are small compared with the splits.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from csmoe_data.sampling.geo import EARTH_RADIUS_M, footprint_circles

#: default block cell size, metres (about one degree of latitude)
DEFAULT_BLOCK_SIZE_M = 100_000.0
#: two footprints closer than this (degrees, ~1 cm) count as touching
TOUCH_TOLERANCE_DEG = 1e-7


def spatial_blocks(
    geoms: np.ndarray,
    block_size: float = DEFAULT_BLOCK_SIZE_M,
    touch_tolerance: float = TOUCH_TOLERANCE_DEG,
) -> np.ndarray:
    """Block id (0..B-1) of every footprint; touching or overlapping footprints share a block.

    Args:
        geoms: EPSG:4326 shapely geometries.
        block_size: cell size in metres; 0 or less links only touching/overlapping footprints.
        touch_tolerance: distance in degrees under which two footprints count as touching.
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="dwithin", distance=touch_tolerance)
    rows, cols = [left], [right]
    n_nodes = n
    if block_size and block_size > 0:
        lon, lat, _ = footprint_circles(geoms)
        dlat = np.degrees(block_size / EARTH_RADIUS_M)
        band = np.floor((lat + 90.0) / dlat).astype(np.int64)
        band_lat = np.clip(-90.0 + (band + 0.5) * dlat, -89.9, 89.9)
        per_band = np.maximum(1, np.floor(360.0 * np.cos(np.radians(band_lat)) / dlat)).astype(
            np.int64
        )
        col = np.floor((lon + 180.0) / 360.0 * per_band).astype(np.int64) % per_band
        cell_key = band * 1_000_000 + col
        _, cell = np.unique(cell_key, return_inverse=True)
        rows.append(np.arange(n))
        cols.append(n + cell)
        n_nodes = n + int(cell.max()) + 1
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    _, block = np.unique(labels[:n], return_inverse=True)
    return block.astype(np.int64)


def assign_splits(blocks: np.ndarray, fractions: Mapping[str, float], seed: int = 0) -> np.ndarray:
    """Assign whole blocks to splits so that row counts follow ``fractions``.

    Args:
        blocks: block id per row (from :func:`spatial_blocks`).
        fractions: split name -> fraction (sum 1); order is kept for ties.
        seed: seed of the block shuffle.

    Returns:
        Object array of split names, one per row.
    """
    names = list(fractions)
    target = np.array([fractions[k] for k in names], dtype=np.float64) * len(blocks)
    out = np.empty(len(blocks), dtype=object)
    if len(blocks) == 0:
        return out
    n_blocks = int(blocks.max()) + 1
    sizes = np.bincount(blocks, minlength=n_blocks)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B117]))
    order = rng.permutation(n_blocks)
    order = order[np.argsort(-sizes[order], kind="stable")]  # largest first, shuffled ties
    filled = np.zeros(len(names), dtype=np.float64)
    block_split = np.empty(n_blocks, dtype=np.int64)
    positive = target > 0
    for b in order:
        # the split furthest below its target (relative), among splits that want rows at all
        deficit = np.where(positive, (target - filled) / np.maximum(target, 1e-12), -np.inf)
        k = int(np.argmax(deficit))
        block_split[b] = k
        filled[k] += sizes[b]
    out[:] = np.array(names, dtype=object)[block_split[blocks]]
    return out
