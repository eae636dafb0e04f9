"""``sample_manifest``: filters, allocation, picks, ``min_distance``, splits, metadata.

Order of work: drop rows below ``min_valid_frac`` (land-cover or climate valid fraction; NaN
fails), rows failing ``where`` and rows without valid coordinates
(:mod:`csmoe_data.sampling.eligibility`); group the rest (strata, clusters) with the strategy; split
the budget with :func:`~csmoe_data.sampling.allocation.allocate`; let the strategy pick rows in
each group, then refine all picks at once. With ``min_distance`` the picks are thinned greedily
(each group's first pick before any group's second) against the footprint distance of
:mod:`csmoe_data.sampling.geo`, rows too close to a kept one leave the pool, and the missing
picks are drawn again from what is left (groups that run dry pass their share on), for up to
:data:`MAX_DISTANCE_ROUNDS` rounds; fewer rows than asked come back only when the pool cannot
hold more. Splits (:mod:`csmoe_data.sampling.splits`) are assigned last, over the selected rows
(footprints touching a footprint of another split are removed, replaced by the nearest free row
of their stratum where one fits, and counted in the metadata's ``split_report``); without
``split`` every row is ``train``. Output rows keep the pool's order.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from csmoe_common import manifest as schema
from csmoe_common.progress import progress_bar
from csmoe_data.errors import CsmoeDataError
from csmoe_data.sampling.allocation import allocate
from csmoe_data.sampling.eligibility import conditions
from csmoe_data.sampling.features import (
    class_columns,
    descriptor_matrix,
    load_landcover_groups,
    strata_labels,
)
from csmoe_data.sampling.geo import FootprintIndex, footprint_circles
from csmoe_data.sampling.options import SamplingOptions
from csmoe_data.sampling.splits import blocked_splits, refill_borders
from csmoe_data.sampling.strategies import SamplingContext, Strategy, get_strategy, group_rng

#: the split every row gets when no ``split`` option is given
DEFAULT_SPLIT = "train"
#: refill rounds after ``min_distance`` rejections
MAX_DISTANCE_ROUNDS = 12


def pool_checksum(gdf: pd.DataFrame) -> str:
    """Stable hash of a pool's ids and descriptor columns: ``sha256:<hex>``.

    Covers, in row order, ``patch_id`` (or the index when there is none), the class columns
    (``lc_<code>``, ``kg_<symbol>``: names and float32 values, NaN canonicalised),
    ``lc_valid_frac``, ``kg_valid_frac``, ``lc_major`` and ``kg_major``; not the geometry or
    other attributes. When sampling from a file, callers may pass the file's sha256 to
    :func:`sample_manifest` instead (the metadata then says ``pool_checksum_of: file``).
    """
    digest = hashlib.sha256()
    ids = gdf[schema.PATCH_ID] if schema.PATCH_ID in gdf.columns else pd.Series(gdf.index)
    digest.update("\x1f".join(ids.astype(str).tolist()).encode("utf-8"))
    cols = class_columns(gdf.columns) + [
        c for c in (schema.LC_VALID_FRAC, schema.KG_VALID_FRAC) if c in gdf.columns
    ]
    digest.update("\x1f".join(cols).encode("utf-8"))
    if cols:
        values = descriptor_matrix(gdf, cols)  # NaN -> 0 ...
        nan = np.zeros_like(values, dtype=bool)
        for j, c in enumerate(cols):  # ... so record where NaN were, to tell 0 from missing
            nan[:, j] = gdf[c].isna().to_numpy()
        digest.update(np.ascontiguousarray(values, dtype="<f4").tobytes())
        digest.update(np.packbits(nan).tobytes())
    for c in (schema.LC_MAJOR, schema.KG_MAJOR):
        if c in gdf.columns:
            digest.update(c.encode())
            digest.update("\x1f".join(gdf[c].astype(object).map(str).tolist()).encode("utf-8"))
    return "sha256:" + digest.hexdigest()


_pool_checksum = pool_checksum  # sample_manifest's argument shadows the name


def check_options(options: SamplingOptions) -> None:
    """Check sampling options before any work (the build describes every footprint first).

    Raises:
        CsmoeDataError: on a bad option value (the option named).
    """
    _validate(options)


def _validate(options: SamplingOptions) -> Strategy:
    strategy = get_strategy(options.strategy)
    if options.seed < 0:  # numpy's generators take no negative seed (it was a traceback)
        raise CsmoeDataError(f"--seed must be >= 0, not {options.seed}")
    if options.n is not None and options.n < 0:
        raise CsmoeDataError(f"--n must be >= 0, not {options.n}")
    if not np.isfinite(options.alpha) or options.alpha < 0:
        raise CsmoeDataError(f"--alpha must be >= 0, not {options.alpha}")
    if not 0.0 <= options.min_valid_frac <= 1.0:
        raise CsmoeDataError(f"--min-valid-frac must lie in [0, 1], not {options.min_valid_frac}")
    if options.min_distance is not None and not (options.min_distance >= 0):
        raise CsmoeDataError(f"--min-distance must be >= 0 metres, not {options.min_distance}")
    if options.climate_level not in ("symbol", "group"):
        raise CsmoeDataError(
            f"--climate-level must be symbol or group, not {options.climate_level!r}"
        )
    if options.split is not None:
        total = sum(options.split.values())
        if not options.split or abs(total - 1.0) > 1e-6 or min(options.split.values()) < 0:
            raise CsmoeDataError(f"split fractions must be >= 0 and sum to 1, not {options.split}")
    if options.split_block_size is not None and not (
        np.isfinite(options.split_block_size) and options.split_block_size > 0
    ):
        raise CsmoeDataError(
            f"--split-block-size must be > 0 metres, not {options.split_block_size}"
        )
    return strategy


def eligibility(
    pool: pd.DataFrame, options: SamplingOptions, source: str = "--where"
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Which pool rows are eligible, and how many rows fail each condition.

    The conditions of :func:`csmoe_data.sampling.eligibility.conditions`: valid fractions, each
    top-level ``and``-ed part of ``where`` (parsed by :mod:`csmoe_data.where`, never evaluated as
    code) and coordinates.

    Args:
        pool: the pool rows.
        options: ``min_valid_frac`` and ``where`` are used.
        source: what the ``where`` came from, for messages (``--where``, a manifest's metadata).

    Returns:
        The positions of the eligible rows, and ``(condition, rows failing it)`` per condition
        (a row may fail several).

    Raises:
        WhereError: a bad ``where`` expression (one line naming the offending token).
    """
    conds = conditions(pool, options, source)
    keep = np.ones(len(pool), dtype=bool)
    for cond in conds:
        keep &= cond.passed
    return np.flatnonzero(keep), [(c.description, int((~c.passed).sum())) for c in conds]


