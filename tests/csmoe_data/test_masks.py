"""Segmentation targets from the data half: matched label rasters, reBEN reference maps, land cover cut onto S2 grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from affine import Affine
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_common.errors import CsmoeError
from csmoe_data.masks import add_masks, find_mask_files, mask_folder

runner = CliRunner()


def test_find_mask_files_by_patch_id(tmp_path: Path, geotiff) -> None:
    t = Affine(10, 0, 0, 0, -10, 0)
    nested = tmp_path / "Reference_Maps" / "T1" / "p1"
    nested.mkdir(parents=True)
    geotiff(nested / "p1_reference_map.tif", np.zeros((2, 2), np.uint16), t)
    geotiff(tmp_path / "p2.tif", np.zeros((2, 2), np.uint8), t)
    geotiff(tmp_path / "other_mask.tif", np.zeros((2, 2), np.uint8), t)
    found = find_mask_files(tmp_path, ["p1", "p2", "p3"])
    assert found == {"p1": nested / "p1_reference_map.tif", "p2": tmp_path / "p2.tif"}
    geotiff(tmp_path / "p2_mask.tif", np.zeros((2, 2), np.uint8), t)
    with pytest.raises(CsmoeError, match="two mask rasters"):
        find_mask_files(tmp_path, ["p2"])


def test_landcover_cut_onto_each_s2_grid_by_nearest_neighbour(
    tmp_path: Path, geotiff, manifest_factory
) -> None:
    # a 100 m land-cover raster in UTM with four 600 m quadrants of classes 1..4 and a nodata strip
    lc = np.repeat(np.repeat(np.array([[1, 2], [3, 4]], np.uint8), 6, axis=0), 6, axis=1)
    lc[:, 0] = 255
    geotiff(
        tmp_path / "lc.tif",
        lc,
        Affine(100, 0, 500000, 0, -100, 5001200),
        crs="EPSG:32632",
        nodata=255,
    )
    rows = []
    for i, (x0, y0) in enumerate([(500500, 5000500), (500000, 5001200)]):
        folder = tmp_path / "S2" / f"p{i}"
        folder.mkdir(parents=True)
        geotiff(
            folder / f"p{i}_B02.tif",
            np.zeros((20, 20), np.uint16),
            Affine(10, 0, x0, 0, -10, y0),
            crs="EPSG:32632",
        )
        rows.append({"patch_id": f"p{i}", "s2_path": f"S2/p{i}"})
    rows.append({"patch_id": "no_imagery", "s2_path": None})
    manifest = manifest_factory(tmp_path / "m.parquet", rows)
    summary = add_masks(manifest, landcover=tmp_path / "lc.tif")
    assert (summary.with_mask, summary.written, summary.folder) == (
        2,
        2,
        mask_folder(manifest).resolve(),
    )
    table = pq.read_table(manifest)
    assert table.column("mask_path").to_pylist() == ["m_masks/p0.tif", "m_masks/p1.tif", None]
    assert json.loads(table.schema.metadata[b"csmoe"])["masks"]["source"] == "landcover"
    with rasterio.open(tmp_path / "m_masks" / "p0.tif") as src:
        a = src.read(1)
        assert src.transform == Affine(10, 0, 500500, 0, -10, 5000500) and src.nodata == 255
    # p0 (500 500..500 700 E, 5 000 300..5 000 500 N, lower quadrants) straddles the quadrant border at 500 600 E
    assert (a[:, :10] == 3).all() and (a[:, 10:] == 4).all()
    with rasterio.open(tmp_path / "m_masks" / "p1.tif") as src:
        b = src.read(1)
    assert (b[:, :10] == 255).all() and (b[:, 10:] == 1).all()  # the nodata strip stays nodata
    with pytest.raises(CsmoeError, match="exists"):
        add_masks(manifest, landcover=tmp_path / "lc.tif")  # masks are not replaced silently
    add_masks(manifest, landcover=tmp_path / "lc.tif", overwrite=True)


def test_cli_build_manifest_with_masks_from_landcover(tmp_path: Path) -> None:
    out = tmp_path / "ben.parquet"
    args = ["build-manifest", "--footprints", "sample:bigearthnet", "--landcover", "sample:modis-igbp",
            "--landcover-legend", "modis-igbp", "--out", str(out), "--masks-from-landcover"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "mask_path: 6 of 6 rows" in res.output
    meta = json.loads(pq.read_schema(out).metadata[b"csmoe"])
    assert meta["masks"]["legend"]["name"] == "modis-igbp"
    kept = runner.invoke(app, args)  # manifest and masks exist: refused before any work
    assert kept.exit_code == 1 and "--overwrite" in kept.output
    again = runner.invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0, again.output
    refused = runner.invoke(app, [*args[:-1], "--masks", str(tmp_path / "nope"), "--overwrite"])
    assert refused.exit_code == 1 and "no such folder" in refused.output
