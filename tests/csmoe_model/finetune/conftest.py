"""Generated BigEarthNet-layout patches with a learnable signal, masks, labels and a tiny encoder.

Every patch is a 4 x 4 grid of blocks; each block is "land" (bright in every S2 band) or "water"
(dark). The mask raster holds the block's class (WorldCover-like values 10 = land, 80 = water, 0 =
nodata on a few pixels), so a segmentation head can learn it from the S2 bands. Scene labels come
from band statistics: "bright" when most blocks are land, "red" when the patch's B04 offset is high
(independent of the land share), so a classifier can learn both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

S2_GSD = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
          "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20}  # fmt: skip
LAND, WATER, NODATA = 10, 80, 0


def make_signal_patches(
    root: Path, geotiff: Any, n: int, size: int = 24, seed: int = 0, blocks: int = 4
) -> list[dict[str, Any]]:
    """Write ``n`` S1/S2 patch folders and mask rasters under ``root``; return manifest rows."""
    from affine import Affine

    rng = np.random.default_rng(seed)
    rows = []
    step = size // blocks
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        land = rng.random((blocks, blocks)) < rng.uniform(0.2, 0.8)
        mask10 = np.kron(land, np.ones((step, step), dtype=bool))
        red = bool(rng.random() < 0.5)
        name2, name1 = f"S2_SIG_{seed}_{i:03d}", f"S1_SIG_{seed}_{i:03d}"
        d2, d1 = root / "S2" / name2, root / "S1" / name1
        d2.mkdir(parents=True)
        d1.mkdir(parents=True)
        x0, y0 = 500000.0 + 10 * size * i, 5200000.0
        for band, gsd in S2_GSD.items():
            s = size * 10 // gsd
            k = size // s
            m = mask10.reshape(s, k, s, k).mean(axis=(1, 3))
            arr = 400 + 2000 * m + rng.normal(0, 120, (s, s))
            if band == "B04" and red:
                arr += 900
            geotiff(d2 / f"{name2}_{band}.tif", np.clip(arr, 0, 10000).astype(np.uint16),
                    Affine(gsd, 0, x0, 0, -gsd, y0), crs="EPSG:32632")  # fmt: skip
        for pol in ("VV", "VH"):
            arr = rng.normal(-14 if pol == "VV" else -21, 2, (size, size)).astype(np.float32)
            geotiff(d1 / f"{name1}_{pol}.tif", arr, Affine(10, 0, x0, 0, -10, y0), crs="EPSG:32632")
        mask = np.where(mask10, LAND, WATER).astype(np.uint8)
        mask[0, :2] = NODATA  # a few nodata pixels, never evaluated
        geotiff(root / "masks" / f"{name2}.tif", mask, Affine(10, 0, x0, 0, -10, y0),
                crs="EPSG:32632", nodata=NODATA)  # fmt: skip
        labels = (["bright"] if land.mean() > 0.5 else []) + (["red"] if red else [])
        rows.append({
            "patch_id": name2, "s2_path": f"S2/{name2}", "s1_path": f"S1/{name1}",
            "mask_path": f"masks/{name2}.tif", "labels19": labels or ["dim"],
            "land_share": float(mask10.mean()),
        })  # fmt: skip
    return rows


def tiny_weights(path: Path, seed: int = 0, **overrides: Any) -> Path:
    """A randomly initialised csmoe-tiny encoder (img_size 16) exported like ``csmoe train`` does."""
    import torch

    from csmoe_model import build_model
    from csmoe_model.train import export_encoder

    torch.manual_seed(seed)
    model = build_model("csmoe-tiny", **({"img_size": 16} | overrides))
    return export_encoder(model, path, "csmoe-tiny")


@pytest.fixture(scope="module")
def signal_data(
    tmp_path_factory: pytest.TempPathFactory, geotiff: Any, manifest_factory: Any
) -> dict[str, Path]:
    """24 patches (train 12, val 4, test 8) at 24 px, their manifest and tiny encoder weights."""
    root = tmp_path_factory.mktemp("signal")
    rows = make_signal_patches(root, geotiff, 24)
    splits = ["train"] * 12 + ["val"] * 4 + ["test"] * 8
    manifest = manifest_factory(root / "m.parquet", rows, splits)
    # patch 4 on 16 px: one token per 6 x 6 block of the 24 px mask, so blocks are separable
    return {"root": root, "manifest": manifest, "weights": tiny_weights(root / "w.safetensors"),
            "weights4": tiny_weights(root / "w4.safetensors", patch_size=4), "cache": root / "cache"}  # fmt: skip
