"""Footprint tables as users have them: layered files, CSV, points, ids shared by several rows.

- **Layers**: a GeoPackage (or any multi-layer source) with several layers needs ``--layer``;
  silently reading the first would describe the wrong features.
- **CSV**: a WKT column (``geometry``, ``wkt``, ``geom``, ``the_geom``; any case) in the CRS given
  by ``--crs``, or point columns ``lon``/``lat`` (``longitude``/``latitude``, ``lng``/``lat``,
  ``x``/``y`` only with ``--crs``), which are EPSG:4326 unless ``--crs`` says otherwise.
- **Points** become squares with ``--point-size`` (:mod:`csmoe_data.footprints.points`).
- **Dissolving ids**: MGRS tiles split at the antimeridian come as two rows with one name;
  ``--dissolve-ids`` merges the rows sharing an id into one (multi-)polygon, keeping the first
  row's attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from csmoe_data.errors import CsmoeDataError

__all__ = [
    "CSV_SUFFIXES",
    "dissolve_rows",
    "layer_names",
    "read_csv_footprints",
    "read_layer",
]

CSV_SUFFIXES = (".csv", ".tsv")
_WKT_COLUMNS = ("geometry", "wkt", "geom", "the_geom", "wkt_geometry")
_POINT_COLUMNS = (("lon", "lat"), ("longitude", "latitude"), ("lng", "lat"), ("long", "lat"))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def layer_names(path: Path) -> list[str]:
    """The layers of a vector source (one name for single-layer formats).

    Raises:
        CsmoeDataError: if GDAL cannot list them.
    """
    import pyogrio

    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise CsmoeDataError(f"cannot read footprint file {path}: {_one_line(exc)}") from exc
    return [str(row[0]) for row in layers]


def read_layer(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    """Read one layer of a vector file; several layers without ``layer`` is an error.

    Raises:
        CsmoeDataError: several layers and no ``layer`` (the message lists them), an unknown
            layer, or an unreadable file.
    """
    names = layer_names(path)
    if layer is None and len(names) > 1:
        raise CsmoeDataError(
            f"{path} has {len(names)} layers ({', '.join(names)}); choose one with --layer NAME"
        )
    if layer is not None and layer not in names:
        raise CsmoeDataError(
            f"--layer {layer!r}: {path} has no such layer (layers: {', '.join(names)})"
        )
    try:
        return gpd.read_file(
            path, layer=layer if layer is not None else names[0] if names else None
        )
    except Exception as exc:  # pyogrio raises many types for corrupt files
        raise CsmoeDataError(f"cannot read footprint file {path}: {_one_line(exc)}") from exc


def _find(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def read_csv_footprints(path: Path, crs: str | None) -> gpd.GeoDataFrame:
    """Read footprints (or points) from a CSV file.

    Args:
        path: a ``.csv`` (comma) or ``.tsv`` (tab) file with a header.
        crs: the CRS of a WKT column, or of ``x``/``y`` columns (lon/lat columns are EPSG:4326
            unless this says otherwise).

    Returns:
        A GeoDataFrame with the other columns as attributes.

    Raises:
        CsmoeDataError: unreadable file, no geometry or coordinate columns (the message lists the
            columns), bad WKT or non-numeric coordinates (the first bad row is named), a WKT
            column without ``crs``.
    """
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CsmoeDataError(f"cannot read CSV footprints {path}: {_one_line(exc)}") from exc
    columns = [str(c) for c in frame.columns]
    wkt = _find(columns, _WKT_COLUMNS)
    if wkt is not None:
        if crs is None:
            raise CsmoeDataError(
                f"{path}: WKT column {wkt!r} carries no CRS; give it with --crs (e.g. EPSG:4326)"
            )
        text = frame[wkt].fillna("").astype(str).to_numpy()
        geoms = shapely.from_wkt(text, on_invalid="ignore")
        bad = np.flatnonzero(shapely.is_missing(geoms) & (np.char.str_len(text.astype(str)) > 0))
        if len(bad):
            raise CsmoeDataError(
                f"{path}: row {int(bad[0]) + 2} of column {wkt!r} is not WKT: {text[bad[0]][:60]!r}"
            )
        return gpd.GeoDataFrame(frame.drop(columns=[wkt]), geometry=list(geoms), crs=crs)
    pair: tuple[str, str] | None = None
    for lon_name, lat_name in _POINT_COLUMNS:
        x, y = _find(columns, (lon_name,)), _find(columns, (lat_name,))
        if x is not None and y is not None:
            pair = (x, y)
            break
    point_crs = crs or "EPSG:4326"
    if pair is None and crs is not None:
        found = (_find(columns, ("x",)), _find(columns, ("y",)))
        if found[0] and found[1]:
            pair = (found[0], found[1])
    if pair is None:
        raise CsmoeDataError(
            f"{path}: no geometry column ({', '.join(_WKT_COLUMNS)}) and no lon/lat columns; "
            f"columns: {', '.join(columns)}"
        )
    xs = pd.to_numeric(frame[pair[0]], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(frame[pair[1]], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~(np.isfinite(xs) & np.isfinite(ys)))
    if len(bad):
        i = int(bad[0])
        raise CsmoeDataError(
            f"{path}: row {i + 2} has no numeric {pair[0]}/{pair[1]} "
            f"({frame[pair[0]].iloc[i]!r}, {frame[pair[1]].iloc[i]!r})"
        )
    geo = point_crs == "EPSG:4326" or str(point_crs).upper() in ("EPSG:4326", "WGS84", "OGC:CRS84")
    off_globe = (np.abs(ys) > 90) | (xs < -180) | (xs > 360)
    off = np.flatnonzero(off_globe) if geo else np.zeros(0, dtype=np.int64)
    if len(off):
        i = int(off[0])
        raise CsmoeDataError(
            f"{path}: row {i + 2} is no lon/lat position ({pair[0]} {xs[i]:g}, {pair[1]} "
            f"{ys[i]:g}; {len(off)} such row(s)): lon/lat columns must be degrees, with "
            "|lat| <= 90 (for projected x/y give --crs)"
        )
    return gpd.GeoDataFrame(
        frame.drop(columns=list(pair)), geometry=gpd.points_from_xy(xs, ys), crs=point_crs
    )


def dissolve_rows(
    gdf: gpd.GeoDataFrame, id_column: str, notes: list[str], lonlat: bool
) -> gpd.GeoDataFrame:
    """Merge rows sharing an id into one footprint (union of their geometries).

    Lon/lat halves on both sides of the antimeridian are rejoined first (longitudes made
    continuous), so the union is one footprint over 180 degrees, split again later.

    Returns:
        One row per id, in order of first appearance, with the first row's attributes.
    """
    ids = gdf[id_column]
    if not ids.duplicated().any():
        return gdf
    from csmoe_data.geometry import unwrap_longitudes

    geom_name = gdf.geometry.name
    groups: dict[Any, list[int]] = {}
    for pos, value in enumerate(ids.tolist()):
        groups.setdefault(value, []).append(pos)
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    keep: list[int] = []
    merged: list[Any] = []
    n_merged = 0
    for rows in groups.values():
        keep.append(rows[0])
        if len(rows) == 1:
            merged.append(geoms[rows[0]])
            continue
        n_merged += len(rows) - 1
        parts = [g for g in geoms[rows] if g is not None and not g.is_empty]
        if lonlat and parts:
            # a multipart geometry of all rows, unwrapped as one: halves at +-180 rejoin
            joined = unwrap_longitudes([shapely.GeometryCollection(parts)])[0]
            parts = list(shapely.get_parts(joined))
        merged.append(shapely.union_all(parts) if parts else None)
    out = gdf.iloc[keep].copy()
    out[geom_name] = gpd.GeoSeries(merged, index=out.index, crs=gdf.crs)
    notes.append(
        f"--dissolve-ids: {n_merged} row(s) merged into the footprint of the id they share"
    )
    return out.reset_index(drop=True)
