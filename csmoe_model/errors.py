"""User-facing errors of the model half: the one base class, :class:`csmoe_common.CsmoeError`."""

from csmoe_common.errors import CsmoeError

__all__ = ["CsmoeError"]
