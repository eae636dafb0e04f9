"""Footprints as users have them: layers, CSV variants, points, ids shared by split tiles."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints import load_footprints


def _two_layers(tmp_path: Path) -> Path:
    path = tmp_path / "two.gpkg"
    a = gpd.GeoDataFrame(
        {"patch_id": ["a1", "a2"]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
        crs="EPSG:4326",
    )
    b = gpd.GeoDataFrame({"patch_id": ["b1"]}, geometry=[shapely.box(5, 5, 6, 6)], crs="EPSG:4326")
    a.to_file(path, layer="tiles", driver="GPKG")
    b.to_file(path, layer="aoi", driver="GPKG")
    return path


def test_several_layers_need_layer(tmp_path: Path) -> None:
    path = _two_layers(tmp_path)
    with pytest.raises(CsmoeDataError, match=r"2 layers \(tiles, aoi\).*--layer"):
        load_footprints(path)
    assert load_footprints(path, layer="aoi").table["patch_id"].tolist() == ["b1"]
    assert load_footprints(path, layer="tiles").table["patch_id"].tolist() == ["a1", "a2"]
    with pytest.raises(CsmoeDataError, match="no such layer"):
        load_footprints(path, layer="roads")


def test_csv_with_wkt_needs_crs(tmp_path: Path) -> None:
    path = tmp_path / "fp.csv"
    path.write_text(
        'patch_id,WKT,note\np1,"POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))",x\np2,"POLYGON ((2 0, 3 0, 3 1, 2 1, 2 0))",y\n'
    )
    with pytest.raises(CsmoeDataError, match="--crs"):
        load_footprints(path)
    fp = load_footprints(path, crs="EPSG:4326")
    assert fp.table["patch_id"].tolist() == ["p1", "p2"] and fp.table["note"].tolist() == ["x", "y"]
    assert set(fp.table["crs"]) == {"EPSG:4326"}
    assert shapely.area(fp.table["geometry"].iloc[0]) == pytest.approx(1.0)
    bad = tmp_path / "bad.csv"
    bad.write_text('patch_id,geometry\np1,"POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))"\np2,not wkt\n')
    with pytest.raises(CsmoeDataError, match="row 3"):
        load_footprints(bad, crs="EPSG:4326")


@pytest.mark.parametrize(("lon", "lat"), [("lon", "lat"), ("Longitude", "Latitude")])
def test_csv_points_become_utm_squares(tmp_path: Path, lon: str, lat: str) -> None:
    path = tmp_path / "pts.csv"
    path.write_text(f"patch_id,{lon},{lat}\nberlin,13.4,52.5\nquito,-78.5,-0.2\n")
    with pytest.raises(CsmoeDataError, match="--point-size"):
        load_footprints(path)
    fp = load_footprints(path, point_size=2640)
    assert fp.table["crs"].tolist() == ["EPSG:32633", "EPSG:32717"]
    for g in fp.table["geometry"]:
        minx, miny, maxx, maxy = g.bounds
        assert (maxx - minx, maxy - miny) == (pytest.approx(2640), pytest.approx(2640))
    assert fp.table["point_lon"].tolist() == pytest.approx([13.4, -78.5])
    nums = tmp_path / "bad_pts.csv"
    nums.write_text("patch_id,lon,lat\na,1,2\nb,east,3\n")
    with pytest.raises(CsmoeDataError, match="row 3"):
        load_footprints(nums, point_size=100)
    off = tmp_path / "off_pts.csv"
    off.write_text("patch_id,lon,lat\na,1,2\nb,3,4\nc,52.5,95\n")  # swapped columns
    with pytest.raises(CsmoeDataError, match=r"row 4 is no lon/lat position \(lon 52.5, lat 95"):
        load_footprints(off, point_size=100)
    none = tmp_path / "none.csv"
    none.write_text("patch_id,a,b\nx,1,2\n")
    with pytest.raises(CsmoeDataError, match="columns: patch_id, a, b"):
        load_footprints(none)


def test_points_from_a_vector_file_and_polygons_refuse_point_size(tmp_path: Path) -> None:
    pts = gpd.GeoDataFrame(
        {"patch_id": ["a"]}, geometry=gpd.points_from_xy([10.0], [45.0]), crs="EPSG:4326"
    )
    pts.to_file(tmp_path / "pts.geojson")
    fp = load_footprints(tmp_path / "pts.geojson", point_size=1000)
    assert fp.table["crs"].tolist() == ["EPSG:32632"]
    with pytest.raises(CsmoeDataError, match="holds polygons"):
        load_footprints(_two_layers(tmp_path), layer="aoi", point_size=10)


def test_split_antimeridian_tiles_dissolve(tmp_path: Path) -> None:
    # an MGRS tile over the antimeridian published as two rows with one name
    halves = gpd.GeoDataFrame(
        {"patch_id": ["01KAB", "01KAB", "33UUP"], "part": [1, 2, 1]},
        geometry=[
            shapely.box(179.5, -17.5, 180, -16.5),
            shapely.box(-180, -17.5, -179.5, -16.5),
            shapely.box(13, 48, 14, 49),
        ],
        crs="EPSG:4326",
    )
    path = tmp_path / "mgrs.parquet"
    halves.to_parquet(path)
    with pytest.raises(CsmoeDataError, match="duplicate"):
        load_footprints(path)
    fp = load_footprints(path, dissolve_ids=True)
    assert fp.table["patch_id"].tolist() == ["01KAB", "33UUP"]
    tile = fp.table["geometry"].iloc[0]
    assert shapely.area(tile) == pytest.approx(1.0)  # both halves, once each
    b = np.array([p.bounds for p in shapely.get_parts(tile)])
    assert b[:, 0].min() == pytest.approx(-180) and b[:, 2].max() == pytest.approx(180)
    assert fp.table["part"].tolist() == [1, 1]  # first row's attributes
    assert any("dissolve" in n for n in fp.notes)


def test_crs_option(tmp_path: Path) -> None:
    path = _two_layers(tmp_path)
    with pytest.raises(CsmoeDataError, match="contradicts"):
        load_footprints(path, layer="aoi", crs="EPSG:3035")
    folder = tmp_path / "f"
    folder.mkdir()
    with pytest.raises(CsmoeDataError, match="--layer applies"):
        load_footprints(folder, layer="x")
