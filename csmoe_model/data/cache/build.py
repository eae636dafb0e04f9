"""Build an imagery cache (decode every row once) or reuse an up-to-date one: :func:`open_cache`.

Building happens in a temporary folder beside the target, renamed into place under a file lock
(:mod:`.lock`), so concurrent runs build it once and never see a half-written cache. Decoding runs in
worker processes (rasterio, imported there); the statistics come from :mod:`.stats`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from csmoe_common.atomic import (
    naming,
    remove_stale_temporaries,
    replace_dir,
    reserve_space,
    temporary_dir,
    write_text,
)
from csmoe_common.bands import GROUP_DIVISOR, S1_BANDS, S2_GROUPS, s2_bands
from csmoe_common.processes import check_workers, result_of, stop_pool, worker_initializer
from csmoe_common.progress import progress_bar
from csmoe_model.data.cache.integrity import DamagedCacheError, seal
from csmoe_model.data.cache.lock import exclusive_lock
from csmoe_model.data.cache.reader import ImageryCache
from csmoe_model.data.cache.scan import problem_error, scan_imagery
from csmoe_model.data.cache.settings import (
    CACHE_VERSION,
    S1_DTYPE,
    S2_DTYPE,
    CacheSettings,
    content_key,
    default_cache_dir,
)
from csmoe_model.data.cache.stats import compute_stats, stats_rows
from csmoe_model.data.imagery import (
    BandError,
    DamagedImageError,
    native_size,
    read_s1,
    read_s2,
    s2_groups,
)
from csmoe_model.data.manifest import ManifestRows, read_manifest_rows
from csmoe_model.data.sources.rows import (
    group_key,
    is_store_path,
    read_rows,
    row_native_size,
    row_seasons,
)
from csmoe_model.errors import CsmoeError


def allocate_arrays(folder: Path, n: int, size: int, n_s2: int) -> None:
    """Create the empty ``.npy`` arrays of a cache with ``n`` array rows (manifest rows x seasons).

    Their space is reserved at once: a full disk is a one-line error now, not a SIGBUS of a
    decoding worker writing into a sparse memory map.

    Raises:
        OSError: the disk has not room for the arrays (the file named).
    """
    for g in s2_groups(n_s2):
        s = size // GROUP_DIVISOR[g]
        np.lib.format.open_memmap(
            folder / f"{g}.npy", mode="w+", dtype=S2_DTYPE, shape=(n, len(S2_GROUPS[g]), s, s)
        ).flush()
        reserve_space(folder / f"{g}.npy")
    np.lib.format.open_memmap(
        folder / "s1.npy", mode="w+", dtype=S1_DTYPE, shape=(n, len(S1_BANDS), size, size)
    ).flush()
    reserve_space(folder / "s1.npy")


def _decode_rows(
    folder: str,
    size: int,
    n_s2: int,
    s2_decl: tuple[str, ...] | None,
    s1_decl: tuple[str, ...] | None,
    seasons: int,
    items: list[tuple[int, str, str]],
) -> list[tuple[int, str, str]]:
    """Decode rows into the arrays of ``folder`` (runs in a worker process). Returns the problems.

    Row ``i`` fills array rows ``i * seasons .. i * seasons + seasons - 1``; rows of one store are
    decoded together (:func:`csmoe_model.data.sources.rows.read_rows`).
    """
    groups = s2_groups(n_s2)
    arrays = {g: np.load(Path(folder) / f"{g}.npy", mmap_mode="r+") for g in (*groups, "s1")}
    problems: list[tuple[int, str, str]] = []
    with _gdal_env():
        decoded = read_rows(
            items,
            size,
            groups,
            seasons,
            lambda path: read_s2(path, size, n_s2, s2_decl),
            lambda path: read_s1(path, size, s1_decl),
        )
    for i, images, problem in decoded:
        if problem is not None or images is None:
            kind, msg = problem or ("damaged", "not decoded")
            problems.append((i, kind, msg))
            continue
        at = slice(i * seasons, (i + 1) * seasons)
        for g, a in images.s2.items():
            arrays[g][at] = a
        arrays["s1"][at] = images.s1.astype(S1_DTYPE)
    for a in arrays.values():
        a.flush()
    return problems


@contextlib.contextmanager
def _gdal_env() -> Iterator[None]:
    """Quiet GDAL for the GeoTIFF readers; a host without rasterio (store corpora only) needs none."""
    try:
        import rasterio
    except ImportError:
        yield
        return
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", CPL_LOG_ERRORS="OFF"):
        yield


def _seasons(rows: ManifestRows) -> int:
    """Acquisitions per row of the cache: the first datacube's ``time`` length, else 1."""
    for path in (*rows.s2_path, *rows.s1_path):
        if path is not None and is_store_path(path):
            try:
                n = row_seasons(path)
            except (BandError, DamagedImageError):
                continue
            if n > 1:
                return n
    return 1


