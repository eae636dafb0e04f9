"""Build a descriptor manifest: footprints + land-cover and climate rasters -> GeoParquet.

:func:`build_manifest` loads footprints (any source :func:`csmoe_data.footprints.load_footprints`
understands), validates everything up front (output path, legends, rasters), computes the
descriptors in chunks (a process pool with ``workers > 1``, or a Dask cluster), and writes the
manifest atomically. With sampling options it then selects rows with
:func:`csmoe_data.sampling.sample_manifest`; with ``pool`` it skips the rasters and samples an
existing manifest.

Determinism: footprints are processed in a spatially sorted order for raster locality, but
results go back to the input order, and nothing that depends on the number of workers or the
scheduler enters the file, so the output is byte-identical whatever ``workers`` or Dask.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csmoe_data.errors import CsmoeDataError
from csmoe_data.legends import Legend, load_legend
from csmoe_data.rasters import RasterInfo, inspect_raster

#: footprints per task; bounded memory per worker, enough work to amortise the task overhead
DEFAULT_CHUNK_SIZE = 2000
#: extra vertices per footprint edge before reprojection
DENSIFY_PTS = 21
#: jobs with at least this many footprints use the compiled kernels (numba's start-up, about
#: 0.5 s per process, costs more than it saves below); decided per job, so that every worker
#: of one job takes the same path
COMPILED_MIN_FOOTPRINTS = 6000
#: columns holding imagery paths, written relative to the manifest where possible
IMAGERY_COLUMNS = ("s1_path", "s2_path", "image_path")


@dataclass(frozen=True)
class RasterSpec:
    """A raster with its legend, as sent to workers."""

    info: RasterInfo
    legend: Legend


@dataclass
class BuildResult:
    """What :func:`build_manifest` did.

    Attributes:
        path: the written manifest.
        rows: rows written.
        pool_rows: rows before sampling (equals ``rows`` without sampling).
        metadata: the ``csmoe`` metadata written.
        valid_frac: mean ``lc_valid_frac`` / ``kg_valid_frac`` of the written rows.
        unknown_codes: kind -> {raster value: covered pixel area} for values the legends lack.
        repaired: invalid footprint geometries repaired.
        dropped: footprints dropped while loading.
        notes: remarks from loading.
    """

    path: Path
    rows: int
    pool_rows: int
    metadata: dict[str, Any]
    valid_frac: dict[str, float] = field(default_factory=dict)
    unknown_codes: dict[str, dict[int, float]] = field(default_factory=dict)
    repaired: int = 0
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- worker side


def describe_chunk(
    wkb: np.ndarray,
    crs_values: np.ndarray,
    specs: dict[str, RasterSpec],
    densify_pts: int = DENSIFY_PTS,
    compiled: bool = True,
) -> dict[str, Any]:
    """Describe one chunk of footprints (runs in a worker process or a Dask worker).

    Args:
        wkb: footprints as WKB bytes, each in its own CRS.
        crs_values: each footprint's CRS.
        specs: ``landcover`` and/or ``climate`` raster specs.
        densify_pts: extra vertices per edge before reprojection.
        compiled: use the compiled kernels (see :func:`csmoe_data.descriptors.class_areas`).

    Returns:
        ``{"geometry": WKB in EPSG:4326, "<kind>": DataFrame, "<kind>_unknown": {...},
        "<kind>_unknown_rows": int}``.
    """
    import shapely

    from csmoe_data.descriptors import class_areas, describe
    from csmoe_data.geometry import transform_geometries_by_crs

    geoms = shapely.from_wkb(wkb)
    crs_list = [str(c) for c in crs_values]
    transformed: dict[
        str, np.ndarray
    ] = {}  # one reprojection per target CRS (4326 is often shared)

    def to(crs: str) -> np.ndarray:
        if crs not in transformed:
            transformed[crs] = transform_geometries_by_crs(geoms, crs_list, crs, densify_pts)
        return transformed[crs]

    out: dict[str, Any] = {}
    for kind, spec in specs.items():
        ca = class_areas(to(spec.info.crs), spec.info, spec.legend, compiled)
        out[kind] = describe(ca, spec.legend)
        out[f"{kind}_unknown"] = ca.unknown
        out[f"{kind}_unknown_rows"] = ca.unknown_rows
    out["geometry"] = shapely.to_wkb(to("EPSG:4326"))
    return out


def _init_worker() -> None:
    # Ctrl-C is handled by the parent, which cancels the pool; workers stay quiet
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a worker must not inherit the parent's open GDAL handles (fork)
    from csmoe_data import rasters

    rasters._OPEN.clear()


# --------------------------------------------------------------------------- main side


def _spatial_order(geoms: np.ndarray, crs_values: np.ndarray) -> np.ndarray:
    """Order footprints by 1-degree cell of their centroid (locality for raster reads)."""
    import shapely

    from csmoe_data.geometry import transform_geometries_by_crs

    cent = shapely.centroid(geoms)
    ll = transform_geometries_by_crs(cent, list(crs_values), "EPSG:4326", 0)
    x = np.nan_to_num(shapely.get_x(ll), nan=0.0)
    y = np.nan_to_num(shapely.get_y(ll), nan=0.0)
    # serpentine rows keep neighbouring cells next to each other
    row = np.floor(y).astype(np.int64)
    col = np.floor(x).astype(np.int64)
    col = np.where(row % 2 == 0, col, -col)
    return np.lexsort((x, col, row))


def _progress(enabled: bool, total: int, description: str) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _Rate(TextColumn):
        def render(self, task: Any) -> Any:  # patches per second
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(
                f"{speed:,.0f} patches/s" if speed else "- patches/s", style="progress.data.speed"
            )

    prog = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(""),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # stdout stays for the summary
        disable=not enabled,
        transient=False,
    )
    task = prog.add_task(description, total=total)
    return prog, task


def _run_chunks(
    tasks: list[tuple[np.ndarray, np.ndarray]],
    specs: dict[str, RasterSpec],
    densify_pts: int,
    compiled: bool,
    workers: int,
    dask_scheduler: str | None,
    on_done: Callable[[int, dict[str, Any]], None],
) -> None:
    """Run :func:`describe_chunk` over ``tasks`` with bounded tasks in flight."""
    if dask_scheduler:
        _run_dask(tasks, specs, densify_pts, compiled, dask_scheduler, on_done)
        return
    if workers <= 1:
        for i, (wkb, crs) in enumerate(tasks):
            on_done(i, describe_chunk(wkb, crs, specs, densify_pts, compiled))
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
    pending: dict[Future[dict[str, Any]], int] = {}
    it: Iterator[int] = iter(range(len(tasks)))
    try:
        for i in it:
            pending[executor.submit(describe_chunk, *tasks[i], specs, densify_pts, compiled)] = i
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                on_done(i, fut.result())
                nxt = next(it, None)
                if nxt is not None:
                    pending[
                        executor.submit(describe_chunk, *tasks[nxt], specs, densify_pts, compiled)
                    ] = nxt
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _run_dask(
    tasks: list[tuple[np.ndarray, np.ndarray]],
    specs: dict[str, RasterSpec],
    densify_pts: int,
    compiled: bool,
    address: str,
    on_done: Callable[[int, dict[str, Any]], None],
) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise CsmoeDataError(
            "--dask-scheduler needs dask.distributed: pip install 'csmoe[dask]'"
        ) from exc
    try:
        client = Client(address, timeout="20s", set_as_default=True)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CsmoeDataError(f"cannot connect to the Dask scheduler at {address}: {exc}") from exc
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        window = 2 * n_workers + 2
        spec_f = client.scatter(specs, broadcast=True)
        it = iter(range(len(tasks)))
        futures = {}
        for i in it:
            futures[
                client.submit(describe_chunk, *tasks[i], spec_f, densify_pts, compiled, pure=False)
            ] = i
            if len(futures) >= window:
                break
        ac = as_completed(list(futures))
        for fut in ac:
            i = futures.pop(fut)
            on_done(i, fut.result())
            fut.release()
            nxt = next(it, None)
            if nxt is not None:
                f = client.submit(
                    describe_chunk, *tasks[nxt], spec_f, densify_pts, compiled, pure=False
                )
                futures[f] = nxt
                ac.add(f)
    finally:
        client.close()


def project_root(folder: Path) -> Path | None:
    """The nearest folder at or above ``folder`` holding ``pyproject.toml`` or ``.git``."""
    for d in (folder, *folder.parents):
        if (d / "pyproject.toml").exists() or (d / ".git").exists():
            return d
    return None


def relative_paths(values: pd.Series, out_dir: Path) -> pd.Series:
    """Imagery paths as written into a manifest in ``out_dir``.

    Relative to the manifest's folder when the imagery lies below it; also relative (with
    ``..``) when the manifest and the imagery lie in the same project tree (below the nearest
    folder above the manifest holding ``pyproject.toml`` or ``.git``), so that a manifest
    committed beside its imagery, like the bundled ``data_manifests/bigearthnet_sample.parquet``,
    stays valid wherever the tree is cloned; otherwise absolute (never ``../../..`` out of, say,
    ``/tmp`` into an unrelated tree).
    """
    out_dir = out_dir.resolve()
    root = project_root(out_dir)

    def rel(v: Any) -> Any:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return None
        p = Path(str(v)).resolve()
        if p.is_relative_to(out_dir):
            return p.relative_to(out_dir).as_posix()
        if root is not None and p.is_relative_to(root):
            return Path(os.path.relpath(p, out_dir)).as_posix()
        return str(p)

    return pd.Series([rel(v) for v in values], index=values.index, dtype="string")


def _input_entry(info: RasterInfo, given: str | Path) -> dict[str, Any]:
    from csmoe_data.manifest import file_sha256
    from csmoe_data.samples import is_sample

    entry = info.to_metadata()
    entry["sha256"] = file_sha256(info.path)
    if is_sample(given):  # portable: embedded samples move with the installation
        entry["path"] = str(given)
    return entry


def _footprints_entry(
    source: str, resolved: Path, crs_values: list[str], rows: int
) -> dict[str, Any]:
    import hashlib

    from csmoe_data.manifest import file_sha256
    from csmoe_data.samples import is_sample

    path = source if is_sample(source) else str(resolved.resolve())
    entry: dict[str, Any] = {"path": path, "crs": crs_values, "rows": rows}
    if resolved.is_file():
        entry["sha256"] = file_sha256(resolved)
    elif resolved.is_dir():
        # hashing every image of an archive would read terabytes; the listing identifies it
        digest = hashlib.sha256()
        for f in sorted(p for p in resolved.rglob("*") if p.is_file()):
            digest.update(f"{f.relative_to(resolved).as_posix()}\t{f.stat().st_size}\n".encode())
        entry["listing_sha256"] = digest.hexdigest()
    return entry


def sampling_requested(options: Any) -> bool:
    """Whether sampling options ask for a selection (``n``, ``split`` or ``where``)."""
    return options is not None and (
        options.n is not None or options.split is not None or options.where is not None
    )


def build_manifest(
    footprints: str | Path | None,
    out: str | Path,
    landcover: str | Path | None = None,
    landcover_legend: str | None = None,
    climate: str | Path | None = None,
    climate_legend: str | None = None,
    id_column: str = "patch_id",
    labels_column: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    dask_scheduler: str | None = None,
    sampling: Any = None,
    pool: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    densify_pts: int = DENSIFY_PTS,
    progress: bool = True,
) -> BuildResult:
    """Compute thematic-climatic descriptors for footprints and write a GeoParquet manifest.

    Args:
        footprints: vector file, folder of patch rasters, BigEarthNet root or ``sample:bigearthnet``
            (ignored with ``pool``).
        out: the manifest to write (``.parquet``).
        landcover: land-cover raster (path or ``sample:modis-igbp``); optional if ``climate`` is given.
        landcover_legend: built-in legend name or a JSON/CSV legend file.
        climate: Köppen-Geiger raster (path or ``sample:koppen-rubel``).
        climate_legend: ``koppen-rubel``, ``koppen-beck`` or a legend file.
        id_column: footprint id column of a vector source.
        labels_column: optional column of a vector source holding labels.
        workers: processes (1 = in this process).
        overwrite: replace an existing ``out``.
        dask_scheduler: address of a Dask distributed scheduler (``tcp://host:8786``); the
            output is identical to a local run.
        sampling: :class:`csmoe_data.sampling.SamplingOptions`; rows are selected when it sets
            ``n``, ``split`` or ``where``.
        pool: an existing descriptor manifest to sample instead of computing descriptors.
        chunk_size: footprints per task.
        densify_pts: extra vertices per footprint edge before reprojection.
        progress: show a progress bar (rich; quiet when not a terminal).

    Returns:
        A :class:`BuildResult`.

    Raises:
        CsmoeDataError: bad input (missing/unreadable/corrupt files, raster without CRS, empty
            footprint source, duplicate or missing ids, unknown legend, bad options, an
            existing output without ``overwrite``). Nothing is written then.
    """
    from csmoe_data import __version__
    from csmoe_data.atomic import check_output_path
    from csmoe_data.samples import resolve_path

    out = Path(out)
    if workers < 1:
        raise CsmoeDataError(f"--workers must be >= 1, not {workers}")
    if chunk_size < 1:
        raise CsmoeDataError(f"chunk size must be >= 1, not {chunk_size}")
    check_output_path(out, overwrite)  # fail before any long work
    if pool is not None:
        extra = [
            name
            for name, value in (
                ("--footprints", footprints),
                ("--landcover", landcover),
                ("--climate", climate),
            )
            if value
        ]
        if extra:
            raise CsmoeDataError(f"--pool samples an existing manifest; drop {', '.join(extra)}")
        return _sample_pool(pool, out, sampling, overwrite)
    if footprints is None:
        raise CsmoeDataError("--footprints is required (or --pool to sample an existing manifest)")
    if landcover is None and climate is None:
        raise CsmoeDataError(
            "give --landcover and/or --climate (a manifest needs at least one descriptor)"
        )

    specs: dict[str, RasterSpec] = {}
    given: dict[str, str | Path] = {}
    for kind, raster, legend_spec, role in (
        ("landcover", landcover, landcover_legend, "land-cover raster"),
        ("climate", climate, climate_legend, "climate raster"),
    ):
        if raster is None:
            if legend_spec is not None:
                raise CsmoeDataError(f"--{kind}-legend is given without --{kind}")
            continue
        if legend_spec is None:
            raise CsmoeDataError(
                f"--{kind} needs --{kind}-legend (a built-in name or a legend file)"
            )
        legend = load_legend(
            resolve_path(legend_spec) if str(legend_spec).startswith("sample:") else legend_spec,
            kind,
        )
        specs[kind] = RasterSpec(inspect_raster(raster, role), legend)
        given[kind] = raster

    from csmoe_data.footprints import load_footprints

    fp = load_footprints(footprints, id_column=id_column, labels_column=labels_column)
    table = fp.table
    if len(table) == 0:
        raise CsmoeDataError(f"no footprints in {footprints}")
    resolved_fp = resolve_path(footprints)

    import geopandas as gpd
    import shapely

    geoms = np.asarray(table["geometry"].values, dtype=object)
    crs_values = np.asarray(table["crs"].astype(str).to_numpy(), dtype=object)
    order = _spatial_order(geoms, crs_values)
    wkb_sorted = shapely.to_wkb(geoms[order])
    crs_sorted = crs_values[order]
    tasks = [
        (wkb_sorted[s : s + chunk_size], crs_sorted[s : s + chunk_size])
        for s in range(0, len(order), chunk_size)
    ]

    n = len(table)
    compiled = n >= COMPILED_MIN_FOOTPRINTS
    frames: dict[str, list[pd.DataFrame | None]] = {k: [None] * len(tasks) for k in specs}
    geometry_wkb = np.empty(n, dtype=object)
    # per-chunk unknown-code tallies, summed in chunk order afterwards (deterministic floats)
    chunk_unknown: dict[str, list[dict[int, float]]] = {k: [{}] * len(tasks) for k in specs}
    unknown_rows: dict[str, int] = dict.fromkeys(specs, 0)
    prog, task_id = _progress(progress, n, "describing footprints")

    def on_done(i: int, result: dict[str, Any]) -> None:
        sl = order[i * chunk_size : (i + 1) * chunk_size]
        geometry_wkb[sl] = result["geometry"]
        for k in specs:
            frames[k][i] = result[k]
            chunk_unknown[k][i] = result[f"{k}_unknown"]
            unknown_rows[k] += result[f"{k}_unknown_rows"]
        prog.advance(task_id, len(sl))

    with prog:
        _run_chunks(tasks, specs, densify_pts, compiled, workers, dask_scheduler, on_done)
    unknown: dict[str, dict[int, float]] = {k: {} for k in specs}
    for k in specs:
        for tally in chunk_unknown[k]:
            for v, a in tally.items():
                unknown[k][v] = unknown[k].get(v, 0.0) + a

    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    desc = []
    for k in specs:
        sorted_df = pd.concat(frames[k], ignore_index=True)
        desc.append(sorted_df.iloc[inverse].reset_index(drop=True))
    descriptors = pd.concat(desc, axis=1) if desc else pd.DataFrame(index=range(n))

    attrs = table.drop(columns=["geometry"]).reset_index(drop=True)
    clash = [c for c in descriptors.columns if c in attrs.columns]
    attrs = attrs.drop(columns=clash)  # computed descriptors win over same-named attributes
    for col in IMAGERY_COLUMNS:
        if col in attrs.columns:
            attrs[col] = relative_paths(attrs[col], out.parent)
    front = ["patch_id", "crs"]
    attrs = attrs[front + [c for c in attrs.columns if c not in front]]
    attrs["patch_id"] = attrs["patch_id"].astype("string")
    attrs["crs"] = attrs["crs"].astype("string")
    gdf = gpd.GeoDataFrame(
        pd.concat([attrs, descriptors], axis=1),
        geometry=gpd.GeoSeries.from_wkb(geometry_wkb, crs="EPSG:4326"),
        crs="EPSG:4326",
    )
    missing_geom = int(gdf.geometry.isna().sum())

    metadata: dict[str, Any] = {
        "tool": {"name": "csmoe", "version": __version__, "command": "build-manifest"},
        "inputs": {"footprints": _footprints_entry(str(footprints), resolved_fp, fp.crs_values, n)},
        "legends": {},
        "parameters": {
            "id_column": id_column,
            "labels_column": labels_column,
            "densify_pts": densify_pts,
            "weighting": "exact pixel/footprint overlap area (pixel units of each raster)",
            "entropy": "Shannon entropy of lc_ fractions, natural log (nats)",
        },
        "footprints": {
            "rows": n,
            "repaired": fp.repaired,
            "dropped": fp.dropped,
            "notes": list(fp.notes),
            "geometry_not_transformable": missing_geom,
        },
        "unknown_codes": {},
    }
    for k, spec in specs.items():
        metadata["inputs"][k] = _input_entry(spec.info, given[k])
        metadata["legends"][k] = spec.legend.to_metadata()
        metadata["unknown_codes"][k] = {
            "values": {str(v): round(a, 6) for v, a in sorted(unknown[k].items())},
            "rows": unknown_rows[k],
        }
    pool_rows = len(gdf)
    if sampling_requested(sampling):
        from csmoe_data.sampling import sample_manifest

        gdf, entry = sample_manifest(gdf, sampling)
        metadata["sampling"] = entry
    from csmoe_data.manifest import write_manifest

    path = write_manifest(gdf, out, metadata, overwrite=overwrite)
    return BuildResult(
        path=path,
        rows=len(gdf),
        pool_rows=pool_rows,
        metadata=metadata,
        valid_frac=_valid_summary(gdf),
        unknown_codes=unknown,
        repaired=fp.repaired,
        dropped=fp.dropped,
        notes=list(fp.notes),
    )


def _valid_summary(gdf: pd.DataFrame) -> dict[str, float]:
    out = {}
    for kind, col in (("landcover", "lc_valid_frac"), ("climate", "kg_valid_frac")):
        if col in gdf.columns and len(gdf):
            out[kind] = float(np.nanmean(gdf[col].to_numpy(dtype=np.float64)))
    return out


def _sample_pool(pool: str | Path, out: Path, sampling: Any, overwrite: bool) -> BuildResult:
    """Sample an existing manifest (``--pool``)."""
    from csmoe_data.manifest import file_sha256, read_manifest, write_manifest
    from csmoe_data.samples import resolve_path
    from csmoe_data.sampling import SamplingOptions, sample_manifest

    pool_path = resolve_path(pool)
    gdf, meta = read_manifest(pool_path)
    if pool_path.resolve() == out.resolve():
        raise CsmoeDataError("--pool and --out are the same file; write the sample to a new file")
    checksum = file_sha256(pool_path)
    gdf2, entry = sample_manifest(gdf, sampling or SamplingOptions(), checksum)
    metadata = dict(meta)
    metadata["pool"] = {"path": str(pool_path.resolve()), "sha256": checksum, "rows": len(gdf)}
    metadata["sampling"] = entry
    path = write_manifest(gdf2, out, metadata, overwrite=overwrite)
    unknown = {
        k: {int(v): a for v, a in d.get("values", {}).items()}
        for k, d in meta.get("unknown_codes", {}).items()
    }
    return BuildResult(
        path=path,
        rows=len(gdf2),
        pool_rows=len(gdf),
        metadata=metadata,
        valid_frac=_valid_summary(gdf2),
        unknown_codes=unknown,
        repaired=int(meta.get("footprints", {}).get("repaired", 0)),
        dropped=int(meta.get("footprints", {}).get("dropped", 0)),
    )


def default_workers() -> int:
    """A sensible default for ``--workers``: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
