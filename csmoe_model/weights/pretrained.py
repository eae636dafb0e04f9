"""Self-describing encoder weights: ``model.safetensors`` that carries what it needs.

The safetensors header metadata (strings) of a csmoe weights file holds:

* ``format``: ``csmoe-encoder``;
* ``model``: the preset name, ``config``: the full model config as JSON
  (``build_model(model, **config)`` rebuilds the architecture);
* ``bands``: JSON ``{"s1": [...], "s2": [...]}``, the band names of the input channels in order;
* ``normalization``: JSON ``{"s1_mean": [...], "s1_std": [...], "s2_mean": [...], "s2_std": [...]}``
  in that band order (what the model was trained with), when known;
* ``input_transform``: ``none`` or ``transpose_hw`` (see ``CsmoeConfig.input_transform``);
* ``source`` and ``note``: where the weights came from, free text.

:func:`save_pretrained` writes such a file (atomically), :func:`from_pretrained` returns a ready
model (eval mode) with ``model.normalization`` set to the stored statistics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from csmoe_common.atomic import atomic_file
from csmoe_model.errors import CsmoeError

__all__ = [
    "WEIGHTS_FILE",
    "PretrainedInfo",
    "from_pretrained",
    "read_pretrained",
    "save_pretrained",
    "validate_normalization",
]

WEIGHTS_FILE = "model.safetensors"
FORMAT = "csmoe-encoder"


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_FILE
    if not p.is_file():
        raise CsmoeError(f"weights file not found: {p}")
    return p


def validate_normalization(
    stats: Mapping[str, Any], in_chans: Mapping[str, int]
) -> dict[str, list[float]]:
    """Check normalisation statistics against the model's channel counts.

    Args:
        stats: ``{"s1_mean", "s1_std", "s2_mean", "s2_std"}`` lists of floats.
        in_chans: channels per sensor.

    Returns:
        The statistics as plain lists of floats.

    Raises:
        CsmoeError: a missing key, a length that differs from the channel count, or a std <= 0.
    """
    out: dict[str, list[float]] = {}
    for sensor, n in in_chans.items():
        for kind in ("mean", "std"):
            key = f"{sensor}_{kind}"
            values = stats.get(key)
            if not isinstance(values, list | tuple) or len(values) != n:
                raise CsmoeError(
                    f"normalisation statistics {key!r} must list {n} values, got {values!r}"
                )
            try:
                floats = [float(v) for v in values]
            except (TypeError, ValueError):
                raise CsmoeError(f"normalisation statistics {key!r} are not numbers") from None
            if kind == "std" and min(floats) <= 0:
                raise CsmoeError(f"normalisation statistics {key!r} must be > 0")
            out[key] = floats
    return out


def save_pretrained(
    model: Any,
    path: str | Path,
    *,
    normalization: Mapping[str, Any] | None = None,
    source: str | None = None,
    note: str | None = None,
) -> Path:
    """Write ``model``'s encoder weights and everything needed to use them, atomically.

    Args:
        model: a :class:`~csmoe_model.models.csmoe.CSMoE`.
        path: the file to write, or a folder (then ``folder/model.safetensors``).
        normalization: the statistics the model expects its inputs normalised with.
        source: where the weights come from (a run folder, a checkpoint).
        note: free text stored with the weights.

    Returns:
        The written file.

    Raises:
        CsmoeError: statistics that do not fit the model, or a file that cannot be written.
    """
    import dataclasses

    from csmoe_model.weights.files import save_safetensors_file

    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path.mkdir(parents=True, exist_ok=True)
        path = path / WEIGHTS_FILE
    cfg = model.config
    meta = {
        "format": FORMAT,
        "model": str(cfg.name),
        "config": json.dumps(dataclasses.asdict(cfg)),
        "bands": json.dumps({s: list(cfg.band_names(s)) for s in ("s1", "s2")}),
        "input_transform": str(cfg.input_transform),
    }
    if normalization is not None:
        meta["normalization"] = json.dumps(validate_normalization(normalization, cfg.in_chans))
    if source is not None:
        meta["source"] = str(source)
    if note is not None:
        meta["note"] = str(note)
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in model.encoder_state_dict().items()}
    with atomic_file(path) as tmp:
        save_safetensors_file(sd, tmp, metadata=meta)
    return path


@dataclass
class PretrainedInfo:
    """What a weights file says about itself.

    Attributes:
        path: the file.
        model: preset name (``None`` when the file does not say).
        config: model config overrides (possibly empty).
        bands: band names per sensor, if recorded.
        normalization: statistics, if recorded.
        input_transform: ``none`` or ``transpose_hw``.
        metadata: the raw metadata strings.
    """

    path: Path
    model: str | None
    config: dict[str, Any] = field(default_factory=dict)
    bands: dict[str, list[str]] | None = None
    normalization: dict[str, list[float]] | None = None
    input_transform: str = "none"
    metadata: dict[str, str] = field(default_factory=dict)


def _json_field(meta: Mapping[str, str], key: str, path: Path) -> Any:
    raw = meta.get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise CsmoeError(f"{path}: metadata {key!r} is not valid JSON") from None


def read_pretrained(path: str | Path) -> tuple[PretrainedInfo, dict[str, torch.Tensor]]:
    """Read a weights file: its self-description and its tensors.

    Args:
        path: a ``.safetensors`` file or a folder holding ``model.safetensors``.

    Raises:
        CsmoeError: a missing or unreadable file.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = _resolve(path)
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        state = load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CsmoeError(f"cannot read {p} as safetensors: {exc}") from exc
    config = _json_field(meta, "config", p) or {}
    if not isinstance(config, dict):
        raise CsmoeError(f"{p}: metadata 'config' is not a JSON object")
    stats = _json_field(meta, "normalization", p)
    bands = _json_field(meta, "bands", p)
    info = PretrainedInfo(
        path=p,
        model=meta.get("model") or config.get("name"),
        config=config,
        bands=bands if isinstance(bands, dict) else None,
        normalization=stats if isinstance(stats, dict) else None,
        input_transform=str(meta.get("input_transform") or config.get("input_transform", "none")),
        metadata=meta,
    )
    return info, state


