"""Sampling: allocation arithmetic, strategies, determinism, filters, metadata."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from csmoe_common.divergence import js_divergence
from csmoe_common.errors import CsmoeError, UnknownNameError
from csmoe_common.registry import Registry
from csmoe_data.errors import CsmoeDataError
from csmoe_data.sampling import (
    STRATEGIES,
    SamplingOptions,
    Strategy,
    StrategyName,
    allocate,
    list_strategies,
    pool_checksum,
    register_strategy,
    sample_manifest,
)
from csmoe_data.sampling import strategies as strategies_mod
from csmoe_data.sampling.coverage import (
    _nearest_picks,
    _swap_in_lists,
    kcenter_greedy,
    kmeans_medoids,
    refine_medoids,
    repair_max,
    swap_refine,
    sweep_refine,
)
from csmoe_data.sampling.features import (
    climate_columns,
    landcover_columns,
    load_landcover_groups,
    strata_labels,
)

LC = [1, 2, 3, 4]
KG = ["Cfb", "Dfb", "BWh"]


def make_pool(rows: int = 400, seed: int = 0, cell: float = 0.1) -> gpd.GeoDataFrame:
    """Touching square cells on a lon/lat lattice with mixed, skewed descriptors."""
    rng = np.random.default_rng(seed)
    lc_major = rng.choice(len(LC), size=rows, p=[0.6, 0.25, 0.1, 0.05])
    kg_major = rng.choice(len(KG), size=rows, p=[0.7, 0.2, 0.1])
    lc = rng.dirichlet(np.ones(len(LC)) * 0.3, size=rows)
    lc[np.arange(rows), lc_major] += 1.0
    lc /= lc.sum(axis=1, keepdims=True)
    kg = rng.dirichlet(np.ones(len(KG)) * 0.2, size=rows)
    kg[np.arange(rows), kg_major] += 1.5
    kg /= kg.sum(axis=1, keepdims=True)
    data: dict[str, object] = {"patch_id": [f"p{i:05d}" for i in range(rows)]}
    for j, c in enumerate(LC):
        data[f"lc_{c}"] = lc[:, j].astype(np.float32)
    data["lc_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["lc_major"] = pd.array(np.asarray(LC)[lc.argmax(axis=1)], dtype="Int32")
    data["lc_entropy"] = np.zeros(rows, dtype=np.float32)
    for j, s in enumerate(KG):
        data[f"kg_{s}"] = kg[:, j].astype(np.float32)
    data["kg_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["kg_major"] = pd.array(np.asarray(KG)[kg.argmax(axis=1)], dtype="string")
    data["crs"] = "EPSG:32633"
    data["cloud"] = rng.uniform(0, 1, rows)
    side = int(np.ceil(np.sqrt(rows)))
    x = (np.arange(rows) % side) * cell + 10.0
    y = (np.arange(rows) // side) * cell + 45.0
    return gpd.GeoDataFrame(
        pd.DataFrame(data), geometry=shapely.box(x, y, x + cell, y + cell), crs="EPSG:4326"
    )


# --- allocation ------------------------------------------------------------------------


def test_allocate_alpha_extremes() -> None:
    sizes = [900, 90, 10]
    assert allocate(sizes, 100, alpha=1.0).tolist() == [90, 9, 1]
    assert allocate([900, 90, 50], 99, alpha=0.0).tolist() == [33, 33, 33]
    # alpha 0: an equal share, capped at the stratum size, the rest redistributed
    assert allocate(sizes, 99, alpha=0.0).tolist() == [45, 44, 10]


def test_allocate_sqrt_rule() -> None:
    counts = allocate([10_000, 100], 110, alpha=0.5)
    assert counts.tolist() == [100, 10]  # sqrt sizes 100 : 10


def test_allocate_min_one_per_stratum_and_exact_total() -> None:
    sizes = np.array([100_000, 50, 3, 1, 1, 7])
    for n in range(6, 200, 7):
        for alpha in (0.0, 0.3, 0.5, 1.0):
            c = allocate(sizes, n, alpha)
            assert c.sum() == n
            assert (c >= 1).all()
            assert (c <= sizes).all()


def test_allocate_fewer_samples_than_strata() -> None:
    c = allocate([100, 50, 10, 5], 2, alpha=1.0)
    assert c.sum() == 2 and (c <= 1).all()
    assert c.tolist() == [1, 1, 0, 0]  # the largest weights win


def test_allocate_budget_larger_than_pool_and_empty_strata() -> None:
    assert allocate([5, 0, 3], 100, 0.5).tolist() == [5, 0, 3]
    assert allocate([0, 0], 10, 0.5).tolist() == [0, 0]
    assert allocate([4, 0, 4], 3, 0.5)[1] == 0
    assert allocate([], 10, 0.5).tolist() == []
    assert allocate([5, 5], 0, 0.5).tolist() == [0, 0]


def test_allocate_weights_shift_leftovers() -> None:
    plain = allocate([100, 100], 50, 0.5)
    weighted = allocate([100, 100], 50, 0.5, weights=np.array([1.0, 3.0]))
    assert plain.tolist() == [25, 25]
    assert weighted[1] > weighted[0] and weighted.sum() == 50


def test_allocate_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        allocate([-1, 2], 3)
    with pytest.raises(ValueError):
        allocate([1, 2], -3)
    with pytest.raises(ValueError):
        allocate([1, 2], 3, alpha=-1)


# --- descriptor helpers ------------------------------------------------------------------


def test_column_helpers_and_strata() -> None:
    pool = make_pool(50)
    assert landcover_columns(pool.columns) == [f"lc_{c}" for c in LC]
    assert climate_columns(pool.columns) == [f"kg_{s}" for s in KG]
    labels = strata_labels(pool)
    assert labels[0] == f"{pool['kg_major'].iloc[0]}|{pool['lc_major'].iloc[0]}"
    grouped = strata_labels(pool, "group", {1: "forest", 2: "forest"})
    assert set(s.split("|")[0] for s in grouped) <= {"C", "D", "B"}
    assert set(s.split("|")[1] for s in grouped) <= {"forest", "3", "4"}


def test_strata_with_missing_majority() -> None:
    pool = make_pool(10)
    pool.loc[0, "lc_major"] = pd.NA
    pool.loc[1, "kg_major"] = pd.NA
    labels = strata_labels(pool)
    assert labels[0].endswith("|none") and labels[1].startswith("none|")


@pytest.mark.parametrize("kind", ["json", "json-lists", "csv"])
def test_landcover_groups_files(tmp_path, kind: str) -> None:
    if kind == "json":
        p = tmp_path / "g.json"
        p.write_text(json.dumps({"1": "forest", "2": "forest", "3": "open"}))
    elif kind == "json-lists":
        p = tmp_path / "g.json"
        p.write_text(json.dumps({"forest": [1, 2], "open": [3]}))
    else:
        p = tmp_path / "g.csv"
        p.write_text("code,group\n1,forest\n2,forest\n3,open\n")
    assert load_landcover_groups(p) == {1: "forest", 2: "forest", 3: "open"}


def test_landcover_groups_errors(tmp_path) -> None:
    with pytest.raises(CsmoeDataError, match="does not exist"):
        load_landcover_groups(tmp_path / "nope.json")
    bad = tmp_path / "bad.csv"
    bad.write_text("code,group\n1\n")
    with pytest.raises(CsmoeDataError, match="bad land-cover groups"):
        load_landcover_groups(bad)


# --- covering -------------------------------------------------------------------------


def test_kcenter_greedy_picks_the_extremes() -> None:
    X = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 0.0], [0.0, 1.0], [0.05, 0.05]], dtype=np.float32)
    picks = kcenter_greedy(X, 3)
    assert set(picks.tolist()) >= {2, 3}
    assert len(set(picks.tolist())) == 3


def test_kmeans_medoids_one_per_blob_and_duplicates() -> None:
    rng = np.random.default_rng(0)
    blobs = np.array([[0, 0], [5, 5], [10, 0]], dtype=np.float32)
    X = np.vstack([b + rng.normal(0, 0.1, (30, 2)) for b in blobs]).astype(np.float32)
    picks = kmeans_medoids(X, 3, np.random.default_rng(1))
    assert sorted(p // 30 for p in picks) == [0, 1, 2]
    dup = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    picks = kmeans_medoids(dup, 5, np.random.default_rng(1))
    assert len(set(picks.tolist())) == 5
    assert {tuple(dup[p]) for p in picks} == {tuple(r) for r in np.eye(3)}


def test_kmeans_medoids_large_k_runs_hierarchically() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((3000, 3)).astype(np.float32)
    picks = kmeans_medoids(X, 300, np.random.default_rng(1))  # > KMEANS_MAX_K: split first
    assert len(picks) == 300 and len(set(picks.tolist())) == 300
    # spread over the cube: every octant holds a fair share of the picks
    octant = (X[picks] > 0.5).astype(int) @ np.array([1, 2, 4])
    assert np.bincount(octant, minlength=8).min() >= 20


def test_repair_max_lowers_the_worst_distance_within_groups() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((400, 2)).astype(np.float32)
    groups = (X[:, 0] > 0.5).astype(np.int64)
    # picks bunched in one corner of each group: the far corners are badly covered
    start = np.concatenate(
        [
            np.flatnonzero((groups == 0) & (X[:, 1] < 0.3))[:4],
            np.flatnonzero((groups == 1) & (X[:, 1] < 0.3))[:4],
        ]
    )

    def radii(sel: np.ndarray) -> np.ndarray:
        return np.sqrt(((X[:, None, :] - X[None, sel, :]) ** 2).sum(-1)).min(axis=1)

    out = repair_max(X, start, groups, np.random.default_rng(0), mean_tol=0.5)
    assert (groups[out] == groups[start]).all() and len(set(out.tolist())) == len(out)
    assert radii(out).max() < radii(start).max()
    assert radii(out).sum() <= radii(start).sum() * 1.5


def test_repair_max_across_groups_moves_a_spare_pick_to_the_worst_row() -> None:
    rng = np.random.default_rng(3)
    X = rng.random((500, 2)).astype(np.float32)
    groups = (X[:, 0] > 0.5).astype(np.int64)
    # six picks crowd the left half, the right half has one pick in a corner
    left = np.flatnonzero(groups == 0)
    right = np.flatnonzero(groups == 1)
    start = np.r_[left[:6], right[np.argmin(X[right, 0] + X[right, 1])]]

    def radii(sel: np.ndarray) -> np.ndarray:
        return np.sqrt(((X[:, None, :] - X[None, sel, :]) ** 2).sum(-1)).min(axis=1)

    within = repair_max(X, start, groups, np.random.default_rng(0), mean_tol=0.5)
    across = repair_max(X, start, groups, np.random.default_rng(0), mean_tol=0.5, across=True)
    again = repair_max(X, start, groups, np.random.default_rng(0), mean_tol=0.5, across=True)
    assert across.tolist() == again.tolist()
    assert set(groups[across].tolist()) == {0, 1} and len(set(across.tolist())) == len(across)
    assert (groups[across] == 1).sum() > 1  # a spare left pick moved right
    assert radii(across).max() < radii(within).max() < radii(start).max()
    assert radii(across).sum() <= radii(start).sum() * 1.5


def test_refine_keeps_groups_and_never_worsens() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((600, 3)).astype(np.float32)
    groups = (X[:, 0] > 0.5).astype(np.int64)
    start = np.concatenate([np.flatnonzero(groups == 0)[:5], np.flatnonzero(groups == 1)[:5]])

    def cost(sel: np.ndarray) -> float:
        d = np.sqrt(((X[:, None, :] - X[None, sel, :]) ** 2).sum(-1)).min(axis=1)
        return float(d.sum())

    out = refine_medoids(X, start, groups, np.random.default_rng(0))
    assert (groups[out] == groups[start]).all()
    assert len(set(out.tolist())) == len(out)
    assert cost(out) < cost(start)


def _swap_pool() -> tuple[np.ndarray, np.ndarray]:
    """Three land-cover fractions: a varied group (mostly class 0) and a nearly pure group."""
    rng = np.random.default_rng(4)
    varied = rng.dirichlet([4.0, 1.0, 1.0], 400)
    pure = np.tile([0.0, 1.0, 0.0], (400, 1)) + rng.uniform(0, 0.002, (400, 3))
    X = np.vstack([varied, pure / pure.sum(1, keepdims=True)]).astype(np.float32)
    return X, np.repeat([0, 1], 400)


def _mean_distance(X: np.ndarray, sel: np.ndarray) -> float:
    return float(np.sqrt(((X[:, None, :] - X[None, sel, :]) ** 2).sum(-1)).min(axis=1).mean())


def test_swap_refine_moves_budget_across_groups_and_keeps_coverage() -> None:
    X, groups = _swap_pool()
    # most of the budget wasted on the pure group, where one pick serves every row
    start = np.r_[np.arange(2), 400 + np.arange(8)]
    out = swap_refine(X, start, groups, np.random.default_rng(0), slice(0, 3), 1.0, 40)
    again = swap_refine(X, start, groups, np.random.default_rng(0), slice(0, 3), 1.0, 40)
    assert out.tolist() == again.tolist()
    assert len(out) == len(start) and len(set(out.tolist())) == len(out)
    assert set(groups[out].tolist()) == {0, 1}  # the pure group keeps its row
    assert (groups[out] == 0).sum() > 2
    assert _mean_distance(X, out) < 0.8 * _mean_distance(X, start)


def test_swap_refine_holds_the_landcover_divergence() -> None:
    X, groups = _swap_pool()
    start = np.r_[np.arange(4), 400 + np.arange(6)]

    def js(sel: np.ndarray) -> float:
        return js_divergence(X[sel].mean(0), X.mean(0))

    bound = js(start)
    free = swap_refine(X, start, groups, np.random.default_rng(0), slice(0, 3), 1.0, 40)
    held = swap_refine(X, start, groups, np.random.default_rng(0), slice(0, 3), bound, 40)
    assert js(free) > bound  # unconstrained, the swaps would skew the class mix
    assert js(held) <= bound + 1e-9
    assert _mean_distance(X, held) <= _mean_distance(X, start)
    assert _mean_distance(X, free) < _mean_distance(X, held) < _mean_distance(X, start)


def _clustered_pool(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Land-cover-like rows in many tight clusters of unequal size; groups cut across them."""
    rng = np.random.default_rng(seed)
    centres = rng.dirichlet(np.ones(6) * 0.5, 40)
    sizes = rng.integers(5, 60, 40)
    X = np.vstack(
        [rng.dirichlet(200 * c + 0.05, s) for c, s in zip(centres, sizes, strict=True)]
    ).astype(np.float32)
    groups = np.argmax(X[:, :3], axis=1).astype(np.int64)  # dominant class among the first 3
    return X, groups


