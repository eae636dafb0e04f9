"""Cache build rate from the corpora as published: Major TOM shards, SSL4EO-S12 zipped Zarr, BigEarthNet.

    python benchmarks/bench_corpus_cache.py [--products 3] [--locations 32] [--ben-pairs 120] [--json out.json]

Each corpus is laid out as its publisher ships it (generators in ``tests/corpus_stores.py``; Major TOM
products at Core's full 1068 x 1068 px, SSL4EO-S12 datacubes at 264 x 264 px x 4 seasons), a manifest
points into it, and ``open_cache(..., workers=0)`` builds the imagery cache in this process. The rate
is manifest rows (training pairs) per CPU second of the build (``time.process_time``; the machine is
shared, so CPU seconds are the honest figure) next to wall seconds. Peers on the same data:

* BigEarthNet folders: the 6 real embedded patches (14 GeoTIFFs per pair), rows cycling over them,
  decoded with rasterio (the cache's existing path);
* Major TOM's own reading (``majortom.sample.read_tif_bytes``: a rasterio ``MemoryFile`` per band
  blob), once per tile, which is what a per-tile loader does without grouping;
* SSL4EO-S12's own loader (``xr.open_zarr(store).bands.values`` per store, all samples and seasons).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from corpus_stores import write_majortom, write_ssl4eo  # noqa: E402

from csmoe_model.data import CacheSettings, open_cache  # noqa: E402

BEN_SAMPLE = Path(__file__).resolve().parents[1] / "csmoe_data" / "samples" / "bigearthnet"


def _manifest(path: Path, ids: list[str], s1: list[str | None], s2: list[str | None]) -> Path:
    pq.write_table(pa.table({"patch_id": ids, "s1_path": s1, "s2_path": s2}), path)
    return path


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def bench_cache(
    name: str, manifest: Path, cache_root: Path, seasons_note: str = ""
) -> dict[str, Any]:
    cache, wall, cpu = _timed(
        lambda: open_cache(manifest, cache_root / name, CacheSettings(), workers=0)
    )
    n = len(cache)
    return {
        "corpus": name,
        "rows": n,
        "seasons": cache.seasons,
        "size": cache.size,
        "wall_s": wall,
        "cpu_s": cpu,
        "rows_per_cpu_s": n / cpu,
        "rows_per_s": n / wall,
        "note": seasons_note,
    }


def ben_manifest(tmp: Path, pairs: int) -> Path:
    s2 = sorted(p for p in (BEN_SAMPLE / "S2").iterdir() if p.is_dir())
    s1 = sorted(p for p in (BEN_SAMPLE / "S1").iterdir() if p.is_dir())
    by_s2 = {}
    for folder in s1:
        meta = json.loads(next(folder.glob("*_labels_metadata.json")).read_text())
        by_s2[meta["corresponding_s2_patch"]] = str(folder)
    ids, s1_paths, s2_paths = [], [], []
    for i in range(pairs):
        f = s2[i % len(s2)]
        ids.append(f"{f.name}#{i}")
        s2_paths.append(str(f))
        s1_paths.append(by_s2[f.name])
    return _manifest(tmp / "ben.parquet", ids, s1_paths, s2_paths)


def majortom_manifest(
    tmp: Path, products: int
) -> tuple[Path, list[tuple[str, int, tuple[int, int, int]]]]:
    cells = ["535U_81R", "535U_82R", "536U_81R", "536U_82R", "537U_81R", "537U_82R"][:products]
    write_majortom(tmp / "Core-S2L2A", cells, "s2", size=1068, products_per_shard=2, seed=1)
    write_majortom(tmp / "Core-S1RTC", cells, "s1", size=1068, products_per_shard=2, seed=2)
    from csmoe_data.footprints.majortom import load_majortom
    from csmoe_data.footprints.options import MajorTomOptions

    fp = load_majortom(
        tmp / "Core-S2L2A" / "metadata.parquet",
        "bench",
        MajorTomOptions(pair_with=tmp / "Core-S1RTC" / "metadata.parquet", paired_only=True),
    )
    t = fp.table
    from csmoe_common.store_path import parse_store_path

    tiles = []
    for p in t["s2_path"]:
        ref = parse_store_path(p)
        tiles.append((ref.file, int(ref.row or 0), ref.window))
    path = _manifest(
        tmp / "majortom.parquet",
        t["patch_id"].tolist(),
        t["s1_path"].tolist(),
        t["s2_path"].tolist(),
    )
    return path, tiles


def majortom_peer(tiles: list[tuple[str, int, tuple[int, int, int]]]) -> dict[str, Any]:
    """Major TOM's read_tif_bytes (rasterio MemoryFile per band) for every tile: no shared decode."""
    from rasterio.io import MemoryFile

    bands = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B11", "B12", "B8A", "B01", "B09"]

    def run() -> int:
        for file, row, window in tiles:
            pf = pq.ParquetFile(file)
            table = pf.read_row_group(row, columns=bands)
            for b in bands:
                with MemoryFile(table.column(b)[0].as_py()) as mem, mem.open(driver="GTiff") as ds:
                    arr = ds.read().squeeze()
                col, top, size = window
                scale = arr.shape[1] / 1068
                arr[
                    int(top * scale) : int((top + size) * scale),
                    int(col * scale) : int((col + size) * scale),
                ].copy()
        return len(tiles)

    n, wall, cpu = _timed(run)
    return {"corpus": "peer: Major TOM read_tif_bytes per tile (S2 only)", "rows": n, "seasons": 1, "size": 120,
            "wall_s": wall, "cpu_s": cpu, "rows_per_cpu_s": n / cpu, "rows_per_s": n / wall, "note": ""}  # fmt: skip


