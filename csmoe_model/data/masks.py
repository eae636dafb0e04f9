"""Segmentation masks cached like imagery: one class-index array per manifest row, decoded once.

A manifest with a ``mask_path`` column names one label raster per patch on the patch's Sentinel-2
grid (BigEarthNet v2.0 reference maps, or the masks ``csmoe-data build-manifest --masks ...``
writes). The legend maps raster values to classes, in this order of precedence:

1. ``--classes FILE``: JSON ``{"<value>": "<name>"}`` (or ``{"<value>": {"name": ...}}``) or CSV
   ``value,name``;
2. the manifest metadata: ``masks.legend`` (written by the data half), else the land-cover legend
   ``legends.landcover`` (masks cut from the land-cover raster carry its values);
3. the sorted distinct values found in the masks.

Layout of ``<cache_dir>/masks-<key>/``: ``masks.npy`` int16 (N, S, S) class indices (row ``i`` =
manifest row ``i``, ``S`` = the imagery cache's 10 m size; -1 = ignored: the raster's nodata, the
``ignore_value``, values outside the legend, rows without a mask) and ``meta.json`` (classes,
values, counts of ignored and unknown pixels). ``<key>`` hashes the imagery cache key, the mask
paths with their sizes and mtimes, the legend and the ignore value. A mask of another size than
``S`` is resampled with nearest neighbour. Building happens in a temporary folder renamed into
place; rasterio is imported inside the building function only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csmoe_common.atomic import naming, replace_dir, reserve_space, write_text
from csmoe_common.manifest import (
    MASK_PATH,
    imagery_root,
    missing_imagery_hint,
    read_manifest_metadata,
    read_schema,
    resolve_imagery_path,
)
from csmoe_model.errors import CsmoeError

__all__ = [
    "IGNORE",
    "MaskCache",
    "MaskLegend",
    "open_mask_cache",
    "read_legend_file",
    "resolve_legend",
]

#: the class index of pixels that are not evaluated
IGNORE = -1
MASK_CACHE_VERSION = 1
#: marks raw pixels without a value while the cache is built
_NONE = int(np.iinfo(np.int32).min)


@dataclass(frozen=True)
class MaskLegend:
    """Raster values and their class names, in class-index order.

    Attributes:
        values: raster value of each class.
        names: name of each class.
        source: where the legend came from (file, manifest metadata, data).
    """

    values: tuple[int, ...]
    names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.values)

    def lookup(self, raw: np.ndarray) -> np.ndarray:
        """Class indices (int16, -1 where the value is not in the legend) of raw raster values."""
        vals = np.asarray(self.values, dtype=np.int64)
        order = np.argsort(vals)
        sorted_vals = vals[order]
        flat = raw.astype(np.int64).ravel()
        pos = np.clip(np.searchsorted(sorted_vals, flat), 0, len(vals) - 1)
        hit = sorted_vals[pos] == flat
        out = np.where(hit, order[pos], IGNORE).astype(np.int16)
        return out.reshape(raw.shape)


def read_legend_file(path: str | Path) -> MaskLegend:
    """Read ``--classes FILE`` (JSON mapping or CSV ``value,name``).

    Raises:
        CsmoeError: unreadable file, a non-integer value or no class.
    """
    path = Path(path)
    if not path.is_file():
        raise CsmoeError(f"classes file not found: {path}")
    items: list[tuple[int, str]] = []
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise CsmoeError(f"{path}: expected a JSON object {{value: name}}")
            for k, v in data.items():
                name = v.get("name") if isinstance(v, dict) else v
                items.append((int(k), str(name)))
        else:
            with open(path, newline="", encoding="utf-8") as fh:
                for row in csv.reader(fh):
                    if not row or not row[0].strip() or row[0].strip().startswith("#"):
                        continue
                    if row[0].strip().lower() in ("value", "code"):
                        continue  # a header line
                    items.append((int(row[0]), row[1].strip() if len(row) > 1 else row[0].strip()))
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CsmoeError(f"cannot read the classes file {path}: {exc}") from None
    if not items:
        raise CsmoeError(f"the classes file {path} names no class")
    if len({v for v, _ in items}) != len(items):
        raise CsmoeError(f"the classes file {path} names a value twice")
    items.sort()
    return MaskLegend(tuple(v for v, _ in items), tuple(n for _, n in items), str(path))


def _legend_from_metadata(meta: dict[str, Any]) -> MaskLegend | None:
    for where, legend in (
        ("masks.legend", (meta.get("masks") or {}).get("legend")),
        ("legends.landcover", (meta.get("legends") or {}).get("landcover")),
    ):
        if isinstance(legend, dict) and isinstance(legend.get("classes"), list):
            items = []
            for c in legend["classes"]:
                try:
                    items.append((int(c["value"]), str(c.get("name") or c.get("code"))))
                except (KeyError, TypeError, ValueError):
                    continue
            if items:
                items.sort()
                name = legend.get("name") or where
                return MaskLegend(
                    tuple(v for v, _ in items),
                    tuple(n for _, n in items),
                    f"manifest metadata {where} ({name})",
                )
    return None


def resolve_legend(manifest: str | Path, classes_file: str | Path | None) -> MaskLegend | None:
    """The legend by precedence (see the module docstring); ``None``: derive it from the data.

    Raises:
        CsmoeError: a bad classes file or unreadable manifest metadata.
    """
    if classes_file is not None:
        return read_legend_file(classes_file)
    return _legend_from_metadata(read_manifest_metadata(manifest))


def read_mask_paths(manifest: str | Path, data_root: str | Path | None = None) -> np.ndarray:
    """The resolved ``mask_path`` of every manifest row (``None`` where empty).

    Relative paths resolve as the imagery's (:func:`csmoe_common.manifest.resolve_imagery_path`):
    against the manifest's folder, or ``data_root`` when given.

    Raises:
        CsmoeError: when the manifest has no ``mask_path`` column or no row has a mask, or
            ``data_root`` is not a folder.
    """
    import pyarrow.parquet as pq

    path = Path(manifest).expanduser().resolve()
    root = imagery_root(path, data_root)
    schema = read_schema(path)
    if MASK_PATH not in schema.names:
        raise CsmoeError(
            f"manifest {path.name} has no {MASK_PATH} column; build it with csmoe-data build-manifest "
            "--masks DIR or --masks-from-landcover (BigEarthNet v2.0 Reference_Maps are found "
            "automatically)"
        )
    values = pq.read_table(path, columns=[MASK_PATH]).column(MASK_PATH).to_pylist()
    out = np.empty(len(values), dtype=object)
    out[:] = [resolve_imagery_path(v, root) for v in values]
    if all(v is None for v in out):
        raise CsmoeError(f"no row of {path.name} has a {MASK_PATH}")
    return out


class MaskCache:
    """An opened mask cache (read-only).

    Attributes:
        path: its folder.
        meta: the decoded ``meta.json``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = json.loads(
            (self.path / "meta.json").read_text(encoding="utf-8")
        )
        self._array: np.ndarray | None = None

    @property
    def classes(self) -> list[str]:
        """Class names in index order."""
        return list(self.meta["classes"])

    @property
    def values(self) -> list[int]:
        """Raster value of each class (what predictions are written with)."""
        return [int(v) for v in self.meta["values"]]

    @property
    def has_mask(self) -> np.ndarray:
        """(N,) bool: the row names a readable mask with at least one evaluated pixel."""
        return np.asarray(self.meta["has_mask"], dtype=bool)

    @property
    def array(self) -> np.ndarray:
        """The (N, S, S) int16 memory map of class indices."""
        if self._array is None:
            self._array = np.load(self.path / "masks.npy", mmap_mode="r")
        return self._array

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The masks of cache rows ``index`` (sorted reads), (B, S, S) int16."""
        return np.stack([self.array[int(i)] for i in index])


def _fingerprint(paths: np.ndarray) -> str:
    h = hashlib.sha256()
    for p in paths:
        if p is None:
            h.update(b"-\n")
            continue
        try:
            st = os.stat(p)
            h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}:missing\n".encode())
    return h.hexdigest()[:24]


def _check_masks_exist(paths: np.ndarray, root: Path, data_root_given: bool) -> None:
    """Refuse masks that resolve under ``root`` but are missing (a manifest moved away from them).

    Raises:
        CsmoeError: counting them, naming the first, saying how relative paths resolve.
    """
    missing = [
        p for p in paths if p is not None and Path(p).is_relative_to(root) and not os.path.exists(p)
    ]
    if missing:
        raise CsmoeError(
            f"{len(missing)} of {sum(p is not None for p in paths)} mask raster(s) cannot be used: "
            f"not found (e.g. mask_path {missing[0]}); {missing_imagery_hint(root, data_root_given)}"
        )


def _read_mask(path: str, size: int) -> tuple[np.ndarray, float | None]:
    """Band 1 of a mask raster at ``size`` x ``size`` (nearest neighbour) and its nodata."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as src:
        if (src.height, src.width) == (size, size):
            data = src.read(1)
        else:
            data = src.read(1, out_shape=(size, size), resampling=Resampling.nearest)
        return data, src.nodata


