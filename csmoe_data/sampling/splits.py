"""Spatially blocked train/val/test splits that hold for any layout.

Blocks are the cells of a block grid, not connected components of touching footprints (on a
contiguous grid, such as the output of ``csmoe-data grid``, every footprint touches its
neighbours, so components put every row into one block and one split). The grid has latitude
bands ``block_size`` metres high, each band cut into equal longitude cells of about the same
width, so cells stay roughly square from the equator to the poles; a footprint belongs to the
cell of the centre of its longitude/latitude box (antimeridian-split footprints use their tight
box, see :func:`csmoe_data.sampling.geo.footprint_circles`).

Block size: given (``--split-block-size``), or derived from the footprints:
:data:`BLOCK_WIDTHS` median footprint widths, halved (down to :data:`MIN_BLOCK_WIDTHS` widths)
while fewer than :data:`TARGET_BLOCKS` cells hold footprints. Large blocks keep neighbouring,
spatially autocorrelated footprints in one split and lose few rows at their borders; many
blocks let the shares be met.

Assignment: blocks are shuffled with the seed and placed largest first into the split whose
row count lies furthest below its target (relative deficit); with more than
:data:`GREEDY_MAX_BLOCKS` blocks, the shuffled blocks are cut at the cumulative targets instead
(the same accuracy when blocks are small, without a Python loop per block).

Borders: a footprint that touches or overlaps (within ``touch_tolerance`` degrees, so that grid
neighbours whose shared edge moved by floating-point noise in reprojection still count) a
footprint of another split is removed. Of each such pair, the footprint in the split with the
larger requested share leaves (ties: the split named later), so val/test blocks stay whole and
train gives up its border rows. Since removals shrink some splits more than others, the
assignment is repeated with targets corrected for the removals (up to :data:`ROUNDS` rounds);
the round whose achieved shares lie closest to the request is kept.

Refill (:func:`refill_borders`, when the rows come from a larger pool): each removed row is
replaced, where the pool allows, by the nearest unselected row of its stratum (in descriptor
space) whose block belongs to the same split (or holds no selected footprint yet) and which
touches no footprint of another split, so a sample keeps its size and its strata.

A request that cannot be met (too few blocks, one block holding more than a split's share, a
split left empty) is reported by :attr:`SplitReport.warnings` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from csmoe_data.sampling.geo import EARTH_RADIUS_M, footprint_circles

#: default block size in median footprint widths
BLOCK_WIDTHS = 20.0
#: the derived block size never goes below this many footprint widths
MIN_BLOCK_WIDTHS = 4.0
#: the derived block size is halved while fewer cells than this hold footprints
TARGET_BLOCKS = 100
#: share tolerance (fraction) promised when there are at least :data:`MIN_BLOCKS_FOR_SHARES`
SHARE_TOLERANCE = 0.02
#: blocks from which the shares are expected within :data:`SHARE_TOLERANCE`
MIN_BLOCKS_FOR_SHARES = 50
#: assignment rounds (targets corrected for removed border rows)
ROUNDS = 8
#: above this many blocks, blocks are cut at cumulative targets instead of placed one by one
GREEDY_MAX_BLOCKS = 20_000
#: two footprints closer than this (degrees, ~1 cm) count as touching
TOUCH_TOLERANCE_DEG = 1e-7
#: compatibility: the block size used before the block size was derived from the footprints
DEFAULT_BLOCK_SIZE_M = 100_000.0


@dataclass
class SplitReport:
    """What a blocked split did.

    Attributes:
        requested: split name -> requested share.
        achieved: split name -> achieved share of the kept rows.
        counts: split name -> rows kept.
        removed: rows removed because they touched a footprint of another split.
        removed_by_split: split name -> removed rows that had been assigned to it.
        blocks: blocks (occupied grid cells).
        blocks_by_split: split name -> blocks assigned.
        block_size_m: block grid cell size in metres.
        block_size_from: ``"option"`` or how the size was derived.
        max_deviation: largest |achieved - requested| over the splits (fraction).
        warnings: why a request could not be met, one sentence each.
        replaced: removed rows replaced by other pool rows (:func:`refill_borders`).
        replaced_by_split: split name -> replacements it received.
        assigned: split name per input row as assigned to its block, before the border
            removals (not written to the metadata).
    """

    requested: dict[str, float]
    achieved: dict[str, float]
    counts: dict[str, int]
    removed: int
    removed_by_split: dict[str, int]
    blocks: int
    blocks_by_split: dict[str, int]
    block_size_m: float
    block_size_from: str
    max_deviation: float
    warnings: list[str] = field(default_factory=list)
    replaced: int = 0
    replaced_by_split: dict[str, int] = field(default_factory=dict)
    assigned: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_metadata(self) -> dict[str, Any]:
        """JSON-serialisable form for the manifest's ``sampling`` metadata."""
        return {
            "requested": dict(self.requested),
            "achieved": {k: round(v, 6) for k, v in self.achieved.items()},
            "counts": dict(self.counts),
            "removed": int(self.removed),
            "removed_by_split": dict(self.removed_by_split),
            "replaced": int(self.replaced),
            "replaced_by_split": dict(self.replaced_by_split),
            "blocks": int(self.blocks),
            "blocks_by_split": dict(self.blocks_by_split),
            "block_size_m": round(float(self.block_size_m), 3),
            "block_size_from": self.block_size_from,
            "max_deviation": round(float(self.max_deviation), 6),
            "warnings": list(self.warnings),
        }