def ssl4eo_manifest(tmp: Path, locations: int) -> tuple[Path, Path]:
    per_file = 16
    files = max(1, locations // per_file)
    root = write_ssl4eo(tmp / "SSL4EO-S12-v1.1", n_files=files, samples_per_file=per_file, size=264,
                        modalities=("S1GRD", "S2L2A"), seed=3)  # fmt: skip
    from csmoe_data.footprints.ssl4eo import load_ssl4eo

    t = load_ssl4eo(root, "bench").table
    path = _manifest(
        tmp / "ssl4eo.parquet", t["patch_id"].tolist(), t["s1_path"].tolist(), t["s2_path"].tolist()
    )
    return path, root


def ssl4eo_peer(root: Path) -> dict[str, Any]:
    """SSL4EO-S12's ZarrDataset: ``xr.open_zarr(store).bands.values`` for S2L2A and S1GRD."""
    import xarray as xr
    from zarr.storage import ZipStore

    stores = sorted((root / "train" / "S2L2A").glob("*.zarr.zip"))

    def run() -> int:
        n = 0
        for s in stores:
            for modality in ("S2L2A", "S1GRD"):
                values = xr.open_zarr(
                    ZipStore(str(s.parent.parent / modality / s.name), mode="r")
                ).bands.values
            n += values.shape[0]
        return n

    n, wall, cpu = _timed(run)
    return {"corpus": "peer: SSL4EO-S12 xr.open_zarr(...).bands.values", "rows": n, "seasons": 4, "size": 264,
            "wall_s": wall, "cpu_s": cpu, "rows_per_cpu_s": n / cpu, "rows_per_s": n / wall,
            "note": "decode only, no cache written"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "--products", type=int, default=3, help="Major TOM products (64 tiles of 120 px each)"
    )
    ap.add_argument("--locations", type=int, default=32, help="SSL4EO-S12 locations (16 per store)")
    ap.add_argument(
        "--ben-pairs",
        type=int,
        default=120,
        help="BigEarthNet rows (cycling over the 6 real patches)",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch  # noqa: F401  (imported before timing: the cache's reader pulls it in)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="csmoe-bench-corpora-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        ben = ben_manifest(tmp, args.ben_pairs)
        mt, tiles = majortom_manifest(tmp, args.products)
        ssl, root = ssl4eo_manifest(tmp, args.locations)
        print(f"generated stores in {time.perf_counter() - t0:.1f} s")
        results.append(bench_cache("BigEarthNet folders (real sample)", ben, tmp / "cache"))
        results.append(
            bench_cache("Major TOM shards (S2 + S1), 1068 px -> 120 px tiles", mt, tmp / "cache")
        )
        results.append(majortom_peer(tiles))
        results.append(bench_cache("SSL4EO-S12 zipped Zarr, 264 px x 4 seasons", ssl, tmp / "cache",
                                   "a row = one location with its 4 seasons"))  # fmt: skip
        results.append(ssl4eo_peer(root))
    base = results[0]["rows_per_cpu_s"]
    print("\nrows = training pairs (manifest rows); per CPU-s: rows per CPU second of this process")
    print(f"{'corpus':<58}{'rows':>6}{'wall s':>9}{'CPU s':>8}{'rows/CPU-s':>12}{'vs BEN':>8}")
    for r in results:
        print(f"{r['corpus']:<58}{r['rows']:>6}{r['wall_s']:>9.2f}{r['cpu_s']:>8.2f}"
              f"{r['rows_per_cpu_s']:>12.1f}{r['rows_per_cpu_s'] / base:>7.2f}x")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
