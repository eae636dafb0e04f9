"""The strategy registry: how rows are grouped, how the budget is split, how rows are picked.

A strategy answers three questions, and the driver (:func:`csmoe_data.sampling.sample_manifest`)
does the rest (filters, allocation by :func:`~csmoe_data.sampling.allocation.allocate`,
``min_distance``, splits, output):

- ``groups(ctx, n)``: a group code per eligible row and the group names (strata, clusters);
- ``allocation_weights(ctx, codes, n_groups)``: an optional extra factor on N_s ** alpha;
- ``pick(ctx, rows, k, rng)``: ``k`` of ``rows`` (indices into the context), best first.

Add a strategy with::

    @register_strategy("mine")
    class Mine(Strategy):
        ...
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from csmoe_common.divergence import js_divergence_rows
from csmoe_common.manifest import LANDCOVER_PREFIX
from csmoe_common.registry import Registry
from csmoe_data.sampling.coverage import (
    cover,
    lloyd,
    medoid,
    refine_medoids,
    repair_max,
    swap_refine,
    sweep_refine,
)
from csmoe_data.sampling.options import SamplingOptions

#: name -> strategy instance (the four built-in strategies are registered below, in this module)
STRATEGIES: Registry[Strategy] = Registry("sampling strategy")


@dataclass
class SamplingContext:
    """Everything a strategy may look at, for the rows that passed the filters.

    Attributes:
        rows: the eligible pool rows (index reset to 0..N-1).
        X: (N, D) float32 descriptor, land-cover fractions ⊕ climate fractions, NaN as 0.
        columns: the class column of each descriptor dimension.
        strata: ``"<climate>|<land cover>"`` label per row (climate level and land-cover groups
            of the options applied).
        options: the sampling options.
    """

    rows: pd.DataFrame
    X: np.ndarray
    columns: list[str]
    strata: np.ndarray
    options: SamplingOptions


def single_threaded_blas() -> AbstractContextManager[Any]:
    """A context with BLAS (OpenBLAS, MKL) on one thread (no limit without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of the data extra
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def group_rng(seed: int, name: str, salt: int = 0) -> np.random.Generator:
    """A generator for one group that depends only on the seed and the group's name.

    So the picks inside a stratum do not change when another stratum gains or loses rows.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode()), salt]))


class Strategy:
    """Base class: one group holding every row, uniform random picks."""

    name: str = ""
    description: str = ""
    #: whether ``--alpha`` means anything for this strategy
    uses_alpha: bool = True

    def groups(self, ctx: SamplingContext, n: int) -> tuple[np.ndarray, list[str]]:
        """Group code per row (0..G-1) and the group names."""
        codes, names = pd.factorize(pd.Series(ctx.strata, dtype=object), sort=True)
        return codes.astype(np.int64), [str(x) for x in names]

    def allocation_weights(
        self, ctx: SamplingContext, codes: np.ndarray, n_groups: int
    ) -> np.ndarray | None:
        """Extra allocation factor per group (None: plain N_s ** alpha)."""
        return None

    def adjust_counts(
        self, ctx: SamplingContext, codes: np.ndarray, counts: np.ndarray
    ) -> np.ndarray:
        """Last word on the per-group budget after :func:`allocate` (default: unchanged)."""
        return counts

    def pick(
        self, ctx: SamplingContext, rows: np.ndarray, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``min(k, len(rows))`` of ``rows``, best first."""
        return rng.permutation(rows)[:k]

    def params(self) -> dict[str, Any]:
        """The strategy's own settings, for the manifest metadata (JSON-serialisable)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, str | int | float | bool)}

    def refine(self, ctx: SamplingContext, picks: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Optional pass over all picks at once (same length, same groups); default: none."""
        return picks

    def stratum_labels(
        self, ctx: SamplingContext, codes: np.ndarray, names: list[str]
    ) -> np.ndarray:
        """What goes into the output's ``stratum`` column (default: the group name)."""
        return np.asarray(names, dtype=object)[codes]


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator adding an instance of the class to :data:`STRATEGIES` under ``name``.

    Raises:
        CsmoeError: if the name is taken.
    """

    def deco(cls: type[Strategy]) -> type[Strategy]:
        STRATEGIES.add(name, cls())
        cls.name = name
        return cls

    return deco


def list_strategies() -> list[str]:
    """Registered strategy names, in registration order (the default first)."""
    return STRATEGIES.names()


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name``.

    Raises:
        UnknownNameError: for an unknown name (the message lists the known ones).
    """
    return STRATEGIES.get(name)


def group_spread(X: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Root-mean-square distance of each group's descriptors to the group mean (vectorised)."""
    sizes = np.bincount(codes, minlength=n_groups).astype(np.float64)
    safe = np.maximum(sizes, 1.0)
    sq = np.bincount(
        codes, weights=np.einsum("ij,ij->i", X, X, dtype=np.float64), minlength=n_groups
    )
    mean_sq = np.zeros(n_groups)
    for j in range(X.shape[1]):  # D bincounts, not N Python steps
        mean_sq += (np.bincount(codes, weights=X[:, j], minlength=n_groups) / safe) ** 2
    return np.sqrt(np.maximum(sq / safe - mean_sq, 0.0))


def js_bounded_counts(
    X: np.ndarray,
    codes: np.ndarray,
    counts: np.ndarray,
    bound: float,
    single: np.ndarray | None = None,
    max_moves: int = 4000,
    parts: list[tuple[slice, float, float]] | None = None,
) -> np.ndarray:
    """Move budget between groups until the predicted divergences of the sample are bounded.

    The prediction of a part (e.g. the land-cover columns) is the JS divergence (bits) between
    the sample's mean descriptor and the pool's, where a group with c >= 2 picks contributes c
    times its mean descriptor and a group with one pick contributes ``single`` (the row a
    one-pick group actually gets, its medoid: often purer than the mean, which is what makes
    many singleton strata skew the sample). Each move takes one row from the group whose loss
    lowers the weighted sum of the parts' divergences most and gives it to the group whose gain
    lowers it most (greedy descent), never emptying a group that has a budget (so strata
    coverage is kept) and never exceeding a group's size. Stops when every part is within its
    bound, when no move helps, or after ``max_moves``. Deterministic (ties: lowest index).

    Args:
        X: (N, D) descriptors.
        codes: group per row.
        counts: budget per group (from :func:`allocate`).
        bound: target divergence in bits when ``parts`` is None (then one part: all columns).
        single: (G, D) descriptor of a group's only pick; default: the group mean.
        max_moves: cap on single-row moves.
        parts: (columns, weight, bound) per part.

    Returns:
        The adjusted int64 counts (same total).
    """
    counts = np.asarray(counts, dtype=np.int64).copy()
    parts = parts or [(slice(0, X.shape[1]), 1.0, bound)]
    g = len(counts)
    sizes = np.bincount(codes, minlength=g)
    sums = np.empty((g, X.shape[1]))
    for j in range(X.shape[1]):  # D bincounts, not N Python steps
        sums[:, j] = np.bincount(codes, weights=X[:, j], minlength=g)
    means = sums / np.maximum(sizes, 1)[:, None]
    one = means if single is None else np.asarray(single, dtype=np.float64)
    pool_total = sums.sum(axis=0)
    parts = [p for p in parts if pool_total[p[0]].sum() > 0]
    if not parts:
        return counts
    targets = [pool_total[p[0]] / pool_total[p[0]].sum() for p in parts]

    def divergences(T: np.ndarray) -> np.ndarray:
        """(rows, parts) JS divergence of each candidate total."""
        return np.stack(
            [js_divergence_rows(T[:, p[0]], t) for p, t in zip(parts, targets, strict=True)], 1
        )

    weights = np.array([p[1] for p in parts])
    bounds_ = np.array([p[2] for p in parts])

    def contrib(c: np.ndarray, groups: np.ndarray) -> np.ndarray:
        c = c[:, None]
        return np.where(c == 1, one[groups], c * means[groups])

    idx = np.arange(g)
    keep = counts > 0  # groups with a budget keep at least one row
    total = contrib(counts, idx).sum(axis=0)
    # phase 0: the first part alone (land cover, the quality goal); phase 1: the weighted sum,
    # never letting the first part rise above max(its bound, where phase 0 left it)
    cap = np.inf
    for phase in (0, 1):
        w = weights if phase else np.r_[weights[0], np.zeros(len(weights) - 1)]
        for _ in range(max_moves):
            cur = divergences(total[None, :])[0]
            if (cur <= bounds_).all() or (phase == 0 and cur[0] <= bounds_[0]):
                break
            now = float(cur @ w)
            up_ok = np.flatnonzero(counts < sizes)
            if len(up_ok) == 0:
                break
            c = counts[up_ok]
            delta_up = contrib(c + 1, up_ok) - contrib(c, up_ok)
            k = int(np.argmin(divergences(total[None, :] + delta_up) @ w))
            up = int(up_ok[k])
            after = total + delta_up[k]
            down_ok = np.flatnonzero((counts > np.where(keep, 1, 0)) & (idx != up))
            if len(down_ok) == 0:
                break
            c = counts[down_ok]
            delta_down = contrib(c - 1, down_ok) - contrib(c, down_ok)
            div = divergences(after[None, :] + delta_down)
            loss = np.where(div[:, 0] <= cap, div @ w, np.inf)
            k = int(np.argmin(loss))
            if loss[k] >= now - 1e-12:
                break
            down = int(down_ok[k])
            counts[up] += 1
            counts[down] -= 1
            total = after + delta_down[k]
        if len(parts) == 1:
            break
        cap = max(bounds_[0], float(divergences(total[None, :])[0][0]))
    return counts


@register_strategy("thematic-climatic")
class ThematicClimatic(Strategy):
    """Strata = (climate, dominant land cover), rows that cover each stratum's descriptors.

    n_s ∝ N_s ** alpha, at least one each; inside a stratum, rows that cover its descriptor
    distribution.

    Steps: (0) if the land-cover divergence that the N_s ** alpha budget predicts exceeds
    ``js_bound``, single rows of budget move between strata until it does not (every stratum
    keeps its row; see :func:`js_bounded_counts`); (1) per stratum, k-means on the descriptors (land-cover ⊕ climate fractions), each
    cluster represented by its medoid; (2) a global alternating k-medoids pass in which every
    pick may move inside its own stratum toward the pool rows it actually serves (picks of
    neighbouring strata stop covering the same rows twice; counts per stratum unchanged);
    (3) if the sample's mean land-cover fractions are still more than ``balance_target`` (JS,
    bits) from the pool's, picks move to near-equivalent covers (cell cost at most
    ``balance_tol`` higher) that bring the mean closer; (3b) up to ``swap_sweeps`` full sweeps
    of single swaps, one pick for one row of any stratum
    (:func:`~csmoe_data.sampling.coverage.sweep_refine`, FasterPAM-style: every row is a
    candidate once per sweep, pruned by the triangle inequality): a local search on the mean
    distance from a pool row to its nearest pick (the figure ``kcenter_mean_radius``),
    penalised by the land-cover JS divergence, returning the best state with that divergence
    <= ``swap_js_bound`` (or no higher than before, where it was higher already), no higher
    mean distance, no row farther from its nearest pick than the worst row before, and every
    stratum still covered: budget moves to where it serves the most rows, which the
    N_s ** alpha budgets cannot know (``swap_share`` > 0 adds the older sampled-batch search,
    :func:`~csmoe_data.sampling.coverage.swap_refine`, before it); (4) up to ``max_repairs``
    times, the worst-covered pool row gets a pick of its own stratum moved toward it when that
    lowers the maximum distance at < 1% cost in mean distance and keeps the land-cover
    divergence <= ``repair_js_bound`` (or where it was). Steps 2-4 run on pools up to 40 M
    rows x picks (a random subset of rows beyond), with BLAS on one thread (their products are
    small). Measured against the other choices on real
    pools in `BENCHMARKS.md`.

    Attributes:
        within: covering method inside a stratum (``kmeans``, ``kcenter``, ``hybrid``; see
            :mod:`csmoe_data.sampling.coverage`).
        medoid_share: share of a stratum's picks taken as k-means medoids by ``hybrid``.
        spread_beta: exponent of the stratum spread (RMS distance to its mean descriptor) as an
            extra allocation weight; 0 (default) ignores spread: measured, it did not lower
            the distances and it raised the divergence.
        global_refine: run steps (2) to (4).
        balance_tol, balance_target, balance: step (3); ``balance`` = ``landcover`` balances the
            land-cover fractions only, anything else land cover and climate.
        max_repairs: step (4) rounds at most (0 skips it); it stops earlier when the worst
            row cannot be helped. Worst rows come in plateaus (on a 100 km global grid,
            dozens within 3% of the maximum), so 12 rounds left the maximum radius at
            0.60-0.63x random where 40 reach 0.55-0.60x for +0.5% mean radius.
        js_bound: allocation step (0): when the land-cover JS divergence (bits) that the
            allocation predicts (stratum mean fractions weighted by the stratum budgets) exceeds
            this, single rows of budget move between strata (:func:`js_bounded_counts`; every
            stratum keeps at least one) until it does not; the budget moved is recorded as
            ``budget_moved`` in the ``sampling`` metadata. It matters on pools dominated by a few huge, uniform
            strata (desert, ice, open sea of one crop; e.g. 1.2 km patches), where
            ``N_s ** 0.5`` starves them and no choice of rows inside a stratum can restore the
            class balance. None or 0 turns it off.
        climate_js_weight: > 0 adds a second phase to those moves that also lowers the climate
            divergence (weight, bound ``2 * js_bound``) without letting the land-cover one rise
            above where the first phase left it. Off by default: measured, it cut climate JS
            on one pool (0.057 -> 0.047 at 1%) at a higher mean radius (0.72 -> 0.74 of random)
            and did not help the 1.2 km patch pool (0.112 -> 0.109).
        swap_share: the sampled-batch swaps of step (3b) make at most ``ceil(swap_share * n)``
            swaps (0, the default, skips them): measured on real global pools at n = 2%
            (`BENCHMARKS.md`), the sweeps alone end lower at less CPU.
        swap_js_bound: the land-cover JS divergence (bits) step (3b) holds the sample under
            (0.03, the quality goal, less a margin that step 4 may use).
        swap_sweeps: step (3b) makes at most this many full sweeps (0 skips them); it stops
            earlier after a sweep without a swap.
        repair_js_bound: the land-cover JS divergence step (4) holds the sample under (the
            0.03 goal less a rounding margin).
    """

    description = (
        "strata by climate x dominant land cover, alpha allocation, descriptor-covering picks"
    )

    def __init__(
        self,
        within: str = "kmeans",
        medoid_share: float = 0.5,
        spread_beta: float = 0.0,
        refine: bool = True,
        balance_tol: float = 0.075,
        balance: str = "landcover",
        balance_target: float = 0.03,
        max_repairs: int = 40,
        js_bound: float | None = 0.025,
        climate_js_weight: float = 0.0,
        swap_share: float = 0.0,
        swap_js_bound: float = 0.0295,
        swap_sweeps: int = 4,
        repair_js_bound: float = 0.0299,
    ):
        self.within = within
        self.medoid_share = medoid_share
        self.spread_beta = spread_beta
        self.global_refine = refine
        self.balance_tol = balance_tol
        self.balance = balance
        self.balance_target = balance_target
        self.max_repairs = max_repairs
        self.js_bound = js_bound
        self.climate_js_weight = climate_js_weight
        self.swap_share = swap_share
        self.swap_js_bound = swap_js_bound
        self.swap_sweeps = swap_sweeps
        self.repair_js_bound = repair_js_bound

    def adjust_counts(
        self, ctx: SamplingContext, codes: np.ndarray, counts: np.ndarray
    ) -> np.ndarray:
        """Move single rows of budget until the predicted divergence is bounded (step 0)."""
        if not self.js_bound or len(codes) == 0 or counts.sum() == 0:
            return counts
        n_lc = sum(1 for c in ctx.columns if c.startswith(LANDCOVER_PREFIX))
        if n_lc == 0:
            return counts
        # the row a one-pick stratum gets is its medoid: predict with it, not with the mean
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(counts) + 1))
        sizes = np.maximum(np.bincount(codes, minlength=len(counts)), 1)
        single = np.empty((len(counts), ctx.X.shape[1]))
        for j in range(ctx.X.shape[1]):  # group means, D bincounts
            single[:, j] = np.bincount(codes, weights=ctx.X[:, j], minlength=len(counts)) / sizes
        rng = group_rng(ctx.options.seed, "js-bound")
        # medoids where a stratum has (or is one move from) a single pick; means elsewhere
        for g in np.flatnonzero((counts > 0) & (counts <= 2)):
            members = order[bounds[g] : bounds[g + 1]]
            single[g] = ctx.X[medoid(ctx.X, members, rng)]
        parts = [(slice(0, n_lc), 1.0, self.js_bound)]
        if self.climate_js_weight and n_lc < ctx.X.shape[1]:
            parts.append((slice(n_lc, ctx.X.shape[1]), self.climate_js_weight, 2.0 * self.js_bound))
        return js_bounded_counts(ctx.X, codes, counts, self.js_bound, single, parts=parts)

    def refine(self, ctx: SamplingContext, picks: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Steps 2-4: global k-medoids moves, class balance, worst-row repairs."""
        if not self.global_refine:
            return picks
        n_lc = sum(1 for c in ctx.columns if c.startswith(LANDCOVER_PREFIX))
        parts = (
            [slice(0, n_lc)]
            if self.balance == "landcover"
            else [slice(0, n_lc), slice(n_lc, len(ctx.columns))]
        )
        rng = group_rng(ctx.options.seed, "refine")
        # the products here are small (a cell's candidates by its neighbours): a multi-threaded
        # BLAS spins its threads on each, which measured several times the CPU on a busy machine
        # (BLAS splits products by output blocks, so results do not change)
        with single_threaded_blas():
            return self._refine(ctx, picks, codes, rng, n_lc, parts)

    def _refine(
        self,
        ctx: SamplingContext,
        picks: np.ndarray,
        codes: np.ndarray,
        rng: np.random.Generator,
        n_lc: int,
        parts: list[slice],
    ) -> np.ndarray:
        """Steps 2-4 (see :meth:`refine`), in order."""
        picks = refine_medoids(
            ctx.X,
            picks,
            codes,
            rng,
            parts=parts,
            balance_tol=self.balance_tol,
            balance_target=self.balance_target,
        )
        if self.swap_share > 0 and n_lc:
            picks = swap_refine(
                ctx.X,
                picks,
                codes,
                rng,
                landcover=slice(0, n_lc),
                js_bound=self.swap_js_bound,
                max_swaps=int(np.ceil(self.swap_share * len(picks))),
            )
        if self.swap_sweeps > 0 and n_lc:
            picks = sweep_refine(
                ctx.X,
                picks,
                codes,
                rng,
                landcover=slice(0, n_lc),
                js_bound=self.swap_js_bound,
                max_sweeps=self.swap_sweeps,
            )
        return repair_max(
            ctx.X,
            picks,
            codes,
            rng,
            rounds=self.max_repairs,
            landcover=slice(0, n_lc) if n_lc else None,
            js_bound=self.repair_js_bound,
            across=self.swap_sweeps > 0 or self.swap_share > 0,
        )

    def allocation_weights(
        self, ctx: SamplingContext, codes: np.ndarray, n_groups: int
    ) -> np.ndarray | None:
        """Stratum spread ** ``spread_beta`` (None when ``spread_beta`` is 0)."""
        if not self.spread_beta:
            return None
        spread = group_spread(ctx.X, codes, n_groups)
        return spread**self.spread_beta

    def pick(
        self, ctx: SamplingContext, rows: np.ndarray, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Rows that cover the stratum's descriptor distribution (``within``), best first."""
        if k >= len(rows):
            return rows[cover(ctx.X[rows], len(rows), rng, "kcenter")] if len(rows) else rows
        return rows[cover(ctx.X[rows], k, rng, self.within, self.medoid_share)]


@register_strategy("stratified")
class Stratified(Strategy):
    """Strata = (climate, dominant land cover), n_s ∝ N_s ** alpha, uniform random inside."""

    description = "strata by climate x dominant land cover, alpha allocation, random picks"


@register_strategy("cluster")
class Cluster(Strategy):
    """k-means on the whole descriptor; clusters are the strata; random picks inside.

    The number of clusters is ``clip(round(n / 4), 2, 256)`` (at most n and the number of
    rows): about four picks per cluster, so that alpha still shapes the allocation. The fit
    (k-means++ seeds, Lloyd steps) sees at most 20,000 random rows; every row is then assigned.
    """

    description = "k-means clusters of the descriptor, alpha allocation, random picks"
    max_fit = 20_000

    def n_clusters(self, n: int, rows: int) -> int:
        """Number of k-means clusters for a budget of ``n`` picks from ``rows`` rows."""
        return int(max(1, min(rows, n, max(2, min(256, round(n / 4))))))

    def groups(self, ctx: SamplingContext, n: int) -> tuple[np.ndarray, list[str]]:
        """k-means clusters of the descriptor, numbered by first appearance."""
        m = len(ctx.X)
        k = self.n_clusters(n, m)
        if k <= 1 or m == 0:
            return np.zeros(m, dtype=np.int64), ["c000"]
        rng = group_rng(ctx.options.seed, "cluster")
        fit = (
            ctx.X
            if m <= self.max_fit
            else ctx.X[np.sort(rng.choice(m, self.max_fit, replace=False))]
        )
        centres, _ = lloyd(fit, k, rng, iters=20)
        codes = np.empty(m, dtype=np.int64)
        step = max(1, 4_000_000 // k)
        cc = np.einsum("ij,ij->i", centres, centres)[None, :]
        for s in range(0, m, step):  # chunked nearest-centre assignment of every row
            codes[s : s + step] = np.argmin(cc - 2.0 * (ctx.X[s : s + step] @ centres.T), axis=1)
        k = len(centres)
        # renumber by first appearance so names do not depend on k-means' internal order
        _, first = np.unique(codes, return_index=True)
        order = np.argsort(first)
        remap = np.empty(k, dtype=np.int64)
        present = np.unique(codes)
        remap[present[order]] = np.arange(len(present))
        codes = remap[codes]
        return codes, [f"c{i:03d}" for i in range(len(present))]


@register_strategy("random")
class Random(Strategy):
    """Uniform random rows (the baseline); the ``stratum`` column still names (climate, land cover)."""

    description = "uniform random baseline"
    uses_alpha = False

    def groups(self, ctx: SamplingContext, n: int) -> tuple[np.ndarray, list[str]]:
        """One group holding every row."""
        return np.zeros(len(ctx.X), dtype=np.int64), ["all"]

    def stratum_labels(
        self, ctx: SamplingContext, codes: np.ndarray, names: list[str]
    ) -> np.ndarray:
        """The (climate, land cover) stratum of each row."""
        return ctx.strata
