"""What a fine-tuning run keeps on disk: the selected weights, the test scores, and loading them back.

- ``checkpoints/best_step_XXXXXXXX.safetensors``: the trainable weights (the head, or everything in
  ``full`` mode) of the best validated model; only the one the newest checkpoint names is kept.
- ``model.safetensors``: the selected model, encoder and head (metadata: task, head config, model).
- ``test_predictions.parquet`` (scene classification): ``patch_id``, the class ``scores`` and the
  reference ``labels`` of every test row, so that the metrics can be recomputed independently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csmoe_common.atomic import atomic_file
from csmoe_model.errors import CsmoeError
from csmoe_model.finetune.backbone import Backbone
from csmoe_model.finetune.tasks import FinetuneModel

__all__ = ["best_path", "load_finetuned", "load_safetensors", "prune_best", "save_safetensors",
           "trainable_state", "write_scores"]  # fmt: skip


def trainable_state(model: FinetuneModel, train_encoder: bool) -> dict[str, torch.Tensor]:
    """CPU copies of what training changes: the head, or every weight when the encoder trains."""
    sd = (
        model.state_dict()
        if train_encoder
        else {f"head.{k}": v for k, v in model.head.state_dict().items()}
    )
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def save_safetensors(path: Path, state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """Write ``state`` with ``meta`` as safetensors, atomically."""
    from csmoe_model.weights.files import save_safetensors_file

    with atomic_file(path) as tmp:
        save_safetensors_file(state, tmp, metadata=meta)


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (tensors only: nothing is unpickled)."""
    from safetensors.torch import load_file

    return load_file(str(path))


def best_path(out: Path, step: int) -> Path:
    """The best-model file of the validation at ``step``."""
    return out / "checkpoints" / f"best_step_{step:08d}.safetensors"


def prune_best(out: Path, keep_step: int) -> None:
    """Remove the best-model files other than the one of ``keep_step`` (after a checkpoint names it)."""
    keep = best_path(out, keep_step).name
    for p in (out / "checkpoints").glob("best_step_*.safetensors"):
        if p.name != keep:
            p.unlink(missing_ok=True)


def write_scores(
    path: Path, patch_ids: np.ndarray, scores: list[tuple[np.ndarray, np.ndarray]], task: Any
) -> None:
    """``test_predictions.parquet``: patch_id, the class scores and the reference labels of each test row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    idx = np.concatenate([i for i, _ in scores])
    prob = np.concatenate([p for _, p in scores]).astype(np.float32)
    y = task.y[idx].numpy()
    classes = task.data.classes
    table = pa.table({
        "patch_id": pa.array([str(patch_ids[i]) for i in idx], pa.string()),
        "scores": pa.array(list(prob), pa.list_(pa.float32())),
        "labels": pa.array([[classes[c] for c in np.flatnonzero(r)] for r in y], pa.list_(pa.string())),
    }).replace_schema_metadata({b"csmoe_predictions": json.dumps({"classes": classes}).encode()})  # fmt: skip
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)


def load_finetuned(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[FinetuneModel, dict[str, Any]]:
    """Rebuild a finished fine-tuning run's model (encoder and head) from its run directory.

    Returns:
        ``(model, run_config)`` in eval mode.

    Raises:
        CsmoeError: not a finished fine-tuning run.
    """
    from csmoe_model import build_model
    from csmoe_model.heads.upernet import UPerNetHead

    run_dir = Path(run_dir)
    cfg_file, weights = run_dir / "config.json", run_dir / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise CsmoeError(
            f"{run_dir} is not a finished fine-tuning run (config.json, model.safetensors)"
        )
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    if "finetune" not in cfg:
        raise CsmoeError(f"{run_dir} is not a fine-tuning run")
    mc = dict(cfg["model"]["config"])
    mc.pop("name", None)
    net = build_model(cfg["model"]["name"], **mc)
    head_cfg = cfg["head"]
    backbone = Backbone(net, head_cfg["sensor"], head_cfg["out_indices"])
    n = len(head_cfg["classes"])
    head: torch.nn.Module
    if head_cfg["task"] == "segment":
        head = UPerNetHead(
            [backbone.out_dim] * len(backbone.out_indices), n, int(head_cfg["channels"])
        )
    else:
        head = torch.nn.Linear(backbone.out_dim, n)
    model = FinetuneModel(backbone, head)
    model.load_state_dict(load_safetensors(weights))
    return model.to(device).eval(), cfg