def _all_swaps(X: np.ndarray, sel: np.ndarray, groups: np.ndarray) -> list[np.ndarray]:
    """Every single swap that keeps each group of ``sel`` holding a row."""
    out = []
    per_group = np.bincount(groups[sel], minlength=int(groups.max()) + 1)
    for j in range(len(sel)):
        for c in np.setdiff1d(np.arange(len(X)), sel):
            if per_group[groups[sel[j]]] == 1 and groups[c] != groups[sel[j]]:
                continue
            s = sel.copy()
            s[j] = c
            out.append(s)
    return out


def _radii(X: np.ndarray, sel: np.ndarray) -> np.ndarray:
    return np.sqrt(((X[:, None, :] - X[None, sel, :]) ** 2).sum(-1)).min(axis=1)


def test_sweep_refine_is_deterministic_and_keeps_every_group() -> None:
    X, groups = _clustered_pool()
    rng = np.random.default_rng(0)
    start = np.concatenate([rng.choice(np.flatnonzero(groups == g), 4) for g in range(3)])
    out = sweep_refine(X, start, groups, np.random.default_rng(1), slice(0, 6), 1.0)
    again = sweep_refine(X, start, groups, np.random.default_rng(1), slice(0, 6), 1.0)
    other = sweep_refine(X, start, groups, np.random.default_rng(2), slice(0, 6), 1.0)
    assert out.tolist() == again.tolist()
    assert out.tolist() != start.tolist() and other.tolist() != start.tolist()
    assert len(set(out.tolist())) == len(out)
    assert set(groups[out].tolist()) == {0, 1, 2}
    assert _radii(X, out).mean() < 0.8 * _radii(X, start).mean()
    assert _radii(X, out).max() <= _radii(X, start).max() + 1e-6  # the radius cap


