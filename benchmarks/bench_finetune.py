"""Fine-tuning and segmentation throughput (images/s) on the CPU or GPU, against GeoTIFF decoding.

Writes ``--patches`` BigEarthNet-layout patch folders at 120 x 120 px (12 S2 bands + VV/VH, one
mask raster each) into a temporary folder, exports a randomly initialised encoder (``--model``),
and times ``csmoe finetune`` (linear and full) and ``csmoe eval segment`` (frozen encoder) for
``--steps`` steps each: the run's own ``train_images_per_s`` (after the cache is built), next to the
peer of decoding every patch's 15 GeoTIFFs per epoch (what the cache avoids).

    python benchmarks/bench_finetune.py --patches 48 --steps 20 --device cpu
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from csmoe_common.bands import BAND_GSD


def write_patches(root: Path, n: int, size: int = 120) -> Path:
    """``n`` patch folders with masks and their manifest (train 60 %, val 20 %, test 20 %)."""
    import geopandas as gpd
    import rasterio
    from affine import Affine
    from shapely.geometry import box

    rng = np.random.default_rng(0)
    rows = []

    def tif(path: Path, arr: np.ndarray, gsd: float, x0: float) -> None:
        with rasterio.open(path, "w", driver="GTiff", height=arr.shape[0], width=arr.shape[1], count=1,
                           dtype=arr.dtype, crs="EPSG:32632",
                           transform=Affine(gsd, 0, x0, 0, -gsd, 5e6)) as ds:  # fmt: skip
            ds.write(arr, 1)

    (root / "masks").mkdir(parents=True)
    for i in range(n):
        x0 = 5e5 + 1200 * i
        d2, d1 = root / "S2" / f"p{i}", root / "S1" / f"q{i}"
        d2.mkdir(parents=True)
        d1.mkdir(parents=True)
        for band, gsd in BAND_GSD.items():
            if band in ("VV", "VH"):
                continue
            s = size * 10 // int(gsd)
            tif(d2 / f"p{i}_{band}.tif", rng.integers(0, 3000, (s, s)).astype(np.uint16), gsd, x0)
        for pol in ("VV", "VH"):
            tif(d1 / f"q{i}_{pol}.tif", rng.normal(-15, 3, (size, size)).astype(np.float32), 10, x0)
        tif(root / "masks" / f"p{i}.tif", rng.integers(1, 5, (size, size)).astype(np.uint8), 10, x0)
        rows.append({"patch_id": f"p{i}", "s2_path": f"S2/p{i}", "s1_path": f"S1/q{i}",
                     "mask_path": f"masks/p{i}.tif", "labels19": [["a", "b", "c"][i % 3]]})  # fmt: skip
    split = ["train"] * int(0.6 * n) + ["val"] * int(0.2 * n)
    split += ["test"] * (n - len(split))
    gdf = gpd.GeoDataFrame(rows, geometry=[box(i, 0, i + 1, 1) for i in range(n)], crs="EPSG:4326")
    gdf["split"] = split
    gdf.to_parquet(root / "m.parquet")
    return root / "m.parquet"


def decode_rate(manifest: Path) -> float:
    """Pairs/s of decoding every patch's GeoTIFFs with rasterio (the per-epoch cost the cache avoids)."""
    import rasterio

    root = manifest.parent
    files = (
        sorted(root.glob("S2/*/*.tif"))
        + sorted(root.glob("S1/*/*.tif"))
        + sorted(root.glob("masks/*.tif"))
    )
    t0 = time.perf_counter()
    for f in files:
        with rasterio.open(f) as ds:
            ds.read(1)
    return len(list(root.glob("S2/*"))) / (time.perf_counter() - t0)


def main() -> None:
    """Print images/s of each run and the ratio to GeoTIFF decoding."""
    from csmoe_model import build_model
    from csmoe_model.finetune import FinetuneConfig, finetune
    from csmoe_model.train import export_encoder

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patches", type=int, default=48)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--model", default="csmoe-tiny")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = write_patches(root, args.patches)
        torch.manual_seed(0)
        weights = export_encoder(build_model(args.model), root / "w.safetensors", args.model)
        peer = decode_rate(manifest)
        print(
            f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {args.device}"
        )
        print(f"peer: GeoTIFF decoding of 15 rasters per patch: {peer:,.1f} patches/s")
        for task, mode in (("classify", "linear"), ("classify", "full"), ("segment", "linear")):
            cfg = FinetuneConfig(task=task, mode=mode, manifest=str(manifest), weights=str(weights),
                                 out=str(root / f"{task}_{mode}"), max_steps=args.steps,
                                 batch_size=args.batch_size, eval_every=args.steps, device=args.device,
                                 cache_dir=str(root / "cache"), head_channels=64)  # fmt: skip
            res = finetune(cfg, progress=False, log=lambda _m: None)
            assert res.metrics is not None
            print(f"{task:8s} {mode:6s} {args.model}: train {res.images_per_s:8.1f} images/s "
                  f"({res.images_per_s / peer:.1f}x decoding), test "
                  f"{res.metrics['test_images_per_s']:8.1f} images/s")  # fmt: skip


if __name__ == "__main__":
    main()
