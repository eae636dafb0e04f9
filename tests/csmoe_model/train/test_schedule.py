"""AdamW parameter groups and the warm-up + cosine schedule."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from csmoe_model import build_model
from csmoe_model.train import TrainConfig
from csmoe_model.train.schedule import build_optimizer, lr_factor

runner = CliRunner()


def test_optimizer_groups_and_schedule() -> None:
    model = build_model("csmoe-tiny")
    cfg = TrainConfig(lr=1e-3)
    opt = build_optimizer(model, cfg, torch.device("cpu"))
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for p in opt.param_groups[1]["params"]}
    assert no_decay == model.no_weight_decay() and opt.param_groups[1]["weight_decay"] == 0.0
    assert opt.param_groups[0]["weight_decay"] == 0.05 and opt.defaults["betas"] == (0.9, 0.95)
    assert [lr_factor(s, 4, 10) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(7, 4, 10) == pytest.approx(0.5) and lr_factor(10, 4, 10) == pytest.approx(0.0)
