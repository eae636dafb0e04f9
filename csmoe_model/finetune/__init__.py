"""Downstream tasks on a pretrained encoder: scene classification and semantic segmentation.

    from csmoe_model.finetune import FinetuneConfig, finetune
    cfg = FinetuneConfig(manifest="m.parquet", run="runs/tiny", out="runs/ft", mode="full",
                         labels_column="labels19", max_steps=100)
    result = finetune(cfg)          # RUN/metrics.json: macro/micro mAP and F1 on test

Modules: :mod:`.config` (``FinetuneConfig``), :mod:`.backbone` (the encoder as a backbone, layer-wise
lr decay), :mod:`.tasks` (classification and segmentation), :mod:`.loop` (``finetune``),
:mod:`.export` (weights and test scores on disk), :mod:`.predictions` (GeoTIFF predictions), :mod:`.report` (Markdown).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from csmoe_model.finetune.config import FinetuneConfig, Mode, Sensor, Task

if TYPE_CHECKING:
    from csmoe_model.finetune.export import load_finetuned
    from csmoe_model.finetune.loop import FinetuneResult, finetune

_LAZY = {"FinetuneResult": "loop", "finetune": "loop", "load_finetuned": "export"}

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "Mode",
    "Sensor",
    "Task",
    "finetune",
    "load_finetuned",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"csmoe_model.finetune.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'csmoe_model.finetune' has no attribute {name!r}")
