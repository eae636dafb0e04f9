"""Decode manifest rows of any layout into the cache's per-group arrays, stores read in groups.

A row's ``s2_path``/``s1_path`` is one of (``data_manifests/README.md``):

* a BigEarthNet patch folder or a multi-band GeoTIFF (:mod:`csmoe_model.data.imagery`);
* a Major TOM product: a tree folder (``.../<product_id>/B02.tif``) or a shard row
  (``part_NNNNN.parquet#row=R``), either with an optional ``#window=`` tile
  (:mod:`csmoe_model.data.sources.majortom`);
* an SSL4EO-S12 location ``<store>.zarr.zip#sample=I`` with all its seasons
  (:mod:`csmoe_model.data.sources.ssl4eo`).

:func:`read_rows` takes a batch of rows, reads the rows that share a store together (a Major TOM
product decoded once for all its tiles; one selection per zipped Zarr store) and returns, per row,
``(T, C, h, w)`` arrays: ``T`` is the cache's number of seasons (1 for single-date corpora); a row
with one acquisition in a seasonal cache repeats it in every slot. Sentinel-2 values become uint16
(rounded, clipped), Sentinel-1 float32 with non-finite pixels replaced by the median of their band
and season (an image with no finite pixel in a band is damaged), as for BigEarthNet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csmoe_common.bands import GROUP_DIVISOR, S1_BANDS, S2_GROUPS
from csmoe_common.store_path import StorePath, parse_store_path
from csmoe_model.data.sources import majortom, ssl4eo
from csmoe_model.data.sources.errors import BandError, DamagedImageError

__all__ = [
    "RowImages",
    "group_key",
    "is_store_path",
    "read_rows",
    "row_native_size",
    "row_seasons",
    "store_file",
]


def _kind(ref: StorePath) -> str:
    if ssl4eo.is_zarr_zip(ref):
        return "ssl4eo"
    if majortom.is_parquet_shard(ref) or majortom.is_majortom_folder(ref.file):
        return "majortom"
    return "plain"


def is_store_path(path: str) -> bool:
    """Whether ``path`` names an image inside a Major TOM or SSL4EO-S12 store (not a plain file)."""
    return _kind(parse_store_path(path)) != "plain"


def store_file(path: str) -> str:
    """The file or folder part of an imagery path (what exists on disk)."""
    return parse_store_path(path).file


def group_key(path: str | None) -> str:
    """Rows with equal keys share a decode: the product (Major TOM) or the store (SSL4EO)."""
    if path is None:
        return ""
    ref = parse_store_path(path)
    kind = _kind(ref)
    if kind == "majortom":
        return f"{ref.file}\0{ref.row}"
    if kind == "ssl4eo":
        return ref.file
    return path


def row_seasons(path: str) -> int:
    """Acquisitions per row behind ``path``: a datacube's ``time`` length, else 1.

    Raises:
        DamagedImageError: when a datacube cannot be opened.
    """
    ref = parse_store_path(path)
    return ssl4eo.store_seasons(ref.file) if _kind(ref) == "ssl4eo" else 1


def row_native_size(path: str) -> int | None:
    """The 10 m size of the image behind a store path (None for plain folders and GeoTIFFs).

    A Major TOM tile's size is its window's; a whole product's is its reference band's width;
    an SSL4EO-S12 datacube's is its ``x`` length.

    Raises:
        BandError, DamagedImageError: when the store or band cannot be read.
    """
    ref = parse_store_path(path)
    kind = _kind(ref)
    if kind == "plain":
        return None
    if ref.window is not None:
        return ref.window[2]
    if kind == "ssl4eo":
        return int(ssl4eo.open_store(ref.file)["bands"].shape[-1])
    return majortom.product_width(ref)


@dataclass
class RowImages:
    """One decoded row: ``s2`` maps group -> ``(T, C, h, w)`` uint16, ``s1`` is ``(T, 2, S, S)`` float32."""

    s2: dict[str, np.ndarray]
    s1: np.ndarray


def _s2_shapes(size: int, groups: Sequence[str]) -> tuple[list[str], list[tuple[int, int]]]:
    bands = [b for g in groups for b in S2_GROUPS[g]]
    shapes = [(size // GROUP_DIVISOR[g],) * 2 for g in groups for _ in S2_GROUPS[g]]
    return bands, shapes


def _to_uint16(stack: np.ndarray) -> np.ndarray:
    if stack.dtype == np.uint16:
        return stack
    if np.issubdtype(stack.dtype, np.integer):  # e.g. SSL4EO-S12's int16
        return np.clip(stack, 0, 65535).astype(np.uint16)
    return np.clip(np.rint(np.nan_to_num(stack)), 0, 65535).astype(np.uint16)


def _fill_s1(arr: np.ndarray, name: str) -> np.ndarray:
    """Replace non-finite pixels by their band's (and season's) median; raise when none is finite."""
    arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    if finite.all():
        return arr
    for t in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            ok = finite[t, c]
            if not ok.any():
                raise DamagedImageError(f"{name}: band {S1_BANDS[c]} has no finite pixel")
            arr[t, c][~ok] = np.median(arr[t, c][ok])
    return arr


def _read_store_sensor(
    paths: Sequence[str], sensor: str, bands: Sequence[str], shapes: Sequence[tuple[int, int]]
) -> list[list[np.ndarray] | Exception]:
    """Per path: one ``(T, h, w)`` array per band, or the error; stores read in groups."""
    refs = [parse_store_path(p) for p in paths]
    out: list[list[np.ndarray] | Exception] = [DamagedImageError("not read")] * len(refs)
    by_kind: dict[str, list[int]] = {}
    for k, ref in enumerate(refs):
        by_kind.setdefault(_kind(ref), []).append(k)
    mt = by_kind.get("majortom", [])
    if mt:
        results = majortom.read_products([refs[k] for k in mt], bands, shapes, sensor)
        for k, res in zip(mt, results, strict=True):
            out[k] = res if isinstance(res, Exception) else [a[None] for a in res]
    stores: dict[str, list[int]] = {}
    for k in by_kind.get("ssl4eo", []):
        stores.setdefault(refs[k].file, []).append(k)
    for file, ks in stores.items():
        try:
            samples = ssl4eo.read_samples(
                file, [int(refs[k].sample or 0) for k in ks], bands, shapes
            )
        except (BandError, DamagedImageError) as exc:
            for k in ks:
                out[k] = exc
            continue
        for k, res in zip(ks, samples, strict=True):
            out[k] = res
    return out


def read_rows(
    items: Sequence[tuple[int, str, str]],
    size: int,
    groups: Sequence[str],
    seasons: int,
    plain_s2: Callable[[str], dict[str, np.ndarray]],
    plain_s1: Callable[[str], np.ndarray],
) -> list[tuple[int, RowImages | None, tuple[str, str] | None]]:
    """Decode ``items`` (``(row, s1_path, s2_path)``) into cache arrays.

    Args:
        items: the rows of one batch.
        size: the cache's 10 m size.
        groups: the Sentinel-2 groups of the cache (``s2_10``, ``s2_20`` [, ``s2_60``]).
        seasons: the cache's number of seasons ``T``.
        plain_s2: reads a row's single-date S2 imagery of a plain folder or GeoTIFF (group ->
            ``(C, h, w)``), as :func:`csmoe_model.data.imagery.read_s2` with the cache's settings.
        plain_s1: the same for S1 (``(2, S, S)``).

    Returns:
        Per item ``(row, images, None)`` or ``(row, None, (kind, message))`` with kind ``"bands"``
        (a user error: missing or undeclared bands) or ``"damaged"``.
    """
    s2_bands, s2_shapes = _s2_shapes(size, groups)
    s1_shapes = [(size, size)] * len(S1_BANDS)
    store_rows = [
        k for k, (_, s1, s2) in enumerate(items) if is_store_path(s2) or is_store_path(s1)
    ]
    s2_res: dict[int, list[np.ndarray] | Exception] = {}
    s1_res: dict[int, list[np.ndarray] | Exception] = {}
    s2_store = [k for k in store_rows if is_store_path(items[k][2])]
    s1_store = [k for k in store_rows if is_store_path(items[k][1])]
    if s2_store:
        res = _read_store_sensor([items[k][2] for k in s2_store], "s2", s2_bands, s2_shapes)
        s2_res.update(zip(s2_store, res, strict=True))
    if s1_store:
        res = _read_store_sensor([items[k][1] for k in s1_store], "s1", S1_BANDS, s1_shapes)
        s1_res.update(zip(s1_store, res, strict=True))
    out: list[tuple[int, RowImages | None, tuple[str, str] | None]] = []
    for k, (i, s1_path, s2_path) in enumerate(items):
        try:
            if k in s2_res:
                got = s2_res[k]
                if isinstance(got, Exception):
                    raise got
                s2: dict[str, np.ndarray] = {}
                j = 0
                for g in groups:
                    n = len(S2_GROUPS[g])
                    s2[g] = _to_uint16(np.stack(got[j : j + n], axis=1))
                    j += n
            else:
                s2 = {g: a[None] for g, a in plain_s2(s2_path).items()}
            if k in s1_res:
                got1 = s1_res[k]
                if isinstance(got1, Exception):
                    raise got1
                s1 = _fill_s1(np.stack(got1, axis=1), Path(store_file(s1_path)).name)
            else:
                s1 = plain_s1(s1_path)[None]
            s2 = {g: _fit_seasons(a, seasons, s2_path) for g, a in s2.items()}
            s1 = _fit_seasons(s1, seasons, s1_path)
        except BandError as exc:
            out.append((i, None, ("bands", str(exc))))
            continue
        except DamagedImageError as exc:
            out.append((i, None, ("damaged", str(exc))))
            continue
        out.append((i, RowImages(s2, s1), None))
    return out


def _fit_seasons(arr: np.ndarray, seasons: int, path: str) -> np.ndarray:
    if arr.shape[0] == seasons:
        return arr
    if arr.shape[0] == 1:
        return np.repeat(arr, seasons, axis=0)
    raise BandError(
        f"{Path(store_file(path)).name}: {arr.shape[0]} seasons where the cache holds {seasons}"
    )
