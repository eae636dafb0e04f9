"""One training step, the same for ``csmoe train`` and the benchmarks that time it.

A step is: clear the gradients, forward (the full CSMAE objective, optionally under autocast),
backward, optional gradient-norm clipping, optimizer step, optional scheduler step. The gradients
are cleared (set to ``None``) *before* the forward pass, so the previous step's gradients are
freed while the activations are built (lower peak memory; the result is the same as clearing them
just before the backward pass).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

Gather = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StepResult:
    """What one :func:`train_step` computed (tensors stay on the device; nothing synchronises).

    Attributes:
        loss: the total loss (detached).
        losses: the loss terms by name (detached), e.g. ``uni_s1``, ``cross_s2``, ``contrastive``.
        grad_norm: the gradient norm before clipping (``None`` without clipping).
        lr: the learning rate this step used.
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    grad_norm: torch.Tensor | None
    lr: float


def amp_dtype_for(device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``csmoe train`` uses on ``device``: bf16 on CUDA, none elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else None


def train_step(
    model: Callable[..., Any],
    optimizer: torch.optim.Optimizer,
    s1: torch.Tensor,
    s2: torch.Tensor,
    *,
    params: Sequence[torch.Tensor] | None = None,
    grad_clip: float | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    gather: Gather | None = None,
    amp_dtype: torch.dtype | None = None,
) -> StepResult:
    """Run one optimisation step of a CSMoE model on a batch of S1/S2 pairs.

    Args:
        model: the model to call (a module, DDP-wrapped or compiled); it returns a
            :class:`~csmoe_model.models.csmoe.CsmoeOutput`.
        optimizer: the optimizer over ``model``'s trainable parameters.
        s1: (B, C1, H, W) normalised Sentinel-1 batch on the model's device.
        s2: (B, C2, H, W) normalised Sentinel-2 batch.
        params: the parameters whose gradient norm is clipped (default: the trainable
            parameters of ``model`` when it is a module, collected on every call; pass them for
            speed, and always for a compiled model).
        grad_clip: maximum gradient norm (``None``: no clipping, no norm).
        scheduler: a learning-rate scheduler stepped once after the optimizer.
        gather: all-gather across DDP ranks for the contrastive term (``None``: one process).
        amp_dtype: autocast dtype for the forward pass (``None``: full precision).

    Returns:
        The :class:`StepResult`.

    Raises:
        ValueError: ``grad_clip`` without ``params`` for a model that is not a module.
    """
    optimizer.zero_grad(set_to_none=True)
    amp = (
        torch.autocast(s1.device.type, dtype=amp_dtype)
        if amp_dtype is not None
        else contextlib.nullcontext()
    )
    with amp:
        out = model(s1, s2, gather=gather)
    loss: torch.Tensor = out.loss
    loss.backward()
    grad_norm: torch.Tensor | None = None
    if grad_clip is not None:
        if params is None:
            if not isinstance(model, torch.nn.Module):
                raise ValueError(
                    "train_step: pass params= to clip the gradients of a compiled model"
                )
            params = [p for p in model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    lr = float(optimizer.param_groups[0]["lr"])
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    losses = {k: v.detach() for k, v in out.losses.items()}
    return StepResult(loss.detach(), losses, grad_norm, lr)
