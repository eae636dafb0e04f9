"""On-device preprocessing of cached batches: normalisation, upsampling, resizing, flips/rotations.

Runs on the training device (GPU), after the uint16/float16 arrays have been copied there:

1. normalise every band with the cache (or run) statistics, ``(x - mean) / std``, at its native
   resolution (cheaper than after upsampling; interpolation is affine, so the order does not matter);
2. bring every group to ``img_size`` in one step with **bilinear** interpolation (``upsample=
   "bicubic"`` is available; ``align_corners=False``; anti-aliased when shrinking), so the 20 m and
   60 m bands are upsampled straight to the model's size (120 -> 128 for patch 16, or 120 -> 32 for tiny);
3. concatenate in model band order (:mod:`csmoe_common.bands`);
4. augment (training only): one of the 8 flips/90-degree rotations per pair, the same for S1 and S2,
   chosen by a 3-bit code drawn by the loader from ``(seed, step)`` (so it is deterministic and resumable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csmoe_common.bands import S2_GROUPS
from csmoe_model.data.imagery import s2_groups


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint16 data travels as int16 (bit-identical); convert it back to its value as float32.

    One kernel: the int16 tensor is reinterpreted as uint16 and converted (torch >= 2.3 converts
    uint16); older builds take the int32 detour (three kernels).
    """
    if x.dtype == torch.int16:
        try:
            return x.view(torch.uint16).to(torch.float32)
        except (AttributeError, RuntimeError, TypeError):  # no uint16 support
            return (x.to(torch.int32) & 0xFFFF).to(torch.float32)
    return x.to(torch.float32)


def _dihedral_reference(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    # the definition (three full passes over x); dihedral() gathers with index maps derived from it
    code = code.to(device=x.device, dtype=torch.int64).view(-1, 1, 1, 1)
    x = torch.where((code & 1).bool(), x.transpose(-1, -2), x)
    x = torch.where((code & 2).bool(), x.flip(-1), x)
    return torch.where((code & 4).bool(), x.flip(-2), x)


_DIHEDRAL_MAPS: dict[tuple[int, torch.device], torch.Tensor] = {}


def _dihedral_maps(size: int, device: torch.device) -> torch.Tensor:
    """(8, size * size) int64: source pixel of each output pixel for every code."""
    key = (size, device)
    if key not in _DIHEDRAL_MAPS:
        pix = (
            torch.arange(size * size, dtype=torch.int64).view(1, 1, size, size).expand(8, 1, -1, -1)
        )
        maps = _dihedral_reference(pix, torch.arange(8)).reshape(8, size * size)
        _DIHEDRAL_MAPS[key] = maps.to(device)
    return _DIHEDRAL_MAPS[key]


def dihedral(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Apply per-sample transforms of the square's symmetry group to (B, C, H, W), H == W.

    ``code`` (B,) int: bit 0 transposes (with a flip this gives the 90-degree rotations), bit 1 flips
    left-right, bit 2 flips up-down; all 8 codes are distinct elements of the group. One gather
    (one read and one write of ``x``, contiguous output) instead of three full ``where`` passes.
    """
    b, c, h, w = x.shape
    if h != w:
        raise ValueError(f"dihedral needs square images, got {h} x {w}")
    maps = _dihedral_maps(h, x.device)
    idx = maps[code.to(device=x.device, dtype=torch.int64)]  # (B, H*W)
    out = torch.gather(x.reshape(b, c, h * w), 2, idx.unsqueeze(1).expand(b, c, h * w))
    return out.view(b, c, h, w)


class DeviceTransform:
    """Turn a cached batch (dict of group tensors on the device) into model inputs ``(s1, s2)``.

    Args:
        stats: ``s2_mean``, ``s2_std`` (model band order), ``s1_mean``, ``s1_std``.
        n_s2: Sentinel-2 bands the model takes (10 or 12; a 12-band cache feeds a 10-band model).
        img_size: the model's input size.
        upsample: ``"bilinear"`` (default) or ``"bicubic"``.
    """

    def __init__(
        self, stats: dict[str, list[float]], n_s2: int, img_size: int, upsample: str = "bilinear"
    ) -> None:
        if upsample not in ("bilinear", "bicubic"):
            raise ValueError(f"upsample must be bilinear or bicubic, not {upsample!r}")
        self.groups = s2_groups(n_s2)
        self.img_size = int(img_size)
        self.upsample = upsample
        self._stats = stats
        self._norm: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def _mean_std(self, group: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (group, device)
        if key not in self._norm:
            if group == "s1":
                lo, hi, sensor = 0, 2, "s1"
            else:
                lo = sum(len(S2_GROUPS[g]) for g in s2_groups(12)[: s2_groups(12).index(group)])
                hi, sensor = lo + len(S2_GROUPS[group]), "s2"
            mean = torch.tensor(
                self._stats[f"{sensor}_mean"][lo:hi], dtype=torch.float32, device=device
            )
            std = torch.tensor(
                self._stats[f"{sensor}_std"][lo:hi], dtype=torch.float32, device=device
            )
            self._norm[key] = (mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1))
        return self._norm[key]

    def _prepare(self, group: str, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._mean_std(group, x.device)
        # in place on the fresh float32 tensor: no extra full-size temporaries on the GPU
        f = to_float(x)
        if f.data_ptr() == x.data_ptr() or not f.is_contiguous():
            f = f.clone(memory_format=torch.contiguous_format)  # float32 input: never modify it
        x = f.sub_(mean).div_(std)
        s = x.shape[-1]
        if s != self.img_size:
            grow = s < self.img_size
            x = F.interpolate(
                x,
                size=(self.img_size, self.img_size),
                mode=self.upsample if grow else "bilinear",
                align_corners=False,
                antialias=not grow,
            )
        return x

    def __call__(
        self, batch: dict[str, torch.Tensor], aug: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return normalised ``(s1, s2)`` float32 tensors of shape (B, C, img_size, img_size)."""
        s2 = torch.cat([self._prepare(g, batch[g]) for g in self.groups], dim=1)
        s1 = self._prepare("s1", batch["s1"])
        if aug is not None:
            # the same code for S1 and S2 of a pair; each gather writes a contiguous result
            s2, s1 = dihedral(s2, aug), dihedral(s1, aug)
        return s1.contiguous(), s2.contiguous()
