"""Footprints in batches: a GeoParquet source row group by row group, any other source sliced.

A GeoParquet footprint file is read :data:`READ_BATCH_ROWS` rows at a time
(``pyarrow.parquet.ParquetFile.iter_batches``), so a build holds one batch of footprints, never
the whole file. Other sources (GeoPackage, GeoJSON, folders of rasters, BigEarthNet) are loaded
whole by :func:`csmoe_data.footprints.load_footprints` and then sliced into the same batches.

Per-batch checks (ids present and unique, geometries repaired) run on each batch; ids unique
across batches are checked with a 64-bit hash per id (8 bytes per footprint, one buffer; see
:class:`BatchTally`), and the notes of all batches are merged so that they do not depend on the batch boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from csmoe_common.manifest import BBOX
from csmoe_data.builder.options import BuildInputs
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints

#: footprints read, described and written per batch (bounds the memory of a build)
READ_BATCH_ROWS = 65_536

if TYPE_CHECKING:
    import pyarrow as pa

_COUNTED = re.compile(r"^(\d+) (.*?)(?: \(e\.g\. (.*)\))?$")


@dataclass
class FootprintBatches:
    """A footprint source opened for batch reading.

    Attributes:
        total: rows in the source (before unusable footprints are dropped).
        path: the source resolved to a path.
        batches: the batches, in source order.
    """

    total: int
    path: Path
    batches: Iterator[Footprints]


def _decoded_geo_metadata(meta: dict[bytes, bytes]) -> dict[str, Any]:
    """The file's ``geo`` metadata with each column's CRS parsed once (a ``pyproj.CRS``).

    geopandas parses the CRS (PROJJSON) of the metadata again for every batch it converts
    (about 40 ms each); given a parsed CRS it takes it as it is. The parsing is geopandas'
    own: ids of datum-ensemble members removed, a missing CRS read as OGC:CRS84.

    Raises:
        ValueError: missing or malformed ``geo`` metadata.
        CRSError: a CRS that PROJ does not understand.
    """
    import pyproj
    from geopandas.io.arrow import (
        _remove_id_from_member_of_ensembles,
        _validate_and_decode_metadata,
    )

    geo: dict[str, Any] = _validate_and_decode_metadata(meta)
    for column in geo["columns"].values():
        crs = column.get("crs", "OGC:CRS84")  # GeoParquet: no "crs" key means OGC:CRS84
        if isinstance(crs, dict):
            _remove_id_from_member_of_ensembles(crs)
        column["crs"] = None if crs is None else pyproj.CRS.from_user_input(crs)
    return geo


def _has_covering_bbox(table: pa.Table) -> bool:
    """Whether ``table`` has a GeoParquet 1.1 ``bbox`` covering column with a value.

    The same test as :func:`csmoe_data.footprints.vector.load_vector` makes on the rows as
    pandas objects (a ``bbox`` column whose first non-null value has the four fields).
    """
    import pyarrow as pa

    from csmoe_data.footprints.vector import COVERING_BBOX_FIELDS

    if BBOX not in table.column_names:
        return False
    column = table.column(BBOX)
    kind = column.type
    return (
        pa.types.is_struct(kind)
        and {kind.field(i).name for i in range(kind.num_fields)} >= COVERING_BBOX_FIELDS
        and column.null_count < len(column)
    )


def _geoparquet_batches(
    path: Path, label: str, inputs: BuildInputs, batch_rows: int
) -> FootprintBatches | None:
    """Row-group batches of a GeoParquet file, or None when ``path`` is not GeoParquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from geopandas.io.arrow import _arrow_to_geopandas
    from pyproj.exceptions import CRSError

    from csmoe_data.footprints.vector import vector_footprints

    try:
        pf = pq.ParquetFile(path)
        meta = pf.schema_arrow.metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise CsmoeDataError(f"cannot read footprint file {path}: {exc}") from exc
    if b"geo" not in meta:
        return None  # the whole-file reader gives the one-line error
    total = int(pf.metadata.num_rows)
    if total == 0:
        raise CsmoeDataError(f"footprint file {path} is empty (no features)")

    try:
        geo = _decoded_geo_metadata(meta)
    except (ValueError, CRSError) as exc:
        raise CsmoeDataError(f"cannot read footprint file {path}: {exc}") from exc

    def batches() -> Iterator[Footprints]:
        try:
            for batch in pf.iter_batches(batch_size=batch_rows):
                table = pa.Table.from_batches([batch]).replace_schema_metadata(meta)
                covering = _has_covering_bbox(table)
                if covering:
                    table = table.drop_columns([BBOX])
                gdf = _arrow_to_geopandas(table, geo_metadata=geo)  # read only there
                yield vector_footprints(
                    gdf,
                    path,
                    label,
                    inputs.id_column,
                    inputs.labels_column,
                    allow_empty=True,
                    covering_dropped=covering,
                )
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise CsmoeDataError(f"cannot read footprint file {path}: {exc}") from exc

    return FootprintBatches(total, path, batches())


