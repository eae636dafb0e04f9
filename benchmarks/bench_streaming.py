"""Peak memory (PSS of the whole process tree) and time of ``csmoe-data build-manifest`` at scale.

Footprints: ``--n`` lon/lat squares (EPSG:4326) laid row by row over 60 S - 80 N (a contiguous
grid, ~0.07 deg cells at 10 M), written as GeoParquet in row groups by the script itself (the
script never holds all of them). Rasters: the embedded real samples (MODIS MCD12C1 IGBP 0.05 deg,
Köppen-Geiger 5 arcmin). The CLI runs as a subprocess; every ``--interval`` seconds the script
reads ``/proc/<pid>/smaps_rollup`` of the CLI process and all its descendants (the worker
processes) and sums their ``Pss`` (proportional set size: shared pages counted once across the
tree), keeping the peak. With ``--dask`` a local Dask cluster (2 worker processes, started by
this script, not counted) does the work and the CLI is only the client: its tree is measured.

Usage::

    python benchmarks/bench_streaming.py --n 1000000 --workers 2
    python benchmarks/bench_streaming.py --n 10000000 --workers 2 --timeout 1800
    python benchmarks/bench_streaming.py --n 1000000 --dask
    python benchmarks/bench_streaming.py --n 10000000 --dir W --identity-every 200

``--identity-every K`` then checks the output against a chunk size of 1: every K-th footprint
is written to a second GeoParquet file, built again in this process with ``chunk_size=1`` and
9,999-row batches (2 workers), and its rows are compared, column by column, with the same rows
of the big manifest (the metadata differs by construction: counts, bounds, source path). The
SHA-256 of the big manifest is printed as well. ``--skip-build`` reuses the manifest of an
earlier run with the same ``--dir``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DESCRIPTORS = [
    "--landcover", "sample:modis-igbp", "--landcover-legend", "modis-igbp",
    "--climate", "sample:koppen-rubel", "--climate-legend", "koppen-rubel",
]  # fmt: skip


def write_footprints(path: Path, n: int, group: int = 250_000) -> float:
    """``n`` contiguous lon/lat squares over 60 S - 80 N, written in row groups; returns the cell size."""
    import geopandas as gpd
    import shapely

    from csmoe_data.builder.write import ManifestWriter

    cell = float(np.sqrt(360.0 * 140.0 / n))
    cols = int(np.ceil(360.0 / cell))
    with ManifestWriter(path, overwrite=True) as writer:
        for start in range(0, n, group):
            i = np.arange(start, min(n, start + group))
            x = -180.0 + (i % cols) * cell
            y = -60.0 + (i // cols) * cell
            gdf = gpd.GeoDataFrame(
                {"patch_id": np.char.add("c", i.astype(str)).astype(object)},
                geometry=shapely.box(x, y, x + cell, y + cell),
                crs="EPSG:4326",
            )
            writer.write(gdf)
        writer.close({"tool": {"name": "bench_streaming"}})
    return cell


def check_identity(footprints: Path, manifest: Path, every: int, work: Path) -> None:
    """Every ``every``-th footprint built again with chunk size 1; its rows compared (prints)."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from csmoe_data.builder import BuildInputs, ExecutionOptions, build_manifest

    def every_kth(path: Path) -> list[pa.RecordBatch]:
        out, start = [], 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
            idx = np.arange(start, start + batch.num_rows)
            out.append(batch.take(pa.array(np.flatnonzero(idx % every == 0))))
            start += batch.num_rows
        return out

    t = time.perf_counter()
    sub = work / f"footprints_every_{every}.parquet"
    schema = pq.ParquetFile(footprints).schema_arrow
    with pq.ParquetWriter(sub, schema) as writer:
        for batch in every_kth(footprints):
            writer.write_batch(batch)
    inputs = BuildInputs(
        sub,
        landcover="sample:modis-igbp",
        landcover_legend="modis-igbp",
        climate="sample:koppen-rubel",
        climate_legend="koppen-rubel",
    )
    sub_out = work / f"manifest_every_{every}_chunk1.parquet"
    execution = ExecutionOptions(workers=2, chunk_size=1, progress=False)
    build_manifest(inputs, sub_out, execution, overwrite=True, batch_rows=9_999)
    expected = pa.Table.from_batches(every_kth(manifest)).replace_schema_metadata(None)
    got = pq.read_table(sub_out).replace_schema_metadata(None)
    differ = [
        name
        for name in expected.column_names
        if name not in got.column_names or not expected[name].equals(got[name])
    ]
    sha = hashlib.sha256()
    with open(manifest, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            sha.update(block)
    print(
        f"identity: {got.num_rows:,} rows (every {every}th footprint) built with chunk size 1 and "
        f"9,999-row batches vs the same rows of the manifest: "
        + ("identical" if not differ and got.num_rows == expected.num_rows else f"DIFFER {differ}")
        + f" ({len(expected.column_names)} columns, {time.perf_counter() - t:.0f} s); "
        f"manifest sha256 {sha.hexdigest()[:16]}"
    )


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def tree_pss(pid: int) -> dict[int, int]:
    """Pss (KiB) of ``pid`` and of each of its descendants."""
    out: dict[int, int] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        out[p] = int(line.split()[1])
                        break
        except OSError:
            continue
        todo += _children(p)
    return out


def cpu_seconds(pid: int) -> float | None:
    """user + sys CPU seconds of ``pid`` so far (``/proc/<pid>/stat``), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pss_kib(pid: int) -> tuple[int, int]:
    """Summed Pss (KiB) of ``pid`` and its descendants, and the number of processes."""
    per = tree_pss(pid)
    return sum(per.values()), len(per)


def run(cmd: list[str], interval: float, timeout: float, trace: float = 0.0) -> dict[str, float]:
    """Run ``cmd``, sampling the PSS of its process tree; returns peak, time, processes.

    With ``trace`` > 0 the PSS of every process (parent first, MiB) is printed every ``trace`` s.
    """
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # like an installed package: byte-compiled modules are cached (this environment may say not)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    peak, peak_procs = 0, 0
    next_trace = trace
    cpu_of: dict[int, float] = {}  # the last CPU seconds seen of each process of the tree
    while proc.poll() is None:
        per = tree_pss(proc.pid)
        for p in per:
            seen = cpu_seconds(p)
            if seen is not None:
                cpu_of[p] = seen
        pss, procs = sum(per.values()), len(per)
        if pss > peak:
            peak, peak_procs = pss, procs
        elapsed = time.perf_counter() - t0
        if trace > 0 and elapsed >= next_trace:
            parts = " + ".join(f"{v / 1024:.0f}" for v in per.values())
            load = os.getloadavg()[0]
            print(
                f"  t={elapsed:6.1f} s  PSS {pss / 1024:,.0f} MiB = {parts}  (load {load:.1f})",
                flush=True,
            )
            next_trace += trace
        if time.perf_counter() - t0 > timeout:
            proc.terminate()
            proc.wait(30)
            raise SystemExit(f"timed out after {timeout:.0f} s")
        time.sleep(interval)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({proc.returncode}):\n{output[-3000:]}")
    workers = [v for p, v in cpu_of.items() if p != proc.pid]
    return {
        "peak_pss_mib": peak / 1024.0,
        "wall_s": wall,
        "cpu_s": cpu,
        "processes": peak_procs,
        # the parent's own CPU is the tree's minus its workers' (sampled, up to one interval late)
        "workers_cpu_s": sum(workers),
        "workers": len(workers),
    }


def measure(args: argparse.Namespace, fp: Path, out: Path) -> None:
    """Run the CLI on ``fp`` and print its peak PSS and time."""
    cmd = [sys.executable, "-m", "csmoe_cli.data_app", "build-manifest", "--footprints", str(fp),
           *DESCRIPTORS, "--out", str(out), "--overwrite"]  # fmt: skip
    cluster = None
    if args.dask:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)  # fmt: skip
        cmd += ["--dask-scheduler", cluster.scheduler_address]
        mode = "Dask client (2 worker processes not counted)"
    else:
        cmd += ["--workers", str(args.workers)]
        mode = f"--workers {args.workers} (parent + workers)"
    try:
        r = run(cmd, args.interval, args.timeout, args.trace)
    finally:
        if cluster is not None:
            cluster.close()
    rows = args.n
    print(
        f"{rows:,} footprints, {mode}: peak PSS {r['peak_pss_mib']:,.0f} MiB over "
        f"{r['processes']} processes, {r['wall_s']:.1f} s ({rows / r['wall_s']:,.0f} patches/s, "
        f"{r['wall_s'] / rows * 1e6:.1f} us per footprint); CPU (user+sys, parent and "
        f"workers) {r['cpu_s']:.1f} s"
    )
    if r["workers"]:
        print(
            f"CPU by process (sampled): parent {r['cpu_s'] - r['workers_cpu_s']:.1f} s, "
            f"{r['workers']} workers {r['workers_cpu_s']:.1f} s"
        )
    print(f"output {out.stat().st_size / 2**20:,.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="footprints")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dask", action="store_true", help="through a local Dask cluster (2 workers)")
    ap.add_argument("--interval", type=float, default=0.25, help="PSS sampling interval, s")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument(
        "--dir", type=Path, default=None, help="work folder, footprint files kept (default: temp)"
    )
    ap.add_argument("--trace", type=float, default=0.0, help="print per-process PSS every N s")
    ap.add_argument(
        "--identity-every", type=int, default=0, help="check every K-th row against chunk size 1"
    )
    ap.add_argument("--skip-build", action="store_true", help="reuse the manifest in --dir")
    args = ap.parse_args()

    print(f"load average at start: {os.getloadavg()}, CPUs: {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(args.dir or tmp)
        fp = work / f"footprints_{args.n}.parquet"
        if not fp.exists():
            t = time.perf_counter()
            cell = write_footprints(fp, args.n)
            print(
                f"wrote {args.n:,} footprints ({cell:.4f} deg cells) in {time.perf_counter() - t:.1f} s"
            )
        out = work / f"manifest_{args.n}.parquet"
        if not (args.skip_build and out.exists()):
            measure(args, fp, out)
        if args.identity_every > 0:
            check_identity(fp, out, args.identity_every, work)
    print(f"load average at end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
