"""describe_chunk: the EPSG:4326 WKB it returns is what encoding the transformed shapes gives."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from csmoe_data.builder import BuildInputs
from csmoe_data.builder.describe import describe_chunk
from csmoe_data.builder.load import load_rasters
from csmoe_data.geometry import transform_geometries_by_crs


@pytest.mark.parametrize("compiled", [False, True])
def test_lonlat_wkb_equals_encoding_the_transformed_shapes(compiled):
    specs, _ = load_rasters(
        BuildInputs(
            "unused.parquet",
            landcover="sample:modis-igbp",
            landcover_legend="modis-igbp",
            climate="sample:koppen-rubel",
            climate_legend="koppen-rubel",
        )
    )
    geoms = np.array(
        [
            shapely.box(10.0, 45.0, 10.3, 45.2),  # lon/lat, kept as it is
            shapely.box(500000, 5000000, 510000, 5010000),  # UTM 33N, reprojected
            shapely.box(179.8, -17.0, 180.3, -16.8),  # lon/lat over the antimeridian: cut
            None,
            shapely.box(-60.0, -5.0, -59.7, -4.6),
        ],
        dtype=object,
    )
    crs = np.array(["EPSG:4326", "EPSG:32633", "EPSG:4326", "EPSG:4326", "EPSG:4326"], dtype=object)
    wkb = shapely.to_wkb(geoms)
    got = describe_chunk(wkb, crs, specs, 21, compiled)
    expected = shapely.to_wkb(
        transform_geometries_by_crs(shapely.from_wkb(wkb), list(crs), "EPSG:4326", 21)
    )
    assert list(got["geometry"]) == list(expected)
    assert got["geometry"][0] is wkb[0]  # not encoded again
    assert got["geometry"][2] != wkb[2] and got["geometry"][3] is None
    assert got["type_codes"].tolist() == [3, 3, 6, -1, 3]
    np.testing.assert_array_equal(got["bounds"][0], [10.0, 45.0, 10.3, 45.2])
    assert np.isnan(got["bounds"][3]).all()