def describe_eligibility(pool_rows: int, eligible: int, breakdown: list[tuple[str, int]]) -> str:
    """``"12 of 400 pool rows are eligible (lc_valid_frac >= 0.5: 300 fail; cloud < 0.2: 95 fail)"``."""
    text = f"{eligible:,} of {pool_rows:,} pool rows are eligible"
    if breakdown:
        text += " (" + "; ".join(f"{cond}: {count:,} fail" for cond, count in breakdown) + ")"
    return text


def _filter(pool: pd.DataFrame, options: SamplingOptions) -> np.ndarray:
    """Positions of the pool rows that pass ``min_valid_frac`` and ``where``."""
    return eligibility(pool, options)[0]


def _interleave(picks: dict[int, np.ndarray], seed: int) -> np.ndarray:
    """Candidates ordered by rank inside their group, groups in a seeded order at each rank.

    So under ``min_distance`` every group's first pick is considered before any group's second.
    """
    if not picks:
        return np.empty(0, dtype=np.int64)
    groups = np.array(sorted(picks), dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1A7E]))
    tie = rng.permutation(len(groups))
    rows, ranks, ties = [], [], []
    for t, g in zip(tie, groups, strict=True):
        p = picks[int(g)]
        rows.append(p)
        ranks.append(np.arange(len(p)))
        ties.append(np.full(len(p), t))
    rows_a, ranks_a, ties_a = np.concatenate(rows), np.concatenate(ranks), np.concatenate(ties)
    return rows_a[np.lexsort((ties_a, ranks_a))]


