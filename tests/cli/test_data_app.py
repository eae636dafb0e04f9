"""The ``csmoe-data`` root app: its commands, and option defaults that are the library's."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.builder.options import BuildInputs, ExecutionOptions
from csmoe_data.footprints.options import DEFAULT_MAX_CELLS
from csmoe_data.sampling.options import SamplingOptions

runner = CliRunner()


def _defaults(command: str) -> dict[str, object]:
    group = typer.main.get_command(app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    return {p.name: p.default for p in cmd.params}


def test_help_lists_every_data_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("build-manifest", "grid", "stats"):
        assert name in result.output


def test_build_manifest_defaults_are_the_library_defaults() -> None:
    got = _defaults("build-manifest")
    sampling, execution = SamplingOptions(), ExecutionOptions()
    for name in ("n", "alpha", "seed", "min_valid_frac", "where", "min_distance", "strategy"):
        assert got[name] == getattr(sampling, name), name
    assert got["climate_level"] == sampling.climate_level
    assert got["workers"] == execution.workers
    assert got["dask_scheduler"] == execution.dask_scheduler
    assert got["id_column"] == BuildInputs.id_column
    assert got["labels_column"] == BuildInputs.labels_column


def test_grid_default_cap_is_the_library_default() -> None:
    assert _defaults("grid")["max_cells"] == DEFAULT_MAX_CELLS


def test_bad_choice_is_one_line() -> None:
    result = runner.invoke(
        app, ["build-manifest", "--pool", "x.parquet", "--out", "y.parquet", "--strategy", "nope"]
    )
    assert result.exit_code != 0
    assert "nope" in result.output and "Traceback" not in result.output


#: modules a plain build (footprints + one land-cover raster, no sampling, a small job) never
#: needs; each costs from 0.1 s (numba, without its compiled code) to seconds (torch) of start-up
_NOT_FOR_A_PLAIN_BUILD = (
    "numba",  # only for jobs of at least COMPILED_MIN_FOOTPRINTS footprints
    "scipy",
    "sklearn",
    "matplotlib",
    "xarray",
    "dask",
    "distributed",
    "torch",
    "csmoe_data.stats",
    "csmoe_data.plots",
    "csmoe_data.where",
    "csmoe_data.sampling.core",
    "csmoe_data.sampling.coverage",
)


def _plain_build_inputs(tmp_path: Path, geotiff: Callable[..., Path]) -> tuple[Path, Path]:
    import geopandas as gpd
    import numpy as np
    from rasterio.transform import from_origin
    from shapely.geometry import box

    lc = geotiff(
        tmp_path / "lc.tif",
        np.full((20, 20), 10, dtype=np.uint8),
        from_origin(10.0, 46.0, 0.01, 0.01),
        crs="EPSG:4326",
        nodata=0,
    )
    fp = tmp_path / "fp.parquet"
    gpd.GeoDataFrame(
        {"patch_id": ["a", "b"]},
        geometry=[box(10.02, 45.9, 10.05, 45.95), box(10.1, 45.85, 10.15, 45.9)],
        crs="EPSG:4326",
    ).to_parquet(fp)
    return fp, lc


@pytest.mark.parametrize("workers", [1, 2])
def test_a_plain_build_imports_nothing_it_does_not_use(
    tmp_path: Path, geotiff: Callable[..., Path], workers: int
) -> None:
    fp, lc = _plain_build_inputs(tmp_path, geotiff)
    out = tmp_path / "out.parquet"
    args = [
        "build-manifest", "--footprints", str(fp), "--landcover", str(lc),
        "--landcover-legend", "worldcover", "--out", str(out), "--workers", str(workers),
    ]  # fmt: skip
    # the console script's own process: main() as `csmoe-data` runs it, then sys.modules
    code = (
        "import json, sys\n"
        f"sys.argv = ['csmoe-data', *{args!r}]\n"
        "from csmoe_cli.data_app import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "sys.stderr.write('MODULES ' + json.dumps(sorted(sys.modules)))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert out.is_file()
    modules = set(json.loads(res.stderr.rsplit("MODULES ", 1)[1]))
    assert "csmoe_data.builder.pipeline" in modules  # the build ran in this process
    loaded = sorted(
        m
        for m in modules
        for heavy in _NOT_FOR_A_PLAIN_BUILD
        if m == heavy or m.startswith(heavy + ".")
    )
    assert not loaded, f"a plain build imported {loaded}"


def test_main_leaves_the_collector_frozen_for_the_shutdown() -> None:
    code = (
        "import gc, sys\n"
        "sys.argv = ['csmoe-data', '--version']\n"
        "from csmoe_cli.data_app import main\n"
        "assert gc.get_freeze_count() == 0\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('frozen', gc.get_freeze_count())\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "csmoe " in res.stdout  # --version ran
    frozen = int(res.stdout.rsplit("frozen ", 1)[1])
    assert frozen > 10_000  # every object the run left alive, not a handful
