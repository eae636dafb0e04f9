"""Run directories, imagery caches and option values a hostile or unlucky user hands to csmoe.

Each case asserts the exit code, one ``error:`` line without a traceback, and that the files
which were there before are unchanged.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, patch_factory: Any, manifest_factory: Any
) -> dict[str, Path]:
    """A manifest, its cache and a finished 2-step run (with 2 checkpoints), built once."""
    from typer.testing import CliRunner

    from csmoe_cli.model_app import app

    root = tmp_path_factory.mktemp("faults-run")
    rows = patch_factory(root, 12, size=12)
    manifest = manifest_factory(root / "m.parquet", rows)
    run = root / "run"
    res = CliRunner().invoke(app, train_args(manifest, run, root / "cache"))
    assert res.exit_code == 0, res.output
    return {"root": root, "manifest": manifest, "run": run, "cache": root / "cache"}


def train_args(manifest: Path, run: Path, cache: Path, *extra: str) -> list[str]:
    return ["train", "--manifest", str(manifest), "--model", "csmoe-tiny", "--out", str(run),
            "--max-steps", "2", "--batch-size", "4", "--device", "cpu", "--workers", "0",
            "--checkpoint-every", "1", "--cache-dir", str(cache), "--model-arg", "img_size=16",
            "--no-progress", *extra]  # fmt: skip


@pytest.fixture
def run_copy(base: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the finished run."""
    return Path(shutil.copytree(base["run"], tmp_path / "run"))


# --------------------------------------------------------------------------------- --resume


