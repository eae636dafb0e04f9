"""Segmentation targets for a manifest: a ``mask_path`` column naming one label raster per patch.

Three sources (``csmoe-data build-manifest``):

- **BigEarthNet v2.0 (reBEN) reference maps**: a BigEarthNet root with
  ``Reference_Maps/<tile>/<patch>/<patch>_reference_map.tif`` (CORINE 2018 pixel labels on the
  patch's S2 grid) gets them as ``mask_path`` automatically;
- **a folder of label rasters** (``--masks DIR``): any GeoTIFF below ``DIR`` whose file name is
  ``<patch_id>.tif``, ``<patch_id>_reference_map.tif`` or ``<patch_id>_mask.tif``;
- **the land-cover raster itself** (``--masks-from-landcover``): for every row with Sentinel-2
  imagery, the land-cover raster is cut onto the patch's 10 m S2 grid (the B02 band of a patch
  folder, or the multi-band file; its CRS, transform and size) with nearest-neighbour resampling,
  keeping the raster's values and nodata. The masks are written to the folder ``<out stem>_masks/``
  beside the output manifest, one ``<patch_id>.tif`` each (characters outside ``[A-Za-z0-9._-]``
  become ``_``), each file atomically; existing masks are replaced only with ``--overwrite``.

The manifest metadata gets a ``masks`` entry: the source, the folder, the number of rows with a mask
and, for masks cut from the land cover, the land-cover legend (``masks.legend``), which
``csmoe eval segment`` uses as its class legend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from csmoe_common.atomic import atomic_output
from csmoe_common.errors import CsmoeError
from csmoe_common.manifest import MASK_PATH, PATCH_ID, S2_PATH

__all__ = [
    "MaskSummary",
    "add_masks",
    "cut_landcover_mask",
    "find_mask_files",
    "mask_folder",
    "reference_maps",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SUFFIXES: tuple[str, ...] = ("", "_reference_map", "_mask")


@dataclass(frozen=True)
class MaskSummary:
    """What :func:`add_masks` did.

    Attributes:
        source: ``reference maps``, ``folder DIR`` or ``land cover RASTER``.
        rows: manifest rows.
        with_mask: rows that got a ``mask_path``.
        written: mask rasters written (land cover only).
        folder: where the masks are.
    """

    source: str
    rows: int
    with_mask: int
    written: int
    folder: Path


def mask_folder(out: str | Path) -> Path:
    """The folder of the masks cut for the manifest ``out``: ``<out stem>_masks/`` beside it."""
    out = Path(out)
    return out.parent / f"{out.stem}_masks"


def reference_maps(root: str | Path) -> Path | None:
    """``ROOT/Reference_Maps`` of a BigEarthNet v2.0 root, or ``None`` when it has none."""
    folder = Path(root) / "Reference_Maps"
    return folder if folder.is_dir() else None


def find_mask_files(folder: str | Path, patch_ids: Iterable[str]) -> dict[str, Path]:
    """The mask raster of each patch id found below ``folder`` (see the module docstring).

    Raises:
        CsmoeError: the folder does not exist, or two files claim the same patch.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CsmoeError(f"--masks {folder}: no such folder")
    wanted = {str(p) for p in patch_ids}
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
            continue
        stem = path.stem
        for suffix in _SUFFIXES:
            pid = stem[: len(stem) - len(suffix)] if suffix and stem.endswith(suffix) else stem
            if (not suffix or stem.endswith(suffix)) and pid in wanted:
                if pid in found and found[pid] != path:
                    raise CsmoeError(f"two mask rasters for patch {pid}: {found[pid]} and {path}")
                found[pid] = path
                break
    return found


def _s2_grid_source(s2_path: str) -> str | None:
    p = Path(s2_path)
    if p.is_dir():
        hits = sorted(p.glob("*_B02.tif")) + sorted(p.glob("*_B02.tiff"))
        return str(hits[0]) if hits else None
    return str(p) if p.is_file() else None


