"""csmoe_data: thematic-climatic descriptors and sampled Parquet manifests for remote-sensing pretraining.

This half of the project never imports torch: data hosts and training hosts differ.
"""

from csmoe_common.version import __version__

__all__ = ["__version__"]
