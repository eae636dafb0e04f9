"""GeoTIFF bands decoded without GDAL (tifffile), and the resampling the cache applies to them.

The model half reads Major TOM's band GeoTIFFs (files of the unpacked tree, or bytes from a
Parquet shard's binary column) with ``tifffile`` (pure Python and numpy; ``imagecodecs`` adds
LZW/ZSTD/JPEG decoders), so a training host needs no GDAL. Only the pixel values are read: Major
TOM stores each band as its own single-band GeoTIFF on the product's pixel grid, so the
georeferencing of a tile comes from the window, not from the file.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from csmoe_model.data.sources.errors import DamagedImageError

__all__ = ["decode_geotiff", "geotiff_shape", "resample", "resample_stack"]


def decode_geotiff(source: bytes | str | Path, name: str) -> np.ndarray:
    """Decode the first band of a GeoTIFF (file path or bytes) as a 2-D array.

    Args:
        source: a file path, or the file's bytes.
        name: what to call it in messages (band and product).

    Raises:
        DamagedImageError: when the data is not a decodable TIFF (truncated, corrupt, a codec
            that is not installed) or not a 2-D single-band image.
    """
    import tifffile

    try:
        if isinstance(source, bytes | bytearray | memoryview):
            arr = tifffile.imread(io.BytesIO(bytes(source)), key=0)
        else:
            arr = tifffile.imread(str(source), key=0)
    except Exception as exc:  # tifffile raises many types for damaged files
        raise DamagedImageError(
            f"{name}: cannot decode GeoTIFF ({' '.join(str(exc).split())[:160]})"
        ) from exc
    arr = np.asarray(arr)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[-2:] if arr.shape[0] == 1 else arr.shape[:2])
    if arr.ndim != 2:
        raise DamagedImageError(f"{name}: expected a single-band image, got shape {arr.shape}")
    return arr


def geotiff_shape(source: bytes | str | Path, name: str) -> tuple[int, int]:
    """``(height, width)`` of a GeoTIFF's first image, from its header alone.

    Raises:
        DamagedImageError: when the header cannot be read.
    """
    import tifffile

    try:
        fh = (
            io.BytesIO(bytes(source))
            if isinstance(source, bytes | bytearray | memoryview)
            else str(source)
        )
        with tifffile.TiffFile(fh) as tif:
            page = tif.pages[0]
            return int(page.imagelength), int(page.imagewidth)  # type: ignore[union-attr]
    except Exception as exc:  # tifffile raises many types for damaged files
        raise DamagedImageError(
            f"{name}: cannot read GeoTIFF header ({' '.join(str(exc).split())[:160]})"
        ) from exc


def _bilinear(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with pixel-centre alignment (as GDAL and torch ``align_corners=False``)."""
    h, w = arr.shape
    out_h, out_w = shape
    ys = np.clip((np.arange(out_h) + 0.5) * h / out_h - 0.5, 0, h - 1)
    xs = np.clip((np.arange(out_w) + 0.5) * w / out_w - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[:, None]
    wx = (xs - x0)[None, :]
    a = arr.astype(np.float64)
    top = a[y0][:, x0] * (1 - wx) + a[y0][:, x1] * wx
    bottom = a[y1][:, x0] * (1 - wx) + a[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def resample(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D band to ``shape``: block average when shrinking by whole factors, else bilinear.

    The same rule as the GeoTIFF path of the cache (rasterio's ``average`` when shrinking,
    ``bilinear`` when growing); the input is returned unchanged when it already has ``shape``.
    """
    h, w = arr.shape
    if (h, w) == tuple(shape):
        return arr
    out_h, out_w = shape
    if h % out_h == 0 and w % out_w == 0 and h >= out_h and w >= out_w:
        fy, fx = h // out_h, w // out_w
        # NaN-aware: a block keeps the mean of its finite pixels (S1 nodata stays local)
        blocks = arr.astype(np.float64).reshape(out_h, fy, out_w, fx)
        with np.errstate(invalid="ignore"):
            return (
                np.nanmean(blocks, axis=(1, 3))
                if np.isnan(blocks).any()
                else blocks.mean(axis=(1, 3))
            )
    return _bilinear(arr, (out_h, out_w))


def resample_stack(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """:func:`resample` over the last two axes of ``(..., H, W)`` (one pass for whole-factor shrinks).

    Integer inputs are averaged in float32 (exact for 16-bit values summed over small blocks).
    """
    h, w = arr.shape[-2:]
    if (h, w) == tuple(shape):
        return arr
    out_h, out_w = shape
    if (
        h % out_h == 0
        and w % out_w == 0
        and h >= out_h
        and w >= out_w
        and not (np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any())
    ):
        fy, fx = h // out_h, w // out_w
        lead = arr.shape[:-2]
        # float32 sums of 16-bit integers over <= 36 pixels are exact; summing rows, then columns,
        # over contiguous axes is ~1.6x faster than one mean over two strided axes
        x = arr.astype(np.float32 if np.issubdtype(arr.dtype, np.integer) else np.float64)
        x = x.reshape(*lead, out_h, fy, w).sum(axis=-2)
        x = x.reshape(*lead, out_h, out_w, fx).sum(axis=-1)
        return x / (fy * fx)
    flat = arr.reshape(-1, h, w)
    return np.stack([resample(a, shape) for a in flat]).reshape(*arr.shape[:-2], out_h, out_w)
