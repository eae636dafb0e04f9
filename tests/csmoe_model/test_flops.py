"""FLOP and parameter counts against closed-form counts, always taken on the meta device."""

from __future__ import annotations

import pytest
import torch

from csmoe_model import build_model
from csmoe_model.flops import count_flops, count_params, model_report


def _dense_block_flops(n: int, d: int, h: int) -> int:
    # qkv + proj + attention (QK^T and AV) + MLP, 2 FLOPs per multiply-add
    return 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * n * d + 2 * 2 * n * d * h


def test_encoder_flops_match_the_analytic_count() -> None:
    r = model_report("csmae-tiny", batch=1)
    c = r.config
    d, n, p = c["embed_dim"], r.tokens_per_sensor + 1, c["patch_size"]
    h = int(d * c["mlp_ratio"])
    total = 0
    for chans in c["in_chans"].values():
        per_sensor = 2 * r.tokens_per_sensor * chans * p * p * d
        per_sensor += (c["depth_sensor"] + c["depth_shared"]) * _dense_block_flops(n, d, h)
        total += per_sensor
    assert r.encode.total == total
    # Soft MoE: logits, dispatch and combine are (n x d x slots) products; experts run on slots
    m = model_report("csmoe-tiny", batch=1)
    s, eh = m.config["num_experts"] * m.config["slots_per_expert"], m.config["expert_hidden_dim"]
    moe_ffn = 3 * 2 * n * d * s + 2 * 2 * s * d * eh
    blocks = 2 * (c["depth_sensor"] + c["depth_shared"])
    assert m.encode.total == total - blocks * (2 * 2 * n * d * h) + blocks * moe_ffn


def test_active_parameters_per_token() -> None:
    import torch

    from csmoe_model import build_model

    with torch.device("meta"):
        dense, moe = build_model("csmae-tiny"), build_model("csmoe-tiny")
    pd, pm = count_params(dense), count_params(moe)
    assert pd["active_per_token"] == pd["encoder"]
    ffn = moe.encoder.shared_blocks[0].ffn
    experts = sum(t.numel() for t in (ffn.w1, ffn.b1, ffn.w2, ffn.b2))
    tokens = moe.num_patches + 1
    moe_layers = 3 * 2 - 1  # 2 sensor blocks per sensor + 1 shared block
    expected = pm["encoder"] - moe_layers * experts * (1 - ffn.num_slots / ffn.num_experts / tokens)
    assert pm["active_per_token"] == pytest.approx(expected)


def test_cpu_model_is_counted_on_the_meta_device() -> None:
    cpu = build_model("csmae-tiny")
    with torch.device("meta"):
        meta = build_model("csmae-tiny")
    for mode in ("encode", "train"):
        a, b = count_flops(cpu, mode), count_flops(meta, mode)
        assert a.total == b.total and a.components == b.components
    enc = count_flops(cpu)
    # attention in closed form per block and sequence: the qkv and output projections
    # (2 n d 3d + 2 n d d) plus scaled-dot-product attention (q k^T and attn v: 2 * 2 n^2 d);
    # a count that missed the fused SDPA kernel would lack the last term
    n, d = cpu.num_patches + 1, cpu.embed_dim
    per_block = 2 * n * d * 3 * d + 2 * n * d * d + 4 * n * n * d
    assert enc.components["sensor_attn"] == 2 * cpu.config.depth_sensor * per_block
    # the CPU model's parameters were not touched (no gradients, still on the CPU)
    assert all(p.grad is None and p.device.type == "cpu" for p in cpu.parameters())