def cut_landcover_mask(landcover: Any, s2_path: str, target: Path, overwrite: bool) -> bool:
    """Cut the open land-cover dataset onto the S2 grid of ``s2_path``; write ``target``.

    Returns:
        False when the row has no readable S2 grid (no mask written).

    Raises:
        CsmoeError: ``target`` exists without ``overwrite``.
    """
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    source = _s2_grid_source(s2_path)
    if source is None:
        return False
    with rasterio.open(source) as grid:
        crs, transform, h, w = grid.crs, grid.transform, grid.height, grid.width
    nodata = landcover.nodata
    dst = np.full((h, w), nodata if nodata is not None else 0, dtype=landcover.dtypes[0])
    reproject(
        source=rasterio.band(landcover, 1),
        destination=dst,
        dst_transform=transform,
        dst_crs=crs,
        dst_nodata=nodata,
        resampling=Resampling.nearest,
    )
    with atomic_output(target, overwrite=overwrite) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", height=h, width=w, count=1, dtype=dst.dtype, crs=crs,
        transform=transform, nodata=nodata, compress="deflate",
    ) as out:  # fmt: skip
        out.write(dst, 1)
    return True


def add_masks(
    manifest: str | Path,
    *,
    masks_dir: str | Path | None = None,
    landcover: str | Path | None = None,
    overwrite: bool = False,
) -> MaskSummary:
    """Add ``mask_path`` (and the ``masks`` metadata) to a written manifest, rewriting it atomically.

    Args:
        manifest: the manifest just written by ``build-manifest``.
        masks_dir: a folder of label rasters (or a reBEN ``Reference_Maps`` folder).
        landcover: the land-cover raster to cut onto every patch's S2 grid instead.
        overwrite: replace existing mask rasters (land cover only).

    Raises:
        CsmoeError: neither or both sources, no S2 imagery to cut onto, no row matched.
    """
    from csmoe_data.builder.assemble import relative_paths
    from csmoe_data.manifest import read_manifest, write_manifest
    from csmoe_data.samples import resolve_path

    if (masks_dir is None) == (landcover is None):
        raise CsmoeError("give --masks DIR or --masks-from-landcover (with --landcover), not both")
    path = Path(manifest)
    gdf, meta = read_manifest(path)
    ids = gdf[PATCH_ID].astype(str)
    masks: list[str | None] = [None] * len(gdf)
    written = 0
    entry: dict[str, Any]
    if masks_dir is not None:
        folder = Path(masks_dir).resolve()
        found = find_mask_files(folder, ids)
        masks = [str(found[i]) if i in found else None for i in ids]
        source = f"folder {folder}"
        entry = {"source": "folder", "folder": str(folder)}
    else:
        import rasterio

        if S2_PATH not in gdf.columns or gdf[S2_PATH].isna().all():
            raise CsmoeError("--masks-from-landcover needs rows with Sentinel-2 imagery (s2_path)")
        folder = mask_folder(path).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        raster = resolve_path(str(landcover))
        base = path.resolve().parent
        with rasterio.open(raster) as lc:
            for k, (pid, s2) in enumerate(zip(ids, gdf[S2_PATH], strict=True)):
                if s2 is None or s2 is pd.NA or (isinstance(s2, float) and s2 != s2):
                    continue
                s2_abs = Path(str(s2)) if Path(str(s2)).is_absolute() else base / str(s2)
                target = folder / (_UNSAFE.sub("_", pid) + ".tif")
                if cut_landcover_mask(lc, str(s2_abs), target, overwrite):
                    masks[k] = str(target)
                    written += 1
        source = f"land cover {raster}"
        entry = {"source": "landcover", "folder": str(folder), "raster": str(raster),
                 "resampling": "nearest", "legend": (meta.get("legends") or {}).get("landcover")}  # fmt: skip
    with_mask = sum(m is not None for m in masks)
    if with_mask == 0:
        raise CsmoeError(f"no manifest row got a mask from {source}")
    gdf[MASK_PATH] = relative_paths(pd.Series(masks, index=gdf.index, dtype=object), path.parent)
    meta["masks"] = {**entry, "rows_with_mask": with_mask}
    write_manifest(gdf, path, meta, overwrite=True)
    return MaskSummary(source, len(gdf), with_mask, written, folder)
