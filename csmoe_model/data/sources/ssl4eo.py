"""SSL4EO-S12 v1.1 datacubes as imagery: zipped Zarr read in place through zarr's ``ZipStore``.

Layout (DLR-MF-DAS/SSL4EO-S12-v1.1 README and ``zarr_dataset.py``): ``<split>/<modality>/*.zarr.zip``
with modality ``S2L1C``, ``S2L2A`` or ``S1GRD``; each store (zarr format 2, consolidated) holds
``bands`` of shape ``(sample, time, band, y, x)`` (64 locations x 4 seasons, 264 x 264 px, every
band resampled to 10 m; int16 reflectance for S2, float16 dB for S1) and a ``band`` coordinate
naming the bands (``B01`` ... ``B12``, ``B8A``; ``vv``, ``vh``). A manifest names one location as
``<store>.zarr.zip#sample=I`` (I = index along ``sample``); all seasons of it are read.

The stores are never unpacked: zarr reads the zip's members directly. Locations of one store are
read with one orthogonal selection (:func:`read_samples`), so each compressed chunk is decoded
once however many of its locations the manifest uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csmoe_common.store_path import StorePath
from csmoe_model.data.sources.errors import BandError, DamagedImageError
from csmoe_model.data.sources.geotiff import resample_stack

__all__ = ["is_zarr_zip", "open_store", "read_samples", "store_seasons"]


def is_zarr_zip(ref: StorePath) -> bool:
    """Whether ``ref`` names a location of a zipped Zarr datacube."""
    return ref.sample is not None and ref.file.lower().endswith(".zip")


def _band_key(name: str) -> str:
    n = str(name).strip().upper()
    if n.startswith("B") and n[1:].isdigit():
        return f"B{int(n[1:]):02d}"
    return n


def open_store(path: str) -> Any:  # a zarr Group (its type differs between zarr 2 and 3)
    """Open a zipped Zarr datacube read-only (consolidated metadata when present).

    Raises:
        DamagedImageError: when the file is not a readable zip of a Zarr group with ``bands``.
    """
    import zarr
    from zarr.storage import ZipStore

    try:
        store = ZipStore(path, mode="r")
        group = zarr.open_group(store, mode="r")
        group["bands"]  # noqa: B018 - touch: a store without the variable is damaged
    except Exception as exc:  # zipfile, zarr and json raise many types for damaged stores
        raise DamagedImageError(
            f"{Path(path).name}: cannot open zipped Zarr ({' '.join(str(exc).split())[:160]})"
        ) from exc
    return group


def store_seasons(path: str) -> int:
    """Length of the ``time`` dimension of a datacube (SSL4EO-S12: 4 seasons).

    Raises:
        DamagedImageError: when the store cannot be opened or ``bands`` is not 5-D.
    """
    arr = open_store(path)["bands"]
    if len(arr.shape) != 5:
        raise DamagedImageError(
            f"{Path(path).name}: bands has shape {arr.shape}, not (sample, time, band, y, x)"
        )
    return int(arr.shape[1])


def read_samples(
    path: str,
    samples: Sequence[int],
    bands: Sequence[str],
    shapes: Sequence[tuple[int, int]],
) -> list[list[np.ndarray]]:
    """Read ``bands`` of locations ``samples`` of one store, every season.

    Args:
        path: the ``.zarr.zip`` file.
        samples: indices along ``sample``.
        bands: canonical band names in output order (``B02``, ..., ``VH``, ``VV``).
        shapes: the output ``(h, w)`` of each band (20 m and 60 m groups are block-averaged
            down from the 10 m grid the datacube holds).

    Returns:
        For each sample, one ``(seasons, h, w)`` array per band (float64 or the stored dtype).

    Raises:
        BandError: a band the model needs is not in the store, or a sample index is out of range.
        DamagedImageError: the store or one of its chunks cannot be decoded.
    """
    group = open_store(path)
    name = Path(path).name
    try:
        names = [_band_key(b) for b in group["band"][:]]
    except Exception as exc:
        raise DamagedImageError(f"{name}: cannot read the band coordinate ({exc})") from exc
    missing = [b for b in bands if b not in names]
    if missing:
        raise BandError(
            f"{name}: no band(s) {', '.join(missing)} (the store has {', '.join(names)})"
        )
    arr = group["bands"]
    n_samples = int(arr.shape[0])
    bad = [s for s in samples if s >= n_samples]
    if bad:
        raise BandError(f"{name} holds {n_samples} samples; sample {bad[0]} does not exist")
    # one basic slice over the samples asked for: zarr decodes each chunk once and takes its fast
    # path (an orthogonal selection of a few samples and bands costs several times more here)
    lo, hi = min(samples), max(samples) + 1
    try:
        data = np.asarray(arr[lo:hi])  # (samples, time, band, y, x)
    except Exception as exc:  # a truncated chunk: zarr/numcodecs raise several types
        raise DamagedImageError(
            f"{name}: cannot decode bands ({' '.join(str(exc).split())[:160]})"
        ) from exc
    channel = [names.index(b) for b in bands]
    out: list[list[np.ndarray]] = []
    for s in samples:
        cube = data[s - lo]  # (time, band, y, x)
        per_band: list[np.ndarray] = []
        k = 0
        while k < len(channel):
            # bands that go to one shape are resampled together
            j = k
            while j < len(channel) and shapes[j] == shapes[k]:
                j += 1
            stack = resample_stack(cube[:, channel[k:j]], shapes[k])
            per_band.extend(stack[:, m] for m in range(j - k))
            k = j
        out.append(per_band)
    return out