def _centres(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre lon/lat (NaN for missing geometry) and width in metres of every footprint."""
    ok = np.array([g is not None and not shapely.is_empty(g) for g in geoms], dtype=bool)
    lon = np.full(len(geoms), np.nan)
    lat = np.full(len(geoms), np.nan)
    width = np.full(len(geoms), np.nan)
    if ok.any():
        lo, la, radius = footprint_circles(geoms[ok])
        lon[ok], lat[ok] = lo, la
        # radius: centre to farthest box corner + 1%; a square's width is sqrt(2) x that
        width[ok] = radius / 1.01 * np.sqrt(2.0)
    return lon, lat, width


def block_cells(lon: np.ndarray, lat: np.ndarray, block_size: float) -> np.ndarray:
    """Block grid cell (0..B-1, dense) of every centre; missing centres share one cell.

    Args:
        lon: centre longitudes in degrees (NaN where a footprint has no geometry).
        lat: centre latitudes in degrees (NaN likewise).
        block_size: cell height and (about) width in metres.
    """
    if len(lon) == 0:
        return np.empty(0, dtype=np.int64)
    _, cell = np.unique(cell_keys(lon, lat, block_size), return_inverse=True)
    return cell.astype(np.int64)


def cell_keys(lon: np.ndarray, lat: np.ndarray, block_size: float) -> np.ndarray:
    """Block grid cell key of every centre (-1 for missing ones), the same for any input set.

    :func:`block_cells` numbers the occupied cells densely; these keys identify a cell across
    calls (a candidate row and the selected rows of its cell get the same key).
    """
    finite = np.isfinite(lon) & np.isfinite(lat)
    dlat = float(np.degrees(block_size / EARTH_RADIUS_M))
    la = np.where(finite, np.clip(lat, -90.0, 90.0), 0.0)
    lo = np.where(finite, lon, 0.0)
    band = np.floor((la + 90.0) / dlat).astype(np.int64)
    band_lat = np.clip(-90.0 + (band + 0.5) * dlat, -89.9, 89.9)
    per_band = np.maximum(1, np.floor(360.0 * np.cos(np.radians(band_lat)) / dlat)).astype(np.int64)
    col = np.floor((lo + 180.0) / 360.0 * per_band).astype(np.int64) % per_band
    # cells per band never exceed the equator's count, so keys are unique across bands
    widest = int(np.floor(360.0 / dlat)) + 1
    key = band * widest + col
    return np.where(finite, key, -1).astype(np.int64)


def default_block_size(lon: np.ndarray, lat: np.ndarray, width: np.ndarray) -> tuple[float, str]:
    """Block size derived from the footprints (see the module docstring) and how it was found."""
    finite = np.isfinite(width) & (width > 0)
    median = float(np.median(width[finite])) if finite.any() else 1000.0
    size = BLOCK_WIDTHS * median
    floor = MIN_BLOCK_WIDTHS * median
    while size / 2.0 >= floor and len(np.unique(block_cells(lon, lat, size))) < TARGET_BLOCKS:
        size /= 2.0
    widths = size / median
    return size, f"{widths:g} x median footprint width ({median:,.0f} m)"


def spatial_blocks(geoms: np.ndarray, block_size: float | None = None) -> np.ndarray:
    """Block id (0..B-1) of every footprint: the block grid cell of its centre.

    Args:
        geoms: EPSG:4326 shapely geometries.
        block_size: cell size in metres; None derives it (:func:`default_block_size`).

    Raises:
        ValueError: if ``block_size`` is not a positive number.
    """
    if block_size is not None and not (np.isfinite(block_size) and block_size > 0):
        raise ValueError(f"the split block size must be > 0 metres, not {block_size}")
    geoms = np.asarray(geoms, dtype=object)
    lon, lat, width = _centres(geoms)
    if block_size is None:
        block_size, _ = default_block_size(lon, lat, width)
    return block_cells(lon, lat, float(block_size))


def _greedy(sizes: np.ndarray, order: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Place blocks (largest first, ``order`` breaking ties) into the split most below target."""
    order = order[np.argsort(-sizes[order], kind="stable")]
    filled = [0.0] * len(target)
    tgt = [float(t) for t in target]
    out = np.empty(len(sizes), dtype=np.int64)
    size_list = sizes.tolist()
    for b in order.tolist():
        best, best_deficit = 0, -np.inf
        for k, t in enumerate(tgt):
            if t <= 0:
                continue
            deficit = (t - filled[k]) / t
            if deficit > best_deficit:
                best, best_deficit = k, deficit
        out[b] = best
        filled[best] += size_list[b]
    return out


def _cut(sizes: np.ndarray, order: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Blocks in ``order`` cut where the cumulative row count (block midpoints) passes targets."""
    mid = np.cumsum(sizes[order]) - sizes[order] / 2.0
    bounds = np.cumsum(target)
    k = np.minimum(np.searchsorted(bounds, mid, side="right"), len(target) - 1)
    out = np.empty(len(sizes), dtype=np.int64)
    out[order] = k
    return out


def assign_splits(
    blocks: np.ndarray,
    fractions: Mapping[str, float],
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Assign whole blocks to splits so that row counts follow ``fractions``.

    Args:
        blocks: block id per row (from :func:`spatial_blocks`).
        fractions: split name -> fraction (sum 1); order is kept for ties.
        seed: seed of the block shuffle.
        weights: optional per-split targets to use instead of ``fractions`` (normalised here;
            used to correct for removed border rows).

    Returns:
        Object array of split names, one per row.
    """
    names = list(fractions)
    out = np.empty(len(blocks), dtype=object)
    if len(blocks) == 0:
        return out
    return np.array(names, dtype=object)[_assign_codes(blocks, fractions, seed, weights)]


def _assign_codes(
    blocks: np.ndarray,
    fractions: Mapping[str, float],
    seed: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    names = list(fractions)
    share = np.array([fractions[k] for k in names], dtype=np.float64)
    if weights is not None:
        share = np.where(share > 0, np.asarray(weights, dtype=np.float64), 0.0)
    share = share / share.sum() if share.sum() > 0 else share
    target = share * len(blocks)
    n_blocks = int(blocks.max()) + 1
    sizes = np.bincount(blocks, minlength=n_blocks)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B117]))
    order = rng.permutation(n_blocks)
    if n_blocks > GREEDY_MAX_BLOCKS:
        block_split = _cut(sizes, order, target)
    else:
        block_split = _greedy(sizes, order, target)
    return block_split[blocks]