def test_sweep_refine_ends_where_no_single_swap_helps() -> None:
    # with no divergence penalty it is plain k-medoids local search: at the end, no swap that
    # keeps the groups covered and the worst row within the cap lowers the mean distance (so
    # the pruned changes of the objective were exact)
    X, groups = _clustered_pool(seed=6)
    X, groups = X[:300], groups[:300]
    start = np.concatenate([np.flatnonzero(groups == g)[:3] for g in range(3)])
    cap = _radii(X, start).max()
    out = sweep_refine(
        X, start, groups, np.random.default_rng(0), slice(0, 6), 1.0, max_sweeps=50, penalty=0.0
    )
    now = _radii(X, out).mean()
    assert now < _radii(X, start).mean()
    for s in _all_swaps(X, out, groups):
        r = _radii(X, s)
        if r.max() <= cap:
            assert r.mean() >= now - 1e-6


def test_sweep_refine_beats_the_sampled_swaps() -> None:
    # the sampled batches of swap_refine stop after three batches without a swap; a sweep
    # tries every row, so it ends at least as low, here clearly lower
    X, groups = _clustered_pool(seed=7)
    start = np.concatenate([np.flatnonzero(groups == g)[:5] for g in range(3)])
    sampled = swap_refine(X, start, groups, np.random.default_rng(0), slice(0, 6), 1.0, 100)
    swept = sweep_refine(X, start, groups, np.random.default_rng(0), slice(0, 6), 1.0)
    assert _radii(X, swept).mean() < _radii(X, sampled).mean()


