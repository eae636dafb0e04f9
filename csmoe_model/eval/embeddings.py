"""The embeddings Parquet: one row per manifest row, written by ``csmoe embed``, read by ``csmoe eval``.

Columns: ``patch_id`` (string), ``split`` (string, null where the manifest had none), the manifest's
label columns (``labels``, ``labels19``, or any other ``list<string>`` column asked for), and pooled
encoder embeddings ``emb_s1`` and ``emb_s2`` as ``fixed_size_list<float32>[D]`` (null for a row whose
sensor could not be embedded). The file metadata key ``csmoe_embeddings`` (JSON) records the model,
its source (run folder or weights file), the manifest and the tool version.

Read with pyarrow only (no geopandas): ``read_embeddings(path)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from csmoe_common.atomic import atomic_output
from csmoe_model.errors import CsmoeError
from csmoe_model.eval.metrics import multi_hot

__all__ = [
    "METADATA_KEY",
    "SENSORS",
    "EmbeddingSet",
    "read_embeddings",
    "write_embeddings",
]

METADATA_KEY = "csmoe_embeddings"
SENSORS: tuple[str, ...] = ("s1", "s2")
#: label columns tried in this order when none is named
DEFAULT_LABEL_COLUMNS: tuple[str, ...] = ("labels19", "labels")


@dataclass
class EmbeddingSet:
    """Embeddings of one manifest, in memory.

    Attributes:
        patch_id: (N,) object array of ids.
        split: (N,) object array of split names (``None`` where unknown).
        labels: label column name -> one list of label strings per row (``None`` = unknown).
        emb: sensor (``"s1"``, ``"s2"``) -> (N, D) float32 array; rows without an embedding are NaN.
        metadata: the decoded ``csmoe_embeddings`` metadata.
    """

    patch_id: np.ndarray
    split: np.ndarray
    labels: dict[str, list[list[str] | None]] = field(default_factory=dict)
    emb: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.patch_id)

    def has_embedding(self, sensor: str) -> np.ndarray:
        """Boolean mask of rows with a (finite) embedding for ``sensor``; all false if absent."""
        if sensor not in self.emb:
            return np.zeros(len(self), dtype=bool)
        return np.isfinite(self.emb[sensor]).all(axis=1)

    def split_mask(self, split: str | None) -> np.ndarray:
        """Rows of ``split`` (all rows for ``None``).

        Raises:
            CsmoeError: if no row has that split.
        """
        if split is None:
            return np.ones(len(self), dtype=bool)
        mask = np.array([s == split for s in self.split], dtype=bool)
        if not mask.any():
            present = sorted({str(s) for s in self.split if s is not None})
            raise CsmoeError(
                f"no rows with split {split!r}; splits present: {', '.join(present) or 'none'}"
            )
        return mask

    def label_column(self, name: str | None) -> str:
        """Resolve a label column name (``None``: ``labels19`` if present, else ``labels``).

        Raises:
            CsmoeError: if the column is missing.
        """
        if name is None:
            for cand in DEFAULT_LABEL_COLUMNS:
                if cand in self.labels:
                    return cand
            raise CsmoeError(
                "the embeddings carry no label column (labels19 or labels); "
                "build the manifest with labels, or pass --labels-column"
            )
        if name not in self.labels:
            have = ", ".join(self.labels) or "none"
            raise CsmoeError(f"label column {name!r} not in the embeddings (label columns: {have})")
        return name

    def label_matrix(
        self, column: str | None = None, classes: Sequence[str] | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """Multi-hot (N, C) labels of ``column`` and the class order (sorted union by default).

        Raises:
            CsmoeError: if the column is missing.
        """
        return multi_hot(self.labels[self.label_column(column)], classes)


def _fixed_size_list(values: np.ndarray) -> pa.FixedSizeListArray:
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {values.shape}")
    flat = pa.array(values.reshape(-1), type=pa.float32())
    arr = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
    missing = ~np.isfinite(values).all(axis=1)
    if missing.any():  # rows that could not be embedded are null, not NaN vectors
        arr = pa.FixedSizeListArray.from_arrays(
            flat, values.shape[1], mask=pa.array(missing, type=pa.bool_())
        )
    return arr


def write_embeddings(
    path: str | Path,
    patch_id: Sequence[str],
    split: Sequence[str | None],
    emb: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence[Sequence[str] | None]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an embeddings Parquet atomically (zstd).

    Args:
        path: output file.
        patch_id: one id per row.
        split: one split name per row (``None`` allowed).
        emb: sensor -> (N, D) array; rows with NaN become null.
        labels: label column -> one list of strings per row.
        metadata: stored as JSON under the ``csmoe_embeddings`` key.
        overwrite: replace an existing file.

    Returns:
        ``path``.

    Raises:
        CsmoeError: if the output exists without ``overwrite``; ValueError on inconsistent lengths.
    """
    n = len(patch_id)
    cols: dict[str, pa.Array] = {
        "patch_id": pa.array([str(x) for x in patch_id], type=pa.string()),
        "split": pa.array([None if s is None else str(s) for s in split], type=pa.string()),
    }
    for name, lists in (labels or {}).items():
        cols[name] = pa.array(
            [None if v is None else [str(x) for x in v] for v in lists], type=pa.list_(pa.string())
        )
    for sensor, values in emb.items():
        cols[f"emb_{sensor}"] = _fixed_size_list(values)
    for name, col in cols.items():
        if len(col) != n:
            raise ValueError(f"column {name} has {len(col)} rows, expected {n}")
    table = pa.table(cols)
    meta = {"sensors": {s: int(np.shape(v)[1]) for s, v in emb.items()}, **(metadata or {})}
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    with atomic_output(path, overwrite) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def _embedding_array(col: pa.ChunkedArray, name: str) -> np.ndarray:
    arr = col.combine_chunks()
    if not (pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type)):
        raise CsmoeError(f"column {name} is {arr.type}, not a list of floats")
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        dim = arr.type.list_size
    else:  # plain lists are accepted when all have the same length
        lengths = {len(v) for v in arr.to_pylist() if v is not None}
        if len(lengths) > 1:
            raise CsmoeError(
                f"column {name} holds embeddings of different lengths {sorted(lengths)}"
            )
        dim = lengths.pop() if lengths else 0
    out = np.full((n, dim), np.nan, dtype=np.float32)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    if valid.any():
        # flatten() drops null rows' slots, so it lines up with the valid rows
        flat = arr.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False)
        out[valid] = np.asarray(flat, dtype=np.float32).reshape(-1, dim)
    return out


