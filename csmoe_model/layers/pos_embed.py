"""Fixed 2-D sine-cosine position embeddings (MAE), shared by both sensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    omega = torch.arange(dim // 2, dtype=torch.float64, device=pos.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = pos.reshape(-1, 1).to(torch.float64) * omega.reshape(1, -1)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_pos_embed_2d(
    embed_dim: int,
    grid_size: int,
    cls_token: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Return (1, [1 +] grid_size**2, embed_dim) fixed position embeddings in row-major patch order.

    Half the channels encode the row, half the column (MAE's ``get_2d_sincos_pos_embed``); the
    CLS position, when requested, is all zeros. Built with torch ops so it follows the default
    device (e.g. ``meta`` for FLOP counting).

    Raises:
        ValueError: if ``embed_dim`` is not a multiple of 4.
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be a multiple of 4 for 2-D sin-cos, got {embed_dim}")
    coords = torch.arange(grid_size, dtype=torch.float64, device=device)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    # MAE builds the grid with w first: the first half of the channels encodes the column index
    emb = torch.cat([_sincos_1d(embed_dim // 2, gx), _sincos_1d(embed_dim // 2, gy)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim, dtype=emb.dtype, device=emb.device), emb], 0)
    return emb.to(torch.float32).unsqueeze(0)


def resample_pos_embed(
    pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """Resample (1, gh * gw, D) patch position embeddings to another grid (no CLS entry).

    Bicubic interpolation of the 2-D table with anti-aliasing, as timm's
    ``resample_abs_pos_embed`` and MAE's fine-tuning at other resolutions do: a model pretrained
    at 120 px sees the same relative layout at 240 px, each embedding spanning more pixels.

    Args:
        pos: (1, gh * gw, D) embeddings in row-major patch order.
        old_grid: (gh, gw) of ``pos``.
        new_grid: (h, w) of the result.

    Returns:
        (1, h * w, D) embeddings in ``pos``'s dtype.
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos
    d = pos.shape[-1]
    grid = pos.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2).float()
    out = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False, antialias=True)
    return out.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d).to(pos.dtype)
