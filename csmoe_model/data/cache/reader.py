"""An opened imagery cache (read-only): arrays as memory maps, rows, statistics, loaders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from csmoe_model.data.imagery import s2_groups
from csmoe_model.data.manifest import select_split
from csmoe_model.errors import CsmoeError

if TYPE_CHECKING:
    from csmoe_model.data.loader import DeviceLoader


class ImageryCache:
    """An opened imagery cache (read-only). See the module docstring for the layout.

    Attributes:
        path: the cache folder.
        meta: the decoded ``meta.json``.
    """

    def __init__(self, path: str | Path, verify: bool = True) -> None:
        """Open the cache folder ``path``.

        Args:
            path: the cache folder.
            verify: check the arrays and rows against ``meta.json`` (:mod:`.integrity`).

        Raises:
            CsmoeError: not a cache folder.
            DamagedCacheError: a file is unreadable or does not match ``meta.json``.
        """
        import pyarrow.parquet as pq

        from csmoe_model.data.cache.integrity import DamagedCacheError, read_meta, verify_cache

        self.path = Path(path)
        self.meta: dict[str, Any] = read_meta(self.path)
        try:
            groups = self.groups
        except (CsmoeError, KeyError, TypeError, ValueError):
            raise DamagedCacheError(
                f"damaged imagery cache: {self.path / 'meta.json'} has bad settings"
            ) from None
        if verify:
            verify_cache(self.path, self.meta, groups)
        rows_file = self.path / "rows.parquet"
        try:
            table = pq.read_table(rows_file)
            self.patch_ids = np.array(table.column("patch_id").to_pylist(), dtype=object)
            split = table.column("split").to_pylist()
            valid = table.column("valid").to_numpy(zero_copy_only=False)
        except (OSError, KeyError, ValueError) as exc:  # pyarrow's errors are OSError/ValueError
            raise DamagedCacheError(
                f"damaged imagery cache: {rows_file} cannot be read ({' '.join(str(exc).split())})"
            ) from None
        if len(self.patch_ids) != int(self.meta["n_rows"]):
            raise DamagedCacheError(
                f"damaged imagery cache: {rows_file} has {len(self.patch_ids)} rows, "
                f"meta.json says {self.meta['n_rows']}"
            )
        self.split = None if all(s is None for s in split) else np.array(split, dtype=object)
        self.valid = np.asarray(valid, dtype=bool)

    def __len__(self) -> int:
        return int(self.meta["n_rows"])

    def __repr__(self) -> str:
        return f"ImageryCache({str(self.path)!r}, rows={len(self)}, size={self.size}, n_s2={self.n_s2})"

    @property
    def size(self) -> int:
        """The 10 m size in pixels."""
        return int(self.meta["size"])

    @property
    def seasons(self) -> int:
        """Acquisitions kept per row (SSL4EO-S12: 4; 1 for single-date corpora).

        Row ``i``'s season ``t`` is array row ``i * seasons + t`` of every ``.npy`` file.
        """
        return int(self.meta.get("seasons", 1))

    @property
    def n_s2(self) -> int:
        """Sentinel-2 bands cached (10 or 12)."""
        return int(self.meta["settings"]["n_s2"])

    @property
    def groups(self) -> tuple[str, ...]:
        """Array names in model band order: the S2 groups, then ``s1``."""
        return (*s2_groups(self.n_s2), "s1")

    @property
    def stats(self) -> dict[str, list[float]]:
        """Per-band ``s2_mean``, ``s2_std`` (model band order), ``s1_mean``, ``s1_std`` (VH, VV)."""
        return self.meta["stats"]

    @property
    def damaged(self) -> list[dict[str, Any]]:
        """The images skipped because they could not be decoded (row, patch_id, error)."""
        return self.meta["damaged"]

    @property
    def n_damaged(self) -> int:
        """How many images were damaged (``damaged`` lists at most the first 1,000)."""
        return int(self.meta["n_damaged"])

    def array_path(self, group: str) -> Path:
        """The ``.npy`` file of an array group (``s2_10``, ``s2_20``, ``s2_60`` or ``s1``)."""
        return self.path / f"{group}.npy"

    def arrays(self) -> dict[str, np.ndarray]:
        """Open the arrays as read-only memory maps (cheap; open them in each worker process)."""
        return {g: np.load(self.array_path(g), mmap_mode="r") for g in self.groups}

    def select(self, split: str | None = None) -> np.ndarray:
        """Cache row indices (int64, ascending) of the valid rows of ``split`` (``None``: all rows).

        Raises:
            CsmoeError: unknown split or no valid row left.
        """
        rows = select_split(self.split if split else None, split) if split else np.arange(len(self))
        rows = rows[self.valid[rows]]
        if len(rows) == 0:
            raise CsmoeError(f"no valid cached row for split {split or 'all'} in {self.path}")
        return rows

    def loader(self, rows: np.ndarray, batch_size: int, **kwargs: Any) -> DeviceLoader:
        """A :class:`csmoe_model.data.loader.DeviceLoader` over ``rows`` (see its arguments)."""
        from csmoe_model.data.loader import DeviceLoader

        return DeviceLoader(self, rows, batch_size=batch_size, **kwargs)
