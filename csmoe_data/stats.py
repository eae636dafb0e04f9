"""Quality figures of a sampled manifest against its pool (issue 3 §2).

Definitions (the same for every strategy):

- strata = (``kg_major``, ``lc_major``) at full symbol/code level (a null majority is its own
  ``none`` label);
- descriptor = land-cover fractions ⊕ climate fractions (NaN as 0), Euclidean distance; the
  class columns are the pool's (a class missing in the sample counts as 0 there);
- ``strata_coverage``: share of the pool's strata with at least one selected row;
- ``kcenter_mean_radius`` / ``kcenter_max_radius``: mean / max over pool rows of the distance
  to the nearest selected row (exact nearest neighbours, scikit-learn, chunked);
- ``landcover_js_divergence`` / ``climate_js_divergence``: Jensen-Shannon divergence, base 2
  (so in [0, 1]), between the mean fraction vectors of sample and pool, each normalised to sum 1;
- ``normalized_entropy``: Shannon entropy of the sample's strata distribution divided by
  log(number of pool strata) (1.0 when the pool has a single stratum). The normaliser is the
  size of the distribution's alphabet, the pool's strata, which is the standard normalised
  (Shannon) entropy / efficiency: 1 means the sample spreads evenly over every stratum of the
  pool, and missing strata lower it. Pielou's evenness divides by log(strata present in the
  sample) instead, which would reward a sample that covers few strata evenly; it is reported
  as the extra ``strata_evenness`` (1.0 when the sample holds a single stratum);
- ``class_counts``: per class column (``lc_<code>``, ``kg_<symbol>``), the number of selected
  rows where that class covers >= 5%.

Each figure has a better direction (:data:`BETTER`): coverage, entropy and evenness are better
higher (a more diverse sample), radii lower (the pool is closer to some selected row: better
covered), divergences lower (the sample's class mix closer to the pool's: more
representative). A descriptor-driven sample trades some representativeness for diversity, so its
divergences may be higher than a random sample's by design; :func:`random_baseline` and
:func:`compare_figures` put a sample beside a seeded random sample of the same size from the
same eligible pool rows, which is the comparison that says whether the sample is better.

Without a pool the sample is its own pool (coverage 1, radii 0, divergences 0); the CLI looks
for the pool path in the manifest's metadata first (see :func:`pool_path_from_metadata`).

The pool a sample is judged against should be the rows the sampler could choose: a global grid
pool holds ocean cells that ``min_valid_frac`` drops, and counting them would make every
strategy miss a "no climate" stratum. :func:`eligible_pool` applies the ``min_valid_frac`` and
``where`` recorded in the sample's ``sampling`` metadata; the CLI does this by default.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csmoe_common.divergence import js_divergence
from csmoe_common.progress import progress_bar
from csmoe_data.sampling.features import (
    climate_columns,
    descriptor_matrix,
    landcover_columns,
    strata_labels,
)

#: a class "covers" a row at this fraction or more, for ``class_counts``
CLASS_PRESENCE = 0.05
#: pool rows per nearest-neighbour query chunk (bounds memory on million-row pools)
NN_CHUNK = 65_536
#: figure -> its better direction ("higher" or "lower"), see the module docstring
BETTER: dict[str, str] = {
    "strata_coverage": "higher",
    "kcenter_mean_radius": "lower",
    "kcenter_max_radius": "lower",
    "landcover_js_divergence": "lower",
    "climate_js_divergence": "lower",
    "normalized_entropy": "higher",
    "strata_evenness": "higher",
}
#: what a better value of each figure means, for reports
MEANING: dict[str, str] = {
    "strata_coverage": "more strata represented",
    "kcenter_mean_radius": "pool rows closer to a selected row (mean)",
    "kcenter_max_radius": "worst-covered pool row closer",
    "landcover_js_divergence": "land-cover mix closer to the pool's",
    "climate_js_divergence": "climate mix closer to the pool's",
    "normalized_entropy": "spread over more of the pool's strata",
    "strata_evenness": "more even over the strata present",
}


def nearest_distances(
    pool_X: np.ndarray, sample_X: np.ndarray, advance: Callable[[int], None] | None = None
) -> np.ndarray:
    """Exact Euclidean distance from every pool row to its nearest sample row.

    Args:
        pool_X: descriptor matrix of the pool.
        sample_X: descriptor matrix of the sample.
        advance: called with the number of pool rows done after each chunk (progress bars).
    """
    from sklearn.neighbors import NearestNeighbors

    if len(sample_X) == 0:
        return np.full(len(pool_X), np.inf)
    nn = NearestNeighbors(n_neighbors=1).fit(sample_X.astype(np.float64))
    out = np.empty(len(pool_X))
    for start in range(0, len(pool_X), NN_CHUNK):
        chunk = pool_X[start : start + NN_CHUNK].astype(np.float64)
        d, _ = nn.kneighbors(chunk)
        out[start : start + len(chunk)] = d[:, 0]
        if advance is not None:
            advance(len(chunk))
    return out


def _normalized_entropy(labels: np.ndarray, n_strata: int | None = None) -> float:
    """Shannon entropy of the labels / log(n_strata) (default: the distinct labels present)."""
    if len(labels) == 0:
        return 0.0
    _, counts = np.unique(labels.astype(str), return_counts=True)
    n_strata = len(counts) if n_strata is None else n_strata
    if n_strata <= 1:
        return 1.0
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(n_strata))


def _check_descriptors(cols: list[str], *frames: pd.DataFrame) -> None:
    """Refuse class fractions that are not numbers (text fractions would count as zeros).

    Raises:
        CsmoeDataError: an ``lc_<code>``/``kg_<class>`` column that is not numeric.
    """
    from csmoe_data.errors import CsmoeDataError

    for df in frames:
        for col in cols:
            if col in df.columns and not pd.api.types.is_numeric_dtype(df[col].dtype):
                raise CsmoeDataError(
                    f"column {col} holds {df[col].dtype} values, not fractions (numbers)"
                )


def compute_stats(
    sample: pd.DataFrame, pool: pd.DataFrame | None = None, progress: bool | None = None
) -> dict[str, Any]:
    """Quality figures of ``sample`` against ``pool`` (see the module docstring).

    Args:
        sample: the selected rows (a manifest).
        pool: the rows they were chosen from; default: the sample itself.
        progress: show a progress bar for the nearest-neighbour search; None: only when
            stderr is a terminal and the search is large (pool x sample >= 1e9).

    Returns:
        A JSON-serialisable dict with ``strata_coverage``, ``kcenter_mean_radius``,
        ``kcenter_max_radius``, ``landcover_js_divergence``, ``climate_js_divergence``,
        ``normalized_entropy``, ``class_counts`` and extras: ``strata_evenness``, ``rows``, ``pool_rows``,
        ``strata_pool``, ``strata_sample``, ``splits`` (rows per split), ``landcover_mean``
        and ``climate_mean`` (mean fractions of sample and pool, per class).
    """
    own_pool = pool is None
    if pool is None:
        pool = sample
    lc_cols = landcover_columns(pool.columns) or landcover_columns(sample.columns)
    kg_cols = climate_columns(pool.columns) or climate_columns(sample.columns)
    cols = lc_cols + kg_cols
    _check_descriptors(cols, sample, pool)
    pool_X = descriptor_matrix(pool, cols)
    sample_X = descriptor_matrix(sample, cols)

    pool_strata = strata_labels(pool)
    sample_strata = strata_labels(sample)
    pool_set = set(pool_strata.tolist())
    covered = pool_set & set(sample_strata.tolist())
    coverage = len(covered) / len(pool_set) if pool_set else 0.0

    if own_pool:
        radii = np.zeros(len(pool_X))
    else:
        big = len(pool_X) * len(sample_X) >= 1e9
        show = progress if progress is not None else (big and sys.stderr.isatty())
        with progress_bar("nearest selected row", len(pool_X), "pool rows", bool(show)) as advance:
            radii = nearest_distances(pool_X, sample_X, advance)
    nl = len(lc_cols)

    def mean(X: np.ndarray) -> np.ndarray:
        return X.mean(axis=0) if len(X) else np.zeros(X.shape[1])

    lc_sample, lc_pool = mean(sample_X[:, :nl]), mean(pool_X[:, :nl])
    kg_sample, kg_pool = mean(sample_X[:, nl:]), mean(pool_X[:, nl:])

    class_counts = {c: int((sample_X[:, j] >= CLASS_PRESENCE).sum()) for j, c in enumerate(cols)}
    splits: dict[str, int] = {}
    if "split" in sample.columns:
        counts = sample["split"].astype(str).value_counts()
        splits = {k: int(counts[k]) for k in split_order(counts.index)}

    def finite(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    return {
        "strata_coverage": float(coverage),
        "kcenter_mean_radius": finite(radii.mean()) if len(radii) else None,
        "kcenter_max_radius": finite(radii.max()) if len(radii) else None,
        "landcover_js_divergence": js_divergence(lc_sample, lc_pool) if nl else None,
        "climate_js_divergence": js_divergence(kg_sample, kg_pool) if kg_cols else None,
        "normalized_entropy": _normalized_entropy(sample_strata, len(pool_set)),
        "strata_evenness": _normalized_entropy(sample_strata),
        "class_counts": class_counts,
        "rows": int(len(sample)),
        "pool_rows": int(len(pool)),
        "pool_is_sample": bool(own_pool),
        "strata_pool": len(pool_set),
        "strata_sample": len(set(sample_strata.tolist())),
        "splits": splits,
        "landcover_mean": {
            c: {"sample": float(lc_sample[j]), "pool": float(lc_pool[j])}
            for j, c in enumerate(lc_cols)
        },
        "climate_mean": {
            c: {"sample": float(kg_sample[j]), "pool": float(kg_pool[j])}
            for j, c in enumerate(kg_cols)
        },
    }


#: how the ``where`` read from a manifest's metadata is named in error messages
RECORDED_WHERE = "recorded sampling where"


def eligibility_options(sampling: Mapping[str, Any] | None) -> Any:
    """The :class:`~csmoe_data.sampling.SamplingOptions` (filters only) of a ``sampling`` entry.

    An entry without options gives no valid-fraction or ``where`` filter (coordinates are
    still checked). The entry comes from a file: its values are checked, and its ``where`` is
    only ever parsed (:mod:`csmoe_data.where`; pass :data:`RECORDED_WHERE` as the source).

    Raises:
        CsmoeDataError: a recorded ``where`` that is not text, or a ``min_valid_frac`` that is not a
            fraction.
    """
    from csmoe_data.errors import CsmoeDataError
    from csmoe_data.sampling.options import SamplingOptions

    options = (sampling or {}).get("options") if isinstance(sampling, Mapping) else None
    if not isinstance(options, Mapping):
        return SamplingOptions(min_valid_frac=0.0)
    where = options.get("where") or None
    if where is not None and not isinstance(where, str):
        raise CsmoeDataError(f"the manifest's {RECORDED_WHERE} is not text")
    try:
        frac = float(options.get("min_valid_frac", 0.0) or 0.0)
    except (TypeError, ValueError):
        frac = math.nan
    if not 0.0 <= frac <= 1.0:
        raise CsmoeDataError(
            f"the manifest's recorded min_valid_frac {options.get('min_valid_frac')!r} is not a "
            "fraction in [0, 1]"
        )
    return SamplingOptions(min_valid_frac=frac, where=where)


def eligible_pool(pool: pd.DataFrame, sampling: Mapping[str, Any] | None) -> pd.DataFrame:
    """The pool rows the sampler could choose under a ``sampling`` entry's options.

    Valid fractions, ``where`` and coordinates, exactly as the sampler filters them
    (:mod:`csmoe_data.sampling.eligibility`).

    The recorded ``where`` is untrusted text from a file: it is parsed by :mod:`csmoe_data.where`
    (the same language as ``--where``), never evaluated as code.

    Args:
        pool: the full pool.
        sampling: the ``sampling`` metadata entry of the sample (its ``options``).

    Raises:
        CsmoeDataError: if the recorded ``where`` expression is not valid or does not apply to this
            pool, or the recorded ``min_valid_frac`` is not a fraction.
    """
    from csmoe_data.sampling.eligibility import eligible_positions

    keep = eligible_positions(pool, eligibility_options(sampling), RECORDED_WHERE)
    return pool if len(keep) == len(pool) else pool.iloc[keep]


def random_baseline(pool: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """A seeded uniform random sample of ``n`` pool rows (all rows when the pool is smaller).

    Args:
        pool: the eligible pool rows (the same rows the sample was chosen from).
        n: rows to draw (the sample's size).
        seed: random seed; the same pool, ``n`` and seed give the same rows.
    """
    n = max(0, min(int(n), len(pool)))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xBA5E]))
    rows = np.sort(rng.choice(len(pool), size=n, replace=False))
    return pool.iloc[rows]


def compare_figures(figures: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """Each figure of :data:`BETTER`, sample beside baseline, with the better one named.

    Returns:
        figure -> ``{"sample", "baseline", "better": "higher"|"lower", "winner":
        "sample"|"baseline"|"tie"|None, "meaning"}`` (``winner`` None when a value is missing).
    """
    out: dict[str, Any] = {}
    for key, direction in BETTER.items():
        a, b = figures.get(key), baseline.get(key)
        winner: str | None = None
        if a is not None and b is not None:
            if abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b)):
                winner = "tie"
            elif (a > b) == (direction == "higher"):
                winner = "sample"
            else:
                winner = "baseline"
        out[key] = {
            "sample": a,
            "baseline": b,
            "better": direction,
            "winner": winner,
            "meaning": MEANING[key],
        }
    return out


def split_order(names: Any) -> list[str]:
    """Split names in reading order: train, val, test, then the others by name."""
    rank = {"train": 0, "val": 1, "validation": 1, "test": 2}
    return sorted({str(n) for n in names}, key=lambda s: (rank.get(s, 3), s))


def split_distributions(sample: pd.DataFrame, pool: pd.DataFrame | None = None) -> dict[str, Any]:
    """Class distribution of every split: rows, mean fractions and majority-class rows.

    Args:
        sample: manifest rows with a ``split`` column (without one: empty result).
        pool: the pool whose class columns to use (default: the sample's).

    Returns:
        split -> ``{"rows", "landcover_mean": {col: mean}, "climate_mean": {col: mean},
        "lc_major": {code: rows}, "kg_major": {symbol: rows}}``, splits in name order.
    """
    if "split" not in sample.columns or len(sample) == 0:
        return {}
    ref = sample if pool is None else pool
    lc_cols = landcover_columns(ref.columns) or landcover_columns(sample.columns)
    kg_cols = climate_columns(ref.columns) or climate_columns(sample.columns)
    split = sample["split"].astype(str).to_numpy()
    out: dict[str, Any] = {}
    for name in split_order(split.tolist()):
        part = sample[split == name]
        entry: dict[str, Any] = {"rows": int(len(part))}
        for key, cols in (("landcover_mean", lc_cols), ("climate_mean", kg_cols)):
            X = descriptor_matrix(part, cols)
            entry[key] = {c: float(X[:, j].mean()) for j, c in enumerate(cols)}
        for major in ("lc_major", "kg_major"):
            if major in part.columns:
                counts = part[major].dropna().astype(str).value_counts()
                entry[major] = {str(k): int(v) for k, v in sorted(counts.items())}
        out[name] = entry
    return out


def pool_path_from_metadata(
    metadata: Mapping[str, Any],
    manifest_path: str | Path | None = None,
    refused: list[Path] | None = None,
) -> Path | None:
    """Where the pool of a sampled manifest lies, if its metadata says so and the file exists.

    Looks at ``pool`` (written by ``build-manifest --pool``), ``sampling.pool_path`` /
    ``sampling.pool``, then ``inputs.pool`` (each a path or a ``{"path": ...}`` object);
    relative paths are taken from the manifest's folder. A manifest is untrusted input: a path
    that leads outside the manifest's folder (absolute, ``..``, a symlink) is not followed
    (pass the pool explicitly to use it); such paths are appended to ``refused`` when given.
    Without ``manifest_path`` nothing is followed.
    """
    if manifest_path is None:
        return None
    folder = Path(manifest_path).resolve().parent
    candidates: list[Any] = [metadata.get("pool")] if isinstance(metadata, Mapping) else []
    sampling = metadata.get("sampling") if isinstance(metadata, Mapping) else None
    if isinstance(sampling, Mapping):
        candidates += [sampling.get("pool_path"), sampling.get("pool")]
    inputs = metadata.get("inputs") if isinstance(metadata, Mapping) else None
    if isinstance(inputs, Mapping):
        candidates.append(inputs.get("pool"))
    for c in candidates:
        if isinstance(c, Mapping):
            c = c.get("path")
        if not isinstance(c, str) or not c or "\x00" in c:
            continue
        p = Path(c)
        if not p.is_absolute():
            p = folder / p
        try:
            resolved = p.resolve()
        except (OSError, RuntimeError):
            continue
        if not resolved.is_relative_to(folder):
            if refused is not None:
                refused.append(p)
            continue
        if resolved.is_file():
            return resolved
    return None
