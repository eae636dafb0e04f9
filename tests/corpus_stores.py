"""Small Major TOM and SSL4EO-S12 v1.1 stores laid out exactly as the published corpora are.

Used by the fixtures ``majortom_corpus`` and ``ssl4eo_corpus`` (``tests/conftest.py``), by the
benchmark ``benchmarks/bench_corpus_cache.py`` and by the README walk-throughs (through
``scripts/make_corpus_samples.py``), like TorchGeo's ``tests/data/*/data.py`` generators.

Major TOM (ESA-PhiLab/Major-TOM, ``MajorTOMDataset.py``, ``metadata_helpers.py``; the Core
dataset cards): a dataset folder holds ``metadata.parquet`` (one row per product: ``grid_cell``,
``grid_row_u``, ``grid_col_r``, ``product_id``, ``timestamp``, ``cloud_cover``, ``nodata``,
``centre_lat``, ``centre_lon``, ``crs``, ``parquet_url``, ``parquet_row``) and ``images/part_*.parquet``
shards (one product per row group: ``product_id``, ``grid_cell``, ``product_datetime``, one
binary GeoTIFF column per band, ``B01`` ... ``B12``, ``B8A``, ``cloud_mask`` for Sentinel-2,
``vv``, ``vh`` for Sentinel-1 RTC, and a PNG ``thumbnail``), or, once unpacked by Major TOM's
``filter_download``, the tree ``<row>/<grid_cell>/<product_id>/<BAND>.tif`` (row = the part of
the cell id before ``_``). Sentinel-2 bands are stored at their native resolution (10, 20, 60 m),
Sentinel-1 RTC as linear power.

SSL4EO-S12 v1.1 (DLR-MF-DAS/SSL4EO-S12-v1.1 README): ``<split>/<modality>/<name>.zarr.zip``, zarr
format 2, consolidated; each store holds 64 locations (``sample``) x 4 seasons (``time``) with
``bands (sample, time, band, y, x)`` (int16 for S2L1C/S2L2A, float16 dB for S1GRD), ``center_lat``,
``center_lon``, ``crs`` (EPSG code per sample), ``x_``/``y_`` (pixel-centre coordinates per sample),
``time_``, ``sample_id``, ``file_id`` and, for S2, ``cloud_mask``; all bands at 10 m, 264 x 264 px.
"""

from __future__ import annotations

import math
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

S2_MAJORTOM_BANDS: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
}  # fmt: skip
S1_MAJORTOM_BANDS: tuple[str, ...] = ("vv", "vh")
S2L2A_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip
S2L1C_BANDS: tuple[str, ...] = (*S2L2A_BANDS[:10], "B10", *S2L2A_BANDS[10:])

_R_KM = 6378.137
#: lon/lat of land locations on several continents (SSL4EO-S12 samples around cities)
LAND_CENTRES: tuple[tuple[float, float], ...] = (
    (11.5, 48.1), (2.35, 48.85), (-3.7, 40.4), (21.0, 52.2), (31.2, 30.0), (-47.9, -15.8),
    (28.0, -26.2), (77.2, 28.6), (-98.0, 39.0), (134.0, -25.0), (37.6, 55.7), (-58.4, -34.6),
)  # fmt: skip


def majortom_cell_corner(cell: str, dist_km: float = 10.0) -> tuple[float, float]:
    """Lon/lat of a Major TOM cell's grid point (its south-west corner), per Major TOM's grid.py."""
    row, col = cell.split("_")
    n_rows = math.ceil(math.pi * _R_KM / dist_km)
    j = int(row[:-1]) * (1 if row[-1] == "U" else -1)
    lat = j * 180.0 / n_rows
    m = math.ceil(2 * math.pi * _R_KM * math.cos(math.radians(lat)) / dist_km)
    c = int(col[:-1]) * (1 if col[-1] == "R" else -1)
    return c * 360.0 / m, lat


def _utm_epsg(lon: float, lat: float) -> int:
    zone = int((lon + 180) // 6) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def _geotiff_bytes(data: np.ndarray, transform: Any, crs: str, compress: str | None) -> bytes:
    import rasterio
    from rasterio.io import MemoryFile

    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": str(data.dtype),
        "crs": crs,
        "transform": transform,
    }
    if compress:
        profile["compress"] = compress
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data, 1)
        return bytes(mem.read())