def test_sweep_refine_holds_the_landcover_divergence() -> None:
    X, groups = _swap_pool()
    start = np.r_[np.arange(4), 400 + np.arange(6)]

    def js(sel: np.ndarray) -> float:
        return js_divergence(X[sel].mean(0), X.mean(0))

    bound = js(start)
    free = sweep_refine(X, start, groups, np.random.default_rng(0), slice(0, 3), 1.0)
    held = sweep_refine(X, start, groups, np.random.default_rng(0), slice(0, 3), bound)
    assert js(free) > bound  # unconstrained, the swaps would skew the class mix
    assert js(held) <= bound + 1e-9
    assert _mean_distance(X, free) < _mean_distance(X, held) < _mean_distance(X, start)


def test_repair_max_holds_the_landcover_divergence() -> None:
    X, groups = _swap_pool()
    start = np.r_[np.arange(8), 400 + np.arange(2)]

    def js(sel: np.ndarray) -> float:
        return js_divergence(X[sel].mean(0), X.mean(0))

    rng = np.random.default_rng
    free = repair_max(X, start, groups, rng(0), mean_tol=0.5)
    held = repair_max(X, start, groups, rng(0), mean_tol=0.5, landcover=slice(0, 3), js_bound=0.0)
    assert js(free) > js(start)  # repairs alone move the class mix
    assert js(held) <= js(start) + 1e-9  # bounded by where it started
    assert _radii(X, held).max() < _radii(X, start).max()


