"""``--data-root``: every model command that reads imagery works on a manifest moved away from it.

Each command is run on a copy of a manifest in another folder: without ``--data-root`` it fails
with one line that names the first missing file and suggests the option; with it, it works.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from csmoe_cli.model_app import app

runner = CliRunner()


def _move(manifest: Path, folder: Path) -> Path:
    """Copy ``manifest`` into ``folder`` (away from the imagery its relative paths name)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(manifest, folder / manifest.name))


def _refused_in_one_line(res: Any, missing: Path) -> None:
    """Exit 1, no traceback, and one error line naming ``missing`` and suggesting --data-root."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.output
    assert f"not found: {missing}" in errors[0] and "pass --data-root DIR" in errors[0]


def test_cache_and_train(patches, cache_dir, tmp_path) -> None:
    manifest, rows = patches
    moved = _move(manifest, tmp_path / "shared")
    first = moved.parent / rows[0]["s1_path"]
    cache = ["cache", "--manifest", str(moved), "--cache-dir", str(cache_dir), "--workers", "0",
             "--no-progress"]  # fmt: skip
    _refused_in_one_line(runner.invoke(app, cache), first)
    res = runner.invoke(app, [*cache, "--data-root", str(manifest.parent)])
    assert res.exit_code == 0 and "16 rows (16 usable)" in res.output, res.output
    # the manifest beside its imagery names the same files: it finds the same cache
    beside = runner.invoke(app, [*cache[:2], str(manifest), *cache[3:]])
    assert beside.exit_code == 0 and "reusing imagery cache" in beside.output
    assert beside.output.splitlines()[-1] == res.output.splitlines()[-1]
    bad = runner.invoke(app, [*cache, "--data-root", str(tmp_path / "nope")])
    assert bad.exit_code == 1 and "--data-root" in bad.output and "does not exist" in bad.output

    run = tmp_path / "run"
    train = ["train", "--manifest", str(moved), "--model", "csmoe-tiny", "--out", str(run),
             "--max-steps", "2", "--checkpoint-every", "1", "--batch-size", "2", "--device", "cpu",
             "--workers", "0", "--cache-dir", str(cache_dir), "--model-arg", "img_size=16",
             "--no-progress"]  # fmt: skip
    _refused_in_one_line(runner.invoke(app, train), first)
    res = runner.invoke(app, [*train, "--data-root", str(manifest.parent)])
    assert res.exit_code == 0 and "trained csmoe-tiny for 2 steps" in res.output, res.output
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["data_root"] == str(manifest.parent.resolve())
    # --resume keeps the run's data root; another one (other files) is refused in one line
    again = runner.invoke(app, [*train, "--resume"])
    assert again.exit_code == 0, again.output
    copy = tmp_path / "copy"
    for sub in ("S1", "S2"):
        shutil.copytree(manifest.parent / sub, copy / sub)
    other = runner.invoke(app, [*train, "--resume", "--data-root", str(copy)])
    assert other.exit_code == 1 and "Traceback" not in other.output
    assert "data_root" in other.output and "--resume" in other.output


@pytest.fixture(scope="module")
def moved_signal(signal_data, tmp_path_factory) -> dict[str, Path]:
    """The signal patches' manifest copied into another folder, and a private cache folder."""
    tmp = tmp_path_factory.mktemp("data_root")
    moved = _move(signal_data["manifest"], tmp / "shared")
    return {"moved": moved, "root": signal_data["root"], "weights": signal_data["weights4"],
            "cache": tmp / "cache", "tmp": tmp}  # fmt: skip


def _first_missing(data: dict[str, Path]) -> Path:
    import pyarrow.parquet as pq

    s1 = pq.read_table(data["moved"], columns=["s1_path"]).column("s1_path")[0].as_py()
    return data["moved"].parent / s1


def _both_ways(data: dict[str, Path], args: list[str]) -> Any:
    """Run ``args`` without --data-root (refused), then with it; return the second result.

    The refused run leaves nothing in the way: the second one writes to the same output.
    """
    _refused_in_one_line(runner.invoke(app, args), _first_missing(data))
    res = runner.invoke(app, [*args, "--data-root", str(data["root"])])
    assert res.exit_code == 0, res.output
    return res


def test_embed(moved_signal) -> None:
    d = moved_signal
    out = d["tmp"] / "emb.parquet"
    args = ["embed", "--manifest", str(d["moved"]), "--out", str(out), "--weights",
            str(d["weights"]), "--model", "csmoe-tiny", "--normalization", "manifest",
            "--device", "cpu", "--workers", "0", "--cache-dir", str(d["cache"]),
            "--no-progress"]  # fmt: skip
    res = _both_ways(d, args)
    assert "24 rows (24 embedded" in res.output


def test_finetune(moved_signal) -> None:
    d = moved_signal
    out = d["tmp"] / "ft"
    args = ["finetune", "--manifest", str(d["moved"]), "--out", str(out), "--weights",
            str(d["weights"]), "--max-steps", "1", "--batch-size", "4", "--device", "cpu",
            "--cache-dir", str(d["cache"]), "--no-progress"]  # fmt: skip
    _both_ways(d, args)
    saved = json.loads((out / "config.json").read_text())["finetune"]
    assert saved["data_root"] == str(d["root"].resolve())


def test_eval_segment_and_its_predictions(moved_signal) -> None:
    d = moved_signal
    out, preds = d["tmp"] / "seg", d["tmp"] / "pred"
    args = ["eval", "segment", "--manifest", str(d["moved"]), "--out", str(out), "--weights",
            str(d["weights"]), "--max-steps", "1", "--batch-size", "4", "--head-channels", "8",
            "--device", "cpu", "--cache-dir", str(d["cache"]), "--save-predictions", str(preds),
            "--no-progress"]  # fmt: skip
    _both_ways(d, args)
    # predictions copy the georeferencing of the masks found through --data-root
    assert len(list(preds.glob("*.tif"))) == 8


def test_study(moved_signal) -> None:
    d = moved_signal
    out = d["tmp"] / "study"
    args = ["study", "--manifest", str(d["moved"]), "--models", "csmoe-tiny", "--budget", "1",
            "--batch-size", "4", "--finetune-steps", "1", "--segment-steps", "1",
            "--model-arg", "img_size=16", "--device", "cpu", "--cache-dir", str(d["cache"]),
            "--out", str(out), "--k", "3"]  # fmt: skip
    _both_ways(d, args)
    report = json.loads((out / "study.json").read_text())
    assert report["cells"][0]["segment_miou"] is not None
