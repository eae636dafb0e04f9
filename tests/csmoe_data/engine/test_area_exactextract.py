"""Spherical pixel weights against exactextract's ``frac(coverage_weight=area_spherical_m2)``.

At high latitudes a lon/lat pixel's area shrinks with cos(latitude) across a footprint, so
fractions weighted by true area differ from plain pixel-count fractions by far more than the
tolerance below; the test therefore fails if the weights are missing or wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from rasterio.transform import from_origin

from csmoe_data.descriptors import footprint_descriptors


@pytest.mark.parametrize("latitude", [0.0, 50.0, 75.0])
def test_spherical_fractions_match_exactextract(
    latitude: float, categorical_raster, legend_of, tmp_path
) -> None:
    exactextract = pytest.importorskip("exactextract")
    import geopandas as gpd

    rng = np.random.default_rng(int(latitude))
    # 0.1 deg pixels, 8 x 8 deg around (10 E, latitude); classes in horizontal bands so that the
    # north-south area gradient changes the fractions
    rows, cols = 80, 80
    data = np.repeat(np.arange(rows, dtype=np.uint8)[:, None] // 10, cols, axis=1)
    data = np.where(rng.random((rows, cols)) < 0.2, rng.integers(0, 8, (rows, cols)), data)
    data = data.astype(np.uint8)
    top = latitude + 4.0
    path = tmp_path / f"lat{int(latitude)}.tif"
    info = categorical_raster(path, data, from_origin(6.0, top, 0.1, 0.1), crs="EPSG:4326")
    legend = legend_of(list(range(8)))
    geoms = []
    for _ in range(30):
        cx, cy = rng.uniform(7.0, 13.0), rng.uniform(latitude - 2.5, latitude + 2.5)
        half = rng.uniform(0.3, 1.4)
        box = shapely.box(cx - half, cy - half, cx + half, cy + half)
        geoms.append(shapely.affinity.rotate(box, rng.uniform(0, 45)))
    geoms_arr = np.array(geoms, dtype=object)
    df, _ = footprint_descriptors(geoms_arr, ["EPSG:4326"] * len(geoms), info, legend)
    gdf = gpd.GeoDataFrame({"i": np.arange(len(geoms))}, geometry=geoms, crs=4326)
    ee = exactextract.exact_extract(
        str(path), gdf, ["unique", "frac(coverage_weight=area_spherical_m2)"], output="pandas"
    )
    frac_column = [c for c in ee.columns if c.startswith("frac")][0]
    l1 = []
    for i in range(len(geoms)):
        ref = np.zeros(8)
        for code, fraction in zip(ee["unique"][i], ee[frac_column][i], strict=True):
            ref[int(code)] = fraction
        mine = df.loc[i, [f"lc_{k}" for k in range(8)]].to_numpy(float)
        l1.append(np.abs(mine - ref).sum())
    assert max(l1) < 1e-6
