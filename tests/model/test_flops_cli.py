"""FLOP/parameter accounting and ``csmoe model-info`` (the headline: csmoe-b vs csmae-b)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from csmoe_cli.model_app import app
from csmoe_model.flops import count_params, model_report

runner = CliRunner()


@pytest.fixture(scope="module")
def comparison() -> dict:
    result = runner.invoke(app, ["model-info", "--json"])
    assert result.exit_code == 0, result.output
    return {m["name"]: m for m in json.loads(result.output)["models"]}


def test_csmoe_b_halves_encoder_flops_at_more_parameters(comparison: dict) -> None:
    dense, moe = comparison["csmae-b"], comparison["csmoe-b"]
    assert (
        (dense["img_size"], dense["patch_size"])
        == (moe["img_size"], moe["patch_size"])
        == (120, 15)
    )
    assert moe["encode"]["flops"] <= 0.5 * dense["encode"]["flops"]
    assert moe["params_total"] >= dense["params_total"]
    assert moe["params_encoder"] >= dense["params_encoder"]
    assert moe["params_active_per_token"] < dense["params_active_per_token"]


def test_comparison_lists_every_preset_with_consistent_numbers(comparison: dict) -> None:
    assert {"csmae-b", "csmoe-b", "csmoe-s", "csmae-tiny", "csmoe-tiny"} <= set(comparison)
    for m in comparison.values():
        for key in ("encode", "train"):
            part = m[key]
            assert part["gmacs"] == pytest.approx(part["gflops"] / 2)
            assert sum(part["gflops_by_component"].values()) == pytest.approx(part["gflops"])
            assert min(part["gflops_by_component"].values()) >= 0
        assert m["encode"]["gflops_by_component"]["decoder"] == 0
        assert m["train"]["gflops"] > m["encode"]["gflops"] * 0.5
        assert m["params_total"] == m["params_encoder"] + m["params_decoder"]


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


def test_readme_examples(comparison: dict) -> None:
    table = runner.invoke(app, ["model-info"])
    assert table.exit_code == 0, table.output
    assert "csmoe-b" in table.output and "0.436x" in table.output
    detail = runner.invoke(app, ["model-info", "csmoe-b"])
    assert detail.exit_code == 0 and "sensor_ffn" in detail.output and "485.0" in detail.output
    p14 = runner.invoke(app, ["model-info", "csmoe-b", "--json", "--set", "patch_size=14"])
    assert p14.exit_code == 0, p14.output
    data = json.loads(p14.output)
    assert (data["img_size"], data["tokens_per_sensor"]) == (126, 81)
    assert data["encode"]["flops"] > comparison["csmoe-b"]["encode"]["flops"]


def test_model_info_detail_and_overrides() -> None:
    result = runner.invoke(app, ["model-info", "csmoe-tiny"])
    assert result.exit_code == 0, result.output
    assert "sensor_ffn" in result.output and "parameters, total" in result.output
    result = runner.invoke(
        app,
        ["model-info", "csmoe-tiny", "--json", "--set", "patch_size=16", "--set", "img_size=null"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["img_size"], data["patch_size"], data["tokens_per_sensor"]) == (128, 16, 64)


def test_model_info_errors_are_one_line() -> None:
    result = runner.invoke(app, ["model-info", "csmoe-xl"])
    assert result.exit_code != 0
    assert "unknown model" in result.output and "csmoe-b" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["model-info", "csmoe-tiny", "--set", "depth"])
    assert result.exit_code != 0 and "KEY=VALUE" in result.output
    result = runner.invoke(app, ["model-info", "csmoe-tiny", "--set", "depth=3"])
    assert result.exit_code != 0 and "unknown option" in result.output
