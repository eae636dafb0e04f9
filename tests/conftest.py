"""Fixtures shared by every test package: the repository root, one GeoTIFF writer, one manifest factory.

Test modules take these as fixtures (``geotiff``, ``manifest_factory``) instead of importing helpers
from other test files. The model half's generated data (BigEarthNet-layout patches: ``patch_factory``,
``patches``, ``cache_dir``; embeddings: ``embeddings_factory``, ``generated``, ``emb_file``) lives here
too, since both ``tests/csmoe_model`` and the model commands' tests in ``tests/cli`` use it.
Stores of the corpora csmoe reads in place: ``majortom_corpus``, ``ssl4eo_corpus`` (generated once
per session) and ``corpus_stores`` (the generators of ``tests/corpus_stores.py``, for tests that
write their own variant).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

GeoTiffWriter = Callable[..., Path]
ManifestFactory = Callable[..., Path]


def write_geotiff(
    path: str | Path,
    data: np.ndarray,
    transform: Any,
    crs: str | None = "EPSG:32633",
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    **profile: Any,
) -> Path:
    """Write a GeoTIFF with exactly known contents and return its path.

    Args:
        path: the file to write.
        data: (H, W) for one band or (C, H, W) for several.
        transform: an ``affine.Affine`` geotransform.
        crs: any CRS rasterio accepts, or ``None`` for none.
        nodata: the nodata value to declare.
        descriptions: band descriptions (GDAL ``DESCRIPTION``), one per band.
        **profile: further creation options (``tiled``, ``blockxsize``, ``compress``...).
    """
    import rasterio

    arr = np.asarray(data)
    bands = arr[None] if arr.ndim == 2 else arr
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=bands.shape[1],
        width=bands.shape[2],
        count=bands.shape[0],
        dtype=bands.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        **profile,
    ) as ds:
        ds.write(bands)
        for i, text in enumerate(descriptions or (), start=1):
            ds.set_band_description(i, text)
    return Path(path)


def write_manifest(
    path: str | Path,
    rows: Sequence[dict[str, Any]],
    splits: Sequence[str] | None = None,
    geometries: Sequence[Any] | None = None,
) -> Path:
    """Write a small GeoParquet manifest with geopandas and return its path.

    Args:
        path: the ``.parquet`` file.
        rows: one dict of columns per row (``patch_id``, ``s1_path``, ``s2_path``...).
        splits: values of a ``split`` column, when given.
        geometries: shapely geometries in EPSG:4326 (default: a unit box per row).
    """
    import geopandas as gpd
    from shapely.geometry import box

    geoms = (
        list(geometries)
        if geometries is not None
        else [box(i, 0, i + 1, 1) for i in range(len(rows))]
    )
    gdf = gpd.GeoDataFrame(list(rows), geometry=geoms, crs="EPSG:4326")
    if splits is not None:
        gdf["split"] = list(splits)
    gdf.to_parquet(path)
    return Path(path)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder (wherever the checkout lives, whatever its name)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def geotiff() -> GeoTiffWriter:
    """The GeoTIFF writer :func:`write_geotiff`."""
    return write_geotiff


@pytest.fixture(scope="session")
def manifest_factory() -> ManifestFactory:
    """The manifest writer :func:`write_manifest`."""
    return write_manifest


# ------------------------------------------------------------------ the model half's generated data
# (used by tests/csmoe_model and by the model commands' tests in tests/cli)

#: ground sampling distance of each Sentinel-2 band in BigEarthNet patch folders
S2_GSD = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
          "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20}  # fmt: skip

PatchFactory = Callable[..., list[dict[str, Any]]]
EmbeddingsFactory = Callable[..., dict[str, Any]]


def make_patches(
    root: Path, n: int, size: int = 12, seed: int = 0, bands: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """Write ``n`` BigEarthNet-layout S2/S1 patch pairs (``size`` px at 10 m) under ``root``.

    Returns one manifest row per pair (``patch_id``, ``s2_path``, ``s1_path`` relative to ``root``).
    """
    from affine import Affine

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        name2, name1 = f"S2X_MSIL2A_2020_{i}_{seed}", f"S1X_IW_GRDH_2020_{i}_{seed}"
        d2, d1 = root / "S2" / name2, root / "S1" / name1
        d2.mkdir(parents=True)
        d1.mkdir(parents=True)
        x0, y0 = 400000.0 + 10 * size * i, 5300000.0
        for band, gsd in S2_GSD.items():
            if bands is not None and band not in bands:
                continue
            s = size * 10 // gsd
            arr = (rng.integers(0, 3000, (s, s)) + 100 * i).astype(np.uint16)
            write_geotiff(d2 / f"{name2}_{band}.tif", arr, Affine(gsd, 0, x0, 0, -gsd, y0))
        for pol in ("VV", "VH"):
            arr = rng.normal(-15 if pol == "VV" else -22, 3, (size, size)).astype(np.float32)
            write_geotiff(d1 / f"{name1}_{pol}.tif", arr, Affine(10, 0, x0, 0, -10, y0))
        rows.append({"patch_id": name2, "s2_path": f"S2/{name2}", "s1_path": f"S1/{name1}"})
    return rows


#: classes of each cluster of :func:`make_embeddings`; clusters 0 and 1 share "forest"
CLUSTER_LABELS = [
    ["forest", "water"],
    ["forest", "pasture"],
    ["urban"],
    ["arable land"],
    ["beaches"],
    ["wetlands", "shrub"],
]


def make_embeddings(
    n_per_cluster: int = 30, dim: int = 16, noise: float = 0.05, seed: int = 0
) -> dict[str, Any]:
    """Rows with labels from their cluster; ``emb_s1`` = ``emb_s2`` + small noise."""
    rng = np.random.default_rng(seed)
    n_clusters = len(CLUSTER_LABELS)
    centres = rng.normal(size=(n_clusters, dim)) * 3.0
    cluster = np.repeat(np.arange(n_clusters), n_per_cluster)
    s2 = centres[cluster] + rng.normal(size=(len(cluster), dim))
    s1 = s2 + noise * rng.normal(size=s2.shape)
    splits = np.array(["train", "train", "val", "test", "test"])[np.arange(len(cluster)) % 5]
    order = rng.permutation(len(cluster))  # interleave clusters
    cluster, s1, s2, splits = cluster[order], s1[order], s2[order], splits[order]
    labels = [CLUSTER_LABELS[c] for c in cluster]
    return {
        "patch_id": [f"patch_{i:04d}" for i in range(len(cluster))],
        "split": list(splits),
        "emb": {"s1": s1.astype(np.float32), "s2": s2.astype(np.float32)},
        "labels": {"labels19": labels, "labels": [[f"{x} (43)" for x in lab] for lab in labels]},
        "cluster": cluster,
    }


@pytest.fixture(scope="session")
def patch_factory() -> PatchFactory:
    """The BigEarthNet-layout patch writer :func:`make_patches`."""
    return make_patches


@pytest.fixture
def patches(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """16 generated pairs at 12 px (train 12, val 4) and their manifest ``tmp_path/m.parquet``."""
    rows = make_patches(tmp_path, 16, size=12)
    splits = ["train"] * 12 + ["val"] * 4
    return write_manifest(tmp_path / "m.parquet", rows, splits), rows


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh imagery-cache folder (``--cache-dir``) for one test."""
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def embeddings_factory() -> EmbeddingsFactory:
    """The generated-embeddings maker :func:`make_embeddings`."""
    return make_embeddings


