"""Major TOM metadata as footprints: cells, geometry column, pairing, tiling, imagery lookup."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
from rasterio.io import MemoryFile

from csmoe_common.store_path import parse_store_path
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.majortom import (
    MajorTomOptions,
    is_majortom_metadata,
    load_majortom,
    tile_windows,
)
from csmoe_data.footprints.majortom_grid import cell_polygon

UNTILED = MajorTomOptions(tile_size=0)


def test_recognised(majortom_corpus) -> None:
    assert is_majortom_metadata(majortom_corpus.s2_metadata)
    assert is_majortom_metadata(majortom_corpus.s2_metadata.parent)  # folder of metadata files
    assert not is_majortom_metadata(majortom_corpus.root)


def test_untiled_rows_are_grid_cells(majortom_corpus) -> None:
    fp = load_majortom(majortom_corpus.s2_metadata, "x", UNTILED)
    t = fp.table
    assert list(t["grid_cell"]) == list(majortom_corpus.cells)
    assert set(t["crs"]) == {"EPSG:4326"}
    for cell, geom in zip(t["grid_cell"], t["geometry"], strict=True):
        assert shapely.equals_exact(geom, cell_polygon(cell), 1e-12)
    assert t["patch_id"].iloc[0] == f"{majortom_corpus.cells[0]}_{t['product_id'].iloc[0]}"
    # imagery found in the shards: <shard>#row=<row of the product>
    refs = [parse_store_path(p) for p in t["s2_path"]]
    assert [Path(r.file).name for r in refs] == [
        "part_00001.parquet",
        "part_00001.parquet",
        "part_00002.parquet",
    ]
    assert [r.row for r in refs] == [0, 1, 0]
    assert t["s1_path"].isna().all()


def test_geometry_column_wins(corpus_stores, tmp_path: Path) -> None:
    meta = corpus_stores.write_majortom(
        tmp_path / "ds", ["433U_1185R"], "s2", layout="tree", size=60, geometry=True
    )
    fp = load_majortom(meta, "x", UNTILED)
    assert shapely.equals_exact(
        fp.table.geometry.iloc[0],
        shapely.from_wkb(pq.read_table(meta).column("geometry")[0].as_py()),
        1e-12,
    )
    assert parse_store_path(fp.table["s2_path"].iloc[0]).row is None  # the tree folder


def test_pairing_nearest_within_days(majortom_corpus) -> None:
    opts = MajorTomOptions(pair_with=majortom_corpus.s1_metadata, tile_size=0)
    t = load_majortom(majortom_corpus.s2_metadata, "x", opts).table
    assert list(t["pair_days"].iloc[:2]) == pytest.approx([3.0, 39.0], abs=1e-3)
    assert t["s1_path"].notna().tolist() == [True, True, False]
    assert all(
        Path(p).parent.name == c
        for p, c in zip(t["s1_path"][:2], majortom_corpus.cells, strict=False)
    )
    near = load_majortom(
        majortom_corpus.s2_metadata,
        "x",
        MajorTomOptions(majortom_corpus.s1_metadata, 10, False, None, 0),
    )
    assert near.table["s1_path"].notna().tolist() == [True, False, False]
    only = load_majortom(
        majortom_corpus.s2_metadata,
        "x",
        MajorTomOptions(majortom_corpus.s1_metadata, 10, True, None, 0),
    )
    assert len(only) == 1 and only.dropped == 2
    assert any("--paired-only" in n for n in only.notes)


def test_pairing_needs_the_other_sensor(majortom_corpus) -> None:
    with pytest.raises(CsmoeDataError, match="pair Sentinel-2 with Sentinel-1"):
        load_majortom(
            majortom_corpus.s2_metadata, "x", MajorTomOptions(pair_with=majortom_corpus.s2_metadata)
        )
    with pytest.raises(CsmoeDataError, match="needs --pair-with"):
        load_majortom(majortom_corpus.s2_metadata, "x", MajorTomOptions(paired_only=True))
    with pytest.raises(CsmoeDataError, match="multiple of 6"):
        load_majortom(majortom_corpus.s2_metadata, "x", MajorTomOptions(tile_size=100))


def test_tile_windows_are_centred_on_the_lattice() -> None:
    assert tile_windows(1068, 1068, 120)[0] == (0, 0, 54, 54, 120)
    assert len(tile_windows(1068, 1068, 120)) == 64
    assert tile_windows(252, 252, 120) == [
        (0, 0, 6, 6, 120),
        (0, 1, 126, 6, 120),
        (1, 0, 6, 126, 120),
        (1, 1, 126, 126, 120),
    ]
    assert tile_windows(100, 100, 120) == []


def test_tiles_have_their_own_footprints(majortom_corpus) -> None:
    opts = MajorTomOptions(pair_with=majortom_corpus.s1_metadata, tile_size=120)
    fp = load_majortom(majortom_corpus.s2_metadata, "x", opts)
    t = fp.table
    assert len(t) == 3 * 4  # (252 // 120) ** 2 tiles per product
    first = t.iloc[1]
    ref = parse_store_path(first["s2_path"])
    assert ref.window == (126, 6, 120) and ref.row == 0
    blob = pq.read_table(ref.file).column("B02")[ref.row].as_py()
    with MemoryFile(blob) as mem, mem.open() as ds:
        x0, y0 = ds.transform @ (126, 6)
        x1, y1 = ds.transform @ (246, 126)
        epsg = ds.crs.to_epsg()
        assert ds.width == majortom_corpus.size
    assert first["crs"] == f"EPSG:{epsg}"
    np.testing.assert_allclose(first["geometry"].bounds, (x0, y1, x1, y0))
    assert first["patch_id"].endswith("_r0c1")
    # the paired S1 image lies on the same grid: the same window
    s1 = parse_store_path(first["s1_path"])
    assert s1.window == (126, 6, 120) and s1.row is None
    with rasterio.open(Path(s1.file) / "vv.tif") as ds:
        np.testing.assert_allclose(ds.transform @ (126, 6), (x0, y0))
    # tiles of one product share its acquisition and cell
    assert t["grid_cell"].tolist() == [c for c in majortom_corpus.cells for _ in range(4)]


def test_products_without_imagery_stay_whole(majortom_corpus, tmp_path: Path) -> None:
    copy = tmp_path / "Core-S2L2A"
    shutil.copytree(majortom_corpus.s2_metadata.parent, copy)
    (copy / "images" / "part_00002.parquet").unlink()
    fp = load_majortom(copy / "metadata.parquet", "x", MajorTomOptions(tile_size=120))
    assert len(fp) == 2 * 4 + 1
    last = fp.table.iloc[-1]
    assert pd.isna(last["s2_path"]) and last["crs"] == "EPSG:4326"
    assert any("without local imagery" in n for n in fp.notes)
    # --imagery-root elsewhere: nothing found, every product kept untiled
    fp = load_majortom(
        copy / "metadata.parquet", "x", MajorTomOptions(imagery_root=tmp_path, tile_size=120)
    )
    assert len(fp) == 3 and fp.table["s2_path"].isna().all()
