"""SSL4EO-S12 v1.1 roots as footprints: one row per location, squares from the datacube coordinates."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from zarr.storage import ZipStore

from csmoe_common.store_path import parse_store_path
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.ssl4eo import is_ssl4eo_root, load_ssl4eo


def test_one_row_per_location(ssl4eo_corpus) -> None:
    assert is_ssl4eo_root(ssl4eo_corpus.root)
    assert is_ssl4eo_root(ssl4eo_corpus.root / "train")
    fp = load_ssl4eo(ssl4eo_corpus.root, "x")
    t = fp.table
    assert len(t) == ssl4eo_corpus.files * ssl4eo_corpus.samples_per_file
    assert t["patch_id"].tolist() == [f"{i:07d}" for i in range(len(t))]
    assert (
        set(t["seasons"]) == {4}
        and set(t["ssl4eo_split"]) == {"train"}
        and set(t["s2_level"]) == {"L2A"}
    )
    first = sorted((ssl4eo_corpus.root / "train" / "S2L2A").glob("*.zarr.zip"))[0]
    ds = xr.open_zarr(ZipStore(str(first), mode="r"))
    x, y = ds["x_"].values[1], ds["y_"].values[1]
    np.testing.assert_allclose(
        t.geometry.iloc[1].bounds, (x.min() - 5, y.min() - 5, x.max() + 5, y.max() + 5)
    )
    assert t["crs"].iloc[1] == f"EPSG:{int(ds['crs'].values[1])}"
    assert len(t["acquisition_dates"].iloc[0]) == 4
    s2, s1 = parse_store_path(t["s2_path"].iloc[1]), parse_store_path(t["s1_path"].iloc[1])
    assert (Path(s2.file).name, s2.sample) == (first.name, 1)
    assert (Path(s1.file).parent.name, s1.sample) == ("S1GRD", 1)


def test_s1_matched_by_location_id(corpus_stores, tmp_path: Path) -> None:
    root = tmp_path / "root"
    centres = [(10.0, 50.0), (11.0, 51.0)]
    corpus_stores.write_ssl4eo_store(
        root / "S2L1C" / "a.zarr.zip", "S2L1C", ["7", "8"], centres, size=12
    )
    corpus_stores.write_ssl4eo_store(
        root / "S1GRD" / "a.zarr.zip", "S1GRD", ["8", "9"], centres, size=12
    )
    t = load_ssl4eo(root, "x").table
    assert set(t["s2_level"]) == {"L1C"} and "ssl4eo_split" not in t.columns
    assert pd.isna(t["s1_path"].iloc[0])
    assert parse_store_path(t["s1_path"].iloc[1]).sample == 0


def test_damaged_store_skipped_and_counted(ssl4eo_corpus, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(ssl4eo_corpus.root, root)
    victim = sorted((root / "train" / "S2L2A").glob("*.zarr.zip"))[0]
    victim.write_bytes(victim.read_bytes()[:200])
    fp = load_ssl4eo(root, "x")
    assert len(fp) == (ssl4eo_corpus.files - 1) * ssl4eo_corpus.samples_per_file
    assert fp.dropped == 1 and any("unreadable store" in n for n in fp.notes)


def test_not_a_root(tmp_path: Path) -> None:
    assert not is_ssl4eo_root(tmp_path)
    with pytest.raises(CsmoeDataError, match="not an SSL4EO-S12"):
        load_ssl4eo(tmp_path, "x")
