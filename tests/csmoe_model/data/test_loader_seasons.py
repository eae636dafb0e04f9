"""Seasonal caches: which acquisition each sample reads (seeded random per epoch, or fixed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from csmoe_model.data.loader import BatchPlan, CacheBatches, PlanSampler


def test_random_seasons_are_seeded_and_vary() -> None:
    rows = np.arange(64)
    plan = BatchPlan(rows, 16, seed=3, seasons=4, season=None)
    again = BatchPlan(rows, 16, seed=3, seasons=4, season=None)
    codes = np.concatenate([plan.season_codes(step, 16) for step in range(8)])
    np.testing.assert_array_equal(
        codes, np.concatenate([again.season_codes(s, 16) for s in range(8)])
    )
    assert set(codes.tolist()) == {0, 1, 2, 3}
    assert not np.array_equal(plan.season_codes(0, 16), plan.season_codes(4, 16))  # next epoch
    fixed = BatchPlan(rows, 16, seed=3, seasons=4, season=2)
    assert set(fixed.season_codes(0, 16).tolist()) == {2}


def test_batches_read_the_drawn_season(tmp_path: Path) -> None:
    rows, seasons = 12, 4
    # array row k holds the value k everywhere: a batch shows which array rows it read
    for g, shape in (("s2_10", (4, 6, 6)), ("s1", (2, 6, 6))):
        arr = np.lib.format.open_memmap(
            tmp_path / f"{g}.npy",
            mode="w+",
            dtype=np.uint16 if g != "s1" else np.float16,
            shape=(rows * seasons, *shape),
        )
        arr[:] = np.arange(rows * seasons).reshape(-1, 1, 1, 1)
        arr.flush()
    plan = BatchPlan(np.arange(rows), 4, seed=1, seasons=seasons, season=None)
    data = CacheBatches(str(tmp_path), ("s2_10", "s1"), plan, augment=False)
    for step, epoch, idx in PlanSampler(plan, 0, 6):
        batch = data[(step, epoch, idx)]
        read = batch["s2_10"].numpy().view(np.uint16)[:, 0, 0, 0].astype(np.int64)
        np.testing.assert_array_equal(read, idx * seasons + plan.season_codes(step, len(idx)))
        np.testing.assert_array_equal(batch["s1"].numpy()[:, 0, 0, 0].astype(np.int64), read)