def read_embeddings(path: str | Path, label_columns: Sequence[str] | None = None) -> EmbeddingSet:
    """Read an embeddings Parquet written by :func:`write_embeddings` (or any file of that layout).

    Args:
        path: the Parquet file.
        label_columns: label columns to read; by default every ``list<string>`` column.

    Returns:
        The :class:`EmbeddingSet`.

    Raises:
        CsmoeError: if the file is missing or unreadable, lacks ``patch_id`` or any ``emb_*`` column,
            has duplicate ids, or a named label column is missing.
    """
    path = Path(path)
    if not path.exists():
        raise CsmoeError(f"embeddings file not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise CsmoeError(f"cannot read {path} as Parquet: {exc}") from exc
    names = table.column_names
    if "patch_id" not in names:
        raise CsmoeError(f"{path} has no patch_id column")
    emb_cols = [c for c in names if c.startswith("emb_")]
    if not emb_cols:
        raise CsmoeError(f"{path} has no embedding columns (emb_s1, emb_s2)")
    patch_id = np.array([str(x) for x in table.column("patch_id").to_pylist()], dtype=object)
    if len(set(patch_id)) != len(patch_id):
        raise CsmoeError(f"{path} has duplicate patch_id values")
    if "split" in names:
        split = np.array(table.column("split").to_pylist(), dtype=object)
    else:
        split = np.full(len(patch_id), None, dtype=object)

    if label_columns is None:
        label_columns = [
            f.name
            for f in table.schema
            if (pa.types.is_list(f.type) or pa.types.is_large_list(f.type))
            and (
                pa.types.is_string(f.type.value_type) or pa.types.is_large_string(f.type.value_type)
            )
        ]
    labels: dict[str, list[list[str] | None]] = {}
    for name in label_columns:
        if name not in names:
            raise CsmoeError(f"label column {name!r} not in {path}")
        labels[name] = table.column(name).to_pylist()

    emb = {c[len("emb_") :]: _embedding_array(table.column(c), c) for c in emb_cols}
    raw = (table.schema.metadata or {}).get(METADATA_KEY.encode())
    metadata = json.loads(raw) if raw else {}
    return EmbeddingSet(patch_id=patch_id, split=split, labels=labels, emb=emb, metadata=metadata)
