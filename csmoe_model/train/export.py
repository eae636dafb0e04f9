"""Export a trained encoder as ``model.safetensors`` (what ``csmoe embed --weights`` reads)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from csmoe_common.atomic import atomic_file
from csmoe_model.models.csmoe import CSMoE


def export_encoder(model: CSMoE, path: Path, name: str) -> Path:
    """Write ``model.encoder_state_dict()`` as safetensors, atomically.

    The file's metadata holds ``model`` (the preset name), ``config`` (the model config as JSON)
    and ``format`` (``csmoe-encoder``).

    Raises:
        CsmoeError: if the file cannot be written.
    """
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous().clone() for k, v in model.encoder_state_dict().items()}
    meta = {
        "model": name,
        "config": json.dumps(dataclasses.asdict(model.config)),
        "format": "csmoe-encoder",
    }
    with atomic_file(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return path
