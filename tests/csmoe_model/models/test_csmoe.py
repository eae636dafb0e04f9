"""The CSMoE model: registry, presets, masking, losses, encode, state dicts, precision."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from csmoe_model import CsmoeConfig, build_model, list_models
from csmoe_model.errors import CsmoeError
from csmoe_model.models.csmoe import auto_img_size, nt_xent, patchify

PRESETS = ["csmae-b", "csmoe-b", "csmoe-s", "csmae-tiny", "csmoe-tiny"]
TINY = ["csmae-tiny", "csmoe-tiny"]
# the B/S presets are run at real values with one block per part (depth overrides) to keep CPU
# time small; at full depth they run on the meta device (shapes only, every code path)
SHALLOW = {"depth_sensor": 1, "depth_shared": 1, "decoder_depth": 1}


def _batch(model, b: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size = model.img_size
    s1 = torch.randn(b, model.in_chans["s1"], size, size, generator=g)
    s2 = torch.randn(b, model.in_chans["s2"], size, size, generator=g)
    return s1, s2


def test_registry_lists_the_presets() -> None:
    assert set(PRESETS) <= set(list_models())


@pytest.mark.parametrize("name", PRESETS)
def test_full_preset_builds_and_runs_on_meta(name: str) -> None:
    with torch.device("meta"):
        model = build_model(name)
        s1, s2 = _batch_meta(model)
    out = model(s1, s2)
    assert out.loss.shape == ()
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    emb = model.encode(s1=s1, s2=s2)
    assert emb["s1"].shape == emb["s2"].shape == (2, model.config.embed_dim)


def _batch_meta(model) -> tuple[torch.Tensor, torch.Tensor]:
    size = model.img_size
    return torch.empty(2, model.in_chans["s1"], size, size), torch.empty(
        2, model.in_chans["s2"], size, size
    )


@pytest.mark.parametrize("name", PRESETS)
def test_preset_forward_backward_finite(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, **({} if name in TINY else SHALLOW))
    s1, s2 = _batch(model)
    out = model(s1, s2)
    expected = {"uni_s1", "uni_s2", "cross_s1", "cross_s2", "contrastive"}
    assert set(out.losses) == expected
    assert torch.isfinite(out.loss) and all(torch.isfinite(v) for v in out.losses.values())
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_tiny_forward_is_reproducible_with_a_seed() -> None:
    losses = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build_model("csmoe-tiny")
        s1, s2 = _batch(model)
        losses.append(model(s1, s2).loss.item())
    assert losses[0] == losses[1]


@pytest.mark.parametrize("mode", ["random", "identical", "disjoint"])
def test_masking_counts_and_overlap(mode: str) -> None:
    model = build_model("csmae-tiny", mask_mode=mode)
    torch.manual_seed(0)
    keep, masks = model.sample_masks(16, "cpu")
    n, k = model.num_patches, model.num_visible()
    assert k == n // 2  # ratio 0.5
    for s in ("s1", "s2"):
        assert keep[s].shape == (16, k)
        assert (masks[s].sum(dim=1) == n - k).all()
        # keep and mask agree, indices unique
        assert not masks[s].gather(1, keep[s]).any()
        assert all(len(set(row.tolist())) == k for row in keep[s])
    both_visible = (~masks["s1"]) & (~masks["s2"])
    if mode == "identical":
        assert torch.equal(masks["s1"], masks["s2"])
    elif mode == "disjoint":
        assert not both_visible.any()
        assert ((~masks["s1"]) | (~masks["s2"])).all()  # ratio 0.5: together they see everything
    else:
        assert not torch.equal(masks["s1"], masks["s2"])


def test_masking_needs_a_visible_patch_per_sensor() -> None:
    # CSMAE's disjoint masking gives S2 the ratio 1 - mask_ratio: at 0.0 S2 would see nothing
    with pytest.raises(CsmoeError, match="at least one"):
        build_model("csmae-tiny", mask_mode="disjoint", mask_ratio=0.0)
    with pytest.raises(CsmoeError, match="at least one"):
        build_model("csmae-tiny", mask_ratio=0.99)


def _smooth(b: int, c: int, g: torch.Generator, size: int = 32) -> torch.Tensor:
    """Images with structure (two smooth fields mixed into c bands), learnable by a tiny model."""
    base = F.interpolate(
        torch.randn(b, 2, 4, 4, generator=g), size=size, mode="bilinear", align_corners=False
    )
    return torch.einsum("bkhw,kc->bchw", base, torch.randn(2, c, generator=g))


def test_tiny_model_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = build_model("csmoe-tiny")
    g = torch.Generator().manual_seed(0)
    s1, s2 = _smooth(4, 2, g), _smooth(4, 10, g)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(100):
        torch.manual_seed(123)  # the same masks every step: one fixed batch to memorise
        opt.zero_grad()
        out = model(s1, s2)
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    torch.manual_seed(123)
    final = model(s1, s2).loss.item()
    assert final < 0.25 * losses[0], (losses[0], final)


@pytest.mark.parametrize("name", TINY)
def test_bf16_autocast_on_cpu(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name)
    s1, s2 = _batch(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(s1, s2)
        emb = model.encode(s1=s1)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert (
        emb["s1"].dtype == torch.float32
    )  # the pooled embedding leaves through a LayerNorm (fp32)
    assert torch.isfinite(emb["s1"]).all()


def test_encode_one_sensor_alone() -> None:
    torch.manual_seed(0)
    model = build_model("csmoe-tiny").eval()
    s1, s2 = _batch(model, b=3)
    both = model.encode(s1=s1, s2=s2)
    only1 = model.encode(s1=s1)
    only2 = model.encode(s2=s2)
    assert set(only1) == {"s1"} and set(only2) == {"s2"}
    assert only1["s1"].shape == (3, 64)
    torch.testing.assert_close(only1["s1"], both["s1"])
    torch.testing.assert_close(only2["s2"], both["s2"])
    tokens = model.encode_tokens(s2=s2)
    assert tokens["s2"].shape == (3, 1 + model.num_patches, 64)
    with pytest.raises(CsmoeError):
        model.encode()


def test_config_round_trip_and_encoder_state_dict() -> None:
    torch.manual_seed(0)
    model = build_model("csmoe-tiny", mask_mode="identical")
    cfg = dataclasses.asdict(model.config)
    json.dumps(cfg)
    torch.manual_seed(1)
    clone = build_model(model.config.name, **json.loads(json.dumps(cfg)))
    assert clone.config == model.config
    s1, s2 = _batch(model)
    model.eval(), clone.eval()
    assert not torch.allclose(clone.encode(s1=s1)["s1"], model.encode(s1=s1)["s1"])
    clone.load_encoder_state_dict(model.encoder_state_dict())
    a, b = model.encode(s1=s1, s2=s2), clone.encode(s1=s1, s2=s2)
    for s in ("s1", "s2"):
        torch.testing.assert_close(a[s], b[s])
    assert not any(k.startswith("decoder") or "pos_embed" in k for k in model.encoder_state_dict())
    with pytest.raises(CsmoeError, match="do not fit"):
        build_model("csmae-tiny").load_encoder_state_dict(model.encoder_state_dict())


def test_unknown_model_and_bad_overrides_are_clear_errors() -> None:
    with pytest.raises(CsmoeError, match="csmoe-b"):
        build_model("csmoe-xl")
    with pytest.raises(CsmoeError, match="unknown option"):
        build_model("csmoe-tiny", depth=3)
    with pytest.raises(CsmoeError, match="mask_mode"):
        build_model("csmoe-tiny", mask_mode="checkerboard")
    with pytest.raises(CsmoeError, match="moe_blocks"):
        build_model("csmoe-tiny", moe_blocks=[0, 99])
    with pytest.raises(CsmoeError, match="multiple of patch_size"):
        build_model("csmoe-tiny", img_size=30)
    with pytest.raises(CsmoeError, match="depth_sensor"):
        build_model("csmoe-tiny", depth_sensor="two")


def test_wrong_input_shape_is_a_clear_error() -> None:
    model = build_model("csmae-tiny")
    with pytest.raises(CsmoeError, match="resize"):
        model(torch.zeros(1, 2, 40, 40), torch.zeros(1, 10, 40, 40))
    with pytest.raises(CsmoeError, match=r"\(B, 10"):
        model.encode(s2=torch.zeros(1, 12, 32, 32))


@pytest.mark.parametrize(
    ("patch", "size"), [(8, 120), (10, 120), (12, 120), (15, 120), (20, 120), (14, 126), (16, 128)]
)
def test_patch_sizes_resolve_image_size(patch: int, size: int) -> None:
    assert auto_img_size(patch) == size
    with torch.device("meta"):
        model = build_model("csmoe-b", patch_size=patch)
    assert model.img_size == size and model.num_patches == (size // patch) ** 2
    assert model.config.img_size is None  # round-trips as "auto"


def test_moe_block_specs() -> None:
    cfg = CsmoeConfig(depth_sensor=4, depth_shared=2)
    expected = {
        "none": (),
        "all": (0, 1, 2, 3, 4, 5),
        "every-2": (1, 3, 5),
        "last-half": (3, 4, 5),
        "sensor": (0, 1, 2, 3),
        "shared": (4, 5),
    }
    for spec, idx in expected.items():
        assert dataclasses.replace(cfg, moe_blocks=spec).moe_indices() == idx
    with torch.device("meta"):
        model = build_model("csmoe-s", moe_blocks=[0, 11])
    s1_blocks = model.encoder.sensor_blocks["s1"]
    assert s1_blocks[0].is_moe and not s1_blocks[1].is_moe
    assert model.encoder.shared_blocks[1].is_moe and not model.encoder.shared_blocks[0].is_moe


def test_loss_switches_and_specific_decoders() -> None:
    torch.manual_seed(0)
    model = build_model("csmoe-tiny", w_cross=0.0, decoder="specific", norm_pix_loss=True)
    assert set(model.decoders) == {"s1", "s2"}
    s1, s2 = _batch(model)
    out = model(s1, s2)
    assert set(out.losses) == {"uni_s1", "uni_s2", "contrastive"}
    expected = out.losses["uni_s1"] + out.losses["uni_s2"] + out.losses["contrastive"]
    torch.testing.assert_close(out.loss, expected)
    only_con = build_model("csmoe-tiny", w_uni=0.0, w_cross=0.0)
    assert len(only_con.decoders) == 0
    assert set(only_con(s1, s2).losses) == {"contrastive"}
    with pytest.raises(CsmoeError, match="at least one"):
        build_model("csmoe-tiny", w_uni=0.0, w_cross=0.0, w_contrastive=0.0)


def test_reconstruction_is_scored_on_masked_patches_only() -> None:
    torch.manual_seed(0)
    model = build_model("csmae-tiny", w_cross=0.0, w_contrastive=0.0)
    s1, s2 = _batch(model)
    keep, masks = model.sample_masks(2, "cpu")
    pred = patchify(s1, model.patch_size).clone()
    # a perfect prediction on masked patches, garbage on visible ones, gives zero loss
    pred[~masks["s1"]] = 1e3
    assert model._recon_loss(pred, s1, masks["s1"]).item() == 0.0


def test_nt_xent_uses_gather_and_ranks_pairs() -> None:
    torch.manual_seed(0)
    z = torch.randn(4, 8)
    matched = nt_xent(z, z + 0.01 * torch.randn(4, 8), 0.5)
    shuffled = nt_xent(z, z[[1, 2, 3, 0]], 0.5)
    assert matched < shuffled
    torch.testing.assert_close(nt_xent(z, z, 0.5, gather=lambda t: t), nt_xent(z, z, 0.5))
    calls = []

    def fake_gather(t: torch.Tensor) -> torch.Tensor:  # a second "rank" with its own samples
        calls.append(t.shape)
        other = torch.randn(t.shape, generator=torch.Generator().manual_seed(5))
        return torch.cat([t, F.normalize(other, dim=-1)])

    assert nt_xent(z, z, 0.5, gather=fake_gather) > nt_xent(z, z, 0.5)
    assert len(calls) == 2
    model = build_model("csmoe-tiny")
    s1, s2 = _batch(model)
    out = model(s1, s2, gather=fake_gather)
    assert torch.isfinite(out.losses["contrastive"])


def test_no_weight_decay_names() -> None:
    model = build_model("csmoe-tiny")
    skip = model.no_weight_decay()
    names = dict(model.named_parameters())
    assert skip <= set(names)
    for expected in (
        "encoder.cls_token.s1",
        "encoder.norm.weight",
        "encoder.sensor_norm.s1.weight",
        "encoder.sensor_blocks.s1.0.ffn.phi",  # vmoe decays Router/scale, not mu
        "encoder.sensor_blocks.s1.0.ffn.b1",
        "decoders.common.mask_token",
        "encoder.shared_blocks.0.attn.qkv.bias",
    ):
        assert expected in skip
    for decayed in (
        "encoder.sensor_blocks.s1.0.ffn.w1",
        "encoder.sensor_blocks.s1.0.attn.qkv.weight",
        "encoder.patch_embed.s2.proj.weight",
        "encoder.sensor_blocks.s1.0.ffn.scale",
    ):
        assert decayed not in skip


def test_stacked_shared_blocks_equal_separate_calls() -> None:
    torch.manual_seed(0)
    model = build_model("csmoe-tiny").eval()
    s1, s2 = _batch(model, b=3)
    keep, _ = model.sample_masks(3, "cpu")
    joint = model.encoder.forward_sensors({"s1": s1, "s2": s2}, keep)
    for s, img in (("s1", s1), ("s2", s2)):
        alone = model.encoder.forward_tokens(s, img, keep[s])
        torch.testing.assert_close(joint[s], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("decoder", ["common", "specific"])
def test_batched_decoder_passes_equal_one_pass_per_source(decoder: str) -> None:
    torch.manual_seed(0)
    model = build_model("csmoe-tiny", decoder=decoder).eval()
    s1, s2 = _batch(model, b=2)
    keep, _ = model.sample_masks(2, "cpu")
    tokens = model.encoder.forward_sensors({"s1": s1, "s2": s2}, keep)
    latent = {s: model.encoder.norm(t) for s, t in tokens.items()}
    requests = [(src, t, keep[src]) for src in ("s1", "s2") for t in ("s1", "s2")]
    preds = model._decode(latent, requests)
    for (src, t, place), pred in zip(requests, preds, strict=True):
        dec = model.decoders["common" if decoder == "common" else t]
        alone = dec(latent[src], place, model.num_patches, [[t]])[0][t]
        torch.testing.assert_close(pred, alone, rtol=1e-5, atol=1e-5)
        assert pred.shape == (2, model.num_patches, 64 * model.in_chans[t])