def test_nearest_pick_lists_stay_exact_through_swaps() -> None:
    rng = np.random.default_rng(2)
    X = rng.random((300, 4)).astype(np.float32)
    sel = rng.choice(300, 12, replace=False)
    idx, dist = _nearest_picks(X, X[sel], 4)
    for _ in range(30):
        j = int(rng.integers(12))
        sel[j] = int(rng.choice(np.setdiff1d(np.arange(300), sel)))
        dj = np.sqrt(((X - X[sel[j]]) ** 2).sum(1)).astype(np.float64)
        _swap_in_lists(idx, dist, j, dj)
        short = ~np.isfinite(dist[:, 1])
        idx[short], dist[short] = _nearest_picks(X[short], X[sel], 4)
        exact = np.sqrt(((X[:, None, :] - X[None, sel, :]) ** 2).sum(-1))
        order = np.sort(exact, axis=1)
        finite = np.isfinite(dist)
        # every finite entry is the true k-th nearest distance, and names a pick that far away
        assert np.allclose(dist[finite], order[:, :4][finite], atol=1e-5)
        assert np.allclose(exact[np.arange(300)[:, None], idx][finite], dist[finite], atol=1e-5)


# --- sample_manifest -----------------------------------------------------------------------


def test_registry() -> None:
    assert list_strategies()[:4] == ["thematic-climatic", "stratified", "cluster", "random"]
    assert set(STRATEGIES) >= set(list_strategies())
    with pytest.raises(CsmoeError, match="already registered"):
        register_strategy("random")(Strategy)


def test_strategy_names_enum_lists_the_builtins() -> None:
    # the CLI's --strategy choices are this Enum: it must name exactly the built-in strategies
    assert [s.value for s in StrategyName] == list_strategies()[: len(StrategyName)]
    assert SamplingOptions().strategy == list_strategies()[0]


