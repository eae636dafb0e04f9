"""The UPerNet head: output sizes for one to four levels, gradients reach every input map."""

from __future__ import annotations

import pytest
import torch

from csmoe_model.errors import CsmoeError
from csmoe_model.heads import UPerNetHead


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
@pytest.mark.parametrize("grid", [1, 2, 4])
def test_shapes_for_any_level_count_and_tiny_grids(levels: int, grid: int) -> None:
    head = UPerNetHead([16] * levels, num_classes=5, channels=16)
    feats = [torch.randn(2, 16, grid, grid, requires_grad=True) for _ in range(levels)]
    out = head(feats, out_size=(24, 24))
    assert out.shape == (2, 5, 24, 24)
    (out * torch.randn_like(out)).sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    # without out_size: the finest level (4x the grid with four levels)
    assert head(feats).shape[-1] == int(grid * head.scales[0]) or grid * head.scales[0] < 1


def test_batch_of_one_trains() -> None:
    # GroupNorm, not BatchNorm: a batch of one with a 1 x 1 pooled map is fine
    head = UPerNetHead([8, 8], num_classes=2, channels=8).train()
    head([torch.randn(1, 8, 2, 2), torch.randn(1, 8, 2, 2)], out_size=(4, 4)).mean().backward()


def test_bad_configurations() -> None:
    with pytest.raises(CsmoeError, match="1 to 4"):
        UPerNetHead([8] * 5, 2)
    head = UPerNetHead([8] * 2, 2, channels=8)
    with pytest.raises(CsmoeError, match="expected 2"):
        head([torch.randn(1, 8, 2, 2)])
