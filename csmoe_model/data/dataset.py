"""A TorchGeo-style map-style ``Dataset`` over a manifest and its imagery cache.

For users who bring their own training loop (fine-tuning, segmentation, a Lightning module):
each sample is a dict, as TorchGeo's datasets return them::

    from torch.utils.data import DataLoader
    from csmoe_model.data.dataset import CsmoeDataset

    ds = CsmoeDataset("manifest.parquet", split="train", label_column="labels19")
    sample = ds[0]   # {"image_s1": (2, H, W), "image_s2": (10, H, W), "label": (n_classes,),
                     #  "patch_id": str, "index": int} (+ "mask" where the cache holds masks)
    loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=4)

Imagery comes from the same cache as ``csmoe train`` (built on first use, reused afterwards):
decoded once, memory-mapped, each sample upsampled to the 10 m grid and normalised exactly as the
training loader does (:class:`~csmoe_model.data.transforms.DeviceTransform`), on the CPU. The
arrays are opened lazily in each process, so the dataset forks cleanly into DataLoader workers.
``label`` is the multi-hot vector of ``label_column`` over ``classes`` (sorted labels of the whole
manifest unless given); ``mask`` holds the segmentation class indices (int64, -1 = ignored) when
the manifest has a ``mask_path`` column, cached like the imagery
(:mod:`csmoe_model.data.masks`; ``mask_classes`` names them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from csmoe_model.errors import CsmoeError

__all__ = ["CsmoeDataset"]

Sample = dict[str, Any]


class CsmoeDataset(Dataset[Sample]):
    """Per-sample dicts ``{"image_s1", "image_s2", "label", "patch_id", "index"}`` of a manifest.

    Args:
        manifest: a csmoe-data manifest (``s1_path``, ``s2_path``; labels and ``split`` optional).
        split: keep only this split (or comma-separated splits); ``None``: every valid row.
        cache_dir: imagery cache folder (default as training: ``$CSMOE_CACHE_DIR`` or
            ``~/.cache/csmoe``).
        n_s2: Sentinel-2 bands (10: CSMAE's, every preset's; 12 adds B01, B09).
        img_size: side of the returned images (default: the cache's 10 m size, 120 for BigEarthNet).
        normalization: ``"cache"`` (the cache's statistics of the manifest's train rows), a mapping
            ``{"s1_mean", "s1_std", "s2_mean", "s2_std"}`` (e.g. ``model.normalization`` of
            weights from ``from_pretrained``), or ``None`` (raw values as float32).
        label_column: list column with the labels (``None``: no ``label`` entry).
        classes: the label vocabulary (default: every label of ``label_column``, sorted).
        transforms: called on each sample dict (TorchGeo's convention), e.g. augmentations.
        masks: return ``mask`` (``None``: when the manifest has a ``mask_path`` column).
        workers: processes for building the cache (the first time only).
        progress: show a progress bar while building the cache.
        data_root: the folder the manifest's relative imagery and mask paths are relative to
            (``None``: the manifest's folder), for a manifest moved away from its imagery.

    Raises:
        CsmoeError: manifest or cache problems, an unknown label column or split, statistics that
            do not fit, or no valid row.
    """

    def __init__(
        self,
        manifest: str | Path,
        split: str | None = None,
        *,
        cache_dir: str | Path | None = None,
        n_s2: int = 10,
        img_size: int | None = None,
        normalization: str | Mapping[str, Sequence[float]] | None = "cache",
        label_column: str | None = "labels19",
        classes: Sequence[str] | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
        masks: bool | None = None,
        workers: int = 0,
        progress: bool = False,
        data_root: str | Path | None = None,
    ) -> None:
        from csmoe_model.data.cache import CacheSettings, open_cache
        from csmoe_model.data.manifest import read_manifest_labels
        from csmoe_model.data.transforms import DeviceTransform

        self.manifest = Path(manifest)
        self.cache = open_cache(
            self.manifest,
            cache_dir,
            CacheSettings(n_s2=n_s2),
            workers=workers,
            progress=progress,
            data_root=data_root,
        )
        self.rows = self.cache.select(split)
        self.img_size = int(img_size or self.cache.size)
        self.n_s2 = n_s2
        self.transforms = transforms
        stats = self._stats(normalization)
        self._normalized = stats is not None
        identity = {
            "s2_mean": [0.0] * n_s2,
            "s2_std": [1.0] * n_s2,
            "s1_mean": [0.0, 0.0],
            "s1_std": [1.0, 1.0],
        }
        self._transform = DeviceTransform(stats or identity, n_s2, self.img_size)
        self.label_column = label_column
        self.classes: list[str] = []
        self._labels: list[list[str] | None] = []
        if label_column is not None:
            labels = read_manifest_labels(self.manifest, [label_column])[label_column]
            self._labels = labels
            vocab = sorted({lab for row in labels if row for lab in row})
            self.classes = list(classes) if classes is not None else vocab
            unknown = sorted(set(vocab) - set(self.classes))
            if unknown:
                raise CsmoeError(f"labels {unknown[:5]} are not in the given classes")
        self._arrays: dict[str, np.ndarray] | None = None
        self.mask_classes: list[str] = []
        self._masks: Any = None
        from csmoe_common.manifest import MASK_PATH

        if masks is None:
            import pyarrow.parquet as pq

            masks = MASK_PATH in pq.read_schema(self.manifest).names
        if masks:
            from csmoe_model.data.masks import open_mask_cache, resolve_legend

            self._masks = open_mask_cache(
                self.manifest,
                self.cache.meta["key"],
                self.cache.size,
                Path(self.cache.path).parent,
                legend=resolve_legend(self.manifest, None),
                data_root=data_root,
            )
            self.mask_classes = self._masks.classes

    def _stats(
        self, normalization: str | Mapping[str, Sequence[float]] | None
    ) -> dict[str, list[float]] | None:
        if normalization is None:
            return None
        if isinstance(normalization, str):
            if normalization != "cache":
                raise CsmoeError(
                    f"normalization must be 'cache', a mapping or None, not {normalization!r}"
                )
            return self.cache.stats
        from csmoe_model.weights.pretrained import validate_normalization

        return validate_normalization(normalization, {"s1": 2, "s2": self.n_s2})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample:
        """The sample ``i`` (``0 <= i < len(self)``) as a dict of tensors.

        Raises:
            IndexError: for an index out of range.
        """
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        row = int(self.rows[i])
        if self._arrays is None:  # opened in the process that reads (DataLoader workers fork)
            self._arrays = self.cache.arrays()
        batch = {}
        for group in self._transform.groups + ("s1",):
            arr = np.array(self._arrays[group][row : row + 1])  # a writable copy of one row
            if arr.dtype == np.uint16:
                arr = arr.view(np.int16)  # how the loader ships uint16 (to_float converts back)
            batch[group] = torch.from_numpy(arr)
        s1, s2 = self._transform(batch)
        sample: Sample = {
            "image_s1": s1[0],
            "image_s2": s2[0],
            "patch_id": str(self.cache.patch_ids[row]),
            "index": row,
        }
        if self.label_column is not None:
            label = torch.zeros(len(self.classes), dtype=torch.float32)
            for lab in self._labels[row] or ():
                label[self.classes.index(lab)] = 1.0
            sample["label"] = label
        if self._masks is not None:
            mask = torch.from_numpy(np.array(self._masks.array[row], dtype=np.int64))
            if mask.shape[-1] != self.img_size:  # class indices: nearest neighbour
                mask = torch.nn.functional.interpolate(
                    mask[None, None].float(), size=(self.img_size, self.img_size), mode="nearest"
                )[0, 0].long()
            sample["mask"] = mask
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def __getstate__(self) -> dict[str, Any]:
        # memory maps are reopened in the receiving process, never pickled
        state = self.__dict__.copy()
        state["_arrays"] = None
        if state.get("_masks") is not None:
            import copy

            masks = copy.copy(state["_masks"])
            masks._array = None
            state["_masks"] = masks
        return state
