"""Major TOM products as imagery: the unpacked tree and the Parquet shards, decoded in memory.

Two layouts, as Major TOM publishes and unpacks them (ESA-PhiLab/Major-TOM ``MajorTOMDataset.py``,
``metadata_helpers.py``):

* **tree**: a product folder ``<root>/<row>/<grid_cell>/<product_id>/`` holding one GeoTIFF per
  band named after the band (``B02.tif`` ... ``B8A.tif``, ``vv.tif``, ``vh.tif``);
* **shards**: ``images/part_NNNNN.parquet`` files with one product per row and one binary column
  per band holding that band's GeoTIFF (``B01`` ... ``B12``, ``B8A``, ``vv``, ``vh``); a manifest
  names a product as ``part_NNNNN.parquet#row=R`` and only that row's row group and the needed
  band columns are read, never the rest of the shard, and nothing is written to disk.

Either may carry a ``window=col_off,row_off,size`` (10 m pixels): the tile of the product that one
manifest row stands for. Sentinel-2 bands are stored at their native resolution (B02 at 10 m is
``size`` px wide, B05 at 20 m half of it, B01 at 60 m a sixth), so a window is cut from each band
on its own pixel grid and then resampled to the cache's group size. Sentinel-1 RTC bands hold
linear backscatter power; they are converted to decibels (``10 log10``; non-positive values
become NaN, which the cache replaces by the image median) so that one cache and one model see S1
in the same unit as BigEarthNet and SSL4EO-S12.

Tiles of one product are decoded together (:func:`read_products`), so cutting a 1068 px cell into
64 tiles decodes the cell once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csmoe_common.store_path import StorePath
from csmoe_model.data.sources.errors import BandError, DamagedImageError
from csmoe_model.data.sources.geotiff import decode_geotiff, geotiff_shape, resample

__all__ = [
    "is_majortom_folder",
    "is_parquet_shard",
    "missing_product_bands",
    "product_key",
    "product_width",
    "read_products",
]

#: band whose pixel grid is the product's 10 m grid, per sensor
_REFERENCE_BAND = {"s2": "B02", "s1": "VV"}


def is_parquet_shard(ref: StorePath) -> bool:
    """Whether ``ref`` names a row of a Parquet shard."""
    return ref.row is not None and ref.file.lower().endswith(".parquet")


def _band_key(name: str) -> str:
    n = name.strip().upper()
    if n.startswith("B") and n[1:].isdigit():
        return f"B{int(n[1:]):02d}"
    return n


def _folder_files(folder: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with os.scandir(folder) as it:
        for entry in it:
            stem, dot, ext = entry.name.rpartition(".")
            if dot and ext.lower() in ("tif", "tiff") and entry.is_file():
                out[_band_key(stem)] = entry.path
    return out


def is_majortom_folder(path: str) -> bool:
    """Whether ``path`` is a Major TOM product folder (``B02.tif`` or ``vv.tif`` inside it)."""
    if not os.path.isdir(path):
        return False
    names = {n.lower() for n in os.listdir(path)}
    return "b02.tif" in names or "vv.tif" in names


def missing_product_bands(folder: str, bands: Sequence[str]) -> str | None:
    """Which of ``bands`` a product folder lacks (``None`` when it has them all)."""
    have = _folder_files(folder)
    missing = [b for b in bands if _band_key(b) not in have]
    return f"missing band file(s) {', '.join(missing)}" if missing else None


def product_key(ref: StorePath) -> tuple[str, int | None]:
    """What identifies one product: the file (or folder) and the shard row."""
    return (ref.file, ref.row)


@dataclass
class _Product:
    """The decoded full-size bands of one product (band -> 2-D array) and its 10 m width."""

    bands: dict[str, np.ndarray]
    width: int


def _shard_row(path: str, row: int, bands: Sequence[str]) -> dict[str, bytes]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise DamagedImageError(f"{Path(path).name}: cannot read Parquet shard ({exc})") from exc
    meta = pf.metadata
    if row >= meta.num_rows:
        raise BandError(f"{Path(path).name} has {meta.num_rows} rows; row {row} does not exist")
    columns = {_band_key(name): name for name in pf.schema_arrow.names}
    missing = [b for b in bands if b not in columns]
    if missing:
        raise BandError(f"{Path(path).name}: no column for band(s) {', '.join(missing)}")
    start = 0
    for group in range(meta.num_row_groups):
        n = meta.row_group(group).num_rows
        if row < start + n:
            break
        start += n
    try:
        table = pf.read_row_group(group, columns=[columns[b] for b in bands])
    except Exception as exc:
        raise DamagedImageError(f"{Path(path).name} row {row}: {exc}") from exc
    out: dict[str, bytes] = {}
    for b in bands:
        value = table.column(columns[b])[row - start].as_py()
        if not value:
            raise DamagedImageError(f"{Path(path).name} row {row}: band {b} is empty")
        out[b] = value
    return out


def _decode_product(ref: StorePath, wanted: Sequence[str], sensor: str) -> _Product:
    name = Path(ref.file).name + (f"#row={ref.row}" if ref.row is not None else "")
    reference = _REFERENCE_BAND[sensor]
    # the reference band fixes the product's 10 m grid, so it is read even when not wanted
    bands = list(dict.fromkeys([*wanted, reference]))
    raw: dict[str, bytes | str]
    if is_parquet_shard(ref):
        raw = dict(_shard_row(ref.file, int(ref.row or 0), bands))
    else:
        files = _folder_files(ref.file)
        missing = [b for b in bands if b not in files]
        if missing:
            raise BandError(f"{name}: missing band file(s) {', '.join(missing)}")
        raw = {b: files[b] for b in bands}
    decoded = {b: decode_geotiff(raw[b], f"{name} {b}") for b in bands}
    width = decoded[reference].shape[1]
    if sensor == "s1":
        for b, arr in decoded.items():
            lin = arr.astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                decoded[b] = np.where(lin > 0, 10.0 * np.log10(lin), np.nan)
    return _Product(decoded, int(width))


def product_width(ref: StorePath) -> int:
    """Width in 10 m pixels of a product (its ``B02`` or ``vv`` band), from the GeoTIFF header.

    Raises:
        BandError: the product has neither band.
        DamagedImageError: the header cannot be read.
    """
    name = Path(ref.file).name
    if is_parquet_shard(ref):
        import pyarrow.parquet as pq

        names = {_band_key(n) for n in pq.read_schema(ref.file).names}
        sensor = "s2" if "B02" in names else "s1"
        blob: bytes | str = _shard_row(ref.file, int(ref.row or 0), [_REFERENCE_BAND[sensor]])[
            _REFERENCE_BAND[sensor]
        ]
    else:
        files = _folder_files(ref.file)
        band = "B02" if "B02" in files else "VV"
        if band not in files:
            raise BandError(f"{name}: neither B02.tif nor vv.tif")
        blob = files[band]
    return geotiff_shape(blob, name)[1]


def _cut(
    product: _Product,
    band: str,
    window: tuple[int, int, int] | None,
    shape: tuple[int, int],
    name: str,
) -> np.ndarray:
    arr = product.bands[band]
    if window is None:
        return resample(arr, shape)
    col, row, size = window
    scale = arr.shape[1] / product.width
    c0, r0, n = col * scale, row * scale, size * scale
    if not all(abs(v - round(v)) < 1e-9 for v in (c0, r0, n)):
        raise BandError(
            f"{name}: window {col},{row},{size} does not fall on the {band} pixel grid "
            f"({arr.shape[1]} px for {product.width} px at 10 m); use offsets and sizes divisible by 6"
        )
    c0, r0, n = round(c0), round(r0), round(n)
    if r0 + n > arr.shape[0] or c0 + n > arr.shape[1]:
        raise BandError(
            f"{name}: window {col},{row},{size} reaches beyond the {product.width} px product"
        )
    return resample(arr[r0 : r0 + n, c0 : c0 + n], shape)


def read_products(
    refs: Sequence[StorePath],
    bands: Sequence[str],
    shapes: Sequence[tuple[int, int]],
    sensor: str,
) -> list[list[np.ndarray] | Exception]:
    """Read ``bands`` at ``shapes`` for each ref; refs of one product decode it once.

    Args:
        refs: tree folders or shard rows, each with an optional window.
        bands: canonical band names (``B02``, ``B8A``, ``VV``, ...), in output order.
        shapes: the output shape of each band.
        sensor: ``"s2"`` or ``"s1"`` (S1 is converted from linear power to dB).

    Returns:
        For each ref, its band arrays, or the :class:`BandError` / :class:`DamagedImageError` that
        stopped it (a damaged product fails all of its tiles, and only them).
    """
    out: list[list[np.ndarray] | Exception] = [DamagedImageError("not read")] * len(refs)
    groups: dict[tuple[str, int | None], list[int]] = {}
    for i, ref in enumerate(refs):
        groups.setdefault(product_key(ref), []).append(i)
    for indices in groups.values():
        first = refs[indices[0]]
        try:
            product = _decode_product(first, bands, sensor)
        except (BandError, DamagedImageError) as exc:
            for i in indices:
                out[i] = exc
            continue
        for i in indices:
            ref = refs[i]
            try:
                out[i] = [
                    _cut(product, b, ref.window, shape, Path(ref.file).name)
                    for b, shape in zip(bands, shapes, strict=True)
                ]
            except BandError as exc:
                out[i] = exc
    return out
