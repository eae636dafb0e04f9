"""Patch embedding: one strided convolution per sensor, image -> (B, L, D) tokens."""

from __future__ import annotations

import torch
from torch import nn

from csmoe_model.errors import CsmoeError


class PatchEmbed(nn.Module):
    """Split an image into non-overlapping ``patch_size`` squares and project each to ``embed_dim``.

    Args:
        img_size: side of the (square) input in pixels; must be a multiple of ``patch_size``.
        patch_size: side of one patch in pixels.
        in_chans: number of input bands.
        embed_dim: token width.

    Raises:
        CsmoeError: if ``img_size`` is not a multiple of ``patch_size``.
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        if img_size % patch_size:
            raise CsmoeError(
                f"img_size {img_size} is not a multiple of patch_size {patch_size}; "
                f"resize the input to e.g. {patch_size * round(img_size / patch_size)}"
            )
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like a linear layer on flattened patches (MAE): Xavier-uniform, zero bias."""
        w = self.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.proj.bias is not None:
            nn.init.zeros_(self.proj.bias)

    def check_input(self, x: torch.Tensor, any_size: bool = False) -> None:
        """Check the bands and the size of ``x`` (B, C, H, W).

        Args:
            x: the image batch.
            any_size: accept any H and W that are multiples of ``patch_size`` (else exactly
                ``img_size``).

        Raises:
            CsmoeError: naming the expected shape.
        """
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise CsmoeError(
                f"expected input of shape (B, {self.in_chans}, {self.img_size}, {self.img_size}), "
                f"got {tuple(x.shape)}"
            )
        h, w = int(x.shape[-2]), int(x.shape[-1])
        p = self.patch_size
        if any_size:
            if h % p or w % p or h < p or w < p:
                raise CsmoeError(
                    f"image size {h} x {w} is not a multiple of the patch size {p}; resize or pad "
                    f"to e.g. {max(p, p * round(h / p))} x {max(p, p * round(w / p))}"
                )
        elif (h, w) != (self.img_size, self.img_size):
            raise CsmoeError(
                f"expected input of shape (B, {self.in_chans}, {self.img_size}, {self.img_size}), "
                f"got {tuple(x.shape)}; resize to the model's img_size first"
            )

    def forward(self, x: torch.Tensor, any_size: bool = False) -> torch.Tensor:
        """Embed ``x`` (B, C, H, W) into tokens (B, L, D) in row-major patch order.

        Args:
            x: the image batch.
            any_size: accept any multiple of ``patch_size`` as H and W (see :meth:`check_input`).

        Raises:
            CsmoeError: if the input's bands or size do not fit.
        """
        self.check_input(x, any_size)
        return self.proj(x).flatten(2).transpose(1, 2)
