"""Scan a manifest's imagery paths before building: existence, needed bands, and a fingerprint.

Needs no GDAL: folders are listed and files stat'ed. The fingerprint (sizes and mtimes) lets a
later run notice changed imagery and rebuild the cache. Paths into stores (``file#row=..``,
``#sample=..``, ``#window=..``; :mod:`csmoe_common.store_path`) are checked and fingerprinted by
their file (or Major TOM product folder), once per file however many rows share it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from csmoe_model.data.imagery import check_folder, needed_bands
from csmoe_model.data.manifest import ManifestRows
from csmoe_model.data.sources.majortom import missing_product_bands
from csmoe_model.data.sources.rows import is_store_path, store_file
from csmoe_model.errors import CsmoeError


@dataclass
class ScanResult:
    """What a scan of the imagery paths found (no GDAL needed)."""

    files_digest: str
    reachable: int
    no_imagery: list[tuple[int, str]] = field(default_factory=list)
    bad_bands: list[tuple[int, str]] = field(default_factory=list)
    #: the file (or folder) that the first row without imagery names
    first_missing: str | None = None


_Scanned = tuple[str, str | None, str | None, str | None]


def _scan_row(i: int, s1: str | None, s2: str | None, n_s2: int) -> _Scanned:
    """Fingerprint one row's files.

    Returns:
        ``(fingerprint, missing-imagery msg, bad-bands msg, the missing file)``.
    """
    parts: list[str] = []
    for sensor, path in (("s1", s1), ("s2", s2)):
        if path is None:
            return "", f"no {sensor}_path", None, None
        store = is_store_path(path)
        p = store_file(path) if store else path
        try:
            st = os.stat(p)
        except OSError:
            return "", f"{sensor}_path not found: {p}", None, p
        if store and os.path.isdir(p):  # a Major TOM product folder of the unpacked tree
            problem = missing_product_bands(p, needed_bands(sensor, n_s2))
            if problem:
                return "", None, f"{sensor}: {problem} in {p}", None
            with os.scandir(p) as it:
                for e in sorted(it, key=lambda e: e.name):
                    if e.is_file():
                        s = e.stat()
                        parts.append(f"{path}/{e.name}:{s.st_size}:{s.st_mtime_ns}")
        elif store:  # a shard or a zipped Zarr store: the file (its rows share it)
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        elif os.path.isdir(p):
            problem = check_folder(p, sensor, n_s2)
            if problem:
                return "", None, f"{sensor}: {problem} in {p}", None
            with os.scandir(p) as it:
                for e in sorted(it, key=lambda e: e.name):
                    if e.is_file():
                        s = e.stat()
                        parts.append(f"{e.name}:{s.st_size}:{s.st_mtime_ns}")
        else:
            parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts), None, None, None


def scan_imagery(rows: ManifestRows, n_s2: int, threads: int = 8) -> ScanResult:
    """Check that every row names existing imagery with the needed bands, and fingerprint the files."""
    n = len(rows)
    chunks = [range(a, min(n, a + 512)) for a in range(0, n, 512)]

    def work(r: range) -> list[_Scanned]:
        return [_scan_row(i, rows.s1_path[i], rows.s2_path[i], n_s2) for i in r]

    h = hashlib.sha256()
    result = ScanResult(files_digest="", reachable=0)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for r, res in zip(chunks, pool.map(work, chunks), strict=True):
            for i, (fp, miss, bad, missing) in zip(r, res, strict=True):
                h.update(fp.encode() + b"\n")
                if miss:
                    result.no_imagery.append((i, miss))
                    if result.first_missing is None:
                        result.first_missing = missing
                elif bad:
                    result.bad_bands.append((i, bad))
                if not miss:
                    result.reachable += 1
    result.files_digest = h.hexdigest()[:24]
    return result


def problem_error(
    rows: ManifestRows,
    no_imagery: Sequence[tuple[int, str]],
    bad_bands: Sequence[tuple[int, str]],
    first_missing: str | None = None,
) -> CsmoeError:
    """One error that counts the unusable rows and shows the first of each kind.

    With ``first_missing`` (the file the first row without imagery names) it also says how
    relative paths resolve and, for a manifest moved away from its imagery, to pass ``--data-root``.
    """
    parts = []
    if no_imagery:
        i, msg = no_imagery[0]
        parts.append(
            f"{len(no_imagery)} without imagery (e.g. row {i} '{rows.patch_id[i]}': {msg})"
        )
    if bad_bands:
        i, msg = bad_bands[0]
        parts.append(
            f"{len(bad_bands)} with missing or undeclared bands (e.g. row {i} '{rows.patch_id[i]}': {msg})"
        )
    hint = rows.missing_hint(first_missing) if first_missing else ""
    return CsmoeError(
        f"{len(no_imagery) + len(bad_bands)} of {len(rows)} manifest rows cannot be used: "
        + "; ".join(parts)
        + (f"; {hint}" if hint else "")
    )
