"""Stage 3 of a build: footprint attributes + descriptors -> one GeoDataFrame in EPSG:4326."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from csmoe_common import manifest as schema
from csmoe_common.manifest import is_url, resolve_imagery_path
from csmoe_common.store_path import split_fragment
from csmoe_data.builder.describe import Described

#: columns holding imagery paths, written relative to the manifest where possible
IMAGERY_COLUMNS = (schema.S1_PATH, schema.S2_PATH, "image_path")


def project_root(folder: Path) -> Path | None:
    """The nearest folder at or above ``folder`` holding ``pyproject.toml`` or ``.git``."""
    for d in (folder, *folder.parents):
        if (d / "pyproject.toml").exists() or (d / ".git").exists():
            return d
    return None


def relative_paths(values: pd.Series, out_dir: Path) -> pd.Series:
    """Imagery paths as written into a manifest in ``out_dir``.

    Relative to the manifest's folder when the imagery lies below it; also relative (with
    ``..``) when the manifest and the imagery lie in the same project tree (below the nearest
    folder above the manifest holding ``pyproject.toml`` or ``.git``), so that a manifest
    committed beside its imagery, like the bundled ``data_manifests/bigearthnet_sample.parquet``,
    stays valid wherever the tree is cloned; otherwise absolute (never ``../../..`` out of, say,
    ``/tmp`` into an unrelated tree).
    """
    out_dir = out_dir.resolve()
    root = project_root(out_dir)

    def rel(v: object) -> str | None:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return None
        # a path into a store keeps its fragment (#row=, #sample=, #window=) after its file
        if str(v).startswith("/vsi") or is_url(str(v)):
            return str(v)  # GDAL virtual paths and URLs are not local files
        file, fragment = split_fragment(str(v))
        tail = f"#{fragment}" if fragment else ""
        p = Path(file).resolve()
        if p.is_relative_to(out_dir):
            return p.relative_to(out_dir).as_posix() + tail
        if root is not None and p.is_relative_to(root):
            return Path(os.path.relpath(p, out_dir)).as_posix() + tail
        return str(p) + tail

    return pd.Series([rel(v) for v in values], index=values.index, dtype="string")


def rebase_imagery_paths(gdf: gpd.GeoDataFrame, from_dir: Path, out_dir: Path) -> gpd.GeoDataFrame:
    """Imagery paths of rows read from a manifest in ``from_dir``, for a manifest in ``out_dir``.

    A sample written to another folder than its pool keeps pointing at the same files: each
    relative path is resolved against the pool's folder (:func:`resolve_imagery_path`) and
    written again by :func:`relative_paths`. Absolute paths and URLs stay as they are.
    """
    gdf = gdf.copy()
    root = from_dir.resolve()
    for col in (*IMAGERY_COLUMNS, schema.MASK_PATH):
        if col in gdf.columns:
            resolved = pd.Series(
                [None if pd.isna(v) else resolve_imagery_path(v, root) for v in gdf[col]],
                index=gdf.index,
                dtype=object,
            )
            gdf[col] = relative_paths(resolved, out_dir)
    return gdf


def manifest_columns(table: pd.DataFrame, described: Described, out_dir: Path) -> pd.DataFrame:
    """The manifest's rows without their geometry: the footprints' attributes and descriptors.

    ``patch_id`` and ``crs`` come first, then the source's attributes (imagery paths made
    relative by :func:`relative_paths`), then the descriptors; a computed descriptor replaces a
    same-named attribute. The geometry (``described.geometry_wkb``) follows them in the file.
    """
    descriptors = described.descriptors
    attrs = table.drop(columns=[schema.GEOMETRY]).reset_index(drop=True)
    clash = [c for c in descriptors.columns if c in attrs.columns]
    attrs = attrs.drop(columns=clash)  # computed descriptors win over same-named attributes
    for col in IMAGERY_COLUMNS:
        if col in attrs.columns:
            attrs[col] = relative_paths(attrs[col], out_dir)
    front = [schema.PATCH_ID, schema.CRS]
    attrs = attrs[front + [c for c in attrs.columns if c not in front]]
    attrs[schema.PATCH_ID] = attrs[schema.PATCH_ID].astype("string")
    attrs[schema.CRS] = attrs[schema.CRS].astype("string")
    return pd.concat([attrs, descriptors], axis=1)


def assemble(table: pd.DataFrame, described: Described, out_dir: Path) -> gpd.GeoDataFrame:
    """Join the footprints' attributes and their descriptors into the manifest's rows.

    The columns of :func:`manifest_columns`, then the geometry: each footprint in EPSG:4326.
    """
    return gpd.GeoDataFrame(
        manifest_columns(table, described, out_dir),
        geometry=gpd.GeoSeries.from_wkb(described.geometry_wkb, crs="EPSG:4326"),
        crs="EPSG:4326",
    )
