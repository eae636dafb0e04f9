"""The encoder as a backbone: feature maps, pooled embeddings and layer-wise learning rates."""

from __future__ import annotations

import pytest
import torch

from csmoe_model import build_model
from csmoe_model.errors import CsmoeError
from csmoe_model.finetune.backbone import Backbone, default_out_indices, layer_id, param_groups


def test_default_out_indices() -> None:
    assert default_out_indices(12) == (2, 5, 8, 11)
    assert default_out_indices(3) == (0, 1, 2)
    assert default_out_indices(1) == (0,)


def test_feature_maps_are_the_block_tokens_in_grid_order() -> None:
    torch.manual_seed(0)
    model = build_model("csmoe-tiny", img_size=16, patch_size=4).eval()
    bb = Backbone(model, "both", (0, 2))
    s1, s2 = torch.randn(2, 2, 16, 16), torch.randn(2, 10, 16, 16)
    maps = bb.features(s1, s2)
    assert [m.shape for m in maps] == [(2, 128, 4, 4)] * 2
    # the last block's map holds the encoder's tokens (before the final norm), row-major
    tokens = model.encoder.forward_sensors({"s1": None, "s2": s2})["s2"][:, 1:]
    assert torch.allclose(maps[1][:, 64:].flatten(2).transpose(1, 2), tokens, atol=1e-5)
    assert bb.pooled(s1, s2).shape == (2, 128)
    assert torch.allclose(bb.pooled(s1, s2)[:, 64:], model.encode(s2=s2)["s2"], atol=1e-6)
    with pytest.raises(CsmoeError, match="out of range"):
        Backbone(model, "s2", (3,))


def test_layer_wise_decay_follows_the_block_order() -> None:
    model = build_model("csmoe-tiny", img_size=16)  # 2 sensor-specific + 1 shared block
    assert layer_id("patch_embed.s2.proj.weight", 2, 3) == 0
    assert layer_id("sensor_blocks.s2.1.attn.qkv.weight", 2, 3) == 2
    assert layer_id("shared_blocks.0.mlp.fc1.weight", 2, 3) == 3
    assert layer_id("fc_norm.weight", 2, 3) == 4
    bb = Backbone(model, "s2")
    head = torch.nn.Linear(64, 3)
    groups = param_groups(bb, head, lr=1.0, weight_decay=0.05, layer_decay=0.5, train_encoder=True)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    enc = model.encoder
    assert scale[id(enc.patch_embed["s2"].proj.weight)] == 0.5**4
    assert scale[id(enc.shared_blocks[0].attn.qkv.weight)] == 0.5
    assert scale[id(head.weight)] == 1.0
    assert id(enc.patch_embed["s1"].proj.weight) not in scale  # the unused sensor is not optimised
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(head.bias) in no_decay and id(head.weight) not in no_decay
    frozen = param_groups(bb, head, 1.0, 0.05, 0.5, train_encoder=False)
    assert sum(len(g["params"]) for g in frozen) == 2
