"""The manifest contract that both halves share: column names, the metadata reader, path rules.

The manifest (``data_manifests/README.md``) is the only thing that crosses from the data half to
the model half. This module names its columns once, reads its ``csmoe`` file metadata with
pyarrow alone (no geopandas, no GDAL), so either half can use it, and states once how the imagery
paths of its rows resolve (:func:`imagery_root`, :func:`resolve_imagery_path`): a relative path is
relative to the manifest's folder, or to ``--data-root DIR`` when the manifest was copied or moved
away from its imagery.
"""

from __future__ import annotations

import json
import re
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


#: a URL (``s3://``, ``https://``, ``gs://``, ...): left as written, never joined to a folder
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(value: str | Path) -> bool:
    """Whether ``value`` is a URL (``scheme://...``), which is never joined to a local folder."""
    return bool(_URL.match(str(value)))


def imagery_root(manifest: str | Path, data_root: str | Path | None = None) -> Path:
    """The folder that the relative imagery paths of ``manifest`` resolve against (absolute).

    Args:
        manifest: the manifest file.
        data_root: ``--data-root``: the folder the paths are relative to when the manifest no
            longer lies beside its imagery (``None``: the manifest's own folder).

    Raises:
        CsmoeError: when ``data_root`` is given but is not an existing folder.
    """
    if data_root is None:
        return Path(manifest).expanduser().resolve().parent
    root = Path(data_root).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise CsmoeError(f"--data-root {root} {what}")
    return root.resolve()


def resolve_imagery_path(value: object, root: Path) -> str | None:
    """Resolve one ``s1_path``/``s2_path``/``mask_path`` value of a manifest row.

    Relative paths (a fragment such as ``#row=3`` included) are joined to ``root``
    (:func:`imagery_root`); absolute paths (GDAL's ``/vsis3/...`` among them), ``~/...`` (expanded)
    and URLs (``s3://...``) are not.

    Returns:
        The path to read, or ``None`` for a missing or empty value.
    """
    if value is None or not str(value).strip():
        return None
    text = str(value)
    if is_url(text):
        return text
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else root / path)


def missing_imagery_hint(root: Path, data_root_given: bool) -> str:
    """What to say after "not found" for a relative imagery path resolved against ``root``."""
    if data_root_given:
        return (
            f"relative imagery paths resolve against --data-root {root}; give the folder the "
            "manifest's paths are relative to"
        )
    return (
        f"relative imagery paths resolve against the manifest's folder {root}; if the manifest "
        "was copied or moved away from its imagery, pass --data-root DIR (the folder they are "
        "relative to)"
    )
