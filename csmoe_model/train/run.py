"""Load a finished (or running) training run: the model and how to feed it.

``RUN_DIR/config.json`` holds ``model.name`` and ``model.config`` (``build_model(name, **config)``
rebuilds the architecture) and ``data.normalization`` (the statistics the model was trained with:
pass them as ``stats=`` to the loader when embedding other manifests); ``RUN_DIR/model.safetensors``
holds the encoder weights. A run without ``model.safetensors`` (not finished) loads the model of its
newest checkpoint instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from csmoe_model.errors import CsmoeError


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The decoded ``RUN_DIR/config.json``.

    Raises:
        CsmoeError: no such run.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CsmoeError(f"{run_dir} is not a csmoe run directory (no config.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a run's model with its trained encoder weights, in eval mode on ``device``.

    Returns:
        ``(model, run_config)``; ``run_config["data"]["normalization"]`` are the stats to feed it with.

    Raises:
        CsmoeError: not a run, or weights that do not fit.
    """
    from csmoe_model import build_model

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    model_cfg = dict(cfg["model"]["config"])
    model_cfg.pop("name", None)
    model = build_model(cfg["model"]["name"], **model_cfg)
    weights = run_dir / "model.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        model.load_encoder_state_dict(load_file(str(weights)))
    else:
        from csmoe_model.train.checkpoint import load_latest_checkpoint

        found = load_latest_checkpoint(run_dir / "checkpoints")
        if found is None:
            raise CsmoeError(f"{run_dir} has neither model.safetensors nor a checkpoint")
        model.load_state_dict(found[1]["model"])
    return model.to(device).eval(), cfg