@pytest.fixture
def generated() -> dict[str, Any]:
    """The default generated embeddings (6 clusters x 30 rows, 16-d)."""
    return make_embeddings()


@pytest.fixture
def emb_file(tmp_path: Path, generated: dict[str, Any]) -> Path:
    """:func:`generated` written as an embeddings Parquet (``tmp_path/emb.parquet``)."""
    from csmoe_model.eval.embeddings import write_embeddings

    path = tmp_path / "emb.parquet"
    write_embeddings(
        path,
        generated["patch_id"],
        generated["split"],
        generated["emb"],
        labels=generated["labels"],
        metadata={"model": "generated"},
    )
    return path


# ------------------------------------------------------------------ patches with a learnable signal
# Every patch is a 4 x 4 grid of blocks; each block is "land" (bright in every S2 band) or "water"
# (dark). The mask raster holds the block's class (WorldCover-like values 10 = land, 80 = water, 0 =
# nodata on a few pixels), so a segmentation head can learn it from the S2 bands. Scene labels come
# from band statistics: "bright" when most blocks are land, "red" when the patch's B04 offset is high
# (independent of the land share), so a classifier can learn both.

SIGNAL_GSD = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
          "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20}  # fmt: skip
#: mask values of the signal patches (WorldCover-like), and their nodata
SIGNAL_LAND, SIGNAL_WATER, SIGNAL_NODATA = 10, 80, 0


