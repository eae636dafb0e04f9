"""Weights that carry what they need: save_pretrained / from_pretrained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from csmoe_model import build_model
from csmoe_model.errors import CsmoeError
from csmoe_model.weights.pretrained import from_pretrained, read_pretrained, save_pretrained

STATS = {
    "s1_mean": [-19.0, -12.0],
    "s1_std": [5.0, 5.0],
    "s2_mean": [float(i) for i in range(10)],
    "s2_std": [1.0 + i for i in range(10)],
}


def _model(**overrides):
    torch.manual_seed(0)
    model = build_model("csmoe-tiny", **overrides).eval()
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return model


def test_round_trip_with_metadata(tmp_path: Path) -> None:
    model = _model(mask_ratio=0.75)
    path = save_pretrained(model, tmp_path / "out", normalization=STATS, source="unit test")
    assert path == tmp_path / "out" / "model.safetensors"
    info, state = read_pretrained(tmp_path / "out")
    assert info.model == "csmoe-tiny" and info.normalization == STATS
    assert info.bands["s2"][:3] == ["B02", "B03", "B04"] and info.metadata["source"] == "unit test"
    assert not any(k.startswith("decoders") for k in state)
    loaded = from_pretrained(tmp_path / "out")
    assert not loaded.training and loaded.normalization == STATS
    assert loaded.config.mask_ratio == 0.75
    x = torch.randn(2, 10, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(s2=x)["s2"], model.encode(s2=x)["s2"])


def test_band_subset_round_trips(tmp_path: Path) -> None:
    rgb = _model().select_bands(s2=["B04", "B03", "B02"])
    save_pretrained(rgb, tmp_path / "rgb.safetensors")
    loaded = from_pretrained(tmp_path / "rgb.safetensors")
    assert loaded.config.bands["s2"] == ["B04", "B03", "B02"] and loaded.in_chans["s2"] == 3
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(s2=x)["s2"], rgb.encode(s2=x)["s2"])


def test_older_files_and_errors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = _model()
    bare = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in model.encoder_state_dict().items()}, str(bare))
    with pytest.raises(CsmoeError, match="does not name its model"):
        from_pretrained(bare)
    loaded = from_pretrained(bare, model="csmoe-tiny")
    assert loaded.normalization is None
    with pytest.raises(CsmoeError, match="not found"):
        from_pretrained(tmp_path / "missing")
    with pytest.raises(CsmoeError, match="s2_mean"):
        save_pretrained(model, tmp_path / "bad", normalization={**STATS, "s2_mean": [0.0]})
    with pytest.raises(CsmoeError, match="do not fit"):
        from_pretrained(bare, model="csmae-tiny")
    bad_json = tmp_path / "badjson.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad_json), metadata={"model": "csmoe-tiny", "config": "{"})
    with pytest.raises(CsmoeError, match="not valid JSON"):
        read_pretrained(bad_json)
    # the metadata is plain JSON any tool can read
    info, _ = read_pretrained(save_pretrained(model, tmp_path / "m", normalization=STATS))
    assert json.loads(info.metadata["config"])["name"] == "csmoe-tiny"
