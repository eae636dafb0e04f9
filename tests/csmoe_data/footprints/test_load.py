"""Tests of csmoe_data.footprints: vector files, raster folders, dispatch and bad inputs."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints import Footprints, load_footprints


def _squares(
    n: int = 3, x0: float = 404400, y0: float = 5341200, size: float = 1200
) -> list[shapely.Polygon]:
    return [shapely.box(x0 + i * size, y0, x0 + (i + 1) * size, y0 + size) for i in range(n)]


def _gdf(crs: str | None = "EPSG:32633", **extra: list) -> gpd.GeoDataFrame:
    data = {"patch_id": ["a", "b", "c"], "score": [1.5, 2.5, 3.5]}
    data.update(extra)
    return gpd.GeoDataFrame(data, geometry=_squares(), crs=crs)


@pytest.fixture
def write_tif(geotiff):
    """A writer of tiny uint8 GeoTIFFs with their upper-left corner at (x0, y0)."""

    def write(
        path: Path,
        x0: float,
        y0: float,
        crs: str | None = "EPSG:32633",
        size: int = 4,
        res: float = 10.0,
    ) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = np.ones((size, size), dtype=np.uint8)
        return geotiff(path, data, rasterio.Affine(res, 0.0, x0, 0.0, -res, y0), crs=crs)

    return write


@pytest.mark.parametrize("suffix", [".parquet", ".gpkg", ".geojson", ".shp", ".fgb"])
def test_vector_formats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"fp{suffix}"
    gdf = _gdf()
    if suffix == ".parquet":
        gdf.to_parquet(path)
    else:
        gdf.to_file(path)
    fp = load_footprints(path)
    assert isinstance(fp, Footprints)
    t = fp.table.sort_values("patch_id", ignore_index=True)  # FlatGeobuf writers may reorder
    assert list(t.columns[:3]) == ["patch_id", "geometry", "crs"]
    assert t["patch_id"].tolist() == ["a", "b", "c"]
    assert set(t["crs"]) == {"EPSG:32633"}
    assert t["score"].tolist() == [1.5, 2.5, 3.5]
    for got, want in zip(t["geometry"], _squares(), strict=True):
        assert got.equals(want)
    assert fp.repaired == 0 and fp.dropped == 0
    assert fp.source == str(path)


def test_custom_id_column_integer_ids_and_reserved_names(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"cell": [10, 11, 12], "crs": ["x", "y", "z"], "patch_id": ["p", "q", "r"]},
        geometry=_squares(),
        crs="EPSG:32633",
    )
    path = tmp_path / "fp.shp"  # shapefiles turn integer ids into reals on some drivers
    gdf.to_file(path)
    fp = load_footprints(path, id_column="cell")
    assert fp.table["patch_id"].tolist() == ["10", "11", "12"]
    assert fp.table["crs"].tolist() == ["EPSG:32633"] * 3
    assert fp.table["crs_src"].tolist() == ["x", "y", "z"]
    assert fp.table["patch_id_src"].tolist() == ["p", "q", "r"]
    assert any("renamed" in n for n in fp.notes)


def test_three_d_multi_and_invalid_are_repaired(tmp_path: Path) -> None:
    bow = shapely.Polygon([(0, 0), (1000, 1000), (1000, 0), (0, 1000)])
    z = shapely.Polygon([(0, 0, 5), (1000, 0, 5), (1000, 1000, 5), (0, 1000, 5)])
    multi = shapely.MultiPolygon([shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)])
    gdf = gpd.GeoDataFrame(
        {"patch_id": ["bow", "z", "multi", "line"]},
        geometry=[bow, z, multi, shapely.LineString([(0, 0), (1, 1)])],
        crs="EPSG:32633",
    )
    gdf.to_parquet(tmp_path / "fp.parquet")
    fp = load_footprints(tmp_path / "fp.parquet")
    assert fp.repaired == 1
    assert fp.dropped == 1  # the line has no area
    t = fp.table.set_index("patch_id")
    assert list(t.index) == ["bow", "z", "multi"]
    assert t.loc["bow", "geometry"].is_valid and t.loc["bow", "geometry"].area == pytest.approx(
        500_000
    )
    assert not t.loc["z", "geometry"].has_z
    assert t.loc["multi", "geometry"].geom_type == "MultiPolygon"
    assert any("repaired" in n for n in fp.notes) and any("dropped" in n for n in fp.notes)


def test_geographic_dateline_inputs_are_canonical(tmp_path: Path) -> None:
    long_way = shapely.Polygon([(179.5, 10), (-179.5, 10), (-179.5, 11), (179.5, 11)])
    over = shapely.box(179.5, 20, 180.5, 21)
    gdf = gpd.GeoDataFrame({"patch_id": ["lw", "over"]}, geometry=[long_way, over], crs="EPSG:4326")
    gdf.to_file(tmp_path / "fp.geojson")
    fp = load_footprints(tmp_path / "fp.geojson")
    for geom in fp.table["geometry"]:
        assert geom.geom_type == "MultiPolygon"
        assert geom.area == pytest.approx(1.0)
        lo, _, hi, _ = geom.bounds
        assert lo == pytest.approx(-180.0) and hi == pytest.approx(180.0)
    assert fp.table["crs"].tolist() == ["EPSG:4326"] * 2


@pytest.mark.parametrize(
    ("cell", "kind"),
    [
        (["Pastures", "Mixed forest"], "list"),
        ("Pastures;Mixed forest", "text"),
        ('["Pastures", "Mixed forest"]', "json"),
    ],
)
def test_labels_column(tmp_path: Path, cell: object, kind: str) -> None:
    gdf = _gdf(tags=[cell, cell, None])
    path = tmp_path / f"fp_{kind}.parquet"
    gdf.to_parquet(path)
    fp = load_footprints(path, labels_column="tags")
    assert fp.table["labels"].tolist() == [["Pastures", "Mixed forest"]] * 2 + [[]]
    # BigEarthNet names also get the 19-class labels
    assert fp.table["labels19"].tolist()[0] == ["Pastures", "Mixed forest"]


def test_labels_column_with_other_names_has_no_labels19(tmp_path: Path) -> None:
    _gdf(tags=["cat;dog", "cat", "dog"]).to_parquet(tmp_path / "fp.parquet")
    fp = load_footprints(tmp_path / "fp.parquet", labels_column="tags")
    assert fp.table["labels"].tolist() == [["cat", "dog"], ["cat"], ["dog"]]
    assert "labels19" not in fp.table.columns


def test_manifest_like_parquet_round_trip(tmp_path: Path) -> None:
    """A GeoParquet with a bbox covering column (e.g. a manifest) loads; the covering is dropped."""
    gdf = _gdf().to_crs(4326)
    gdf.to_parquet(tmp_path / "m.parquet", write_covering_bbox=True)
    fp = load_footprints(tmp_path / "m.parquet")
    assert "bbox" not in fp.table.columns
    assert fp.table["crs"].iloc[0] == "EPSG:4326"


# ----------------------------------------------------------------------------- bad inputs


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(CsmoeDataError, match="not found"):
        load_footprints(tmp_path / "nope.gpkg")


def test_empty_file(tmp_path: Path) -> None:
    gpd.GeoDataFrame({"patch_id": []}, geometry=[], crs="EPSG:32633").to_parquet(
        tmp_path / "e.parquet"
    )
    with pytest.raises(CsmoeDataError, match="empty"):
        load_footprints(tmp_path / "e.parquet")


def test_missing_id_column(tmp_path: Path) -> None:
    _gdf().to_file(tmp_path / "fp.gpkg")
    with pytest.raises(CsmoeDataError, match=r"id column 'name' not found.*--id-column"):
        load_footprints(tmp_path / "fp.gpkg", id_column="name")


def test_duplicate_ids(tmp_path: Path) -> None:
    gdf = _gdf()
    gdf["patch_id"] = ["a", "a", "b"]
    gdf.to_file(tmp_path / "fp.gpkg")
    with pytest.raises(CsmoeDataError, match=r"1 duplicate id\(s\), e\.g\. 'a'"):
        load_footprints(tmp_path / "fp.gpkg")


def test_null_ids(tmp_path: Path) -> None:
    gdf = _gdf()
    gdf["patch_id"] = ["a", None, "b"]
    gdf.to_parquet(tmp_path / "fp.parquet")
    with pytest.raises(CsmoeDataError, match="empty value"):
        load_footprints(tmp_path / "fp.parquet")


def test_no_crs(tmp_path: Path) -> None:
    _gdf(crs=None).to_parquet(tmp_path / "fp.parquet")
    with pytest.raises(CsmoeDataError, match="no CRS"):
        load_footprints(tmp_path / "fp.parquet")


def test_corrupt_and_unsupported_files(tmp_path: Path) -> None:
    (tmp_path / "bad.gpkg").write_bytes(b"not a geopackage at all")
    with pytest.raises(CsmoeDataError, match="cannot read footprint file"):
        load_footprints(tmp_path / "bad.gpkg")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(CsmoeDataError, match="cannot read footprint file"):
        load_footprints(tmp_path / "bad.parquet")
    pd.DataFrame({"patch_id": ["a"]}).to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(CsmoeDataError, match="without GeoParquet"):
        load_footprints(tmp_path / "plain.parquet")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CsmoeDataError, match="cannot read footprint file"):
        load_footprints(tmp_path / "notes.txt")


def test_missing_labels_column(tmp_path: Path) -> None:
    _gdf().to_parquet(tmp_path / "fp.parquet")
    with pytest.raises(CsmoeDataError, match="labels column 'tags' not found"):
        load_footprints(tmp_path / "fp.parquet", labels_column="tags")


def test_unknown_sample() -> None:
    with pytest.raises(CsmoeDataError, match="unknown sample"):
        load_footprints("sample:nothing")


# ----------------------------------------------------------------------------- raster folders


def test_raster_folder_mixes_utm_zones(write_tif, tmp_path: Path) -> None:
    write_tif(tmp_path / "at" / "p1.tif", 404400, 5342400, "EPSG:32633")
    write_tif(tmp_path / "ie" / "deep" / "p2.tiff", 644400, 5798040, "EPSG:32629")
    write_tif(tmp_path / "fi" / "p3.TIF", 684000, 6971220, "EPSG:32635", res=20.0)
    (tmp_path / "readme.txt").write_text("not a raster")
    fp = load_footprints(tmp_path)
    t = fp.table.set_index("patch_id")
    assert sorted(t.index) == ["p1", "p2", "p3"]
    assert t.loc["p1", "crs"] == "EPSG:32633"
    assert t.loc["p2", "crs"] == "EPSG:32629"
    assert t.loc["p3", "crs"] == "EPSG:32635"
    assert t.loc["p1", "geometry"].equals(shapely.box(404400, 5342360, 404440, 5342400))
    assert t.loc["p3", "geometry"].equals(shapely.box(684000, 6971140, 684080, 6971220))
    assert Path(t.loc["p2", "image_path"]).is_absolute()
    assert Path(t.loc["p2", "image_path"]).name == "p2.tiff"
    assert t.loc["p1", "width"] == 4 and t.loc["p1", "height"] == 4
    assert any("3 CRSs" in n for n in fp.notes)


def test_raster_folder_many_files_threaded(write_tif, tmp_path: Path) -> None:
    for i in range(70):  # above the threshold where reads go to a thread pool
        write_tif(tmp_path / f"p{i:03d}.tif", 400000 + 40 * i, 5342400)
    fp = load_footprints(tmp_path, workers=4, progress=False)
    assert fp.table["patch_id"].tolist() == [f"p{i:03d}" for i in range(70)]
    assert fp.table["geometry"].iloc[69].bounds[0] == 400000 + 40 * 69


def test_single_geotiff(write_tif, tmp_path: Path) -> None:
    path = write_tif(tmp_path / "one.tif", 404400, 5342400)
    fp = load_footprints(path)
    assert fp.table["patch_id"].tolist() == ["one"]


def test_raster_folder_errors(write_tif, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CsmoeDataError, match="no GeoTIFF"):
        load_footprints(empty)
    nocrs = tmp_path / "nocrs"
    write_tif(nocrs / "a.tif", 0, 0, crs=None)
    with pytest.raises(CsmoeDataError, match="has no CRS"):
        load_footprints(nocrs)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(CsmoeDataError, match="cannot read raster"):
        load_footprints(corrupt)
    dup = tmp_path / "dup"
    write_tif(dup / "x" / "same.tif", 404400, 5342400)
    write_tif(dup / "y" / "same.tif", 404400, 5342400)
    with pytest.raises(CsmoeDataError, match="share a file stem"):
        load_footprints(dup)


def test_progress_bar_path(write_tif, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        write_tif(tmp_path / f"p{i}.tif", 400000 + 40 * i, 5342400)
    fp = load_footprints(tmp_path, progress=True)
    assert len(fp) == 3