def make_signal_patches(
    root: Path, geotiff: Any, n: int, size: int = 24, seed: int = 0, blocks: int = 4
) -> list[dict[str, Any]]:
    """Write ``n`` S1/S2 patch folders and mask rasters under ``root``; return manifest rows."""
    from affine import Affine

    rng = np.random.default_rng(seed)
    rows = []
    step = size // blocks
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        land = rng.random((blocks, blocks)) < rng.uniform(0.2, 0.8)
        mask10 = np.kron(land, np.ones((step, step), dtype=bool))
        red = bool(rng.random() < 0.5)
        name2, name1 = f"S2_SIG_{seed}_{i:03d}", f"S1_SIG_{seed}_{i:03d}"
        d2, d1 = root / "S2" / name2, root / "S1" / name1
        d2.mkdir(parents=True)
        d1.mkdir(parents=True)
        x0, y0 = 500000.0 + 10 * size * i, 5200000.0
        for band, gsd in SIGNAL_GSD.items():
            s = size * 10 // gsd
            k = size // s
            m = mask10.reshape(s, k, s, k).mean(axis=(1, 3))
            arr = 400 + 2000 * m + rng.normal(0, 120, (s, s))
            if band == "B04" and red:
                arr += 900
            geotiff(d2 / f"{name2}_{band}.tif", np.clip(arr, 0, 10000).astype(np.uint16),
                    Affine(gsd, 0, x0, 0, -gsd, y0), crs="EPSG:32632")  # fmt: skip
        for pol in ("VV", "VH"):
            arr = rng.normal(-14 if pol == "VV" else -21, 2, (size, size)).astype(np.float32)
            geotiff(d1 / f"{name1}_{pol}.tif", arr, Affine(10, 0, x0, 0, -10, y0), crs="EPSG:32632")
        mask = np.where(mask10, SIGNAL_LAND, SIGNAL_WATER).astype(np.uint8)
        mask[0, :2] = SIGNAL_NODATA  # a few nodata pixels, never evaluated
        geotiff(root / "masks" / f"{name2}.tif", mask, Affine(10, 0, x0, 0, -10, y0),
                crs="EPSG:32632", nodata=SIGNAL_NODATA)  # fmt: skip
        labels = (["bright"] if land.mean() > 0.5 else []) + (["red"] if red else [])
        rows.append({
            "patch_id": name2, "s2_path": f"S2/{name2}", "s1_path": f"S1/{name1}",
            "mask_path": f"masks/{name2}.tif", "labels19": labels or ["dim"],
            "land_share": float(mask10.mean()),
        })  # fmt: skip
    return rows


def tiny_weights(path: Path, seed: int = 0, **overrides: Any) -> Path:
    """A randomly initialised csmoe-tiny encoder (img_size 16) exported like ``csmoe train`` does."""
    import torch

    from csmoe_model import build_model
    from csmoe_model.train import export_encoder

    torch.manual_seed(seed)
    model = build_model("csmoe-tiny", **({"img_size": 16} | overrides))
    return export_encoder(model, path, "csmoe-tiny")


