"""User-facing errors of the model half: the CLI prints the message as one line and exits non-zero."""


class CsmoeError(Exception):
    """A problem the user can fix (bad manifest, bad option, missing imagery), reported in one line."""
