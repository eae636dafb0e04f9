"""AdamW with decay only where it belongs, and a linear warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch

from csmoe_model.train.config import TrainConfig


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak lr for optimizer step ``step`` (0-based): linear warm-up, then cosine."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW(betas, weight decay) with ``model.no_weight_decay()`` in a group without decay; fused on CUDA."""
    names = getattr(model, "no_weight_decay", None)  # CSMoE's; any other module: decay everything
    skip: set[str] = set(names()) if callable(names) else set()
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # the fused kernel needs every parameter on one CUDA device in a floating dtype; it is the
    # fastest path there (one launch per step), while the CPU keeps the default implementation
    # (whose results the exact-resume tests pin down)
    params = decay + no_decay
    fused = (
        device.type == "cuda"
        and all(p.is_cuda and p.is_floating_point() for p in params)
        and len({p.device for p in params}) == 1
    )
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), fused=fused)


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup, total, min_ratio)
    )
