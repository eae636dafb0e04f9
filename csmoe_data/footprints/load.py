"""``load_footprints``: one entry point for every footprint source."""

from __future__ import annotations

from pathlib import Path

from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.bigearthnet import is_bigearthnet_root, load_bigearthnet
from csmoe_data.footprints.core import Footprints, add_labels
from csmoe_data.footprints.majortom import is_majortom_metadata, load_majortom
from csmoe_data.footprints.options import MajorTomOptions
from csmoe_data.footprints.rasters import RASTER_SUFFIXES, load_raster_folder
from csmoe_data.footprints.ssl4eo import is_ssl4eo_root, load_ssl4eo
from csmoe_data.footprints.vector import load_vector
from csmoe_data.samples import resolve_path

__all__ = ["load_footprints"]


def load_footprints(
    source: str | Path,
    id_column: str = "patch_id",
    labels_column: str | None = None,
    *,
    workers: int | None = None,
    progress: bool | None = None,
    layer: str | None = None,
    crs: str | None = None,
    point_size: float | None = None,
    dissolve_ids: bool = False,
    majortom: MajorTomOptions | None = None,
) -> Footprints:
    """Load patch footprints, each in its native CRS, from whatever ``source`` is.

    Dispatch:

    * ``sample:bigearthnet`` or a BigEarthNet root (``S2/`` [+ ``S1/``], the official v1/v2 folder
      names, or a folder of S2 patch folders): one row per S2 patch with ``s2_path``, ``s1_path``,
      ``labels``, ``labels19``; see :mod:`csmoe_data.footprints.bigearthnet`;
    * a Major TOM metadata Parquet (``grid_cell`` + ``product_id``), or a folder of them: one row
      per product or per tile of it, S1/S2 pairing with ``majortom``; see
      :mod:`csmoe_data.footprints.majortom`;
    * an SSL4EO-S12 v1.1 root (``[<split>/]S2L2A|S2L1C|S1GRD/*.zarr.zip``): one row per location;
      see :mod:`csmoe_data.footprints.ssl4eo`;
    * any other folder: one row per ``*.tif``/``*.tiff`` below it (recursive), footprint and CRS
      from each header, ``patch_id`` from the file stem, ``image_path``;
    * a single GeoTIFF: one row, as for a folder;
    * a CSV file: a WKT column (with ``crs``) or lon/lat columns (points, EPSG:4326);
    * any other file: a vector file read by geopandas (GeoParquet, GeoPackage, GeoJSON, Shapefile,
      FlatGeobuf, ...) in one CRS with a unique ``id_column``; a ``csmoe-data grid`` file is
      recognised and its cells rebuilt as exact UTM squares; point sources become squares of
      ``point_size`` metres in their UTM zones.

    Args:
        source: a path or ``sample:<name>``.
        id_column: the id column of a vector file (ignored for folders: ids come from names).
        labels_column: a column carried into ``labels`` (list column, or text with ``;``/``|``
            separators or a JSON list); BigEarthNet sources fill ``labels`` themselves.
        workers: threads for header/metadata reads of folder sources.
        progress: show a progress bar for folder sources (None: when many and on a terminal).
        layer: the layer of a multi-layer vector file (required when it has several).
        crs: the CRS of a vector or CSV source that carries none.
        point_size: side in metres of the squares made around point footprints.
        dissolve_ids: merge rows of a vector source that share an id into one footprint.
        majortom: pairing, imagery root and tiling of a Major TOM source (refused for others
            unless left at the defaults).

    Returns:
        :class:`Footprints`.

    Raises:
        CsmoeDataError: missing source, unreadable or corrupt file, empty file, missing CRS,
            missing/duplicate/null ids, missing labels column, an unknown sample, or a folder
            without rasters.
    """
    path = resolve_path(source)
    label = str(source)
    if not path.exists():
        raise CsmoeDataError(f"footprint source not found: {path}")
    if is_majortom_metadata(path):
        fp = load_majortom(path, label, majortom, progress=progress)
        if labels_column is not None:
            fp.table = add_labels(fp.table, labels_column, fp.notes)
        return fp
    if majortom is not None and not majortom.is_default():
        raise CsmoeDataError(
            "--pair-with, --pair-max-days, --paired-only, --imagery-root and --tile-size apply to "
            f"Major TOM metadata (grid_cell, product_id); {path} is not such a file"
        )
    if path.is_dir() or path.suffix.lower() in RASTER_SUFFIXES:
        given = [
            name
            for name, value in (
                ("--layer", layer),
                ("--crs", crs),
                ("--point-size", point_size),
                ("--dissolve-ids", dissolve_ids or None),
            )
            if value is not None
        ]
        if given:
            raise CsmoeDataError(
                f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to vector or CSV "
                f"footprints, not to {path}"
            )
    if path.is_dir() and is_ssl4eo_root(path):
        fp = load_ssl4eo(path, label, progress=progress)
        if labels_column is not None:
            fp.table = add_labels(fp.table, labels_column, fp.notes)
        return fp
    if path.is_dir():
        if is_bigearthnet_root(path):
            fp = load_bigearthnet(path, label, workers=workers, progress=progress)
            if labels_column is not None and labels_column not in ("labels", "labels19"):
                fp.table = add_labels(fp.table, labels_column, fp.notes)
            return fp
        fp = load_raster_folder(path, label, workers=workers, progress=progress)
    elif path.suffix.lower() in RASTER_SUFFIXES:
        fp = load_raster_folder(path.parent, label, files=[path], workers=1, progress=False)
    elif path.is_file():
        return load_vector(
            path,
            label,
            id_column=id_column,
            labels_column=labels_column,
            layer=layer,
            crs=crs,
            point_size=point_size,
            dissolve_ids=dissolve_ids,
        )
    else:
        raise CsmoeDataError(f"unsupported footprint source {path}: not a file or folder")
    if labels_column is not None:
        fp.table = add_labels(fp.table, labels_column, fp.notes)
    return fp