def test_resume_on_a_folder_that_is_no_run_touches_nothing(
    base: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    mine = tmp_path / "mine"
    (mine / "checkpoints").mkdir(parents=True)
    (mine / "checkpoints" / "my_model.bin").write_bytes(b"precious weights")
    (mine / "metrics.csv").write_text("epoch,accuracy\n1,0.5\n")
    before = faults.snapshot(mine)
    res = faults.invoke(
        faults.MODEL_APP, train_args(base["manifest"], mine, base["cache"], "--resume")
    )
    faults.assert_one_line_error(res, "not a csmoe run", "nothing was changed")
    assert faults.snapshot(mine) == before


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_resume_with_unreadable_checkpoints_touches_nothing(
    damage: str, base: dict[str, Path], run_copy: Path, faults: Any
) -> None:
    for ckpt in (run_copy / "checkpoints").glob("step_*.pt"):
        data = ckpt.read_bytes()
        ckpt.write_bytes(
            {"garbage": b"\x00junk" * 100, "truncated": data[: len(data) // 3], "empty": b""}[
                damage
            ]
        )
    before = faults.snapshot(run_copy)
    res = faults.invoke(
        faults.MODEL_APP, train_args(base["manifest"], run_copy, base["cache"], "--resume")
    )
    faults.assert_one_line_error(res, "can be read", "nothing was changed")
    assert faults.snapshot(run_copy) == before


def test_resume_with_a_damaged_config_touches_nothing(
    base: dict[str, Path], run_copy: Path, faults: Any
) -> None:
    (run_copy / "config.json").write_text('{"train": {"lr": ')
    before = faults.snapshot(run_copy)
    res = faults.invoke(
        faults.MODEL_APP, train_args(base["manifest"], run_copy, base["cache"], "--resume")
    )
    faults.assert_one_line_error(res, "config.json", "nothing was changed")
    assert faults.snapshot(run_copy) == before


def test_missing_config_is_recovered_from_the_newest_checkpoint(
    base: dict[str, Path], run_copy: Path, faults: Any
) -> None:
    saved = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").unlink()
    res = faults.invoke(
        faults.MODEL_APP, train_args(base["manifest"], run_copy, base["cache"], "--resume")
    )
    assert res.code == 0, res.err
    assert "resuming" in res.err and "trained csmoe-tiny" in res.out
    recovered = json.loads((run_copy / "config.json").read_text())
    recovered["train"].pop("out"), saved["train"].pop("out")  # the copy lives elsewhere
    assert (
        recovered["train"] == saved["train"]
        and recovered["data"]["cache_key"] == saved["data"]["cache_key"]
    )


def test_resume_refuses_a_rebuilt_manifest(
    base: dict[str, Path],
    run_copy: Path,
    tmp_path: Path,
    patch_factory: Any,
    manifest_factory: Any,
    faults: Any,
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    rows = patch_factory(other, 12, size=12, seed=5)  # other rows, same manifest path below
    manifest = manifest_factory(other / "m.parquet", rows)
    saved = json.loads((run_copy / "config.json").read_text())
    saved["train"]["manifest"] = str(manifest.resolve())
    (run_copy / "config.json").write_text(json.dumps(saved))
    before = faults.snapshot(run_copy)
    res = faults.invoke(faults.MODEL_APP, train_args(manifest, run_copy, base["cache"], "--resume"))
    faults.assert_one_line_error(res, "--resume refused", "cache key")
    assert faults.snapshot(run_copy) == before


def test_overwrite_removes_only_what_csmoe_wrote(
    base: dict[str, Path], run_copy: Path, faults: Any
) -> None:
    (run_copy / "checkpoints" / "my_model.bin").write_bytes(b"precious")
    (run_copy / "notes.txt").write_text("mine")
    res = faults.invoke(
        faults.MODEL_APP, train_args(base["manifest"], run_copy, base["cache"], "--overwrite")
    )
    assert res.code == 0, res.err
    assert (run_copy / "checkpoints" / "my_model.bin").read_bytes() == b"precious"
    assert (run_copy / "notes.txt").read_text() == "mine"
    assert "kept" in res.err


def test_truncated_weights_via_run_is_one_line(
    base: dict[str, Path], run_copy: Path, tmp_path: Path, faults: Any
) -> None:
    weights = run_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    res = faults.invoke(
        faults.MODEL_APP,
        ["embed", "--manifest", base["manifest"], "--run", run_copy, "--out", tmp_path / "e.parquet",
         "--cache-dir", base["cache"], "--device", "cpu", "--workers", "0", "--no-progress"],
    )  # fmt: skip
    faults.assert_one_line_error(res, "model.safetensors")
    assert not (tmp_path / "e.parquet").exists()


# ------------------------------------------------------------------------------ bad options


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--seed", "-1"], "--seed"),
        (["--lr", "nan"], "lr"),
        (["--lr", "inf"], "lr"),
        (["--lr", "-1"], "lr"),
        (["--warmup-steps", "-5"], "--warmup-steps"),
        (["--model-arg", "in_chans=3"], "in_chans"),
        (["--model-arg", "img_size=big"], "img_size"),
    ],
)
def test_bad_training_options_fail_up_front(
    extra: list[str], needle: str, base: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    run = tmp_path / "new-run"
    res = faults.invoke(faults.MODEL_APP, train_args(base["manifest"], run, base["cache"], *extra))
    faults.assert_one_line_error(res, needle)
    assert not run.exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [('{"lr": "fast"}', "'lr'"), ('{"keep_checkpoints": 2.5}', "'keep_checkpoints'"), ('{"betas": 0.9}', "'betas'"),
     ("[1, 2]", "mapping")],
)  # fmt: skip
def test_wrongly_typed_config_values_name_the_field(
    content: str, needle: str, base: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    conf = tmp_path / "conf.json"
    conf.write_text(content)
    run = tmp_path / "new-run"
    res = faults.invoke(
        faults.MODEL_APP, train_args(base["manifest"], run, base["cache"], "--config", str(conf))
    )
    faults.assert_one_line_error(res, needle)
    assert not run.exists()


def test_model_info_set_checks_field_types(faults: Any) -> None:
    res = faults.invoke(faults.MODEL_APP, ["model-info", "csmoe-tiny", "--set", "in_chans=3"])
    faults.assert_one_line_error(res, "in_chans")


@pytest.mark.parametrize("c_values", ["nan", "abc", "-1", "inf", "", "0", "1,,10", "0.1,1e400"])
def test_probe_c_values_must_be_finite(
    c_values: str, emb_file: Path, tmp_path: Path, faults: Any
) -> None:
    args = ["eval", "probe", "--embeddings", emb_file, f"--c-values={c_values}"]
    res = faults.invoke(faults.MODEL_APP, [*args, "--json", tmp_path / "p.json"])
    # a usage error: exit 2 and one line, the option's name in it, no Rich panel
    line = faults.assert_one_line_error(res, "--c-values", code=2)
    assert [ln for ln in (res.out + res.err).splitlines() if ln.strip()] == [line]
    assert "╭" not in res.err and "is not a finite number > 0" in line
    assert not (tmp_path / "p.json").exists()


# ------------------------------------------------------------------------------ caches


def damage_cache(folder: Path, what: str) -> None:
    if what == "meta.json":
        (folder / "meta.json").write_text("{not json")
    elif what == "meta-edit":
        meta = json.loads((folder / "meta.json").read_text())
        meta["stats"]["s2_mean"][0] += 1.0  # a plausible edit: the checksum catches it
        (folder / "meta.json").write_text(json.dumps(meta))
    elif what == "rows.parquet":
        (folder / "rows.parquet").write_bytes(b"PAR1 truncated")
    elif what == "truncated-npy":
        data = (folder / "s2_10.npy").read_bytes()
        (folder / "s2_10.npy").write_bytes(data[: len(data) // 2])
    elif what == "scrambled-header":
        data = bytearray((folder / "s1.npy").read_bytes())
        data[:64] = bytes(range(64))
        (folder / "s1.npy").write_bytes(bytes(data))
    elif what == "scrambled-data":
        data = bytearray((folder / "s2_20.npy").read_bytes())
        data[-200:] = bytes(200)
        (folder / "s2_20.npy").write_bytes(bytes(data))
    elif what == "missing-npy":
        (folder / "s2_20.npy").unlink()


DAMAGES = ["meta.json", "meta-edit", "rows.parquet", "truncated-npy", "scrambled-header",
           "scrambled-data", "missing-npy"]  # fmt: skip


@pytest.mark.parametrize("what", DAMAGES)
def test_damaged_cache_is_rebuilt_or_refused_under_strict(
    what: str, base: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    cache = Path(shutil.copytree(base["cache"], tmp_path / "cache"))
    key = Path(json.loads((base["run"] / "config.json").read_text())["data"]["cache"]).name
    folder = cache / key  # the cache of base["manifest"] (other tests add caches beside it)
    damage_cache(folder, what)
    args = [
        "cache",
        "--manifest",
        base["manifest"],
        "--cache-dir",
        cache,
        "--workers",
        "0",
        "--no-progress",
    ]
    before = faults.snapshot(cache)
    res = faults.invoke(faults.MODEL_APP, [*args, "--strict"])
    faults.assert_one_line_error(res, "damaged imagery cache", "--rebuild")
    assert faults.snapshot(cache) == before
    res = faults.invoke(faults.MODEL_APP, args)
    assert res.code == 0, res.err
    assert "rebuilding it" in res.err and "12 rows (12 usable)" in res.out
    res = faults.invoke(faults.MODEL_APP, args)
    assert res.code == 0 and "reusing imagery cache" in res.err


def test_cache_rebuild_option(base: dict[str, Path], tmp_path: Path, faults: Any) -> None:
    cache = Path(shutil.copytree(base["cache"], tmp_path / "cache"))
    args = [
        "cache",
        "--manifest",
        base["manifest"],
        "--cache-dir",
        cache,
        "--workers",
        "0",
        "--no-progress",
    ]
    res = faults.invoke(faults.MODEL_APP, [*args, "--rebuild"])
    assert res.code == 0 and "built imagery cache" in res.err, res.err


# ------------------------------------------------------------------------------ OSErrors


def test_full_disk_while_checkpointing_is_one_line(
    base: dict[str, Path], tmp_path: Path, faults: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import csmoe_model.train.checkpoint as checkpoint

    def full(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(checkpoint.torch, "save", full)
    run = tmp_path / "run"
    try:
        res = faults.invoke(faults.MODEL_APP, train_args(base["manifest"], run, base["cache"]))
    finally:
        monkeypatch.setattr(checkpoint.torch, "save", torch.save)
    faults.assert_one_line_error(res, "No space left on device", "step_00000001.pt")
    assert not list((run / "checkpoints").glob("*.pt")) if (run / "checkpoints").exists() else True
    assert not list((run / "checkpoints").glob(".*tmp")) if (run / "checkpoints").exists() else True


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_unwritable_output_folder_is_one_line(
    code: int, base: dict[str, Path], tmp_path: Path, faults: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import tempfile

    # root ignores permissions, so the read-only / full folder is injected where files are created
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code), str(kwargs.get("dir", "")))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "ro" / "stats.json"
    res = faults.invoke(faults.DATA_APP, ["stats", base["manifest"], "--json", out])
    monkeypatch.undo()
    faults.assert_one_line_error(res, os.strerror(code), "stats.json")
    assert not out.exists()


def test_long_output_names(base: dict[str, Path], tmp_path: Path, faults: Any) -> None:
    legal = tmp_path / ("s" * 245 + ".json")  # 250 characters: legal, the temporary name is short
    res = faults.invoke(faults.DATA_APP, ["stats", base["manifest"], "--json", legal])
    assert res.code == 0, res.err
    assert legal.is_file()
    too_long = tmp_path / ("s" * 300 + ".json")
    res = faults.invoke(faults.DATA_APP, ["stats", base["manifest"], "--json", too_long])
    faults.assert_one_line_error(res, "too long")


# ------------------------------------------------------------------------------ evaluation


def test_nan_embeddings_and_large_k_are_reported(
    generated: dict[str, Any], tmp_path: Path, faults: Any
) -> None:
    import numpy as np

    from csmoe_model.eval.embeddings import write_embeddings

    emb = {s: v.copy() for s, v in generated["emb"].items()}
    emb["s1"][:7] = np.nan  # 7 rows whose S1 embedding failed
    path = tmp_path / "emb.parquet"
    write_embeddings(path, generated["patch_id"], generated["split"], emb,
                     labels=generated["labels"], metadata={"model": "generated"})  # fmt: skip
    n = len(generated["patch_id"])
    res = faults.invoke(
        faults.MODEL_APP,
        ["eval", "retrieval", "--embeddings", path, "--labels-column", "labels19", "--k", str(n),
         "--device", "cpu", "--json", tmp_path / "r.json"],
    )  # fmt: skip
    assert res.code == 0, res.err
    assert "no finite embedding (NaN)" in res.err and f"--k {n} is not below" in res.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["without_embedding"]["s1->s2"] == {"queries": 7, "archive": 0}
    res = faults.invoke(
        faults.MODEL_APP,
        ["eval", "probe", "--embeddings", path, "--labels-column", "labels19", "--sensor", "s1",
         "--knn-k", "1000", "--device", "cpu", "--json", tmp_path / "p.json"],
    )  # fmt: skip
    assert res.code == 0, res.err
    assert "have no finite s1 embedding" in res.err and "fewer than its k = 1000" in res.err
