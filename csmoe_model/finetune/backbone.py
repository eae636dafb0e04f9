"""The pretrained encoder as a backbone: pooled embeddings, multi-level feature maps, layer-wise lr.

Feature maps come from the model's ``forward_features(s1, s2, out_indices)`` (per sensor, one
(B, D, H/p, W/p) map per chosen block, CLS dropped); with ``sensor="both"`` the two sensors' maps
of a level are concatenated along channels, as their pooled embeddings are for classification
(the convention of ``eval probe``).

Layer-wise learning-rate decay (BEiT, Bao et al. 2022; MAE fine-tuning): a parameter gets a layer
id (patch embeddings, CLS tokens: 0; the ``i``-th block a sequence passes through: ``i + 1``; the
final norms and the task head: ``depth + 1``) and the learning rate ``lr * decay ** (depth + 1 - id)``.
CSMoE's sensor-specific blocks ``i`` of both sensors share id ``i + 1``; shared block ``j`` gets
``depth_sensor + j + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from csmoe_model.errors import CsmoeError

__all__ = ["Backbone", "default_out_indices", "layer_id", "param_groups"]


def default_out_indices(depth: int, levels: int = 4) -> tuple[int, ...]:
    """``levels`` evenly spaced block indices ending at the last block (12 blocks: 2, 5, 8, 11)."""
    picked = sorted({max(0, round((i + 1) * depth / levels) - 1) for i in range(levels)})
    return tuple(picked)


class Backbone(nn.Module):
    """A CSMoE model used as a backbone for one sensor or both.

    Args:
        model: a :class:`~csmoe_model.models.csmoe.CSMoE` (its decoders are not used).
        sensor: ``s1``, ``s2`` or ``both``.
        out_indices: blocks whose maps :meth:`features` returns (default
            :func:`default_out_indices`).

    Raises:
        CsmoeError: an unknown sensor or a block index out of range.
    """

    def __init__(
        self, model: nn.Module, sensor: str, out_indices: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        if sensor not in ("s1", "s2", "both"):
            raise CsmoeError(f"sensor must be s1, s2 or both, not {sensor!r}")
        self.model = model
        self.sensor = sensor
        cfg: Any = model.config
        self.depth = int(cfg.depth_sensor + cfg.depth_shared)
        self.depth_sensor = int(cfg.depth_sensor)
        indices = tuple(out_indices) if out_indices else default_out_indices(self.depth)
        bad = [i for i in indices if not 0 <= i < self.depth]
        if bad:
            raise CsmoeError(
                f"out_indices {bad} out of range for the encoder's {self.depth} blocks"
            )
        self.out_indices = indices
        self.sensors: tuple[str, ...] = ("s1", "s2") if sensor == "both" else (sensor,)
        self.embed_dim = int(cfg.embed_dim)

    @property
    def out_dim(self) -> int:
        """Channels of a pooled embedding or feature map (``2 * D`` for both sensors)."""
        return self.embed_dim * len(self.sensors)

    def _inputs(self, s1: torch.Tensor, s2: torch.Tensor) -> dict[str, torch.Tensor | None]:
        return {
            "s1": s1 if "s1" in self.sensors else None,
            "s2": s2 if "s2" in self.sensors else None,
        }

    def pooled(self, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """(B, out_dim) pooled embeddings (each sensor encoded alone, then concatenated)."""
        emb = self.model.encode(**self._inputs(s1, s2))  # type: ignore[operator]
        return torch.cat([emb[s] for s in self.sensors], dim=1)

    def features(self, s1: torch.Tensor, s2: torch.Tensor) -> list[torch.Tensor]:
        """One (B, out_dim, H/p, W/p) map per entry of ``out_indices``."""
        forward_features: Any = self.model.forward_features
        maps: dict[str, list[torch.Tensor]] = forward_features(
            **self._inputs(s1, s2), out_indices=self.out_indices
        )
        return [
            torch.cat([maps[s][i] for s in self.sensors], dim=1)
            for i in range(len(self.out_indices))
        ]


def layer_id(name: str, depth_sensor: int, depth: int) -> int:
    """The layer id of an encoder parameter ``name`` (relative to the encoder) for lr decay."""
    parts = name.split(".")
    if parts[0] in ("patch_embed", "cls_token", "pos_embed"):
        return 0
    if parts[0] == "sensor_blocks" and len(parts) > 2:
        return int(parts[2]) + 1
    if parts[0] == "shared_blocks" and len(parts) > 1:
        return depth_sensor + int(parts[1]) + 1
    return depth + 1  # final norms (and anything after the blocks)


def param_groups(
    backbone: Backbone,
    head: nn.Module,
    lr: float,
    weight_decay: float,
    layer_decay: float,
    train_encoder: bool,
) -> list[dict[str, Any]]:
    """AdamW parameter groups: layer-wise decayed rates for the encoder, ``lr`` for the head.

    Norms, biases, tokens and Soft MoE scales (``model.no_weight_decay()``) get no weight decay.
    Only the encoder parameters a sensor in use reaches are included (the other sensor's patch
    embedding and blocks get no gradient).
    """
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}

    def add(p: nn.Parameter, scale: float, decay: bool) -> None:
        key = (scale, weight_decay if decay else 0.0)
        groups.setdefault(key, []).append(p)

    def decays(name: str, p: torch.Tensor) -> bool:
        leaf = name.rsplit(".", 1)[-1]
        return not (p.ndim <= 1 or leaf in {"bias", "scale"} or "cls_token" in name)

    if train_encoder:
        enc: Any = backbone.model.encoder
        for name, p in enc.named_parameters():
            parts = name.split(".")
            per_sensor = parts[0] in ("patch_embed", "cls_token", "sensor_blocks")
            if per_sensor and len(parts) > 1 and parts[1] not in backbone.sensors:
                continue  # the other sensor's weights get no gradient
            lid = layer_id(name, backbone.depth_sensor, backbone.depth)
            add(p, layer_decay ** (backbone.depth + 1 - lid), decays(name, p))
    for name, p in head.named_parameters():
        add(p, 1.0, decays(name, p))
    return [
        {"params": ps, "lr": lr * scale, "lr_scale": scale, "weight_decay": wd}
        for (scale, wd), ps in sorted(groups.items())
    ]
