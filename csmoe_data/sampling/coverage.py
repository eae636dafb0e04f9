"""Pick k rows that cover a set of descriptor vectors (inside one stratum).

Two classic answers and their mix:

- :func:`kmeans_medoids`: k-means, then the row nearest each centre (representative: rows sit
  where the mass is, which keeps the mean distance to the nearest pick low);
- :func:`kcenter_greedy`: farthest-point traversal (Gonzalez' 2-approximation of k-center:
  keeps the maximum distance to the nearest pick low, but favours outliers);
- :func:`hybrid_cover`: medoids for a share of the budget, farthest points for the rest.

``benchmarks/compare_strategies.py`` measures them on real pools; the default of
``thematic-climatic`` is the one that measured best there.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from csmoe_common.divergence import js_divergence, js_divergence_rows

#: rows a k-means fit sees at most: this many, or 40 per cluster if more (random subset above)
KMEANS_MAX_FIT = 5_000
#: medoids minimise sum(d) + MAX_WEIGHT * rows * max(d) over their rows: a little weight on the
#: farthest row trades a hair of mean distance for a clearly smaller maximum
MAX_WEIGHT = 0.0
#: above this many clusters, k-means runs hierarchically (see :func:`_split_medoids`)
KMEANS_MAX_K = 128
#: tolerances tried in turn by the balancing passes of :func:`refine_medoids`
BALANCE_STEPS = (0.025, 0.05, 0.1, 0.15, 0.2)
#: (candidate, pick) pairs of :func:`swap_refine` whose divergence is computed exactly
SWAP_EXACT = 16
#: nearest picks :func:`swap_refine` keeps per row
SWAP_NEAREST = 4
#: rows farthest-point traversal scans at most
KCENTER_MAX_ROWS = 200_000


def _sqdist(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = X - y
    return np.einsum("ij,ij->i", d, d)


def evaluation_rows(
    rows: int, picks: int, budget: float, rng: np.random.Generator
) -> np.ndarray | None:
    """The pool rows a refinement step evaluates its picks on.

    Every row while ``rows x picks`` stays within ``budget``, else a sorted random subset of
    ``budget // picks`` rows; None (the step is skipped) below five rows per pick.
    """
    n_eval = min(rows, int(budget // picks))
    if n_eval < 5 * picks:
        return None
    return np.arange(rows) if n_eval >= rows else np.sort(rng.choice(rows, n_eval, replace=False))


def central_row(X: np.ndarray) -> int:
    """Index of the row nearest the mean (a cheap medoid)."""
    return int(np.argmin(_sqdist(X, X.mean(axis=0))))


def kcenter_greedy(
    X: np.ndarray,
    k: int,
    start: list[int] | np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Farthest-point traversal: each next pick is the row farthest from all picks so far.

    Args:
        X: (m, D) descriptors.
        k: number of picks (at most m).
        start: rows already picked (they are returned first); default: the central row.
        rng: breaks the tie once every row coincides with a pick (duplicates): the remaining
            picks are then drawn at random.

    Returns:
        Row indices, ``min(k, m)`` of them, in pick order.
    """
    m = len(X)
    k = min(k, m)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    picks = [int(i) for i in (start if start is not None and len(start) else [central_row(X)])]
    picks = list(dict.fromkeys(picks))[:k]
    mind = np.full(m, np.inf, dtype=np.float32)
    for p in picks:
        np.minimum(mind, _sqdist(X, X[p]), out=mind)
    while len(picks) < k:
        j = int(np.argmax(mind))
        if mind[j] <= 0.0:  # only duplicates of picked rows remain
            rest = np.flatnonzero(mind > -1)
            rest = np.setdiff1d(rest, np.asarray(picks), assume_unique=False)
            if rng is not None:
                rest = rng.permutation(rest)
            picks.extend(int(r) for r in rest[: k - len(picks)])
            break
        picks.append(j)
        np.minimum(mind, _sqdist(X, X[j]), out=mind)
        mind[j] = -1.0  # never pick the same row twice
    return np.asarray(picks, dtype=np.int64)


def _kmeans_pp(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (D^2 sampling); returns row indices of the seeds."""
    m = len(X)
    seeds = [int(rng.integers(m))]
    d2 = _sqdist(X, X[seeds[0]]).astype(np.float64)
    for _ in range(1, k):
        total = d2.sum()
        j = (
            int(rng.integers(m))
            if total <= 0
            else int(np.searchsorted(np.cumsum(d2), rng.random() * total))
        )
        j = min(j, m - 1)
        seeds.append(j)
        np.minimum(d2, _sqdist(X, X[j]), out=d2)
    return np.asarray(seeds, dtype=np.int64)


def _assign(X: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre and squared distance for every row (dense; callers keep m*k small)."""
    d = (
        np.einsum("ij,ij->i", X, X)[:, None]
        - 2.0 * (X @ centres.T)
        + np.einsum("ij,ij->i", centres, centres)[None, :]
    )
    lab = np.argmin(d, axis=1)
    return lab, np.maximum(d[np.arange(len(X)), lab], 0.0)


def lloyd(
    X: np.ndarray, k: int, rng: np.random.Generator, iters: int = 15
) -> tuple[np.ndarray, np.ndarray]:
    """Plain k-means (k-means++ seeds, Lloyd steps) in numpy: centres (k, D) and labels.

    Small problems (one stratum) run much faster here than through scikit-learn's per-call
    set-up; empty clusters keep their previous centre.
    """
    centres = X[_kmeans_pp(X, k, rng)].astype(np.float32)
    labels = np.full(len(X), -1, dtype=np.int64)
    for _ in range(iters):
        new, _ = _assign(X, centres)
        if np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=k).astype(np.float32)
        sums = np.empty_like(centres)
        for j in range(X.shape[1]):  # D bincounts beat np.add.at by far
            sums[:, j] = np.bincount(labels, weights=X[:, j], minlength=k)
        nonempty = counts > 0
        centres[nonempty] = sums[nonempty] / counts[nonempty, None]
    return centres, labels


