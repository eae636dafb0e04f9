"""Loader throughput from the imagery cache (host side: what the GPU is fed), against two peers.

Measures pairs/s at 120 x 120 px with 12 + 2 bands (217.6 kB per pair) on a generated cache:

* ``csmoe batch read``: :class:`CacheBatches` in this process (one core): a sorted batch of rows
  copied out of the memory maps in one ``np.take`` per array;
* ``csmoe DataLoader, K workers``: the torch ``DataLoader`` of :class:`DeviceLoader` (batch sampler
  of index arrays, shared-memory hand-over) as the training loop receives it (before the device);
* peer ``per-sample Dataset``: the common torch idiom, one ``__getitem__`` per pair from the same
  memory maps plus ``default_collate``;
* peer ``GeoTIFF decode``: decoding BigEarthNet patch folders (14 GeoTIFFs per pair) with rasterio on
  the fly, which the cache avoids (skipped without rasterio).

The cache sits in the page cache after it is written, so this is memory -> batch speed (a training
host with enough RAM for the cache, or a local NVMe, is in the same regime).

    python benchmarks/bench_loader.py --pairs 3000 --workers 1,2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from csmoe_common.bands import BAND_GSD
from csmoe_model.data import BatchPlan, synthetic_cache
from csmoe_model.data.loader import CacheBatches, PlanSampler

PAIR_BYTES = (4 * 120 * 120 + 6 * 60 * 60 + 2 * 20 * 20) * 2 + 2 * 120 * 120 * 2


class PerSample(Dataset):
    """Peer: one pair per __getitem__ from the same memory maps (opened lazily per process)."""

    def __init__(self, path: str, groups: tuple[str, ...]) -> None:
        self.path, self.groups, self.maps = path, groups, None

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self.maps is None:
            self.maps = {
                g: np.load(os.path.join(self.path, f"{g}.npy"), mmap_mode="r") for g in self.groups
            }
        return {g: torch.from_numpy(np.array(a[i]).view(np.int16) if a.dtype == np.uint16 else np.array(a[i]))
                for g, a in self.maps.items()}  # fmt: skip


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of processes (Linux /proc); the main process uses ``time.process_time``."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def _rate(
    fn, pairs_per_call: int, seconds: float, pids=lambda: [], warm: int = 1
) -> tuple[float, float]:
    """(pairs per wall second, pairs per CPU second of this process and ``pids()``) in steady state."""
    for _ in range(warm):  # warm-up: worker start, page faults, shared-memory ring allocation
        fn()
    n, t0, c0 = 0, time.perf_counter(), _cpu_seconds(pids())
    while time.perf_counter() - t0 < seconds:
        fn()
        n += pairs_per_call
    wall, cpu = time.perf_counter() - t0, _cpu_seconds(pids()) - c0
    return n / wall, n / max(cpu, 1e-9)


def _worker_pids(it) -> list[int]:
    return [w.pid for w in getattr(it, "_workers", [])]


def bench(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    root = Path(args.dir or tempfile.mkdtemp(prefix="csmoe-bench-"))
    t0 = time.perf_counter()
    cache = synthetic_cache(root, args.pairs, size=120, n_s2=12, seed=0)
    print(f"cache: {cache.path} ({args.pairs} pairs, {args.pairs * PAIR_BYTES / 1e9:.2f} GB, "
          f"made in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
    rows = np.arange(len(cache))
    plan = BatchPlan(rows, args.batch, seed=0)
    groups = cache.groups
    results: list[tuple[str, float, float]] = []

    ds = CacheBatches(str(cache.path), groups, plan, augment=True)
    step = iter(range(1 << 30))

    def one_batch() -> None:
        s = next(step) % plan.batches_per_epoch
        ds[(s, 0, np.sort(plan.epoch_rows(0)[s * args.batch : (s + 1) * args.batch]))]

    results.append(("csmoe batch read, in process", *_rate(one_batch, args.batch, args.seconds)))

    for w in args.workers:
        steps = 1 << 20
        loader = DataLoader(CacheBatches(str(cache.path), groups, plan, augment=True, ring=4), batch_size=None,
                            sampler=PlanSampler(plan, 0, steps), num_workers=w, prefetch_factor=2,
                            generator=torch.Generator())  # fmt: skip
        it = iter(loader)
        pids = lambda it=it: _worker_pids(it)  # noqa: E731
        rate = _rate(lambda it=it: next(it), args.batch, args.seconds, pids, warm=8 * w)
        results.append((f"csmoe DataLoader, {w} worker(s)", *rate))
        del it, loader

    per = PerSample(str(cache.path), groups)
    order = plan.epoch_rows(0)
    peer = DataLoader(per, batch_size=args.batch, sampler=[int(i) for i in np.resize(order, 1 << 20)], num_workers=1,
                      prefetch_factor=2)  # fmt: skip
    pit = iter(peer)
    results.append(
        (
            "peer: per-sample Dataset + collate, 1 worker",
            *_rate(
                lambda it=pit: next(it), args.batch, args.seconds, lambda it=pit: _worker_pids(it)
            ),
        )
    )
    del pit, peer

    try:
        import rasterio  # noqa: F401
    except ImportError:
        print("rasterio not installed: GeoTIFF peer skipped")
    else:
        results.append(
            ("peer: GeoTIFF decode on the fly (rasterio)", *_geotiff_rate(root, args.seconds))
        )
    return results


def _geotiff_rate(root: Path, seconds: float) -> tuple[float, float]:
    import rasterio
    from affine import Affine

    from csmoe_model.data.imagery import read_s1, read_s2

    folder = root / "geotiff"
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(32):
        d2, d1 = folder / f"S2_{i}", folder / f"S1_{i}"
        if not d1.is_dir():
            d2.mkdir(parents=True)
            d1.mkdir(parents=True)
            for band, g in BAND_GSD.items():
                s = 1200 // g
                d = d1 if band in ("VV", "VH") else d2
                arr = (
                    rng.normal(-15, 3, (s, s)).astype(np.float32)
                    if d is d1
                    else rng.integers(0, 3000, (s, s)).astype(np.uint16)
                )
                with rasterio.open(d / f"p{i}_{band}.tif", "w", driver="GTiff", width=s, height=s, count=1,
                                   dtype=arr.dtype, crs="EPSG:32633", transform=Affine(g, 0, 0, 0, -g, 0)) as dst:  # fmt: skip
                    dst.write(arr, 1)
        pairs.append((str(d1), str(d2)))
    k = iter(range(1 << 30))

    def one() -> None:
        s1, s2 = pairs[next(k) % len(pairs)]
        read_s2(s2, 120, 12)
        read_s1(s1, 120)

    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        return _rate(one, 1, seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument(
        "--dir", default=None, help="where to write the cache (default: a temporary folder)"
    )
    args = p.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}, numpy {np.__version__}"
    )
    results = bench(args)
    base = results[1][2] if len(results) > 1 else results[0][2]
    print(
        "\npairs/s: wall-clock rate; per CPU-s: pairs per CPU second used by the main process and its workers"
    )
    print(
        f"{'loader':48s} {'pairs/s':>10s} {'per CPU-s':>10s} {'MB/s':>8s} {'per CPU-s vs csmoe 1 worker':>28s}"
    )
    for name, rate, per_cpu in results:
        mb = rate * PAIR_BYTES / 1e6
        print(f"{name:48s} {rate:10,.0f} {per_cpu:10,.0f} {mb:8,.0f} {per_cpu / base:27.2f}x")


if __name__ == "__main__":
    main()
