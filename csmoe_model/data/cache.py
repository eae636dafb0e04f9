"""The imagery cache: a manifest's imagery decoded once into memory-mapped native-resolution arrays.

Layout of ``<cache_dir>/<key>/`` (``cache_dir`` defaults to ``$CSMOE_CACHE_DIR`` or ``~/.cache/csmoe``):

* ``s2_10.npy`` uint16 (N, 4, S, S), ``s2_20.npy`` uint16 (N, 6, S/2, S/2), ``s2_60.npy`` uint16
  (N, 2, S/6, S/6) (12-band caches), ``s1.npy`` float16 (N, 2, S, S); plain ``.npy`` files opened
  with ``numpy.load(mmap_mode="r")`` (S = the 10 m size, 120 for BigEarthNet: 217.6 kB per pair);
* ``rows.parquet``: ``patch_id``, ``split``, ``valid`` (False for damaged images, which are skipped);
* ``meta.json``: settings, shapes, the per-band mean/std (computed on the training rows: the rows whose
  ``split`` is "train", or all rows when the manifest has no split column or no "train" row), the
  damaged images and the fingerprint of the imagery files.

Cache row ``i`` is manifest row ``i`` (every manifest row is cached, whatever ``--split`` selects
later). ``<key>`` hashes the manifest's rows (patch ids, resolved imagery paths, splits) and the
preprocessing settings; the sizes and mtimes of
the imagery files are fingerprinted too, and a changed fingerprint rebuilds the cache. A host that
cannot see the imagery at all (a GPU host with a copied cache) reuses the cache as it is. Building
happens in a temporary folder renamed into place, under a file lock, so concurrent runs and other
processes build it once and never see a half-written cache.

Only the building needs rasterio (imported lazily); opening and reading needs numpy and pyarrow.

Example (this is the API ``csmoe embed`` uses)::

    from csmoe_model.data import open_cache
    cache = open_cache("manifest.parquet", n_s2=12)          # builds it on first use
    rows = cache.select("test")                                # valid rows of the split
    for batch in cache.loader(rows, batch_size=256, device="cuda", img_size=model.img_size,
                              stats=run_stats, augment=False, shuffle=False, drop_last=False):
        batch.index, batch.s1, batch.s2                        # cache = manifest row indices
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csmoe_model.bands import S1_BANDS, s2_bands
from csmoe_model.data.atomic import replace_dir, write_text_atomic
from csmoe_model.data.imagery import (
    GROUP_DIVISOR,
    BandError,
    DamagedImageError,
    check_folder,
    native_size,
    read_s1,
    read_s2,
    s2_groups,
)
from csmoe_model.data.manifest import ManifestRows, read_manifest_rows, select_split
from csmoe_model.errors import CsmoeError

CACHE_VERSION = 1
S1_DTYPE = np.float16
S2_DTYPE = np.uint16


@dataclass(frozen=True)
class CacheSettings:
    """Preprocessing settings that change the cache's content (part of its key).

    Attributes:
        n_s2: Sentinel-2 bands to cache, 10 or 12 (``bands.s2_bands``).
        size: the 10 m size in pixels (``None``: the native size of the first row, 120 for BigEarthNet);
            must be divisible by 6 (12 bands) or 2 (10 bands).
        s2_bands: band order of multi-band S2 GeoTIFFs without band descriptions.
        s1_bands: band order of multi-band S1 GeoTIFFs without band descriptions.
    """

    n_s2: int = 12
    size: int | None = None
    s2_bands: tuple[str, ...] | None = None
    s1_bands: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("s2_bands", "s1_bands"):
            d[k] = list(d[k]) if d[k] else None
        return d


def default_cache_dir() -> Path:
    """``$CSMOE_CACHE_DIR`` or ``~/.cache/csmoe``."""
    env = os.environ.get("CSMOE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "csmoe"


def content_key(rows: ManifestRows, settings: CacheSettings) -> str:
    """Hash of the manifest's rows (ids, resolved paths, splits) and the settings: the cache's folder name."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, **settings.to_dict()}, sort_keys=True).encode())
    split = rows.split if rows.split is not None else [None] * len(rows)
    # the split is part of the key: the statistics come from the "train" rows
    for pid, s1, s2, sp in zip(rows.patch_id, rows.s1_path, rows.s2_path, split, strict=True):
        h.update(f"{pid}\0{s1}\0{s2}\0{sp}\n".encode())
    return h.hexdigest()[:24]