def open_mask_cache(
    manifest: str | Path,
    imagery_key: str,
    size: int,
    cache_dir: str | Path,
    *,
    legend: MaskLegend | None = None,
    ignore_value: int | None = None,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
    data_root: str | Path | None = None,
) -> MaskCache:
    """Open (building when needed) the mask cache of ``manifest``.

    Args:
        manifest: the manifest with ``mask_path``.
        imagery_key: the imagery cache's key (the masks follow its rows).
        size: the imagery cache's 10 m size S.
        cache_dir: parent folder of caches.
        legend: the legend (``None``: the distinct values found).
        ignore_value: raster value that is never a class (``--ignore-index``).
        progress: called with the number of rows decoded.
        log: one-line notes.
        data_root: the folder relative ``mask_path`` values are relative to (as for the imagery).

    Raises:
        CsmoeError: no mask column, mask files that resolve under the manifest's folder (or
            ``data_root``) but do not exist (counted, with a ``--data-root`` hint), unreadable
            masks (counted), no evaluated pixel at all.
    """
    say = log or (lambda _m: None)
    paths = read_mask_paths(manifest, data_root)
    _check_masks_exist(paths, imagery_root(manifest, data_root), data_root is not None)
    h = hashlib.sha256()
    h.update(json.dumps({
        "v": MASK_CACHE_VERSION, "imagery": imagery_key, "size": size, "ignore": ignore_value,
        "legend": None if legend is None else [list(legend.values), list(legend.names)],
        "files": _fingerprint(paths),
    }, sort_keys=True).encode())  # fmt: skip
    key = h.hexdigest()[:24]
    root = Path(cache_dir).expanduser()
    target = root / f"masks-{key}"
    if (target / "meta.json").is_file():
        say(f"reusing mask cache {target}")
        return MaskCache(target)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-masks-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with naming(target):
            _build(tmp, paths, size, legend, ignore_value, key, str(manifest), progress)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cache = MaskCache(target)
    say(
        f"built mask cache {target} ({int(cache.has_mask.sum())} of {len(paths)} rows with masks, "
        f"{len(cache.classes)} classes)"
    )
    return cache


