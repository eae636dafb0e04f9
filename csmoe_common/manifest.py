"""The manifest contract that both halves share: column names and the metadata reader.

The manifest (``data_manifests/README.md``) is the only thing that crosses from the data half to
the model half. This module names its columns once and reads its ``csmoe`` file metadata with
pyarrow alone (no geopandas, no GDAL), so either half can use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from csmoe_common.errors import CsmoeError

#: key of the csmoe JSON document in the Parquet file metadata
METADATA_KEY = b"csmoe"
#: GeoParquet version written
GEOPARQUET_VERSION = "1.1.0"

PATCH_ID = "patch_id"
GEOMETRY = "geometry"
BBOX = "bbox"
CRS = "crs"
S1_PATH = "s1_path"
S2_PATH = "s2_path"
MASK_PATH = "mask_path"
LABELS = "labels"
LABELS19 = "labels19"
SPLIT = "split"
STRATUM = "stratum"

#: prefix of the land-cover fraction columns (``lc_<code>``) and their summaries
LANDCOVER_PREFIX = "lc_"
LC_VALID_FRAC = "lc_valid_frac"
LC_MAJOR = "lc_major"
LC_ENTROPY = "lc_entropy"
#: prefix of the Köppen-Geiger fraction columns (``kg_<symbol>``) and their summaries
CLIMATE_PREFIX = "kg_"
KG_VALID_FRAC = "kg_valid_frac"
KG_MAJOR = "kg_major"

#: columns a prefix shares with the fractions but that are not class fractions
SUMMARY_COLUMNS: frozenset[str] = frozenset(
    {LC_VALID_FRAC, LC_MAJOR, LC_ENTROPY, KG_VALID_FRAC, KG_MAJOR}
)


def fraction_columns(names: list[str], prefix: str) -> list[str]:
    """The class-fraction columns among ``names`` with ``prefix`` (``lc_`` or ``kg_``), in order."""
    return [n for n in names if n.startswith(prefix) and n not in SUMMARY_COLUMNS]


def decode_metadata(path: str | Path, schema_meta: dict[bytes, bytes] | None) -> dict[str, Any]:
    """Decode the ``csmoe`` JSON document of a Parquet schema's metadata ({} when absent).

    Raises:
        CsmoeError: if it is not valid JSON or not a JSON object.
    """
    raw = (schema_meta or {}).get(METADATA_KEY)
    if raw is None:
        return {}
    try:
        out = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CsmoeError(f"{path}: the csmoe metadata is not valid JSON ({exc})") from None
    if not isinstance(out, dict):
        raise CsmoeError(f"{path}: the csmoe metadata is not a JSON object")
    return out


def check_manifest_file(path: str | Path) -> Path:
    """Return ``path`` as an expanded path after checking it names an existing file.

    Raises:
        CsmoeError: if it is missing or a folder.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CsmoeError(f"manifest not found: {path}")
    if path.is_dir():
        raise CsmoeError(f"{path} is a directory, not a manifest file")
    return path


def read_schema(path: str | Path) -> Any:
    """Read a manifest's Arrow schema (the footer only).

    Raises:
        CsmoeError: if the file is missing or not Parquet.
    """
    import pyarrow.parquet as pq

    path = check_manifest_file(path)
    try:
        return pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for files that are not Parquet
        raise CsmoeError(f"{path} is not a readable Parquet file: {exc}") from None


def read_manifest_metadata(path: str | Path) -> dict[str, Any]:
    """Return the decoded ``csmoe`` metadata of a manifest, reading only its footer.

    Raises:
        CsmoeError: if the file is missing, not Parquet, or its csmoe metadata is corrupt.
    """
    schema = read_schema(path)
    return decode_metadata(path, schema.metadata)