@dataclass
class ScanResult:
    """What a scan of the imagery paths found (no GDAL needed)."""

    files_digest: str
    reachable: int
    no_imagery: list[tuple[int, str]] = field(default_factory=list)
    bad_bands: list[tuple[int, str]] = field(default_factory=list)


def _scan_row(
    i: int, s1: str | None, s2: str | None, n_s2: int
) -> tuple[str, str | None, str | None]:
    """Fingerprint one row's files; return (fingerprint, missing-imagery msg, bad-bands msg)."""
    parts: list[str] = []
    for sensor, p in (("s1", s1), ("s2", s2)):
        if p is None:
            return "", f"no {sensor}_path", None
        try:
            st = os.stat(p)
        except OSError:
            return "", f"{sensor}_path not found: {p}", None
        if os.path.isdir(p):
            problem = check_folder(p, sensor, n_s2)
            if problem:
                return "", None, f"{sensor}: {problem} in {p}"
            with os.scandir(p) as it:
                for e in sorted(it, key=lambda e: e.name):
                    if e.is_file():
                        s = e.stat()
                        parts.append(f"{e.name}:{s.st_size}:{s.st_mtime_ns}")
        else:
            parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts), None, None


def scan_imagery(rows: ManifestRows, n_s2: int, threads: int = 8) -> ScanResult:
    """Check that every row names existing imagery with the needed bands, and fingerprint the files."""
    n = len(rows)
    chunks = [range(a, min(n, a + 512)) for a in range(0, n, 512)]

    def work(r: range) -> list[tuple[str, str | None, str | None]]:
        return [_scan_row(i, rows.s1_path[i], rows.s2_path[i], n_s2) for i in r]

    h = hashlib.sha256()
    result = ScanResult(files_digest="", reachable=0)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for r, res in zip(chunks, pool.map(work, chunks), strict=True):
            for i, (fp, miss, bad) in zip(r, res, strict=True):
                h.update(fp.encode() + b"\n")
                if miss:
                    result.no_imagery.append((i, miss))
                elif bad:
                    result.bad_bands.append((i, bad))
                if not miss:
                    result.reachable += 1
    result.files_digest = h.hexdigest()[:24]
    return result


def _problem_error(
    rows: ManifestRows, no_imagery: Sequence[tuple[int, str]], bad_bands: Sequence[tuple[int, str]]
) -> CsmoeError:
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
    return CsmoeError(
        f"{len(no_imagery) + len(bad_bands)} of {len(rows)} manifest rows cannot be used: "
        + "; ".join(parts)
    )