@pytest.fixture(scope="session")
def signal_data(
    tmp_path_factory: pytest.TempPathFactory, geotiff: Any, manifest_factory: Any
) -> dict[str, Path]:
    """24 patches (train 12, val 4, test 8) at 24 px, their manifest and tiny encoder weights."""
    root = tmp_path_factory.mktemp("signal")
    geotiff, manifest_factory = write_geotiff, write_manifest
    rows = make_signal_patches(root, geotiff, 24)
    splits = ["train"] * 12 + ["val"] * 4 + ["test"] * 8
    manifest = manifest_factory(root / "m.parquet", rows, splits)
    # patch 4 on 16 px: one token per 6 x 6 block of the 24 px mask, so blocks are separable
    return {"root": root, "manifest": manifest, "weights": tiny_weights(root / "w.safetensors"),
            "weights4": tiny_weights(root / "w4.safetensors", patch_size=4), "cache": root / "cache",
            "land": SIGNAL_LAND, "water": SIGNAL_WATER, "nodata": SIGNAL_NODATA}  # fmt: skip


# ------------------------------------------------------------- Major TOM and SSL4EO-S12 v1.1 stores


@functools.cache
def _corpus_stores() -> ModuleType:
    """The store generators (``tests/corpus_stores.py``; also run by benchmarks/bench_corpus_cache.py)."""
    path = Path(__file__).with_name("corpus_stores.py")
    spec = importlib.util.spec_from_file_location("csmoe_tests_corpus_stores", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def corpus_stores() -> ModuleType:
    """``write_majortom``, ``write_ssl4eo``, ``write_ssl4eo_store``, ``LAND_CENTRES``, ..."""
    return _corpus_stores()


@dataclass(frozen=True)
class MajorTomCorpus:
    """A generated Major TOM corpus: S2L2A as Parquet shards, S1RTC as the unpacked tree.

    Attributes:
        cells: one S2 product per cell (on land in Bavaria); S1 products for the first two.
        s1_days: days between each S1 acquisition and its cell's S2 one.
        size: the 10 m size of each product (Major TOM Core: 1068); 2 x 2 tiles of 120 px.
        damaged: index of the S2 product whose B04 GeoTIFF is truncated.
    """

    root: Path
    s2_metadata: Path
    s1_metadata: Path
    cells: tuple[str, ...] = ("535U_81R", "535U_82R", "536U_81R")
    s1_days: tuple[int, ...] = (3, 39)
    size: int = 252
    damaged: int = 1


@dataclass(frozen=True)
class Ssl4eoCorpus:
    """A generated SSL4EO-S12 v1.1 root: ``train/{S1GRD,S2L1C,S2L2A}/*.zarr.zip``.

    The S2L2A store ``damaged_file`` opens but has a corrupt ``bands`` chunk.
    """

    root: Path
    files: int = 3
    samples_per_file: int = 3
    size: int = 48
    damaged_file: int = 2


@pytest.fixture(scope="session")
def majortom_corpus(tmp_path_factory: pytest.TempPathFactory) -> MajorTomCorpus:
    stores = _corpus_stores()
    root = tmp_path_factory.mktemp("majortom")
    spec = MajorTomCorpus(
        root, root / "Core-S2L2A" / "metadata.parquet", root / "Core-S1RTC" / "metadata.parquet"
    )
    stores.write_majortom(root / "Core-S2L2A", spec.cells, "s2", layout="shards", size=spec.size,
                          days=(0, 1, 2), damaged=(spec.damaged,), seed=1)  # fmt: skip
    stores.write_majortom(root / "Core-S1RTC", spec.cells[:2], "s1", layout="tree", size=spec.size,
                          days=[d + k for k, d in enumerate(spec.s1_days)], seed=2)  # fmt: skip
    return spec


@pytest.fixture(scope="session")
def ssl4eo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Ssl4eoCorpus:
    spec = Ssl4eoCorpus(tmp_path_factory.mktemp("ssl4eo") / "SSL4EO-S12-v1.1")
    _corpus_stores().write_ssl4eo(spec.root, n_files=spec.files, samples_per_file=spec.samples_per_file,
                                  size=spec.size, damaged_chunks=(spec.damaged_file,), seed=3)  # fmt: skip
    return spec
