"""Manifest reading, imagery decoding, the cache (reuse, invalidation, damaged images) and the loader."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from csmoe_model.bands import S2_BANDS_12
from csmoe_model.data import (
    BatchPlan,
    CacheSettings,
    DeviceTransform,
    open_cache,
    read_manifest_rows,
)
from csmoe_model.data.transforms import dihedral
from csmoe_model.errors import CsmoeError

from .conftest import make_patches, write_manifest


def _read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def test_manifest_paths_resolve_against_its_folder(patches) -> None:
    manifest, rows = patches
    m = read_manifest_rows(manifest)
    assert len(m) == 16
    assert m.s2_path[0] == str(manifest.parent / rows[0]["s2_path"])
    assert list(m.split[:13]) == ["train"] * 12 + ["val"]


def test_manifest_without_imagery_columns_is_a_clear_error(tmp_path) -> None:
    path = write_manifest(tmp_path / "x.parquet", [{"patch_id": "a"}])
    with pytest.raises(CsmoeError, match="no column.*s1_path"):
        read_manifest_rows(path)


def test_rows_without_imagery_or_bands_are_counted(tmp_path, cache_dir) -> None:
    rows = make_patches(tmp_path, 5)
    rows[1]["s1_path"] = None
    rows[2]["s2_path"] = "S2/does_not_exist"
    b05 = next((tmp_path / rows[3]["s2_path"]).glob("*_B05.tif"))
    b05.unlink()
    manifest = write_manifest(tmp_path / "m.parquet", rows)
    with pytest.raises(
        CsmoeError, match=r"3 of 5 manifest rows cannot be used: 2 without imagery.*1 with missing"
    ):
        open_cache(manifest, cache_dir)
    assert not cache_dir.exists() or not any(
        p for p in cache_dir.iterdir() if not p.name.startswith(".")
    )


def test_cache_holds_native_arrays_and_train_statistics(patches, cache_dir) -> None:
    manifest, rows = patches
    cache = open_cache(manifest, cache_dir)
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


def test_cache_is_reused_and_invalidated(patches, cache_dir, tmp_path) -> None:
    manifest, rows = patches
    notes: list[str] = []
    first = open_cache(manifest, cache_dir, log=notes.append)
    again = open_cache(manifest, cache_dir, log=notes.append)
    assert again.path == first.path and "reusing" in notes[-1]
    # a changed manifest (one row fewer) is a different cache
    smaller = write_manifest(tmp_path / "m2.parquet", rows[:-1], ["train"] * 12 + ["val"] * 3)
    other = open_cache(smaller, cache_dir, log=notes.append)
    assert other.path != first.path and len(other) == 15
    # new splits change the training rows, hence the statistics: a different cache too
    resplit = write_manifest(tmp_path / "m3.parquet", rows, ["val"] * 4 + ["train"] * 12)
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


def test_multiband_geotiff_band_order_is_declared(tmp_path, cache_dir) -> None:
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(1)
    order = list(reversed(S2_BANDS_12))  # any order: the file declares it
    s2 = rng.integers(0, 5000, (12, 12, 12)).astype(np.uint16)
    s1 = rng.normal(-15, 2, (2, 12, 12)).astype(np.float32)
    prof = {"driver": "GTiff", "width": 12, "height": 12, "crs": "EPSG:32633",
            "transform": Affine(10, 0, 0, 0, -10, 0)}  # fmt: skip
    with rasterio.open(tmp_path / "s2.tif", "w", count=12, dtype="uint16", **prof) as dst:
        dst.write(s2)
        for i, b in enumerate(order):
            dst.set_band_description(i + 1, b)
    with rasterio.open(tmp_path / "s1.tif", "w", count=2, dtype="float32", **prof) as dst:
        dst.write(s1)  # no descriptions: order VV, VH declared on the command line
    manifest = write_manifest(
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


def test_batch_plan_is_a_function_of_seed_and_epoch_and_shards_ranks() -> None:
    rows = np.arange(100, 140)
    plan = BatchPlan(rows, 8, seed=3)
    e0, e1 = plan.epoch_rows(0), plan.epoch_rows(1)
    assert sorted(e0) == list(rows) and not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e0, BatchPlan(rows, 8, seed=3).epoch_rows(0))
    shards = [BatchPlan(rows, 4, seed=3, rank=r, world=2).epoch_rows(0) for r in range(2)]
    assert len(set(shards[0]) & set(shards[1])) == 0 and len(shards[0]) == len(shards[1]) == 20


def test_loader_is_deterministic_and_covers_each_row_once_per_epoch(patches, cache_dir) -> None:
    manifest, _ = patches
    cache = open_cache(manifest, cache_dir)
    rows = cache.select("train")

    def run(workers: int):
        loader = cache.loader(rows, 4, img_size=16, augment=True, shuffle=True, drop_last=True,
                              seed=5, num_steps=6, workers=workers)  # fmt: skip
        return [(b.step, b.epoch, b.index.tolist(), b.s1, b.s2) for b in loader]

    a, b = run(0), run(2)
    assert [x[:3] for x in a] == [x[:3] for x in b]
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x[3], y[3])
        torch.testing.assert_close(x[4], y[4])
    assert sorted(sum((x[2] for x in a[:3]), [])) == list(range(12))
    assert a[0][3].shape == (4, 2, 16, 16) and a[0][4].shape == (4, 12, 16, 16)
    # resuming at step 4 reads the same batches as steps 4.. of the full pass
    tail = cache.loader(rows, 4, img_size=16, augment=True, shuffle=True, drop_last=True,
                        seed=5, start_step=4, num_steps=2)  # fmt: skip
    for x, y in zip(a[4:], tail, strict=True):
        assert x[2] == y.index.tolist()
        torch.testing.assert_close(x[4], y.s2)


def test_device_transform_normalises_and_augments_pairs_identically(patches, cache_dir) -> None:
    manifest, _ = patches
    cache = open_cache(manifest, cache_dir)
    arrays = cache.arrays()
    idx = np.array([0, 3])
    batch = {g: torch.from_numpy(np.ascontiguousarray(arrays[g][idx])) for g in cache.groups}
    batch["s2_10"] = batch["s2_10"].view(torch.int16)  # how the loader ships uint16
    tf = DeviceTransform(cache.stats, 12, img_size=12)
    s1, s2 = tf(batch)
    expect = (arrays["s2_10"][3, 2].astype(np.float32) - cache.stats["s2_mean"][2]) / cache.stats[
        "s2_std"
    ][2]
    np.testing.assert_allclose(s2[1, 2].numpy(), expect, rtol=1e-5, atol=1e-5)
    code = torch.tensor([0, 5])
    a1, a2 = tf(batch, code)
    for c in range(8):  # the 8 codes are 8 distinct symmetries
        others = [dihedral(s2[:1], torch.tensor([k])) for k in range(8) if k != c]
        assert not any(torch.equal(dihedral(s2[:1], torch.tensor([c])), o) for o in others)
    torch.testing.assert_close(a2[1], dihedral(s2[1:], torch.tensor([5]))[0])
    torch.testing.assert_close(a1[1], dihedral(s1[1:], torch.tensor([5]))[0])
    torch.testing.assert_close(a1[0], s1[0])


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
