"""Option values far outside what a command can do: one line before any work, or a warning.

Worker counts that would fork thousands of processes, cut-offs beyond the archive that would not
fit in memory, seeds the solver refuses: each case found by trying them, each now checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

HUGE = "99999999999999999999"


@pytest.fixture
def fp(tmp_path: Path, geotiff: Any) -> dict[str, Path]:
    import geopandas as gpd
    import numpy as np
    import shapely
    from rasterio.transform import from_origin

    x0, y0 = 500000.0, 5000000.0
    geotiff(tmp_path / "lc.tif", np.full((100, 100), 40, dtype=np.uint8),
            from_origin(x0, y0, 10, 10), crs="EPSG:32633", nodata=0)  # fmt: skip
    geoms = [shapely.box(x0 + 100 * i, y0 - 300, x0 + 100 * i + 200, y0 - 100) for i in range(4)]
    gpd.GeoDataFrame(geometry=geoms, crs=32633).to_file(tmp_path / "fp.geojson")
    return {"fp": tmp_path / "fp.geojson", "lc": tmp_path / "lc.tif"}


@pytest.mark.parametrize("workers", ["100000", HUGE])
def test_build_manifest_refuses_a_worker_count_beyond_the_machine(
    workers: str, fp: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    before = faults.snapshot(tmp_path)
    res = faults.invoke(faults.DATA_APP, [
        "build-manifest", "--footprints", fp["fp"], "--landcover", fp["lc"], "--landcover-legend",
        "worldcover", "--workers", workers, "--out", tmp_path / "m.parquet"])  # fmt: skip
    faults.assert_one_line_error(res, f"--workers {workers} is more than", "per CPU")
    assert faults.snapshot(tmp_path) == before


def test_cache_refuses_a_worker_count_beyond_the_machine(
    patches: tuple[Path, Any], tmp_path: Path, faults: Any
) -> None:
    manifest, _ = patches
    res = faults.invoke(faults.MODEL_APP, [
        "cache", "--manifest", manifest, "--cache-dir", tmp_path / "cache", "--workers", "100000",
        "--no-progress"])  # fmt: skip
    faults.assert_one_line_error(res, "--workers 100000 is more than")
    assert not (tmp_path / "cache").exists()


def _eval(emb: Path, *args: Any) -> list[Any]:
    return ["eval", *args[:1], "--embeddings", emb, "--labels-column", "labels19", "--device",
            "cpu", *args[1:]]  # fmt: skip


def test_retrieval_k_far_beyond_the_archive_is_one_line(
    emb_file: Path, tmp_path: Path, faults: Any
) -> None:
    res = faults.invoke(faults.MODEL_APP, _eval(emb_file, "retrieval", "--k", HUGE))
    faults.assert_one_line_error(res, "far beyond the archive's 180 item(s)", "--k <= 180")


def test_plot_k_must_be_positive_and_may_exceed_the_archive(
    emb_file: Path, tmp_path: Path, faults: Any
) -> None:
    res = faults.invoke(faults.MODEL_APP, _eval(emb_file, "retrieval", "--plot-k", "0", "--plots",
                                                tmp_path / "p0"))  # fmt: skip
    faults.assert_one_line_error(res, "--plot-k must be at least 1")
    assert not (tmp_path / "p0").exists()
    res = faults.invoke(faults.MODEL_APP, _eval(emb_file, "retrieval", "--plot-k", "99999999",
                                                "--plots", tmp_path / "big"))  # fmt: skip
    assert res.code == 0, res.err
    assert sorted(p.name for p in (tmp_path / "big").iterdir()) == [
        "map_at_k.png", "precision_at_k.png"
    ]  # fmt: skip


def test_knn_k_beyond_the_training_set_is_a_warning_not_a_traceback(
    emb_file: Path, tmp_path: Path, faults: Any
) -> None:
    out = tmp_path / "p.json"
    res = faults.invoke(faults.MODEL_APP, _eval(emb_file, "probe", "--knn-k", HUGE, "--json", out))
    assert res.code == 0, res.err
    assert f"fewer than its k = {HUGE}" in res.err
    small = tmp_path / "small.json"
    res = faults.invoke(faults.MODEL_APP, _eval(emb_file, "probe", "--knn-k", "1000", "--json",
                                                small))  # fmt: skip
    assert res.code == 0, res.err
    import json

    # a k beyond the training rows is the whole training set, whatever its size
    a, b = json.loads(out.read_text()), json.loads(small.read_text())
    assert a["knn"]["macro_map"] == b["knn"]["macro_map"]


@pytest.mark.parametrize("seed", ["-1", HUGE])
def test_probe_seed_outside_the_solver_range_is_one_line(
    seed: str, emb_file: Path, faults: Any
) -> None:
    res = faults.invoke(faults.MODEL_APP, _eval(emb_file, "probe", "--seed", seed))
    faults.assert_one_line_error(res, "--seed must be in 0..4294967295", seed)


@pytest.mark.parametrize(
    ("command", "option", "value", "needle"),
    [
        ("finetune", "--seed", "-1", "--seed must be in 0..4294967295"),
        ("finetune", "--lr", "inf", "--lr must be a finite number > 0"),
        ("segment", "--seed", HUGE, "--seed must be in 0..4294967295"),
        ("train", "--seed", "99999999999", "--seed must be in 0..4294967295"),
        ("study", "--seed", "-1", "--seed must be in 0..4294967295"),
        ("study", "--lr", "nan", "--lr must be a finite number > 0"),
    ],
)
def test_seeds_and_learning_rates_are_checked_before_a_run_folder_exists(
    command: str,
    option: str,
    value: str,
    needle: str,
    signal_data: dict[str, Path],
    tmp_path: Path,
    faults: Any,
) -> None:
    # a seed numpy refuses was a traceback in finetune, after its run folder was written
    out = tmp_path / "out"
    common = ["--manifest", signal_data["manifest"], "--device", "cpu", "--out", out]
    args = {
        "finetune": ["finetune", *common, "--weights", signal_data["weights"], "--labels-column",
                     "labels19", "--max-steps", "1", "--cache-dir", signal_data["cache"]],
        "segment": ["eval", "segment", *common, "--weights", signal_data["weights"], "--max-steps",
                    "1", "--cache-dir", signal_data["cache"]],
        "train": ["train", *common, "--model", "csmoe-tiny", "--max-steps", "1", "--cache-dir",
                  signal_data["cache"]],
        "study": ["study", *common, "--models", "csmoe-tiny"],
    }[command]  # fmt: skip
    res = faults.invoke(faults.MODEL_APP, [*args, option, value])
    faults.assert_one_line_error(res, needle, value)
    assert not out.exists()