def _select(
    strategy: Strategy,
    ctx: SamplingContext,
    codes: np.ndarray,
    names: list[str],
    counts: np.ndarray,
    geoms: np.ndarray | None,
    show: bool = False,
) -> np.ndarray:
    """Run the picks (with ``min_distance`` refills when asked); returns context row indices."""
    options = ctx.options
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    members = [order[bounds[g] : bounds[g + 1]] for g in range(len(names))]
    if not options.min_distance or geoms is None:
        picked = []
        with progress_bar("sampling strata", int(counts.sum()), "picks", show) as advance:
            for g in range(len(names)):
                if counts[g] > 0:
                    rng = group_rng(options.seed, names[g])
                    picked.append(strategy.pick(ctx, members[g], int(counts[g]), rng))
                    advance(int(counts[g]))
        if not picked:
            return np.empty(0, dtype=np.int64)
        return strategy.refine(ctx, np.concatenate(picked), codes)

    lon, lat, radius = footprint_circles(geoms)
    index = FootprintIndex(lon, lat, radius, options.min_distance)
    available = np.ones(len(codes), dtype=bool)
    want = counts.astype(np.int64).copy()
    accepted: list[np.ndarray] = []
    for round_ in range(MAX_DISTANCE_ROUNDS):
        picks: dict[int, np.ndarray] = {}
        for g in np.flatnonzero(want > 0).tolist():
            rows = members[g][available[members[g]]]
            if len(rows):
                picks[int(g)] = strategy.pick(
                    ctx, rows, int(want[g]), group_rng(options.seed, names[g], round_)
                )
        if round_ == 0 and picks:  # the global pass sees the first, complete set of picks
            keys = sorted(picks)
            flat = strategy.refine(ctx, np.concatenate([picks[g] for g in keys]), codes)
            cuts = np.cumsum([len(picks[g]) for g in keys])[:-1]
            picks = dict(zip(keys, np.split(flat, cuts), strict=True))
        candidates = _interleave(picks, options.seed + round_)
        done = np.concatenate(accepted) if accepted else np.empty(0, dtype=np.int64)
        kept = index.thin(candidates, done)
        accepted.append(kept)
        available[candidates] = False
        if len(kept):
            free = np.flatnonzero(available)
            for hits in index.conflicts(kept, free):
                available[hits] = False
        want -= np.bincount(codes[kept], minlength=len(names))
        # groups that ran dry pass their deficit to groups that still have room
        room = np.bincount(codes[available], minlength=len(names))
        dry = (want > 0) & (room == 0)
        if dry.any():
            deficit = int(want[dry].sum())
            want[dry] = 0
            spare = np.maximum(room - want, 0)
            want += allocate(spare, deficit, options.alpha)
        if want.sum() == 0 or room.sum() == 0:
            break
    return np.concatenate(accepted) if accepted else np.empty(0, dtype=np.int64)


#: candidates considered per removed split-border row (nearest first)
REFILL_CANDIDATES = 64
#: a stratum larger than this is subsampled (seeded) before its nearest rows are found
REFILL_MAX_MEMBERS = 8192


def _stratum_keys(ctx: SamplingContext, labels: np.ndarray) -> np.ndarray:
    """One integer per row for its (climate, land cover) stratum and strategy group together.

    A replacement at a split border keeps both, so neither the strata coverage nor the
    strategy's groups change.
    """
    # hashed, not sorted: 1 M string labels take ~0.1 s this way
    strata, _ = pd.factorize(pd.Series(np.asarray(ctx.strata, dtype=object)))
    groups, _ = pd.factorize(pd.Series(np.asarray(labels, dtype=object)))
    key, _ = pd.factorize(strata.astype(np.int64) * (int(groups.max()) + 1) + groups)
    return np.asarray(key, dtype=np.int64)


