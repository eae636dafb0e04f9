"""The device transform: normalisation and paired flips/rotations."""

from __future__ import annotations

import numpy as np
import torch

from csmoe_model.data import (
    DeviceTransform,
    open_cache,
)
from csmoe_model.data.transforms import dihedral


def test_device_transform_normalises_and_augments_pairs_identically(patches, cache_dir) -> None:
    manifest, _ = patches
    cache = open_cache(manifest, cache_dir, n_s2=12)
    arrays = cache.arrays()
    idx = np.array([0, 3])
    batch = {g: torch.from_numpy(np.ascontiguousarray(arrays[g][idx])) for g in cache.groups}
    batch["s2_10"] = batch["s2_10"].view(torch.int16)  # how the loader ships uint16
    tf = DeviceTransform(cache.stats, 12, img_size=12)
    s1, s2 = tf(batch)
    expect = (arrays["s2_10"][3, 2].astype(np.float32) - cache.stats["s2_mean"][2]) / cache.stats[
        "s2_std"
    ][2]
    np.testing.assert_allclose(s2[1, 2].numpy(), expect, rtol=1e-5, atol=1e-5)
    code = torch.tensor([0, 5])
    a1, a2 = tf(batch, code)
    for c in range(8):  # the 8 codes are 8 distinct symmetries
        others = [dihedral(s2[:1], torch.tensor([k])) for k in range(8) if k != c]
        assert not any(torch.equal(dihedral(s2[:1], torch.tensor([c])), o) for o in others)
    torch.testing.assert_close(a2[1], dihedral(s2[1:], torch.tensor([5]))[0])
    torch.testing.assert_close(a1[1], dihedral(s1[1:], torch.tensor([5]))[0])
    torch.testing.assert_close(a1[0], s1[0])
