"""Tests of the BigEarthNet footprint source: the real sample and generated archive layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints import load_footprints
from csmoe_data.samples import resolve_path

AT = "S2A_MSIL2A_20170613T101031_87_48"
PT = "S2A_MSIL2A_20171221T112501_56_35"
FI = "S2B_MSIL2A_20170924T93020_69_24"


class ArchiveWriter:
    """Writes BigEarthNet-v1-like patch folders with the shared GeoTIFF writer."""

    def __init__(self, geotiff) -> None:
        self.geotiff = geotiff

    def tif(self, path: Path, x0: float, y0: float, epsg: int, res: float = 300.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        transform = rasterio.Affine(res, 0.0, x0, 0.0, -res, y0)
        self.geotiff(path, np.zeros((4, 4), dtype=np.uint16), transform, crs=f"EPSG:{epsg}")

    def s2_patch(
        self,
        root: Path,
        name: str,
        x0: float,
        y0: float,
        epsg: int = 32633,
        labels: list[str] | None = None,
        json_file: bool = True,
    ) -> Path:
        """A BigEarthNet-v1-like S2 patch folder: a 1200 m B02 GeoTIFF and the labels JSON."""
        folder = root / name
        self.tif(folder / f"{name}_B02.tif", x0, y0, epsg)
        if json_file:
            meta = {
                "labels": labels or ["Pastures"],
                "coordinates": {"ulx": x0, "uly": y0, "lrx": x0 + 1200, "lry": y0 - 1200},
                "projection": rasterio.crs.CRS.from_epsg(epsg).to_wkt(),
                "tile_source": "S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_20170613T101608.SAFE",
                "acquisition_date": "2017-06-13 10:10:31",
            }
            (folder / f"{name}_labels_metadata.json").write_text(json.dumps(meta))
        return folder

    def s1_patch(
        self,
        root: Path,
        name: str,
        s2_name: str | None,
        x0: float,
        y0: float,
        labels: list[str] | None = None,
    ) -> Path:
        folder = root / name
        self.tif(folder / f"{name}_VV.tif", x0, y0, 32633)
        if s2_name is not None:
            meta = {"labels": labels or ["Pastures"], "corresponding_s2_patch": s2_name}
            (folder / f"{name}_labels_metadata.json").write_text(json.dumps(meta))
        return folder


@pytest.fixture
def archive(geotiff) -> ArchiveWriter:
    return ArchiveWriter(geotiff)


def test_real_sample() -> None:
    fp = load_footprints("sample:bigearthnet")
    t = fp.table.set_index("patch_id")
    assert len(t) == 6
    assert t["s1_path"].notna().all() and t["s2_path"].notna().all()
    root = resolve_path("sample:bigearthnet")
    for pid, row in t.iterrows():
        assert Path(row["s2_path"]) == (root / "S2" / pid).resolve()
        s1 = Path(row["s1_path"])
        assert s1.is_absolute() and s1.parent.name == "S1"
        meta = json.loads((s1 / f"{s1.name}_labels_metadata.json").read_text())
        assert meta["corresponding_s2_patch"] == pid
        # the footprint from the JSON corners is the B02 header's footprint
        with rasterio.open(Path(row["s2_path"]) / f"{pid}_B02.tif") as ds:
            assert row["geometry"].equals(shapely.box(*ds.bounds))
            assert row["crs"] == f"EPSG:{ds.crs.to_epsg()}"
        assert row["geometry"].area == pytest.approx(1200 * 1200)
    assert t.loc[AT, "crs"] == "EPSG:32633"
    assert t.loc[PT, "crs"] == "EPSG:32629"
    assert t.loc[FI, "crs"] == "EPSG:32635"
    assert t.loc[AT, "labels"] == [
        "Non-irrigated arable land",
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
    ]
    assert "Arable land" in t.loc[AT, "labels19"]
    assert t.loc[FI, "labels19"] == [
        "Coniferous forest",
        "Mixed forest",
        "Transitional woodland, shrub",
        "Inland wetlands",
        "Inland waters",
    ]
    assert t.loc[AT, "tile"] == "33UUP"
    assert t.loc[AT, "acquisition_date"] == "2017-06-13T10:10:31"
    assert t.loc[AT, "s1_patch_id"] == "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
    assert fp.repaired == 0 and fp.dropped == 0


def test_generated_v1_layout(archive, tmp_path: Path) -> None:
    s2, s1 = tmp_path / "S2", tmp_path / "S1"
    archive.s2_patch(
        s2, "S2A_X_1_1", 400000, 5342400, labels=["Non-irrigated arable land", "Airports"]
    )
    archive.s2_patch(s2, "S2A_X_1_2", 401200, 5342400, epsg=32634)
    archive.s2_patch(
        s2, "S2A_X_1_3", 402400, 5342400, json_file=False
    )  # footprint from the B02 header
    archive.s1_patch(s1, "S1A_Y_1_1", "S2A_X_1_1", 400000, 5342400)
    archive.s1_patch(s1, "S1A_Y_1_3", "S2A_X_1_3", 402400, 5342400, labels=["Sea and ocean"])
    archive.s1_patch(s1, "S1A_Y_9_9", "S2A_GONE", 0, 0)  # names an S2 patch that is not there
    (s2 / "not_a_patch").mkdir()
    fp = load_footprints(tmp_path)
    t = fp.table.set_index("patch_id")
    assert list(t.index) == ["S2A_X_1_1", "S2A_X_1_2", "S2A_X_1_3"]
    assert Path(t.loc["S2A_X_1_1", "s1_path"]) == (s1 / "S1A_Y_1_1").resolve()
    assert t.loc["S2A_X_1_2", "s1_path"] is None
    assert t.loc["S2A_X_1_1", "labels19"] == ["Arable land"]
    assert t.loc["S2A_X_1_2", "crs"] == "EPSG:32634"
    assert t.loc["S2A_X_1_3", "geometry"].equals(shapely.box(402400, 5341200, 403600, 5342400))
    assert t.loc["S2A_X_1_3", "labels"] == ["Sea and ocean"]  # from the S1 JSON
    assert t.loc["S2A_X_1_3", "tile"] is None
    notes = " ".join(fp.notes)
    assert "2 of 3 S2 patches paired" in notes
    assert "1 S1 patch(es) name an S2 patch" in notes


def test_root_of_s2_patch_folders_only(archive, tmp_path: Path) -> None:
    for i in range(70):  # enough to go through the thread pool
        archive.s2_patch(tmp_path, f"S2B_Z_{i:02d}", 400000 + 1200 * i, 5342400)
    fp = load_footprints(tmp_path, workers=4, progress=False)
    assert len(fp) == 70
    assert fp.table["s1_path"].isna().all()
    assert fp.table["labels19"].iloc[0] == ["Pastures"]
    assert fp.table["geometry"].iloc[5].bounds == (406000, 5341200, 407200, 5342400)


def test_v2_layout_with_metadata_parquet(archive, tmp_path: Path) -> None:
    s2 = tmp_path / "BigEarthNet-S2" / "S2A_TILE_T33UUP"
    s1 = tmp_path / "BigEarthNet-S1" / "S1A_TILE"
    archive.s2_patch(s2, "S2A_V2_10_20", 400000, 5342400, json_file=False)
    archive.s2_patch(s2, "S2A_V2_10_21", 401200, 5342400, json_file=False)
    archive.s1_patch(s1, "S1A_V2_10_20", None, 400000, 5342400)
    pd.DataFrame(
        {
            "patch_id": ["S2A_V2_10_20", "S2A_V2_10_21"],
            "labels": [["Arable land", "Pastures"], ["Marine waters"]],
            "split": ["train", "test"],
            "country": ["Austria", "Ireland"],
            "s1_name": ["S1A_V2_10_20", "S1A_MISSING"],
        }
    ).to_parquet(tmp_path / "metadata.parquet")
    fp = load_footprints(tmp_path)
    t = fp.table.set_index("patch_id")
    assert Path(t.loc["S2A_V2_10_20", "s1_path"]) == (s1 / "S1A_V2_10_20").resolve()
    assert t.loc["S2A_V2_10_21", "s1_path"] is None
    assert t.loc["S2A_V2_10_20", "labels19"] == ["Arable land", "Pastures"]
    assert t.loc["S2A_V2_10_21", "ben_split"] == "test"
    assert t.loc["S2A_V2_10_21", "country"] == "Ireland"
    assert t.loc["S2A_V2_10_21", "geometry"].bounds == (401200, 5341200, 402400, 5342400)


def test_corrupt_metadata_json(archive, tmp_path: Path) -> None:
    folder = archive.s2_patch(tmp_path / "S2", "S2A_BAD_1_1", 400000, 5342400)
    (folder / "S2A_BAD_1_1_labels_metadata.json").write_text("{not json")
    with pytest.raises(CsmoeDataError, match="cannot read BigEarthNet metadata"):
        load_footprints(tmp_path)


def test_s2_folder_without_patches(tmp_path: Path) -> None:
    (tmp_path / "S2" / "empty").mkdir(parents=True)
    (tmp_path / "S2" / "x.txt").write_text("")
    with pytest.raises(CsmoeDataError, match="no GeoTIFF"):
        load_footprints(tmp_path)
