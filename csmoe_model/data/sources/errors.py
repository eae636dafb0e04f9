"""The two ways an image can fail to decode (shared by every imagery reader of the cache)."""

from __future__ import annotations

__all__ = ["BandError", "DamagedImageError"]


class BandError(Exception):
    """The imagery lacks a band the model needs or its band order is not declared (a user error)."""


class DamagedImageError(Exception):
    """An image exists but cannot be decoded (truncated, corrupt, wrong shape)."""
