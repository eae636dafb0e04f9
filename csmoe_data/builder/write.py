"""Stage 4 of a build: write the manifest row group by row group (bounded memory).

:class:`ManifestWriter` takes the rows of a build batch by batch and writes them through one
``pyarrow.parquet.ParquetWriter`` into a temporary file beside the target, renamed into place
on success (nothing half-written). Row groups hold :data:`ROW_GROUP_ROWS` rows whatever the
batches were (rows are buffered until a group is full), so the file's bytes do not depend on
the batch or chunk size. The schema metadata (GeoParquet ``geo`` with the bounding box and
geometry types of all rows, pandas' entry of the first batch, and ``csmoe``) is known only at
the end and is written into the footer when the writer closes; the Arrow schema is therefore not
stored separately (``store_schema=False``), so readers take the metadata from the footer.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from csmoe_common.manifest import GEOMETRY
from csmoe_data.errors import CsmoeDataError

#: rows per Parquet row group of a streamed manifest
ROW_GROUP_ROWS = 65_536
#: GeoParquet ``geometry_types`` names of the geometry type codes (shapely's type ids, + 8 for
#: Z), as geopandas writes them (a LinearRing is a LineString)
_TYPE_NAMES = (
    "Point",
    "LineString",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
GEOMETRY_TYPE_NAMES = [*_TYPE_NAMES, *(f"{name} Z" for name in _TYPE_NAMES)]


class ManifestWriter:
    """Write a manifest batch by batch; metadata at :meth:`close`.

    Use as a context manager; call :meth:`write` per batch, then :meth:`close` with the
    ``csmoe`` metadata. Leaving the block without :meth:`close` (an error) removes the
    temporary file and leaves ``path`` untouched.

    Args:
        path: the target ``.parquet`` file.
        overwrite: replace an existing file.
        row_group_rows: rows per row group (default :data:`ROW_GROUP_ROWS`).
    """

    def __init__(
        self, path: str | Path, overwrite: bool = False, row_group_rows: int | None = None
    ):
        self.path = Path(path)
        self.overwrite = overwrite
        self.row_group_rows = int(row_group_rows or ROW_GROUP_ROWS)
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._meta: dict[bytes, bytes] = {}
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._bbox: list[float] | None = None
        self._types: set[str] = set()
        self._closed = False

    def __enter__(self) -> ManifestWriter:
        from csmoe_common.atomic import atomic_output

        self._tmp = Path(
            self._stack.enter_context(atomic_output(self.path, overwrite=self.overwrite))
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._closed:
            return
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if exc_type is None:  # left without close(): the temporary file is removed, not published
            exc = CsmoeDataError(f"{self.path} was not closed; nothing written")
            exc_type = CsmoeDataError
        self._stack.__exit__(exc_type, exc, tb)

    def write(self, gdf: gpd.GeoDataFrame) -> None:
        """Append the rows of one batch (any number, 0 included).

        Raises:
            CsmoeDataError: a column whose type differs from the first batch's, or an I/O error.
        """
        from csmoe_data.manifest import manifest_table

        if len(gdf) == 0 and self._schema is not None:
            return
        table = manifest_table(gdf, {})
        meta = table.schema.metadata or {}
        geo = json.loads(meta[b"geo"])
        column = geo["columns"][geo["primary_column"]]
        if len(gdf):
            self._types.update(column.get("geometry_types", []))
            box = column.get("bbox")
            if box and all(v == v for v in box):  # NaN bbox: no non-empty geometry
                self._extend_bbox(box)
        if self._schema is None:
            self._meta = {k: v for k, v in meta.items() if k != b"csmoe"}
            self._schema = table.schema.remove_metadata()
            try:
                self._writer = pq.ParquetWriter(
                    self._tmp, self._schema, compression="zstd", store_schema=False
                )
            except OSError as exc:
                raise CsmoeDataError(f"cannot write {self.path}: {exc}") from exc
        self._append(table)

    def write_encoded(
        self,
        columns: pd.DataFrame,
        wkb: NDArray[np.object_],
        bounds: NDArray[np.float64],
        type_codes: NDArray[np.int8],
    ) -> None:
        """:meth:`write` for rows whose EPSG:4326 geometry is already WKB, with its boxes.

        The same bytes as :meth:`write` of the GeoDataFrame of ``columns`` and the decoded
        geometry (tested), without decoding and encoding every geometry once more in this
        process: the first batch goes through :meth:`write` (it sets the file's schema and
        metadata), later ones straight into Arrow (the non-geometry columns as geopandas
        converts them, the WKB as the geometry column, ``bounds`` as the covering ``bbox``).

        Args:
            columns: the rows' other columns (:func:`csmoe_data.builder.assemble.manifest_columns`).
            wkb: each row's geometry as 2-D WKB (None where missing).
            bounds: ``(n, 4)`` box of each geometry (NaN where missing or empty).
            type_codes: each geometry's type code
                (:func:`csmoe_data.builder.describe.geometry_type_codes`).

        Raises:
            CsmoeDataError: see :meth:`write`.
        """
        if self._schema is None:
            self.write(
                gpd.GeoDataFrame(
                    columns,
                    geometry=gpd.GeoSeries.from_wkb(wkb, crs="EPSG:4326"),
                    crs="EPSG:4326",
                )
            )
            return
        if len(columns) == 0:
            return
        from csmoe_common.manifest import BBOX

        # as csmoe_data.manifest.manifest_table and geopandas' Arrow conversion do it
        frame = columns.drop(columns=BBOX) if BBOX in columns.columns else columns
        frame = pd.DataFrame(frame.reset_index(drop=True).copy(deep=False))
        frame[GEOMETRY] = None  # a null column, replaced by the WKB below
        table = pa.Table.from_pandas(frame, preserve_index=False)
        at = table.schema.get_field_index(GEOMETRY)
        table = table.set_column(
            at, self._schema.field(GEOMETRY), pa.array(np.asarray(wkb), pa.binary())
        )
        box = pa.StructArray.from_arrays(
            [pd.Series(bounds[:, i]) for i in range(4)], names=["xmin", "ymin", "xmax", "ymax"]
        )
        table = table.append_column(BBOX, box)
        present = np.unique(type_codes[type_codes >= 0]).tolist()
        self._types.update(GEOMETRY_TYPE_NAMES[c] for c in present)
        with warnings.catch_warnings():  # all-NaN columns: no geometry in the batch
            warnings.simplefilter("ignore", RuntimeWarning)
            total = [
                float(np.nanmin(bounds[:, 0])),
                float(np.nanmin(bounds[:, 1])),
                float(np.nanmax(bounds[:, 2])),
                float(np.nanmax(bounds[:, 3])),
            ]
        if np.isfinite(total).all():
            self._extend_bbox(total)
        self._append(table)

    def _extend_bbox(self, box: list[float]) -> None:
        if self._bbox is None:
            self._bbox = list(box)
        else:
            self._bbox = [
                min(self._bbox[0], box[0]),
                min(self._bbox[1], box[1]),
                max(self._bbox[2], box[2]),
                max(self._bbox[3], box[3]),
            ]

    def _append(self, table: pa.Table) -> None:
        table = self._conform(table)
        self._buffer.append(table)
        self._buffered += table.num_rows
        self.rows += table.num_rows
        while self._buffered >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _conform(self, table: pa.Table) -> pa.Table:
        assert self._schema is not None
        if table.schema.remove_metadata().equals(self._schema):
            return table.replace_schema_metadata(None)
        if table.schema.names != self._schema.names:
            raise CsmoeDataError(
                f"the columns of the footprints changed between batches: {table.schema.names} "
                f"vs {self._schema.names}"
            )
        try:
            return table.replace_schema_metadata(None).cast(self._schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as exc:
            raise CsmoeDataError(
                f"a column of the footprints changes type between batches ({exc}); "
                "give every row the same attribute types"
            ) from exc

    def _flush(self, rows: int | None) -> None:
        """Write ``rows`` buffered rows (None: all) as one row group."""
        if not self._buffer or self._writer is None:
            return
        table = pa.concat_tables(self._buffer)
        take = table.num_rows if rows is None else min(rows, table.num_rows)
        try:
            self._writer.write_table(table.slice(0, take), row_group_size=max(take, 1))
        except OSError as exc:
            raise CsmoeDataError(f"cannot write {self.path}: {exc}") from exc
        rest = table.slice(take)
        self._buffer = [rest] if rest.num_rows else []
        self._buffered = rest.num_rows

    def close(self, metadata: dict[str, Any]) -> Path:
        """Write the remaining rows and the footer (``geo``, pandas and ``csmoe`` metadata).

        Raises:
            CsmoeDataError: nothing was written, metadata is not JSON, or an I/O error.
        """
        from csmoe_data.manifest import _to_json

        if self._writer is None:
            raise CsmoeDataError(f"no rows to write into {self.path}")
        self._flush(None)
        geo = json.loads(self._meta[b"geo"])
        column = geo["columns"][geo["primary_column"]]
        column["geometry_types"] = sorted(self._types)
        if self._bbox is not None:
            column["bbox"] = self._bbox
        else:
            column.pop("bbox", None)
        meta = dict(self._meta)
        meta[b"geo"] = json.dumps(geo).encode("utf-8")
        meta[b"csmoe"] = _to_json(metadata)
        try:
            self._writer.add_key_value_metadata({k.decode(): v.decode() for k, v in meta.items()})
            self._writer.close()
        except OSError as exc:
            raise CsmoeDataError(f"cannot write {self.path}: {exc}") from exc
        self._closed = True
        self._stack.close()  # renames the temporary file into place
        return self.path
