"""Footprints from a folder of GeoTIFF patches: one row per file, from its header only.

Each file's footprint is the quadrilateral of its four corners under its geotransform (so rotated
grids are right) in its own CRS; one folder can mix many UTM zones.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import rasterio
import shapely
from rasterio.errors import RasterioIOError

from csmoe_common.progress import progress_bar
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints, finalize_table
from csmoe_data.footprints.options import FOOTPRINT_BAR_MIN
from csmoe_data.geometry import crs_string

__all__ = ["RASTER_SUFFIXES", "iter_rasters", "load_raster_folder", "raster_footprint"]

RASTER_SUFFIXES = (".tif", ".tiff")

# header reads only: do not list sibling files on open (large folders), no aux.xml probing
_GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_PAM_ENABLED": "NO"}


def iter_rasters(folder: Path) -> Iterator[Path]:
    """Yield every ``*.tif``/``*.tiff`` below ``folder`` (recursive, sorted, hidden entries skipped)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(RASTER_SUFFIXES):
                yield Path(dirpath) / name


def _crs_text(crs: Any, cache: dict[str, str]) -> str:
    wkt = crs.to_wkt()
    if wkt not in cache:
        cache[wkt] = crs_string(wkt)
    return cache[wkt]


def raster_footprint(path: str | Path) -> tuple[shapely.Polygon, Any, int, int]:
    """Read one GeoTIFF header: footprint polygon, CRS (rasterio), width, height.

    Raises:
        CsmoeDataError: if the file cannot be opened or has no CRS or no geotransform.
    """
    path = Path(path)
    try:
        with rasterio.Env(**_GDAL_ENV), rasterio.open(path) as ds:
            crs, transform, width, height = ds.crs, ds.transform, ds.width, ds.height
            has_gcps = bool(ds.gcps[0])
    except RasterioIOError as exc:
        raise CsmoeDataError(
            f"cannot read raster {path}: {' '.join(str(exc).split())[:200]}"
        ) from exc
    if crs is None:
        raise CsmoeDataError(f"raster {path} has no CRS; every patch needs a georeferenced header")
    if transform.is_identity and not has_gcps:
        raise CsmoeDataError(f"raster {path} has no geotransform")
    a, b, c, d, e, f = transform[:6]
    corners = [
        (a * col + b * row + c, d * col + e * row + f)
        for col, row in ((0, 0), (width, 0), (width, height), (0, height))
    ]
    return shapely.Polygon(corners), crs, width, height


def _headers(
    paths: list[Path], workers: int, progress: bool | None, what: str
) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    with progress_bar(what, len(paths), "files", progress, min_total=FOOTPRINT_BAR_MIN) as advance:
        if workers <= 1 or len(paths) < 64:
            for p in paths:
                out.append(raster_footprint(p))
                advance(1)
        else:
            # GDAL releases the GIL while it parses headers, so threads overlap the file I/O
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(raster_footprint, paths):
                    out.append(result)
                    advance(1)
    return out


def default_workers() -> int:
    """Threads for header reads: I/O bound, so a few more than the cores."""
    return min(8, (os.cpu_count() or 1) * 2)


def load_raster_folder(
    folder: Path,
    source: str,
    files: Iterable[Path] | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> Footprints:
    """One footprint per GeoTIFF below ``folder``; ``patch_id`` is the file stem.

    Args:
        folder: the folder.
        source: the source as the user gave it.
        files: the rasters (default: :func:`iter_rasters`), or a single file's list.
        workers: threads for header reads (default :func:`default_workers`).
        progress: show a progress bar (None: when many files and stderr is a terminal).

    Returns:
        Footprints with columns ``patch_id``, ``geometry``, ``crs``, ``image_path`` (absolute),
        ``width``, ``height``.

    Raises:
        CsmoeDataError: no rasters, an unreadable raster or one without CRS, or two files with
            the same stem.
    """
    paths = list(files) if files is not None else list(iter_rasters(folder))
    if not paths:
        raise CsmoeDataError(f"no GeoTIFF (*.tif, *.tiff) found in {folder}")
    stems = pd.Series([p.stem for p in paths])
    dup = stems[stems.duplicated(keep=False)]
    if len(dup):
        first = dup.iloc[0]
        where = ", ".join(str(paths[i]) for i in dup.index[dup == first][:2])
        raise CsmoeDataError(
            f"{int(stems.duplicated().sum())} raster(s) share a file stem with another ({where}); "
            "patch ids come from file stems and must be unique"
        )
    headers = _headers(paths, workers or default_workers(), progress, "reading raster headers")
    cache: dict[str, str] = {}
    ids = pd.Series([p.stem for p in paths], dtype=object)
    attrs = pd.DataFrame(
        {
            "image_path": [str(p.resolve()) for p in paths],
            "width": [h[2] for h in headers],
            "height": [h[3] for h in headers],
        }
    )
    crs = [_crs_text(h[1], cache) for h in headers]
    notes: list[str] = []
    if len(set(crs)) > 1:
        notes.append(f"{len(set(crs))} CRSs among the rasters (each footprint keeps its own)")
    table, repaired, dropped = finalize_table(
        ids, [h[0] for h in headers], crs, attrs, "file stem", notes, repair=True
    )
    return Footprints(table=table, source=source, repaired=repaired, dropped=dropped, notes=notes)
