"""CLI command ``csmoe-data grid``: plan square UTM footprints over a bbox before imagery exists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from csmoe_cli._common import console, user_errors
from csmoe_data.footprints.options import DEFAULT_MAX_CELLS

app = typer.Typer()


@app.command("grid")
@user_errors
def grid(
    bbox: Annotated[
        str,
        typer.Option(
            "--bbox",
            help="MINLON,MINLAT,MAXLON,MAXLAT in degrees; MINLON > MAXLON crosses the antimeridian.",
        ),
    ],
    cell_size: Annotated[
        float, typer.Option("--cell-size", help="Cell side in metres (e.g. 1200).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output file: .parquet, .gpkg, .geojson or .fgb.")
    ],
    max_cells: Annotated[
        int, typer.Option("--max-cells", help="Refuse to write more cells than this.", min=1)
    ] = DEFAULT_MAX_CELLS,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output.")
    ] = False,
) -> None:
    """Lay square cells of --cell-size metres in the local UTM zone(s) over a bbox.

    Cells are named <zone><N|S>_<row>_<col> (row/col = northing/easting divided by the cell size)
    and written with a lon/lat outline; load the file with build-manifest --footprints, which
    rebuilds each cell as its exact UTM square.
    """
    from csmoe_common.atomic import check_output_path
    from csmoe_data.footprints.grid import make_grid, write_grid

    check_output_path(out, overwrite)  # fail before the work, not after
    cells = make_grid(bbox, cell_size, max_cells=max_cells)
    write_grid(cells, out, overwrite=overwrite)
    zones = cells["utm_crs"].nunique()
    console.print(
        f"wrote {len(cells):,} cells in {zones} UTM zone{'s' if zones != 1 else ''} to {out}"
    )
