"""The encoder as a backbone: multi-level feature maps, other image sizes, band subsets, masking."""

from __future__ import annotations

import pytest
import torch

from csmoe_model import build_model
from csmoe_model.errors import CsmoeError
from csmoe_model.layers import resample_pos_embed, sincos_pos_embed_2d


def _noisy(name: str = "csmoe-tiny", **overrides):
    torch.manual_seed(0)
    model = build_model(name, **overrides).eval()
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return model


def test_forward_features_shapes_and_last_map_equals_encode_tokens() -> None:
    model = _noisy()
    s1, s2 = torch.randn(2, 2, 32, 32), torch.randn(2, 10, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(s1=s1, s2=s2, out_indices=(0, 1, -1))
        tokens = model.encode_tokens(s1=s1, s2=s2)
        normed = model.forward_features(s2=s2, out_indices=(2,), norm=True)["s2"][0]
    assert set(feats) == {"s1", "s2"}
    for maps in feats.values():
        assert [m.shape for m in maps] == [(2, 64, 4, 4)] * 3
    # the last block's map, normed, is encode_tokens without CLS laid out on the grid
    grid = tokens["s2"][:, 1:].transpose(1, 2).reshape(2, 64, 4, 4)
    torch.testing.assert_close(normed, grid)
    torch.testing.assert_close(
        feats["s2"][2], model.forward_features(s2=s2, out_indices=(-1,))["s2"][0]
    )


@pytest.mark.parametrize("size", [(48, 48), (64, 40), (128, 128)])
def test_other_image_sizes(size: tuple[int, int]) -> None:
    model = _noisy()
    s2 = torch.randn(1, 10, *size)
    with torch.no_grad():
        maps = model.forward_features(s2=s2, out_indices=(-1,))["s2"]
        emb = model.encode(s2=s2)["s2"]
    assert maps[0].shape == (1, 64, size[0] // 8, size[1] // 8)
    assert emb.shape == (1, 64) and torch.isfinite(emb).all()


def test_resampled_positions_are_the_native_table_at_the_native_size() -> None:
    pos = sincos_pos_embed_2d(64, 4)
    assert resample_pos_embed(pos, (4, 4), (4, 4)) is pos
    up = resample_pos_embed(pos, (4, 4), (8, 8))
    assert up.shape == (1, 64, 64)
    # bicubic resampling of a smooth table keeps it close to the table at the corners
    assert torch.allclose(up[0, 0], pos[0, 0], atol=0.2)


def test_bad_requests_are_clear_errors() -> None:
    model = _noisy()
    with pytest.raises(CsmoeError, match="needs s1, s2"):
        model.forward_features()
    with pytest.raises(CsmoeError, match="out of range"):
        model.forward_features(s2=torch.randn(1, 10, 32, 32), out_indices=(3,))
    with pytest.raises(CsmoeError, match="multiple of the patch size 8"):
        model.forward_features(s2=torch.randn(1, 10, 30, 32))
    with pytest.raises(CsmoeError, match=r"\(B, 10"):
        model.encode(s2=torch.randn(1, 12, 32, 32))
    with pytest.raises(CsmoeError, match="not inputs of this model"):
        model.select_bands(s2=["B01"])
    with pytest.raises(CsmoeError, match="distinct"):
        model.select_bands(s2=["B02", "B02"])
    # training keeps the native size: the masks are drawn on the native grid
    with pytest.raises(CsmoeError, match="resize"):
        model.train()(torch.randn(1, 2, 64, 64), torch.randn(1, 10, 64, 64))


def test_band_subsets_select_patch_embedding_channels() -> None:
    model = _noisy()
    rgb = model.select_bands(s2=["B04", "B03", "B02"], s1=["VV"])
    assert rgb.config.bands == {"s1": ["VV"], "s2": ["B04", "B03", "B02"]}
    assert rgb.in_chans == {"s1": 1, "s2": 3}
    s1, s2 = torch.randn(2, 2, 32, 32), torch.randn(2, 10, 32, 32)
    # the subset model equals the full model with the other bands at 0 (the normalised mean)
    full_s2 = torch.zeros_like(s2)
    full_s2[:, [2, 1, 0]] = s2[:, [2, 1, 0]]
    full_s1 = torch.zeros_like(s1)
    full_s1[:, 1] = s1[:, 1]
    with torch.no_grad():
        sub = rgb.encode(s1=s1[:, 1:], s2=s2[:, [2, 1, 0]])
        ref = model.encode(s1=full_s1, s2=full_s2)
        maps = rgb.forward_features(s2=s2[:, [2, 1, 0]], out_indices=(0,))["s2"][0]
    torch.testing.assert_close(sub["s2"], ref["s2"])
    torch.testing.assert_close(sub["s1"], ref["s1"])
    assert maps.shape == (2, 64, 4, 4)
    # the original keeps its bands
    assert model.in_chans == {"s1": 2, "s2": 10} and model.config.bands is None


def test_input_transform_transposes_images_and_maps_back() -> None:
    model = _noisy()
    flipped = _noisy(input_transform="transpose_hw")
    s2 = torch.randn(1, 10, 32, 48)
    with torch.no_grad():
        a = model.forward_features(s2=s2.transpose(-2, -1), out_indices=(-1,))["s2"][0]
        b = flipped.forward_features(s2=s2, out_indices=(-1,))["s2"][0]
        torch.testing.assert_close(b, a.transpose(-2, -1))
        torch.testing.assert_close(
            flipped.encode(s2=s2)["s2"], model.encode(s2=s2.transpose(-2, -1))["s2"]
        )


@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.25])
def test_disjoint_masking_as_csmae_defines_it(ratio: float) -> None:
    model = build_model("csmae-tiny", mask_mode="disjoint", mask_ratio=ratio)
    n = model.num_patches
    keep, masks = model.sample_masks(8, "cpu")
    assert keep["s1"].shape[1] == int(n * (1 - ratio)) and keep["s2"].shape[1] == int(n * ratio)
    # S2 sees exactly the patches hidden from S1
    assert torch.equal(masks["s2"], ~masks["s1"])