def test_register_custom_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    # a registry of its own for this test (the built-ins copied), so nothing leaks into others
    registry: Registry[Strategy] = Registry("sampling strategy")
    for name, entry in STRATEGIES.items():
        registry.add(name, entry)
    monkeypatch.setattr(strategies_mod, "STRATEGIES", registry)

    @register_strategy("first-rows-test")
    class FirstRows(Strategy):
        uses_alpha = False

        def groups(self, ctx, n):
            return np.zeros(len(ctx.X), dtype=np.int64), ["all"]

        def pick(self, ctx, rows, k, rng):
            return rows[:k]

    out, meta = sample_manifest(make_pool(30), SamplingOptions(n=4, strategy="first-rows-test"))
    assert out["patch_id"].tolist() == ["p00000", "p00001", "p00002", "p00003"]
    assert meta["strategy"] == "first-rows-test"
    assert "first-rows-test" in list_strategies()


@pytest.mark.parametrize("strategy", ["thematic-climatic", "stratified", "cluster", "random"])
def test_every_strategy_is_deterministic(strategy: str) -> None:
    pool = make_pool(300)
    a, meta_a = sample_manifest(pool, SamplingOptions(n=40, strategy=strategy, seed=3))
    b, meta_b = sample_manifest(pool, SamplingOptions(n=40, strategy=strategy, seed=3))
    c, _ = sample_manifest(pool, SamplingOptions(n=40, strategy=strategy, seed=4))
    assert len(a) == 40 and a["patch_id"].is_unique
    assert a["patch_id"].tolist() == b["patch_id"].tolist()
    assert a["stratum"].tolist() == b["stratum"].tolist()
    assert meta_a == meta_b
    assert a["patch_id"].tolist() != c["patch_id"].tolist()
    # output keeps pool order, all pool columns, plus stratum and split
    pos = a["patch_id"].str.slice(1).astype(int).tolist()
    assert pos == sorted(pos)
    assert set(pool.columns) | {"stratum", "split"} == set(a.columns)
    assert (a["split"] == "train").all()


def test_stratified_strategies_cover_every_stratum() -> None:
    pool = make_pool(400)
    strata = set(strata_labels(pool).tolist())
    for name in ("thematic-climatic", "stratified"):
        out, meta = sample_manifest(pool, SamplingOptions(n=len(strata) + 5, strategy=name))
        assert set(out["stratum"]) == strata
        assert meta["groups"] == len(strata) == meta["groups_selected"]


def test_default_beats_random_on_coverage_radius() -> None:
    from csmoe_data.stats import compute_stats

    pool = make_pool(600, seed=5)
    tc, _ = sample_manifest(pool, SamplingOptions(n=40, seed=0))
    rnd, _ = sample_manifest(pool, SamplingOptions(n=40, strategy="random", seed=0))
    s_tc, s_rnd = compute_stats(tc, pool), compute_stats(rnd, pool)
    assert s_tc["strata_coverage"] == 1.0
    assert s_tc["kcenter_max_radius"] < s_rnd["kcenter_max_radius"]
    assert s_tc["kcenter_mean_radius"] < s_rnd["kcenter_mean_radius"]


def test_alpha_one_is_proportional() -> None:
    pool = make_pool(400)
    out, _ = sample_manifest(pool, SamplingOptions(n=100, strategy="stratified", alpha=1.0))
    sizes = pd.Series(strata_labels(pool)).value_counts()
    counts = out["stratum"].value_counts()
    big = sizes.index[0]
    assert abs(counts[big] - 100 * sizes[big] / len(pool)) <= 1 + 0.05 * 100


def test_budget_larger_than_pool_and_n_none() -> None:
    pool = make_pool(30)
    out, meta = sample_manifest(pool, SamplingOptions(n=1000))
    assert len(out) == 30 and meta["selected"] == 30 and meta["pool_size"] == 30
    out, _ = sample_manifest(pool, SamplingOptions(n=None))
    assert len(out) == 30


def test_min_valid_frac_and_where_filters() -> None:
    pool = make_pool(100)
    pool.loc[:9, "lc_valid_frac"] = 0.2
    pool.loc[10:14, "kg_valid_frac"] = np.nan
    out, meta = sample_manifest(pool, SamplingOptions(n=None, where="cloud < 0.5"))
    rest = pool.iloc[15:]
    expected = set(rest.loc[rest["cloud"] < 0.5, "patch_id"])
    assert set(out["patch_id"]) == expected and meta["eligible"] == len(expected)
    out, _ = sample_manifest(pool, SamplingOptions(n=None, min_valid_frac=0.0))
    assert len(out) == 100


