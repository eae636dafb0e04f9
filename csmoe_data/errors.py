"""User-facing errors of the data half.

Anything raised as :class:`CsmoeDataError` is a problem with the user's input or environment;
the CLI prints its message as one line and exits non-zero, without a traceback.
"""


class CsmoeDataError(Exception):
    """A problem the user can fix (bad path, bad raster, bad option), reported in one line."""
