"""Tests of csmoe_data.footprints.grid (the ``csmoe-data grid`` command: tests/cli/test_data_grid.py)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely

from csmoe_common.errors import CsmoeError
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints import cells_at_points, load_footprints, make_grid, write_grid
from csmoe_data.footprints.grid import parse_bbox, utm_epsg, utm_zone, zone_region


def _covered(grid: gpd.GeoDataFrame, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    union = shapely.union_all(grid.geometry.values)
    return shapely.contains_xy(union, lon, lat) | shapely.intersects_xy(union, lon, lat)


def test_zone_helpers() -> None:
    assert utm_zone([-180, -174.0001, 13.7, 179.9, 180]).tolist() == [1, 1, 33, 60, 60]
    assert utm_epsg(33, True) == 32633 and utm_epsg(1, False) == 32701
    with pytest.raises(CsmoeDataError):
        utm_epsg(61, True)


def test_naming_alignment_and_exact_cells() -> None:
    grid = make_grid("13.70,48.20,13.74,48.24", 1000)
    assert set(grid["utm_crs"]) == {"EPSG:32633"}
    assert grid.crs.to_epsg() == 4326
    t = pyproj.Transformer.from_crs(4326, 32633, always_xy=True)
    x, y = t.transform(13.72, 48.22)
    row, col = int(y // 1000), int(x // 1000)
    pid = f"33N_{row:04d}_{col:04d}"
    assert pid in set(grid["patch_id"])
    cell = grid.set_index("patch_id").loc[pid]
    assert (cell["row"], cell["col"], cell["cell_size"]) == (row, col, 1000.0)
    assert grid["patch_id"].is_unique
    # the lon/lat outline is the image of the UTM square
    lon, lat = pyproj.Transformer.from_crs(32633, 4326, always_xy=True).transform(
        col * 1000, row * 1000
    )
    corners = shapely.get_coordinates(cell["geometry"])
    assert np.min(np.hypot(corners[:, 0] - lon, corners[:, 1] - lat)) < 1e-9


def test_example_id_format() -> None:
    lon, lat = pyproj.Transformer.from_crs(32633, 4326, always_xy=True).transform(
        404_500, 4_821_500
    )
    grid = cells_at_points([lon], [lat], 1000)
    assert grid["patch_id"].tolist() == ["33N_4821_0404"]


def test_coverage_and_zone_split() -> None:
    bbox = (11.5, 47.0, 12.5, 47.6)  # zone 32 | zone 33 at 12 E
    grid = make_grid(bbox, 5000)
    assert set(grid["utm_crs"]) == {"EPSG:32632", "EPSG:32633"}
    assert (
        grid["patch_id"].str.startswith("32N_").any()
        and grid["patch_id"].str.startswith("33N_").any()
    )
    rng = np.random.default_rng(0)
    lon = rng.uniform(bbox[0], bbox[2], 500)
    lat = rng.uniform(bbox[1], bbox[3], 500)
    assert _covered(grid, lon, lat).all()
    # each zone's cells lie on its own lattice and overlap the zone's part of the bbox
    for crs, part in grid.groupby("utm_crs"):
        zone = int(crs[-2:])
        west = -180 + 6 * (zone - 1)
        cells = part.geometry.values
        assert all(
            shapely.intersects(c, shapely.box(max(west, 11.5), 47.0, min(west + 6, 12.5), 47.6))
            for c in cells
        )


def test_hemispheres_and_antimeridian() -> None:
    grid = make_grid("179.5,-0.3,-179.5,0.3", 20000)
    assert set(grid["utm_crs"]) == {"EPSG:32660", "EPSG:32760", "EPSG:32601", "EPSG:32701"}
    assert {p[:3] for p in grid["patch_id"]} == {"60N", "60S", "01N", "01S"}
    for geom in grid.geometry:
        lo, _, hi, _ = geom.bounds
        assert lo >= -180 and hi <= 180
        for part in shapely.get_parts(geom):
            assert part.bounds[2] - part.bounds[0] < 1.0
    rng = np.random.default_rng(1)
    lon = np.concatenate([rng.uniform(179.5, 180, 200), rng.uniform(-180, -179.5, 200)])
    lat = rng.uniform(-0.3, 0.3, 400)
    assert _covered(grid, lon, lat).all()


def test_global_grid() -> None:
    grid = make_grid("-180,-60,180,60", 500_000)
    assert grid["utm_crs"].nunique() == 120
    assert grid["patch_id"].is_unique
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(-180, 180, 300), rng.uniform(-60, 60, 300)
    assert _covered(grid, lon, lat).all()


def test_deterministic() -> None:
    a = make_grid("12,47,12.3,47.2", 2000)
    b = make_grid("12,47,12.3,47.2", 2000)
    assert a["patch_id"].tolist() == b["patch_id"].tolist()
    assert all(x.equals_exact(y, 0) for x, y in zip(a.geometry, b.geometry, strict=True))


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        ("1,2,3", "4 finite numbers"),
        ("a,b,c,d", "not MINLON"),
        ("0,10,1,5", "MINLAT < MAXLAT"),
        ("0,0,200,1", r"\[-180, 180\]"),
        ("5,0,5,1", "zero width"),
    ],
)
def test_bad_bbox(bbox: str, match: str) -> None:
    with pytest.raises(CsmoeDataError, match=match):
        parse_bbox(bbox)


def test_bad_cell_size_and_max_cells() -> None:
    with pytest.raises(CsmoeDataError, match="positive"):
        make_grid("0,0,1,1", 0)
    with pytest.raises(CsmoeDataError, match="max-cells"):
        make_grid("0,0,1,1", 1000, max_cells=100)


def test_cells_at_points_dedupes() -> None:
    grid = cells_at_points([13.72, 13.72001, -7.44, 170.0], [48.22, 48.22, 52.64, -45.0], 1200)
    assert len(grid) == 3
    assert grid["utm_crs"].tolist() == ["EPSG:32633", "EPSG:32629", "EPSG:32759"]
    assert grid["patch_id"].iloc[2].startswith("59S_")
    with pytest.raises(CsmoeDataError):
        cells_at_points([0, 1], [0], 1200)


@pytest.mark.parametrize("suffix", [".parquet", ".gpkg", ".geojson", ".fgb"])
def test_round_trip_rebuilds_exact_squares(tmp_path: Path, suffix: str) -> None:
    grid = make_grid("179.8,-0.1,-179.8,0.1", 10000)
    path = write_grid(grid, tmp_path / f"grid{suffix}")
    fp = load_footprints(path)
    t = fp.table.set_index("patch_id")
    assert len(t) == len(grid)
    for _, cell in grid.iterrows():
        got = t.loc[cell["patch_id"]]
        assert got["crs"] == cell["utm_crs"]
        size = cell["cell_size"]
        square = shapely.box(
            cell["col"] * size,
            cell["row"] * size,
            (cell["col"] + 1) * size,
            (cell["row"] + 1) * size,
        )
        # the exact square, cut where it reaches out of its zone or hemisphere
        want = shapely.intersection(square, zone_region(int(cell["utm_crs"][5:])))
        assert got["geometry"].equals_exact(want, 1e-6) or got["geometry"].equals(want)
        assert got["geometry"].area <= size * size + 1e-6
    assert "utm_crs" not in t.columns and {"row", "col", "cell_size"} <= set(t.columns)
    with pytest.raises(CsmoeError, match="exists"):
        write_grid(grid, path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_unsupported_output(tmp_path: Path) -> None:
    with pytest.raises(CsmoeDataError, match="unsupported grid output"):
        write_grid(make_grid("0,0,0.1,0.1", 5000), tmp_path / "g.shp")


def test_cells_do_not_overlap_at_zone_seams_or_the_equator() -> None:
    # 12 E is the seam of zones 32 and 33; the bbox also crosses the equator
    grid = make_grid("11.8,-0.2,12.2,0.2", 5000)
    assert set(grid["utm_crs"]) == {"EPSG:32632", "EPSG:32633", "EPSG:32732", "EPSG:32733"}
    outlines = np.asarray(grid.geometry.values, dtype=object)
    union = shapely.union_all(outlines)
    # no overlap and no gap beyond the chords of the densified seam (~5e-8 degree, 5 mm)
    assert abs(union.area - shapely.area(outlines).sum()) < 1e-9 * union.area
    assert union.buffer(1e-7).covers(shapely.box(11.8, -0.2, 12.2, 0.2))
    # each cell lies in its own zone and hemisphere
    for crs, geom in zip(grid["utm_crs"], outlines, strict=True):
        zone, north = int(crs[-2:]), crs.startswith("EPSG:326")
        minx, miny, maxx, maxy = geom.bounds
        assert -180 + 6 * (zone - 1) - 1e-9 <= minx and maxx <= -180 + 6 * zone + 1e-9
        assert (miny >= -1e-9) if north else (maxy <= 1e-9)
    # loading rebuilds the same cut cells in their UTM zones
    fp = load_footprints_from_grid(grid)
    areas = shapely.area(np.asarray(fp["geometry"].values, dtype=object))
    assert (areas <= 5000.0**2 + 1e-6).all() and (areas < 5000.0**2 - 1).any()


def load_footprints_from_grid(grid: gpd.GeoDataFrame):  # noqa: ANN201 - a small helper
    from csmoe_data.footprints.grid import grid_cell_squares

    geoms, crs = grid_cell_squares(grid["utm_crs"], grid["row"], grid["col"], grid["cell_size"])
    return gpd.pd.DataFrame({"geometry": geoms, "crs": crs})
