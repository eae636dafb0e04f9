"""Manifest reading, imagery decoding, the cache (reuse, invalidation, damaged images) and the loader."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from csmoe_common.bands import S2_BANDS_12
from csmoe_model.data import (
    CacheSettings,
    open_cache,
)
from csmoe_model.errors import CsmoeError


def _read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def test_rows_without_imagery_or_bands_are_counted(
    tmp_path, cache_dir, patch_factory, manifest_factory
) -> None:
    rows = patch_factory(tmp_path, 5)
    rows[1]["s1_path"] = None
    rows[2]["s2_path"] = "S2/does_not_exist"
    b05 = next((tmp_path / rows[3]["s2_path"]).glob("*_B05.tif"))
    b05.unlink()
    manifest = manifest_factory(tmp_path / "m.parquet", rows)
    with pytest.raises(
        CsmoeError, match=r"3 of 5 manifest rows cannot be used: 2 without imagery.*1 with missing"
    ):
        open_cache(manifest, cache_dir)
    assert not cache_dir.exists() or not any(
        p for p in cache_dir.iterdir() if not p.name.startswith(".")
    )


def test_cache_holds_native_arrays_and_train_statistics(patches, cache_dir) -> None:
    manifest, rows = patches
    cache = open_cache(manifest, cache_dir, n_s2=12)  # 12 bands: the 60 m group too
    arrays = cache.arrays()
    assert arrays["s2_10"].shape == (16, 4, 12, 12) and arrays["s2_10"].dtype == np.uint16
    assert arrays["s2_20"].shape == (16, 6, 6, 6)
    assert arrays["s2_60"].shape == (16, 2, 2, 2)
    assert arrays["s1"].shape == (16, 2, 12, 12) and arrays["s1"].dtype == np.float16
    folder = manifest.parent / rows[7]["s2_path"]
    np.testing.assert_array_equal(arrays["s2_20"][7, 5], _read(next(folder.glob("*_B8A.tif"))))
    np.testing.assert_array_equal(arrays["s2_60"][7, 1], _read(next(folder.glob("*_B09.tif"))))
    vh = _read(next((manifest.parent / rows[7]["s1_path"]).glob("*_VH.tif")))
    np.testing.assert_allclose(arrays["s1"][7, 0], vh, atol=0.02)
    # statistics over the 12 training rows only, in model band order
    b11 = arrays["s2_20"][:12, 3].astype(np.float64)
    assert S2_BANDS_12[7] == "B11"
    assert cache.stats["s2_mean"][7] == pytest.approx(b11.mean())
    assert cache.stats["s2_std"][7] == pytest.approx(b11.std())
    assert cache.stats["s2_mean"][7] != pytest.approx(
        arrays["s2_20"][:, 3].astype(np.float64).mean()
    )
    assert list(cache.select("val")) == list(range(12, 16))


def test_cache_is_reused_and_invalidated(patches, cache_dir, tmp_path, manifest_factory) -> None:
    manifest, rows = patches
    notes: list[str] = []
    first = open_cache(manifest, cache_dir, log=notes.append)
    again = open_cache(manifest, cache_dir, log=notes.append)
    assert again.path == first.path and "reusing" in notes[-1]
    # a changed manifest (one row fewer) is a different cache
    smaller = manifest_factory(tmp_path / "m2.parquet", rows[:-1], ["train"] * 12 + ["val"] * 3)
    other = open_cache(smaller, cache_dir, log=notes.append)
    assert other.path != first.path and len(other) == 15
    # new splits change the training rows, hence the statistics: a different cache too
    resplit = manifest_factory(tmp_path / "m3.parquet", rows, ["val"] * 4 + ["train"] * 12)
    third = open_cache(resplit, cache_dir)
    assert third.path != first.path and third.stats["s2_mean"] != first.stats["s2_mean"]
    # a changed imagery file rebuilds the cache in place
    band = next((manifest.parent / rows[0]["s2_path"]).glob("*_B02.tif"))
    import rasterio

    with rasterio.open(band, "r+") as dst:
        dst.write(np.full((12, 12), 7, np.uint16), 1)
    rebuilt = open_cache(manifest, cache_dir, log=notes.append)
    assert rebuilt.path == first.path and "changed" in " ".join(notes[-2:])
    assert (rebuilt.arrays()["s2_10"][0, 0] == 7).all()


def test_damaged_image_is_skipped_and_counted_or_stops_with_strict(patches, cache_dir) -> None:
    manifest, rows = patches
    band = next((manifest.parent / rows[2]["s2_path"]).glob("*_B04.tif"))
    band.write_bytes(b"II*\x00 this is not a tiff any more")
    with pytest.raises(CsmoeError, match=r"damaged image in row 2 .*--strict"):
        open_cache(manifest, cache_dir, strict=True)
    cache = open_cache(manifest, cache_dir)
    assert cache.n_damaged == 1 and cache.damaged[0]["row"] == 2
    assert 2 not in cache.select() and len(cache.select("train")) == 11
    with pytest.raises(CsmoeError, match="1 damaged image"):
        open_cache(manifest, cache_dir, strict=True)


def test_multiband_geotiff_band_order_is_declared(
    tmp_path, cache_dir, geotiff, manifest_factory
) -> None:
    from affine import Affine

    rng = np.random.default_rng(1)
    order = list(reversed(S2_BANDS_12))  # any order: the file declares it
    s2 = rng.integers(0, 5000, (12, 12, 12)).astype(np.uint16)
    s1 = rng.normal(-15, 2, (2, 12, 12)).astype(np.float32)
    transform = Affine(10, 0, 0, 0, -10, 0)
    geotiff(tmp_path / "s2.tif", s2, transform, descriptions=order)
    # no descriptions: order VV, VH declared on the command line
    geotiff(tmp_path / "s1.tif", s1, transform)
    manifest = manifest_factory(
        tmp_path / "m.parquet", [{"patch_id": "a", "s2_path": "s2.tif", "s1_path": "s1.tif"}]
    )
    with pytest.raises(
        CsmoeError, match="1 with missing or undeclared bands.*--s2-bands/--s1-bands"
    ):
        open_cache(manifest, cache_dir)
    cache = open_cache(manifest, cache_dir, CacheSettings(s1_bands=("VV", "VH")))
    a = cache.arrays()
    np.testing.assert_array_equal(a["s2_10"][0, 0], s2[order.index("B02")])
    # 20 m bands are averaged 2 x 2 down to their native grid
    b05 = s2[order.index("B05")].astype(np.float64).reshape(6, 2, 6, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(a["s2_20"][0, 0], b05, atol=1)
    np.testing.assert_allclose(a["s1"][0, 0], s1[1], atol=0.02)  # VH is the file's second band


def test_a_moved_manifest_needs_its_data_root_and_finds_its_cache(
    patches, cache_dir, tmp_path
) -> None:
    manifest, rows = patches
    moved = tmp_path / "shared" / "m.parquet"
    moved.parent.mkdir()
    shutil.copy(manifest, moved)
    first = moved.parent / rows[0]["s1_path"]
    with pytest.raises(CsmoeError) as err:
        open_cache(moved, cache_dir)
    message = str(err.value)
    assert "\n" not in message and f"s1_path not found: {first}" in message
    assert "pass --data-root DIR" in message and str(moved.parent) in message
    built = open_cache(manifest, cache_dir)
    # the same imagery through --data-root: the same cache (its key hashes the resolved paths)
    notes: list[str] = []
    again = open_cache(moved, cache_dir, data_root=manifest.parent, log=notes.append)
    assert again.path == built.path and "reusing" in notes[0]
    # a copy of the imagery elsewhere is other files: another cache
    copy = tmp_path / "copy"
    for sub in ("S1", "S2"):
        shutil.copytree(manifest.parent / sub, copy / sub)
    assert open_cache(moved, cache_dir, data_root=copy).path != built.path
    # a --data-root that does not hold the imagery says where it looked
    with pytest.raises(CsmoeError, match=r"not found: .*resolve against --data-root"):
        open_cache(moved, cache_dir, data_root=tmp_path / "shared")


def test_cache_survives_missing_imagery_on_a_training_host(patches, cache_dir) -> None:
    manifest, rows = patches
    open_cache(manifest, cache_dir)
    for sub in ("S1", "S2"):
        shutil.rmtree(manifest.parent / sub)
    notes: list[str] = []
    cache = open_cache(manifest, cache_dir, log=notes.append)
    assert len(cache) == 16 and "not reachable" in notes[0]
    assert os.path.isdir(cache.path)


def _open_and_report(manifest: str, cache_dir: str) -> tuple[str, list[str]]:
    notes: list[str] = []
    cache = open_cache(manifest, cache_dir, log=notes.append)
    return str(cache.path), notes


def test_concurrent_processes_build_the_cache_once(patches, cache_dir) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    manifest, _ = patches
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        results = list(pool.map(_open_and_report, [str(manifest)] * 2, [str(cache_dir)] * 2))
    assert results[0][0] == results[1][0]
    notes = [n for _, ns in results for n in ns]
    assert (
        sum(n.startswith("built") for n in notes) == 1 and sum("reusing" in n for n in notes) == 1
    )
    assert [p.name for p in cache_dir.iterdir() if not p.name.startswith(".")] == [
        Path(results[0][0]).name
    ]
