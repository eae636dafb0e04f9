"""Paths into imagery stores: one file (or folder) plus an optional ``#key=value&...`` fragment.

A manifest's ``s2_path``/``s1_path`` usually names a BigEarthNet patch folder or a GeoTIFF. Corpora
that pack many images into one file need to say *where* in the file; the data half writes, and
the model half reads, this syntax (documented in ``data_manifests/README.md``)::

    images/part_00012.parquet#row=7                  # row 7 (0-based, over all row groups)
    images/part_00012.parquet#row=7&window=54,54,120 # a 120 px tile of it, at 10 m pixel (54, 54)
    433U/433U_1185R/S2B_MSIL2A_...#window=174,54,120 # a tile of a Major TOM tree folder
    S2L2A/ssl4eos12_train_seasonal_data_000001.zarr.zip#sample=12   # sample 12 of a zipped Zarr

Keys: ``row`` (a Parquet shard row), ``sample`` (the index along a datacube's ``sample``
dimension), ``window`` (``col_off,row_off,size`` in pixels of the 10 m grid, origin top left).
A ``#`` is read as a fragment only when everything after the last ``#`` is a well-formed list of
known keys, so a file whose own name holds a ``#`` still resolves to itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from csmoe_common.errors import CsmoeError

__all__ = ["FRAGMENT_KEYS", "StorePath", "parse_store_path", "split_fragment"]

#: the keys a fragment may hold, in the order they are written
FRAGMENT_KEYS: tuple[str, ...] = ("row", "sample", "window")

_FRAGMENT = re.compile(r"^[a-z_]+=[^&=#]+(?:&[a-z_]+=[^&=#]+)*$")


@dataclass(frozen=True)
class StorePath:
    """A file or folder, and where inside it one image lies.

    Attributes:
        file: the file or folder (as written: relative paths stay relative).
        row: row of a Parquet shard (0-based, counted over all row groups), or None.
        sample: index along the ``sample`` dimension of a zipped Zarr datacube, or None.
        window: ``(col_off, row_off, size)`` of a square tile in pixels of the 10 m grid, or None.
    """

    file: str
    row: int | None = None
    sample: int | None = None
    window: tuple[int, int, int] | None = None

    @property
    def fragment(self) -> str:
        """The ``key=value&...`` part (empty when the path names a whole file or folder)."""
        parts = []
        if self.row is not None:
            parts.append(f"row={self.row}")
        if self.sample is not None:
            parts.append(f"sample={self.sample}")
        if self.window is not None:
            parts.append("window=" + ",".join(str(v) for v in self.window))
        return "&".join(parts)

    def with_file(self, file: str) -> StorePath:
        """The same place inside another file (e.g. the file resolved against a manifest folder)."""
        return StorePath(file, self.row, self.sample, self.window)

    def __str__(self) -> str:
        frag = self.fragment
        return f"{self.file}#{frag}" if frag else self.file


def _non_negative(key: str, value: str, text: str) -> int:
    if not value.isdigit():
        raise CsmoeError(f"imagery path {text!r}: {key}={value!r} is not a non-negative integer")
    return int(value)


def split_fragment(text: str) -> tuple[str, str]:
    """``(file, fragment)`` of a path; the fragment is ``""`` when there is none (see the module)."""
    head, sep, tail = text.rpartition("#")
    if not sep or not head or not _FRAGMENT.match(tail):
        return text, ""
    keys = [item.split("=", 1)[0] for item in tail.split("&")]
    if not all(k in FRAGMENT_KEYS for k in keys):
        return text, ""
    return head, tail


def parse_store_path(text: str) -> StorePath:
    """Parse a manifest imagery path (see the module docstring).

    Raises:
        CsmoeError: a fragment with a repeated key, a value that is not a non-negative integer, a
            window that is not three integers with a positive size, or both ``row`` and ``sample``.
    """
    file, fragment = split_fragment(text)
    if not fragment:
        return StorePath(file)
    values: dict[str, str] = {}
    for item in fragment.split("&"):
        key, value = item.split("=", 1)
        if key in values:
            raise CsmoeError(f"imagery path {text!r}: key {key!r} given twice")
        values[key] = value
    row = _non_negative("row", values["row"], text) if "row" in values else None
    sample = _non_negative("sample", values["sample"], text) if "sample" in values else None
    if row is not None and sample is not None:
        raise CsmoeError(f"imagery path {text!r}: a path names a Parquet row or a sample, not both")
    window = None
    if "window" in values:
        parts = values["window"].split(",")
        if len(parts) != 3:
            raise CsmoeError(
                f"imagery path {text!r}: window must be col_off,row_off,size, not {values['window']!r}"
            )
        col_off, row_off, size = (_non_negative("window", p, text) for p in parts)
        if size == 0:
            raise CsmoeError(f"imagery path {text!r}: a window needs a positive size")
        window = (col_off, row_off, size)
    return StorePath(file, row, sample, window)
