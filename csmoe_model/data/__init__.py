"""Imagery for training and embedding: manifest rows -> local cache -> batches on the device.

Public API (used by ``csmoe train``, ``csmoe cache`` and ``csmoe embed``)::

    from csmoe_model.data import open_cache, CacheSettings
    cache = open_cache(manifest, cache_dir=None, n_s2=12, workers=4, strict=False)   # builds once
    rows = cache.select("test")                 # valid cache rows of a split (cache row = manifest row)
    loader = cache.loader(rows, batch_size=256, device="cuda", img_size=model.img_size,
                          n_s2=model.in_chans["s2"], stats=run_stats, augment=False,
                          shuffle=False, drop_last=False, workers=4)
    for batch in loader:                        # Batch(step, epoch, index, s1, s2)
        out = model.encode(s1=batch.s1, s2=batch.s2)
        patch_ids = cache.patch_ids[batch.index.numpy()]

Only building a cache needs rasterio (imported lazily); reading needs numpy, pyarrow and torch. The
names below are imported on first use, so that the cache settings do not pull in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csmoe_common.lazy import lazy_getattr

if TYPE_CHECKING:
    from csmoe_model.data.cache import (
        CacheSettings,
        ImageryCache,
        default_cache_dir,
        open_cache,
        synthetic_cache,
    )
    from csmoe_model.data.loader import Batch, BatchPlan, DeviceLoader
    from csmoe_model.data.manifest import ManifestRows, read_manifest_rows, select_split
    from csmoe_model.data.transforms import DeviceTransform

_LAZY: dict[str, str] = {
    "CacheSettings": "cache",
    "ImageryCache": "cache",
    "default_cache_dir": "cache",
    "open_cache": "cache",
    "synthetic_cache": "cache",
    "Batch": "loader",
    "BatchPlan": "loader",
    "DeviceLoader": "loader",
    "ManifestRows": "manifest",
    "read_manifest_rows": "manifest",
    "select_split": "manifest",
    "DeviceTransform": "transforms",
}

__all__ = [
    "Batch",
    "BatchPlan",
    "CacheSettings",
    "DeviceLoader",
    "DeviceTransform",
    "ImageryCache",
    "ManifestRows",
    "default_cache_dir",
    "open_cache",
    "read_manifest_rows",
    "select_split",
    "synthetic_cache",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
