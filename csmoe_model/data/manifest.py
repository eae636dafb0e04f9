"""The model half's one manifest reader, with pyarrow only (no geopandas, no GDAL).

Built on :mod:`csmoe_common.manifest` (column names, file checks, the ``csmoe`` metadata). The
geometry column is ignored: training and embedding need ``patch_id``, ``s1_path``, ``s2_path`` and,
for ``--split``, the ``split`` column (:func:`read_manifest_rows`; relative imagery paths resolve
against the manifest's folder, or ``--data-root``: :func:`csmoe_common.manifest.imagery_root`),
and evaluation the label list columns (:func:`read_manifest_labels`).
:func:`read_manifest_metadata` (re-exported) reads the ``csmoe`` metadata document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csmoe_common.manifest import (
    LABELS,
    LABELS19,
    PATCH_ID,
    S1_PATH,
    S2_PATH,
    SPLIT,
    check_manifest_file,
    imagery_root,
    missing_imagery_hint,
    read_manifest_metadata,
    read_schema,
    resolve_imagery_path,
)
from csmoe_model.errors import CsmoeError

__all__ = [
    "LABEL_COLUMNS",
    "REQUIRED_COLUMNS",
    "ManifestRows",
    "parse_splits",
    "read_manifest_labels",
    "read_manifest_metadata",
    "read_manifest_rows",
    "select_split",
]

#: columns read from a manifest (``split`` only when present)
REQUIRED_COLUMNS: tuple[str, ...] = (PATCH_ID, S1_PATH, S2_PATH)
#: label columns copied into embeddings when present
LABEL_COLUMNS: tuple[str, ...] = (LABELS, LABELS19)


@dataclass(frozen=True)
class ManifestRows:
    """The rows of a manifest that training reads, as numpy arrays (row order = file order).

    Attributes:
        path: the manifest file (absolute).
        patch_id: object array of str.
        s1_path: object array of absolute path strings, ``None`` where the row has no S1 imagery.
        s2_path: object array of absolute path strings, ``None`` where the row has no S2 imagery.
        split: object array of str (``None`` for missing values), or ``None`` without a split column.
        root: the folder relative imagery paths were resolved against (the manifest's folder, or
            ``data_root``).
        data_root: ``--data-root`` when given (absolute), else ``None``.
    """

    path: Path
    patch_id: np.ndarray
    s1_path: np.ndarray
    s2_path: np.ndarray
    split: np.ndarray | None
    root: Path | None = None
    data_root: Path | None = None

    def __len__(self) -> int:
        return len(self.patch_id)

    def missing_hint(self, missing: str) -> str:
        """How relative imagery paths resolve, to add after "``missing`` not found".

        Empty when ``missing`` does not lie under :attr:`root` (``--data-root`` would not help).
        """
        root = self.root or self.path.parent
        if not Path(missing).is_relative_to(root):
            return ""
        return missing_imagery_hint(root, self.data_root is not None)


def parse_splits(split: str | None) -> tuple[str, ...] | None:
    """Parse ``--split`` ("train", or "train,val"; ``None``/"" or "all" = all rows)."""
    if split is None or not split.strip() or split.strip().lower() == "all":
        return None
    names = tuple(s.strip() for s in split.split(",") if s.strip())
    return names or None


def select_split(split_column: np.ndarray | None, split: str | None) -> np.ndarray:
    """Return the indices (int64, ascending) of the rows whose ``split`` is one of ``split``.

    Raises:
        CsmoeError: when a split is asked for but the manifest has no ``split`` column, or no row matches.
    """
    names = parse_splits(split)
    if names is None:
        n = 0 if split_column is None else len(split_column)
        return np.arange(n, dtype=np.int64)
    if split_column is None:
        raise CsmoeError(
            f"--split {split}: the manifest has no 'split' column (sample it with csmoe-data build-manifest --split ...)"
        )
    mask = np.isin(split_column.astype(str), np.array(names, dtype=str))
    if not mask.any():
        present = sorted({str(s) for s in split_column if s is not None})
        raise CsmoeError(
            f"--split {split}: no row has that split (the manifest has: {', '.join(present) or 'none'})"
        )
    return np.flatnonzero(mask).astype(np.int64)


def _resolve(values: list[str | None], root: Path) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = [resolve_imagery_path(v, root) for v in values]
    return out


def read_manifest_rows(path: str | Path, data_root: str | Path | None = None) -> ManifestRows:
    """Read ``patch_id``, the imagery paths (resolved) and ``split`` of a manifest.

    Args:
        path: a GeoParquet manifest written by ``csmoe-data build-manifest`` (any parquet file with
            the columns ``patch_id``, ``s1_path``, ``s2_path`` works).
        data_root: the folder relative imagery paths are relative to, for a manifest copied or
            moved away from its imagery (``None``: the manifest's folder); absolute paths and
            URLs are used as written.

    Raises:
        CsmoeError: when the file is missing or unreadable, has no rows, lacks a required column,
            or ``data_root`` is not a folder.
    """
    import pyarrow.parquet as pq

    path = check_manifest_file(path).resolve()
    root = imagery_root(path, data_root)
    schema = read_schema(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    if missing:
        raise CsmoeError(
            f"manifest {path.name} has no column(s) {', '.join(missing)}; build it from imagery footprints "
            "(e.g. csmoe-data build-manifest --footprints <BigEarthNet root>) so that rows name their imagery"
        )
    columns = [*REQUIRED_COLUMNS, *([SPLIT] if SPLIT in schema.names else [])]
    table = pq.read_table(path, columns=columns)
    if table.num_rows == 0:
        raise CsmoeError(f"manifest {path.name} has no rows")
    patch_id = np.array([str(v) for v in table.column(PATCH_ID).to_pylist()], dtype=object)
    split = None
    if SPLIT in columns:
        split = np.array(table.column(SPLIT).to_pylist(), dtype=object)
    return ManifestRows(
        path=path,
        patch_id=patch_id,
        s1_path=_resolve(table.column(S1_PATH).to_pylist(), root),
        s2_path=_resolve(table.column(S2_PATH).to_pylist(), root),
        split=split,
        root=root,
        data_root=root if data_root is not None else None,
    )


def read_manifest_labels(
    path: str | Path, extra: Sequence[str] = ()
) -> dict[str, list[list[str] | None]]:
    """Read the label list columns of a manifest (``labels``, ``labels19`` when present, and ``extra``).

    Args:
        path: the manifest.
        extra: further list-of-string columns to read; each must exist.

    Returns:
        ``{column: one list of labels (or None) per row, in file order}``; ``{}`` without label columns.

    Raises:
        CsmoeError: the file is missing or not Parquet, or a column in ``extra`` is missing or not
            a list column.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = check_manifest_file(path)
    schema = read_schema(path)
    wanted = [c for c in LABEL_COLUMNS if c in schema.names]
    for c in extra:
        if c not in schema.names:
            raise CsmoeError(f"label column {c!r} not in the manifest {path.name}")
        if c not in wanted:
            wanted.append(c)
    for c in wanted:
        t = schema.field(c).type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            raise CsmoeError(f"label column {c!r} is {t}, not a list of strings")
    if not wanted:
        return {}
    table = pq.read_table(path, columns=wanted)
    return {
        c: [None if v is None else [str(x) for x in v] for v in table.column(c).to_pylist()]
        for c in wanted
    }