def _batches(items: list[tuple[int, str, str]], chunk: int) -> list[list[tuple[int, str, str]]]:
    """Batches of at most ``chunk`` rows; rows that share a store are kept together (in file order).

    Major TOM tiles of one product and SSL4EO-S12 locations of one store then land in one batch,
    where their store is decoded once (groups larger than the cap are split at the cap).
    """
    groups: dict[str, list[tuple[int, str, str]]] = {}
    for item in items:
        groups.setdefault(group_key(item[2]) + "\0" + group_key(item[1]), []).append(item)
    if all(len(g) == 1 for g in groups.values()):
        return [items[a : a + chunk] for a in range(0, len(items), chunk)]
    batches: list[list[tuple[int, str, str]]] = []
    current: list[tuple[int, str, str]] = []
    for group in groups.values():
        if current and len(current) + len(group) > chunk:
            batches.append(current)
            current = []
        for a in range(0, len(group), chunk):
            part = group[a : a + chunk]
            if len(part) == chunk:
                batches.append(part)
            else:
                current.extend(part)
    if current:
        batches.append(current)
    return batches


def finish_cache(
    folder: Path,
    *,
    patch_ids: np.ndarray,
    split: np.ndarray | None,
    valid: np.ndarray,
    settings: CacheSettings,
    size: int,
    key: str,
    files_digest: str,
    damaged: list[dict[str, Any]],
    manifest: str,
    seasons: int = 1,
) -> None:
    """Compute the statistics and write ``rows.parquet`` and ``meta.json`` into a built folder.

    With ``seasons`` > 1 the statistics cover every season of the statistics rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, described = stats_rows(split, valid)
    if len(rows) == 0:
        raise CsmoeError("no image of the manifest could be decoded; nothing to train on")
    array_rows = (rows[:, None] * seasons + np.arange(seasons)[None, :]).ravel()
    stats = compute_stats(folder, settings.n_s2, array_rows)
    pq.write_table(
        pa.table(
            {
                "patch_id": pa.array([str(p) for p in patch_ids], pa.string()),
                "split": pa.nulls(len(patch_ids), pa.string())
                if split is None
                else pa.array([None if s is None else str(s) for s in split], pa.string()),
                "valid": pa.array(valid, pa.bool_()),
            }
        ),
        folder / "rows.parquet",
    )
    meta = {
        "version": CACHE_VERSION,
        "key": key,
        "files_digest": files_digest,
        "manifest": manifest,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": settings.to_dict(),
        "size": size,
        "n_rows": len(patch_ids),
        "seasons": seasons,
        "bands": {"s2": list(s2_bands(settings.n_s2)), "s1": list(S1_BANDS)},
        "dtypes": {"s2": "uint16", "s1": "float16"},
        "stats": stats,
        "stats_rows": described,
        "n_damaged": len(damaged),
        "damaged": damaged[:1000],
    }
    meta = seal(meta, folder, (*s2_groups(settings.n_s2), "s1"))
    write_text(folder / "meta.json", json.dumps(meta, indent=2), overwrite=True)


def _resolve_size(rows: ManifestRows, settings: CacheSettings) -> int:
    size = settings.size
    if size is None:
        for i in range(len(rows)):
            path = rows.s2_path[i]
            try:
                size = (row_native_size(path) if is_store_path(path) else None) or native_size(path)
                break
            except (BandError, DamagedImageError, OSError):
                continue
        if size is None:
            raise CsmoeError("no Sentinel-2 image of the manifest could be opened")
    div = 6 if settings.n_s2 == 12 else 2
    if size % div:
        raise CsmoeError(
            f"the 10 m size {size} px must be divisible by {div} (20 m and 60 m bands)"
        )
    return int(size)


def build_cache(
    rows: ManifestRows,
    folder: Path,
    settings: CacheSettings,
    *,
    key: str,
    files_digest: str,
    workers: int = 0,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Decode every row of ``rows`` into the (new, empty) folder ``folder``.

    Raises:
        CsmoeError: rows with missing/undeclared bands (counted), a damaged image with ``strict``,
            or no decodable image at all.
    """
    size = _resolve_size(rows, settings)
    seasons = _seasons(rows)
    n = len(rows)
    allocate_arrays(folder, n * seasons, size, settings.n_s2)
    items = [(i, rows.s1_path[i], rows.s2_path[i]) for i in range(n)]
    batches = _batches(items, 16)
    args = (str(folder), size, settings.n_s2, settings.s2_bands, settings.s1_bands, seasons)
    problems: list[tuple[int, str, str]] = []

    def collect(batch_problems: list[tuple[int, str, str]], count: int) -> None:
        problems.extend(batch_problems)
        if strict:
            damaged = [p for p in batch_problems if p[1] == "damaged"]
            if damaged:
                i, _, msg = damaged[0]
                raise CsmoeError(f"damaged image in row {i} '{rows.patch_id[i]}': {msg} (--strict)")
        if progress:
            progress(count)

    if workers and workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork: workers need no re-import of the caller's main module (scripts without a main guard
        # work); they use numpy and GDAL only, never the parent's torch threads
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        # workers die with this process (whatever kills it) and inherit no lock (record locks)
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=worker_initializer())
        try:
            futures = [pool.submit(_decode_rows, *args, b) for b in batches]
            for b, fut in zip(batches, futures, strict=True):
                collect(result_of(fut), len(b))  # in slices: SIGTERM is seen while workers hang
        except BaseException:
            stop_pool(pool)  # Ctrl-C, SIGTERM, --strict: do not wait for running batches
            raise
        pool.shutdown(wait=True)
    else:
        for b in batches:
            collect(_decode_rows(*args, b), len(b))

    bad = [(i, msg) for i, kind, msg in problems if kind == "bands"]
    if bad:
        raise problem_error(rows, [], bad)
    valid = np.ones(n, dtype=bool)
    damaged = []
    for i, kind, msg in sorted(problems):
        if kind == "damaged":
            valid[i] = False
            damaged.append({"row": int(i), "patch_id": str(rows.patch_id[i]), "error": msg})
    finish_cache(
        folder,
        patch_ids=rows.patch_id,
        split=rows.split,
        valid=valid,
        settings=settings,
        size=size,
        key=key,
        files_digest=files_digest,
        damaged=damaged,
        manifest=str(rows.path),
        seasons=seasons,
    )