def _replacement_candidates(
    ctx: SamplingContext, key: np.ndarray, chosen: np.ndarray, seed: int
) -> Callable[[int], np.ndarray]:
    """For a chosen position, the free pool rows of its stratum key nearest in descriptor space."""
    free = np.ones(len(key), dtype=bool)
    free[chosen] = False
    members: dict[int, np.ndarray] = {}

    def candidates(pos: int) -> np.ndarray:
        row = int(chosen[pos])
        k = int(key[row])
        if k not in members:
            members[k] = np.flatnonzero((key == k) & free)
        pool = members[k]
        if len(pool) > REFILL_MAX_MEMBERS:
            rng = np.random.default_rng(np.random.SeedSequence([seed, row, 0x5EF1]))
            pool = np.sort(rng.choice(pool, REFILL_MAX_MEMBERS, replace=False))
        if len(pool) == 0:
            return pool
        d = ((ctx.X[pool] - ctx.X[row]) ** 2).sum(axis=1)
        if len(pool) > REFILL_CANDIDATES:
            near = np.argpartition(d, REFILL_CANDIDATES - 1)[:REFILL_CANDIDATES]
        else:
            near = np.arange(len(pool))
        return pool[near[np.lexsort((pool[near], d[near]))]]

    return candidates


def _distance_check(
    geoms: np.ndarray, min_distance: float | None
) -> Callable[[int, np.ndarray], bool] | None:
    """``min_distance`` as a test of one replacement against the kept rows (None: no test)."""
    if not min_distance:
        return None
    lon, lat, radius = footprint_circles(geoms)
    index = FootprintIndex(lon, lat, radius, min_distance)
    return index.clear_of


