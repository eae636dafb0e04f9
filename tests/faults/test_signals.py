"""SIGTERM and kill -9 of commands running with --workers 2: no survivor, no stuck lock, reruns work.

The commands run as subprocesses in their own session; after the signal every process of that
session (the command, its pool or loader workers) must be gone within a few seconds, and running
the command again must complete (the cache lock was released, stale temporaries are removed).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="uses /proc, named pipes and fork"),
    pytest.mark.slow,
]

#: how long every process of a killed command may take to disappear
GONE_WITHIN_S = 5.0


def stop_and_check(faults: Any, proc: subprocess.Popen[str], sig: int) -> str:
    """Send ``sig`` to the command; assert it and all its processes end; return its stderr."""
    assert proc.poll() is None, "the command ended before it could be signalled"
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: the stacks go to stderr
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"the command did not end within 60 s of signal {sig}:\n{err[-6000:]}")
    faults.wait_for(
        lambda: not faults.session_members(proc.pid), GONE_WITHIN_S, "the workers to die"
    )
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "interrupted" in lines[0], err
        assert "Traceback" not in err, err
    else:
        assert proc.returncode == -signal.SIGKILL
    return err


@pytest.fixture
def hung_manifest(
    tmp_path: Path, patch_factory: Any, manifest_factory: Any, faults: Any
) -> tuple[Path, list[dict[str, Any]]]:
    """32 pairs; rows 1 and 17 (one per 16-row batch, so both workers) read from named pipes."""
    rows = patch_factory(tmp_path, 32, size=12)
    faults.hang_rows(tmp_path, rows, (1, 17))
    return manifest_factory(tmp_path / "m.parquet", rows), rows


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_cache_build_killed(
    sig: int,
    hung_manifest: tuple[Path, list[dict[str, Any]]],
    tmp_path: Path,
    reaper: list,
    faults: Any,
) -> None:
    manifest, rows = hung_manifest
    cache = tmp_path / "cache"
    args = [
        "cache",
        "--manifest",
        manifest,
        "--cache-dir",
        cache,
        "--workers",
        "2",
        "--no-progress",
    ]
    proc = faults.start(faults.MODEL_APP, args, tmp_path)
    reaper.append(proc)
    faults.wait_for(lambda: len(faults.children(proc.pid)) >= 2, 60, "two decoding workers")
    stop_and_check(faults, proc, sig)
    leftovers = [p.name for p in cache.iterdir() if p.name.startswith(".tmp-")]
    assert bool(leftovers) == (sig == signal.SIGKILL)  # SIGTERM cleans up itself
    # the next run is not blocked by a lock and cleans what the killed one left
    faults.unhang(tmp_path, rows)
    again = faults.start(faults.MODEL_APP, args, tmp_path)
    reaper.append(again)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "32 rows (32 usable)" in out
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]
    if sig == signal.SIGKILL:
        assert "left by a build that was stopped" in err


def test_train_building_its_cache_killed(
    hung_manifest: tuple[Path, list[dict[str, Any]]], tmp_path: Path, reaper: list, faults: Any
) -> None:
    manifest, _ = hung_manifest
    args = ["train", "--manifest", manifest, "--model", "csmoe-tiny", "--out", tmp_path / "run",
            "--max-steps", "2", "--batch-size", "4", "--device", "cpu", "--workers", "2",
            "--cache-dir", tmp_path / "cache", "--model-arg", "img_size=16", "--no-progress"]  # fmt: skip
    proc = faults.start(faults.MODEL_APP, args, tmp_path)
    reaper.append(proc)
    faults.wait_for(lambda: len(faults.children(proc.pid)) >= 2, 90, "two decoding workers")
    err = stop_and_check(faults, proc, signal.SIGTERM)
    assert "resume" in err  # train's interrupt line says what to do next
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_training_with_loader_workers_killed_then_resumed(
    tmp_path: Path, patch_factory: Any, manifest_factory: Any, reaper: list, faults: Any
) -> None:
    rows = patch_factory(tmp_path, 16, size=12)
    manifest = manifest_factory(tmp_path / "m.parquet", rows)
    run = tmp_path / "run"
    args = ["train", "--manifest", manifest, "--model", "csmoe-tiny", "--out", run,
            "--max-steps", "12", "--batch-size", "4", "--device", "cpu", "--workers", "2",
            "--checkpoint-every", "2", "--log-every", "2", "--cache-dir", tmp_path / "cache",
            "--model-arg", "img_size=16", "--no-progress"]  # fmt: skip
    proc = faults.start(faults.MODEL_APP, args, tmp_path)
    reaper.append(proc)
    faults.wait_for(
        lambda: (run / "checkpoints" / "latest").is_file() and len(faults.children(proc.pid)) >= 2,
        120,
        "a checkpoint and two loader workers",
    )
    stop_and_check(faults, proc, signal.SIGKILL)
    again = faults.start(faults.MODEL_APP, [*args, "--resume"], tmp_path)
    reaper.append(again)
    out, err = again.communicate(timeout=240)
    assert again.returncode == 0, err
    assert "resuming" in err and "trained csmoe-tiny for 12 steps" in out


def _landcover_on_a_pipe(folder: Path, geotiff: Any) -> Path:
    """A VRT whose first block is a real GeoTIFF and whose lower right block is a named pipe.

    ``build-manifest`` decodes the first block in the parent (to catch a corrupt file early)
    and the footprints' windows in the workers: the workers block on the pipe.
    """
    import os

    import rasterio
    from rasterio.transform import from_origin

    x0, y0 = 500000.0, 5000000.0
    lc = np.full((100, 100), 40, dtype=np.uint8)
    lc[:, 50:] = 10
    geotiff(folder / "lc_real.tif", lc, from_origin(x0, y0, 10, 10), crs="EPSG:32633", nodata=0)
    os.mkfifo(folder / "lc_pipe.tif")
    with rasterio.open(folder / "lc_real.tif") as src:
        wkt = src.crs.to_wkt().replace('"', "&quot;")

    def source(name: str, x: int, y: int) -> str:
        return (
            f'<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename>'
            "<SourceBand>1</SourceBand>"
            '<SourceProperties RasterXSize="100" RasterYSize="100" DataType="Byte" '
            'BlockXSize="100" BlockYSize="100"/>'
            '<SrcRect xOff="0" yOff="0" xSize="100" ySize="100"/>'
            f'<DstRect xOff="{x}" yOff="{y}" xSize="100" ySize="100"/></SimpleSource>'
        )

    vrt = folder / "lc.vrt"
    vrt.write_text(
        f'<VRTDataset rasterXSize="256" rasterYSize="256"><SRS>{wkt}</SRS>'
        f"<GeoTransform>{x0}, 10, 0, {y0}, 0, -10</GeoTransform>"
        '<VRTRasterBand dataType="Byte" band="1" blockXSize="128" blockYSize="128">'
        "<NoDataValue>0</NoDataValue>"
        + source("lc_real.tif", 0, 0)
        + source("lc_pipe.tif", 128, 128)
        + "</VRTRasterBand></VRTDataset>"
    )
    return vrt


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_build_manifest_killed(
    sig: int, tmp_path: Path, geotiff: Any, reaper: list, faults: Any
) -> None:
    import geopandas as gpd
    import shapely
    from rasterio.transform import from_origin

    vrt = _landcover_on_a_pipe(tmp_path, geotiff)
    kg = np.full((10, 10), 10, dtype=np.uint8)  # Rubel 10 = Cfb
    geotiff(tmp_path / "kg.tif", kg, from_origin(14.0, 46.0, 0.2, 0.2), crs="EPSG:4326", nodata=32)
    x0, y0 = 500000.0 + 1300, 5000000.0 - 1300
    geoms = [
        shapely.box(x0 + 10 * (i % 70), y0 - 200, x0 + 10 * (i % 70) + 200, y0) for i in range(60)
    ]
    gpd.GeoDataFrame({"tile_id": [f"t{i}" for i in range(60)]}, geometry=geoms, crs=32633).to_file(
        tmp_path / "fp.geojson"
    )
    args = ["build-manifest", "--footprints", "fp.geojson", "--landcover", vrt.name,
            "--landcover-legend", "worldcover", "--climate", "kg.tif", "--climate-legend",
            "koppen-rubel", "--out", "m.parquet", "--id-column", "tile_id", "--workers", "2"]  # fmt: skip
    proc = faults.start(faults.DATA_APP, args, tmp_path)
    reaper.append(proc)
    faults.wait_for(lambda: len(faults.children(proc.pid)) >= 2, 60, "two workers")
    stop_and_check(faults, proc, sig)
    assert not (tmp_path / "m.parquet").exists()  # nothing half-written
    if sig == signal.SIGKILL:  # the rerun completes once the file system "recovers"
        (tmp_path / "lc_pipe.tif").unlink()
        (tmp_path / "lc_pipe.tif").write_bytes((tmp_path / "lc_real.tif").read_bytes())
        again = faults.start(faults.DATA_APP, args, tmp_path)
        reaper.append(again)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert (tmp_path / "m.parquet").is_file()
