"""Defaults of the footprint sources (light: the CLI reads them without importing GDAL)."""

#: ``csmoe-data grid`` refuses to write more cells than this unless told otherwise
DEFAULT_MAX_CELLS = 2_000_000
#: folder sources with fewer files than this show no progress bar unless asked
FOOTPRINT_BAR_MIN = 2000
#: ``csmoe-data grid --scheme majortom``: Major TOM Core's grid spacing, km
MAJORTOM_CELL_SIZE_KM = 10.0
