"""Batches from an imagery cache: worker processes read the memory maps, the device does the rest.

* :class:`BatchPlan` fixes which rows make each batch: a pure function of ``(seed, epoch)`` (a
  permutation per epoch, sharded across DDP ranks like ``DistributedSampler``: rank ``r`` of ``w``
  takes positions ``r, r + w, ...``), so a run resumed at step ``k`` sees exactly the batches of an
  uninterrupted run. Steps run across epochs: step ``k`` is batch ``k % batches_per_epoch`` of epoch
  ``k // batches_per_epoch``. Rows inside a batch are sorted (sequential reads).
* :class:`CacheBatches` (a torch ``Dataset``) is indexed by the plan's items (step, epoch, row
  indices) and returns the uint16 (sent as int16) / float16 arrays of the batch. It holds only the
  cache folder: the memory maps are opened lazily in each worker process, after the fork, and the
  batch is copied straight from the map into a shared-memory tensor (no Python lists, one copy).
* :class:`DeviceLoader` runs a torch ``DataLoader`` (``batch_size=None``, the plan as sampler,
  pinned memory on CUDA), copies each batch to the device (non-blocking; on CUDA on a side stream,
  one batch ahead, so that the copy overlaps the previous step) and applies
  :class:`~csmoe_model.data.transforms.DeviceTransform`. It yields :class:`Batch` objects and
  counts the time spent waiting for data (``wait_s``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from csmoe_common.processes import check_workers, worker_initializer
from csmoe_model.data.transforms import DeviceTransform
from csmoe_model.errors import CsmoeError

if TYPE_CHECKING:
    from csmoe_model.data.cache import ImageryCache

_AUG_STREAM = 0xA06  # separates the augmentation RNG stream from the order stream
_SEASON_STREAM = 0x5EA  # and the season draws (seasonal caches) from both


@dataclass(frozen=True)
class BatchPlan:
    """Which cache rows make batch ``step`` (see the module docstring).

    Attributes:
        rows: the cache rows to draw from (int64).
        batch_size: rows per batch on this rank.
        seed: data-order seed.
        shuffle: permute rows each epoch (else file order).
        drop_last: drop the last incomplete batch of an epoch (training) or keep it (embedding).
        rank, world: DDP shard.
        seasons: acquisitions per row in the cache (SSL4EO-S12: 4).
        season: the acquisition read for every row, or ``None`` to draw one per row and step
            from the seed (each row is read once an epoch, so a new season every epoch).
    """

    rows: np.ndarray
    batch_size: int
    seed: int = 0
    shuffle: bool = True
    drop_last: bool = True
    rank: int = 0
    world: int = 1
    seasons: int = 1
    season: int | None = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise CsmoeError("batch size must be >= 1")
        if self.season is not None and not 0 <= self.season < self.seasons:
            raise CsmoeError(
                f"--season {self.season}: the cache holds {self.seasons} season(s) per row "
                f"(0..{self.seasons - 1})"
            )
        if self.rows_per_rank < (self.batch_size if self.drop_last else 1):
            raise CsmoeError(
                f"{len(self.rows)} rows are too few for batches of {self.batch_size} on {self.world} "
                "process(es); lower --batch-size"
            )

    @property
    def rows_per_rank(self) -> int:
        """Rows each rank draws from per epoch (the same on every rank)."""
        n = len(self.rows)
        # every rank gets the same number of rows so that DDP steps stay in lockstep
        return n // self.world if self.world > 1 else n

    @property
    def batches_per_epoch(self) -> int:
        """Batches (steps) per epoch on each rank."""
        n = self.rows_per_rank
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """This rank's rows of ``epoch`` in order."""
        rows = self.rows
        if self.shuffle:
            rows = rows[np.random.default_rng([self.seed, epoch]).permutation(len(rows))]
        return rows[self.rank :: self.world][: self.rows_per_rank]

    def aug_codes(self, step: int, n: int) -> np.ndarray:
        """The flip/rotation code (0..7) of each pair of batch ``step`` (same on every worker count)."""
        return np.random.default_rng([self.seed, _AUG_STREAM, self.rank, step]).integers(
            0, 8, n, dtype=np.uint8
        )

    def season_codes(self, step: int, n: int) -> np.ndarray:
        """The season (0 .. seasons - 1) read for each pair of batch ``step`` (same on any worker count)."""
        if self.seasons == 1:
            return np.zeros(n, dtype=np.int64)
        if self.season is not None:
            return np.full(n, self.season, dtype=np.int64)
        return np.random.default_rng([self.seed, _SEASON_STREAM, self.rank, step]).integers(
            0, self.seasons, n, dtype=np.int64
        )