def open_cache(
    manifest: str | Path,
    cache_dir: str | Path | None = None,
    settings: CacheSettings | None = None,
    *,
    n_s2: int | None = None,
    build: bool = True,
    workers: int = 0,
    strict: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    rebuild: bool = False,
    data_root: str | Path | None = None,
) -> ImageryCache:
    """Open the imagery cache of ``manifest``, building (or rebuilding) it when needed.

    An existing cache is checked against its ``meta.json`` (:mod:`.integrity`); a damaged one is
    rebuilt (or refused with ``strict``, or when the imagery is not reachable). Temporary folders
    of builds whose process is gone (killed) are removed first.

    The cache's key hashes the *resolved* imagery paths (:func:`.settings.content_key`): a copy of
    a manifest opened with ``data_root`` pointing at the imagery it was built from finds the
    original's cache; the same rows resolved to other files get another cache.

    Args:
        manifest: the manifest file.
        cache_dir: parent folder of caches (default :func:`default_cache_dir`).
        settings: preprocessing settings (default ``CacheSettings()``: 12 bands, native size).
        n_s2: shortcut for ``settings.n_s2``.
        build: build a missing or stale cache (``False``: raise instead).
        workers: decoding processes (0 or 1: in this process).
        strict: stop at the first damaged image instead of skipping it.
        progress: show a rich progress bar while building.
        log: called with one-line notes (built, reused, imagery unreachable, damaged, waiting).
        rebuild: build the cache again even when an up-to-date one exists.
        data_root: the folder the manifest's relative imagery paths are relative to (``None``:
            the manifest's folder); see :func:`~csmoe_model.data.manifest.read_manifest_rows`.

    Raises:
        CsmoeError: manifest problems (no imagery, missing bands: counted), a damaged image with
            ``strict`` (also when the reused cache skipped one), no cache and ``build=False``,
            a damaged cache with ``strict`` or unreachable imagery.
    """
    check_workers(workers)  # before any work: a typo must not fork thousands of processes
    settings = settings or CacheSettings()
    if n_s2 is not None and n_s2 != settings.n_s2:
        settings = CacheSettings(n_s2, settings.size, settings.s2_bands, settings.s1_bands)
    s2_groups(settings.n_s2)  # validates
    say = log or (lambda _msg: None)
    rows = read_manifest_rows(manifest, data_root)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    key = content_key(rows, settings)
    target = root / key
    scan = scan_imagery(rows, settings.n_s2)

    def check(cache: ImageryCache) -> ImageryCache:
        if strict and cache.n_damaged:
            d = cache.damaged[0]
            raise CsmoeError(
                f"{cache.n_damaged} damaged image(s) in the cache (e.g. row {d['row']} '{d['patch_id']}': "
                f"{d['error']}) (--strict)"
            )
        return cache

    def existing() -> ImageryCache | None:
        """The cache in ``target`` if it is intact; None if absent or damaged (then rebuilt)."""
        if not (target / "meta.json").is_file():
            return None
        try:
            return ImageryCache(target)
        except DamagedCacheError as exc:
            if strict or not build or scan.reachable == 0:
                raise CsmoeError(f"{exc}; run csmoe cache --rebuild") from None
            say(f"{exc}; rebuilding it")
            return None

    if scan.reachable == 0 and (target / "meta.json").is_file() and not rebuild:
        found = existing()
        if found is not None:
            say(f"imagery not reachable from this host; using the cache {target} as it is")
            return check(found)
    if scan.no_imagery or scan.bad_bands:
        raise problem_error(rows, scan.no_imagery, scan.bad_bands, scan.first_missing)
    with exclusive_lock(root / f".{key}.lock", on_wait=say):
        for stale in remove_stale_temporaries(root):  # left by a killed build
            say(f"removed {stale}, left by a build that was stopped")
        cache = None if rebuild else existing()
        if cache is not None:
            if (
                cache.meta.get("files_digest") == scan.files_digest
                and cache.meta.get("version") == CACHE_VERSION
            ):
                say(f"reusing imagery cache {target}")
                return check(cache)
            say("imagery files changed since the cache was built; rebuilding it")
        if not build:
            raise CsmoeError(
                f"no up-to-date imagery cache for {rows.path.name} in {root}; run csmoe cache"
            )
        tmp = temporary_dir(target)
        try:
            with (
                naming(target),
                progress_bar(
                    "decoding imagery", len(rows), "pairs", enabled=progress, transient=False
                ) as advance,
            ):
                build_cache(
                    rows,
                    tmp,
                    settings,
                    key=key,
                    files_digest=scan.files_digest,
                    workers=workers,
                    strict=strict,
                    progress=advance,
                )
            replace_dir(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        cache = ImageryCache(target)
        say(f"built imagery cache {target} ({len(cache)} rows, {cache.size} px)")
        return cache


def synthetic_cache(
    root: str | Path, n: int, size: int = 120, n_s2: int = 12, seed: int = 0, chunk: int = 256
) -> ImageryCache:
    """Write a cache of ``n`` random pairs (no imagery, no GDAL) for benchmarks and GPU smoke tests.

    Values look like BigEarthNet (uint16 reflectance around 1,500, float16 dB around -15); the
    folder ``root/synthetic-<n>-<size>-<n_s2>-<seed>`` is reused when it exists.
    """
    root = Path(root)
    key = f"synthetic-{n}-{size}-{n_s2}-{seed}"
    target = root / key
    if (target / "meta.json").is_file():
        return ImageryCache(target)
    tmp = temporary_dir(target)
    try:
        allocate_arrays(tmp, n, size, n_s2)
        rng = np.random.default_rng(seed)
        for g in (*s2_groups(n_s2), "s1"):
            arr = np.load(tmp / f"{g}.npy", mmap_mode="r+")
            for a in range(0, n, chunk):
                shape = (min(chunk, n - a), *arr.shape[1:])
                if g == "s1":
                    arr[a : a + chunk] = rng.normal(-15, 4, shape).astype(S1_DTYPE)
                else:
                    arr[a : a + chunk] = rng.integers(0, 3000, shape, dtype=np.uint16)
            arr.flush()
            del arr
        split = np.array(["train"] * n, dtype=object)
        finish_cache(
            tmp,
            patch_ids=np.array([f"p{i}" for i in range(n)], dtype=object),
            split=split,
            valid=np.ones(n, bool),
            settings=CacheSettings(n_s2, size),
            size=size,
            key=key,
            files_digest="synthetic",
            damaged=[],
            manifest="synthetic",
        )
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ImageryCache(target)
