"""Pre-norm transformer block whose feed-forward part is a dense MLP or a Soft MoE."""

from __future__ import annotations

import torch
from torch import nn

from csmoe_model.layers.attention import Attention
from csmoe_model.layers.mlp import Mlp
from csmoe_model.layers.soft_moe import SoftMoE


class Block(nn.Module):
    """``x + attn(norm(x))`` then ``x + ffn(norm(x))`` (ViT).

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: hidden width of the dense MLP relative to ``dim``.
        qkv_bias: bias on the query/key/value projection.
        num_experts: 0 for a dense MLP, else the number of Soft MoE experts.
        slots_per_expert: Soft MoE slots per expert.
        expert_hidden_dim: hidden width of each expert (default: the dense MLP's).
        norm_eps: epsilon of both LayerNorms (timm's ViT and CSMAE's encoder: 1e-6; CSMAE's
            decoder blocks use PyTorch's default, 1e-5).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        num_experts: int = 0,
        slots_per_expert: int = 1,
        expert_hidden_dim: int | None = None,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.ffn: nn.Module
        if num_experts > 0:
            self.ffn = SoftMoE(dim, num_experts, slots_per_expert, expert_hidden_dim or hidden)
        else:
            self.ffn = Mlp(dim, hidden)

    @property
    def is_moe(self) -> bool:
        """Whether the feed-forward part is a Soft MoE."""
        return isinstance(self.ffn, SoftMoE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block: (B, N, D) -> (B, N, D)."""
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))
