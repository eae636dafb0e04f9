"""What a ``--landcover`` / ``--climate`` value names: a raster, tiles, or a GDAL path.

A value is, in this order:

- a GDAL virtual path (``/vsizip/``, ``/vsicurl/``, ``/vsis3/``, ``/vsigs/``, ...) or a URL
  (``s3://``, ``gs://``, ``http(s)://``, ``zip://``, ...): passed to GDAL untouched (rasterio
  turns the URL schemes into GDAL's virtual file systems itself); no local existence check;
- ``sample:<name>``: an embedded sample;
- a quoted glob (``tiles/*.tif``, ``**`` recursive): every match, sorted;
- a folder that is not itself a store (``*.zarr``): every raster below it (recursive, sorted,
  hidden entries skipped);
- a file.

:func:`expand_raster_values` applies this to every value of a repeated option and returns the
distinct paths in order. :func:`source_provenance` records each source file (path, size,
sha256, or for a remote object its size and a sha256 of its pixels).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from csmoe_common.manifest import is_url
from csmoe_data.errors import CsmoeDataError

__all__ = [
    "RASTER_FILE_SUFFIXES",
    "STORE_SUFFIXES",
    "XARRAY_SUFFIXES",
    "expand_raster_values",
    "is_gdal_path",
    "is_xarray_path",
    "iter_raster_files",
    "one_line",
    "source_provenance",
]

#: file suffixes taken as rasters inside a folder or glob
RASTER_FILE_SUFFIXES = (
    ".tif",
    ".tiff",
    ".vrt",
    ".img",
    ".jp2",
    ".nc",
    ".nc4",
    ".cdf",
    ".h5",
    ".hdf",
    ".grd",
    ".asc",
)
#: folders that are one dataset, not a folder of tiles
STORE_SUFFIXES = (".zarr",)
#: suffixes read through xarray (NetCDF, HDF5-based NetCDF 4, Zarr)
XARRAY_SUFFIXES = (".nc", ".nc4", ".cdf", ".zarr")

_GLOB = re.compile(r"[*?\[]")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (GDAL's reasons often span several)."""
    text = " ".join(str(exc).split())
    return text[:limit] or type(exc).__name__


def is_gdal_path(value: str | Path) -> bool:
    """Whether ``value`` is a GDAL virtual path or a URL (not a local file path)."""
    text = str(value)
    return text.startswith("/vsi") or is_url(text)


def is_xarray_path(value: str | Path) -> bool:
    """Whether ``value`` is a NetCDF file or a Zarr store (read through xarray)."""
    text = str(value).rstrip("/")
    return text.lower().endswith(XARRAY_SUFFIXES)


def iter_raster_files(folder: Path) -> Iterator[Path]:
    """Every raster below ``folder``: raster files and ``*.zarr`` stores (not entered).

    Recursive, sorted per folder, hidden entries skipped.
    """
    for dirpath, dirnames, filenames in os.walk(folder):
        stores = sorted(d for d in dirnames if d.lower().endswith(STORE_SUFFIXES))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in stores)
        found = [Path(dirpath) / d for d in stores if not d.startswith(".")]
        found += [
            Path(dirpath) / n
            for n in filenames
            if not n.startswith(".") and n.lower().endswith(RASTER_FILE_SUFFIXES)
        ]
        yield from sorted(found)


def _expand_one(value: str, role: str) -> list[str]:
    from csmoe_data.samples import is_sample, resolve_path

    if is_gdal_path(value):
        return [value]
    if is_sample(value):
        return [str(resolve_path(value))]
    if _GLOB.search(value):
        matches = sorted(glob.glob(os.path.expanduser(value), recursive=True))
        paths = [
            m
            for m in matches
            if (os.path.isfile(m) or m.rstrip("/").lower().endswith(STORE_SUFFIXES))
            and not os.path.basename(m).startswith(".")
        ]
        if not paths:
            raise CsmoeDataError(f"{role}: no file matches {value!r}")
        return [str(Path(p).resolve()) for p in paths]
    path = Path(value).expanduser()
    if not path.exists():
        raise CsmoeDataError(f"{role} not found: {path}")
    if path.is_dir() and not str(path).rstrip("/").lower().endswith(STORE_SUFFIXES):
        files = sorted(str(p.resolve()) for p in iter_raster_files(path))
        if not files:
            suffixes = ", ".join(RASTER_FILE_SUFFIXES + STORE_SUFFIXES)
            raise CsmoeDataError(f"{role}: no raster ({suffixes}) below folder {path}")
        return files
    if not os.access(path, os.R_OK):
        raise CsmoeDataError(f"{role} {path} is not readable (permission denied)")
    return [str(path.resolve())]