class PlanSampler(Sampler):
    """Yields ``(step, epoch, rows)`` for steps ``start .. stop - 1`` of a :class:`BatchPlan`."""

    def __init__(self, plan: BatchPlan, start: int, stop: int) -> None:
        self.plan, self.start, self.stop = plan, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray]]:
        per = self.plan.batches_per_epoch
        epoch, order = -1, np.empty(0, dtype=np.int64)
        for step in range(self.start, self.stop):
            e, b = divmod(step, per)
            if e != epoch:
                epoch, order = e, self.plan.epoch_rows(e)
            idx = order[b * self.plan.batch_size : (b + 1) * self.plan.batch_size]
            yield step, epoch, np.sort(idx)


class CacheBatches(Dataset):
    """Reads the arrays of a batch of cache rows (see the module docstring).

    In a worker process the batch is copied row by row (sorted rows; ~5x faster than ``np.take``
    on a memory map) into one of ``ring`` shared-memory buffers that the worker allocates once and
    reuses: handing a shared tensor to the main process then costs a file descriptor, not a copy.
    The DataLoader never has more than ``prefetch`` batches of a worker in flight, so a ring of
    ``prefetch + 2`` is never overwritten while the consumer (:class:`DeviceLoader`, which copies
    or transforms each batch before asking for the next) still reads it. Consumers that keep raw
    batches must use ``workers=0``.
    """

    def __init__(
        self,
        cache_path: str,
        groups: tuple[str, ...],
        plan: BatchPlan | None,
        augment: bool,
        ring: int = 6,
    ) -> None:
        self.cache_path = str(cache_path)
        self.groups = groups
        self.plan = plan
        self.augment = augment
        self.ring = ring
        self._arrays: dict[str, np.ndarray] | None = None
        self._buffers: dict[tuple[str, int], list[torch.Tensor]] = {}
        self._calls = 0
        self._pid = -1

    def _maps(self) -> dict[str, np.ndarray]:
        if self._arrays is None or self._pid != os.getpid():  # (re)open after a fork
            self._arrays = {
                g: np.load(os.path.join(self.cache_path, f"{g}.npy"), mmap_mode="r")
                for g in self.groups
            }
            self._buffers, self._calls = {}, 0
            self._pid = os.getpid()
        return self._arrays

    def __len__(self) -> int:  # pragma: no cover - indexed by the sampler only
        raise TypeError("CacheBatches is indexed by a PlanSampler")

    def _buffer(self, group: str, arr: np.ndarray, n: int, shared: bool) -> torch.Tensor:
        dtype = torch.int16 if arr.dtype == np.uint16 else torch.float16
        shape = (n, *arr.shape[1:])
        if not shared:
            return torch.empty(shape, dtype=dtype)
        ring = self._buffers.setdefault((group, n), [])
        slot = self._calls % self.ring
        while len(ring) <= slot:
            ring.append(_shared_empty(shape, dtype))
        return ring[slot]

    def __getitem__(self, item: tuple[int, int, np.ndarray]) -> dict[str, Any]:
        step, epoch, idx = item
        shared = torch.utils.data.get_worker_info() is not None
        out: dict[str, Any] = {
            "step": step,
            "epoch": epoch,
            "index": torch.from_numpy(idx.astype(np.int64)),
        }
        # a seasonal cache keeps row i's season t at array row i * seasons + t (still ascending)
        src = idx
        if self.plan is not None and self.plan.seasons > 1:
            src = idx * self.plan.seasons + self.plan.season_codes(step, len(idx))
        for g, arr in self._maps().items():
            t = self._buffer(g, arr, len(idx), shared)
            view = t.numpy().view(arr.dtype)
            for j, i in enumerate(src):
                view[j] = arr[i]
            out[g] = t
        self._calls += 1
        if self.augment and self.plan is not None:
            out["aug"] = torch.from_numpy(self.plan.aug_codes(step, len(idx)))
        return out


