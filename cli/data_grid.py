"""CLI command ``csmoe-data grid``: plan footprints over a bbox before imagery exists."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from csmoe_cli._common import OnceCommand, console, fail, user_errors
from csmoe_data.footprints.options import DEFAULT_MAX_CELLS, MAJORTOM_CELL_SIZE_KM

app = typer.Typer()


class GridScheme(StrEnum):
    """Grid schemes: square cells in the local UTM zone, or the Major TOM grid."""

    UTM = "utm"
    MAJORTOM = "majortom"


@app.command("grid", cls=OnceCommand)
@user_errors
def grid(
    bbox: Annotated[
        str,
        typer.Option(
            "--bbox",
            help="MINLON,MINLAT,MAXLON,MAXLAT in degrees; MINLON > MAXLON crosses the antimeridian.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output file: .parquet, .gpkg, .geojson or .fgb.")
    ],
    cell_size: Annotated[
        float | None,
        typer.Option(
            "--cell-size",
            help="utm: cell side in metres (e.g. 1200; required). majortom: grid spacing in km "
            f"(default {MAJORTOM_CELL_SIZE_KM:g}, Major TOM Core's).",
        ),
    ] = None,
    scheme: Annotated[
        GridScheme,
        typer.Option(
            "--scheme",
            help="utm: square cells in the local UTM zone; majortom: the Major TOM grid "
            "(cell ids such as 123U_456R).",
        ),
    ] = GridScheme.UTM,
    max_cells: Annotated[
        int, typer.Option("--max-cells", help="Refuse to write more cells than this.", min=1)
    ] = DEFAULT_MAX_CELLS,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output.")
    ] = False,
) -> None:
    """Lay grid cells over a bbox and write them as footprints.

    utm (default): squares of --cell-size metres in the local UTM zone(s), named
    <zone><N|S>_<row>_<col> (row/col = northing/easting divided by the cell size), each in one
    zone (cut at zone seams and the equator); build-manifest --footprints rebuilds each cell in
    its UTM zone. majortom: the Major TOM grid of --cell-size km (default 10), cells named
    <row>_<col> such as 123U_456R as in Major TOM's grid.py, written as lon/lat rectangles.
    """
    from csmoe_common.atomic import check_output_path
    from csmoe_data.footprints.grid import make_grid, write_grid

    check_output_path(out, overwrite)  # fail before the work, not after
    if scheme is GridScheme.MAJORTOM:
        from csmoe_data.footprints.majortom_grid import cells_in_bbox

        km = MAJORTOM_CELL_SIZE_KM if cell_size is None else cell_size
        cells = cells_in_bbox(bbox, km, max_cells=max_cells)
        write_grid(cells, out, overwrite=overwrite)
        rows = cells["row"].nunique()
        console.print(f"wrote {len(cells):,} Major TOM cells ({km:g} km) in {rows:,} rows to {out}")
        return
    if cell_size is None:
        raise fail("--cell-size (metres) is required for --scheme utm")
    cells = make_grid(bbox, cell_size, max_cells=max_cells)
    write_grid(cells, out, overwrite=overwrite)
    zones = cells["utm_crs"].nunique()
    console.print(
        f"wrote {len(cells):,} cells in {zones} UTM zone{'s' if zones != 1 else ''} to {out}"
    )
