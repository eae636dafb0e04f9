"""The dense feed-forward block: Linear -> GELU -> Linear."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """Two-layer perceptron with GELU.

    Args:
        dim: input and output width.
        hidden_dim: hidden width (4 x dim in ViT).
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP token-wise: (..., D) -> (..., D)."""
        return self.fc2(self.act(self.fc1(x)))