def touching_pairs(
    geoms: np.ndarray, touch_tolerance: float = TOUCH_TOLERANCE_DEG
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of footprints that overlap or lie within ``touch_tolerance`` degrees."""
    geoms = np.asarray(geoms, dtype=object)
    present = np.array([g is not None for g in geoms], dtype=bool)
    idx = np.flatnonzero(present)
    if len(idx) < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    tree = shapely.STRtree(geoms[idx])
    left, right = tree.query(geoms[idx], predicate="dwithin", distance=touch_tolerance)
    keep = left < right
    return idx[left[keep]], idx[right[keep]]


def _removals(
    codes: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    give_rank: np.ndarray,
    protect: np.ndarray | None = None,
) -> np.ndarray:
    """Rows to remove so that no pair across splits remains (see the module docstring)."""
    cross = codes[left] != codes[right]
    a, b = left[cross], right[cross]
    giver = np.where(give_rank[codes[a]] <= give_rank[codes[b]], a, b)
    if protect is not None:  # a protected row stays; its neighbour in the other split leaves
        other = np.where(giver == a, b, a)
        giver = np.where(protect[giver] & ~protect[other], other, giver)
    removed = np.zeros(len(codes), dtype=bool)
    removed[giver] = True
    return removed


def blocked_splits(
    geoms: np.ndarray,
    fractions: Mapping[str, float],
    seed: int = 0,
    block_size: float | None = None,
    touch_tolerance: float = TOUCH_TOLERANCE_DEG,
    protect: np.ndarray | None = None,
) -> tuple[np.ndarray, SplitReport]:
    """Split footprints into spatial blocks and remove footprints touching another split.

    Args:
        geoms: EPSG:4326 shapely geometries (None allowed: such rows form one block).
        fractions: split name -> share (>= 0, sum 1).
        seed: seed of the block shuffle.
        block_size: block grid cell size in metres; None derives it from the footprints.
        touch_tolerance: distance in degrees under which two footprints count as touching.
        protect: rows to keep where a touching pair allows it (bool per row): of a pair with
            one protected row, the other row leaves, whatever its split (e.g. the only row of
            a stratum, which no other row could replace).

    Returns:
        Split name per row (None for removed rows) and a :class:`SplitReport`.

    Raises:
        ValueError: if ``block_size`` is not positive or the fractions do not sum to 1.
    """
    names = list(fractions)
    share = np.array([float(fractions[k]) for k in names], dtype=np.float64)
    if not names or share.min() < 0 or abs(share.sum() - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, not {dict(fractions)}")
    if block_size is not None and not (block_size > 0 and np.isfinite(block_size)):
        raise ValueError(f"the split block size must be > 0 metres, not {block_size}")
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    lon, lat, width = _centres(geoms)
    if block_size is None:
        size, source = default_block_size(lon, lat, width)
    else:
        size, source = float(block_size), "option"
    blocks = block_cells(lon, lat, size)
    n_blocks = int(blocks.max()) + 1 if n else 0
    left, right = touching_pairs(geoms, touch_tolerance)
    # the split with the larger share gives up its border rows (ties: the later one)
    give_order = sorted(range(len(names)), key=lambda k: (-share[k], -k))
    give_rank = np.empty(len(names), dtype=np.int64)
    give_rank[give_order] = np.arange(len(names))

    best: tuple[float, np.ndarray, np.ndarray] | None = None
    weights = share.copy()
    for _ in range(ROUNDS if n else 0):
        codes = _assign_codes(blocks, fractions, seed, weights)
        removed = _removals(codes, left, right, give_rank, protect)
        kept = np.bincount(codes[~removed], minlength=len(names)).astype(np.float64)
        total = kept.sum()
        achieved = kept / total if total > 0 else np.zeros(len(names))
        deviation = float(np.abs(achieved - share).max())
        if best is None or deviation < best[0] - 1e-12:
            best = (deviation, codes, removed)
        if deviation <= SHARE_TOLERANCE / 4:
            break
        # correct the targets: a split that came out short asks for more next round
        ratio = np.where(achieved > 0, share / np.maximum(achieved, 1e-12), 2.0)
        weights = np.where(share > 0, weights * ratio, 0.0)
        weights = weights / weights.sum()

    out = np.empty(n, dtype=object)
    if best is None:
        codes = np.empty(0, dtype=np.int64)
        removed = np.empty(0, dtype=bool)
        deviation = 0.0 if n == 0 else 1.0
    else:
        deviation, codes, removed = best
        out[:] = np.array(names, dtype=object)[codes]
        out[removed] = None
    kept_counts = np.bincount(codes[~removed], minlength=len(names)) if n else np.zeros(len(names))
    removed_counts = (
        np.bincount(codes[removed], minlength=len(names)) if n else np.zeros(len(names))
    )
    total = int(kept_counts.sum())
    achieved_d = {k: (float(kept_counts[i]) / total if total else 0.0) for i, k in enumerate(names)}
    blocks_by = {k: 0 for k in names}
    if n:
        first_code = np.zeros(n_blocks, dtype=np.int64)
        first_code[blocks] = codes
        for i, k in enumerate(names):
            blocks_by[k] = int((first_code == i).sum())
    report = SplitReport(
        requested={k: float(fractions[k]) for k in names},
        achieved=achieved_d,
        counts={k: int(kept_counts[i]) for i, k in enumerate(names)},
        removed=int(removed.sum()),
        removed_by_split={k: int(removed_counts[i]) for i, k in enumerate(names)},
        blocks=n_blocks,
        blocks_by_split=blocks_by,
        block_size_m=size,
        block_size_from=source,
        max_deviation=deviation,
        assigned=np.array(names, dtype=object)[codes] if n else np.empty(0, dtype=object),
    )
    report.warnings = _warnings(report, blocks, codes if n else None)
    return out, report


def refill_borders(
    geoms: np.ndarray,
    chosen: np.ndarray,
    split: np.ndarray,
    report: SplitReport,
    candidates_for: Callable[[int], np.ndarray],
    allowed: Callable[[int, np.ndarray], bool] | None = None,
    touch_tolerance: float = TOUCH_TOLERANCE_DEG,
) -> tuple[np.ndarray, np.ndarray]:
    """Replace the rows :func:`blocked_splits` removed by other rows of the pool.

    Removed rows are visited in order; each takes the first of its candidates (best first,
    from ``candidates_for``) that is not selected, lies in a block of the removed row's split
    or in a block without any selected footprint (which then joins that split), touches no
    kept footprint of another split, and passes ``allowed``. A row without such a candidate
    stays removed. The report's counts, shares and warnings are updated.

    Args:
        geoms: EPSG:4326 geometries of every pool row (selected or not).
        chosen: pool row index of every selected row (the rows given to :func:`blocked_splits`).
        split: its output for them (None where removed).
        report: its report (``assigned`` and ``block_size_m`` are used).
        candidates_for: chosen position -> candidate pool rows, best first.
        allowed: extra test ``(candidate, kept pool rows) -> bool``, e.g. a minimum distance.
        touch_tolerance: as for :func:`blocked_splits`.

    Returns:
        The replacement pool rows and their split names (in the order the removed rows were
        visited).
    """
    geoms = np.asarray(geoms, dtype=object)
    chosen = np.asarray(chosen, dtype=np.int64)
    removed = np.flatnonzero(np.array([s is None for s in split], dtype=bool))
    if len(removed) == 0 or report.assigned is None:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    kept = chosen[np.array([s is not None for s in split], dtype=bool)]
    kept_split = np.asarray(split, dtype=object)[[s is not None for s in split]]
    lon, lat, _ = _centres(geoms[chosen])
    keys = cell_keys(lon, lat, report.block_size_m).tolist()
    cell_split = {k: str(s) for k, s in zip(keys, report.assigned, strict=True)}
    tree = shapely.STRtree(geoms[kept]) if len(kept) else None
    taken = set(chosen.tolist())
    added: list[int] = []
    added_split: list[str] = []
    for pos in removed.tolist():
        name = str(report.assigned[pos])
        for cand in np.asarray(candidates_for(pos), dtype=np.int64).tolist():
            g = geoms[cand]
            if cand in taken or g is None or shapely.is_empty(g):
                continue
            c_lon, c_lat, _ = _centres(np.array([g], dtype=object))
            key = int(cell_keys(c_lon, c_lat, report.block_size_m)[0])
            if cell_split.get(key, name) != name:
                continue
            if tree is not None:
                near = tree.query(g, predicate="dwithin", distance=touch_tolerance)
                if (kept_split[near] != name).any():
                    continue
            others = [a for a, s in zip(added, added_split, strict=True) if s != name]
            if others and shapely.dwithin(g, geoms[others], touch_tolerance).any():
                continue
            if allowed is not None and not allowed(
                cand, np.concatenate([kept, np.asarray(added, dtype=np.int64)])
            ):
                continue
            taken.add(cand)
            cell_split[key] = name
            added.append(cand)
            added_split.append(name)
            break
    if added:
        names = list(report.requested)
        for name in added_split:
            report.counts[name] += 1
            report.replaced_by_split[name] = report.replaced_by_split.get(name, 0) + 1
        report.replaced = len(added)
        total = sum(report.counts.values())
        report.achieved = {k: report.counts[k] / total for k in names}
        report.max_deviation = max(abs(report.achieved[k] - report.requested[k]) for k in names)
        # the warnings about shares and removals now follow the refilled counts
        lon_k, lat_k, _ = _centres(geoms[np.concatenate([kept, np.asarray(added)])])
        report.warnings = _warnings(report, block_cells(lon_k, lat_k, report.block_size_m), None)
    return np.asarray(added, dtype=np.int64), np.asarray(added_split, dtype=object)


def _warnings(report: SplitReport, blocks: np.ndarray, codes: np.ndarray | None) -> list[str]:
    """Why the request was not met, if it was not."""
    out: list[str] = []
    lost = report.removed - report.replaced  # border rows removed and not replaced
    rows = sum(report.counts.values()) + lost
    if rows == 0:
        return out
    empty = [k for k, f in report.requested.items() if f > 0 and report.counts[k] == 0]
    if empty:
        out.append(
            f"split {', '.join(empty)} got no rows: {report.blocks} spatial block(s) of "
            f"{report.block_size_m:,.0f} m for {len(report.requested)} splits; "
            "a smaller --split-block-size gives more blocks"
        )
    if report.max_deviation > SHARE_TOLERANCE:
        wanted = ", ".join(
            f"{k} {report.requested[k]:.1%} -> {report.achieved[k]:.1%}" for k in report.requested
        )
        largest = float(np.bincount(blocks).max()) / rows if len(blocks) else 0.0
        if report.blocks < MIN_BLOCKS_FOR_SHARES:
            reason = (
                f"only {report.blocks} spatial blocks of {report.block_size_m:,.0f} m "
                f"(at least {MIN_BLOCKS_FOR_SHARES} are needed to meet shares); "
                "a smaller --split-block-size gives more blocks"
            )
        elif largest > min(v for v in report.requested.values() if v > 0):
            reason = (
                f"the largest block holds {largest:.1%} of the rows, more than the smallest "
                "requested share; a smaller --split-block-size splits it"
            )
        else:
            reason = (
                f"{lost:,} rows touching another split were removed; a larger "
                "--split-block-size loses fewer border rows"
            )
        out.append(f"split shares not met within {SHARE_TOLERANCE:.0%} ({wanted}): {reason}")
    if lost > 0.2 * rows:
        out.append(
            f"{lost:,} of {rows:,} rows ({lost / rows:.0%}) were removed "
            "because they touch a footprint of another split; a larger --split-block-size "
            "removes fewer"
        )
    return out
