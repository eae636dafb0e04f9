"""Plumbing shared by both halves of csmoe.

Everything here imports only the standard library, numpy and pyarrow at module level, so that the
data half (no torch) and the model half (no GDAL, no geopandas) can both depend on it. The boundary
test in ``tests/test_boundaries.py`` keeps it that way.

Modules:
    atomic: atomic file and folder output (one contract for every writer).
    bands: Sentinel-1/Sentinel-2 band names and the band orders the model sees.
    device: torch device resolution (torch imported lazily).
    divergence: the Jensen-Shannon divergence used by the sampler and by ``stats``.
    errors: :class:`CsmoeError`, the one user-error base class.
    manifest: manifest column names and the pyarrow metadata reader.
    progress: the one rich progress bar.
    registry: the registry pattern for presets, strategies and legends.
    version: the distribution's version.
"""

from csmoe_common.errors import CsmoeError
from csmoe_common.version import __version__

__all__ = ["CsmoeError", "__version__"]
