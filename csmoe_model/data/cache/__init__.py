"""The imagery cache: a manifest's imagery decoded once into memory-mapped native-resolution arrays.

Layout of ``<cache_dir>/<key>/`` (``cache_dir`` defaults to ``$CSMOE_CACHE_DIR`` or ``~/.cache/csmoe``):

* ``s2_10.npy`` uint16 (N, 4, S, S), ``s2_20.npy`` uint16 (N, 6, S/2, S/2), ``s2_60.npy`` uint16
  (N, 2, S/6, S/6) (12-band caches), ``s1.npy`` float16 (N, 2, S, S); plain ``.npy`` files opened
  with ``numpy.load(mmap_mode="r")`` (S = the 10 m size, 120 for BigEarthNet: 217.6 kB per pair);
* ``rows.parquet``: ``patch_id``, ``split``, ``valid`` (False for damaged images, which are skipped);
* ``meta.json``: settings, shapes, the per-band mean/std (computed on the training rows: the rows whose
  ``split`` is "train", or all rows when the manifest has no split column or no "train" row), the
  damaged images and the fingerprint of the imagery files.

Cache row ``i`` is manifest row ``i`` (every manifest row is cached, whatever ``--split`` selects
later). A seasonal cache (SSL4EO-S12 v1.1: ``meta.json`` ``seasons`` = 4) keeps every acquisition:
row ``i``'s season ``t`` is array row ``i * seasons + t``; the loader picks one per sample
(``--season``). Imagery is read from BigEarthNet folders, multi-band GeoTIFFs, Major TOM shards or
trees and SSL4EO-S12 zipped Zarr in place (:mod:`csmoe_model.data.sources`). ``<key>`` hashes the manifest's rows (patch ids, resolved imagery paths, splits) and the
preprocessing settings; the sizes and mtimes of
the imagery files are fingerprinted too, and a changed fingerprint rebuilds the cache. A host that
cannot see the imagery at all (a GPU host with a copied cache) reuses the cache as it is. Building
happens in a temporary folder renamed into place, under a file lock, so concurrent runs and other
processes build it once and never see a half-written cache.

Only building from GeoTIFF folders needs rasterio (imported lazily); Major TOM and SSL4EO-S12 stores
are decoded with tifffile and zarr; opening and reading needs numpy and pyarrow.

Example (this is the API ``csmoe embed`` uses)::

    from csmoe_model.data import open_cache
    cache = open_cache("manifest.parquet", n_s2=12)          # builds it on first use
    rows = cache.select("test")                                # valid rows of the split
    for batch in cache.loader(rows, batch_size=256, device="cuda", img_size=model.img_size,
                              stats=run_stats, augment=False, shuffle=False, drop_last=False):
        batch.index, batch.s1, batch.s2                        # cache = manifest row indices

Modules: :mod:`.settings` (what changes the content, the key), :mod:`.scan` (imagery checks and
fingerprint), :mod:`.lock`, :mod:`.stats`, :mod:`.build` (decoding, :func:`open_cache`,
:func:`synthetic_cache`) and :mod:`.reader` (:class:`ImageryCache`).
"""

from csmoe_model.data.cache.build import build_cache, open_cache, synthetic_cache
from csmoe_model.data.cache.reader import ImageryCache
from csmoe_model.data.cache.settings import CACHE_VERSION, CacheSettings, default_cache_dir

__all__ = [
    "CACHE_VERSION",
    "CacheSettings",
    "ImageryCache",
    "build_cache",
    "default_cache_dir",
    "open_cache",
    "synthetic_cache",
]