def _build(
    folder: Path,
    paths: np.ndarray,
    size: int,
    legend: MaskLegend | None,
    ignore_value: int | None,
    key: str,
    manifest: str,
    progress: Callable[[int], None] | None,
) -> None:
    n = len(paths)
    # raw values first (int32: class codes of every legend in use fit), mapped once the legend is known
    raw = np.lib.format.open_memmap(
        folder / "raw.npy", mode="w+", dtype=np.int32, shape=(n, size, size)
    )
    reserve_space(folder / "raw.npy")  # a full disk: an error now, not a SIGBUS below
    present = np.zeros(n, dtype=bool)
    problems: list[str] = []
    seen: set[int] = set()
    for i, p in enumerate(paths):
        if p is None:
            continue
        try:
            data, nodata = _read_mask(p, size)
        except Exception as exc:  # rasterio raises several error types for unreadable files
            problems.append(f"row {i} ({Path(p).name}): {exc}")
            continue
        ok = np.ones(data.shape, dtype=bool)
        if nodata is not None:
            ok &= ~np.isnan(data) if np.isnan(nodata) else data != nodata
        if ignore_value is not None:
            ok &= data != ignore_value
        floats = not np.issubdtype(data.dtype, np.integer)
        if floats and not np.all(np.isfinite(data[ok]) & (data[ok] == np.round(data[ok]))):
            problems.append(f"row {i} ({Path(p).name}): mask values are not integer class codes")
            continue
        data = np.where(ok, data, 0)
        arr = data.astype(np.int64)
        if ok.any() and (
            int(arr[ok].min()) <= _NONE or int(arr[ok].max()) > np.iinfo(np.int32).max
        ):
            problems.append(f"row {i} ({Path(p).name}): mask values outside the int32 range")
            continue
        raw[i] = np.where(ok, arr, _NONE)
        seen.update(int(v) for v in np.unique(arr[ok]))
        present[i] = True
        if progress is not None:
            progress(1)
    if problems:
        raise CsmoeError(f"{len(problems)} mask raster(s) cannot be used, e.g. {problems[0]}")
    if legend is None:
        if not seen:
            raise CsmoeError("no mask pixel has a class (all are nodata or the ignore value)")
        ordered = sorted(seen)
        legend = MaskLegend(
            tuple(ordered), tuple(str(v) for v in ordered), "the distinct mask values"
        )
    out = np.lib.format.open_memmap(
        folder / "masks.npy", mode="w+", dtype=np.int16, shape=(n, size, size)
    )
    reserve_space(folder / "masks.npy")
    unknown: dict[int, int] = {}
    ignored = 0
    has_mask = np.zeros(n, dtype=bool)
    for i in range(n):
        if not present[i]:
            out[i] = IGNORE
            continue
        r = np.asarray(raw[i])
        ok = r != _NONE
        idx = legend.lookup(np.where(ok, r, 0))
        idx[~ok] = IGNORE
        for v, c in zip(*np.unique(r[ok & (idx == IGNORE)], return_counts=True), strict=True):
            unknown[int(v)] = unknown.get(int(v), 0) + int(c)
        ignored += int((idx == IGNORE).sum())
        has_mask[i] = bool((idx != IGNORE).any())
        out[i] = idx
    out.flush()
    del raw, out
    (folder / "raw.npy").unlink()
    if not has_mask.any():
        raise CsmoeError(
            f"no mask pixel belongs to a class of the legend ({legend.source}); values found: "
            f"{sorted(unknown)[:10]}"
        )
    meta = {
        "version": MASK_CACHE_VERSION,
        "key": key,
        "manifest": manifest,
        "size": size,
        "classes": list(legend.names),
        "values": list(legend.values),
        "legend_source": legend.source,
        "ignore_value": ignore_value,
        "has_mask": has_mask.tolist(),
        "rows_without_mask": int((~present).sum()),
        "ignored_pixels": ignored,
        "unknown_values": {str(k): v for k, v in sorted(unknown.items())},
    }
    write_text(folder / "meta.json", json.dumps(meta, indent=2), overwrite=True)
