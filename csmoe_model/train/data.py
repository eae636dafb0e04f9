"""The training data of a run: the imagery cache, the rows trained on, the batch sizes, the loader."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from csmoe_model.data.cache import CacheSettings, ImageryCache, open_cache
from csmoe_model.data.loader import BatchPlan, DeviceLoader
from csmoe_model.errors import CsmoeError
from csmoe_model.train.config import TrainConfig
from csmoe_model.train.distributed import DistEnv, barrier


@dataclass(frozen=True)
class TrainingData:
    """What a run trains on.

    Attributes:
        cache: the opened imagery cache.
        rows: the cache rows of the selected split(s), valid ones only.
        n_s2: Sentinel-2 bands fed to the model.
        local_batch: pairs per step on this process.
        global_batch: pairs per step over all processes.
        plan: the batch plan of this process (which rows make step ``k``).
    """

    cache: ImageryCache
    rows: np.ndarray
    n_s2: int
    local_batch: int
    global_batch: int
    plan: BatchPlan

    @property
    def batches_per_epoch(self) -> int:
        """Steps per epoch (every process takes the same number)."""
        return self.plan.batches_per_epoch


def workers_for(cfg: TrainConfig) -> int:
    """Loader and decoding processes: ``cfg.workers``, at most the CPU count."""
    return min(cfg.workers, os.cpu_count() or 1)


def open_training_data(
    cfg: TrainConfig,
    env: DistEnv,
    n_s2: int,
    say: Callable[[str], None],
    progress: bool,
) -> TrainingData:
    """Open (rank 0: build) the cache of ``cfg.manifest`` and fix the rows and batch sizes.

    Rank 0 builds the cache; the other ranks open it once it is in place. A batch larger than the
    rows per process is lowered to fit (with a note).

    Raises:
        CsmoeError: cache problems (see :func:`~csmoe_model.data.open_cache`), a batch size not
            divisible by the process count, or too few rows for the processes.
    """
    settings = CacheSettings(n_s2, None, cfg.s2_bands, cfg.s1_bands)
    cache: ImageryCache | None = None
    if env.is_main:
        cache = open_cache(
            cfg.manifest,
            cfg.cache_dir,
            settings,
            workers=workers_for(cfg),
            strict=cfg.strict,
            progress=progress,
            log=say,
            data_root=cfg.data_root,
        )
    barrier(env)
    if cache is None:
        cache = open_cache(
            cfg.manifest,
            cfg.cache_dir,
            settings,
            build=False,
            strict=cfg.strict,
            data_root=cfg.data_root,
        )
    rows = cache.select(cfg.split)

    if cfg.batch_size % env.world:
        raise CsmoeError(
            f"--batch-size {cfg.batch_size} is not divisible by the {env.world} processes"
        )
    local_bs = cfg.batch_size // env.world
    per_rank = len(rows) // env.world
    if per_rank < local_bs:
        say(
            f"note: only {len(rows)} rows; batch size lowered from {cfg.batch_size} to {per_rank * env.world}"
        )
        local_bs = per_rank
        if local_bs < 1:
            raise CsmoeError(f"{len(rows)} rows are too few for {env.world} processes")
    plan = BatchPlan(
        rows,
        local_bs,
        cfg.seed,
        shuffle=True,
        drop_last=True,
        rank=env.rank,
        world=env.world,
        seasons=cache.seasons,
        season=cfg.season_index,
    )
    return TrainingData(cache, rows, n_s2, local_bs, local_bs * env.world, plan)


def make_train_loader(
    cfg: TrainConfig,
    data: TrainingData,
    env: DistEnv,
    device: torch.device,
    img_size: int,
    start_step: int,
    total_steps: int,
) -> DeviceLoader:
    """The device loader of steps ``start_step .. total_steps - 1`` (shuffled, augmented per ``cfg``).

    Raises:
        CsmoeError: the model takes more S2 bands than the cache holds.
    """
    return DeviceLoader(
        data.cache,
        data.rows,
        data.local_batch,
        device=device,
        img_size=img_size,
        n_s2=data.n_s2,
        stats=data.cache.stats,
        augment=cfg.augment,
        shuffle=True,
        drop_last=True,
        seed=cfg.seed,
        rank=env.rank,
        world=env.world,
        start_step=start_step,
        num_steps=max(0, total_steps - start_step),
        workers=workers_for(cfg),
        upsample=cfg.upsample,
        season=cfg.season_index,
    )
