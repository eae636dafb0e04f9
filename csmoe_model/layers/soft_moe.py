"""Soft Mixture-of-Experts (Puigcerver et al., ICLR 2024, arXiv 2308.00951).

Every expert sees ``slots_per_expert`` slots; each slot is a convex combination of the tokens of
ONE sequence (dispatch: softmax over tokens), and each output token a convex combination of all
slot outputs (combine: softmax over slots). The expert MLPs therefore run on ``n * p`` slots per
sequence instead of ``m`` tokens: with fewer slots than tokens the layer costs less than a dense
MLP of the same expert width while holding ``n`` times its parameters. No auxiliary loss, no token
dropping; routing is deterministic and per sequence.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """Disable autocast on ``device_type`` (no-op where autocast does not exist, e.g. ``meta``)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


class SoftMoE(nn.Module):
    """Soft MoE layer replacing a transformer block's MLP: (B, m, d) -> (B, m, d).

    With L2-normalised tokens ``x~`` and slot parameters ``Phi~`` (normalised over ``d`` for each
    slot), ``logits = scale * x~ Phi~`` (B, m, n, p); ``D = softmax over the m tokens`` for each
    slot, ``C = softmax over the n*p slots`` for each token; slot inputs ``X_s = D^T x`` use the
    un-normalised tokens; expert ``i`` (GELU MLP ``d -> hidden_dim -> d``) runs on its ``p`` slots;
    the output is ``C Y_s``. Routing (logits and both softmaxes) runs in float32 even under
    autocast; the experts run as one batched matmul over (n, d, h) weights.

    Args:
        dim: token width ``d``.
        num_experts: number of experts ``n``.
        slots_per_expert: slots per expert ``p``.
        hidden_dim: hidden width of each expert MLP (default ``4 * dim``).

    Raises:
        ValueError: for non-positive sizes.
    """

    def __init__(
        self,
        dim: int,
        num_experts: int,
        slots_per_expert: int = 1,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        hidden_dim = 4 * dim if hidden_dim is None else hidden_dim
        if min(dim, num_experts, slots_per_expert, hidden_dim) < 1:
            raise ValueError("SoftMoE sizes must be positive")
        self.dim = dim
        self.num_experts = num_experts
        self.slots_per_expert = slots_per_expert
        self.hidden_dim = hidden_dim
        self.phi = nn.Parameter(torch.empty(dim, num_experts, slots_per_expert))
        self.scale = nn.Parameter(torch.empty(()))
        self.w1 = nn.Parameter(torch.empty(num_experts, dim, hidden_dim))
        self.b1 = nn.Parameter(torch.empty(num_experts, hidden_dim))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden_dim, dim))
        self.b2 = nn.Parameter(torch.empty(num_experts, dim))
        self.reset_parameters()

    @property
    def num_slots(self) -> int:
        """Total slots per sequence, ``n * p``."""
        return self.num_experts * self.slots_per_expert

    def reset_parameters(self) -> None:
        """Experts like the dense MLP (Xavier-uniform per expert, zero biases); scale 1."""
        # each expert slice w1[i] (d x h) gets the same bound as nn.Linear(d, h) under xavier_uniform
        bound = math.sqrt(6.0 / (self.dim + self.hidden_dim))
        nn.init.uniform_(self.w1, -bound, bound)
        nn.init.uniform_(self.w2, -bound, bound)
        nn.init.zeros_(self.b1)
        nn.init.zeros_(self.b2)
        nn.init.normal_(self.phi, std=self.dim**-0.5)
        nn.init.ones_(self.scale)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(dispatch, combine)`` weights, both (B, m, n*p), in float32 (float64 for float64 input).

        ``dispatch[:, :, s]`` sums to one over the tokens (for each slot ``s``);
        ``combine[:, t, :]`` sums to one over the slots (for each token ``t``).
        """
        dt = torch.promote_types(x.dtype, torch.float32)
        with _autocast_off(x.device.type):
            xf = x.to(dt)
            # scale folded into the (d, n*p) slot matrix, and the tokens' L2 norm applied to the
            # (B, m, n*p) logits instead of to the tokens: same values as normalising the tokens
            # first (F.normalize's eps included), without a normalised (B, m, d) float32 copy
            phin = F.normalize(self.phi.to(dt), dim=0).flatten(1) * self.scale.to(dt)
            norm = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).clamp_min(1e-12)
            logits = (xf @ phin) / norm  # (B, m, n*p)
            dispatch = logits.softmax(dim=1)
            combine = logits.softmax(dim=2)
        return dispatch, combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix each sequence's tokens into slots, run the experts, mix back: (B, m, d) -> (B, m, d)."""
        b, _, d = x.shape
        n, p = self.num_experts, self.slots_per_expert
        dispatch, combine = self.route(x)
        # slot inputs from the un-normalised tokens; under autocast these matmuls run in bf16/fp16
        slots = dispatch.to(x.dtype).transpose(1, 2) @ x  # (B, n*p, d)
        xs = slots.view(b, n, p, d).transpose(0, 1).reshape(n, b * p, d)
        # no explicit casts: under autocast baddbmm casts the expert weights once per autocast
        # region (autocast's weight cache), an explicit .to() would re-cast them at every call
        h = F.gelu(torch.baddbmm(self.b1.unsqueeze(1), xs, self.w1))
        ys = torch.baddbmm(self.b2.unsqueeze(1), h, self.w2)  # (n, B*p, d)
        ys = ys.view(n, b, p, d).transpose(0, 1).reshape(b, n * p, d)
        return combine.to(ys.dtype) @ ys

    def extra_repr(self) -> str:
        """Sizes shown in the module's ``repr``."""
        return (
            f"dim={self.dim}, num_experts={self.num_experts}, "
            f"slots_per_expert={self.slots_per_expert}, hidden_dim={self.hidden_dim}"
        )
