"""``csmoe eval retrieval|probe`` through the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from csmoe_cli.model_app import app

runner = CliRunner()


def test_eval_retrieval_cli_writes_json_markdown_and_plots(emb_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ret.json"
    res = runner.invoke(
        app,
        ["eval", "retrieval", "--embeddings", str(emb_file), "--labels-column", "labels19", "--k", "10",
         "--json", str(out), "--plots", str(tmp_path / "plots"), "--plot-k", "20", "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert set(data) == {"s1->s1", "s2->s2", "s1->s2", "s2->s1", "meta"}
    assert data["s1->s2"]["map@10"] > 0.95
    assert data["meta"]["labels_column"] == "labels19" and data["meta"]["k"] == 10
    md = (tmp_path / "ret.md").read_text()
    assert "| S1->S2 |" in md
    assert (tmp_path / "plots" / "precision_at_k.png").is_file()
    assert "Retrieval at k = 10" in res.output
    # a second run refuses to overwrite, in one line, and leaves the files as they were
    before = out.read_text()
    res = runner.invoke(app, ["eval", "retrieval", "-e", str(emb_file), "--json", str(tmp_path / "new.json"),
                              "--plots", str(tmp_path / "plots")])  # fmt: skip
    assert res.exit_code == 1 and "precision_at_k.png exists" in res.output
    assert not (tmp_path / "new.json").exists()  # checked before any work or writing
    res = runner.invoke(app, ["eval", "retrieval", "-e", str(emb_file), "--json", str(out)])
    assert out.read_text() == before
    assert res.exit_code == 1
    assert "exists; pass --overwrite" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app, ["eval", "retrieval", "-e", str(emb_file), "--json", str(out), "--overwrite"]
    )
    assert res.exit_code == 0, res.output


def test_eval_retrieval_cli_splits(emb_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = runner.invoke(
        app,
        ["eval", "retrieval", "-e", str(emb_file), "--queries", "val", "--archive", "test", "--k", "5",
         "--json", str(out), "--markdown", str(tmp_path / "table.md")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["meta"]["queries"] == "val" and data["meta"]["counts"]["s1->s2"]["queries"] == 36
    assert (tmp_path / "table.md").is_file() and not (tmp_path / "r.md").exists()


def test_eval_probe_cli(emb_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    res = runner.invoke(
        app,
        ["eval", "probe", "--embeddings", str(emb_file), "--labels-column", "labels19",
         "--sensor", "both", "--c-values", "0.01,1", "--json", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert set(data) == {"linear", "knn", "meta"}
    assert data["linear"]["macro_map"] > 0.95 and data["knn"]["macro_map"] > 0.95
    assert data["meta"]["sensor"] == "both"
    assert set(data["linear"]["val_macro_map"]) == {"0.01", "1.0"}
    assert "kNN (k = 20)" in (tmp_path / "probe.md").read_text()


def test_eval_errors_are_one_line(emb_file: Path, tmp_path: Path) -> None:
    cases = [
        (["eval", "retrieval", "-e", str(tmp_path / "nope.parquet")], "not found"),
        (["eval", "retrieval", "-e", str(emb_file), "--labels-column", "x"], "label column 'x'"),
        (["eval", "retrieval", "-e", str(emb_file), "--queries", "holdout"], "no rows with split"),
    ]
    for args, msg in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 1, args
        assert msg in res.output and "Traceback" not in res.output, res.output
    # --sensor is a choice: an unknown one is a usage error that lists the choices
    res = runner.invoke(app, ["eval", "probe", "-e", str(emb_file), "--sensor", "s3"])
    assert res.exit_code == 2 and "--sensor" in res.output and "Traceback" not in res.output
    assert all(c in res.output for c in ("'s1'", "'s2'", "'both'")), res.output
    res = runner.invoke(app, ["eval", "probe", "-e", str(emb_file), "--c-values", "0,1"])
    assert res.exit_code == 2 and "'0' is not a finite number > 0" in res.output  # a usage error
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    res = runner.invoke(app, ["eval", "probe", "-e", str(bad)])
    assert res.exit_code == 1 and "cannot read" in res.output
