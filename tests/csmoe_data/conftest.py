"""Fixtures of the data half's tests: categorical rasters on a known grid, small legends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.transform import from_origin

from csmoe_data.engine.io import RasterInfo, inspect_raster
from csmoe_data.legends import Legend, LegendClass


@dataclass(frozen=True)
class PixelGrid:
    """The 10 m test grid in UTM 33N whose top-left corner is (x0, y0)."""

    x0: float = 500000.0
    y0: float = 5000000.0
    res: float = 10.0

    @property
    def transform(self) -> Affine:
        return from_origin(self.x0, self.y0, self.res, self.res)

    def box(self, c0: float, r0: float, c1: float, r1: float) -> shapely.Polygon:
        """A box given in (fractional) pixel coordinates of the grid."""
        return shapely.box(
            self.x0 + c0 * self.res,
            self.y0 - r1 * self.res,
            self.x0 + c1 * self.res,
            self.y0 - r0 * self.res,
        )


@pytest.fixture(scope="session")
def grid10m() -> PixelGrid:
    """The 10 m pixel grid most engine tests place their rasters and footprints on."""
    return PixelGrid()


@pytest.fixture(scope="session")
def categorical_raster(geotiff: Callable[..., Path]) -> Callable[..., RasterInfo]:
    """Write a categorical GeoTIFF and return its inspected :class:`RasterInfo`."""

    def write(
        path: Path,
        data: np.ndarray,
        transform: Affine,
        crs: str = "EPSG:32633",
        nodata: float | None = None,
        **kw: Any,
    ) -> RasterInfo:
        return inspect_raster(geotiff(path, data, transform, crs=crs, nodata=nodata, **kw))

    return write


@pytest.fixture(scope="session")
def legend_of() -> Callable[..., Legend]:
    """A land-cover legend whose classes are the given codes (``class <code>``)."""

    def make(codes: Sequence[int], nodata: Sequence[int] = ()) -> Legend:
        return Legend(
            "t",
            "landcover",
            tuple(LegendClass(c, c, f"class {c}") for c in codes),
            nodata=tuple(nodata),
        )

    return make