def medoid(
    X: np.ndarray,
    members: np.ndarray,
    rng: np.random.Generator,
    max_candidates: int = 32,
    max_members: int = 512,
) -> int:
    """Row of ``members`` minimising the summed (not squared) distance to the others.

    Candidates are the ``max_candidates`` members nearest the members' mean; the sum runs over
    at most ``max_members`` members (a random subset above that).
    """
    if len(members) <= 2:
        return int(members[0]) if len(members) == 1 else int(members[central_row(X[members])])
    Xm = X[members]
    cand = np.argsort(_sqdist(Xm, Xm.mean(axis=0)), kind="stable")[:max_candidates]
    ref = Xm if len(Xm) <= max_members else Xm[rng.choice(len(Xm), max_members, replace=False)]
    C = Xm[cand]
    d = np.sqrt(
        np.maximum(
            np.einsum("ij,ij->i", C, C)[:, None]
            - 2.0 * C @ ref.T
            + np.einsum("ij,ij->i", ref, ref)[None, :],
            0.0,
        )
    )
    return int(members[cand[int(np.argmin(d.sum(axis=1) + MAX_WEIGHT * len(ref) * d.max(axis=1)))]])


#: odd 64-bit multipliers of :func:`_more_distinct_rows`'s row hash (fixed: results never
#: depend on them, only the time to reach them)
_ROW_HASH = np.random.default_rng(0x5EED).integers(1, 2**63, size=4096, dtype=np.uint64) | 1


def _more_distinct_rows(X: np.ndarray, k: int) -> bool:
    """Whether ``X`` has more than ``k`` distinct rows, when a row hash can tell.

    Equal rows hash alike, so more than ``k`` distinct hashes prove more than ``k`` distinct
    rows; otherwise (False) the caller counts exactly. ``-0.0`` is made ``0.0`` first (they
    compare equal). Hashing is one pass, where ``np.unique(X, axis=0)`` sorts the rows: this
    check ran once per stratum and cost 2.4 of 14 s at 1 M pool rows.
    """
    if X.ndim != 2 or X.shape[1] > len(_ROW_HASH) or X.dtype.itemsize not in (4, 8):
        return False
    words = np.ascontiguousarray(X + X.dtype.type(0)).view(f"u{X.dtype.itemsize}")
    hashes = words.astype(np.uint64) @ _ROW_HASH[: X.shape[1]]  # wraps modulo 2**64
    return len(np.unique(hashes)) > k


