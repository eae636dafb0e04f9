"""csmoe_data: thematic-climatic descriptors and sampled Parquet manifests for remote-sensing pretraining.

This half of the project never imports torch: data hosts and training hosts differ.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("csmoe")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
