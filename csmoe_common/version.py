"""The version of the ``csmoe`` distribution (one lookup for both halves and the CLI)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("csmoe")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