def _shared_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor in shared memory (without the copy ``share_memory_`` makes)."""
    n = int(np.prod(shape))
    try:
        storage = torch.UntypedStorage._new_shared(n * torch.tensor([], dtype=dtype).element_size())
        strides = torch.empty(shape, device="meta").stride()  # contiguous strides of ``shape``
        return torch.empty(0, dtype=dtype).set_(storage, 0, shape, strides)
    except (AttributeError, RuntimeError):  # private API moved: fall back to the public one
        return torch.empty(shape, dtype=dtype).share_memory_()


@dataclass
class Batch:
    """One batch on the device.

    Attributes:
        step: global step number of this batch.
        epoch: its epoch.
        index: cache row indices (= manifest row indices), int64 on the CPU.
        s1: (B, 2, img_size, img_size) float32, normalised, on the device.
        s2: (B, n_s2, img_size, img_size) float32, normalised, on the device.
    """

    step: int
    epoch: int
    index: torch.Tensor
    s1: torch.Tensor
    s2: torch.Tensor


class DeviceLoader:
    """Iterate batches of cache rows on a device (see the module docstring).

    Args:
        cache: an :class:`~csmoe_model.data.cache.ImageryCache`.
        rows: cache rows to read (e.g. ``cache.select("train")``).
        batch_size: rows per batch (per rank).
        device: torch device for the batches.
        img_size: model input size (default: the cache's 10 m size).
        n_s2: bands the model takes (default: the cache's).
        stats: normalisation statistics (default: the cache's; pass a run's for embedding).
        augment: random flips/rotations (training).
        shuffle, drop_last, seed, rank, world: see :class:`BatchPlan`.
        start_step: first step (resume); num_steps: how many steps (default: one epoch).
        workers: DataLoader worker processes (0: read in this process).
        prefetch: batches prefetched per worker.
        upsample: ``bilinear`` or ``bicubic``.
        season: the acquisition of a seasonal cache read for every row (default 0), or ``None`` to
            draw one per row and epoch from ``seed`` (training); ignored by single-date caches.
    """

    def __init__(
        self,
        cache: ImageryCache,
        rows: np.ndarray,
        batch_size: int,
        *,
        device: str | torch.device = "cpu",
        img_size: int | None = None,
        n_s2: int | None = None,
        stats: dict[str, list[float]] | None = None,
        augment: bool = False,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        start_step: int = 0,
        num_steps: int | None = None,
        workers: int = 0,
        prefetch: int = 4,
        upsample: str = "bilinear",
        season: int | None = 0,
    ) -> None:
        n_s2 = n_s2 or cache.n_s2
        if n_s2 > cache.n_s2:
            raise CsmoeError(
                f"the model takes {n_s2} Sentinel-2 bands but the cache holds {cache.n_s2}"
            )
        self.device = torch.device(device)
        self.plan = BatchPlan(
            np.asarray(rows, dtype=np.int64),
            batch_size,
            seed,
            shuffle,
            drop_last,
            rank,
            world,
            seasons=cache.seasons,
            season=season,
        )
        self.start_step = start_step
        self.num_steps = self.plan.batches_per_epoch if num_steps is None else num_steps
        self.transform = DeviceTransform(
            stats or cache.stats, n_s2, img_size or cache.size, upsample
        )
        groups = (*self.transform.groups, "s1")
        self.dataset = CacheBatches(str(cache.path), groups, self.plan, augment, ring=prefetch + 2)
        self.workers = check_workers(workers)
        self.prefetch = prefetch
        self.wait_s = 0.0

    def __len__(self) -> int:
        return self.num_steps

    def _loader(self) -> DataLoader:
        sampler = PlanSampler(self.plan, self.start_step, self.start_step + self.num_steps)
        return DataLoader(
            self.dataset,
            batch_size=None,
            sampler=sampler,
            num_workers=self.workers,
            # workers die with this process whatever kills it (torch's own check takes 5 s)
            worker_init_fn=worker_initializer() if self.workers else None,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=self.prefetch if self.workers else None,
            # a private generator: creating the loader must not consume the global torch RNG (exact resume)
            generator=torch.Generator().manual_seed(self.plan.seed),
        )

    def _fetch(self, it: Iterator[dict[str, Any]], stream: Any) -> tuple[Any, ...] | None:
        """Next host batch and the start of its copy to the device (on ``stream`` if given).

        Returns ``(raw, on_device, aug, ready_event)`` or ``None`` at the end; counts the time this
        thread is blocked (``wait_s``).
        """
        t0 = time.perf_counter()
        try:
            raw = next(it)
        except StopIteration:
            self.wait_s += time.perf_counter() - t0
            return None
        non_blocking = self.device.type == "cuda"
        ctx = torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
        with ctx:
            on_dev = {
                g: raw[g].to(self.device, non_blocking=non_blocking) for g in self.dataset.groups
            }
            aug = raw["aug"].to(self.device, non_blocking=non_blocking) if "aug" in raw else None
            event = None
            if stream is not None:
                event = torch.cuda.Event()
                event.record(stream)
        self.wait_s += time.perf_counter() - t0
        return raw, on_dev, aug, event

    def __iter__(self) -> Iterator[Batch]:
        """Yield the batches; on CUDA batch ``k + 1`` is copied on a side stream while ``k`` computes.

        The copies from pinned memory then overlap the training step instead of queueing behind it
        on the compute stream (56 MB per batch of 256 at 120 px: 1-3 ms of PCIe per step).
        """
        it = iter(self._loader())
        stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        nxt = self._fetch(it, stream)
        while nxt is not None:
            raw, on_dev, aug, event = nxt
            if event is not None:
                main = torch.cuda.current_stream(self.device)
                main.wait_event(event)
                for t in (*on_dev.values(), *([aug] if aug is not None else [])):
                    # allocated on the side stream, used on the main one: keep the allocator from
                    # handing the memory back to the side stream before the main stream is done
                    t.record_stream(main)
            s1, s2 = self.transform(on_dev, aug)
            # start the next copy now, before the consumer queues this batch's step
            nxt = self._fetch(it, stream)
            yield Batch(int(raw["step"]), int(raw["epoch"]), raw["index"], s1, s2)