@pytest.mark.parametrize("expr", ["cloud <", "nope > 1", "cloud + 1"])
def test_bad_where_is_one_line(expr: str) -> None:
    with pytest.raises(CsmoeDataError) as err:
        sample_manifest(make_pool(20), SamplingOptions(n=5, where=expr))
    assert "\n" not in str(err.value) and "--where" in str(err.value)


def test_bad_options() -> None:
    pool = make_pool(20)
    with pytest.raises(UnknownNameError, match="unknown sampling strategy 'nope'; known: thematic"):
        sample_manifest(pool, SamplingOptions(n=5, strategy="nope"))
    with pytest.raises(CsmoeDataError, match="alpha"):
        sample_manifest(pool, SamplingOptions(n=5, alpha=-1))
    with pytest.raises(CsmoeDataError, match="descriptor columns"):
        sample_manifest(pool[["patch_id", "geometry"]], SamplingOptions(n=5))
    with pytest.raises(CsmoeDataError, match="geometry"):
        sample_manifest(
            pd.DataFrame(pool.drop(columns="geometry")), SamplingOptions(n=5, min_distance=10.0)
        )


def test_climate_level_group_and_landcover_groups(tmp_path) -> None:
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"veg": [1, 2, 3, 4]}))
    out, meta = sample_manifest(
        make_pool(200), SamplingOptions(n=10, climate_level="group", landcover_groups=groups)
    )
    assert set(out["stratum"]) == {"C|veg", "D|veg", "B|veg"}
    assert meta["options"]["landcover_groups"] == str(groups)
    assert meta["groups"] == 3


def test_metadata_and_checksum() -> None:
    pool = make_pool(100)
    out, meta = sample_manifest(pool, SamplingOptions(n=10, seed=7))
    assert meta["strategy"] == "thematic-climatic" and meta["seed"] == 7
    assert meta["pool_size"] == 100 and meta["selected"] == 10
    assert (
        meta["pool_checksum"] == pool_checksum(pool)
        and meta["pool_checksum_of"] == "ids+descriptors"
    )
    assert meta["options"]["n"] == 10
    json.dumps(meta)  # JSON-serialisable
    _, meta2 = sample_manifest(pool, SamplingOptions(n=10), pool_checksum="abc")
    assert meta2["pool_checksum"] == "abc" and meta2["pool_checksum_of"] == "file"


def test_checksum_is_stable_and_sensitive() -> None:
    pool = make_pool(50)
    c = pool_checksum(pool)
    assert c == pool_checksum(pool.copy()) and c.startswith("sha256:")
    changed = pool.copy()
    changed.loc[3, "lc_1"] = changed.loc[3, "lc_1"] + 0.01
    assert pool_checksum(changed) != c
    renamed = pool.copy()
    renamed.loc[0, "patch_id"] = "other"
    assert pool_checksum(renamed) != c
    nan = pool.copy()
    nan.loc[0, "lc_1"] = np.nan
    zero = pool.copy()
    zero.loc[0, "lc_1"] = 0.0
    assert pool_checksum(nan) != pool_checksum(zero)
    # geometry and pass-through attributes are not part of the checksum
    moved = pool.copy()
    moved["cloud"] = 0.0
    assert pool_checksum(moved) == c


def test_progress_bar_does_not_change_the_sample() -> None:
    pool = make_pool(200)
    quiet, _ = sample_manifest(pool, SamplingOptions(n=20), progress=False)
    shown, _ = sample_manifest(pool, SamplingOptions(n=20), progress=True)
    assert quiet["patch_id"].tolist() == shown["patch_id"].tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_more_distinct_rows_agrees_with_the_exact_count(dtype) -> None:  # noqa: ANN001
    from csmoe_data.sampling.coverage import _more_distinct_rows

    rng = np.random.default_rng(5)
    base = rng.dirichlet(np.ones(6), size=40).astype(dtype)
    X = base[rng.integers(0, 40, size=300)]  # many repeated rows
    X[::7, 0] = -X[::7, 0] * 0.0  # -0.0 and 0.0 are one value
    X[1::7, 0] = 0.0
    exact = len(np.unique(X, axis=0))
    for k in range(0, exact + 3):
        assert _more_distinct_rows(X, k) == (exact > k), k
