"""Decode the imagery a manifest row names into the cache's native-resolution arrays.

Two layouts are read:

* **BigEarthNet patch folders** (``s2_path``/``s1_path`` is a folder): one GeoTIFF per band named
  ``<anything>_<BAND>.tif`` (``..._B02.tif``, ``..._B8A.tif``, ``..._VV.tif``, ``..._VH.tif``).
* **Multi-band GeoTIFFs** (the path is a file). The band order must be declared, either in the
  file's band descriptions (``B02``, ``B2``, ``VV``...; GDAL ``DESCRIPTION``, e.g. written with
  ``rasterio``'s ``dst.set_band_description``) or, for files without descriptions, with
  ``csmoe cache/train --s2-bands B02,B03,... --s1-bands VV,VH`` (the order of the file's bands).

Major TOM products (Parquet shard rows, unpacked tree folders) and SSL4EO-S12 v1.1 zipped Zarr
datacubes are read by :mod:`csmoe_model.data.sources` (no GDAL), with the same groups, resampling
and damaged-image accounting.

The model's band order is fixed by :mod:`csmoe_common.bands`. The cache keeps each Sentinel-2
resolution group at its native resolution relative to the 10 m size ``size`` (BigEarthNet: 120):
``s2_10`` = B02 B03 B04 B08 at ``size``, ``s2_20`` = B05 B06 B07 B11 B12 B8A at ``size // 2``,
``s2_60`` = B01 B09 at ``size // 6`` (12-band caches only), ``s1`` = VH VV at ``size``.
A band stored at another size is resampled on reading (average when shrinking, bilinear when
growing). Sentinel-2 values are stored as uint16 (BigEarthNet L2A: reflectance x 10000), Sentinel-1
as float16 in the file's unit (BigEarthNet: dB); non-finite S1 pixels are replaced by the image's
median (an image with no finite pixel is damaged).

rasterio is imported inside the reading functions only: the model half imports no GDAL at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from csmoe_common.bands import GROUP_DIVISOR, S1_BANDS, S2_GROUPS
from csmoe_model.data.sources.errors import BandError, DamagedImageError

if TYPE_CHECKING:  # rasterio itself is imported only inside the reading functions
    from rasterio.io import DatasetReader

_TIF = re.compile(r"^(?P<stem>.+)_(?P<band>[A-Za-z0-9]+)\.tiff?$", re.IGNORECASE)


def normalize_band(name: str) -> str:
    """Canonical band name: ``b2`` -> ``B02``, ``b8a`` -> ``B8A``, ``vv`` -> ``VV``."""
    n = name.strip().upper()
    m = re.fullmatch(r"B0?(\d{1,2})(A?)", n)
    if m:
        return f"B{int(m.group(1)):02d}{m.group(2)}" if not m.group(2) else f"B{int(m.group(1))}A"
    return n


def s2_groups(n_s2: int) -> tuple[str, ...]:
    """Names of the Sentinel-2 groups for a 10- or 12-band cache."""
    if n_s2 == 12:
        return ("s2_10", "s2_20", "s2_60")
    if n_s2 == 10:
        return ("s2_10", "s2_20")
    raise ValueError(f"Sentinel-2 caches hold 10 or 12 bands, not {n_s2}")


def needed_bands(sensor: str, n_s2: int) -> tuple[str, ...]:
    """The bands the cache needs for ``sensor`` ("s1" or "s2")."""
    if sensor == "s1":
        return S1_BANDS
    return tuple(b for g in s2_groups(n_s2) for b in S2_GROUPS[g])


def folder_bands(folder: str | Path) -> dict[str, str]:
    """Map band name -> file path for a BigEarthNet-style patch folder (no GDAL needed)."""
    out: dict[str, str] = {}
    with os.scandir(folder) as it:
        for entry in it:
            m = _TIF.match(entry.name)
            if m and entry.is_file():
                out[normalize_band(m.group("band"))] = entry.path
    return out


def check_folder(folder: str | Path, sensor: str, n_s2: int) -> str | None:
    """Return a description of the missing bands of a patch folder, or ``None`` when complete."""
    have = folder_bands(folder)
    missing = [b for b in needed_bands(sensor, n_s2) if b not in have]
    return f"missing band(s) {', '.join(missing)}" if missing else None


def _read_band(src: DatasetReader, index: int, shape: tuple[int, int]) -> np.ndarray:
    from rasterio.enums import Resampling

    if (src.height, src.width) == shape:
        return src.read(index)
    shrink = src.height > shape[0]
    return src.read(
        index, out_shape=shape, resampling=Resampling.average if shrink else Resampling.bilinear
    )


def _open(path: str) -> DatasetReader:
    import rasterio

    try:
        return rasterio.open(path)
    except Exception as exc:  # RasterioIOError and friends: the file is there but unreadable
        raise DamagedImageError(f"{Path(path).name}: {exc}") from exc


def native_size(s2_path: str) -> int:
    """The 10 m size (height) of a row's Sentinel-2 imagery (B02 of a folder, or the file's height).

    Raises:
        BandError: for a folder without B02.
        DamagedImageError: when the file cannot be opened.
    """
    if os.path.isdir(s2_path):
        bands = folder_bands(s2_path)
        if "B02" not in bands:
            raise BandError("missing band B02")
        s2_path = bands["B02"]
    with _open(s2_path) as src:
        return int(src.height)


def _declared_order(src: DatasetReader, declared: Sequence[str] | None, path: str) -> list[str]:
    desc = [normalize_band(d) if d else "" for d in (src.descriptions or ())]
    if desc and all(desc):
        return desc
    if declared:
        if len(declared) != src.count:
            raise BandError(
                f"{Path(path).name} has {src.count} bands but the declared order names {len(declared)}"
            )
        return [normalize_band(b) for b in declared]
    raise BandError(
        f"{Path(path).name}: multi-band GeoTIFF without band descriptions; declare its band order "
        "with --s2-bands/--s1-bands"
    )


def _read_bands(
    path: str,
    bands: Sequence[str],
    shapes: Sequence[tuple[int, int]],
    declared: Sequence[str] | None,
) -> list[np.ndarray]:
    """Read ``bands`` (at ``shapes``) from a patch folder or a multi-band file."""
    out: list[np.ndarray] = []
    try:
        if os.path.isdir(path):
            files = folder_bands(path)
            missing = [b for b in bands if b not in files]
            if missing:
                raise BandError(f"missing band(s) {', '.join(missing)}")
            for band, shape in zip(bands, shapes, strict=True):
                with _open(files[band]) as src:
                    out.append(_read_band(src, 1, shape))
        else:
            with _open(path) as src:
                order = _declared_order(src, declared, path)
                missing = [b for b in bands if b not in order]
                if missing:
                    raise BandError(f"{Path(path).name}: missing band(s) {', '.join(missing)}")
                for band, shape in zip(bands, shapes, strict=True):
                    out.append(_read_band(src, order.index(band) + 1, shape))
    except (BandError, DamagedImageError):
        raise
    except Exception as exc:  # a read error in the middle of a file: the image is damaged
        raise DamagedImageError(f"{Path(path).name}: {exc}") from exc
    return out


def read_s2(
    path: str, size: int, n_s2: int = 12, declared: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Read a row's Sentinel-2 imagery into uint16 arrays per resolution group.

    Returns:
        ``{"s2_10": (4, size, size), "s2_20": (6, size/2, size/2)[, "s2_60": (2, size/6, size/6)]}``.

    Raises:
        BandError: a needed band is missing or the band order of a multi-band file is not declared.
        DamagedImageError: a file cannot be decoded.
    """
    groups = s2_groups(n_s2)
    bands = [b for g in groups for b in S2_GROUPS[g]]
    shapes = [(size // GROUP_DIVISOR[g],) * 2 for g in groups for _ in S2_GROUPS[g]]
    arrays = _read_bands(path, bands, shapes, declared)
    out: dict[str, np.ndarray] = {}
    i = 0
    for g in groups:
        k = len(S2_GROUPS[g])
        stack = np.stack(arrays[i : i + k])
        i += k
        if stack.dtype != np.uint16:
            stack = np.clip(np.rint(np.nan_to_num(stack.astype(np.float64))), 0, 65535).astype(
                np.uint16
            )
        out[g] = stack
    return out


def read_s1(path: str, size: int, declared: Sequence[str] | None = None) -> np.ndarray:
    """Read a row's Sentinel-1 imagery as float32 (2, size, size) in the order VH, VV.

    Raises:
        BandError: VV or VH is missing or undeclared.
        DamagedImageError: a file cannot be decoded or has no finite pixel.
    """
    arr = np.stack(_read_bands(path, S1_BANDS, [(size, size)] * 2, declared)).astype(np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        for c in range(arr.shape[0]):
            if not finite[c].any():
                raise DamagedImageError(
                    f"{Path(path).name}: band {S1_BANDS[c]} has no finite pixel"
                )
            arr[c][~finite[c]] = np.median(arr[c][finite[c]])
    return arr
