"""Footprints from an SSL4EO-S12 v1.1 root: one row per location, paths into its zipped Zarr stores.

Layout (DLR-MF-DAS/SSL4EO-S12-v1.1 README, ``zarr_dataset.py``; ``data_manifests/README.md``):
``<root>/[<split>/]<modality>/<name>.zarr.zip`` with modality folders ``S2L2A``, ``S2L1C`` and
``S1GRD`` (``S2RGB`` and others are ignored) and optional split folders (``train``, ``val``).
The stores of one name in different modality folders hold the same locations in the same order;
each holds ``sample`` locations x ``time`` seasons. Read from each Sentinel-2 store (S2L2A, else
S2L1C; S1GRD when there is no S2 at all), without unpacking it:

* ``sample`` (the location id, e.g. ``0080717``) -> ``patch_id``;
* ``crs`` (EPSG code per location) and ``x_``/``y_`` (the pixel-centre coordinates of each column
  and row, 10 m apart) -> the footprint: the square from the first to the last pixel centre,
  widened by half a pixel on each side, in that UTM zone;
* ``time_`` -> ``acquisition_dates`` (one ISO date per season); the number of seasons -> ``seasons``;
* ``center_lat``/``center_lon`` -> passed through.

Paths: ``s2_path`` = ``<S2 store>#sample=<i>``, ``s1_path`` = ``<S1GRD store>#sample=<j>`` where
``j`` is the position of the same location id in the S1 store (null when the S1 store or the
location is missing), with ``s2_level`` saying which Sentinel-2 product (``L2A``/``L1C``) the row
uses. A split folder name passes through as ``ssl4eo_split`` (``split`` is csmoe's own column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from csmoe_common.progress import progress_bar
from csmoe_common.store_path import StorePath
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints, finalize_table

__all__ = ["MODALITIES", "find_stores", "is_ssl4eo_root", "load_ssl4eo"]

#: modality folders read, Sentinel-2 in order of preference
S2_MODALITIES: tuple[str, ...] = ("S2L2A", "S2L1C")
S1_MODALITY = "S1GRD"
MODALITIES: tuple[str, ...] = (*S2_MODALITIES, S1_MODALITY)
_SUFFIX = ".zarr.zip"


def _modality_dirs(folder: Path) -> dict[str, Path]:
    return {
        m: folder / m
        for m in MODALITIES
        if (folder / m).is_dir() and any(p.name.endswith(_SUFFIX) for p in (folder / m).iterdir())
    }


def find_stores(root: Path) -> list[tuple[str | None, dict[str, Path]]]:
    """``[(split or None, {modality: folder})]`` of an SSL4EO-S12 root (empty when it is not one)."""
    here = _modality_dirs(root)
    if here:
        return [(None, here)]
    out: list[tuple[str | None, dict[str, Path]]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        dirs = _modality_dirs(sub)
        if dirs:
            out.append((sub.name, dirs))
    return out


def is_ssl4eo_root(root: Path) -> bool:
    """Whether ``root`` holds SSL4EO-S12 modality folders of ``*.zarr.zip`` (directly or per split)."""
    try:
        return root.is_dir() and bool(find_stores(root))
    except OSError:
        return False


def _open(path: Path) -> Any:
    import xarray as xr
    from zarr.storage import ZipStore

    try:
        return xr.open_zarr(ZipStore(str(path), mode="r"), consolidated=None)
    except Exception as exc:  # zipfile/zarr/json raise several types for damaged stores
        raise _Damaged(f"{path.name}: {' '.join(str(exc).split())[:160]}") from exc


class _Damaged(Exception):
    """A store that cannot be opened or lacks the coordinates (skipped, counted)."""


def _store_rows(path: Path) -> dict[str, Any]:
    ds = _open(path)
    try:
        needed = ("crs", "x_", "y_")
        missing = [v for v in needed if v not in ds.variables]
        if missing or "sample" not in ds.dims:
            raise _Damaged(f"{path.name}: no {', '.join(missing) or 'sample dimension'}")
        ids = [str(v) for v in ds["sample"].values]
        crs = np.asarray(ds["crs"].values).astype(np.int64)
        xs = np.asarray(ds["x_"].values, dtype=np.float64)
        ys = np.asarray(ds["y_"].values, dtype=np.float64)
        seasons = int(ds.sizes.get("time", 1))
        times = (
            np.asarray(ds["time_"].values, dtype="datetime64[s]")
            if "time_" in ds.variables
            else None
        )
        lat = np.asarray(ds["center_lat"].values) if "center_lat" in ds.variables else None
        lon = np.asarray(ds["center_lon"].values) if "center_lon" in ds.variables else None
    except _Damaged:
        raise
    except Exception as exc:  # a truncated chunk of a coordinate
        raise _Damaged(f"{path.name}: {' '.join(str(exc).split())[:160]}") from exc
    finally:
        ds.close()
    return {
        "ids": ids,
        "crs": crs,
        "x": xs,
        "y": ys,
        "seasons": seasons,
        "times": times,
        "lat": lat,
        "lon": lon,
    }


def _square(x: np.ndarray, y: np.ndarray) -> shapely.Polygon:
    dx = abs(float(x[1] - x[0])) if len(x) > 1 else 10.0
    dy = abs(float(y[1] - y[0])) if len(y) > 1 else 10.0
    return shapely.box(
        float(x.min()) - dx / 2,
        float(y.min()) - dy / 2,
        float(x.max()) + dx / 2,
        float(y.max()) + dy / 2,
    )


def load_ssl4eo(root: Path, source: str, progress: bool | None = None) -> Footprints:
    """Load an SSL4EO-S12 v1.1 root (see the module docstring).

    Args:
        root: the root folder (modality folders, or split folders holding them).
        source: the source as the user gave it.
        progress: show a progress bar over the stores (None: when many and on a terminal).

    Returns:
        Footprints with ``patch_id`` (location id), ``s2_path``, ``s1_path``, ``s2_level``,
        ``seasons``, ``acquisition_dates``, ``center_lat``, ``center_lon`` and ``ssl4eo_split``
        (when the root has split folders).

    Raises:
        CsmoeDataError: not an SSL4EO-S12 root, no readable store, or a location id that repeats.
    """
    layout = find_stores(root)
    if not layout:
        raise CsmoeDataError(
            f"{root} is not an SSL4EO-S12 v1.1 root (no {', '.join(MODALITIES)} folder of *{_SUFFIX})"
        )
    jobs: list[tuple[str | None, str, Path, Path | None]] = []
    for split, dirs in layout:
        primary = next((m for m in (*S2_MODALITIES, S1_MODALITY) if m in dirs), None)
        assert primary is not None  # find_stores only returns folders with a modality
        for store in sorted(p for p in dirs[primary].iterdir() if p.name.endswith(_SUFFIX)):
            partner = None
            if primary != S1_MODALITY and S1_MODALITY in dirs:
                candidate = dirs[S1_MODALITY] / store.name
                partner = candidate if candidate.is_file() else None
            jobs.append((split, primary, store, partner))
    notes: list[str] = []
    ids: list[str] = []
    geoms: list[shapely.Polygon] = []
    crs: list[str] = []
    records: list[dict[str, Any]] = []
    damaged: list[str] = []
    unpaired = 0
    with progress_bar(
        "reading SSL4EO-S12 stores", len(jobs), "stores", progress, min_total=50
    ) as advance:
        for split, primary, store, partner in jobs:
            try:
                info = _store_rows(store)
            except _Damaged as exc:
                damaged.append(str(exc))
                advance(1)
                continue
            s1_index: dict[str, int] = {}
            if partner is not None:
                try:
                    s1_index = {sid: k for k, sid in enumerate(_store_rows(partner)["ids"])}
                except _Damaged as exc:
                    damaged.append(str(exc))
            for k, sid in enumerate(info["ids"]):
                ids.append(sid)
                geoms.append(_square(info["x"][k], info["y"][k]))
                crs.append(f"EPSG:{int(info['crs'][k])}")
                rec: dict[str, Any] = {}
                if primary == S1_MODALITY:
                    rec["s2_path"], rec["s2_level"] = None, None
                    rec["s1_path"] = str(StorePath(str(store.resolve()), sample=k))
                else:
                    rec["s2_path"] = str(StorePath(str(store.resolve()), sample=k))
                    rec["s2_level"] = primary[2:]
                    j = s1_index.get(sid)
                    if j is None:
                        unpaired += 1
                    rec["s1_path"] = (
                        None if j is None else str(StorePath(str(partner.resolve()), sample=j))  # type: ignore[union-attr]
                    )
                rec["seasons"] = info["seasons"]
                times = info["times"]
                rec["acquisition_dates"] = (
                    None if times is None else [str(t)[:10] for t in times[k]]
                )
                rec["center_lat"] = None if info["lat"] is None else float(info["lat"][k])
                rec["center_lon"] = None if info["lon"] is None else float(info["lon"][k])
                if split is not None:
                    rec["ssl4eo_split"] = split
                records.append(rec)
            advance(1)
    if damaged:
        notes.append(f"{len(damaged)} unreadable store(s) skipped (e.g. {damaged[0]})")
    if not records:
        raise CsmoeDataError(
            f"no readable SSL4EO-S12 store in {root}" + (f" ({damaged[0]})" if damaged else "")
        )
    if unpaired:
        notes.append(f"{unpaired} location(s) without an S1GRD acquisition (s1_path null)")
    notes.append(f"{len(records)} locations from {len(jobs) - len(damaged)} stores")
    attrs = pd.DataFrame(records)
    table, repaired, dropped = finalize_table(
        pd.Series(ids, dtype=object), geoms, crs, attrs, "sample", notes, repair=False
    )
    return Footprints(
        table=table, source=source, repaired=repaired, dropped=dropped + len(damaged), notes=notes
    )
