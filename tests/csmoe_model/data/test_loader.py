"""Batch plans and the device loader over an imagery cache."""

from __future__ import annotations

import numpy as np
import torch

from csmoe_model.data import (
    BatchPlan,
    open_cache,
)


def test_batch_plan_is_a_function_of_seed_and_epoch_and_shards_ranks() -> None:
    rows = np.arange(100, 140)
    plan = BatchPlan(rows, 8, seed=3)
    e0, e1 = plan.epoch_rows(0), plan.epoch_rows(1)
    assert sorted(e0) == list(rows) and not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e0, BatchPlan(rows, 8, seed=3).epoch_rows(0))
    shards = [BatchPlan(rows, 4, seed=3, rank=r, world=2).epoch_rows(0) for r in range(2)]
    assert len(set(shards[0]) & set(shards[1])) == 0 and len(shards[0]) == len(shards[1]) == 20


def test_loader_is_deterministic_and_covers_each_row_once_per_epoch(patches, cache_dir) -> None:
    manifest, _ = patches
    cache = open_cache(manifest, cache_dir, n_s2=12)
    rows = cache.select("train")

    def run(workers: int):
        loader = cache.loader(rows, 4, img_size=16, augment=True, shuffle=True, drop_last=True,
                              seed=5, num_steps=6, workers=workers)  # fmt: skip
        return [(b.step, b.epoch, b.index.tolist(), b.s1, b.s2) for b in loader]

    a, b = run(0), run(2)
    assert [x[:3] for x in a] == [x[:3] for x in b]
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x[3], y[3])
        torch.testing.assert_close(x[4], y[4])
    assert sorted(sum((x[2] for x in a[:3]), [])) == list(range(12))
    assert a[0][3].shape == (4, 2, 16, 16) and a[0][4].shape == (4, 12, 16, 16)
    # resuming at step 4 reads the same batches as steps 4.. of the full pass
    tail = cache.loader(rows, 4, img_size=16, augment=True, shuffle=True, drop_last=True,
                        seed=5, start_step=4, num_steps=2)  # fmt: skip
    for x, y in zip(a[4:], tail, strict=True):
        assert x[2] == y.index.tolist()
        torch.testing.assert_close(x[4], y.s2)
