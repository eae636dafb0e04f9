"""ManifestWriter: rows given as WKB are written with the same bytes as rows given as shapes."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from csmoe_data.builder.describe import geometry_type_codes
from csmoe_data.builder.write import ManifestWriter


def _batch(start: int, n: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    x, y = rng.uniform(-170, 160, n), rng.uniform(-60, 60, n)
    geoms = np.array(shapely.box(x, y, x + 1, y + 1), dtype=object)
    geoms[::7] = None  # outside the target CRS's domain
    if n > 3:
        geoms[3] = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 2, 3, 3)])
        geoms[1] = shapely.Polygon()  # empty
    major = pd.array(rng.integers(0, 5, n), dtype="Int32")
    major[::5] = pd.NA
    return gpd.GeoDataFrame(
        {
            "patch_id": pd.array([f"p{i}" for i in range(start, start + n)], dtype="string"),
            "crs": pd.array(["EPSG:4326"] * n, dtype="string"),
            "bbox": rng.random(n),  # an attribute of that name: replaced by the covering box
            "lc_1": rng.random(n).astype(np.float32),
            "lc_major": major,
            "kg_major": pd.array(rng.choice(["Af", "BWh", None], n), dtype="string"),
        },
        geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"),
        crs="EPSG:4326",
    )


@pytest.mark.parametrize("sizes", [(40, 13, 0, 29), (0, 5, 7), (1,)])
def test_encoded_rows_give_the_same_bytes(tmp_path, sizes):
    rng = np.random.default_rng(len(sizes))
    batches, start = [], 0
    for n in sizes:
        batches.append(_batch(start, n, rng))
        start += n
    shapes, encoded = tmp_path / "shapes.parquet", tmp_path / "encoded.parquet"
    with ManifestWriter(shapes, row_group_rows=16) as writer:
        for gdf in batches:
            writer.write(gdf)
        writer.close({"k": 1})
    with ManifestWriter(encoded, row_group_rows=16) as writer:
        for gdf in batches:
            geoms = np.asarray(gdf.geometry.values, dtype=object)
            writer.write_encoded(
                pd.DataFrame(gdf.drop(columns="geometry")),
                shapely.to_wkb(geoms),
                shapely.bounds(geoms),
                geometry_type_codes(geoms),
            )
        writer.close({"k": 1})
    assert encoded.read_bytes() == shapes.read_bytes()
    back = gpd.read_parquet(encoded)
    assert len(back) == sum(sizes)
    if sum(sizes) > 3:
        assert back.geometry.isna().sum() == sum((n + 6) // 7 for n in sizes)
