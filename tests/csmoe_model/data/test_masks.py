"""The mask cache: legends, nodata and unknown values, nearest-neighbour resizing, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from affine import Affine

from csmoe_model.data.masks import (
    IGNORE,
    MaskLegend,
    open_mask_cache,
    read_legend_file,
    read_mask_paths,
    resolve_legend,
)
from csmoe_model.errors import CsmoeError


def _manifest(path: Path, masks: list[str | None], legend: dict | None = None) -> Path:
    table = pa.table({"patch_id": [f"p{i}" for i in range(len(masks))], "mask_path": masks})
    if legend is not None:
        table = table.replace_schema_metadata(
            {b"csmoe": json.dumps({"legends": {"landcover": legend}}).encode()}
        )
    pq.write_table(table, path)
    return path


def test_legend_files_json_and_csv(tmp_path: Path) -> None:
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"80": "water", "10": {"name": "tree cover"}}))
    assert read_legend_file(j).values == (10, 80) and read_legend_file(j).names == (
        "tree cover",
        "water",
    )
    c = tmp_path / "c.csv"
    c.write_text("value,name\n2,b\n1,a\n")
    assert read_legend_file(c).values == (1, 2)
    c.write_text("x,a\n")
    with pytest.raises(CsmoeError, match="cannot read"):
        read_legend_file(c)
    legend = MaskLegend((10, 80), ("a", "b"), "t")
    assert legend.lookup(np.array([[80, 10], [5, 80]])).tolist() == [[1, 0], [IGNORE, 1]]


def test_cache_maps_values_ignores_nodata_and_counts_unknown(tmp_path: Path, geotiff) -> None:
    t = Affine(10, 0, 0, 0, -10, 0)
    a = np.array([[10, 10, 80, 80], [10, 0, 80, 99], [10, 10, 80, 80], [10, 10, 80, 80]], np.uint8)
    geotiff(tmp_path / "a.tif", a, t, nodata=0)
    geotiff(
        tmp_path / "b.tif", np.full((2, 2), 80, np.uint8), Affine(20, 0, 0, 0, -20, 0)
    )  # coarser
    legend_meta = {"name": "worldcover", "classes": [{"value": 10, "code": 10, "name": "tree"},
                                                      {"value": 80, "code": 80, "name": "water"}]}  # fmt: skip
    m = _manifest(tmp_path / "m.parquet", ["a.tif", "b.tif", None], legend_meta)
    legend = resolve_legend(m, None)
    assert (
        legend is not None and legend.names == ("tree", "water") and "worldcover" in legend.source
    )
    cache = open_mask_cache(m, "key", 4, tmp_path / "cache", legend=legend)
    arr = cache.array
    assert arr.shape == (3, 4, 4) and arr.dtype == np.int16
    assert (
        arr[0, 1, 1] == IGNORE
        and arr[0, 1, 3] == IGNORE
        and arr[0, 0, 0] == 0
        and arr[0, 0, 2] == 1
    )
    assert (arr[1] == 1).all()  # 2 x 2 resized to 4 x 4 by nearest neighbour
    assert (arr[2] == IGNORE).all()
    assert cache.has_mask.tolist() == [True, True, False]
    assert cache.meta["unknown_values"] == {"99": 1}
    # same inputs: the cache is reused; another ignore value: another cache
    notes: list[str] = []
    assert (
        open_mask_cache(m, "key", 4, tmp_path / "cache", legend=legend, log=notes.append).path
        == cache.path
    )
    assert notes and "reusing" in notes[0]
    other = open_mask_cache(m, "key", 4, tmp_path / "cache", legend=legend, ignore_value=80)
    assert other.path != cache.path and (other.array[1] == IGNORE).all()


def test_legend_from_the_data_and_errors(tmp_path: Path, geotiff) -> None:
    geotiff(tmp_path / "a.tif", np.array([[3, 1], [1, 3]], np.int16), Affine(10, 0, 0, 0, -10, 0))
    m = _manifest(tmp_path / "m.parquet", ["a.tif"])
    assert resolve_legend(m, None) is None
    cache = open_mask_cache(m, "k", 2, tmp_path / "cache")
    assert cache.values == [1, 3] and cache.array[0].tolist() == [[1, 0], [0, 1]]
    pq.write_table(pa.table({"patch_id": ["p"]}), tmp_path / "none.parquet")
    with pytest.raises(CsmoeError, match="no mask_path column"):
        open_mask_cache(tmp_path / "none.parquet", "k", 2, tmp_path / "cache")
    bad = _manifest(tmp_path / "bad.parquet", ["missing.tif"])
    with pytest.raises(CsmoeError, match="cannot be used"):
        open_mask_cache(bad, "k", 2, tmp_path / "cache")
    legend = MaskLegend((7,), ("seven",), "test")
    with pytest.raises(CsmoeError, match="no mask pixel belongs"):
        open_mask_cache(m, "k", 2, tmp_path / "cache", legend=legend)


def test_masks_of_a_moved_manifest_resolve_against_the_data_root(tmp_path: Path, geotiff) -> None:
    geotiff(tmp_path / "a.tif", np.array([[3, 1], [1, 3]], np.int16), Affine(10, 0, 0, 0, -10, 0))
    (tmp_path / "shared").mkdir()
    moved = _manifest(tmp_path / "shared" / "m.parquet", ["a.tif", None])
    assert read_mask_paths(moved, tmp_path).tolist() == [str(tmp_path / "a.tif"), None]
    with pytest.raises(CsmoeError) as err:
        open_mask_cache(moved, "k", 2, tmp_path / "cache")
    message = str(err.value)
    assert "1 of 1 mask raster(s) cannot be used" in message
    assert str(tmp_path / "shared" / "a.tif") in message and "pass --data-root DIR" in message
    cache = open_mask_cache(moved, "k", 2, tmp_path / "cache", data_root=tmp_path)
    assert cache.values == [1, 3] and cache.has_mask.tolist() == [True, False]