def footprint_batches(inputs: BuildInputs, batch_rows: int = READ_BATCH_ROWS) -> FootprintBatches:
    """Open ``inputs.footprints`` for batch reading (see the module docstring).

    Raises:
        CsmoeDataError: a missing, unreadable or empty source (more errors come with the batches:
            missing id column, null ids, no CRS).
    """
    from csmoe_data.builder.load import load_all_footprints
    from csmoe_data.footprints.majortom import is_majortom_metadata
    from csmoe_data.footprints.vector import PARQUET_SUFFIXES
    from csmoe_data.samples import resolve_path

    path = resolve_path(inputs.footprints)
    # options that need every row (dissolving ids) or a layer/CRS choice load the file whole
    simple = (
        inputs.layer is None
        and inputs.crs is None
        and inputs.point_size is None
        and not inputs.dissolve_ids
    )
    if (
        simple
        and path.is_file()
        and path.suffix.lower() in PARQUET_SUFFIXES
        and not is_majortom_metadata(path)  # pairing and tiling need every product's row
    ):
        opened = _geoparquet_batches(path, str(inputs.footprints), inputs, batch_rows)
        if opened is not None:
            return opened
    fp = load_all_footprints(inputs)

    def slices() -> Iterator[Footprints]:
        table = fp.table
        for s in range(0, len(table), batch_rows):
            first = s == 0  # the load's tallies belong to the source, once
            yield Footprints(
                table=table.iloc[s : s + batch_rows].reset_index(drop=True),
                source=fp.source,
                repaired=fp.repaired if first else 0,
                dropped=fp.dropped if first else 0,
                notes=list(fp.notes) if first else [],
            )

    return FootprintBatches(len(fp.table) + fp.dropped, path, slices())


def merge_notes(batches: list[list[str]]) -> list[str]:
    """The notes of all batches as one list: counted notes summed, the others once each.

    ``"3 invalid geometries repaired"`` from one batch and ``"2 invalid geometries repaired"``
    from another become ``"5 invalid geometries repaired"``; examples (``(e.g. ...)``) of the
    first batch that gave any are kept.
    """
    order: list[str] = []
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    for notes in batches:
        for note in notes:
            m = _COUNTED.match(note)
            # "1 invalid geometry repaired" and "3 invalid geometries repaired" are one note
            key = re.sub(r"^invalid geometry\b", "invalid geometries", m.group(2)) if m else note
            if key not in counts:
                order.append(key)
                counts[key] = 0
            if m:
                counts[key] += int(m.group(1))
                if m.group(3) and key not in examples:
                    examples[key] = m.group(3)
            else:
                counts[key] = -1  # an uncounted note
    out = []
    for key in order:
        if counts[key] < 0:
            out.append(key)
        else:
            text = f"{counts[key]} {key}"
            if counts[key] == 1:
                text = re.sub(r"^1 invalid geometries\b", "1 invalid geometry", text)
            if key in examples:
                text += f" (e.g. {examples[key]})"
            out.append(text)
    return out


@dataclass
class BatchTally:
    """What the batches of a build add up to (rows, CRSs, repairs, notes, id hashes).

    The ids of every batch are kept as 64-bit hashes in one buffer (8 bytes per footprint:
    80 MB at 10 M footprints), sized once by :meth:`reserve` when the source's row count is
    known, and sorted in place by :meth:`check_unique_ids`, so that the check never holds a
    second copy. Two distinct ids share a hash with a probability of about n^2 / 2^65
    (3e-6 at 10 M footprints); such a collision would be reported as a duplicate.
    """

    rows: int = 0
    repaired: int = 0
    dropped: int = 0
    crs_values: dict[str, None] = field(default_factory=dict)
    notes: list[list[str]] = field(default_factory=list)
    batches: int = 0
    _hashes: NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    _n_hashes: int = 0

    def reserve(self, rows: int) -> None:
        """Room for the id hashes of ``rows`` footprints (grown on demand otherwise)."""
        if rows > len(self._hashes):
            grown = np.empty(rows, dtype=np.uint64)
            grown[: self._n_hashes] = self._hashes[: self._n_hashes]
            self._hashes = grown

    def add(self, fp: Footprints) -> None:
        """Count one batch of footprints."""
        self.rows += len(fp.table)
        self.repaired += fp.repaired
        self.dropped += fp.dropped
        self.notes.append(list(fp.notes))
        if len(fp.table):
            self.batches += 1
            for crs in pd.unique(fp.table["crs"].astype(str)):
                self.crs_values.setdefault(str(crs), None)
            ids = fp.table["patch_id"].astype(str).to_numpy(dtype=object)
            hashes = pd.util.hash_array(ids, categorize=False)
            end = self._n_hashes + len(hashes)
            if end > len(self._hashes):
                self.reserve(max(end, 2 * len(self._hashes)))
            self._hashes[self._n_hashes : end] = hashes
            self._n_hashes = end

    def merged_notes(self) -> list[str]:
        """The merged notes of every batch (see :func:`merge_notes`)."""
        return merge_notes(self.notes)

    def check_unique_ids(self, id_column: str) -> None:
        """Ids unique across batches (each batch checked its own already); call it once.

        Raises:
            CsmoeDataError: on ids repeated across batches.
        """
        if self.batches < 2:
            return
        h = self._hashes[: self._n_hashes]
        h.sort()  # in place: no second copy of the hashes
        dup = int((h[1:] == h[:-1]).sum())
        if dup:
            raise CsmoeDataError(
                f"id column {id_column!r} has {dup} duplicate id(s) in different parts of the "
                "file; ids must be unique"
            )
