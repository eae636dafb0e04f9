"""Footprints from a vector file: GeoParquet, GeoPackage, GeoJSON, Shapefile, FlatGeobuf, ...

Any format geopandas reads, in one CRS, with a unique id column. A grid written by
``csmoe-data grid`` (columns ``utm_crs``, ``row``, ``col``, ``cell_size``) is recognised and its
cells are rebuilt as exact squares in their own UTM zone; see :mod:`csmoe_data.footprints.grid`.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints, add_labels, finalize_table
from csmoe_data.footprints.grid import GRID_COLUMNS, grid_cell_squares
from csmoe_data.geometry import crs_string

__all__ = ["PARQUET_SUFFIXES", "VECTOR_SUFFIXES", "load_vector"]

PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")
#: suffixes tried as vector files (anything else is still offered to GDAL/pyogrio)
VECTOR_SUFFIXES = (
    *PARQUET_SUFFIXES,
    ".gpkg",
    ".geojson",
    ".json",
    ".shp",
    ".fgb",
    ".gml",
    ".kml",
    ".sqlite",
    ".zip",
    ".geojsonl",
    ".geojsons",
)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def _read(path: Path, layer: str | None = None, crs: str | None = None) -> gpd.GeoDataFrame:
    from csmoe_data.footprints.tables import CSV_SUFFIXES, read_csv_footprints, read_layer

    if path.suffix.lower() in CSV_SUFFIXES:
        if layer is not None:
            raise CsmoeDataError(f"--layer does not apply to CSV file {path}")
        return read_csv_footprints(path, crs)
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            if layer is not None:
                raise CsmoeDataError(f"--layer does not apply to Parquet file {path}")
            try:
                return gpd.read_parquet(path)
            except ValueError as exc:
                # a plain Parquet without GeoParquet metadata is not a footprint file
                if "geo" in str(exc).lower():
                    raise CsmoeDataError(
                        f"{path} is a Parquet file without GeoParquet 'geo' metadata; write it with geopandas"
                    ) from exc
                raise
        return read_layer(path, layer)
    except CsmoeDataError:
        raise
    except Exception as exc:  # pyogrio/pyarrow raise many types for corrupt files
        raise CsmoeDataError(f"cannot read footprint file {path}: {_one_line(exc)}") from exc


#: the note of a footprint source whose GeoParquet 1.1 ``bbox`` covering column was dropped
COVERING_BBOX_NOTE = "GeoParquet 'bbox' covering column dropped (rebuilt on output)"
#: the fields of a ``bbox`` covering column
COVERING_BBOX_FIELDS = frozenset({"xmin", "ymin", "xmax", "ymax"})


def _drop_covering_bbox(gdf: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    # GeoParquet 1.1 'bbox' covering columns (e.g. from a manifest) are rebuilt on output
    if "bbox" in gdf.columns:
        first = next((v for v in gdf["bbox"].tolist() if v is not None), None)
        if isinstance(first, dict) and set(first) >= COVERING_BBOX_FIELDS:
            notes.append(COVERING_BBOX_NOTE)
            return gdf.drop(columns=["bbox"])
    return gdf


def load_vector(
    path: Path,
    source: str,
    id_column: str = "patch_id",
    labels_column: str | None = None,
    *,
    layer: str | None = None,
    crs: str | None = None,
    point_size: float | None = None,
    dissolve_ids: bool = False,
) -> Footprints:
    """Load footprints from a vector file (or a CSV with WKT or lon/lat columns).

    Args:
        path: the file.
        source: the source as the user gave it (kept in :attr:`Footprints.source`).
        id_column: the column holding unique patch ids.
        labels_column: optional column carried into ``labels`` (list column, or a string column
            with ``;``/``|``-separated names or a JSON list).
        layer: the layer of a multi-layer file (required when it has several).
        crs: the CRS of a source that carries none (a CSV WKT column, a file without CRS);
            a source that has one must agree.
        point_size: side in metres of the squares made around point footprints (centred in
            the point's UTM zone); points without it are refused.
        dissolve_ids: merge rows sharing an id into one footprint instead of refusing them.

    Returns:
        The footprints; geometry in the file's CRS (for a ``csmoe-data grid`` file, each cell's
        exact square in its UTM zone; for points, squares in each point's UTM zone).

    Raises:
        CsmoeDataError: unreadable or corrupt file, empty file, no CRS, several layers without
            ``layer``, missing id or labels column, null or duplicate ids, points without
            ``point_size``, or no usable geometry.
    """
    return vector_footprints(
        _read(path, layer, crs),
        path,
        source,
        id_column,
        labels_column,
        crs=crs,
        point_size=point_size,
        dissolve_ids=dissolve_ids,
    )


def vector_footprints(
    gdf: gpd.GeoDataFrame,
    path: Path,
    source: str,
    id_column: str = "patch_id",
    labels_column: str | None = None,
    *,
    crs: str | None = None,
    point_size: float | None = None,
    dissolve_ids: bool = False,
    allow_empty: bool = False,
    covering_dropped: bool = False,
) -> Footprints:
    """Footprints from the rows of a vector file (all of them, or one batch of a streamed file).

    Args:
        gdf: the rows as read.
        path: the file (for messages).
        source: the source as the user gave it.
        id_column: the column holding unique patch ids (unique within ``gdf``).
        labels_column: optional column carried into ``labels``.
        crs: see :func:`load_vector`.
        point_size: see :func:`load_vector`.
        dissolve_ids: see :func:`load_vector` (needs every row: not for batches).
        allow_empty: an empty ``gdf``, or one whose geometries are all dropped, gives an empty
            table instead of an error (one batch of a streamed file).
        covering_dropped: the source's ``bbox`` covering column was dropped before ``gdf`` was
            made (a streamed GeoParquet file drops it in Arrow, where it costs nothing; as
            pandas objects it is a dict per row); the note is added as if it were dropped here.

    Raises:
        CsmoeDataError: see :func:`load_vector`.
    """
    from csmoe_data.footprints.points import is_point_geometry, points_to_footprints
    from csmoe_data.footprints.tables import dissolve_rows

    notes: list[str] = []
    if not len(gdf) and not allow_empty:
        raise CsmoeDataError(f"footprint file {path} is empty (no features)")
    if crs is not None:
        if gdf.crs is None:
            gdf = gdf.set_crs(crs)
        elif not gdf.crs.equals(crs):
            raise CsmoeDataError(
                f"--crs {crs} contradicts the CRS of {path} ({crs_string(gdf.crs)}); drop --crs"
            )
    if id_column not in gdf.columns:
        cols = ", ".join(str(c) for c in gdf.columns if c != gdf.geometry.name)
        raise CsmoeDataError(
            f"id column {id_column!r} not found in {path}; columns: {cols} (use --id-column)"
        )
    if covering_dropped:  # by the caller, before the rows became Python objects
        notes.append(COVERING_BBOX_NOTE)
    else:
        gdf = _drop_covering_bbox(gdf, notes)
    if dissolve_ids:
        gdf = dissolve_rows(
            gdf, id_column, notes, lonlat=gdf.crs is not None and bool(gdf.crs.is_geographic)
        )
    if is_point_geometry(gdf.geometry):
        if point_size is None:
            raise CsmoeDataError(
                f"the footprints in {path} are points; give --point-size METRES to make squares "
                "centred on them (e.g. 2640 for SSL4EO-S12 patches)"
            )
        if gdf.crs is None:
            raise CsmoeDataError(f"footprint file {path} has no CRS; give it with --crs")
        squares = points_to_footprints(gdf, point_size)
        notes.append(f"points made into {point_size:g} m squares centred in their UTM zones")
        attrs = pd.DataFrame(squares.drop(columns=["geometry", "crs", id_column]))
        table, repaired, dropped = finalize_table(
            squares[id_column],
            squares["geometry"].to_numpy(),
            squares["crs"].tolist(),
            attrs,
            id_column,
            notes,
            repair=False,
            allow_empty=allow_empty,
        )
        if labels_column is not None:
            table = add_labels(table, labels_column, notes)
        return Footprints(
            table=table, source=source, repaired=repaired, dropped=dropped, notes=notes
        )
    if point_size is not None:
        raise CsmoeDataError(f"--point-size applies to points; {path} holds polygons")
    geom_name = gdf.geometry.name
    attrs = pd.DataFrame(gdf.drop(columns=[geom_name, id_column]))

    if set(gdf.columns) >= GRID_COLUMNS:
        # a csmoe-data grid: rebuild each cell's exact UTM square instead of the lon/lat outline
        geoms, crs_values = grid_cell_squares(
            gdf["utm_crs"].astype(str).to_numpy(),
            gdf["row"].to_numpy(),
            gdf["col"].to_numpy(),
            gdf["cell_size"].to_numpy(dtype=float),
        )
        attrs = attrs.drop(columns=["utm_crs"])
        notes.append(
            "csmoe-data grid recognised: cells rebuilt as exact squares in their UTM zones"
        )
        table, repaired, dropped = finalize_table(
            gdf[id_column],
            geoms,
            crs_values,
            attrs,
            id_column,
            notes,
            repair=False,
            allow_empty=allow_empty,
        )
    else:
        if gdf.crs is None:
            raise CsmoeDataError(
                f"footprint file {path} has no CRS; give it with --crs (e.g. EPSG:4326)"
            )
        crs = crs_string(gdf.crs)
        # lon/lat footprints are made canonical: dateline crossings as parts within [-180, 180]
        table, repaired, dropped = finalize_table(
            gdf[id_column],
            gdf.geometry.values,
            crs,
            attrs,
            id_column,
            notes,
            lonlat=bool(gdf.crs.is_geographic),
            allow_empty=allow_empty,
        )
    if labels_column is not None:
        table = add_labels(table, labels_column, notes)
    return Footprints(table=table, source=source, repaired=repaired, dropped=dropped, notes=notes)
