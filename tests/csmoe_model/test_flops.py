"""FLOP counts are taken on the meta device, whatever device the model is on."""

from __future__ import annotations

import torch

from csmoe_model import build_model
from csmoe_model.flops import count_flops


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
