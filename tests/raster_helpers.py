"""Small GeoTIFF writer shared by the tests (generated rasters with exactly known contents)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio


def write_geotiff(
    path: str | Path,
    data: np.ndarray,
    transform: Any,
    crs: str | None = "EPSG:32633",
    nodata: float | None = None,
    **profile: Any,
) -> Path:
    """Write a single-band GeoTIFF and return its path."""
    data = np.asarray(data)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[0],
        width=data.shape[1],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        **profile,
    ) as ds:
        ds.write(data, 1)
    return Path(path)
