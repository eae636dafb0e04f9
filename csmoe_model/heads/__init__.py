"""Task heads on top of the CSMoE encoder: a UPerNet-style segmentation head."""

from csmoe_model.heads.upernet import UPerNetHead

__all__ = ["UPerNetHead"]
