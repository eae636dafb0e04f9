"""The user-error base class of both halves.

Anything raised as :class:`CsmoeError` (or a subclass) is a problem with the user's input or
environment: the CLI prints its message as one line on stderr and exits non-zero, no traceback.
"""

from __future__ import annotations


class CsmoeError(Exception):
    """A problem the user can fix (bad path, bad raster, bad option, bad manifest), in one line."""


class UnknownNameError(CsmoeError, KeyError):
    """A name that is not in a registry; the message lists the known names.

    Also a :class:`KeyError`, so ``registry[name]``-style callers can catch it as one.
    """

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known) or 'none'}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