def majortom_product(
    cell: str, sensor: str, size: int, rng: np.random.Generator, compress: str | None = "deflate"
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """One product's band GeoTIFFs (``{band: bytes}``) and its grid facts (crs, transform, centre).

    The image is a ``size`` x ``size`` px square at 10 m in the cell's UTM zone, centred on the
    cell's centroid (Major TOM's window rule), with pixel edges on a 60 m lattice.
    """
    import pyproj
    from affine import Affine

    def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
        return Affine(xsize, 0.0, west, 0.0, -ysize, north)

    lon0, lat0 = majortom_cell_corner(cell)
    clon, clat = lon0 + 0.045, lat0 + 0.045
    epsg = _utm_epsg(clon, clat)
    to_utm = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    cx, cy = to_utm.transform(clon, clat)
    cx, cy = 60 * round(cx / 60), 60 * round(cy / 60)
    half = size * 10 // 2
    left, top = cx - half, cy + half
    bands: dict[str, bytes] = {}
    yy, xx = np.mgrid[0:size, 0:size]
    if sensor == "s2":
        for i, (band, gsd) in enumerate(S2_MAJORTOM_BANDS.items()):
            n = size * 10 // gsd
            base = 800 + 150 * i + 400 * np.sin(xx[:n, :n] / (7 + i)) * np.cos(yy[:n, :n] / 11)
            data = np.clip(base + rng.normal(0, 60, (n, n)), 0, 10000).astype(np.uint16)
            bands[band] = _geotiff_bytes(
                data, from_origin(left, top, gsd, gsd), f"EPSG:{epsg}", compress
            )
        cloud = (rng.random((size, size)) < 0.05).astype(np.uint8)
        bands["cloud_mask"] = _geotiff_bytes(
            cloud, from_origin(left, top, 10, 10), f"EPSG:{epsg}", compress
        )
    else:
        for i, band in enumerate(S1_MAJORTOM_BANDS):
            db = -12.0 - 6 * i + 3 * np.sin(xx / 9.0) + rng.normal(0, 1.5, (size, size))
            data = np.power(10.0, db / 10.0).astype(np.float32)
            bands[band] = _geotiff_bytes(
                data, from_origin(left, top, 10, 10), f"EPSG:{epsg}", compress
            )
    facts = {"epsg": epsg, "left": left, "top": top, "centre": (clon, clat)}
    return bands, facts


def _png_bytes(rng: np.random.Generator) -> bytes:
    # a valid 1x1 grey PNG, as Major TOM's thumbnail column holds a PNG
    import struct
    import zlib

    raw = b"\x00" + bytes([int(rng.integers(0, 255))])
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def write_majortom(
    root: str | Path,
    cells: Sequence[str],
    sensor: str = "s2",
    *,
    layout: str = "shards",
    size: int = 252,
    days: Sequence[int] | None = None,
    products_per_shard: int = 2,
    damaged: Sequence[int] = (),
    geometry: bool = False,
    seed: int = 0,
) -> Path:
    """Write a Major TOM dataset folder (``metadata.parquet`` + shards or tree); return the metadata.

    Args:
        root: the dataset folder (e.g. ``.../Core-S2L2A``), created.
        cells: one product per cell id (repeat a cell for several products).
        sensor: ``"s2"`` (S2L2A bands) or ``"s1"`` (S1RTC ``vv``/``vh``).
        layout: ``"shards"`` (``images/part_00001.parquet`` ...) or ``"tree"``
            (``<row>/<cell>/<product_id>/<BAND>.tif``).
        size: the 10 m size of each product in pixels (Major TOM Core: 1068).
        days: acquisition day offsets from 2020-06-01, one per product (default 0, 1, 2, ...).
        products_per_shard: products per Parquet shard file.
        damaged: indices of products whose B04 (S2) or vv (S1) GeoTIFF is truncated.
        geometry: also write a WKB ``geometry`` column (the cell's lon/lat polygon).
        seed: random seed.
    """
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    days = list(days) if days is not None else list(range(len(cells)))
    meta: dict[str, list[Any]] = {
        k: []
        for k in (
            "grid_cell", "grid_row_u", "grid_col_r", "product_id", "timestamp", "cloud_cover",
            "nodata", "centre_lat", "centre_lon", "crs", "parquet_url", "parquet_row",
        )
    }  # fmt: skip
    geoms = []
    shard_rows: list[dict[str, Any]] = []
    shard_index = 1
    for k, (cell, day) in enumerate(zip(cells, days, strict=True)):
        when = dt.datetime(2020, 6, 1, 10, 30) + dt.timedelta(days=int(day), minutes=k)
        stamp = when.strftime("%Y%m%dT%H%M%S")
        if sensor == "s2":
            product = f"S2B_MSIL2A_{stamp}_N0214_R008_T33UVP_{stamp}"
        else:
            product = f"S1A_IW_GRDH_1SDV_{stamp}_{stamp}_0{k:05d}_0ABCDE_{k:04X}_rtc"
        bands, facts = majortom_product(cell, sensor, size, rng)
        if k in damaged:
            key = "B04" if sensor == "s2" else "vv"
            bands[key] = bands[key][: len(bands[key]) // 3]
        row, col = cell.split("_")
        meta["grid_cell"].append(cell)
        meta["grid_row_u"].append(int(row[:-1]) * (1 if row[-1] == "U" else -1))
        meta["grid_col_r"].append(int(col[:-1]) * (1 if col[-1] == "R" else -1))
        meta["product_id"].append(product)
        meta["timestamp"].append(when.strftime("%Y-%m-%d %H:%M:%S"))
        meta["cloud_cover"].append(float(rng.uniform(0, 30)) if sensor == "s2" else 0.0)
        meta["nodata"].append(0.0)
        meta["centre_lon"].append(facts["centre"][0])
        meta["centre_lat"].append(facts["centre"][1])
        meta["crs"].append("EPSG:4326")
        lon0, lat0 = majortom_cell_corner(cell)
        geoms.append(shapely.to_wkb(shapely.box(lon0, lat0, lon0 + 0.09, lat0 + 0.09)))
        if layout == "tree":
            folder = root / row / cell / product
            folder.mkdir(parents=True, exist_ok=True)
            for band, data in bands.items():
                (folder / f"{band}.tif").write_bytes(data)
            meta["parquet_url"].append("")
            meta["parquet_row"].append(-1)
        else:
            name = f"part_{shard_index:05d}.parquet"
            meta["parquet_url"].append(
                f"https://huggingface.co/datasets/Major-TOM/Core-{sensor.upper()}/resolve/main/images/{name}"
            )
            meta["parquet_row"].append(len(shard_rows))
            shard_rows.append(
                {
                    "product_id": product,
                    "grid_cell": cell,
                    "product_datetime": stamp,
                    **bands,
                    "thumbnail": _png_bytes(rng),
                }
            )
            if len(shard_rows) == products_per_shard or k == len(cells) - 1:
                (root / "images").mkdir(exist_ok=True)
                table = pa.Table.from_pylist(shard_rows)
                # one product per row group, as Major TOM's shards (read_row_group(parquet_row))
                pq.write_table(table, root / "images" / name, row_group_size=1)
                shard_rows = []
                shard_index += 1
    table = pa.table(meta)
    if geometry:
        table = table.append_column("geometry", pa.array(geoms, pa.binary()))
    pq.write_table(table, root / "metadata.parquet")
    return root / "metadata.parquet"


def write_ssl4eo_store(
    path: str | Path,
    modality: str,
    sample_ids: Sequence[str],
    centres: Sequence[tuple[float, float]],
    *,
    size: int = 264,
    seasons: int = 4,
    seed: int = 0,
) -> None:
    """Write one SSL4EO-S12 v1.1 zipped Zarr datacube (zarr format 2, consolidated)."""
    import pandas as pd
    import pyproj
    import xarray as xr

    rng = np.random.default_rng(seed)
    n = len(sample_ids)
    if modality == "S1GRD":
        band_names: tuple[str, ...] = ("vv", "vh")
    elif modality == "S2L1C":
        band_names = S2L1C_BANDS
    else:
        band_names = S2L2A_BANDS
    yy, xx = np.mgrid[0:size, 0:size]
    bands = np.empty((n, seasons, len(band_names), size, size), np.float32)
    crs = np.empty(n, np.int64)
    x_ = np.empty((n, size))
    y_ = np.empty((n, size))
    times = np.empty((n, seasons), "datetime64[ns]")
    for s, (lon, lat) in enumerate(centres):
        epsg = _utm_epsg(lon, lat)
        crs[s] = epsg
        cx, cy = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
        left, top = 10 * round(cx / 10) - size * 5, 10 * round(cy / 10) + size * 5
        x_[s] = left + 5 + 10 * np.arange(size)
        y_[s] = top - 5 - 10 * np.arange(size)
        for t in range(seasons):
            times[s, t] = np.datetime64(f"2020-{3 * t + 3:02d}-15T10:00:00")
            for b in range(len(band_names)):
                if modality == "S1GRD":
                    v = -12 - 7 * b + 2 * np.sin(xx / (5 + t)) + rng.normal(0, 1, (size, size))
                else:
                    v = 1000 + 120 * b + 300 * t + 400 * np.cos(yy / (6 + b)) * np.sin(xx / 9)
                    v = v + rng.normal(0, 50, (size, size))
                bands[s, t, b] = v
    data = bands.astype(np.float16 if modality == "S1GRD" else np.int16)
    sid = np.array([[f"{i}_{t}" for t in range(seasons)] for i in sample_ids])
    fid = np.array([[f"{modality}_{i}_{t}" for t in range(seasons)] for i in sample_ids])
    variables: dict[str, Any] = {
        "bands": (("sample", "time", "band", "y", "x"), data),
        "center_lat": (("sample",), np.array([c[1] for c in centres], np.float64)),
        "center_lon": (("sample",), np.array([c[0] for c in centres], np.float64)),
        "crs": (("sample",), crs),
        "file_id": (("sample", "time"), fid),
        "sample_id": (("sample", "time"), sid),
        "time_": (("sample", "time"), pd.DatetimeIndex(times.ravel()).values.reshape(n, seasons)),
        "x_": (("sample", "x"), x_),
        "y_": (("sample", "y"), y_),
    }
    if modality != "S1GRD":
        variables["cloud_mask"] = (
            ("sample", "time", "y", "x"),
            (rng.random((n, seasons, size, size)) < 0.05).astype(np.uint8),
        )
    ds = xr.Dataset(
        variables,
        coords={
            "band": list(band_names),
            "sample": list(sample_ids),
            "time": np.arange(seasons),
            "x": np.arange(size),
            "y": np.arange(size),
        },
    )
    # one chunk per season: the timestamps are chunked separately (SSL4EO-S12 v1.1 README)
    encoding = {"bands": {"chunks": (n, 1, len(band_names), size, size)}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # written as a folder, then zipped uncompressed (ZIP_STORED, as the published stores):
    # zarr's ZipStore cannot overwrite members, and xarray rewrites group metadata
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "store.zarr"
        ds.to_zarr(str(folder), zarr_format=2, consolidated=True, encoding=encoding)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(folder).as_posix())


def write_ssl4eo(
    root: str | Path,
    *,
    n_files: int = 2,
    samples_per_file: int = 3,
    size: int = 264,
    seasons: int = 4,
    split: str | None = "train",
    modalities: Sequence[str] = ("S1GRD", "S2L1C", "S2L2A"),
    damaged: Sequence[int] = (),
    damaged_chunks: Sequence[int] = (),
    seed: int = 0,
) -> Path:
    """Write an SSL4EO-S12 v1.1 root (``<split>/<modality>/*.zarr.zip``); return the root.

    Locations cycle through :data:`LAND_CENTRES` (several UTM zones, both hemispheres, on land so
    that land-cover and climate descriptors are valid), jittered by up to half a degree. ``damaged`` lists file indices whose S2L2A store is truncated (it cannot be
    opened), ``damaged_chunks`` those whose S2L2A store opens but has a corrupt ``bands`` chunk.
    """
    root = Path(root)
    base = root / split if split else root
    rng = np.random.default_rng(seed)
    for f in range(n_files):
        ids = [f"{f * samples_per_file + s:07d}" for s in range(samples_per_file)]
        centres = [
            (lon + float(rng.uniform(-0.5, 0.5)), lat + float(rng.uniform(-0.5, 0.5)))
            for lon, lat in (
                LAND_CENTRES[(f * samples_per_file + s) % len(LAND_CENTRES)]
                for s in range(samples_per_file)
            )
        ]
        name = f"ssl4eos12_{split or 'train'}_seasonal_data_{f + 1:06d}.zarr.zip"
        for m, modality in enumerate(modalities):
            path = base / modality / name
            write_ssl4eo_store(
                path, modality, ids, centres, size=size, seasons=seasons, seed=seed + 31 * f + m
            )
            if f in damaged and modality == "S2L2A":
                path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
            if f in damaged_chunks and modality == "S2L2A":
                corrupt_bands_chunk(path)
    return root


def corrupt_bands_chunk(path: str | Path, season: int = 0) -> None:
    """Overwrite the compressed ``bands`` chunk of one season with junk (the store still opens)."""
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info.filename) for info in zf.infolist()}
    key = f"bands/0.{season}.0.0.0"
    members[key] = b"\x00junk" * 16
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


__all__ = [
    "S1_MAJORTOM_BANDS",
    "S2L1C_BANDS",
    "S2L2A_BANDS",
    "LAND_CENTRES",
    "S2_MAJORTOM_BANDS",
    "corrupt_bands_chunk",
    "majortom_cell_corner",
    "majortom_product",
    "write_majortom",
    "write_ssl4eo",
    "write_ssl4eo_store",
]
