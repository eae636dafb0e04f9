"""Defaults of the footprint sources (light: the CLI reads them without importing GDAL)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: ``csmoe-data grid`` refuses to write more cells than this unless told otherwise
DEFAULT_MAX_CELLS = 2_000_000
#: folder sources with fewer files than this show no progress bar unless asked
FOOTPRINT_BAR_MIN = 2000
#: ``csmoe-data grid --scheme majortom``: Major TOM Core's grid spacing, km
MAJORTOM_CELL_SIZE_KM = 10.0

#: Major TOM products are cut into tiles of this many 10 m pixels (the model's 10 m size)
DEFAULT_TILE_SIZE = 120


@dataclass(frozen=True)
class MajorTomOptions:
    """How Major TOM metadata becomes footprints (``build-manifest``'s options of the same names).

    Attributes:
        pair_with: the other sensor's metadata Parquet (file or folder), or None.
        pair_max_days: pair only acquisitions at most this many days apart (None: any).
        paired_only: drop rows that found no partner.
        imagery_root: where the imagery lies (None: the folder of each metadata file).
        tile_size: cut products into square tiles of this many 10 m pixels (0 or None: one row
            per product); a multiple of 6 so that the 60 m bands are cut on their own grid.
    """

    pair_with: Path | None = None
    pair_max_days: float | None = None
    paired_only: bool = False
    imagery_root: Path | None = None
    tile_size: int | None = DEFAULT_TILE_SIZE

    def is_default(self) -> bool:
        """Whether every option has its default (so a non-Major TOM source may ignore them)."""
        return self == MajorTomOptions()

    def to_metadata(self) -> dict[str, Any]:
        """JSON-ready values (paths absolute) for the manifest's parameters."""
        out = asdict(self)
        for key in ("pair_with", "imagery_root"):
            if out[key] is not None:
                out[key] = str(Path(out[key]).resolve())
        return out
