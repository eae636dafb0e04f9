"""CsmoeDataset: TorchGeo-style samples from the same cache and normalisation as training."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from csmoe_model.data import open_cache
from csmoe_model.data.dataset import CsmoeDataset
from csmoe_model.errors import CsmoeError

LABELS = [["forest"], ["water", "forest"], [], ["urban"]]


@pytest.fixture
def labelled(tmp_path: Path, patch_factory, manifest_factory) -> Path:
    rows = patch_factory(tmp_path, 8, size=12)
    for i, row in enumerate(rows):
        row["labels19"] = LABELS[i % 4]
    return manifest_factory(tmp_path / "m.parquet", rows, ["train"] * 6 + ["val"] * 2)


def test_samples_equal_the_training_loader(labelled: Path, cache_dir: Path) -> None:
    ds = CsmoeDataset(labelled, split="train", cache_dir=cache_dir, img_size=24)
    assert len(ds) == 6 and ds.classes == ["forest", "urban", "water"]
    sample = ds[1]
    assert sample["image_s1"].shape == (2, 24, 24) and sample["image_s2"].shape == (10, 24, 24)
    assert sample["label"].tolist() == [1.0, 0.0, 1.0] and sample["index"] == 1
    assert ds[2]["label"].sum() == 0  # a row without labels: all zeros
    cache = open_cache(labelled, cache_dir, n_s2=10)
    loader = cache.loader(
        cache.select("train"), 6, img_size=24, augment=False, shuffle=False, drop_last=False
    )
    batch = next(iter(loader))
    for j, row in enumerate(batch.index.tolist()):
        got = ds[int(np.flatnonzero(ds.rows == row)[0])]
        torch.testing.assert_close(got["image_s2"], batch.s2[j])
        torch.testing.assert_close(got["image_s1"], batch.s1[j])
        assert got["patch_id"] == cache.patch_ids[row]


def test_raw_values_given_statistics_transforms_and_workers(
    labelled: Path, cache_dir: Path
) -> None:
    raw = CsmoeDataset(labelled, cache_dir=cache_dir, normalization=None, label_column=None)
    arrays = open_cache(labelled, cache_dir).arrays()
    np.testing.assert_allclose(
        raw[3]["image_s2"][0].numpy(), arrays["s2_10"][3, 0].astype(np.float32)
    )
    assert "label" not in raw[0] and len(raw) == 8
    stats = {
        "s1_mean": [1.0, 2.0],
        "s1_std": [2.0, 2.0],
        "s2_mean": [100.0] * 10,
        "s2_std": [10.0] * 10,
    }
    given = CsmoeDataset(labelled, cache_dir=cache_dir, normalization=stats, label_column=None)
    torch.testing.assert_close(given[3]["image_s2"], (raw[3]["image_s2"] - 100.0) / 10.0)

    def flip(sample: dict) -> dict:
        return {**sample, "image_s2": sample["image_s2"].flip(-1)}

    flipped = CsmoeDataset(labelled, cache_dir=cache_dir, transforms=flip)
    plain = CsmoeDataset(labelled, cache_dir=cache_dir)
    torch.testing.assert_close(flipped[0]["image_s2"], plain[0]["image_s2"].flip(-1))
    plain[0]
    again = pickle.loads(pickle.dumps(plain))  # memory maps are reopened, not pickled
    torch.testing.assert_close(again[5]["image_s1"], plain[5]["image_s1"])
    batches = list(DataLoader(plain, batch_size=4, num_workers=2))
    assert [b["image_s2"].shape for b in batches] == [(4, 10, 12, 12)] * 2
    assert batches[0]["label"].shape == (4, 3)


def test_errors(labelled: Path, cache_dir: Path) -> None:
    with pytest.raises(CsmoeError, match="holdout"):
        CsmoeDataset(labelled, split="holdout", cache_dir=cache_dir)
    with pytest.raises(CsmoeError, match="not in the given classes"):
        CsmoeDataset(labelled, cache_dir=cache_dir, classes=["forest"])
    with pytest.raises(CsmoeError, match="must list 2 values"):
        CsmoeDataset(labelled, cache_dir=cache_dir, normalization={"s1_mean": [0.0, 0.0]})
    ds = CsmoeDataset(labelled, cache_dir=cache_dir)
    with pytest.raises(IndexError):
        ds[8]


def test_masks_come_from_the_mask_cache(
    tmp_path: Path, patch_factory, manifest_factory, geotiff
) -> None:
    from affine import Affine

    rows = patch_factory(tmp_path, 4, size=12)
    for i, row in enumerate(rows):
        mask = np.full((12, 12), 10, dtype=np.uint8)
        mask[:, 6:] = 20 + i % 2 * 10
        path = tmp_path / f"mask_{i}.tif"
        geotiff(path, mask, Affine(10, 0, 400000.0 + 120 * i, 0, -10, 5300000.0))
        row["mask_path"] = path.name
    manifest = manifest_factory(tmp_path / "mm.parquet", rows, ["train"] * 4)
    ds = CsmoeDataset(manifest, cache_dir=tmp_path / "cache", img_size=24, label_column=None)
    assert ds.mask_classes == ["10", "20", "30"]
    sample = ds[1]
    assert sample["mask"].shape == (24, 24) and sample["mask"].dtype == torch.int64
    assert sample["mask"][:, :12].eq(0).all() and sample["mask"][:, 12:].eq(2).all()
    assert ds[0]["mask"][:, 12:].eq(1).all()
    plain = CsmoeDataset(manifest, cache_dir=tmp_path / "cache", label_column=None, masks=False)
    assert "mask" not in plain[0]
    again = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(again[1]["mask"], sample["mask"])
