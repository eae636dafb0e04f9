"""Read and write csmoe manifests: GeoParquet 1.1 files with a ``csmoe`` metadata entry.

A manifest is one row per footprint, ``geometry`` in EPSG:4326, a ``bbox`` covering column
(struct ``xmin``/``ymin``/``xmax``/``ymax``), zstd compression. The Parquet schema metadata holds
the standard ``geo`` entry and, beside it, ``csmoe``: a JSON object with the tool version, the
inputs (path, sha256, CRS, resolution), the legends, the parameters and, after sampling, a
``sampling`` entry. The schema is documented in ``data_manifests/README.md``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyarrow as pa
import pyarrow.parquet as pq

from csmoe_common.atomic import atomic_output
from csmoe_common.manifest import BBOX, GEOPARQUET_VERSION, METADATA_KEY, decode_metadata
from csmoe_data.errors import CsmoeDataError

__all__ = [
    "GEOPARQUET_VERSION",
    "METADATA_KEY",
    "file_sha256",
    "manifest_table",
    "path_sha256",
    "read_manifest",
    "read_manifest_metadata",
    "write_manifest",
]


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file (streamed, so memory stays small).

    Raises:
        CsmoeDataError: if the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk_size):
                digest.update(block)
    except OSError as exc:
        raise CsmoeDataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def path_sha256(path: str | Path) -> str:
    """Return a sha256 of a file, or of a folder's files (relative names and contents, sorted).

    Raises:
        CsmoeDataError: if a file cannot be read.
    """
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f.relative_to(path).as_posix().encode())
        digest.update(file_sha256(f).encode())
    return digest.hexdigest()


def _to_json(metadata: dict[str, Any]) -> bytes:
    try:
        return json.dumps(metadata, sort_keys=False, default=_json_default).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise CsmoeDataError(f"manifest metadata is not JSON-serialisable: {exc}") from exc


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in metadata built from rasters
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def manifest_table(gdf: gpd.GeoDataFrame, metadata: dict[str, Any]) -> pa.Table:
    """Convert a GeoDataFrame to the Arrow table of a manifest (geo + csmoe metadata).

    Raises:
        CsmoeDataError: if ``gdf`` has no geometry or no CRS, or metadata is not JSON.
    """
    from geopandas.io.arrow import _geopandas_to_arrow

    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name is None:
        raise CsmoeDataError("a manifest needs a GeoDataFrame with a geometry column")
    if gdf.crs is None:
        raise CsmoeDataError("the manifest's geometry has no CRS; expected EPSG:4326")
    if gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    if BBOX in gdf.columns:  # regenerated from the geometry below
        gdf = gdf.drop(columns=BBOX)
    table = _geopandas_to_arrow(
        gdf.reset_index(drop=True),
        index=False,
        geometry_encoding="WKB",
        schema_version=GEOPARQUET_VERSION,
        write_covering_bbox=True,
    )
    meta = dict(table.schema.metadata or {})
    # the pandas entry is kept: it restores nullable dtypes such as Int32 ``lc_major`` on read
    meta[METADATA_KEY] = _to_json(metadata)
    return table.replace_schema_metadata(meta)


def write_manifest(
    gdf: gpd.GeoDataFrame,
    path: str | Path,
    metadata: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write ``gdf`` as a GeoParquet 1.1 manifest with csmoe metadata, atomically.

    Args:
        gdf: rows to write; geometry is converted to EPSG:4326 if it is in another CRS.
        path: target ``.parquet`` file.
        metadata: JSON-serialisable dict stored under the ``csmoe`` schema-metadata key.
        overwrite: replace an existing file.

    Returns:
        The written path.

    Raises:
        CsmoeDataError: if the file exists and ``overwrite`` is false, the folder cannot be
            created, the frame has no geometry/CRS, or metadata is not JSON-serialisable.
    """
    table = manifest_table(gdf, metadata)
    with atomic_output(path, overwrite=overwrite) as tmp:
        try:
            pq.write_table(table, tmp, compression="zstd")
        except OSError as exc:
            raise CsmoeDataError(f"cannot write {path}: {exc}") from exc
    return Path(path)


def read_manifest_metadata(path: str | Path) -> dict[str, Any]:
    """Return only the decoded ``csmoe`` metadata of a manifest (reads the footer only).

    :func:`csmoe_common.manifest.read_manifest_metadata` with ``sample:<name>`` resolved.

    Raises:
        CsmoeError: if the file is missing, not Parquet, or its csmoe metadata is corrupt.
    """
    from csmoe_common.manifest import read_manifest_metadata as read_metadata
    from csmoe_data.samples import resolve_path

    return read_metadata(resolve_path(path))


def read_manifest(path: str | Path) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Read a manifest written by :func:`write_manifest` (or any GeoParquet file).

    Args:
        path: the ``.parquet`` file (``sample:<name>`` is resolved too).

    Returns:
        ``(gdf, metadata)``: the rows (the ``bbox`` covering column dropped, since it is
        derived from the geometry) and the decoded ``csmoe`` metadata ({} if absent).

    Raises:
        CsmoeError: if the file is missing, not (Geo)Parquet, or its metadata is corrupt.
    """
    from csmoe_common.manifest import check_manifest_file
    from csmoe_data.samples import resolve_path

    path = check_manifest_file(resolve_path(path))
    try:
        pf = pq.ParquetFile(path)
        schema_meta = pf.schema_arrow.metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise CsmoeDataError(f"{path} is not a readable Parquet file: {exc}") from exc
    if b"geo" not in schema_meta:
        raise CsmoeDataError(f"{path} is Parquet but not GeoParquet (no 'geo' metadata)")
    metadata = decode_metadata(path, schema_meta)
    try:
        gdf = gpd.read_parquet(path)
    except (ValueError, pa.ArrowInvalid, OSError) as exc:
        raise CsmoeDataError(f"{path} is not a readable GeoParquet file: {exc}") from exc
    except TypeError as exc:  # a column whose data contradicts the file's pandas metadata
        raise CsmoeDataError(
            f"{path} has a column of another type than it declares: {exc}"
        ) from exc
    if BBOX in gdf.columns:
        gdf = gdf.drop(columns=BBOX)
    return gdf, metadata
