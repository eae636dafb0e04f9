"""Every command that writes, on a target that refuses: read-only, full, a long name, unreadable input.

Each case runs the real command in-process and asserts the contract of issue 10: a non-zero exit,
one ``error:`` line naming the file (no traceback), and the target folder exactly as it was
(pre-existing files byte-identical, no temporary or half-written file left).

Read-only and full targets are real file systems (a small tmpfs, remounted read-only or filled
up) where the machine allows mounting; the injected cases raise ``ENOSPC`` from the lowest call
that writes the command's output, and run everywhere.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

X0, Y0 = 500000.0, 5000000.0
CSMAE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "csmae_reference"
KEEP = {"keep.txt": b"a file that was here before\n"}


@pytest.fixture(scope="module")
def inputs(
    tmp_path_factory: pytest.TempPathFactory,
    geotiff: Any,
    signal_data: dict[str, Path],
    embeddings_factory: Any,
) -> dict[str, Path]:
    """Rasters and footprints for build-manifest, a manifest, embeddings and a built cache."""
    import geopandas as gpd
    import shapely
    from rasterio.transform import from_origin
    from typer.testing import CliRunner

    from csmoe_cli.data_app import app as data_app
    from csmoe_cli.model_app import app as model_app
    from csmoe_model.eval.embeddings import write_embeddings

    root = tmp_path_factory.mktemp("os-errors")
    lc = np.full((100, 100), 40, dtype=np.uint8)
    lc[:, 50:] = 10
    geotiff(root / "lc.tif", lc, from_origin(X0, Y0, 10, 10), crs="EPSG:32633", nodata=0)
    kg = np.full((10, 10), 10, dtype=np.uint8)
    geotiff(root / "kg.tif", kg, from_origin(14.0, 46.0, 0.2, 0.2), crs="EPSG:4326", nodata=32)
    geoms = [shapely.box(X0 + 100 * i, Y0 - 300, X0 + 100 * i + 200, Y0 - 100) for i in range(6)]
    gpd.GeoDataFrame({"tile_id": [f"t{i}" for i in range(6)]}, geometry=geoms, crs=32633).to_file(
        root / "fp.geojson"
    )
    paths = {"root": root, "lc": root / "lc.tif", "kg": root / "kg.tif",
             "fp": root / "fp.geojson", "manifest": root / "m.parquet"}  # fmt: skip
    res = CliRunner().invoke(data_app, build_args(paths, paths["manifest"]))
    assert res.exit_code == 0, res.output
    gen = embeddings_factory()
    paths["emb"] = write_embeddings(root / "emb.parquet", gen["patch_id"], gen["split"],
                                    gen["emb"], labels=gen["labels"], metadata={"model": "g"})  # fmt: skip
    # the model commands read this cache (built once, outside every target)
    res = CliRunner().invoke(model_app, ["cache", "--manifest", str(signal_data["manifest"]),
                                         "--cache-dir", str(signal_data["cache"]), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    paths["csmae"] = CSMAE / "csmae_cecd.ckpt"
    return {**paths, **{f"signal_{k}": v for k, v in signal_data.items() if isinstance(v, Path)}}


def build_args(p: dict[str, Path], out: Path) -> list[str]:
    return ["build-manifest", "--footprints", str(p["fp"]), "--landcover", str(p["lc"]),
            "--landcover-legend", "worldcover", "--climate", str(p["kg"]), "--climate-legend",
            "koppen-rubel", "--id-column", "tile_id", "--out", str(out)]  # fmt: skip


@dataclass(frozen=True)
class Writer:
    """A command that writes ``out`` (a file or a folder), given the inputs."""

    app: str
    args: Callable[[dict[str, Path], Path], list[str]]
    name: str  # the output's name (file or folder) inside the target folder
    #: ``module:attribute`` of the lowest call writing the output, for the injected ENOSPC
    writes: tuple[str, ...]
    #: a run folder (resumable): finished files written before the failure may stay
    run: bool = False
    #: the key in ``inputs`` of the file it reads first (None: it reads none)
    reads: str | None = None


def _model(p: dict[str, Path], *args: str) -> list[str]:
    return [*args, "--device", "cpu", "--cache-dir", str(p["signal_cache"]), "--no-progress"]


WRITERS: dict[str, Writer] = {
    "build-manifest": Writer(
        "csmoe_cli.data_app",
        build_args,
        "m.parquet",
        ("pyarrow.parquet:ParquetWriter.write_table",),
        reads="fp",
    ),
    "grid": Writer(
        "csmoe_cli.data_app",
        lambda p, out: [
            "grid",
            "--bbox",
            "12.9,47.9,13.1,48.1",
            "--cell-size",
            "1200",
            "--out",
            str(out),
        ],  # fmt: skip
        "grid.parquet",
        ("pyarrow.parquet:write_table",),
    ),
    "stats --json": Writer(
        "csmoe_cli.data_app",
        lambda p, out: ["stats", str(p["manifest"]), "--json", str(out)],
        "stats.json",
        ("pathlib:Path.write_text",),
        reads="manifest",
    ),
    "stats --plots": Writer(
        "csmoe_cli.data_app",
        lambda p, out: ["stats", str(p["manifest"]), "--plots", str(out)],
        "plots",
        ("matplotlib.figure:Figure.savefig",),
        reads="manifest",
    ),
    "cache": Writer(
        "csmoe_cli.model_app",
        lambda p, out: [
            "cache",
            "--manifest",
            str(p["signal_manifest"]),
            "--cache-dir",
            str(out),
            "--no-progress",
        ],  # fmt: skip
        "cache",
        ("numpy.lib.format:open_memmap",),
        reads="signal_manifest",
    ),
    "train": Writer(
        "csmoe_cli.model_app",
        lambda p, out: _model(
            p,
            "train",
            "--manifest",
            str(p["signal_manifest"]),
            "--model",
            "csmoe-tiny",
            "--out",
            str(out),
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--model-arg",
            "img_size=16",
        ),  # fmt: skip
        "run",
        ("torch:save",),
        run=True,
        reads="signal_manifest",
    ),
    "embed": Writer(
        "csmoe_cli.model_app",
        lambda p, out: _model(
            p,
            "embed",
            "--manifest",
            str(p["signal_manifest"]),
            "--weights",
            str(p["signal_weights"]),
            "--out",
            str(out),
            "--batch-size",
            "8",
            "--normalization",
            "manifest",
        ),  # fmt: skip
        "emb.parquet",
        ("pyarrow.parquet:write_table",),
        reads="signal_manifest",
    ),
    "eval retrieval": Writer(
        "csmoe_cli.model_app",
        lambda p, out: [
            "eval",
            "retrieval",
            "--embeddings",
            str(p["emb"]),
            "--labels-column",
            "labels19",
            "--device",
            "cpu",
            "--json",
            str(out),
        ],  # fmt: skip
        "retrieval.json",
        ("pathlib:Path.write_text",),
        reads="emb",
    ),
    "eval retrieval --plots": Writer(
        "csmoe_cli.model_app",
        lambda p, out: [
            "eval",
            "retrieval",
            "--embeddings",
            str(p["emb"]),
            "--labels-column",
            "labels19",
            "--device",
            "cpu",
            "--plots",
            str(out),
        ],  # fmt: skip
        "curves",
        ("matplotlib.figure:Figure.savefig",),
        reads="emb",
    ),
    "eval probe": Writer(
        "csmoe_cli.model_app",
        lambda p, out: [
            "eval",
            "probe",
            "--embeddings",
            str(p["emb"]),
            "--labels-column",
            "labels19",
            "--device",
            "cpu",
            "--json",
            str(out),
        ],  # fmt: skip
        "probe.json",
        ("pathlib:Path.write_text",),
        reads="emb",
    ),
    "eval segment": Writer(
        "csmoe_cli.model_app",
        lambda p, out: _model(
            p,
            "eval",
            "segment",
            "--manifest",
            str(p["signal_manifest"]),
            "--weights",
            str(p["signal_weights4"]),
            "--out",
            str(out),
            "--batch-size",
            "6",
            "--max-steps",
            "2",
            "--head-channels",
            "8",
        ),  # fmt: skip
        "seg",
        ("safetensors.torch:save_file", "torch:save"),
        run=True,
        reads="signal_manifest",
    ),
    "finetune": Writer(
        "csmoe_cli.model_app",
        lambda p, out: _model(
            p,
            "finetune",
            "--manifest",
            str(p["signal_manifest"]),
            "--weights",
            str(p["signal_weights"]),
            "--labels-column",
            "labels19",
            "--out",
            str(out),
            "--batch-size",
            "6",
            "--max-steps",
            "2",
        ),  # fmt: skip
        "ft",
        ("safetensors.torch:save_file", "torch:save"),
        run=True,
        reads="signal_manifest",
    ),
    "study": Writer(
        "csmoe_cli.model_app",
        lambda p, out: _model(
            p,
            "study",
            "--manifest",
            str(p["signal_manifest"]),
            "--models",
            "csmoe-tiny",
            "--budget",
            "1",
            "--batch-size",
            "4",
            "--finetune-steps",
            "1",
            "--segment-steps",
            "1",
            "--model-arg",
            "img_size=16",
            "--out",
            str(out),
            "--k",
            "5",
        ),  # fmt: skip
        "study",
        ("pathlib:Path.write_text",),
        run=True,
        reads="signal_manifest",
    ),
    "import-weights": Writer(
        "csmoe_cli.model_app",
        lambda p, out: ["import-weights", "csmae", str(p["csmae"]), "--out", str(out)],
        "weights",
        ("safetensors.torch:save_file",),
        reads="csmae",
    ),
}

NAMES = list(WRITERS)


def _needs(name: str) -> None:
    if name == "import-weights" and not (CSMAE / "csmae_cecd.ckpt").is_file():
        pytest.skip(f"CSMAE fixtures not found at {CSMAE}")


def _check_refused(
    res: Any, faults: Any, target: Path, before: dict[str, str], *needles: str, run: bool = False
) -> str:
    """One error line naming the file, pre-existing files unchanged, nothing temporary left.

    A failed run may keep the finished files it wrote before the failure (``run``); any other
    output leaves the target exactly as it was, but for the imagery cache's lock files
    (``.KEY.lock``: the holder's pid, kept for every later run of the cache folder) and the
    folders holding them.
    """
    line = faults.assert_one_line_error(res, *needles)
    after = faults.snapshot(target)
    changed = {k: v for k, v in before.items() if after.get(k) != v}
    assert not changed, f"{line}\nchanged or removed: {changed}"
    new = sorted(set(after) - set(before))
    locks = [k for k in new if Path(k).name.startswith(".") and k.endswith(".lock")]

    def allowed(rel: str) -> bool:
        if rel in locks or any(lock.startswith(rel + "/") for lock in locks):
            return True
        temporary = any(part.startswith(".") for part in Path(rel).parts)
        return run and not temporary

    left = [k for k in new if not allowed(k)]
    assert not left, f"{line}\nleft behind: {left}"
    return line


# ------------------------------------------------------------------- read-only and full targets


@pytest.mark.parametrize("name", NAMES)
def test_read_only_target(name: str, inputs: dict[str, Path], tmp_path: Path, faults: Any) -> None:
    _needs(name)
    w = WRITERS[name]
    target = tmp_path / "target"
    with faults.small_filesystem(target, files=KEEP, readonly=True):
        before = faults.snapshot(target)
        res = faults.invoke(w.app, w.args(inputs, target / w.name))
        _check_refused(res, faults, target, before, "Read-only file system", str(target), run=w.run)


@pytest.mark.parametrize("name", NAMES)
def test_read_only_folder_by_permissions(
    name: str, inputs: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    _needs(name)
    w = WRITERS[name]
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_bytes(KEEP["keep.txt"])
    before = faults.snapshot(target)
    target.chmod(0o555)
    try:  # as root: in a process without the capabilities that override permissions
        res = faults.invoke_unprivileged(w.app, w.args(inputs, target / w.name))
    finally:
        target.chmod(0o755)
    _check_refused(res, faults, target, before, "Permission denied", str(target), run=w.run)


@pytest.mark.parametrize("name", NAMES)
def test_full_target(name: str, inputs: dict[str, Path], tmp_path: Path, faults: Any) -> None:
    _needs(name)
    w = WRITERS[name]
    target = tmp_path / "target"
    with faults.small_filesystem(target, files=KEEP, full=True):
        before = faults.snapshot(target)
        res = faults.invoke(w.app, w.args(inputs, target / w.name))
        _check_refused(
            res, faults, target, before, "No space left on device", str(target), run=w.run
        )


@pytest.mark.parametrize("name", NAMES)
def test_injected_full_disk(
    name: str,
    inputs: dict[str, Path],
    tmp_path: Path,
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    _needs(name)
    w = WRITERS[name]
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_bytes(KEEP["keep.txt"])
    before = faults.snapshot(target)
    calls: list[str] = []

    def full(*args: Any, **kwargs: Any) -> Any:
        calls.append("x")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as C writers raise it: no file

    for spot in w.writes:
        module, attr = spot.split(":")
        owner: Any = importlib.import_module(module)
        *parents, leaf = attr.split(".")
        for part in parents:
            owner = getattr(owner, part)
        monkeypatch.setattr(owner, leaf, full)
    res = faults.invoke(w.app, w.args(inputs, target / w.name))
    monkeypatch.undo()
    assert calls, f"{w.writes} was never called: the injection missed"
    _check_refused(
        res, faults, target, before, "No space left on device", str(target / w.name), run=w.run
    )


# ------------------------------------------------------------------- names


@pytest.mark.parametrize("name", NAMES)
def test_legal_250_character_name(
    name: str, inputs: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    _needs(name)
    w = WRITERS[name]
    stem, dot, ext = w.name.partition(".")
    long_name = (stem * 250)[: 250 - len(dot + ext)] + dot + ext
    assert len(long_name) == 250
    res = faults.invoke(w.app, w.args(inputs, tmp_path / long_name))
    assert res.code == 0, res.out + res.err
    assert (tmp_path / long_name).exists()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not left, left


@pytest.mark.parametrize("name", NAMES)
def test_name_too_long(name: str, inputs: dict[str, Path], tmp_path: Path, faults: Any) -> None:
    _needs(name)
    w = WRITERS[name]
    before = faults.snapshot(tmp_path)
    too_long = tmp_path / ("n" * 300)
    res = faults.invoke(w.app, w.args(inputs, too_long))
    _check_refused(res, faults, tmp_path, before, "too long")


# ------------------------------------------------------------------- inputs


def _with_input(inputs: dict[str, Path], key: str, path: Path) -> dict[str, Path]:
    return {**inputs, key: path}


@pytest.mark.parametrize("name", [n for n in NAMES if WRITERS[n].reads is not None])
def test_unreadable_input(name: str, inputs: dict[str, Path], tmp_path: Path, faults: Any) -> None:
    _needs(name)
    w = WRITERS[name]
    assert w.reads is not None
    locked = tmp_path / "in" / inputs[w.reads].name
    locked.parent.mkdir()
    shutil.copyfile(inputs[w.reads], locked)
    locked.chmod(0)
    target = tmp_path / "target"
    target.mkdir()
    before = faults.snapshot(target)
    try:  # as root: in a process without the capabilities that override permissions
        res = faults.invoke_unprivileged(
            w.app, w.args(_with_input(inputs, w.reads, locked), target / w.name)
        )
    finally:
        locked.chmod(0o644)
    # refused by the option's own check (click's readable=True: a usage error, exit 2) or where
    # the file is opened (exit 1)
    reason = "is not readable" if res.code == 2 else "Permission denied"
    _check_refused(res, faults, target, before, reason, str(locked))


@pytest.mark.parametrize("name", [n for n in NAMES if WRITERS[n].reads is not None])
def test_input_name_too_long(
    name: str, inputs: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    _needs(name)
    w = WRITERS[name]
    assert w.reads is not None
    too_long = tmp_path / ("i" * 300 + inputs[w.reads].suffix)
    target = tmp_path / "target"
    target.mkdir()
    before = faults.snapshot(target)
    res = faults.invoke(w.app, w.args(_with_input(inputs, w.reads, too_long), target / w.name))
    _check_refused(res, faults, target, before, str(too_long.name[:40]))


# ------------------------------------------------------------------- a disk that fills up midway

#: commands whose output outgrows a 64 KiB file system after their first small files fit
MIDWAY = ["cache", "train", "eval segment", "finetune", "study", "import-weights"]


@pytest.mark.parametrize("name", MIDWAY)
def test_disk_full_midway(name: str, inputs: dict[str, Path], tmp_path: Path, faults: Any) -> None:
    """Small files (configs, metrics) fit; the arrays or weights that follow do not."""
    _needs(name)
    w = WRITERS[name]
    target = tmp_path / "target"
    with faults.small_filesystem(target, size="64k", files=KEEP):
        before = faults.snapshot(target)
        res = faults.invoke(w.app, w.args(inputs, target / w.name))
        _check_refused(
            res, faults, target, before, "No space left on device", str(target), run=w.run
        )
