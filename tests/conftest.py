"""Fixtures shared by every test package: the repository root, one GeoTIFF writer, one manifest factory.

Test modules take these as fixtures (``geotiff``, ``manifest_factory``) instead of importing helpers
from other test files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

GeoTiffWriter = Callable[..., Path]
ManifestFactory = Callable[..., Path]


def write_geotiff(
    path: str | Path,
    data: np.ndarray,
    transform: Any,
    crs: str | None = "EPSG:32633",
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    **profile: Any,
) -> Path:
    """Write a GeoTIFF with exactly known contents and return its path.

    Args:
        path: the file to write.
        data: (H, W) for one band or (C, H, W) for several.
        transform: an ``affine.Affine`` geotransform.
        crs: any CRS rasterio accepts, or ``None`` for none.
        nodata: the nodata value to declare.
        descriptions: band descriptions (GDAL ``DESCRIPTION``), one per band.
        **profile: further creation options (``tiled``, ``blockxsize``, ``compress``...).
    """
    import rasterio

    arr = np.asarray(data)
    bands = arr[None] if arr.ndim == 2 else arr
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=bands.shape[1],
        width=bands.shape[2],
        count=bands.shape[0],
        dtype=bands.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        **profile,
    ) as ds:
        ds.write(bands)
        for i, text in enumerate(descriptions or (), start=1):
            ds.set_band_description(i, text)
    return Path(path)


def write_manifest(
    path: str | Path,
    rows: Sequence[dict[str, Any]],
    splits: Sequence[str] | None = None,
    geometries: Sequence[Any] | None = None,
) -> Path:
    """Write a small GeoParquet manifest with geopandas and return its path.

    Args:
        path: the ``.parquet`` file.
        rows: one dict of columns per row (``patch_id``, ``s1_path``, ``s2_path``...).
        splits: values of a ``split`` column, when given.
        geometries: shapely geometries in EPSG:4326 (default: a unit box per row).
    """
    import geopandas as gpd
    from shapely.geometry import box

    geoms = (
        list(geometries)
        if geometries is not None
        else [box(i, 0, i + 1, 1) for i in range(len(rows))]
    )
    gdf = gpd.GeoDataFrame(list(rows), geometry=geoms, crs="EPSG:4326")
    if splits is not None:
        gdf["split"] = list(splits)
    gdf.to_parquet(path)
    return Path(path)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder (wherever the checkout lives, whatever its name)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def geotiff() -> GeoTiffWriter:
    """The GeoTIFF writer :func:`write_geotiff`."""
    return write_geotiff


@pytest.fixture(scope="session")
def manifest_factory() -> ManifestFactory:
    """The manifest writer :func:`write_manifest`."""
    return write_manifest