def sample_manifest(
    pool: gpd.GeoDataFrame | pd.DataFrame,
    options: SamplingOptions,
    pool_checksum: str | None = None,
    progress: bool | None = None,
) -> tuple[gpd.GeoDataFrame | pd.DataFrame, dict[str, Any]]:
    """Select rows of a descriptor pool.

    Args:
        pool: descriptor manifest rows (``lc_*``, ``kg_*`` columns; ``geometry`` in EPSG:4326
            needed only for ``min_distance`` and ``split``).
        options: what to select (see :class:`~csmoe_data.sampling.options.SamplingOptions`).
        pool_checksum: checksum to record for the pool, e.g. the sha256 of the pool file;
            default: :func:`pool_checksum` of the rows (ids + descriptors).
        progress: progress bar over the picks; None: only when stderr is a terminal and the
            pool has at least 200,000 rows.

    Returns:
        The selected rows in pool order (index reset) with ``stratum`` and ``split`` columns,
        and the ``sampling`` metadata entry (strategy, options, seed, pool size, pool
        checksum, counts).

    Raises:
        CsmoeDataError: on bad options, a bad ``where`` expression, or a pool without the
            columns the options need.
    """
    strategy = _validate(options)
    if not class_columns(pool.columns):
        raise CsmoeDataError(
            "the pool has no descriptor columns (lc_<code> / kg_<symbol>); is it a descriptor manifest?"
        )
    needs_geometry = bool(options.min_distance) or options.split is not None
    geoms = None
    if needs_geometry:
        if not isinstance(pool, gpd.GeoDataFrame) or pool.geometry.name not in pool.columns:
            raise CsmoeDataError("min_distance and split need the pool's footprint geometry")
        if pool.crs is not None and pool.crs.to_epsg() != 4326:
            pool = pool.to_crs(4326)
    checksum_of = "file" if pool_checksum else "ids+descriptors"
    checksum = pool_checksum or _pool_checksum(pool)

    positions, breakdown = eligibility(pool, options)
    if len(positions) == 0:
        raise CsmoeDataError("no row to select: " + describe_eligibility(len(pool), 0, breakdown))
    rows = pool.iloc[positions].reset_index(drop=True)
    groups_map = (
        load_landcover_groups(options.landcover_groups) if options.landcover_groups else None
    )
    columns = class_columns(rows.columns)
    ctx = SamplingContext(
        rows=rows,
        X=descriptor_matrix(rows, columns),
        columns=columns,
        strata=strata_labels(rows, options.climate_level, groups_map),
        options=options,
    )
    n = len(rows) if options.n is None else int(options.n)
    codes, names = strategy.groups(ctx, n)
    sizes = (
        np.bincount(codes, minlength=len(names))
        if len(codes)
        else np.zeros(len(names), dtype=np.int64)
    )
    weights = strategy.allocation_weights(ctx, codes, len(names)) if len(codes) else None
    alpha = options.alpha if strategy.uses_alpha else 1.0
    planned = allocate(sizes, n, alpha, weights)
    counts = strategy.adjust_counts(ctx, codes, planned) if len(codes) else planned
    if needs_geometry:
        geoms = np.asarray(rows.geometry.values, dtype=object)
    show = progress if progress is not None else (len(rows) >= 200_000 and sys.stderr.isatty())
    chosen = np.sort(_select(strategy, ctx, codes, names, counts, geoms, bool(show)))

    if len(chosen) == 0:
        raise CsmoeDataError(
            f"no row selected (--n {options.n}): "
            + describe_eligibility(len(pool), len(rows), breakdown)
        )
    labels = strategy.stratum_labels(ctx, codes, names)
    split_report = None
    if options.split is not None and geoms is not None:
        keys = _stratum_keys(ctx, labels)
        # the only selected row of a stratum stays where it can: its loss would lose the stratum
        sole = np.bincount(keys[chosen], minlength=int(keys.max()) + 1)[keys[chosen]] == 1
        split, split_report = blocked_splits(
            geoms[chosen], options.split, options.seed, options.split_block_size, protect=sole
        )
        kept = np.array([s is not None for s in split], dtype=bool)
        if not kept.all():  # footprints touching another split leave the sample ...
            # ... and other rows of their strata take their places where the pool allows
            added, added_split = refill_borders(
                geoms,
                chosen,
                split,
                split_report,
                _replacement_candidates(ctx, keys, chosen, options.seed),
                _distance_check(geoms, options.min_distance),
            )
            chosen = np.concatenate([chosen[kept], added])
            split = np.concatenate([split[kept], added_split])
            order = np.argsort(chosen, kind="stable")  # output rows keep the pool's order
            chosen, split = chosen[order], split[order]
    else:
        split = np.full(len(chosen), DEFAULT_SPLIT, dtype=object)
    out = rows.iloc[chosen].reset_index(drop=True)
    out[schema.STRATUM] = pd.array(labels[chosen].astype(str), dtype="string")
    out[schema.SPLIT] = pd.array(split.astype(str), dtype="string")

    selected_strata = len(set(out[schema.STRATUM].tolist())) if len(out) else 0
    metadata: dict[str, Any] = {
        "strategy": options.strategy,
        "options": options.to_metadata(),
        "seed": options.seed,
        "pool_size": int(len(pool)),
        "eligible": int(len(rows)),
        "selected": int(len(out)),
        "requested": None if options.n is None else int(options.n),
        "ineligible": {cond: count for cond, count in breakdown},
        "budget_moved": int(np.abs(counts - planned).sum() // 2),
        "groups": int((sizes > 0).sum()),
        "groups_selected": int(selected_strata),
        "pool_checksum": checksum,
        "pool_checksum_of": checksum_of,
        "split_counts": {
            str(k): int(v) for k, v in out[schema.SPLIT].value_counts(sort=False).items()
        },
        "split_block_m": (
            round(split_report.block_size_m, 3) if split_report is not None else None
        ),
        "split_report": split_report.to_metadata() if split_report is not None else None,
        "strategy_params": strategy.params(),
    }
    return out, metadata
