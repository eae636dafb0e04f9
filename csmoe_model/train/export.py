"""Export a trained encoder as ``model.safetensors`` (what ``csmoe embed --weights`` reads)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from csmoe_model.models.csmoe import CSMoE
from csmoe_model.weights.pretrained import save_pretrained


def export_encoder(
    model: CSMoE,
    path: Path,
    name: str,
    normalization: Mapping[str, list[float]] | None = None,
    source: str | None = None,
) -> Path:
    """Write the encoder weights and their self-description as safetensors, atomically.

    The file's metadata (see :mod:`csmoe_model.weights.pretrained`) holds the preset name, the
    model config, the band order, the input transform and, when given, the normalisation
    statistics the model was trained with (cut to the model's channels: a cache may hold more
    S2 bands than the model takes).

    Raises:
        CsmoeError: if the statistics do not fit or the file cannot be written.
    """
    if model.config.name != name:  # the run's preset name is the one to record
        model.config.name = name
    stats = None
    if normalization is not None:
        stats = {
            f"{s}_{k}": list(normalization[f"{s}_{k}"])[: model.in_chans[s]]
            for s in ("s1", "s2")
            for k in ("mean", "std")
        }
    return save_pretrained(model, path, normalization=stats, source=source)
