"""Training: ``train(TrainConfig)`` (``csmoe train``), checkpoints, and ``load_run`` for trained models.

Modules: :mod:`.config` (``TrainConfig``), :mod:`.run` (``RunDir``, ``config.json``, ``load_run``),
:mod:`.data` (cache, rows and loader of a run), :mod:`.step` (``train_step``, shared with the
benchmarks), :mod:`.loop` (``train``), :mod:`.metrics_log`, :mod:`.checkpoint`, :mod:`.export`,
:mod:`.schedule` and :mod:`.distributed`. The names below are imported on first use, so that
``csmoe_model.train.config`` stays free of torch.

Load a trained model (what ``csmoe embed`` does)::

    from csmoe_model.train import load_run
    model, run = load_run("runs/tiny", device="cuda")       # config.json + model.safetensors
    stats = run["data"]["normalization"]                       # feed other manifests with these
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csmoe_common.lazy import lazy_getattr

if TYPE_CHECKING:
    from csmoe_model.train.checkpoint import (
        load_checkpoint,
        load_latest_checkpoint,
        save_checkpoint,
    )
    from csmoe_model.train.config import TrainConfig, resolve_config
    from csmoe_model.train.export import export_encoder
    from csmoe_model.train.loop import NonFiniteLoss, TrainResult, train
    from csmoe_model.train.run import RunDir, load_run, read_run_config
    from csmoe_model.train.step import StepResult, train_step

_LAZY: dict[str, str] = {
    "load_checkpoint": "checkpoint",
    "load_latest_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "TrainConfig": "config",
    "resolve_config": "config",
    "export_encoder": "export",
    "NonFiniteLoss": "loop",
    "TrainResult": "loop",
    "train": "loop",
    "RunDir": "run",
    "load_run": "run",
    "read_run_config": "run",
    "StepResult": "step",
    "train_step": "step",
}

__all__ = [
    "NonFiniteLoss",
    "RunDir",
    "StepResult",
    "TrainConfig",
    "TrainResult",
    "export_encoder",
    "load_checkpoint",
    "load_latest_checkpoint",
    "load_run",
    "read_run_config",
    "resolve_config",
    "save_checkpoint",
    "train",
    "train_step",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
