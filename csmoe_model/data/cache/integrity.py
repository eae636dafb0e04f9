"""Cache integrity: what a built cache promises about its files, checked every time it is opened.

A cache folder holds large ``.npy`` arrays that live for months, get copied between hosts and can
be truncated by a full disk or scrambled by a bad copy. When a cache is built, ``meta.json`` gets

* ``arrays``: per array group, the shape, dtype, file size and a *sampled* SHA-256 (16 slices of
  64 KiB spread evenly over the file, plus its size: ~1 MiB read however big the array is, so
  opening stays cheap; it catches truncation, a scrambled header and most scrambled data, not
  a single flipped bit in the middle of a 10 GB array);
* ``rows_sha256``: the SHA-256 of ``rows.parquet``;
* ``meta_sha256``: the SHA-256 of the rest of ``meta.json`` (canonical JSON), so an edited or
  damaged ``meta.json`` is noticed before its figures (normalisation statistics) are trusted.

:func:`verify_cache` checks all of it, and always the ``.npy`` headers against ``meta.json`` (rows,
shapes, dtypes), and raises :class:`DamagedCacheError` (one line naming the file) on the first
mismatch; ``open_cache`` then rebuilds the cache, or refuses under ``--strict``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from csmoe_model.errors import CsmoeError

#: slices read for an array's sampled checksum, and their size
SAMPLE_SLICES = 16
SAMPLE_BYTES = 64 * 1024


class DamagedCacheError(CsmoeError):
    """A cache folder whose files do not match its ``meta.json`` (or are unreadable)."""


def sampled_sha256(path: Path) -> str:
    """SHA-256 of a file's size and :data:`SAMPLE_SLICES` evenly spread slices of it."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        if size <= SAMPLE_SLICES * SAMPLE_BYTES:
            digest.update(fh.read())
        else:
            step = (size - SAMPLE_BYTES) // (SAMPLE_SLICES - 1)
            for k in range(SAMPLE_SLICES):
                fh.seek(k * step)
                digest.update(fh.read(SAMPLE_BYTES))
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a whole (small) file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def meta_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of ``meta`` without its ``meta_sha256`` entry, as canonical JSON."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """Shape, dtype and data offset of a ``.npy`` file, read from its header only."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if fortran:
            raise ValueError("Fortran-ordered array")
        return tuple(int(s) for s in shape), np.dtype(dtype), fh.tell()


def describe_arrays(folder: Path, groups: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The ``arrays`` entry of ``meta.json`` for the arrays of a freshly built folder."""
    out = {}
    for g in groups:
        path = folder / f"{g}.npy"
        shape, dtype, _ = _header(path)
        out[g] = {
            "shape": list(shape),
            "dtype": dtype.str,
            "bytes": path.stat().st_size,
            "sample_sha256": sampled_sha256(path),
        }
    return out


def seal(meta: dict[str, Any], folder: Path, groups: tuple[str, ...]) -> dict[str, Any]:
    """``meta`` with ``arrays``, ``rows_sha256`` and ``meta_sha256`` added (see the module docstring)."""
    sealed = dict(meta)
    sealed["arrays"] = describe_arrays(folder, groups)
    sealed["rows_sha256"] = file_sha256(folder / "rows.parquet")
    sealed["meta_sha256"] = meta_digest(sealed)
    return sealed


def read_meta(folder: Path) -> dict[str, Any]:
    """The decoded ``meta.json`` of a cache folder.

    Raises:
        CsmoeError: no ``meta.json`` (not a cache).
        DamagedCacheError: unreadable, not JSON, not an object, or its checksum does not match.
    """
    path = folder / "meta.json"
    if not path.is_file():
        raise CsmoeError(f"{folder} is not a csmoe imagery cache (no meta.json)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DamagedCacheError(f"damaged imagery cache: {path} cannot be read ({exc})") from None
    if not isinstance(meta, dict):
        raise DamagedCacheError(f"damaged imagery cache: {path} is not a JSON object")
    if "meta_sha256" in meta and meta["meta_sha256"] != meta_digest(meta):
        raise DamagedCacheError(f"damaged imagery cache: {path} does not match its checksum")
    for key in ("n_rows", "size", "settings", "stats"):
        if key not in meta:
            raise DamagedCacheError(f"damaged imagery cache: {path} has no {key!r}")
    return meta


def expected_shapes(meta: dict[str, Any], groups: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """The array shapes ``meta.json``'s rows, seasons, size and bands imply.

    A seasonal cache holds ``n_rows * seasons`` array rows (row ``i``'s season ``t`` at
    ``i * seasons + t``).
    """
    from csmoe_common.bands import GROUP_DIVISOR, S1_BANDS, S2_GROUPS

    n = int(meta["n_rows"]) * int(meta.get("seasons", 1))
    size = int(meta["size"])
    out: dict[str, tuple[int, ...]] = {}
    for g in groups:
        if g == "s1":
            out[g] = (n, len(S1_BANDS), size, size)
        else:
            s = size // GROUP_DIVISOR[g]
            out[g] = (n, len(S2_GROUPS[g]), s, s)
    return out


def verify_cache(folder: Path, meta: dict[str, Any], groups: tuple[str, ...]) -> None:
    """Check a cache's arrays and rows against its ``meta.json``.

    Raises:
        DamagedCacheError: the first mismatch (missing or truncated array, wrong shape or dtype,
            checksum), in one line naming the file.
    """
    from csmoe_model.data.cache.settings import S1_DTYPE, S2_DTYPE

    arrays = meta.get("arrays")
    recorded: dict[str, Any] = arrays if isinstance(arrays, dict) else {}
    shapes = expected_shapes(meta, groups)
    for g in groups:
        path = folder / f"{g}.npy"
        want_dtype = np.dtype(S1_DTYPE if g == "s1" else S2_DTYPE)
        try:
            shape, dtype, offset = _header(path)
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise DamagedCacheError(f"damaged imagery cache: {path} is missing") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise DamagedCacheError(
                f"damaged imagery cache: {path} has no valid .npy header ({exc})"
            ) from None
        if shape != shapes[g] or dtype != want_dtype:
            raise DamagedCacheError(
                f"damaged imagery cache: {path} holds {dtype} {shape}, meta.json says "
                f"{want_dtype} {shapes[g]}"
            )
        need = offset + int(np.prod(shape)) * dtype.itemsize
        if size < need:
            raise DamagedCacheError(
                f"damaged imagery cache: {path} is truncated ({size:,} of {need:,} bytes)"
            )
        entry = recorded.get(g)
        if isinstance(entry, dict):
            if entry.get("bytes") != size:
                raise DamagedCacheError(
                    f"damaged imagery cache: {path} has {size:,} bytes, meta.json says "
                    f"{entry.get('bytes')}"
                )
            if entry.get("sample_sha256") != sampled_sha256(path):
                raise DamagedCacheError(
                    f"damaged imagery cache: {path} does not match its checksum"
                )
    rows = folder / "rows.parquet"
    if "rows_sha256" in meta:
        try:
            digest = file_sha256(rows)
        except OSError:
            raise DamagedCacheError(f"damaged imagery cache: {rows} is missing") from None
        if digest != meta["rows_sha256"]:
            raise DamagedCacheError(f"damaged imagery cache: {rows} does not match its checksum")