def test_masks_follow_the_given_noise() -> None:
    model = build_model("csmae-tiny", mask_mode="random")
    noise = {"s1": torch.rand(3, 16), "s2": torch.rand(3, 16)}
    keep, _ = model.sample_masks(3, "cpu", noise=noise)
    assert torch.equal(keep["s1"], torch.argsort(noise["s1"], dim=1)[:, :8])
    assert torch.equal(keep["s2"], torch.argsort(noise["s2"], dim=1)[:, :8])
    same = build_model("csmae-tiny", mask_mode="identical").sample_masks(3, "cpu", noise=noise)[0]
    assert torch.equal(same["s2"], same["s1"])
    with pytest.raises(CsmoeError, match="mask noise"):
        model.sample_masks(3, "cpu", noise={"s1": torch.rand(3, 15)})


@pytest.mark.parametrize("mask_mode", ["random", "identical", "disjoint"])
def test_identical_reconstruction_places_tokens_at_the_targets_positions(mask_mode: str) -> None:
    model = _noisy("csmae-tiny", mask_mode=mask_mode, reconstruction="identical").train()
    order = model.patch_orders(2, "cpu")
    keep, masks = model.masks_from_orders(order)
    plan = {
        (s, t): (place, scored)
        for s, t, place, scored in model.reconstruction_plan(order, keep, masks)
    }
    place, scored = plan[("s1", "s2")]
    if mask_mode == "identical":
        # CSMAE's flip_restore / flip_mask: mirrored positions, scored on the visible patches
        assert torch.equal(place, torch.flip(order["s1"], dims=[1])[:, :8])
        assert torch.equal(scored, ~masks["s1"])
    else:
        assert torch.equal(place, order["s2"][:, : keep["s1"].shape[1]])
        assert torch.equal(scored, masks["s2"])
    out = model(torch.randn(2, 2, 32, 32), torch.randn(2, 10, 32, 32))
    assert torch.isfinite(out.loss)


def test_router_weight_decay_follows_vmoe() -> None:
    model = build_model("csmoe-tiny")
    skip = model.no_weight_decay()
    assert "encoder.sensor_blocks.s1.0.ffn.phi" in skip  # vmoe: mu is not decayed
    assert "encoder.sensor_blocks.s1.0.ffn.scale" not in skip  # vmoe: Router/scale is
    assert "encoder.sensor_blocks.s1.0.ffn.w1" not in skip and "encoder.norm.weight" in skip
    none = model.no_weight_decay(router="none")
    assert {"encoder.sensor_blocks.s1.0.ffn.phi", "encoder.sensor_blocks.s1.0.ffn.scale"} <= none
    with pytest.raises(CsmoeError, match="router weight decay"):
        model.no_weight_decay(router="phi")