def expand_raster_values(values: str | Path | Sequence[str | Path], role: str) -> list[str]:
    """Raster paths named by one or more option values (files, folders, globs, GDAL paths).

    Args:
        values: one value or the values of a repeated option.
        role: words for messages (``land-cover raster``).

    Returns:
        Distinct paths in the order given (folders and globs sorted); local paths are absolute,
        GDAL paths and URLs are returned exactly as given.

    Raises:
        CsmoeDataError: a missing or unreadable path, a folder without rasters, a glob without
            matches, or no value at all.
    """
    items = [values] if isinstance(values, str | Path) else list(values)
    if not items:
        raise CsmoeDataError(f"no {role} given")
    out: list[str] = []
    for item in items:
        out.extend(_expand_one(str(item), role))
    return list(dict.fromkeys(out))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _vrt_sources(path: Path) -> list[Path]:
    """The files a VRT reads (its ``SourceFilename`` entries), resolved like GDAL does."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return []
    out: list[Path] = []
    for node in root.iter("SourceFilename"):
        text = (node.text or "").strip()
        if not text or is_gdal_path(text):
            continue
        relative = node.get("relativeToVRT", "0") == "1"
        p = (path.parent / text) if relative else Path(text)
        out.append(p.resolve())
    return list(dict.fromkeys(out))


_ARCHIVE = re.compile(
    r"^/vsi(zip|tar|gzip|7z|rar)/(?!/?vsi)(.+?\.(zip|tar|tgz|tar\.gz|gz|7z|rar))(/|$)"
)


def _local_archive(path: str) -> Path | None:
    """The local archive file behind a ``/vsizip/``-style path, if it is one."""
    match = _ARCHIVE.match(path)
    if match is None:
        return None
    archive = Path(match.group(2))
    return archive if archive.is_file() else None


def _remote_entry(path: str) -> dict[str, Any]:
    """Size (when GDAL can stat it) and a content checksum of each band of a remote raster."""
    import numpy as np
    import rasterio
    from rasterio.errors import RasterioIOError

    entry: dict[str, Any] = {"path": path, "remote": True}
    try:
        from osgeo import gdal  # pragma: no cover - GDAL's own bindings are optional

        stat = gdal.VSIStatL(path)
        if stat is not None:
            entry["size"] = int(stat.size)
    except ImportError:
        pass
    try:
        with rasterio.open(path) as ds:
            # sha256 of each band's pixels, read block by block (windowed reads release the GIL
            # and stream; the bytes on the wire are not hashed twice)
            digests = []
            for band in ds.indexes:
                digest = hashlib.sha256()
                for _, window in ds.block_windows(band):
                    digest.update(np.ascontiguousarray(ds.read(band, window=window)).tobytes())
                digests.append(digest.hexdigest())
            entry["checksum"] = digests
            entry["checksum_kind"] = "sha256 of each band's pixels, block by block"
    except (RasterioIOError, OSError) as exc:
        entry["checksum_error"] = one_line(exc)
    return entry


def _store_entry(path: Path) -> dict[str, Any]:
    """A directory store (Zarr): size and a sha256 over its files' relative paths and contents."""
    digest = hashlib.sha256()
    size = 0
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        size += f.stat().st_size
        digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(_file_sha256(f)))
    return {"path": str(path), "size": size, "sha256": digest.hexdigest(), "kind": "store"}


def source_provenance(path: str) -> list[dict[str, Any]]:
    """Provenance entries of every file behind one raster path.

    A local file gives ``{path, size, sha256}``; a VRT gives its own entry followed by one per
    file it reads (so changing a tile behind a VRT changes the record); a Zarr store one entry
    hashed over its files; a GDAL path or URL ``{path, remote, size?, checksum}`` with a
    per-band sha256 of the pixels.
    """
    if is_gdal_path(path):
        archive = _local_archive(path)
        if archive is not None:  # /vsizip/, /vsitar/, /vsigzip/ over a local file: hash it
            return [
                {
                    "path": path,
                    "archive": str(archive),
                    "size": archive.stat().st_size,
                    "sha256": _file_sha256(archive),
                }
            ]
        return [_remote_entry(path)]
    p = Path(path)
    if p.is_dir():
        return [_store_entry(p)]
    entries = [{"path": str(p), "size": p.stat().st_size, "sha256": _file_sha256(p)}]
    if p.suffix.lower() == ".vrt":
        for src in _vrt_sources(p):
            if src.is_file():
                entries.append(
                    {
                        "path": str(src),
                        "size": src.stat().st_size,
                        "sha256": _file_sha256(src),
                        "via": str(p),
                    }
                )
    return entries
