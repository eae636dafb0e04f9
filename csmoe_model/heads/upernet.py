"""A UPerNet-style segmentation head for plain ViT features (Xiao et al. 2018, as BEiT and MAE use it).

A ViT gives feature maps of one resolution (H/p x W/p) from every block. As in BEiT's and MAE's
segmentation set-ups, the maps of four chosen blocks are brought to four scales first (4x and 2x by
transposed convolutions, 1x as they are, 0.5x by max pooling) so that a feature pyramid exists; then
UPerNet proper: a pyramid pooling module (PPM, pool sizes 1, 2, 3, 6) on the coarsest level, lateral
1x1 convolutions, a top-down path with 3x3 smoothing convolutions, all levels upsampled to the finest
and fused by a 3x3 convolution, and a 1x1 classifier. The logits are upsampled bilinearly to the
label size.

Normalisation is GroupNorm rather than UPerNet's (Sync)BatchNorm: fine-tuning here runs with small
batches on one device, where batch statistics of a 1 x 1 pooled map are undefined; GroupNorm does
not depend on the batch.

With fewer than four input maps, the scales are taken from the end of ``(4, 2, 1, 0.5)`` (e.g. two
maps get 1x and 0.5x). Inputs with several sensors are concatenated along channels by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from csmoe_model.errors import CsmoeError

__all__ = ["UPerNetHead", "SCALES"]

#: scale of each pyramid level relative to the ViT grid, finest first
SCALES: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5)
#: pool sizes of the pyramid pooling module
POOL_SCALES: tuple[int, ...] = (1, 2, 3, 6)


def _groups(channels: int) -> int:
    """The most groups (at most 32) that divide ``channels`` with at least 4 channels each.

    A group of one channel on a 1 x 1 map (the PPM's coarsest pooling) would normalise to 0.
    """
    return next((g for g in (32, 16, 8, 4, 2) if channels % g == 0 and channels // g >= 4), 1)


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias) + GroupNorm + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.GroupNorm(_groups(cout), cout),
            nn.ReLU(inplace=True),
        )


def _rescale(channels: int, scale: float) -> nn.Module:
    """The module that brings a ViT map to ``scale`` times its size."""
    if scale == 4.0:
        return nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 2, stride=2),
            nn.GroupNorm(_groups(channels), channels),
            nn.GELU(),
            nn.ConvTranspose2d(channels, channels, 2, stride=2),
        )
    if scale == 2.0:
        return nn.ConvTranspose2d(channels, channels, 2, stride=2)
    if scale == 1.0:
        return nn.Identity()
    if scale == 0.5:
        # ceil_mode keeps a 1 x 1 map (tiny inputs) at 1 x 1 instead of 0 x 0
        return nn.MaxPool2d(2, ceil_mode=True)
    raise CsmoeError(f"unsupported pyramid scale {scale}")


class PyramidPooling(nn.Module):
    """PPM: the map pooled to 1, 2, 3 and 6 cells, projected, upsampled and concatenated with itself."""

    def __init__(self, cin: int, channels: int, pool_scales: Sequence[int] = POOL_SCALES) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvNormAct(cin, channels, 1))
            for s in pool_scales
        )
        self.bottleneck = ConvNormAct(cin + len(pool_scales) * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, h, w) -> (B, channels, h, w)."""
        size = x.shape[-2:]
        pooled = [
            F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False)
            for stage in self.stages
        ]
        return self.bottleneck(torch.cat([x, *pooled], dim=1))


class UPerNetHead(nn.Module):
    """UPerNet head over ``len(in_channels)`` same-resolution ViT maps (see the module docstring).

    Args:
        in_channels: channels of each input map (e.g. ``[D] * 4``, or ``[2 * D] * 4`` for S1 + S2).
        num_classes: output classes.
        channels: width of the pyramid (512 in UPerNet; smaller heads suit small encoders).
        dropout: dropout before the classifier.

    Raises:
        CsmoeError: no input map, more than four, or a non-positive size.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        channels: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        n = len(in_channels)
        if not 1 <= n <= len(SCALES):
            raise CsmoeError(f"the UPerNet head takes 1 to {len(SCALES)} feature maps, got {n}")
        if num_classes < 1 or channels < 1:
            raise CsmoeError("num_classes and channels must be positive")
        self.scales = SCALES[len(SCALES) - n :]
        self.num_classes = num_classes
        self.rescale = nn.ModuleList(
            _rescale(c, s) for c, s in zip(in_channels, self.scales, strict=True)
        )
        self.ppm = PyramidPooling(in_channels[-1], channels)
        self.lateral = nn.ModuleList(ConvNormAct(c, channels, 1) for c in in_channels[:-1])
        self.smooth = nn.ModuleList(ConvNormAct(channels, channels, 3) for _ in in_channels[:-1])
        self.fuse = ConvNormAct(n * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(
        self, features: Sequence[torch.Tensor], out_size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Logits (B, num_classes, *out_size) (default: the finest pyramid level's size).

        Raises:
            CsmoeError: if the number of maps differs from the head's.
        """
        if len(features) != len(self.rescale):
            raise CsmoeError(f"expected {len(self.rescale)} feature maps, got {len(features)}")
        levels = [m(f) for m, f in zip(self.rescale, features, strict=True)]
        # top-down: the coarsest level through the PPM, each finer one = lateral + upsampled coarser
        laterals = [lat(x) for lat, x in zip(self.lateral, levels[:-1], strict=True)]
        laterals.append(self.ppm(levels[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="bilinear", align_corners=False
            )
        outs = [conv(x) for conv, x in zip(self.smooth, laterals[:-1], strict=True)]
        outs.append(laterals[-1])
        size = outs[0].shape[-2:]
        outs = [
            o
            if o.shape[-2:] == size
            else F.interpolate(o, size=size, mode="bilinear", align_corners=False)
            for o in outs
        ]
        logits = self.classifier(self.dropout(self.fuse(torch.cat(outs, dim=1))))
        if out_size is not None and tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        return logits
