"""Major TOM and SSL4EO-S12 v1.1 through the real CLIs: pool, sample, cache, train, embed.

The stores are generated in the published layouts (``tests/corpus_stores.py``); nothing is
converted: the manifest points into the shards, the unpacked tree and the zipped Zarr stores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from rasterio.io import MemoryFile
from typer.testing import CliRunner

from csmoe_cli.data_app import app as data_app
from csmoe_cli.model_app import app as model_app
from csmoe_common.store_path import parse_store_path

runner = CliRunner()
DESCRIPTORS = [
    "--landcover", "sample:modis-igbp", "--landcover-legend", "modis-igbp",
    "--climate", "sample:koppen-rubel", "--climate-legend", "koppen-rubel",
]  # fmt: skip
TRAIN = [
    "--model", "csmoe-tiny", "--max-steps", "5", "--batch-size", "2", "--device", "cpu",
    "--workers", "0", "--model-arg", "img_size=16", "--no-progress", "--log-every", "1",
]  # fmt: skip


def _ok(result: object) -> str:
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    return str(result.output)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def majortom_manifest(majortom_corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mt") / "pool.parquet"
    _ok(
        runner.invoke(
            data_app,
            [
                "build-manifest",
                "--footprints",
                str(majortom_corpus.s2_metadata),
                "--pair-with",
                str(majortom_corpus.s1_metadata),
                "--pair-max-days",
                "60",
                "--paired-only",
                *DESCRIPTORS,
                "--out",
                str(out),
            ],  # fmt: skip
        )
    )
    return out


def test_majortom_pool_pairs_and_tiles(majortom_manifest: Path, majortom_corpus) -> None:
    t = pq.read_table(majortom_manifest).to_pandas()
    assert len(t) == 2 * 4  # two paired products (the third cell has no S1), 2 x 2 tiles each
    assert t["grid_cell"].tolist() == [c for c in majortom_corpus.cells[:2] for _ in range(4)]
    assert t["pair_days"].round(3).tolist() == [3.0] * 4 + [39.0] * 4
    assert (t["kg_valid_frac"] > 0.99).all()  # Bavaria: every tile on land, descriptors valid
    # paths point into the corpus (relative or absolute), with the tile's window
    s2 = parse_store_path(t["s2_path"].iloc[3])
    assert s2.file.endswith("part_00001.parquet") and s2.row == 0 and s2.window == (126, 126, 120)
    s1 = parse_store_path(t["s1_path"].iloc[3])
    assert Path(s1.file).parent.name == majortom_corpus.cells[0] and s1.window == (126, 126, 120)
    meta = json.loads(pq.read_schema(majortom_manifest).metadata[b"csmoe"])
    assert meta["parameters"]["majortom"]["tile_size"] == 120
    assert meta["parameters"]["majortom"]["paired_only"] is True


def test_majortom_cache_train_embed(
    majortom_manifest: Path, majortom_corpus, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    out = _ok(runner.invoke(model_app, ["cache", "--manifest", str(majortom_manifest), "--cache-dir",
                                        str(cache_dir), "--workers", "2", "--no-progress"]))  # fmt: skip
    # the damaged product (truncated B04) loses its four tiles, counted, nothing else
    assert "8 rows (4 usable), 120 px" in out
    assert "4 damaged image(s) skipped" in out and "B04" in out
    (cache,) = [p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["n_damaged"] == 4 and meta["seasons"] == 1
    # pixel equality: a cached tile equals the window of the band in the shard (read by GDAL)
    t = pq.read_table(majortom_manifest).to_pandas()
    row = 1
    ref = parse_store_path(t["s2_path"].iloc[row])
    shard = ref.file if Path(ref.file).is_absolute() else str(majortom_manifest.parent / ref.file)
    col, top, size = ref.window  # type: ignore[misc]
    blob = pq.read_table(shard).column("B08")[ref.row].as_py()
    with MemoryFile(blob) as mem, mem.open() as ds:
        expected = ds.read(1)[top : top + size, col : col + size]
    s2_10 = np.load(cache / "s2_10.npy", mmap_mode="r")
    np.testing.assert_array_equal(s2_10[row, 3], expected)  # B08 is the 4th band of s2_10
    s1 = np.load(cache / "s1.npy", mmap_mode="r")
    s1_ref = parse_store_path(t["s1_path"].iloc[row])
    s1_dir = (
        Path(s1_ref.file)
        if Path(s1_ref.file).is_absolute()
        else majortom_manifest.parent / s1_ref.file
    )
    with rasterio.open(s1_dir / "vh.tif") as ds:
        c, r, n = s1_ref.window  # type: ignore[misc]
        vh = 10 * np.log10(ds.read(1)[r : r + n, c : c + n].astype(np.float64))
    np.testing.assert_allclose(s1[row, 0].astype(np.float64), vh, atol=0.02)  # float16 dB
    run = tmp_path / "run"
    out = _ok(runner.invoke(model_app, ["train", "--manifest", str(majortom_manifest), "--out", str(run),
                                        "--cache-dir", str(cache_dir), *TRAIN]))  # fmt: skip
    assert "trained csmoe-tiny for 5 steps" in out
    emb = tmp_path / "emb.parquet"
    out = _ok(runner.invoke(model_app, ["embed", "--run", str(run), "--manifest", str(majortom_manifest),
                                        "--out", str(emb), "--cache-dir", str(cache_dir), "--device", "cpu",
                                        "--workers", "0", "--no-progress"]))  # fmt: skip
    assert "8 rows (4 embedded, 4 damaged)" in out
    assert majortom_corpus.damaged == 1  # the damaged product is the second cell's: rows 4..7
    e = pq.read_table(emb).to_pandas()
    assert e["emb_s2"].isna().tolist() == [False] * 4 + [True] * 4


def test_majortom_unpaired_rows_need_both_sensors_to_train(majortom_corpus, tmp_path: Path) -> None:
    pool = tmp_path / "pool.parquet"
    out = _ok(runner.invoke(data_app, ["build-manifest", "--footprints", str(majortom_corpus.s2_metadata),
                                       "--pair-with", str(majortom_corpus.s1_metadata), "--tile-size", "0",
                                       *DESCRIPTORS, "--out", str(pool)]))  # fmt: skip
    t = pq.read_table(pool).to_pandas()
    assert len(t) == 3 and t["s1_path"].isna().tolist() == [False, False, True]
    assert "2 of 3 products paired by grid cell" in " ".join(out.split())
    notes = json.loads(pq.read_schema(pool).metadata[b"csmoe"])["footprints"]["notes"]
    assert "2 of 3 products paired by grid cell" in notes
    res = runner.invoke(
        model_app, ["cache", "--manifest", str(pool), "--cache-dir", str(tmp_path / "c")]
    )
    assert res.exit_code == 1 and "no s1_path" in res.output and "Traceback" not in res.output


def test_majortom_options_refused_for_other_sources(tmp_path: Path) -> None:
    res = runner.invoke(data_app, ["build-manifest", "--footprints", "sample:bigearthnet", "--pair-with",
                                   str(tmp_path / "x.parquet"), *DESCRIPTORS, "--out", str(tmp_path / "o.parquet")])  # fmt: skip
    assert res.exit_code == 1 and "apply to Major TOM metadata" in res.output


@pytest.fixture(scope="module")
def ssl4eo_manifest(ssl4eo_corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ssl") / "pool.parquet"
    _ok(runner.invoke(data_app, ["build-manifest", "--footprints", str(ssl4eo_corpus.root), *DESCRIPTORS,
                                 "--out", str(out)]))  # fmt: skip
    return out


def test_ssl4eo_cache_seasons_train_embed(
    ssl4eo_manifest: Path, ssl4eo_corpus, tmp_path: Path
) -> None:
    import xarray as xr
    from zarr.storage import ZipStore

    t = pq.read_table(ssl4eo_manifest).to_pandas()
    n = ssl4eo_corpus.files * ssl4eo_corpus.samples_per_file
    assert len(t) == n and set(t["seasons"]) == {4}
    cache_dir = tmp_path / "cache"
    out = _ok(runner.invoke(model_app, ["cache", "--manifest", str(ssl4eo_manifest), "--cache-dir",
                                        str(cache_dir), "--workers", "0", "--no-progress"]))  # fmt: skip
    # the store with a corrupt bands chunk loses its locations, counted
    bad = ssl4eo_corpus.samples_per_file
    assert f"{n} rows ({n - bad} usable), {ssl4eo_corpus.size} px" in out
    assert "4 seasons per row" in out
    assert f"{bad} damaged image(s) skipped" in out
    (cache,) = [p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["seasons"] == 4
    s2_10 = np.load(cache / "s2_10.npy", mmap_mode="r")
    assert s2_10.shape[0] == n * 4
    # pixel equality, every season: row 4 (second store, sample 1) against xarray's read
    ref = parse_store_path(t["s2_path"].iloc[4])
    store = ref.file if Path(ref.file).is_absolute() else str(ssl4eo_manifest.parent / ref.file)
    cube = xr.open_zarr(ZipStore(store, mode="r"))["bands"].sel(band="B04").values[ref.sample]
    for season in range(4):
        np.testing.assert_array_equal(s2_10[4 * 4 + season, 2], cube[season])
    runs = {}
    for season in ("random", "2"):
        run = tmp_path / f"run-{season}"
        out = _ok(runner.invoke(model_app, ["train", "--manifest", str(ssl4eo_manifest), "--out", str(run),
                                            "--cache-dir", str(cache_dir), "--season", season, *TRAIN]))  # fmt: skip
        assert "trained csmoe-tiny for 5 steps" in out
        runs[season] = json.loads((run / "config.json").read_text())["train"]["season"]
    assert runs == {"random": "random", "2": "2"}
    res = runner.invoke(model_app, ["train", "--manifest", str(ssl4eo_manifest), "--out", str(tmp_path / "r5"),
                                    "--cache-dir", str(cache_dir), "--season", "5", *TRAIN])  # fmt: skip
    assert res.exit_code != 0 and "Traceback" not in res.output
    emb = tmp_path / "emb.parquet"
    out = _ok(runner.invoke(model_app, ["embed", "--run", str(tmp_path / "run-random"), "--manifest",
                                        str(ssl4eo_manifest), "--out", str(emb), "--cache-dir", str(cache_dir),
                                        "--device", "cpu", "--workers", "0", "--season", "3", "--no-progress"]))  # fmt: skip
    assert f"{n} rows ({n - bad} embedded, {bad} damaged)" in out
    res = runner.invoke(model_app, ["embed", "--run", str(tmp_path / "run-random"), "--manifest",
                                    str(ssl4eo_manifest), "--out", str(tmp_path / "e4.parquet"),
                                    "--cache-dir", str(cache_dir), "--device", "cpu", "--workers", "0",
                                    "--season", "4", "--no-progress"])  # fmt: skip
    assert res.exit_code == 1 and "holds 4 season(s)" in res.output


def test_store_corpora_cache_without_gdal(
    majortom_manifest: Path, ssl4eo_manifest: Path, tmp_path: Path
) -> None:
    """A training host without GDAL (``csmoe[model]``) decodes Major TOM and SSL4EO-S12 stores."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['rasterio'] = None; sys.modules['osgeo'] = None  # importing them fails\n"
        "from csmoe_model.data import open_cache\n"
        f"for m in ({str(majortom_manifest)!r}, {str(ssl4eo_manifest)!r}):\n"
        f"    c = open_cache(m, {str(tmp_path)!r}, workers=0)\n"
        "    print(len(c), int(c.valid.sum()), c.seasons)\n"
        "assert 'rasterio' not in sys.modules or sys.modules['rasterio'] is None\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8", "4", "1", "9", "6", "4"]
