"""Manifest read/write: GeoParquet 1.1 layout, csmoe metadata, atomic and overwrite rules."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from csmoe_common.errors import CsmoeError
from csmoe_data.errors import CsmoeDataError
from csmoe_data.manifest import (
    file_sha256,
    path_sha256,
    read_manifest,
    read_manifest_metadata,
    write_manifest,
)


def _frame(crs: str | int = 4326) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "patch_id": ["a", "b"],
            "lc_10": np.array([0.5, np.nan], dtype="float32"),
            "lc_major": pd.array([10, None], dtype="Int32"),
            "labels": [["x", "y"], []],
        },
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 1, 2, 3)],
        crs=crs,
    )


def test_roundtrip_keeps_types_and_metadata(tmp_path):
    out = write_manifest(_frame(), tmp_path / "m.parquet", {"tool": "x", "n": 2})
    schema = pq.read_schema(out)
    geo = json.loads(schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert schema.field("bbox").type.num_fields == 4
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"
    gdf, meta = read_manifest(out)
    assert meta == {"tool": "x", "n": 2}
    assert gdf.crs.to_epsg() == 4326
    assert list(gdf["patch_id"]) == ["a", "b"]
    assert gdf["lc_10"].dtype == np.float32
    assert str(gdf["lc_major"].dtype) == "Int32" and gdf["lc_major"].isna().tolist() == [
        False,
        True,
    ]
    assert list(gdf["labels"][0]) == ["x", "y"]
    assert "bbox" not in gdf.columns
    assert read_manifest_metadata(out) == meta
    # bbox column values come from the geometry
    bbox = pq.read_table(out, columns=["bbox"]).column("bbox").to_pylist()
    assert bbox[1] == {"xmin": 1.0, "ymin": 1.0, "xmax": 2.0, "ymax": 3.0}


def test_reprojects_to_4326(tmp_path):
    g = _frame(4326).to_crs(3857)
    gdf, _ = read_manifest(write_manifest(g, tmp_path / "m.parquet", {}))
    assert gdf.crs.to_epsg() == 4326
    assert gdf.geometry.iloc[1].bounds == pytest.approx((1, 1, 2, 3))


def test_overwrite_rule_and_no_temp_left(tmp_path):
    path = tmp_path / "m.parquet"
    write_manifest(_frame(), path, {"v": 1})
    with pytest.raises(CsmoeError, match="--overwrite"):
        write_manifest(_frame(), path, {"v": 2})
    assert read_manifest(path)[1] == {"v": 1}
    write_manifest(_frame(), path, {"v": 2}, overwrite=True)
    assert read_manifest(path)[1] == {"v": 2}
    with pytest.raises(CsmoeDataError, match="JSON"):
        write_manifest(_frame(), tmp_path / "bad.parquet", {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.parquet"]


def test_read_errors(tmp_path):
    with pytest.raises(CsmoeError, match="not found"):
        read_manifest(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(CsmoeDataError, match="not a readable Parquet"):
        read_manifest(bad)
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(plain)
    with pytest.raises(CsmoeDataError, match="not GeoParquet"):
        read_manifest(plain)


def test_sha256(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    d = tmp_path / "d"
    d.mkdir()
    (d / "x").write_bytes(b"1")
    h1 = path_sha256(d)
    (d / "x").write_bytes(b"2")
    assert path_sha256(d) != h1
    with pytest.raises(CsmoeDataError):
        file_sha256(tmp_path / "nope")
