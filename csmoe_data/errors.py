"""User-facing errors of the data half (a subclass of the one base, :class:`csmoe_common.CsmoeError`)."""

from csmoe_common.errors import CsmoeError


class CsmoeDataError(CsmoeError):
    """A problem the user can fix (bad path, bad raster, bad option), reported in one line."""


__all__ = ["CsmoeDataError", "CsmoeError"]
