"""Building blocks of the CSMoE model, one per module (timm-like)."""

from csmoe_model.layers.attention import Attention
from csmoe_model.layers.block import Block
from csmoe_model.layers.mlp import Mlp
from csmoe_model.layers.patch_embed import PatchEmbed
from csmoe_model.layers.pos_embed import resample_pos_embed, sincos_pos_embed_2d
from csmoe_model.layers.soft_moe import SoftMoE

__all__ = [
    "Attention",
    "Block",
    "Mlp",
    "PatchEmbed",
    "SoftMoE",
    "resample_pos_embed",
    "sincos_pos_embed_2d",
]
