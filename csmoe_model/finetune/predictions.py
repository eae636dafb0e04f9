"""Predicted segmentation maps as GeoTIFFs, georeferenced like the patch they predict.

One single-band GeoTIFF per test patch, ``<patch_id>.tif`` (characters outside ``[A-Za-z0-9._-]``
become ``_``), holding the predicted class's raster value (the legend's value, so a prediction
compares directly with its reference mask), with the CRS and geotransform of the patch's mask
raster (the S2 grid; the 10 m S2 band where a row has no mask), the transform scaled when the
cache size differs from the raster's. Each file is written atomically.

The model half imports no GDAL at import time: rasterio is imported when a writer is created.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csmoe_common.atomic import atomic_output
from csmoe_model.errors import CsmoeError

__all__ = ["PredictionWriter", "check_prediction_dir", "prediction_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def prediction_name(patch_id: str) -> str:
    """The file name of a patch's prediction."""
    return _UNSAFE.sub("_", str(patch_id)) + ".tif"


def check_prediction_dir(folder: str | Path, overwrite: bool) -> Path:
    """Refuse a non-empty prediction folder without ``overwrite`` (before any work is done).

    Raises:
        CsmoeError: the folder is a file, or holds files and ``overwrite`` is off.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CsmoeError(f"--save-predictions {folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise CsmoeError(f"{folder} is not empty; pass --overwrite to replace its predictions")
    return folder


def _reference_raster(mask_path: str | None, s2_path: str | None) -> str | None:
    if mask_path:
        return mask_path
    if s2_path is None:
        return None
    p = Path(s2_path)
    if p.is_dir():
        from csmoe_model.data.imagery import folder_bands

        return folder_bands(p).get("B02")
    return str(p)


class PredictionWriter:
    """Called with ``(batch, predicted class indices (B, S, S))``; writes one GeoTIFF per row.

    Args:
        folder: the output folder (created).
        manifest: the manifest (for the patch ids and the rasters to copy georeferencing from).
        cache: the imagery cache (row order, size).
        task: the segmentation task (its class values).
        overwrite: replace existing files.
        data_root: the folder the manifest's relative paths are relative to (as for the cache).

    Raises:
        CsmoeError: rasterio is not installed.
    """

    def __init__(
        self,
        folder: str | Path,
        manifest: str | Path,
        cache: Any,
        task: Any,
        overwrite: bool,
        data_root: str | Path | None = None,
    ) -> None:
        try:
            import rasterio  # noqa: F401
        except ImportError:
            raise CsmoeError(
                "--save-predictions writes GeoTIFFs and needs rasterio (pip install 'csmoe[data]')"
            ) from None
        from csmoe_model.data.manifest import read_manifest_rows
        from csmoe_model.data.masks import read_mask_paths

        self.folder = check_prediction_dir(folder, overwrite)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.overwrite = overwrite
        self.rows = read_manifest_rows(manifest, data_root)
        self.masks = read_mask_paths(manifest, data_root)
        self.values = np.asarray(task.data.info["values"], dtype=np.int64)
        self.dtype = "uint8" if self.values.min() >= 0 and self.values.max() < 255 else "int32"
        self.nodata = 255 if self.dtype == "uint8" else -(2**31)
        self.count = 0

    def __call__(self, batch: Any, pred: torch.Tensor) -> None:
        """Write the predictions ``pred`` (B, S, S) of the rows ``batch.index``."""
        import rasterio
        from affine import Affine

        codes = self.values[pred.cpu().numpy()]
        for j, i in enumerate(batch.index.numpy().tolist()):
            ref = _reference_raster(self.masks[i], self.rows.s2_path[i])
            if ref is None:
                continue
            with rasterio.open(ref) as src:
                crs, transform, h, w = src.crs, src.transform, src.height, src.width
            size = codes.shape[-1]
            # the prediction covers the same footprint at the cache's size
            scaled = transform @ Affine.scale(w / size, h / size)
            target = self.folder / prediction_name(self.rows.patch_id[i])
            with atomic_output(target, overwrite=self.overwrite) as tmp, rasterio.open(
                tmp, "w", driver="GTiff", height=size, width=size, count=1, dtype=self.dtype,
                crs=crs, transform=scaled, nodata=self.nodata, compress="deflate",
            ) as dst:  # fmt: skip
                dst.write(codes[j].astype(self.dtype), 1)
            self.count += 1

    def close(self) -> None:
        """Nothing is held open between patches; kept for symmetry with other writers."""
