"""``csmoe embed`` end to end on the 6 real BigEarthNet pairs with csmoe-tiny weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from csmoe_cli.model_app import app
from csmoe_model import build_model
from csmoe_model.errors import CsmoeError
from csmoe_model.eval.embed import load_model
from csmoe_model.eval.embeddings import read_embeddings

runner = CliRunner()

#: the README's full path on the 6 real BigEarthNet pairs (tests add --device cpu, a private
#: --cache-dir, --no-progress and fewer steps)
BUILD = ["build-manifest", "--footprints", "sample:bigearthnet",
         "--landcover", "sample:modis-igbp", "--landcover-legend", "modis-igbp",
         "--climate", "sample:koppen-rubel", "--climate-legend", "koppen-rubel",
         "--split", "train=0.5,val=0.17,test=0.33"]  # fmt: skip
TRAIN = [
    "train",
    "--model",
    "csmoe-tiny",
    "--max-steps",
    "2",
    "--batch-size",
    "2",
    "--split",
    "train",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from csmoe_cli.data_app import app as data_app

    tmp = tmp_path_factory.mktemp("embed")
    manifest = tmp / "manifest.parquet"
    res = runner.invoke(data_app, [*BUILD, "--out", str(manifest)])
    assert res.exit_code == 0, res.output
    run = tmp / "run"
    res = runner.invoke(
        app,
        [*TRAIN, "--manifest", str(manifest), "--out", str(run), "--device", "cpu",
         "--workers", "0", "--cache-dir", str(tmp / "cache"), "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    torch.manual_seed(0)
    model = build_model("csmoe-tiny")
    weights = tmp / "tiny.safetensors"
    save_file(model.encoder_state_dict(), str(weights))
    return {"tmp": tmp, "weights": weights, "run": run, "manifest": manifest}


def _splits(setup: dict[str, Path]) -> list[str]:
    return pq.read_table(setup["manifest"], columns=["split"]).column("split").to_pylist()


def _embed(setup: dict[str, Path], out: Path, *extra: str) -> object:
    return runner.invoke(
        app,
        ["embed", "--manifest", str(setup["manifest"]), "--out", str(out), "--device", "cpu",
         "--batch-size", "4", "--cache-dir", str(setup["tmp"] / "cache"), "--no-progress", *extra],
    )  # fmt: skip


def test_embed_weights_then_eval(setup: dict[str, Path]) -> None:
    out = setup["tmp"] / "emb.parquet"
    # bare weights carry no statistics: the manifest's only when asked for
    res = _embed(setup, out, "--weights", str(setup["weights"]), "--model", "csmoe-tiny")
    assert res.exit_code == 1 and "--normalization manifest" in res.output, res.output
    res = _embed(
        setup,
        out,
        "--weights",
        str(setup["weights"]),
        "--model",
        "csmoe-tiny",
        "--normalization",
        "manifest",
    )
    assert res.exit_code == 0, res.output
    assert "6 rows (6 embedded, 0 damaged), 64-d" in res.output
    schema = pq.read_schema(out)
    assert schema.field("emb_s1").type == pa.list_(pa.float32(), 64)
    emb = read_embeddings(out)
    manifest = pq.read_table(setup["manifest"])
    assert list(emb.patch_id) == manifest.column("patch_id").to_pylist()
    splits = _splits(setup)
    assert sorted(set(splits)) == ["test", "train", "val"]
    assert list(emb.split) == splits
    assert emb.labels["labels19"] == manifest.column("labels19").to_pylist()
    assert all(emb.labels["labels19"])  # every real patch has BigEarthNet-19 labels
    assert emb.labels["labels"] == manifest.column("labels").to_pylist()
    assert np.isfinite(emb.emb["s1"]).all() and np.isfinite(emb.emb["s2"]).all()
    assert emb.metadata["model"] == "csmoe-tiny" and emb.metadata["normalisation"] == "cache"
    # the sensors were embedded separately: the two embeddings differ
    assert not np.allclose(emb.emb["s1"], emb.emb["s2"])

    # independent recomputation through the same cache, other batch size: identical rows
    from csmoe_model.data import open_cache

    loaded = load_model(weights=setup["weights"], model="csmoe-tiny")
    cache = open_cache(setup["manifest"], setup["tmp"] / "cache", n_s2=10)
    loader = cache.loader(
        cache.select(), batch_size=6, img_size=32, augment=False, shuffle=False, drop_last=False
    )
    batch = next(iter(loader))
    with torch.no_grad():
        s1 = loaded.model.encode(s1=batch.s1)["s1"].numpy()
        s2 = loaded.model.encode(s2=batch.s2)["s2"].numpy()
    np.testing.assert_allclose(emb.emb["s1"][batch.index.numpy()], s1, atol=1e-5)
    np.testing.assert_allclose(emb.emb["s2"][batch.index.numpy()], s2, atol=1e-5)

    # split selection on real embeddings
    res = runner.invoke(
        app,
        ["eval", "retrieval", "--embeddings", str(out), "--queries", "val", "--archive", "test",
         "--k", "3", "--json", str(setup["tmp"] / "ret_val_test.json")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    ret = json.loads((setup["tmp"] / "ret_val_test.json").read_text())
    assert ret["meta"]["counts"]["s1->s2"] == {
        "queries": splits.count("val"),
        "archive": splits.count("test"),
        "queries_without_labels": 0,
    }


def test_embed_run_dir_and_split(setup: dict[str, Path]) -> None:
    out = setup["tmp"] / "emb_test.parquet"
    res = _embed(setup, out, "--run", str(setup["run"]), "--split", "test")
    assert res.exit_code == 0, res.output
    emb = read_embeddings(out)
    assert list(emb.split) == ["test"] * _splits(setup).count("test")
    full = setup["tmp"] / "emb_full.parquet"
    assert _embed(setup, full, "--run", str(setup["run"])).exit_code == 0
    ref = read_embeddings(full)
    rows = [list(ref.patch_id).index(p) for p in emb.patch_id]
    np.testing.assert_allclose(emb.emb["s2"], ref.emb["s2"][rows], atol=1e-5)


def test_embed_errors_are_one_line(setup: dict[str, Path]) -> None:
    out = setup["tmp"] / "err.parquet"
    cases = [
        ((), "give either --run"),
        (("--weights", str(setup["weights"])), "needs --model"),
        (("--weights", str(setup["weights"]), "--run", str(setup["run"])), "give either --run"),
        (("--weights", str(setup["weights"]), "--model", "csmae-tiny"), "do not fit"),
        (("--weights", str(setup["weights"]), "--model", "nope"), "unknown model"),
        (("--run", str(setup["tmp"])), "no config.json"),
        (("--run", str(setup["run"]), "--split", "holdout"), "holdout"),
        (("--run", str(setup["run"]), "--labels-column", "nope"), "label column 'nope'"),
        (("--run", str(setup["run"]), "--labels-column", "tile"), "not a list of strings"),
    ]
    for extra, msg in cases:
        res = _embed(setup, out, *extra)
        assert res.exit_code == 1, (extra, res.output)
        assert msg in res.output and "Traceback" not in res.output, (extra, res.output)
    assert not out.exists()
    done = setup["tmp"] / "exists.parquet"
    done.write_bytes(b"x")
    res = _embed(setup, done, "--run", str(setup["run"]))
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert done.read_bytes() == b"x"


def test_run_uses_its_statistics_and_cache(setup: dict[str, Path]) -> None:
    loaded = load_model(run=setup["run"])
    cfg = json.loads((setup["run"] / "config.json").read_text())
    assert loaded.name == "csmoe-tiny"
    assert loaded.stats == cfg["data"]["normalization"]
    assert loaded.cache["n_s2"] == 10 and loaded.cache["upsample"] == "bilinear"
    out = setup["tmp"] / "emb_run.parquet"
    assert _embed(setup, out, "--run", str(setup["run"])).exit_code == 0
    emb = read_embeddings(out)
    assert emb.metadata["normalisation"] == "run" and emb.metadata["source"] == str(setup["run"])
    # the run's training cache was reused, not a second one built
    assert emb.metadata["cache"] == cfg["data"]["cache"]
    # --weights on the run's exported encoder: config and statistics from the file's metadata
    loaded_w = load_model(weights=setup["run"] / "model.safetensors")
    assert loaded_w.stats == {
        k: v[:10] if k.startswith("s2") else v for k, v in loaded.stats.items()
    }
    out_w = setup["tmp"] / "emb_weights.parquet"
    assert _embed(setup, out_w, "--weights", str(setup["run"] / "model.safetensors")).exit_code == 0
    emb_w = read_embeddings(out_w)
    assert emb_w.metadata["normalisation"] == "weights"
    np.testing.assert_allclose(emb_w.emb["s2"], emb.emb["s2"], atol=1e-5)
    x = torch.randn(2, 10, 32, 32)
    with torch.no_grad():
        a = loaded.model.encode(s2=x)["s2"]
        b = loaded_w.model.encode(s2=x)["s2"]
    torch.testing.assert_close(a, b)

    # the README's evaluation commands on the run's embeddings
    tmp = setup["tmp"]
    res = runner.invoke(
        app,
        ["eval", "retrieval", "--embeddings", str(out), "--labels-column", "labels19", "--k", "10",
         "--json", str(tmp / "retrieval.json"), "--plots", str(tmp / "plots")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    ret = json.loads((tmp / "retrieval.json").read_text())
    assert ret["meta"]["counts"]["s1->s2"] == {
        "queries": 6,
        "archive": 6,
        "queries_without_labels": 0,
    }
    for direction in ("s1->s1", "s2->s2", "s1->s2", "s2->s1"):
        assert 0.0 <= ret[direction]["map@10"] <= 1.0
    assert (tmp / "retrieval.md").is_file() and (tmp / "plots" / "precision_at_k.png").is_file()
    res = runner.invoke(
        app,
        ["eval", "probe", "--embeddings", str(out), "--sensor", "both", "--json", str(tmp / "probe.json")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    probe = json.loads((tmp / "probe.json").read_text())
    splits = _splits(setup)
    assert probe["meta"]["rows"] == {n: splits.count(n) for n in ("train", "val", "test")}
    assert set(probe) == {"linear", "knn", "meta"}


def test_weights_may_hold_the_full_model(setup: dict[str, Path]) -> None:
    torch.manual_seed(1)
    model = build_model("csmae-tiny", img_size=40, patch_size=10).eval()
    path = setup["tmp"] / "full.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with pytest.raises(CsmoeError, match="do not fit"):
        load_model(weights=path, model="csmae-tiny")  # default 32 px / patch 8 is another shape
    path2 = setup["tmp"] / "full_meta.safetensors"
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(path2),
        metadata={"model": "csmae-tiny", "config": json.dumps(model.config_dict())},
    )
    loaded = load_model(weights=path2)
    x = torch.randn(1, 2, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.encode(s1=x)["s1"], model.encode(s1=x)["s1"])
    with pytest.raises(CsmoeError, match="differs"):
        load_model(run=setup["run"], model="csmae-tiny")
