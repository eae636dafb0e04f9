"""Footprints from a BigEarthNet archive: one row per Sentinel-2 patch, paired with its S1 patch.

Layouts recognised (``root`` is what the user passes):

* ``root/S2/<patch>/<patch>_B02.tif ...`` and ``root/S1/<patch>/<patch>_VV.tif ...`` (the
  embedded sample), or the official v1 folder names ``BigEarthNet-v1.0`` and
  ``BigEarthNet-S1-v1.0``; ``S1`` is optional;
* a root holding the S2 patch folders themselves;
* BigEarthNet v2 (reBEN): ``BigEarthNet-S2/<tile>/<patch>/`` and ``BigEarthNet-S1/<tile>/<patch>/``
  with ``metadata.parquet`` (``patch_id``, ``labels``, ``s1_name``, ``split``, ``country``) beside
  them; patch folders one level below a tile folder are found in every layout.

Each v1 patch folder has ``<patch>_labels_metadata.json``: the S2 one holds ``labels`` (CORINE
names), ``coordinates`` (``ulx``/``uly``/``lrx``/``lry``), ``projection`` (WKT), ``tile_source`` and
``acquisition_date``; the S1 one names its ``corresponding_s2_patch``. The footprint comes from the
JSON corners and projection where present (no GeoTIFF is opened), else from the B02 header.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from csmoe_common.progress import progress_bar
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints, finalize_table
from csmoe_data.footprints.options import FOOTPRINT_BAR_MIN
from csmoe_data.footprints.rasters import default_workers, raster_footprint
from csmoe_data.geometry import crs_string
from csmoe_data.labels import parse_labels, to_labels19

__all__ = ["find_layout", "is_bigearthnet_root", "load_bigearthnet"]

_S2_ROOTS = ("S2", "BigEarthNet-S2", "BigEarthNet-v1.0", "BigEarthNet-v2.0-S2")
_S1_ROOTS = ("S1", "BigEarthNet-S1", "BigEarthNet-S1-v1.0", "BigEarthNet-v2.0-S1")
_TILE_RE = re.compile(r"_T(\d{2}[A-Z]{3})_")
_JSON_SUFFIX = "_labels_metadata.json"


def _is_patch(folder: str, name: str, band: str) -> bool:
    return os.path.isfile(os.path.join(folder, f"{name}_{band}.tif"))


def _patch_folders(root: Path, band: str) -> list[str]:
    """Absolute patch folders (``<name>/<name>_<band>.tif``) below ``root`` or one tile folder down.

    Plain strings from one ``realpath`` of the root: resolving each of 500k folders would cost more
    than reading their metadata.
    """
    base = os.path.realpath(root)
    found: list[str] = []
    try:
        entries = sorted(
            (e for e in os.scandir(base) if e.is_dir() and not e.name.startswith(".")),
            key=lambda e: e.name,
        )
    except OSError as exc:
        raise CsmoeDataError(f"cannot list {root}: {exc.strerror or exc}") from exc
    for entry in entries:
        if _is_patch(entry.path, entry.name, band):
            found.append(entry.path)
            continue
        # v2: tile folders hold the patch folders
        with os.scandir(entry.path) as sub:
            inner = sorted(
                (e for e in sub if e.is_dir() and not e.name.startswith(".")), key=lambda e: e.name
            )
        found.extend(e.path for e in inner if _is_patch(e.path, e.name, band))
    return found


def _first_patch_child(root: Path, band: str, limit: int = 20) -> bool:
    try:
        with os.scandir(root) as it:
            for i, entry in enumerate(it):
                if i >= limit:
                    break
                if entry.is_dir() and _is_patch(entry.path, entry.name, band):
                    return True
    except OSError:
        return False
    return False


def find_layout(root: Path) -> tuple[Path, Path | None, Path | None] | None:
    """``(s2_root, s1_root or None, metadata.parquet or None)`` if ``root`` is a BigEarthNet root."""
    for name in _S2_ROOTS:
        if (root / name).is_dir():
            s2 = root / name
            break
    else:
        if not _first_patch_child(root, "B02"):
            return None
        s2 = root
    s1 = next((root / n for n in _S1_ROOTS if (root / n).is_dir()), None)
    meta = root / "metadata.parquet"
    return s2, s1, (meta if meta.is_file() else None)


def is_bigearthnet_root(root: Path) -> bool:
    """Whether ``root`` looks like a BigEarthNet archive (see the module docstring)."""
    layout = find_layout(root)
    if layout is None:
        return False
    s2 = layout[0]
    return s2 == root or _first_patch_child(s2, "B02") or bool(_patch_folders(s2, "B02")[:1])


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CsmoeDataError(
            f"cannot read BigEarthNet metadata {path}: {' '.join(str(exc).split())[:200]}"
        ) from exc
    if not isinstance(data, dict):
        raise CsmoeDataError(f"BigEarthNet metadata {path} is not a JSON object")
    return data


def _s2_record(folder: str) -> dict[str, Any]:
    name = os.path.basename(folder)
    meta = _read_json(os.path.join(folder, f"{name}{_JSON_SUFFIX}")) or {}
    rec: dict[str, Any] = {"patch_id": name, "s2_path": folder}
    coords = meta.get("coordinates")
    proj = meta.get("projection")
    keys = ("ulx", "uly", "lrx", "lry")
    if isinstance(coords, dict) and all(k in coords for k in keys) and proj:
        ulx, uly, lrx, lry = (float(coords[k]) for k in keys)
        rec["bounds"] = (min(ulx, lrx), min(uly, lry), max(ulx, lrx), max(uly, lry))
        rec["crs_src"] = str(proj)
    else:
        geom, crs, _, _ = raster_footprint(os.path.join(folder, f"{name}_B02.tif"))
        rec["geom"] = geom
        rec["crs_src"] = crs.to_wkt()
    rec["labels"] = parse_labels(meta["labels"]) if "labels" in meta else None
    tile_match = _TILE_RE.search(str(meta.get("tile_source", "")))
    rec["tile"] = tile_match.group(1) if tile_match else None
    date = meta.get("acquisition_date")
    rec["acquisition_date"] = str(date).replace(" ", "T") if date else None
    return rec


def _s1_record(folder: str) -> dict[str, Any]:
    name = os.path.basename(folder)
    meta = _read_json(os.path.join(folder, f"{name}{_JSON_SUFFIX}")) or {}
    return {
        "s1_patch_id": name,
        "s1_path": folder,
        "s2_name": meta.get("corresponding_s2_patch"),
        "s1_labels": parse_labels(meta["labels"]) if "labels" in meta else None,
        "s1_acquisition_time": meta.get("acquisition_time"),
    }


def _map(func: Any, items: list[str], workers: int, advance: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if workers <= 1 or len(items) < 64:
        for item in items:
            out.append(func(item))
            advance()
        return out
    # JSON and header reads are I/O bound; threads overlap them
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for rec in pool.map(func, items):
            out.append(rec)
            advance()
    return out


def _read_v2_metadata(path: Path) -> pd.DataFrame:
    try:
        meta = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for bad files
        raise CsmoeDataError(f"cannot read {path}: {' '.join(str(exc).split())[:200]}") from exc
    if "patch_id" not in meta.columns:
        raise CsmoeDataError(f"{path} has no 'patch_id' column; not a BigEarthNet v2 metadata file")
    return meta.drop_duplicates("patch_id").set_index("patch_id")


def load_bigearthnet(
    root: Path, source: str, workers: int | None = None, progress: bool | None = None
) -> Footprints:
    """Load a BigEarthNet archive: one row per S2 patch, S1 pairs, labels and 19-class labels.

    Args:
        root: the archive root (see the module docstring for the layouts).
        source: the source as the user gave it.
        workers: threads for metadata and header reads (default: a few per core).
        progress: show a progress bar (None: when many patches and stderr is a terminal).

    Returns:
        Footprints with ``patch_id`` (S2 patch name), ``geometry`` (the patch square in its UTM
        zone), ``crs``, ``s2_path`` and ``s1_path`` (absolute folders; None where no S1 patch
        names this S2 patch), ``s1_patch_id``, ``labels`` (CORINE names as given), ``labels19``
        (BigEarthNet 19-class nomenclature), ``tile`` and ``acquisition_date`` (ISO text).

    Raises:
        CsmoeDataError: if no S2 patch is found, or a metadata file or B02 header is unreadable.
    """
    layout = find_layout(root)
    if layout is None:
        raise CsmoeDataError(
            f"{root} is not a BigEarthNet root (no S2/ folder and no <patch>/<patch>_B02.tif)"
        )
    s2_root, s1_root, meta_path = layout
    s2_dirs = _patch_folders(s2_root, "B02")
    if not s2_dirs:
        raise CsmoeDataError(
            f"no Sentinel-2 patch folder (<patch>/<patch>_B02.tif) found in {s2_root}"
        )
    s1_dirs = _patch_folders(s1_root, "VV") if s1_root is not None else []
    workers = workers or default_workers()
    notes: list[str] = []
    total = len(s2_dirs) + len(s1_dirs)
    with progress_bar(
        "reading BigEarthNet patches", total, "patches", progress, min_total=FOOTPRINT_BAR_MIN
    ) as advance:
        s2 = _map(_s2_record, s2_dirs, workers, advance)
        s1 = _map(_s1_record, s1_dirs, workers, advance)

    # footprints: vectorised boxes from the JSON corners, header polygons otherwise
    geoms = np.empty(len(s2), dtype=object)
    with_bounds = [i for i, r in enumerate(s2) if "bounds" in r]
    if with_bounds:
        b = np.array([s2[i]["bounds"] for i in with_bounds], dtype=float)
        geoms[with_bounds] = shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])
    for i, r in enumerate(s2):
        if "geom" in r:
            geoms[i] = r["geom"]
    crs_cache: dict[str, str] = {}
    crs_values = []
    for r in s2:
        text = r["crs_src"]
        if text not in crs_cache:
            crs_cache[text] = crs_string(text)
        crs_values.append(crs_cache[text])

    ids_list = [r["patch_id"] for r in s2]
    labels_of: dict[str, list[str] | None] = {r["patch_id"]: r["labels"] for r in s2}
    s1_path_of: dict[str, str] = {}
    s1_id_of: dict[str, str] = {}

    # S1 pairing: the S1 JSON names its S2 patch (v1); v2 lists s1_name in metadata.parquet
    s1_by_name = {r["s1_patch_id"]: r for r in s1}
    unmatched = 0
    for r in s1:
        target = r["s2_name"]
        if target is None:
            continue
        if target in labels_of:
            s1_path_of[target] = r["s1_path"]
            s1_id_of[target] = r["s1_patch_id"]
            if labels_of[target] is None and r["s1_labels"] is not None:
                labels_of[target] = r["s1_labels"]
        else:
            unmatched += 1
    extra: dict[str, list[Any]] = {}
    if meta_path is not None:
        meta = _read_v2_metadata(meta_path)
        known = set(meta.index)
        for pid in ids_list:
            if pid not in known:
                continue
            if "s1_name" in meta.columns and pid not in s1_path_of:
                rec = s1_by_name.get(str(meta.at[pid, "s1_name"]))
                if rec is not None:
                    s1_path_of[pid] = rec["s1_path"]
                    s1_id_of[pid] = rec["s1_patch_id"]
            if "labels" in meta.columns and labels_of[pid] is None:
                labels_of[pid] = parse_labels(meta.at[pid, "labels"])
        # the archive's own split and country pass through (ben_ prefix: 'split' is csmoe's)
        for col, new in (("split", "ben_split"), ("country", "country")):
            if col in meta.columns:
                values = meta[col].to_dict()
                extra[new] = [values.get(pid) if pid in known else None for pid in ids_list]
        notes.append(f"BigEarthNet v2 metadata read from {meta_path.name}")
    if unmatched:
        notes.append(f"{unmatched} S1 patch(es) name an S2 patch that is not in the archive")
    if s1_dirs:
        notes.append(f"{len(s1_path_of)} of {len(ids_list)} S2 patches paired with an S1 patch")
    missing_labels = sum(1 for v in labels_of.values() if v is None)
    if missing_labels:
        notes.append(f"{missing_labels} patch(es) without labels")
    labels = [labels_of[pid] or [] for pid in ids_list]
    frame = pd.DataFrame(
        {
            "s2_path": pd.Series([r["s2_path"] for r in s2], dtype=object),
            "s1_path": pd.Series([s1_path_of.get(pid) for pid in ids_list], dtype=object),
            "s1_patch_id": pd.Series([s1_id_of.get(pid) for pid in ids_list], dtype=object),
            "labels": pd.Series(labels, dtype=object),
            "labels19": pd.Series([to_labels19(lab) for lab in labels], dtype=object),
            "tile": pd.Series([r["tile"] for r in s2], dtype=object),
            "acquisition_date": pd.Series([r["acquisition_date"] for r in s2], dtype=object),
        }
    )
    for col, values in extra.items():
        frame[col] = pd.Series(values, dtype=object)
    ids = pd.Series(ids_list, dtype=object)
    table, repaired, dropped = finalize_table(
        ids, geoms, crs_values, frame, "S2 patch name", notes, repair=False
    )
    return Footprints(table=table, source=source, repaired=repaired, dropped=dropped, notes=notes)