def kmeans_medoids(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means clusters, each represented by its medoid, largest cluster first.

    Strata with fewer distinct descriptors than ``k`` get one row per distinct descriptor
    (most frequent first) and the rest by farthest-point traversal. Huge strata are clustered
    on a random subset of :data:`KMEANS_MAX_FIT` rows.

    Returns:
        Row indices, ``min(k, m)`` of them, in priority order.
    """
    m = len(X)
    k = min(k, m)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k == 1:
        return np.array([medoid(X, np.arange(m), rng)], dtype=np.int64)
    cap = max(KMEANS_MAX_FIT, 40 * k)
    fit_rows = np.arange(m) if m <= cap else np.sort(rng.choice(m, cap, replace=False))
    Xf = X[fit_rows]
    if not _more_distinct_rows(Xf, k):  # rare: the exact (and slower) row sort decides
        uniq, first, counts = np.unique(Xf, axis=0, return_index=True, return_counts=True)
        if len(uniq) <= k:
            order = np.lexsort((first, -counts))
            return kcenter_greedy(X, k, start=fit_rows[first[order]], rng=rng)
    if k > KMEANS_MAX_K:
        return fit_rows[_split_medoids(Xf, k, rng)]
    _, labels = lloyd(Xf, k, rng)
    sizes = np.bincount(labels, minlength=k)
    by_label = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    picks = []
    for c in np.argsort(-sizes, kind="stable"):
        if sizes[c] == 0:
            break
        picks.append(int(fit_rows[medoid(Xf, by_label[starts[c] : starts[c + 1]], rng)]))
    picks_a = np.asarray(list(dict.fromkeys(picks)), dtype=np.int64)
    if len(picks_a) < k:
        picks_a = kcenter_greedy(X, k, start=picks_a, rng=rng)
    return picks_a


def _split_medoids(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Large k: coarse k-means into about k / 64 parts, k split over parts by size, recurse.

    Keeps the cost near rows x 64 per level instead of rows x k (a 100,000-pick budget on a
    million-row pool would otherwise build row-by-centre matrices of billions of entries).
    """
    from csmoe_data.sampling.allocation import allocate

    parts = int(np.ceil(k / (KMEANS_MAX_K // 2)))
    _, labels = lloyd(X, parts, rng)
    sizes = np.bincount(labels, minlength=parts)
    quota = allocate(sizes, k, alpha=1.0)
    by_label = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    picks = []
    for c in np.argsort(-sizes, kind="stable"):
        if quota[c] == 0:
            continue
        rows = by_label[starts[c] : starts[c + 1]]
        picks.append(rows[kmeans_medoids(X[rows], int(quota[c]), rng)])
    out = np.concatenate(picks) if picks else np.empty(0, dtype=np.int64)
    if len(out) < min(k, len(X)):  # parts with fewer distinct rows than their quota
        out = kcenter_greedy(X, k, start=out, rng=rng)
    return out


def hybrid_cover(
    X: np.ndarray, k: int, rng: np.random.Generator, medoid_share: float = 0.5
) -> np.ndarray:
    """``ceil(medoid_share * k)`` k-means medoids, then farthest points for the rest."""
    m = len(X)
    k = min(k, m)
    if k <= 1:
        return kmeans_medoids(X, k, rng)
    k_med = max(1, int(np.ceil(medoid_share * k)))
    start = kmeans_medoids(X, k_med, rng)
    if len(start) >= k:
        return start[:k]
    if m > KCENTER_MAX_ROWS:
        rows = np.union1d(start, rng.choice(m, KCENTER_MAX_ROWS, replace=False))
        pos = np.searchsorted(rows, start)
        return rows[kcenter_greedy(X[rows], k, start=pos, rng=rng)]
    return kcenter_greedy(X, k, start=start, rng=rng)


def cover(
    X: np.ndarray,
    k: int,
    rng: np.random.Generator,
    method: str = "hybrid",
    medoid_share: float = 0.5,
) -> np.ndarray:
    """Dispatch to one of the covering methods (``kmeans``, ``kcenter``, ``hybrid``).

    Raises:
        ValueError: on an unknown method.
    """
    if method == "kmeans":
        return kmeans_medoids(X, k, rng)
    if method == "kcenter":
        m = len(X)
        if m > KCENTER_MAX_ROWS:
            rows = np.sort(rng.choice(m, KCENTER_MAX_ROWS, replace=False))
            return rows[kcenter_greedy(X[rows], k, rng=rng)]
        return kcenter_greedy(X, k, rng=rng)
    if method == "hybrid":
        return hybrid_cover(X, k, rng, medoid_share)
    raise ValueError(f"unknown covering method {method!r}")


def _nearest_chunked(X: np.ndarray, centres: np.ndarray, cells: int = 4_000_000) -> np.ndarray:
    """Index of the nearest centre for every row, in chunks of about ``cells`` distances."""
    out = np.empty(len(X), dtype=np.int64)
    step = max(1, cells // max(1, len(centres)))
    cc = np.einsum("ij,ij->i", centres, centres)[None, :]
    for s in range(0, len(X), step):
        xs = X[s : s + step]
        out[s : s + len(xs)] = np.argmin(cc - 2.0 * (xs @ centres.T), axis=1)
    return out


def refine_medoids(
    X: np.ndarray,
    selected: np.ndarray,
    groups: np.ndarray,
    rng: np.random.Generator,
    iters: int = 3,
    budget: float = 4e7,
    max_candidates: int = 32,
    max_members: int = 512,
    parts: list[slice] | None = None,
    balance_tol: float = 0.0,
    balance_target: float = 0.0,
) -> np.ndarray:
    """Alternating k-medoids over the whole pool, keeping every pick inside its own group.

    Each pool row is assigned to its nearest pick (across groups); then each pick moves to the
    row of its own group, inside its cell, that minimises the summed distance to the cell's
    rows. Picks never change group, so per-group counts (and strata coverage) are kept, while
    the picks of neighbouring strata stop covering the same rows twice. The summed distance
    never increases. Runs on a random subset of pool rows so that rows x picks stays under
    ``budget``; skipped when that subset would be smaller than five rows per pick.

    With ``balance_tol`` > 0 further passes let each pick move to a candidate whose cell cost is
    at most ``tol`` above the current one when that brings the sample's mean fractions closer
    to the pool's (sum over ``parts`` of the JS divergences): among near-equivalent covers, the
    one that keeps the class distribution representative. ``tol`` steps through
    :data:`BALANCE_STEPS` up to ``balance_tol`` and stops as soon as the divergence is at most
    ``balance_target``, so a sample that is representative already loses no coverage.

    Returns:
        The refined picks, position by position (priority order kept).
    """
    sel = np.asarray(selected, dtype=np.int64).copy()
    n, N = len(sel), len(X)
    if n < 2:
        return sel
    rows = evaluation_rows(N, n, budget, rng)
    if rows is None:
        return sel
    taken = np.zeros(N, dtype=bool)
    taken[sel] = True

    def cells() -> tuple[np.ndarray, np.ndarray]:
        lab = _nearest_chunked(X[rows], X[sel])
        order = np.argsort(lab, kind="stable")
        return order, np.searchsorted(lab[order], np.arange(n + 1))

    def costs(
        j: int, order: np.ndarray, bounds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Candidates of pick j and the cell cost of [current, *candidates]."""
        members = rows[order[bounds[j] : bounds[j + 1]]]
        if len(members) < 2:
            return None
        cand = members[(groups[members] == groups[sel[j]]) & ~taken[members]]
        if len(cand) == 0:
            return None
        Xm = X[members]
        ref = Xm if len(Xm) <= max_members else Xm[rng.choice(len(Xm), max_members, replace=False)]
        if len(cand) > max_candidates:
            cand = cand[
                np.argsort(_sqdist(X[cand], ref.mean(axis=0)), kind="stable")[:max_candidates]
            ]
        C = np.vstack([X[sel[j]][None, :], X[cand]])
        d = np.sqrt(
            np.maximum(
                np.einsum("ij,ij->i", C, C)[:, None]
                - 2.0 * C @ ref.T
                + np.einsum("ij,ij->i", ref, ref)[None, :],
                0.0,
            )
        )
        return cand, d.sum(axis=1) + MAX_WEIGHT * len(ref) * d.max(axis=1)

    def move(j: int, row: int) -> None:
        taken[sel[j]] = False
        sel[j] = row
        taken[row] = True

    for _ in range(iters):
        order, bounds = cells()
        changed = False
        for j in range(n):
            got = costs(j, order, bounds)
            if got is None:
                continue
            cand, d = got
            best = int(np.argmin(d))
            if best > 0 and d[best] < d[0] * (1.0 - 1e-6):
                move(j, int(cand[best - 1]))
                changed = True
        if not changed:
            break

    if balance_tol > 0:
        parts = parts or [slice(0, X.shape[1])]
        target = X[rows].astype(np.float64).mean(axis=0)
        total = X[sel].astype(np.float64).sum(axis=0)

        def divergence(vec: np.ndarray) -> float:
            return sum(js_divergence(vec[p], target[p]) for p in parts)

        # escalate the tolerance only while the sample is still off the pool's distribution
        for tol in [t for t in BALANCE_STEPS if t < balance_tol] + [balance_tol]:
            if divergence(total) <= balance_target:
                break
            order, bounds = cells()
            for j in rng.permutation(n):
                got = costs(int(j), order, bounds)
                if got is None:
                    continue
                cand, d = got
                ok = np.flatnonzero(d[1:] <= d[0] * (1.0 + tol))
                if len(ok) == 0:
                    continue
                base = total - X[sel[j]]
                now = divergence(total)
                scores = [divergence(base + X[cand[k]]) for k in ok]
                k = int(np.argmin(scores))
                if scores[k] < now - 1e-12:
                    total = base + X[cand[ok[k]]]
                    move(int(j), int(cand[ok[k]]))
    return sel


def _two_nearest(
    X: np.ndarray, P: np.ndarray, cells: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest pick, its distance and the second-nearest distance for every row of ``X``."""
    n = len(P)
    near = np.zeros(len(X), dtype=np.int64)
    d1 = np.empty(len(X), dtype=np.float64)
    d2 = np.full(len(X), np.inf)
    pp = np.einsum("ij,ij->i", P, P)[None, :]
    step = max(1, cells // max(1, n))
    for s in range(0, len(X), step):
        xs = X[s : s + step]
        d = np.maximum(pp - 2.0 * (xs @ P.T) + np.einsum("ij,ij->i", xs, xs)[:, None], 0.0)
        if n >= 2:
            two = np.argpartition(d, 1, axis=1)[:, :2]
            a = np.take_along_axis(d, two, axis=1)
            flip = a[:, 1] < a[:, 0]
            two[flip] = two[flip][:, ::-1]
            a[flip] = a[flip][:, ::-1]
            near[s : s + len(xs)] = two[:, 0]
            d1[s : s + len(xs)] = np.sqrt(a[:, 0])
            d2[s : s + len(xs)] = np.sqrt(a[:, 1])
        else:
            d1[s : s + len(xs)] = np.sqrt(d[:, 0])
    return near, d1, d2


def repair_max(
    X: np.ndarray,
    selected: np.ndarray,
    groups: np.ndarray,
    rng: np.random.Generator,
    rounds: int = 12,
    budget: float = 4e7,
    mean_tol: float = 0.01,
    candidates: int = 48,
    landcover: slice | None = None,
    js_bound: float = 1.0,
    across: bool = False,
) -> np.ndarray:
    """Lower the largest distance from a pool row to its nearest pick, one worst row at a time.

    The worst-covered row can only be served better by a pick of its own group moving toward
    it (other groups' counts are fixed). For each pick of that group and each candidate row of
    the group (the rows nearest the worst row, plus random ones), the exact new distances of
    every pool row follow from the nearest and second-nearest picks; the swap with the lowest
    new maximum is taken if it lowers the maximum and the summed distance stays within
    ``mean_tol`` (relative, over all rounds) of where it started. Stops when the worst row
    cannot be helped. Rows are a random subset under ``budget`` rows x picks, as in
    :func:`refine_medoids`. With ``landcover``, a swap must also keep the land-cover JS
    divergence of the sample's mean fractions to the pool's (every row) at most
    ``max(js_bound, where it started)``, so that this last step cannot undo the bound the
    earlier ones held.

    With ``across``, the pick that moves may come from any group that keeps a row (as in
    :func:`sweep_refine`: per-group counts are no longer fixed), and the candidates are the
    free rows nearest the worst row in any group plus random ones of its own group; every
    (candidate, pick) pair is scored at once from per-cell maxima and sums.
    """
    sel = np.asarray(selected, dtype=np.int64).copy()
    n, N = len(sel), len(X)
    if n < 2 or rounds <= 0:
        return sel
    rows = evaluation_rows(N, n, budget, rng)
    if rows is None:
        return sel
    Xe = X[rows]
    near, d1, d2 = _two_nearest(Xe, X[sel])
    limit = d1.sum() * (1.0 + mean_tol)
    taken = np.zeros(N, dtype=bool)
    taken[sel] = True
    by_group = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[by_group], np.arange(int(groups.max()) + 2))
    L = X[:, landcover].astype(np.float64) if landcover is not None else None
    if L is not None and L.sum() > 0:
        lc_pool = L.sum(axis=0)
        lc_total = L[sel].sum(axis=0)
        js_cap = max(js_bound, float(js_divergence_rows(lc_total[None, :], lc_pool)[0]))
    else:  # no land-cover columns: no divergence to hold
        L = None
        lc_pool = lc_total = np.zeros(0)
        js_cap = 1.0
    if across:
        n_groups = int(groups.max()) + 1
        per_group = np.bincount(groups[sel], minlength=n_groups)
    for _ in range(rounds):
        worst = int(np.argmax(d1))
        g = int(groups[rows[worst]])
        if across:
            free = np.flatnonzero(~taken)
            own = free[groups[free] == g]
            if len(free) == 0:
                break
            cand = free[np.argsort(_sqdist(X[free], Xe[worst]), kind="stable")[: candidates // 2]]
            if len(own):
                cand = np.union1d(cand, rng.choice(own, min(len(own), candidates // 2), False))
            got = _best_repair(
                Xe,
                X,
                sel,
                cand,
                groups,
                per_group,
                near,
                d1,
                d2,
                limit,
                L,
                lc_total,
                lc_pool,
                js_cap,
            )
            if got is None:
                break
            moved, row = got
            per_group[groups[sel[moved]]] -= 1
            per_group[groups[row]] += 1
            if L is not None:
                lc_total += L[row] - L[sel[moved]]
            taken[sel[moved]] = False
            sel[moved] = row
            taken[row] = True
            near, d1, d2 = _two_nearest(Xe, X[sel])
            continue
        js = np.flatnonzero(groups[sel] == g)
        pool_g = by_group[bounds[g] : bounds[g + 1]]
        pool_g = pool_g[~taken[pool_g]]
        if len(js) == 0 or len(pool_g) == 0:
            break
        if len(pool_g) > candidates:
            near_worst = pool_g[
                np.argsort(_sqdist(X[pool_g], Xe[worst]), kind="stable")[: candidates // 2]
            ]
            pool_g = np.union1d(near_worst, rng.choice(pool_g, candidates // 2, replace=False))
        best: tuple[float, float, int, int] | None = None
        for c in pool_g:
            dc = np.sqrt(_sqdist(Xe, X[c]).astype(np.float64))
            keep = np.minimum(d1, dc)
            allowed = js
            if L is not None:  # the swaps that keep the divergence bounded
                div = js_divergence_rows(lc_total[None, :] - L[sel[js]] + L[c][None, :], lc_pool)
                allowed = js[div <= js_cap]
            for j in allowed:
                new = np.where(near == j, np.minimum(d2, dc), keep)
                mx, total = float(new.max()), float(new.sum())
                if (
                    total <= limit
                    and mx < d1[worst] - 1e-12
                    and (best is None or (mx, total) < best[:2])
                ):
                    best = (mx, total, int(j), int(c))
        if best is None:
            break
        _, _, moved, row = best
        if L is not None:
            lc_total += L[row] - L[sel[moved]]
        taken[sel[moved]] = False
        sel[moved] = row
        taken[row] = True
        near, d1, d2 = _two_nearest(Xe, X[sel])
    return sel


def _best_repair(
    Xe: np.ndarray,
    X: np.ndarray,
    sel: np.ndarray,
    cand: np.ndarray,
    groups: np.ndarray,
    per_group: np.ndarray,
    near: np.ndarray,
    d1: np.ndarray,
    d2: np.ndarray,
    limit: float,
    L: np.ndarray | None,
    lc_total: np.ndarray | None,
    lc_pool: np.ndarray | None,
    js_cap: float,
) -> tuple[int, int] | None:
    """The (pick position, candidate row) swap with the lowest new maximum distance, or None.

    A swap counts when it lowers the maximum, keeps the summed distance <= ``limit``, leaves
    every group a row and (with ``L``) keeps the divergence <= ``js_cap``. For candidate c, a
    row's new distance is min(d1, d_c) unless its nearest pick leaves (then min(d2, d_c)), so
    the new maximum for removing pick j is the larger of the other cells' maxima of
    min(d1, d_c) and cell j's maximum of min(d2, d_c); sums likewise.
    """
    n = len(sel)
    order = np.argsort(near, kind="stable")
    sizes = np.bincount(near, minlength=n)
    full = sizes > 0
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[full]
    sole = per_group[groups[sel]] == 1
    current = float(d1.max())
    best: tuple[float, float, int, int] | None = None
    for c in cand:
        dc = np.sqrt(_sqdist(Xe, X[c]).astype(np.float64))
        keep = np.minimum(d1, dc)[order]
        rm = np.minimum(d2, dc)[order]
        keep_max, rm_max = np.zeros(n), np.zeros(n)
        keep_sum, rm_sum = np.zeros(n), np.zeros(n)
        keep_max[full] = np.maximum.reduceat(keep, starts)
        rm_max[full] = np.maximum.reduceat(rm, starts)
        keep_sum[full] = np.add.reduceat(keep, starts)
        rm_sum[full] = np.add.reduceat(rm, starts)
        top = int(np.argmax(keep_max))
        second = float(np.max(np.delete(keep_max, top))) if n > 1 else 0.0
        others = np.where(np.arange(n) == top, second, float(keep_max[top]))
        new_max = np.maximum(others, rm_max)
        new_sum = float(keep.sum()) - keep_sum + rm_sum
        ok = (new_sum <= limit) & (new_max < current - 1e-12)
        ok &= ~sole | (groups[sel] == groups[c])
        if L is not None and lc_total is not None and lc_pool is not None and ok.any():
            idx = np.flatnonzero(ok)
            div = js_divergence_rows(lc_total[None, :] - L[sel[idx]] + L[c][None, :], lc_pool)
            ok[idx[div > js_cap]] = False
        if not ok.any():
            continue
        idx = np.flatnonzero(ok)
        k = idx[np.lexsort((new_sum[idx], new_max[idx]))[0]]
        key = (float(new_max[k]), float(new_sum[k]), int(k), int(c))
        if best is None or key[:2] < best[:2]:
            best = key
    return None if best is None else (best[2], best[3])


def _nearest_picks(
    X: np.ndarray, P: np.ndarray, k: int, cells: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest picks (indices into ``P``, nearest first) and their distances, per row.

    In float64, like :func:`_distances`, so that both give the same distance for a pair (the
    expanded form loses ~1e-3 to cancellation in float32).
    """
    X = X.astype(np.float64)
    P = P.astype(np.float64)
    n = len(P)
    k = min(k, n)
    idx = np.zeros((len(X), k), dtype=np.int64)
    dist = np.empty((len(X), k), dtype=np.float64)
    pp = np.einsum("ij,ij->i", P, P)[None, :]
    step = max(1, cells // max(1, n))
    for s in range(0, len(X), step):
        xs = X[s : s + step]
        d = np.maximum(pp - 2.0 * (xs @ P.T) + np.einsum("ij,ij->i", xs, xs)[:, None], 0.0)
        part = (
            np.argpartition(d, k - 1, axis=1)[:, :k]
            if k < n
            else np.tile(np.arange(n), (len(xs), 1))
        )
        a = np.take_along_axis(d, part, axis=1)
        o = np.argsort(a, axis=1, kind="stable")
        idx[s : s + len(xs)] = np.take_along_axis(part, o, axis=1)
        dist[s : s + len(xs)] = np.sqrt(np.take_along_axis(a, o, axis=1))
    return idx, dist


def _distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(len(A), len(B)) Euclidean distances, float64."""
    A = A.astype(np.float64)
    B = B.astype(np.float64)
    d = (
        np.einsum("ij,ij->i", A, A)[:, None]
        - 2.0 * (A @ B.T)
        + np.einsum("ij,ij->i", B, B)[None, :]
    )
    return np.sqrt(np.maximum(d, 0.0))


def _js_gradient(total: np.ndarray, target: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Gradient of the JS divergence (bits) of ``total`` (unnormalised) to ``target``.

    d JS / d p_k = log2(p_k / m_k) / 2 with m = (p + q) / 2; through the normalisation
    p = T / sum(T) this becomes (g - g . p) / sum(T). Empty classes use ``floor`` so the
    gradient stays finite (adding mass to an empty class lowers the divergence steeply).
    """
    s = float(total.sum())
    p = np.maximum(total / s, floor)
    q = target / float(target.sum())
    g = 0.5 * np.log2(p / (0.5 * (p + q)))
    return (g - float(g @ (total / s))) / s


def _swap_contributions(
    Dc: np.ndarray, r: np.ndarray, near: np.ndarray, d1: np.ndarray, d2: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """What rows ``r`` add to the change of the summed distance of each (candidate, pick) swap.

    Adding candidate c changes row i by min(d_c, d1) - d1 whichever pick leaves (the common
    part, per candidate); when the pick leaving is row i's nearest, by min(d_c, d2) -
    min(d_c, d1) more (the extra part, per candidate and pick). ``Dc`` holds the candidates'
    distances to every evaluated row.
    """
    Dr = Dc[:, r]
    m1 = np.minimum(Dr, d1[r][None, :])
    onehot = sparse.csr_matrix((np.ones(len(r)), (np.arange(len(r)), near[r])), shape=(len(r), n))
    w = np.minimum(Dr, d2[r][None, :]) - m1
    return (m1 - d1[r][None, :]).sum(axis=1), np.asarray((onehot.T @ w.T).T)


def _swap_in_lists(nn_idx: np.ndarray, nn_d: np.ndarray, j: int, dj: np.ndarray) -> None:
    """Update each row's nearest-pick list in place after pick ``j`` moved (new distances ``dj``).

    The old entry of ``j`` leaves (the list then holds one exact entry fewer, inf at its end);
    the new ``j`` enters where it is nearer than the list's last known entry, so every finite
    entry stays exact: the true nearest picks among all picks, in order.
    """
    k = nn_idx.shape[1]
    hit = nn_idx == j
    rows = np.flatnonzero(hit.any(axis=1))
    if len(rows):
        d = np.where(hit[rows], np.inf, nn_d[rows])
        o = np.argsort(d, axis=1, kind="stable")
        nn_d[rows] = np.take_along_axis(d, o, axis=1)
        nn_idx[rows] = np.take_along_axis(nn_idx[rows], o, axis=1)
    finite = np.isfinite(nn_d)
    full = finite[:, -1]
    last = np.where(full, nn_d[:, -1], np.where(finite, nn_d, -np.inf).max(axis=1))
    ins = np.flatnonzero(dj < last)
    if len(ins):
        d = nn_d[ins].copy()
        i = nn_idx[ins].copy()
        # the slot taken: the last one when full, else the first empty one
        slot = np.where(full[ins], k - 1, np.argmin(np.isfinite(d), axis=1))
        d[np.arange(len(ins)), slot] = dj[ins]
        i[np.arange(len(ins)), slot] = j
        o = np.argsort(d, axis=1, kind="stable")
        nn_d[ins] = np.take_along_axis(d, o, axis=1)
        nn_idx[ins] = np.take_along_axis(i, o, axis=1)


def swap_refine(
    X: np.ndarray,
    selected: np.ndarray,
    groups: np.ndarray,
    rng: np.random.Generator,
    landcover: slice,
    js_bound: float,
    max_swaps: int,
    budget: float = 4e7,
    candidates: int = 96,
    penalty: float = 0.3,
) -> np.ndarray:
    """Swap picks for better-placed rows, across groups, under a land-cover divergence bound.

    A PAM-style local search on the k-median objective (the mean distance from a pool row to
    its nearest pick, the figure ``kcenter_mean_radius`` of :mod:`csmoe_data.stats`): each swap
    removes one pick and adds one row of any group, so budget moves to where it serves most
    rows (which the per-group budgets of the allocation cannot know). The exact change of the
    mean distance of every (candidate, pick) pair follows from each row's nearest and
    second-nearest pick; the objective adds ``penalty`` times the change of the land-cover JS
    divergence (bits) between the sample's mean fractions and the pool's. The penalty adapts:
    it grows while the divergence is above ``js_bound`` and shrinks while it is well below, so
    the search walks along the distance / divergence trade-off instead of stopping at the first
    swap that would cross the bound. A group's last pick only moves inside its group (strata
    coverage is kept). Candidates are drawn in batches: rows served worst (by distance), rows
    that would bring the class mix closer to the pool's, and uniform ones.

    Returns the best state visited among those whose mean distance is at most the input's:
    lowest ``max(0, JS - js_bound)``, then lowest mean distance; so the result is never worse
    than the input on either count (a pool whose divergence is above the bound from the start,
    such as one row per stratum of many one-class strata, gets a lower divergence only where
    that costs no mean distance). Rows are a random
    subset under ``budget`` rows x picks, as in :func:`refine_medoids` (skipped below five
    rows per pick); the divergence is always against every pool row.

    Args:
        X: (N, D) descriptors.
        selected: the picks (row indices).
        groups: group per row (strata).
        rng: candidate draws.
        landcover: the land-cover columns of ``X``.
        js_bound: the divergence the result must not exceed (unless the input does).
        max_swaps: cap on the swaps made.
        budget: rows x picks evaluated at most.
        candidates: rows drawn per batch.
        penalty: starting weight of the divergence against the mean distance.

    Returns:
        The picks, position by position (a swapped pick takes the place of the one it replaced).
    """
    sel = np.asarray(selected, dtype=np.int64).copy()
    n, N = len(sel), len(X)
    if n < 2 or max_swaps <= 0 or n >= N:
        return sel
    rows = evaluation_rows(N, n, budget, rng)
    if rows is None:
        return sel
    Xe = X[rows]
    ne = len(rows)
    L = X[:, landcover].astype(np.float64)
    target = L.sum(axis=0)
    if target.sum() <= 0 or L.shape[1] == 0:
        return sel
    n_groups = int(groups.max()) + 1
    per_group = np.bincount(groups[sel], minlength=n_groups)
    taken = np.zeros(N, dtype=bool)
    taken[sel] = True
    total = L[sel].sum(axis=0)
    # each row's SWAP_NEAREST nearest picks, so that a removed pick rarely forces a rescan
    nn_idx, nn_d = _nearest_picks(Xe, X[sel], SWAP_NEAREST)
    near, d1, d2 = nn_idx[:, 0].copy(), nn_d[:, 0].copy(), nn_d[:, 1].copy()

    def js(T: np.ndarray) -> np.ndarray:
        return js_divergence_rows(T, target)

    js_now = float(js(total[None, :])[0])
    start_cost = float(d1.mean())
    best = (max(0.0, js_now - js_bound), start_cost, sel.copy())
    lam = penalty
    swaps = 0
    idle = 0
    while swaps < max_swaps and idle < 3:
        # a batch of candidates: poorly served rows, rows that improve the class mix, any rows
        free = np.flatnonzero(~taken)
        if len(free) == 0:
            break
        k_far, k_mix = candidates // 2, candidates // 4
        far = rows[rng.choice(ne, k_far, p=d1 / d1.sum())] if d1.sum() > 0 else rows[:0]
        gain = np.maximum(js_now - js(total[None, :] + L[free]), 0.0)
        mix = (
            free[
                rng.choice(
                    len(free), min(k_mix, int((gain > 0).sum())), replace=False, p=gain / gain.sum()
                )
            ]
            if gain.sum() > 0
            else free[:0]
        )
        anyr = rng.choice(free, min(len(free), candidates - k_far - k_mix), replace=False)
        cand = np.unique(np.concatenate([far, mix, anyr]))
        cand = cand[~taken[cand]]
        if len(cand) == 0:
            break
        Dc = _distances(X[cand], Xe)
        alive = np.ones(len(cand), dtype=bool)

        common, extra = _swap_contributions(Dc, np.arange(ne), near, d1, d2, n)
        made = 0
        while swaps < max_swaps:
            dmean = (common[:, None] + extra) / ne
            sole = per_group[groups[sel]] == 1
            blocked = sole[None, :] & (groups[cand][:, None] != groups[sel][None, :])
            # screen every pair with the first-order change of the divergence, then score the
            # best few exactly
            g = _js_gradient(total, target)
            lin = dmean + lam * ((L[cand] @ g)[:, None] - (L[sel] @ g)[None, :])
            lin[blocked | ~alive[:, None]] = np.inf
            top = np.argpartition(lin.ravel(), min(SWAP_EXACT, lin.size) - 1)[:SWAP_EXACT]
            top = top[np.isfinite(lin.flat[top])]
            if len(top) == 0:
                break
            ci_t, j_t = np.divmod(top, n)
            js_new = js(total[None, :] - L[sel[j_t]] + L[cand[ci_t]])
            obj = dmean[ci_t, j_t] + lam * (js_new - js_now)
            if not obj.min() < -1e-12:
                break
            k = int(np.argmin(obj))
            ci, j = int(ci_t[k]), int(j_t[k])
            c, old = int(cand[ci]), int(sel[j])
            dc = Dc[ci]
            # rows whose nearest or second-nearest pick leaves, or that the new pick comes
            # within their second-nearest distance of, change their contributions
            redo = (nn_idx[:, 0] == j) | (nn_idx[:, 1] == j)
            changed = np.flatnonzero(redo | (dc < d2))
            old_common, old_extra = _swap_contributions(Dc, changed, near, d1, d2, n)
            sel[j] = c
            taken[old], taken[c] = False, True
            per_group[groups[old]] -= 1
            per_group[groups[c]] += 1
            total += L[c] - L[old]
            alive[ci] = False
            _swap_in_lists(nn_idx, nn_d, j, dc)
            low = np.flatnonzero(~np.isfinite(nn_d[:, 1]))
            if len(low):  # rows whose lists ran short: exact rescan
                nn_idx[low], nn_d[low] = _nearest_picks(Xe[low], X[sel], SWAP_NEAREST)
            near, d1, d2 = nn_idx[:, 0].copy(), nn_d[:, 0].copy(), nn_d[:, 1].copy()
            new_common, new_extra = _swap_contributions(Dc, changed, near, d1, d2, n)
            common += new_common - old_common
            extra += new_extra - old_extra
            js_now = float(js(total[None, :])[0])
            swaps += 1
            made += 1
            state = (max(0.0, js_now - js_bound), float(d1.mean()))
            if state < best[:2] and state[1] <= start_cost:
                best = (*state, sel.copy())
            # walk along the trade-off: more weight on the divergence while it is too high
            if js_now > js_bound:
                lam *= 1.5
            elif js_now < 0.8 * js_bound:
                lam /= 1.5
        idle = 0 if made else idle + 1
    return best[2]


def sweep_refine(
    X: np.ndarray,
    selected: np.ndarray,
    groups: np.ndarray,
    rng: np.random.Generator,
    landcover: slice,
    js_bound: float,
    max_sweeps: int = 4,
    budget: float = 4e7,
    penalty: float = 0.3,
) -> np.ndarray:
    """Full sweeps of single swaps over every row, pruned by the triangle inequality.

    The local search of :func:`swap_refine` (the k-median objective, the mean distance from a
    pool row to its nearest pick, plus an adaptive penalty times the change of the land-cover
    JS divergence; a group's last pick only moves inside its group), but with every row as a
    candidate once per sweep instead of sampled batches, in the manner of FasterPAM (Schubert
    & Rousseeuw, "Fast and eager k-medoids clustering", Information Systems 2021): the change
    of the objective for adding a candidate and removing each pick follows from every row's
    nearest and second-nearest pick, and a swap is taken as soon as one improves. Candidates
    are visited by cell (the rows whose nearest pick is the same), in a seeded order. A row o
    whose nearest pick m satisfies d(c, m) >= d1(o) + d2(o) for every candidate c of the cell
    is untouched by any of those swaps (then d(c, o) >= d(c, m) - d1(o) >= d2(o)), so only
    the other rows need exact distances; the untouched ones contribute the removal loss of
    their nearest pick alone. That keeps a sweep near rows x (cell size x neighbouring cells)
    distances instead of rows squared.

    No swap may leave any row farther from its nearest pick than the input's worst row (the
    k-median objective alone would trade the worst rows for the mean: the maximum radius is a
    goal too); of the best few pairs by the first-order objective, the first that keeps that
    bound is taken. Stops after a sweep without a swap or after ``max_sweeps``. Returns, like
    :func:`swap_refine`, the best state visited whose mean distance is at most the input's
    (lowest ``max(0, JS - js_bound)``, then lowest mean distance). Rows are a random subset
    under ``budget`` rows x picks (skipped below five rows per pick); candidates are then the
    rows of that subset. The divergence is always against every pool row.

    Args:
        X: (N, D) descriptors.
        selected: the picks (row indices).
        groups: group per row (strata).
        rng: visiting order and row subset.
        landcover: the land-cover columns of ``X``.
        js_bound: the divergence the result must not exceed (unless the input does).
        max_sweeps: passes over every candidate at most.
        budget: rows x picks evaluated at most.
        penalty: starting weight of the divergence against the mean distance.

    Returns:
        The picks, position by position (a swapped pick takes the place of the one it replaced).
    """
    sel = np.asarray(selected, dtype=np.int64).copy()
    n, N = len(sel), len(X)
    if n < 2 or max_sweeps <= 0 or n >= N:
        return sel
    rows = evaluation_rows(N, n, budget, rng)
    if rows is None:
        return sel
    Xe = X[rows].astype(np.float64)
    ne = len(rows)
    L = X[:, landcover].astype(np.float64)
    target = L.sum(axis=0)
    if target.sum() <= 0 or L.shape[1] == 0:
        return sel
    n_groups = int(groups.max()) + 1
    per_group = np.bincount(groups[sel], minlength=n_groups)
    taken = np.zeros(N, dtype=bool)
    taken[sel] = True
    total = L[sel].sum(axis=0)
    P = X[sel].astype(np.float64)
    nn_idx, nn_d = _nearest_picks(Xe, P, SWAP_NEAREST)
    xe_sq = np.einsum("ij,ij->i", Xe, Xe)
    p_sq = np.einsum("ij,ij->i", P, P)

    def dist(A: np.ndarray, a_sq: np.ndarray, B: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
        # the float64 expanded form of _distances, with the squared norms kept
        return np.sqrt(np.maximum(a_sq[:, None] - 2.0 * (A @ B.T) + b_sq[None, :], 0.0))

    def js(T: np.ndarray) -> np.ndarray:
        return js_divergence_rows(T, target)

    js_now = float(js(total[None, :])[0])
    start_cost = float(nn_d[:, 0].mean())
    # no swap may leave a row farther from its nearest pick than the worst row of the input
    radius_cap = float(nn_d[:, 0].max())
    best = (max(0.0, js_now - js_bound), start_cost, sel.copy())
    lam = penalty
    for _ in range(max_sweeps):
        made = 0
        for j0 in rng.permutation(n):
            near, d1, d2 = nn_idx[:, 0], nn_d[:, 0], nn_d[:, 1]
            members = np.flatnonzero(near == j0)
            cand = rows[members]
            cand = cand[~taken[cand]]
            if len(cand) == 0:
                continue
            Xc = X[cand].astype(np.float64)
            c_sq = np.einsum("ij,ij->i", Xc, Xc)
            # rows some candidate of this cell can come within their second-nearest distance of
            reach = dist(Xc, c_sq, P, p_sq).min(axis=0)
            rel = np.flatnonzero(reach[near] < d1 + d2)
            Dc = dist(Xc, c_sq, Xe[rel], xe_sq[rel])
            d1r, d2r = d1[rel], d2[rel]
            m1 = np.minimum(Dc, d1r[None, :])
            common = (m1 - d1r[None, :]).sum(axis=1)
            w = np.minimum(Dc, d2r[None, :]) - m1 - (d2r - d1r)[None, :]
            onehot = sparse.csr_matrix(
                (np.ones(len(rel)), (np.arange(len(rel)), near[rel])), shape=(len(rel), n)
            )
            removal = np.bincount(near, weights=d2 - d1, minlength=n)
            dmean = (common[:, None] + removal[None, :] + np.asarray((onehot.T @ w.T).T)) / ne
            sole = per_group[groups[sel]] == 1
            blocked = sole[None, :] & (groups[cand][:, None] != groups[sel][None, :])
            g = _js_gradient(total, target)
            lin = dmean + lam * ((L[cand] @ g)[:, None] - (L[sel] @ g)[None, :])
            lin[blocked] = np.inf
            top = np.argpartition(lin.ravel(), min(SWAP_EXACT, lin.size) - 1)[:SWAP_EXACT]
            top = top[np.isfinite(lin.flat[top])]
            if len(top) == 0:
                continue
            ci_t, j_t = np.divmod(top, n)
            js_new = js(total[None, :] - L[sel[j_t]] + L[cand[ci_t]])
            obj = dmean[ci_t, j_t] + lam * (js_new - js_now)
            chosen = -1
            for k in np.argsort(obj, kind="stable"):
                if not obj[k] < -1e-12:
                    break
                # the rows' distances after the swap: only the rows in reach can come nearer
                after = np.where(near == j_t[k], d2, d1)
                after[rel] = np.minimum(Dc[ci_t[k]], after[rel])
                if after.max() <= radius_cap:
                    chosen = int(k)
                    break
            if chosen < 0:
                continue
            c, j = int(cand[ci_t[chosen]]), int(j_t[chosen])
            old = int(sel[j])
            sel[j] = c
            P[j] = X[c]
            p_sq[j] = P[j] @ P[j]
            taken[old], taken[c] = False, True
            per_group[groups[old]] -= 1
            per_group[groups[c]] += 1
            total += L[c] - L[old]
            _swap_in_lists(nn_idx, nn_d, j, dist(P[j][None, :], p_sq[j : j + 1], Xe, xe_sq)[0])
            low = np.flatnonzero(~np.isfinite(nn_d[:, 1]))
            if len(low):  # rows whose lists ran short: exact rescan
                nn_idx[low], nn_d[low] = _nearest_picks(Xe[low], P, SWAP_NEAREST)
            js_now = float(js(total[None, :])[0])
            made += 1
            state = (max(0.0, js_now - js_bound), float(nn_d[:, 0].mean()))
            if state < best[:2] and state[1] <= start_cost:
                best = (*state, sel.copy())
            # walk along the trade-off: more weight on the divergence while it is too high
            if js_now > js_bound:
                lam *= 1.5
            elif js_now < 0.8 * js_bound:
                lam /= 1.5
        if made == 0:
            break
    return best[2]
