"""The footprint table every source produces, and the checks all sources share."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from csmoe_common import manifest as schema
from csmoe_data.errors import CsmoeDataError
from csmoe_data.geometry import (
    as_geometry_array,
    beyond_the_globe,
    drop_z,
    outside_crs_domain,
    repair_geometries,
    split_antimeridian,
    unwrap_longitudes,
)
from csmoe_data.labels import BEN19_LABELS, BEN43_LABELS, parse_labels, to_labels19

__all__ = ["RESERVED_COLUMNS", "Footprints", "finalize_table"]

#: columns a source sets itself; an attribute with one of these names is renamed ``<name>_src``
RESERVED_COLUMNS: tuple[str, ...] = (schema.PATCH_ID, schema.GEOMETRY, schema.CRS)

_KNOWN_BEN = {" ".join(n.lower().split()) for n in (*BEN43_LABELS, *BEN19_LABELS)}


@dataclasses.dataclass
class Footprints:
    """Patch footprints from one source, each in its own native CRS.

    Attributes:
        table: one row per footprint: ``patch_id`` (str, unique), ``geometry`` (valid 2-D shapely
            polygons in the row's native CRS), ``crs`` (``"EPSG:<code>"`` where the CRS has an
            EPSG code, else WKT), then the source's attributes (for BigEarthNet folders
            ``s2_path``, ``s1_path``, ``labels``, ``labels19``, ...).
        source: the source as given (path or ``sample:<name>``).
        repaired: number of invalid geometries repaired.
        dropped: number of rows dropped (no polygonal geometry left, or an unusable patch).
        notes: human-readable remarks about the load (what was repaired, renamed, skipped).
    """

    table: pd.DataFrame
    source: str
    repaired: int = 0
    dropped: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def crs_values(self) -> list[str]:
        """The distinct CRSs, in order of first appearance."""
        return list(dict.fromkeys(self.table["crs"].tolist()))


def _ids_as_str(values: pd.Series, column: str) -> pd.Series:
    """Ids as strings; integral floats (shapefiles store ints as reals) lose their ``.0``."""
    if values.isna().any():
        n = int(values.isna().sum())
        raise CsmoeDataError(
            f"id column {column!r} has {n} empty value(s); every footprint needs an id"
        )
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype=float)
        if np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            return pd.Series([str(int(v)) for v in arr], index=values.index, dtype=object)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise CsmoeDataError(f"id column {column!r} holds booleans, not ids")
    strings = [str(v) for v in values.tolist()]
    # blank: nothing but whitespace (what ``strip()`` would empty), found without making the
    # stripped copies
    blank = sum(1 for v in strings if not v or v.isspace())
    if blank:
        raise CsmoeDataError(
            f"id column {column!r} has {blank} blank value(s); every footprint needs an id"
        )
    return pd.Series(strings, index=values.index, dtype=object)


def check_unique_ids(ids: pd.Series, column: str) -> None:
    """Raise when ids repeat, naming a few of them.

    Raises:
        CsmoeDataError: on duplicate ids.
    """
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(dup.tolist()))[:3])
        n = int(ids.duplicated().sum())
        raise CsmoeDataError(
            f"id column {column!r} has {n} duplicate id(s), e.g. {examples}; ids must be unique"
        )


def add_labels(table: pd.DataFrame, labels_column: str, notes: list[str]) -> pd.DataFrame:
    """Carry ``labels_column`` into ``labels`` (list of str) and, for BigEarthNet names, ``labels19``.

    Raises:
        CsmoeDataError: if the column is missing.
    """
    if labels_column not in table.columns:
        raise CsmoeDataError(
            f"labels column {labels_column!r} not found; columns: {', '.join(map(str, table.columns))}"
        )
    parsed = [parse_labels(v) for v in table[labels_column].tolist()]
    table = table.copy()
    if labels_column != "labels" and "labels" in table.columns:
        table = table.rename(columns={"labels": "labels_src"})
        notes.append("attribute 'labels' renamed 'labels_src' (labels come from --labels-column)")
    table["labels"] = pd.Series(parsed, index=table.index, dtype=object)
    names = {" ".join(n.lower().split()) for row in parsed for n in row}
    if names and names <= _KNOWN_BEN and "labels19" not in table.columns:
        table["labels19"] = pd.Series(
            [to_labels19(r) for r in parsed], index=table.index, dtype=object
        )
        notes.append("labels are BigEarthNet CORINE names: 19-class 'labels19' added")
    return table


def finalize_table(
    ids: pd.Series,
    geoms: Iterable[shapely.Geometry | None],
    crs: str | Sequence[str],
    attrs: pd.DataFrame | None,
    id_column: str,
    notes: list[str],
    repair: bool = True,
    lonlat: bool = False,
    allow_empty: bool = False,
) -> tuple[pd.DataFrame, int, int]:
    """Assemble and check a footprint table.

    Args:
        ids: raw id values (converted to str).
        geoms: shapely geometries, one per id.
        crs: one CRS string for all rows, or a sequence with one per row.
        attrs: pass-through attributes (same index as ``ids``) or None.
        id_column: the id column's name in the source (for messages).
        notes: list that receives remarks.
        repair: run :func:`repair_geometries` (sources whose geometries are built valid skip it).
        lonlat: the geometries are geographic: unwrap footprints written across the antimeridian
            (longitudes > 180 or "the long way round") and split them into parts within
            ``[-180, 180]``.
        allow_empty: return an empty table instead of raising when nothing is left (one
            batch of a streamed source; the build checks the total).

    Returns:
        ``(table, repaired, dropped)``.

    Raises:
        CsmoeDataError: on missing, blank or duplicate ids, or when nothing is left.
    """
    ids = _ids_as_str(ids.reset_index(drop=True), id_column)
    check_unique_ids(ids, id_column)
    geom_arr = as_geometry_array(geoms)
    if len(geom_arr) != len(ids):
        raise ValueError(f"{len(geom_arr)} geometries for {len(ids)} ids")
    repaired = 0
    if lonlat:
        geom_arr = unwrap_longitudes(drop_z(geom_arr))
    if repair:
        geom_arr, repaired = repair_geometries(geom_arr)
        if repaired:
            notes.append(f"{repaired} invalid geometr{'y' if repaired == 1 else 'ies'} repaired")
    if lonlat:
        geom_arr = split_antimeridian(geom_arr)
    keep = np.ones(len(geom_arr), dtype=bool)

    def drop(mask: NDArray[np.bool_], what: str) -> None:
        """Drop the rows of ``mask`` still kept, with a note naming a few of them."""
        mask = keep & mask
        if mask.any():
            lost = ", ".join(repr(i) for i in ids[mask].tolist()[:3])
            notes.append(f"{int(mask.sum())} footprint(s) {what} dropped (e.g. {lost})")
            keep[mask] = False

    drop(shapely.is_missing(geom_arr), "without a polygonal geometry")
    if lonlat:
        # a latitude beyond +-90 is no place on Earth (often swapped lon/lat columns); such a
        # footprint would be written as is into an EPSG:4326 manifest
        # (longitudes are within -180..180 after the antimeridian split)
        drop(beyond_the_globe(geom_arr), "with latitudes beyond +-90 degrees")
    if not (lonlat and isinstance(crs, str)):  # one geographic CRS: checked just above
        crs_list = [crs] * len(geom_arr) if isinstance(crs, str) else list(crs)
        drop(outside_crs_domain(geom_arr, crs_list), "outside the valid coordinates of their CRS")
    dropped = int((~keep).sum())
    table = pd.DataFrame({"patch_id": ids.astype(str)})
    table["geometry"] = pd.Series(geom_arr, dtype=object)
    if isinstance(crs, str):
        table["crs"] = crs
    else:
        table["crs"] = pd.Series(list(crs), dtype=object).astype(str)
    if attrs is not None and len(attrs.columns):
        attrs = attrs.reset_index(drop=True)
        renames = {c: f"{c}_src" for c in attrs.columns if c in RESERVED_COLUMNS}
        if renames:
            attrs = attrs.rename(columns=renames)
            notes.append(
                "attribute(s) "
                + ", ".join(f"{k!r} -> {v!r}" for k, v in renames.items())
                + " renamed"
            )
        table = pd.concat([table, attrs], axis=1)
    table = table.loc[keep].reset_index(drop=True)
    if not len(table) and not allow_empty:
        raise CsmoeDataError("no usable footprint left (every geometry was empty or not polygonal)")
    return table, repaired, dropped
