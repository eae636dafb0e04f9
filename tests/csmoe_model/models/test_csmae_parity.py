"""The CSMAE presets reproduce CSMAE's own code on its checkpoints (shared/fixtures/csmae_reference).

The fixtures hold small checkpoints in CSMAE's Lightning layout (vit_tiny backbone, 64-wide
decoders), inputs, mask noise and the embeddings and loss terms CSMAE's unmodified code computed.
The model is built from each checkpoint (variant from the keys, sizes from the shapes), never
from hard-coded ViT-B sizes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from csmoe_model.weights.csmae import (
    BIGEARTHNET_NORMALIZATION,
    build_from_checkpoint,
    import_csmae,
    load_csmae_checkpoint,
)
from csmoe_model.weights.pretrained import from_pretrained, read_pretrained

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "csmae_reference"
pytestmark = pytest.mark.skipif(
    not (FIXTURES / "index.json").is_file(),
    reason=f"CSMAE reference fixtures not found at {FIXTURES} (CI has ../shared)",
)
INDEX = (
    json.loads((FIXTURES / "index.json").read_text()) if (FIXTURES / "index.json").is_file() else {}
)
VARIANTS = sorted(INDEX)
#: our loss names -> the names CSMAE logs
TERMS = {
    "uni_s1": "train_reconstruction_loss_s1_from_s1",
    "uni_s2": "train_reconstruction_loss_s2_from_s2",
    "cross_s1": "train_reconstruction_loss_s1_from_s2",
    "cross_s2": "train_reconstruction_loss_s2_from_s1",
    "contrastive": "train_mim_loss",
}


def _reference(variant: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURES / INDEX[variant]["reference"]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_detected_from_the_checkpoint(variant: str) -> None:
    entry = INDEX[variant]
    ckpt = load_csmae_checkpoint(FIXTURES / entry["checkpoint"])
    se = entry["multi_sensor_encoder_depth"] > 0
    sd = entry["decoding_strategy"] == "specific"
    assert ckpt.variant == ("SE" if se else "CE") + ("SD" if sd else "CD")
    model = build_from_checkpoint(ckpt)
    cfg = model.config
    assert (cfg.depth_sensor, cfg.depth_shared) == (
        entry["multi_sensor_encoder_depth"],
        entry["cross_sensor_encoder_depth"],
    )
    assert (cfg.decoder_dim, cfg.decoder_depth, cfg.decoder_heads) == (
        entry["decoder"]["embed_dim"],
        entry["decoder"]["depth"],
        entry["decoder"]["heads"],
    )
    assert cfg.reconstruction == entry["reconstruction_strategy"]
    assert cfg.mask_ratio == entry["mask_ratio"] and cfg.temperature == entry["mim_temp"]
    assert cfg.embed_dim == 192 and cfg.num_heads == 3 and cfg.in_chans == {"s1": 2, "s2": 10}


@pytest.mark.parametrize("variant", VARIANTS)
def test_embeddings_match_csmae(variant: str) -> None:
    ref = _reference(variant)
    model = build_from_checkpoint(load_csmae_checkpoint(FIXTURES / INDEX[variant]["checkpoint"]))
    with torch.no_grad():
        emb = model.encode(s1=ref["s1"], s2=ref["s2"])
    for s in ("s1", "s2"):
        torch.testing.assert_close(emb[s], ref[f"embedding_{s}"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_loss_term_matches_csmae(variant: str) -> None:
    entry = INDEX[variant]
    ref = _reference(variant)
    model = build_from_checkpoint(load_csmae_checkpoint(FIXTURES / entry["checkpoint"])).train()
    noise = {"s1": ref["noise_s1"], "s2": ref["noise_s2"]}
    with torch.no_grad():
        out = model(ref["s1"], ref["s2"], noise=noise)
    assert set(out.losses) == set(TERMS)
    for ours, theirs in TERMS.items():
        assert out.losses[ours].item() == pytest.approx(entry["losses"][theirs], abs=1e-4), ours
    recon = sum(out.losses[k].item() for k in TERMS if k != "contrastive")
    assert recon == pytest.approx(entry["losses"]["train_reconstruction_loss"], abs=1e-4)
    assert out.loss.item() == pytest.approx(entry["total_loss"], abs=1e-4)
    # the visible patches are the 32 smallest noise values of each row (CSMAE's argsort)
    visible = torch.argsort(ref["noise_s1"], dim=1)[:, :32]
    assert not out.masks["s1"].gather(1, visible).any() and out.masks["s1"].sum(1).eq(32).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_imported_weights_embed_like_csmae(variant: str, tmp_path: Path) -> None:
    ref = _reference(variant)
    ckpt = FIXTURES / INDEX[variant]["checkpoint"]
    plain, _ = import_csmae(ckpt, tmp_path / "plain", input_transform="none")
    model = from_pretrained(plain.parent)
    assert model.normalization == BIGEARTHNET_NORMALIZATION
    with torch.no_grad():
        emb = model.encode(s1=ref["s1"], s2=ref["s2"])
    for s in ("s1", "s2"):
        torch.testing.assert_close(emb[s], ref[f"embedding_{s}"], rtol=0, atol=1e-5)
    # the default import takes raster-oriented images: CSMAE's tensors are their transposes
    written, _ = import_csmae(ckpt, tmp_path / "raster")
    info, _ = read_pretrained(written)
    assert info.input_transform == "transpose_hw" and "np.transpose" in info.metadata["note"]
    assert info.bands == {
        "s1": ["VH", "VV"],
        "s2": ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B11", "B12", "B8A"],
    }
    raster = from_pretrained(written)
    with torch.no_grad():
        emb = raster.encode(s1=ref["s1"].transpose(-2, -1), s2=ref["s2"].transpose(-2, -1))
    for s in ("s1", "s2"):
        torch.testing.assert_close(emb[s], ref[f"embedding_{s}"], rtol=0, atol=1e-5)