class ImageryCache:
    """An opened imagery cache (read-only). See the module docstring for the layout.

    Attributes:
        path: the cache folder.
        meta: the decoded ``meta.json``.
    """

    def __init__(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise CsmoeError(f"{self.path} is not a csmoe imagery cache (no meta.json)")
        self.meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        table = pq.read_table(self.path / "rows.parquet")
        self.patch_ids = np.array(table.column("patch_id").to_pylist(), dtype=object)
        split = table.column("split").to_pylist()
        self.split = None if all(s is None for s in split) else np.array(split, dtype=object)
        self.valid = np.asarray(table.column("valid").to_numpy(zero_copy_only=False), dtype=bool)

    def __len__(self) -> int:
        return int(self.meta["n_rows"])

    def __repr__(self) -> str:
        return f"ImageryCache({str(self.path)!r}, rows={len(self)}, size={self.size}, n_s2={self.n_s2})"

    @property
    def size(self) -> int:
        """The 10 m size in pixels."""
        return int(self.meta["size"])

    @property
    def n_s2(self) -> int:
        return int(self.meta["settings"]["n_s2"])

    @property
    def groups(self) -> tuple[str, ...]:
        """Array names in model band order: the S2 groups, then ``s1``."""
        return (*s2_groups(self.n_s2), "s1")

    @property
    def stats(self) -> dict[str, list[float]]:
        """Per-band ``s2_mean``, ``s2_std`` (model band order), ``s1_mean``, ``s1_std`` (VH, VV)."""
        return self.meta["stats"]

    @property
    def damaged(self) -> list[dict[str, Any]]:
        """The images skipped because they could not be decoded (row, patch_id, error)."""
        return self.meta["damaged"]

    @property
    def n_damaged(self) -> int:
        return int(self.meta["n_damaged"])

    def array_path(self, group: str) -> Path:
        return self.path / f"{group}.npy"

    def arrays(self) -> dict[str, np.ndarray]:
        """Open the arrays as read-only memory maps (cheap; open them in each worker process)."""
        return {g: np.load(self.array_path(g), mmap_mode="r") for g in self.groups}

    def select(self, split: str | None = None) -> np.ndarray:
        """Cache row indices (int64, ascending) of the valid rows of ``split`` (``None``: all rows).

        Raises:
            CsmoeError: unknown split or no valid row left.
        """
        rows = select_split(self.split if split else None, split) if split else np.arange(len(self))
        rows = rows[self.valid[rows]]
        if len(rows) == 0:
            raise CsmoeError(f"no valid cached row for split {split or 'all'} in {self.path}")
        return rows

    def loader(self, rows: np.ndarray, batch_size: int, **kwargs: Any):
        """A :class:`csmoe_model.data.loader.DeviceLoader` over ``rows`` (see its arguments)."""
        from csmoe_model.data.loader import DeviceLoader

        return DeviceLoader(self, rows, batch_size=batch_size, **kwargs)


# --------------------------------------------------------------------------------------- building


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (no-op where fcntl does not exist)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def allocate_arrays(folder: Path, n: int, size: int, n_s2: int) -> None:
    """Create the empty ``.npy`` arrays of a cache with ``n`` rows."""
    from csmoe_model.data.imagery import S2_GROUPS

    for g in s2_groups(n_s2):
        s = size // GROUP_DIVISOR[g]
        np.lib.format.open_memmap(
            folder / f"{g}.npy", mode="w+", dtype=S2_DTYPE, shape=(n, len(S2_GROUPS[g]), s, s)
        ).flush()
    np.lib.format.open_memmap(
        folder / "s1.npy", mode="w+", dtype=S1_DTYPE, shape=(n, len(S1_BANDS), size, size)
    ).flush()


def _decode_rows(
    folder: str,
    size: int,
    n_s2: int,
    s2_decl: tuple[str, ...] | None,
    s1_decl: tuple[str, ...] | None,
    items: list[tuple[int, str, str]],
) -> list[tuple[int, str, str]]:
    """Decode rows into the arrays of ``folder`` (runs in a worker process). Returns the problems."""
    import rasterio

    arrays = {
        g: np.load(Path(folder) / f"{g}.npy", mmap_mode="r+") for g in (*s2_groups(n_s2), "s1")
    }
    problems: list[tuple[int, str, str]] = []
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", CPL_LOG_ERRORS="OFF"):
        for i, s1_path, s2_path in items:
            try:
                s2 = read_s2(s2_path, size, n_s2, s2_decl)
                s1 = read_s1(s1_path, size, s1_decl)
            except BandError as exc:
                problems.append((i, "bands", str(exc)))
                continue
            except DamagedImageError as exc:
                problems.append((i, "damaged", str(exc)))
                continue
            for g, a in s2.items():
                arrays[g][i] = a
            arrays["s1"][i] = s1.astype(S1_DTYPE)
    for a in arrays.values():
        a.flush()
    return problems


def compute_stats(
    folder: Path, n_s2: int, rows: np.ndarray, chunk: int = 64
) -> dict[str, list[float]]:
    """Per-band mean and std (float64 accumulation) of the cached arrays over ``rows``."""
    out: dict[str, list[float]] = {}
    sensors = {"s2": s2_groups(n_s2), "s1": ("s1",)}
    for sensor, groups in sensors.items():
        means: list[float] = []
        stds: list[float] = []
        for g in groups:
            arr = np.load(folder / f"{g}.npy", mmap_mode="r")
            c = arr.shape[1]
            s = np.zeros(c)
            ss = np.zeros(c)
            count = 0
            for a in range(0, len(rows), chunk):
                x = arr[rows[a : a + chunk]].astype(np.float64)
                s += x.sum(axis=(0, 2, 3))
                ss += np.square(x).sum(axis=(0, 2, 3))
                count += x.shape[0] * x.shape[2] * x.shape[3]
            mean = s / max(count, 1)
            std = np.sqrt(np.maximum(ss / max(count, 1) - mean**2, 0.0))
            means += mean.tolist()
            stds += [float(v) if v > 1e-6 else 1.0 for v in std]  # constant band: leave it unscaled
        out[f"{sensor}_mean"] = means
        out[f"{sensor}_std"] = stds
    return out


def stats_rows(split: np.ndarray | None, valid: np.ndarray) -> tuple[np.ndarray, str]:
    """The rows statistics are computed on: valid rows with split "train", else all valid rows."""
    if split is not None:
        train = np.flatnonzero(valid & (split.astype(str) == "train"))
        if len(train):
            return train, f"split == 'train' ({len(train)} rows)"
    rows = np.flatnonzero(valid)
    return rows, f"all valid rows ({len(rows)})"


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
) -> None:
    """Compute the statistics and write ``rows.parquet`` and ``meta.json`` into a built folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, described = stats_rows(split, valid)
    if len(rows) == 0:
        raise CsmoeError("no image of the manifest could be decoded; nothing to train on")
    stats = compute_stats(folder, settings.n_s2, rows)
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
        "bands": {"s2": list(s2_bands(settings.n_s2)), "s1": list(S1_BANDS)},
        "dtypes": {"s2": "uint16", "s1": "float16"},
        "stats": stats,
        "stats_rows": described,
        "n_damaged": len(damaged),
        "damaged": damaged[:1000],
    }
    write_text_atomic(folder / "meta.json", json.dumps(meta, indent=2))


def _resolve_size(rows: ManifestRows, settings: CacheSettings) -> int:
    size = settings.size
    if size is None:
        for i in range(len(rows)):
            try:
                size = native_size(rows.s2_path[i])
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
    n = len(rows)
    allocate_arrays(folder, n, size, settings.n_s2)
    items = [(i, rows.s1_path[i], rows.s2_path[i]) for i in range(n)]
    chunk = 16
    batches = [items[a : a + chunk] for a in range(0, n, chunk)]
    args = (str(folder), size, settings.n_s2, settings.s2_bands, settings.s1_bands)
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
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = [pool.submit(_decode_rows, *args, b) for b in batches]
            try:
                for b, fut in zip(batches, futures, strict=True):
                    collect(fut.result(), len(b))
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    else:
        for b in batches:
            collect(_decode_rows(*args, b), len(b))

    bad = [(i, msg) for i, kind, msg in problems if kind == "bands"]
    if bad:
        raise _problem_error(rows, [], bad)
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
) -> ImageryCache:
    """Open the imagery cache of ``manifest``, building (or rebuilding) it when needed.

    Args:
        manifest: the manifest file.
        cache_dir: parent folder of caches (default :func:`default_cache_dir`).
        settings: preprocessing settings (default ``CacheSettings()``: 12 bands, native size).
        n_s2: shortcut for ``settings.n_s2``.
        build: build a missing or stale cache (``False``: raise instead).
        workers: decoding processes (0 or 1: in this process).
        strict: stop at the first damaged image instead of skipping it.
        progress: show a rich progress bar while building.
        log: called with one-line notes (built, reused, imagery unreachable).

    Raises:
        CsmoeError: manifest problems (no imagery, missing bands: counted), a damaged image with
            ``strict`` (also when the reused cache skipped one), no cache and ``build=False``.
    """
    settings = settings or CacheSettings()
    if n_s2 is not None and n_s2 != settings.n_s2:
        settings = CacheSettings(n_s2, settings.size, settings.s2_bands, settings.s1_bands)
    s2_groups(settings.n_s2)  # validates
    say = log or (lambda _msg: None)
    rows = read_manifest_rows(manifest)
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

    if scan.reachable == 0 and (target / "meta.json").is_file():
        say(f"imagery not reachable from this host; using the cache {target} as it is")
        return check(ImageryCache(target))
    if scan.no_imagery or scan.bad_bands:
        raise _problem_error(rows, scan.no_imagery, scan.bad_bands)
    with _lock(root / f".{key}.lock"):
        if (target / "meta.json").is_file():
            cache = ImageryCache(target)
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
        tmp = root / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            with _progress(progress, len(rows), "decoding imagery") as advance:
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


@contextlib.contextmanager
def _progress(enabled: bool, total: int, what: str) -> Iterator[Callable[[int], None] | None]:
    if not enabled:
        yield None
        return
    from csmoe_model.data.progress import progress_bar

    with progress_bar(what, total, unit="pairs") as advance:
        yield advance


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
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
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
