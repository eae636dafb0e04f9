"""FLOP/parameter accounting and ``csmoe model-info`` (the headline: csmoe-b vs csmae-sesd)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from csmoe_cli.model_app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def comparison() -> dict:
    result = runner.invoke(app, ["model-info", "--json"])
    assert result.exit_code == 0, result.output
    return {m["name"]: m for m in json.loads(result.output)["models"]}


def test_csmoe_b_halves_encoder_flops_at_more_parameters(comparison: dict) -> None:
    dense, moe = comparison["csmae-sesd"], comparison["csmoe-b"]
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
    assert {"csmae-sesd", "csmae-secd", "csmae-cesd", "csmae-cecd", "csmae-b", "csmoe-b"} <= set(
        comparison
    )
    assert {"csmoe-s", "csmae-tiny", "csmoe-tiny"} <= set(comparison)
    # the four CSMAE variants share one encoder cost (12 ViT-B blocks a sequence); the
    # sensor-specific decoders double the decoder's training cost
    sesd, cecd = comparison["csmae-sesd"], comparison["csmae-cecd"]
    assert sesd["encode"]["flops"] == cecd["encode"]["flops"]
    assert sesd["train"]["flops"] > cecd["train"]["flops"]
    assert (
        comparison["csmae-b"]["config"] | {"name": "csmae-secd"}
        == comparison["csmae-secd"]["config"]
    )
    for m in comparison.values():
        for key in ("encode", "train"):
            part = m[key]
            assert part["gmacs"] == pytest.approx(part["gflops"] / 2)
            assert sum(part["gflops_by_component"].values()) == pytest.approx(part["gflops"])
            assert min(part["gflops_by_component"].values()) >= 0
        assert m["encode"]["gflops_by_component"]["decoder"] == 0
        assert m["train"]["gflops"] > m["encode"]["gflops"] * 0.5
        assert m["params_total"] == m["params_encoder"] + m["params_decoder"]


def test_readme_examples(comparison: dict) -> None:
    table = runner.invoke(app, ["model-info"])
    assert table.exit_code == 0, table.output
    assert "csmoe-b" in table.output and "0.435x" in table.output and "csmae-sesd" in table.output
    detail = runner.invoke(app, ["model-info", "csmoe-b"])
    assert detail.exit_code == 0 and "sensor_ffn" in detail.output and "484.4" in detail.output
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
