"""The store readers of the cache against independent reads (rasterio for GeoTIFFs, xarray for Zarr)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.io import MemoryFile

from csmoe_common.store_path import StorePath
from csmoe_model.data.sources.errors import BandError, DamagedImageError
from csmoe_model.data.sources.geotiff import decode_geotiff, resample
from csmoe_model.data.sources.majortom import is_majortom_folder, read_products
from csmoe_model.data.sources.ssl4eo import read_samples, store_seasons


def _shard_blob(corpus, row: int, band: str) -> bytes:
    shard = corpus.root / "Core-S2L2A" / "images" / "part_00001.parquet"
    return pq.read_table(shard).column(band)[row].as_py()


def _rasterio(blob: bytes, out_shape: tuple[int, int] | None = None) -> np.ndarray:
    with MemoryFile(blob) as mem, mem.open() as ds:
        if out_shape is None:
            return ds.read(1)
        return ds.read(1, out_shape=out_shape, resampling=Resampling.average)


def test_decode_equals_rasterio(majortom_corpus) -> None:
    blob = _shard_blob(majortom_corpus, 0, "B05")
    np.testing.assert_array_equal(decode_geotiff(blob, "B05"), _rasterio(blob))


def test_block_average_equals_gdal_average(majortom_corpus) -> None:
    blob = _shard_blob(majortom_corpus, 0, "B02")
    full = decode_geotiff(blob, "B02")
    ours = resample(full, (full.shape[0] // 2,) * 2)
    np.testing.assert_allclose(ours, _rasterio(blob, (full.shape[0] // 2,) * 2), atol=0.5)


def test_bilinear_is_exact_on_a_ramp() -> None:
    ramp = np.add.outer(np.arange(10.0), 2 * np.arange(10.0))
    up = resample(ramp, (20, 20))
    # pixel-centre alignment: output centre (i + 0.5) / 2 - 0.5 in input pixels
    pos = (np.arange(20) + 0.5) / 2 - 0.5
    expected = np.add.outer(np.clip(pos, 0, 9), 2 * np.clip(pos, 0, 9))
    np.testing.assert_allclose(up, expected)


def test_shard_tile_pixels_equal_the_band_slices(majortom_corpus) -> None:
    shard = str(majortom_corpus.root / "Core-S2L2A" / "images" / "part_00001.parquet")
    refs = [StorePath(shard, row=0, window=(6, 126, 120)), StorePath(shard, row=0)]
    out = read_products(refs, ["B02", "B05", "B01"], [(120, 120), (60, 60), (20, 20)], "s2")
    tile, whole = out
    assert isinstance(tile, list) and isinstance(whole, list)
    b02 = _rasterio(_shard_blob(majortom_corpus, 0, "B02"))
    b05 = _rasterio(_shard_blob(majortom_corpus, 0, "B05"))
    b01 = _rasterio(_shard_blob(majortom_corpus, 0, "B01"))
    np.testing.assert_array_equal(tile[0], b02[126:246, 6:126])
    np.testing.assert_array_equal(tile[1], b05[63:123, 3:63])
    np.testing.assert_array_equal(tile[2], b01[21:41, 1:21])
    assert whole[0].shape == (120, 120)  # the whole product, averaged down


def test_tree_s1_is_converted_to_db(majortom_corpus) -> None:
    folder = next((majortom_corpus.root / "Core-S1RTC").glob("*/*/S1A_*"))
    assert is_majortom_folder(str(folder))
    ((vh, vv),) = read_products(
        [StorePath(str(folder), window=(0, 0, 120))], ["VH", "VV"], [(120, 120)] * 2, "s1"
    )  # type: ignore[misc]
    with rasterio.open(folder / "vv.tif") as ds:
        expected = 10 * np.log10(ds.read(1)[:120, :120].astype(np.float64))
    np.testing.assert_allclose(vv, expected)
    assert -40 < float(np.mean(vh)) < 0


def test_damaged_product_fails_only_its_tiles(majortom_corpus) -> None:
    shard = str(majortom_corpus.root / "Core-S2L2A" / "images" / "part_00001.parquet")
    refs = [
        StorePath(shard, row=majortom_corpus.damaged, window=(6, 6, 120)),
        StorePath(shard, row=0, window=(6, 6, 120)),
    ]
    bad, good = read_products(refs, ["B02", "B04"], [(120, 120)] * 2, "s2")
    assert isinstance(bad, DamagedImageError) and "B04" in str(bad)
    assert isinstance(good, list)


def test_window_off_the_lattice_and_missing_bands(majortom_corpus) -> None:
    shard = str(majortom_corpus.root / "Core-S2L2A" / "images" / "part_00001.parquet")
    (off,) = read_products([StorePath(shard, row=0, window=(1, 0, 120))], ["B05"], [(60, 60)], "s2")
    assert isinstance(off, BandError) and "divisible by 6" in str(off)
    (no_band,) = read_products([StorePath(shard, row=0)], ["VV"], [(120, 120)], "s2")
    assert isinstance(no_band, BandError)
    (no_row,) = read_products([StorePath(shard, row=9)], ["B02"], [(120, 120)], "s2")
    assert isinstance(no_row, BandError) and "row 9" in str(no_row)


def test_ssl4eo_samples_equal_xarray(ssl4eo_corpus) -> None:
    import xarray as xr
    from zarr.storage import ZipStore

    path = sorted((ssl4eo_corpus.root / "train" / "S2L2A").glob("*.zarr.zip"))[0]
    size = ssl4eo_corpus.size
    assert store_seasons(str(path)) == 4
    out = read_samples(
        str(path), [2, 0], ["B02", "B05", "B01"], [(size, size), (size // 2,) * 2, (size // 6,) * 2]
    )
    ds = xr.open_zarr(ZipStore(str(path), mode="r"))
    ref = ds["bands"].sel(band=["B02", "B05", "B01"]).values  # (sample, time, band, y, x)
    np.testing.assert_array_equal(out[0][0], ref[2, :, 0])
    np.testing.assert_array_equal(out[1][0], ref[0, :, 0])
    b05 = ref[2, :, 1].astype(np.float64).reshape(4, size // 2, 2, size // 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(out[0][1], b05)
    assert out[0][2].shape == (4, size // 6, size // 6)


def test_ssl4eo_damage_and_missing_band(ssl4eo_corpus, tmp_path: Path) -> None:
    stores = sorted((ssl4eo_corpus.root / "train" / "S2L2A").glob("*.zarr.zip"))
    with pytest.raises(DamagedImageError, match="cannot decode"):
        read_samples(str(stores[ssl4eo_corpus.damaged_file]), [0], ["B02"], [(48, 48)])
    with pytest.raises(BandError, match="VV"):
        read_samples(str(stores[0]), [0], ["VV"], [(48, 48)])
    with pytest.raises(BandError, match="sample 7"):
        read_samples(str(stores[0]), [7], ["B02"], [(48, 48)])
    broken = tmp_path / "broken.zarr.zip"
    shutil.copy(stores[0], broken)
    broken.write_bytes(broken.read_bytes()[:100])
    with pytest.raises(DamagedImageError, match="cannot open"):
        read_samples(str(broken), [0], ["B02"], [(48, 48)])


def test_read_rows_groups_stores_and_fills_seasons(majortom_corpus, ssl4eo_corpus) -> None:
    from csmoe_model.data.sources.rows import group_key, read_rows

    shard = str(majortom_corpus.root / "Core-S2L2A" / "images" / "part_00001.parquet")
    s1_folder = str(next((majortom_corpus.root / "Core-S1RTC").glob("*/*/S1A_*")))
    stores = sorted((ssl4eo_corpus.root / "train").glob("*/*.zarr.zip"))
    s2_store = next(p for p in stores if p.parent.name == "S2L2A")
    s1_store = next(p for p in stores if p.parent.name == "S1GRD")
    items = [
        (0, f"{s1_folder}#window=6,6,120", f"{shard}#row=0&window=6,6,120"),
        (1, f"{s1_folder}#window=126,6,120", f"{shard}#row=0&window=126,6,120"),
        (2, f"{s1_folder}#window=6,6,120", f"{shard}#row={majortom_corpus.damaged}&window=6,6,120"),
        (3, f"{s1_store}#sample=1", f"{s2_store}#sample=1"),
    ]
    assert group_key(items[0][2]) == group_key(items[1][2]) != group_key(items[2][2])

    def unused(path: str) -> object:
        raise AssertionError(f"plain reader called for {path}")

    # 120 px: the SSL4EO row (48 px) is resampled up like any other source
    out = read_rows(items, 120, ("s2_10", "s2_20", "s2_60"), 4, unused, unused)  # type: ignore[arg-type]
    (i0, img0, p0), (_, img1, _), (_, bad, problem), (_, cube, _) = out
    assert p0 is None and img0 is not None and img1 is not None and cube is not None
    assert img0.s2["s2_10"].shape == (4, 4, 120, 120) and img0.s2["s2_10"].dtype == np.uint16
    assert img0.s2["s2_60"].shape == (4, 2, 20, 20) and img0.s1.shape == (4, 2, 120, 120)
    # a single-date product fills every season slot
    assert (img0.s2["s2_10"][0] == img0.s2["s2_10"][3]).all()
    b02 = _rasterio(_shard_blob(majortom_corpus, 0, "B02"))
    np.testing.assert_array_equal(img1.s2["s2_10"][0, 0], b02[6:126, 126:246])
    assert bad is None and problem is not None and problem[0] == "damaged"
    assert not (cube.s2["s2_10"][0] == cube.s2["s2_10"][1]).all()  # four real seasons
