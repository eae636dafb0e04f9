"""An opened imagery cache (read-only): arrays as memory maps, rows, statistics, loaders."""

from __future__ import annotations

import json
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

    def __init__(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise CsmoeError(f"{self.path} is not a csmoe imagery cache (no meta.json)")
        self.meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        table = pq.read_table(self.path / "rows.parquet")
        self.patch_ids = np.array(table.column("patch_id").to_pylist(), dtype=object)
        split = table.column("split").to_pylist()
        self.split = None if all(s is None for s in split) else np.array(split, dtype=object)
        self.valid = np.asarray(table.column("valid").to_numpy(zero_copy_only=False), dtype=bool)

    def __len__(self) -> int:
        return int(self.meta["n_rows"])

    def __repr__(self) -> str:
        return f"ImageryCache({str(self.path)!r}, rows={len(self)}, size={self.size}, n_s2={self.n_s2})"

    @property
    def size(self) -> int:
        """The 10 m size in pixels."""
        return int(self.meta["size"])

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
