"""timm entry points: the one-sensor wrapper (always) and timm's registry (when timm is installed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from csmoe_model import build_model
from csmoe_model.errors import CsmoeError
from csmoe_model.integrations.timm import (
    UNAVAILABLE,
    CsmoeTimmEncoder,
    checkpoint_filter_fn,
    timm_name,
)
from csmoe_model.weights.pretrained import save_pretrained


def _trained(tmp_path: Path):
    torch.manual_seed(0)
    model = build_model("csmoe-tiny").eval()
    for p in model.parameters():  # every norm and bias matters
        p.data.add_(0.05 * torch.randn_like(p))
    return model, save_pretrained(model, tmp_path / "w")


@pytest.mark.parametrize("sensor", ["s1", "s2"])
def test_wrapper_loads_csmoe_weights_and_embeds_like_the_model(tmp_path: Path, sensor: str) -> None:
    from safetensors.torch import load_file

    model, path = _trained(tmp_path)
    wrapper = CsmoeTimmEncoder("csmoe-tiny", sensor).eval()
    wrapper.load_state_dict(checkpoint_filter_fn(load_file(str(path)), wrapper), strict=True)
    x = torch.randn(2, model.in_chans[sensor], 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(wrapper(x), model.encode(**{sensor: x})[sensor])
        maps = wrapper.forward_intermediates(x, indices=(0, -1), intermediates_only=True)
        ref = model.forward_features(**{sensor: x}, out_indices=(0, -1))[sensor]
    assert [m.shape for m in maps] == [(2, 64, 4, 4)] * 2
    for a, b in zip(maps, ref, strict=True):
        torch.testing.assert_close(a, b)
    assert wrapper.feature_info[-1] == {
        "num_chs": 64,
        "reduction": 8,
        "module": "encoder.shared_blocks.0",
    }


def test_wrapper_rejects_other_channel_counts() -> None:
    with pytest.raises(CsmoeError, match="takes 10 s2 bands"):
        CsmoeTimmEncoder("csmoe-tiny", "s2", in_chans=3)
    assert timm_name("csmoe-b", "s2") == "csmoe_b_s2"


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"timm unavailable: {UNAVAILABLE}")
def test_timm_create_model_with_csmoe_weights(tmp_path: Path) -> None:
    import timm

    import csmoe_model.integrations.timm as integration

    assert "csmoe_tiny_s2" in integration.REGISTERED and "csmae_sesd_s2" in timm.list_models("csm*")
    model, path = _trained(tmp_path)
    feats = timm.create_model(
        "csmoe_tiny_s2",
        pretrained=True,
        pretrained_cfg_overlay={"file": str(path)},
        features_only=True,
        out_indices=(0, 2),
    ).eval()
    x = torch.randn(2, 10, 32, 32)
    with torch.no_grad():
        out = feats(x)
        ref = model.forward_features(s2=x, out_indices=(0, 2))["s2"]
    assert [o.shape for o in out] == [(2, 64, 4, 4)] * 2
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b)
    assert feats.feature_info.channels() == [64, 64]
    pooled = timm.create_model(
        "csmoe_tiny_s2", pretrained=True, pretrained_cfg_overlay={"file": str(path)}
    )
    with torch.no_grad():
        torch.testing.assert_close(pooled.eval()(x), model.encode(s2=x)["s2"])
