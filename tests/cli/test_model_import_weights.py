"""``csmoe import-weights csmae``: one line for a refused or unknown checkpoint, weights that embed."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from csmoe_cli.model_app import app

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "csmae_reference"


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _one_line_error(res, needle: str) -> None:
    assert res.exit_code == 1, res.output
    assert needle in res.output and "Traceback" not in res.output, res.output


def test_refused_and_unknown_checkpoints(tmp_path: Path) -> None:
    torch.save({"model": {"w": torch.zeros(2)}}, tmp_path / "csmoe.pt")
    res = runner.invoke(
        app, ["import-weights", "csmae", str(tmp_path / "csmoe.pt"), "--out", str(tmp_path / "o")]
    )
    _one_line_error(res, "no state_dict")
    torch.save({"state_dict": {"encoder.w": torch.zeros(2)}}, tmp_path / "other.ckpt")
    res = runner.invoke(
        app, ["import-weights", "csmae", str(tmp_path / "other.ckpt"), "--out", str(tmp_path / "o")]
    )
    _one_line_error(res, "not a CSMAE checkpoint")
    torch.save(
        {
            "state_dict": {
                "backbone.cls_token": torch.zeros(1, 1, 8),
                "backbone.head.weight": torch.zeros(2),
            }
        },
        tmp_path / "odd.ckpt",
    )
    res = runner.invoke(
        app, ["import-weights", "csmae", str(tmp_path / "odd.ckpt"), "--out", str(tmp_path / "o")]
    )
    _one_line_error(res, "backbone.")
    (tmp_path / "legacy.ckpt").write_bytes(pickle.dumps({"a": 1}))
    res = runner.invoke(
        app,
        ["import-weights", "csmae", str(tmp_path / "legacy.ckpt"), "--out", str(tmp_path / "o")],
    )
    _one_line_error(res, "not a torch zip checkpoint")
    marker = tmp_path / "pwned"
    with zipfile.ZipFile(tmp_path / "evil.ckpt", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"state_dict": _Exploit(marker)}, protocol=2))
    res = runner.invoke(
        app, ["import-weights", "csmae", str(tmp_path / "evil.ckpt"), "--out", str(tmp_path / "o")]
    )
    _one_line_error(res, "no state_dict")
    assert not marker.exists() and not (tmp_path / "o").exists()
    res = runner.invoke(
        app,
        ["import-weights", "csmae", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "o")],
    )
    _one_line_error(res, "not found")


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"CSMAE fixtures not found at {FIXTURES}")
def test_import_writes_once_and_reports_the_variant(tmp_path: Path) -> None:
    ckpt = str(FIXTURES / "csmae_cecd.ckpt")
    res = runner.invoke(app, ["import-weights", "csmae", ckpt, "--out", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    assert "CSMAE CECD -> csmae-cecd" in res.output and "embed_dim=192" in res.output
    path = tmp_path / "w" / "model.safetensors"
    before = path.read_bytes()
    res = runner.invoke(app, ["import-weights", "csmae", ckpt, "--out", str(tmp_path / "w")])
    _one_line_error(res, "--overwrite")
    assert path.read_bytes() == before
    res = runner.invoke(
        app,
        [
            "import-weights",
            "csmae",
            ckpt,
            "--out",
            str(tmp_path / "w"),
            "--overwrite",
            "--input-transform",
            "none",
        ],
    )
    assert res.exit_code == 0, res.output
    from csmoe_model import from_pretrained

    model = from_pretrained(tmp_path / "w")
    assert model.config.input_transform == "none" and model.config.depth_shared == 3
