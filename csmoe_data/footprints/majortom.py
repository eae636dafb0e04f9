"""Footprints from Major TOM metadata: one row per product (or per tile of it), paired S1/S2.

Major TOM (ESA-PhiLab/Major-TOM; Francis & Czerkawski 2024) publishes each dataset (Core-S2L2A,
Core-S1RTC, ...) as a ``metadata.parquet`` with one row per product and ``images/part_*.parquet``
shards holding the bands (see :mod:`csmoe_model.data.sources.majortom` for the imagery side).
Columns read from the metadata (``data_manifests/README.md``):

* ``grid_cell`` (``123U_456R``) and ``product_id``: required; a product is a cell's acquisition;
* ``timestamp`` (or ``product_datetime``): the acquisition time, used for pairing;
* ``geometry`` (WKB, lon/lat) when present: the row's footprint; otherwise the grid cell's polygon
  (:func:`csmoe_data.footprints.majortom_grid.cell_polygon`);
* ``parquet_url`` / ``parquet_row``: the shard holding the product (only the file name of the URL
  is used, looked up under ``<imagery root>/images/`` and ``<imagery root>/``);
* ``cloud_cover``, ``nodata``, ``centre_lat``, ``centre_lon``: passed through.

Imagery is looked up under the imagery root (default: the folder of each metadata file), first as
the unpacked tree ``<root>/<row>/<grid_cell>/<product_id>/`` (Major TOM's ``filter_download``
layout, ``row`` = the part of the cell id before ``_``), then in the shard; the path written is
the folder, or ``<shard>#row=R`` with ``R`` the product's row in that shard (found by its
``product_id``, so a shard rewritten with other row groups still resolves).

**Tiles.** A Core product is ~1068 x 1068 px at 10 m, far larger than a training patch. With
``tile_size`` (e.g. 120) each product with reachable imagery becomes ``floor(W / tile)^2`` rows,
one per tile, centred in the image with offsets on the 60 m lattice (multiples of 6 px, so every
Sentinel-2 band is cut on its own pixel grid); each tile's footprint is its square in the image's
UTM CRS, read from the reference band's GeoTIFF header (B02 or vv), and its path carries
``#window=col,row,size``. Products without reachable imagery keep one untiled row with the
cell's footprint (and are counted in the notes).

**Pairing.** With ``pair_with`` (the other sensor's metadata), each row gets the other sensor's
product of the same grid cell with the nearest acquisition time (``pair_max_days``: only within
that many days); tiles of a paired S1 product are the same ground squares, found through the
S1 image's own header. Unpaired rows keep one sensor (``s1_path`` or ``s2_path`` null) unless
``paired_only`` drops them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from csmoe_common.progress import progress_bar
from csmoe_common.store_path import StorePath
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints, finalize_table
from csmoe_data.footprints.majortom_grid import cell_polygon
from csmoe_data.footprints.options import MajorTomOptions
from csmoe_data.geometry import crs_string

__all__ = [
    "MajorTomOptions",
    "is_majortom_metadata",
    "load_majortom",
    "read_majortom_metadata",
    "tile_windows",
]

REQUIRED = ("grid_cell", "product_id")
_PASS_THROUGH = ("cloud_cover", "nodata", "centre_lat", "centre_lon")
_TIME_COLUMNS = ("timestamp", "product_datetime")
#: reference band of each sensor: its grid is the product's 10 m grid
_REFERENCE = {"s2": ("B02", "b02"), "s1": ("vv", "VV")}
#: tile offsets are multiples of this (the 60 m bands' pixel in 10 m pixels)
LATTICE_PX = 6


def _metadata_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.glob("*.parquet") if not p.name.startswith("."))
    return [path]


def is_majortom_metadata(path: Path) -> bool:
    """Whether ``path`` is a Parquet file (or a folder of them) with ``grid_cell`` and ``product_id``."""
    import pyarrow.parquet as pq

    files = _metadata_files(path) if path.exists() else []
    if not files or files[0].suffix.lower() != ".parquet":
        return False
    try:
        names = set(pq.read_schema(files[0]).names)
    except Exception:  # not a Parquet file: some other source
        return False
    return all(c in names for c in REQUIRED) and "patch_id" not in names


def _sensor_of(product_ids: pd.Series, source: Path) -> str:
    prefixes = {str(p)[:2].upper() for p in product_ids.head(1000)}
    if prefixes == {"S2"}:
        return "s2"
    if prefixes == {"S1"}:
        return "s1"
    raise CsmoeDataError(
        f"{source}: product ids start with {', '.join(sorted(prefixes))}; Major TOM footprints "
        "need Sentinel-2 (S2...) or Sentinel-1 (S1...) products, one sensor per metadata file"
    )


def read_majortom_metadata(source: Path, imagery_root: Path | None) -> tuple[pd.DataFrame, str]:
    """Read the used columns of one metadata file or a folder of them.

    Returns:
        ``(table, sensor)``: the rows with an ``_root`` column (each row's imagery root) and a
        ``_time`` column (pandas timestamps, NaT where unknown); ``sensor`` is ``"s2"``/``"s1"``.

    Raises:
        CsmoeDataError: no Parquet file, a missing required column, a mix of sensors, no rows.
    """
    import pyarrow.parquet as pq

    files = _metadata_files(source)
    if not files:
        raise CsmoeDataError(f"no Major TOM metadata (*.parquet) in {source}")
    parts = []
    for f in files:
        try:
            names = pq.read_schema(f).names
        except Exception as exc:
            raise CsmoeDataError(f"cannot read {f}: {' '.join(str(exc).split())[:200]}") from exc
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise CsmoeDataError(
                f"{f} has no column(s) {', '.join(missing)}; not a Major TOM metadata file"
            )
        wanted = [
            c
            for c in (
                *REQUIRED,
                *_TIME_COLUMNS,
                *_PASS_THROUGH,
                "geometry",
                "parquet_url",
                "parquet_row",
            )
            if c in names
        ]
        part = pq.read_table(f, columns=wanted).to_pandas()
        part["_root"] = str((imagery_root or f.parent).resolve())
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    if not len(table):
        raise CsmoeDataError(f"Major TOM metadata {source} has no rows")
    if table["grid_cell"].isna().any() or table["product_id"].isna().any():
        raise CsmoeDataError(f"{source}: some rows have no grid_cell or product_id")
    table["grid_cell"] = table["grid_cell"].astype(str)
    table["product_id"] = table["product_id"].astype(str)
    time_col = next((c for c in _TIME_COLUMNS if c in table.columns), None)
    if time_col is None:
        table["_time"] = pd.NaT
    else:
        raw = table[time_col].astype(str)
        parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
        # Major TOM's product_datetime is compact (20200813T105031)
        compact = parsed.isna() & raw.str.fullmatch(r"\d{8}T\d{6}")
        if compact.any():
            parsed[compact] = pd.to_datetime(raw[compact], format="%Y%m%dT%H%M%S")
        table["_time"] = parsed
    return table, _sensor_of(table["product_id"], source)


@dataclass
class _Locator:
    """Finds a product's imagery: the tree folder, or its row in a shard (shards read once)."""

    shard_rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def _shard_index(self, path: Path) -> dict[str, int]:
        import pyarrow.parquet as pq

        key = str(path)
        if key not in self.shard_rows:
            try:
                ids = pq.read_table(path, columns=["product_id"]).column("product_id").to_pylist()
            except Exception as exc:
                raise CsmoeDataError(
                    f"cannot read Major TOM shard {path}: {' '.join(str(exc).split())[:200]}"
                ) from exc
            self.shard_rows[key] = {str(p): i for i, p in enumerate(ids)}
        return self.shard_rows[key]

    def find(self, rec: Any) -> StorePath | None:
        root = Path(rec["_root"])
        cell = rec["grid_cell"]
        folder = root / cell.split("_")[0] / cell / rec["product_id"]
        if folder.is_dir():
            return StorePath(str(folder))
        url = rec.get("parquet_url")
        if isinstance(url, str) and url:
            name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
            for candidate in (root / "images" / name, root / name):
                if candidate.is_file():
                    row = self._shard_index(candidate).get(rec["product_id"])
                    if row is not None:
                        return StorePath(str(candidate), row=row)
        return None


@dataclass(frozen=True)
class _Header:
    """The pixel grid of a product's reference band."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int


def _read_header(ref: StorePath, sensor: str) -> _Header:
    import rasterio
    from rasterio.io import MemoryFile

    names = _REFERENCE[sensor]
    try:
        if ref.row is None:
            folder = Path(ref.file)
            file = next(
                (folder / f"{n}.tif" for n in names if (folder / f"{n}.tif").is_file()), None
            )
            if file is None:
                raise CsmoeDataError(f"{folder} has no {names[0]}.tif")
            with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(file) as ds:
                return _Header(ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height)
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(ref.file)
        column = next((n for n in names if n in pf.schema_arrow.names), None)
        if column is None:
            raise CsmoeDataError(f"{ref.file} has no {names[0]} column")
        start = 0
        for group in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(group).num_rows
            if int(ref.row or 0) < start + n:
                break
            start += n
        table = pf.read_row_group(group, columns=[column])
        blob = table.column(column)[int(ref.row or 0) - start].as_py()
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), MemoryFile(blob) as mem, mem.open() as ds:
            return _Header(ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height)
    except CsmoeDataError:
        raise
    except Exception as exc:  # rasterio/pyarrow errors on a damaged product
        raise _Damaged(f"{ref}: {' '.join(str(exc).split())[:160]}") from exc


class _Damaged(Exception):
    """A product whose header cannot be read (kept untiled, counted)."""


def tile_windows(width: int, height: int, tile: int) -> list[tuple[int, int, int, int, int]]:
    """Tiles of an image: ``(tile_row, tile_col, col_off, row_off, size)``, centred, 6 px lattice."""
    nx, ny = width // tile, height // tile
    if nx == 0 or ny == 0:
        return []
    ox = (width - nx * tile) // 2 // LATTICE_PX * LATTICE_PX
    oy = (height - ny * tile) // 2 // LATTICE_PX * LATTICE_PX
    return [(i, j, ox + j * tile, oy + i * tile, tile) for i in range(ny) for j in range(nx)]


def _window_box(h: _Header, col: int, row: int, size: int) -> shapely.Polygon:
    a, b, c, d, e, f = h.transform
    corners = [
        (a * x + b * y + c, d * x + e * y + f)
        for x, y in ((col, row), (col + size, row), (col + size, row + size), (col, row + size))
    ]
    return shapely.Polygon(corners)


def _window_in(
    other: _Header, box: shapely.Polygon, src_crs: str, size: int
) -> tuple[int, int, int] | None:
    """The ``size`` px window of ``other`` centred on ``box``'s centre, or None when off the image."""
    from pyproj import CRS, Transformer

    cx, cy = box.centroid.x, box.centroid.y
    if CRS.from_user_input(other.crs) != CRS.from_user_input(src_crs):
        cx, cy = Transformer.from_crs(src_crs, other.crs, always_xy=True).transform(cx, cy)
    a, b, c, d, e, f = other.transform
    det = a * e - b * d
    col = ((cx - c) * e - (cy - f) * b) / det
    row = ((cy - f) * a - (cx - c) * d) / det
    c0, r0 = round(col - size / 2), round(row - size / 2)
    if c0 < 0 or r0 < 0 or c0 + size > other.width or r0 + size > other.height:
        return None
    return (c0, r0, size)


def _pair(
    primary: pd.DataFrame, other: pd.DataFrame, max_days: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """For each primary row, the index of the nearest-in-time other row of the same cell (or -1)."""
    match = np.full(len(primary), -1, dtype=np.int64)
    days = np.full(len(primary), np.nan)
    groups = {cell: idx.to_numpy() for cell, idx in other.groupby("grid_cell").groups.items()}
    other_time = other["_time"].to_numpy(dtype="datetime64[ns]")
    other_ids = other["product_id"].to_numpy()
    for i, (cell, t) in enumerate(zip(primary["grid_cell"], primary["_time"], strict=True)):
        cand = groups.get(cell)
        if cand is None:
            continue
        if pd.isna(t):
            diff = np.zeros(len(cand))
        else:
            delta = other_time[cand] - np.datetime64(t.to_datetime64(), "ns")
            diff = np.abs(delta.astype("timedelta64[s]").astype(np.float64)) / 86400.0
            diff[np.isnat(other_time[cand])] = np.inf
        # nearest in time; ties by product id so the result does not depend on file order
        best = min(range(len(cand)), key=lambda k: (diff[k], other_ids[cand[k]]))
        if max_days is not None and not diff[best] <= max_days:
            continue
        match[i] = cand[best]
        days[i] = diff[best]
    return match, days


def load_majortom(
    source: Path, label: str, options: MajorTomOptions | None = None, progress: bool | None = None
) -> Footprints:
    """Load Major TOM metadata as footprints (see the module docstring).

    Args:
        source: a metadata Parquet file or a folder of them.
        label: the source as the user gave it.
        options: pairing, imagery root and tiling.
        progress: show a progress bar while reading image headers (tiling).

    Returns:
        Footprints with ``patch_id`` (``<grid_cell>_<product_id>``, tiles ``..._r<i>c<j>``),
        ``s2_path``/``s1_path`` (absolute, with ``#row=``/``#window=`` fragments), ``grid_cell``,
        ``product_id``, ``acquisition_date``, the other sensor's ``s1_product_id`` or
        ``s2_product_id`` and ``pair_days`` when pairing, ``tile_row``/``tile_col`` when tiling,
        and the pass-through columns.

    Raises:
        CsmoeDataError: unreadable metadata, both files of one sensor, duplicate products, a
            ``tile_size`` that is not a positive multiple of 6, or nothing left after
            ``paired_only``.
    """
    opts = options or MajorTomOptions()
    tile = opts.tile_size or 0
    if tile and (tile < 0 or tile % LATTICE_PX):
        raise CsmoeDataError(
            f"--tile-size must be a positive multiple of {LATTICE_PX} px (the 60 m bands' pixel), not {tile}"
        )
    table, sensor = read_majortom_metadata(source, opts.imagery_root)
    notes: list[str] = []
    dup = table.duplicated(["grid_cell", "product_id"])
    if dup.any():
        raise CsmoeDataError(
            f"{source}: {int(dup.sum())} duplicate (grid_cell, product_id) row(s), e.g. "
            f"{table.loc[dup, 'product_id'].iloc[0]!r}; each product of a cell must appear once"
        )
    other_sensor = "s1" if sensor == "s2" else "s2"
    locator = _Locator()
    refs = [locator.find(rec) for rec in table.to_dict("records")]
    other: pd.DataFrame | None = None
    other_refs: list[StorePath | None] = []
    match = np.full(len(table), -1, dtype=np.int64)
    days = np.full(len(table), np.nan)
    if opts.pair_with is not None:
        other, other_kind = read_majortom_metadata(Path(opts.pair_with), opts.imagery_root)
        if other_kind == sensor:
            raise CsmoeDataError(
                f"--pair-with {opts.pair_with} holds {sensor.upper()} products like --footprints; "
                "pair Sentinel-2 with Sentinel-1 metadata"
            )
        match, days = _pair(table, other, opts.pair_max_days)
        other_refs = [locator.find(rec) for rec in other.to_dict("records")]
        within = f" within {opts.pair_max_days:g} days" if opts.pair_max_days is not None else ""
        notes.append(
            f"{int((match >= 0).sum())} of {len(table)} products paired{within} by grid cell"
        )
    dropped = 0
    if opts.paired_only:
        if other is None:
            raise CsmoeDataError("--paired-only needs --pair-with OTHER.parquet")
        keep = match >= 0
        dropped = int((~keep).sum())
        if not keep.any():
            raise CsmoeDataError(
                "no product found a partner of the other sensor in the same grid cell"
                + (f" within {opts.pair_max_days:g} days" if opts.pair_max_days is not None else "")
            )
        if dropped:
            notes.append(f"{dropped} unpaired product(s) dropped (--paired-only)")
        table = table.loc[keep].reset_index(drop=True)
        refs = [r for r, k in zip(refs, keep, strict=True) if k]
        match, days = match[keep], days[keep]
    missing = sum(1 for r in refs if r is None)
    if missing:
        notes.append(
            f"{missing} product(s) without local imagery (no tree folder, no shard row): "
            "kept with the grid-cell footprint and no imagery path"
        )

    ids: list[str] = []
    geoms: list[Any] = []
    crs: list[str] = []
    rows: list[dict[str, Any]] = []
    headers: dict[str, _Header | None] = {}
    damaged = 0

    def header(ref: StorePath, kind: str) -> _Header | None:
        nonlocal damaged
        key = str(ref)
        if key not in headers:
            try:
                headers[key] = _read_header(ref, kind)
            except _Damaged:
                headers[key] = None
                damaged += 1
        return headers[key]

    wgs84 = "EPSG:4326"
    has_geometry = "geometry" in table.columns
    with progress_bar(
        "reading Major TOM products",
        len(table),
        "products",
        progress if tile else False,
        min_total=500,
    ) as advance:
        for i, rec in enumerate(table.to_dict("records")):
            ref = refs[i]
            partner = other.iloc[int(match[i])] if other is not None and match[i] >= 0 else None
            pref = other_refs[int(match[i])] if partner is not None else None
            base: dict[str, Any] = {
                "grid_cell": rec["grid_cell"],
                "product_id": rec["product_id"],
                "acquisition_date": None if pd.isna(rec["_time"]) else rec["_time"].isoformat(),
            }
            for key in _PASS_THROUGH:
                if key in rec:
                    base[key] = rec[key]
            if other is not None:
                base[f"{other_sensor}_product_id"] = (
                    None if partner is None else partner["product_id"]
                )
                base["pair_days"] = float(days[i]) if partner is not None else None
            pid = f"{rec['grid_cell']}_{rec['product_id']}"
            h = header(ref, sensor) if (tile and ref is not None) else None
            if h is not None:
                ph = header(pref, other_sensor) if pref is not None else None
                for ti, tj, col, row, size in tile_windows(h.width, h.height, tile):
                    box = _window_box(h, col, row, size)
                    own = StorePath(ref.file, ref.row, None, (col, row, size))  # type: ignore[union-attr]
                    partner_path = None
                    if ph is not None and pref is not None:
                        w = _window_in(ph, box, h.crs, size)
                        partner_path = (
                            None if w is None else str(StorePath(pref.file, pref.row, None, w))
                        )
                    ids.append(f"{pid}_r{ti}c{tj}")
                    geoms.append(box)
                    crs.append(h.crs)
                    rows.append(
                        {
                            **base,
                            f"{sensor}_path": str(own),
                            f"{other_sensor}_path": partner_path,
                            "tile_row": ti,
                            "tile_col": tj,
                        }
                    )
            else:
                if has_geometry and rec.get("geometry") is not None:
                    geom = shapely.from_wkb(rec["geometry"])
                else:
                    geom = cell_polygon(rec["grid_cell"])
                ids.append(pid)
                geoms.append(geom)
                crs.append(wgs84)
                rows.append(
                    {
                        **base,
                        f"{sensor}_path": None if ref is None else str(ref),
                        f"{other_sensor}_path": None if pref is None else str(pref),
                        **({"tile_row": None, "tile_col": None} if tile else {}),
                    }
                )
            advance(1)
    if damaged:
        notes.append(f"{damaged} product(s) with an unreadable image header: kept untiled")
    if tile:
        tiled = sum(1 for r in rows if r.get("tile_row") is not None)
        notes.append(f"{tiled} tiles of {tile} px from {len(table)} products")
    crs_cache: dict[str, str] = {}
    crs_text: list[str] = []
    for c in crs:
        if c not in crs_cache:
            crs_cache[c] = crs_string(c)
        crs_text.append(crs_cache[c])
    attrs = pd.DataFrame(rows)
    attrs["_order"] = np.arange(len(attrs))
    for path_column in ("s2_path", "s1_path"):
        if path_column not in attrs.columns:
            attrs[path_column] = None
    # rows in lon/lat and rows in UTM are finished separately: only the former need unwrapping
    lonlat = np.array([c == wgs84 for c in crs])
    parts = []
    repaired = 0
    for mask, is_ll in ((lonlat, True), (~lonlat, False)):
        if not mask.any():
            continue
        idx = np.flatnonzero(mask)
        part, rep, drop = finalize_table(
            pd.Series([ids[k] for k in idx], dtype=object),
            [geoms[k] for k in idx],
            [crs_text[k] for k in idx],
            attrs.iloc[idx].reset_index(drop=True),
            "grid_cell + product_id",
            notes,
            repair=is_ll,
            lonlat=is_ll,
        )
        parts.append(part)
        repaired += rep
        dropped += drop
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    dup_ids = out["patch_id"].duplicated()
    if dup_ids.any():
        raise CsmoeDataError(f"duplicate patch id {out.loc[dup_ids, 'patch_id'].iloc[0]!r}")
    return Footprints(table=out, source=label, repaired=repaired, dropped=dropped, notes=notes)
