"""Which pool rows the sampler may choose, and why the others may not.

A row is eligible when it passes every condition, checked in this order:

- ``lc_valid_frac >= min_valid_frac`` and ``kg_valid_frac >= min_valid_frac`` (for each column
  the pool has, when ``min_valid_frac > 0``; a NaN fraction fails);
- the ``where`` filter, parsed by :mod:`csmoe_data.where` (never evaluated as code), one condition
  per top-level ``and``-ed part;
- coordinates: a footprint geometry that is present, not empty and inside the lon/lat ranges
  (longitude -180..180, latitude -90..90) of EPSG:4326 (checked when the pool has geometry).

The sampler (:func:`csmoe_data.sampling.sample_manifest`) and ``csmoe-data stats`` use the same
function, so "eligible" means the same rows in both; :func:`eligibility_breakdown` says how many
rows fail each condition (a 0..360 climate map that drops half the world shows up here as
``kg_valid_frac`` failures).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely

from csmoe_data.geometry import beyond_the_globe
from csmoe_data.sampling.options import SamplingOptions


@dataclass(frozen=True)
class Condition:
    """One eligibility condition and the rows that pass it.

    Attributes:
        name: short key (``lc_valid_frac``, ``kg_valid_frac``, ``where``, ``coordinates``).
        description: the condition as a person reads it (``lc_valid_frac >= 0.5``).
        passed: boolean mask over the pool rows.
    """

    name: str
    description: str
    passed: np.ndarray


def valid_coordinates(pool: pd.DataFrame) -> np.ndarray | None:
    """Rows whose footprint is present, non-empty and inside EPSG:4326's ranges (None: no geometry).

    Args:
        pool: manifest rows; a ``geometry`` column of shapely geometries in EPSG:4326.
    """
    if "geometry" not in pool.columns:
        return None
    geoms = np.asarray(pool["geometry"].values, dtype=object)
    present = np.array([g is not None for g in geoms], dtype=bool)
    ok = present.copy()
    if present.any():
        idx = np.flatnonzero(present)
        sub = geoms[idx]
        bounds = shapely.bounds(sub)
        inside = ~shapely.is_empty(sub) & np.isfinite(bounds).all(axis=1) & ~beyond_the_globe(sub)
        ok[idx] = inside
    return ok


def conditions(
    pool: pd.DataFrame, options: SamplingOptions, source: str = "--where"
) -> list[Condition]:
    """Every eligibility condition that applies to ``pool`` under ``options``, in order.

    Args:
        pool: the pool rows.
        options: ``min_valid_frac`` and ``where`` are used.
        source: what the ``where`` came from, named in its errors (``--where``, or the where
            recorded in a manifest's metadata).

    Raises:
        WhereError: if the ``where`` filter is not valid or does not apply to this pool (a
            :class:`CsmoeDataError`, one line naming the offending token).
    """
    out: list[Condition] = []
    if options.min_valid_frac > 0:
        for col in ("lc_valid_frac", "kg_valid_frac"):
            if col in pool.columns:
                v = pd.to_numeric(pool[col], errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
                passed = np.nan_to_num(v, nan=-1.0) >= options.min_valid_frac
                out.append(Condition(col, f"{col} >= {options.min_valid_frac:g}", passed))
    if options.where:
        from csmoe_data.where import parse_where

        for text, passed in parse_where(options.where, source).condition_masks(pool):
            out.append(Condition("where", text, passed))
    coords = valid_coordinates(pool)
    if coords is not None:
        out.append(
            Condition("coordinates", "footprint present, inside lon -180..180, lat -90..90", coords)
        )
    return out


def eligible_positions(
    pool: pd.DataFrame, options: SamplingOptions, source: str = "--where"
) -> np.ndarray:
    """Positions of the pool rows that pass every condition of :func:`conditions`.

    Raises:
        CsmoeDataError: if the ``where`` filter does not apply to this pool.
    """
    keep = np.ones(len(pool), dtype=bool)
    for cond in conditions(pool, options, source):
        keep &= cond.passed
    return np.flatnonzero(keep)


def eligibility_breakdown(
    pool: pd.DataFrame, options: SamplingOptions, source: str = "--where"
) -> dict[str, Any]:
    """How many pool rows fail each condition (a row may fail several).

    Returns:
        ``{"pool_rows", "eligible", "ineligible", "conditions": [{"name", "condition",
        "failing", "failing_only_this"}, ...]}``; ``failing_only_this`` counts the rows that
        fail this condition and no other.

    Raises:
        CsmoeDataError: if the ``where`` filter does not apply to this pool.
    """
    conds = conditions(pool, options, source)
    n = len(pool)
    failed = np.column_stack([~c.passed for c in conds]) if conds else np.zeros((n, 0), dtype=bool)
    n_failed = failed.sum(axis=1) if conds else np.zeros(n, dtype=np.int64)
    eligible = int((n_failed == 0).sum())
    return {
        "pool_rows": int(n),
        "eligible": eligible,
        "ineligible": int(n - eligible),
        "conditions": [
            {
                "name": c.name,
                "condition": c.description,
                "failing": int(failed[:, j].sum()),
                "failing_only_this": int((failed[:, j] & (n_failed == 1)).sum()),
            }
            for j, c in enumerate(conds)
        ],
    }
