"""Cache settings, the default cache folder and the content key (the cache's folder name)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csmoe_model.data.manifest import ManifestRows

#: layout version of a cache folder (part of the key; a new layout rebuilds old caches)
CACHE_VERSION = 1
S1_DTYPE = np.float16
S2_DTYPE = np.uint16


@dataclass(frozen=True)
class CacheSettings:
    """Preprocessing settings that change the cache's content (part of its key).

    Attributes:
        n_s2: Sentinel-2 bands to cache, 10 (CSMAE's and every preset's) or 12
            (``bands.s2_bands``).
        size: the 10 m size in pixels (``None``: the native size of the first row, 120 for BigEarthNet);
            must be divisible by 6 (12 bands) or 2 (10 bands).
        s2_bands: band order of multi-band S2 GeoTIFFs without band descriptions.
        s1_bands: band order of multi-band S1 GeoTIFFs without band descriptions.
    """

    n_s2: int = 10
    size: int | None = None
    s2_bands: tuple[str, ...] | None = None
    s1_bands: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (band tuples as lists)."""
        d = asdict(self)
        for k in ("s2_bands", "s1_bands"):
            d[k] = list(d[k]) if d[k] else None
        return d


def default_cache_dir() -> Path:
    """``$CSMOE_CACHE_DIR`` or ``~/.cache/csmoe``."""
    env = os.environ.get("CSMOE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "csmoe"


def content_key(rows: ManifestRows, settings: CacheSettings) -> str:
    """Hash of the manifest's rows (ids, resolved paths, splits) and the settings: the cache's folder name."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, **settings.to_dict()}, sort_keys=True).encode())
    split = rows.split if rows.split is not None else [None] * len(rows)
    # the split is part of the key: the statistics come from the "train" rows
    for pid, s1, s2, sp in zip(rows.patch_id, rows.s1_path, rows.s2_path, split, strict=True):
        h.update(f"{pid}\0{s1}\0{s2}\0{sp}\n".encode())
    return h.hexdigest()[:24]