def _encoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a full-model state dict too: keep the ``encoder.`` entries without the prefix."""
    if any(k.startswith("encoder.") for k in state):
        return {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    return state


def from_pretrained(
    path_or_dir: str | Path, model: str | None = None, device: str | torch.device = "cpu"
) -> Any:
    """Build the model a weights file describes and load its weights: a ready encoder.

    Args:
        path_or_dir: a ``.safetensors`` file or a folder holding ``model.safetensors`` (e.g. a
            ``csmoe train`` run or a ``csmoe import-weights`` output).
        model: preset name, for files that do not record one (older exports).
        device: where to put the model.

    Returns:
        A :class:`~csmoe_model.models.csmoe.CSMoE` in eval mode whose ``normalization`` attribute
        holds the stored statistics (``None`` when the file has none).

    Raises:
        CsmoeError: a missing/unreadable file, no preset name, or weights that do not fit.
    """
    from csmoe_model.registry import build_model

    info, state = read_pretrained(path_or_dir)
    name = model or info.model
    if not name:
        raise CsmoeError(f"{info.path} does not name its model; pass model=NAME")
    overrides = dict(info.config)
    if model is not None and overrides.get("name") not in (None, model):
        overrides = {}  # another preset was asked for: its own config, not the file's
    net = build_model(name, **overrides)
    if not overrides:  # an older file: the recorded transform is all it says
        net.config.input_transform = info.input_transform
        net.encoder.transpose_hw = info.input_transform == "transpose_hw"
    net.load_encoder_state_dict(_encoder_state(state))
    net.normalization = (
        validate_normalization(info.normalization, net.in_chans) if info.normalization else None
    )
    return net.to(device).eval()
