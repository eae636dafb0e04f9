"""Descriptor-driven sampling of manifest pools (strategy registry, allocation, splits).

Entry point: :func:`sample_manifest`. Strategies live in :data:`STRATEGIES`
(``thematic-climatic`` (default), ``stratified``, ``cluster``, ``random``); add one with
:func:`register_strategy`.
"""

from csmoe_data.sampling.allocation import allocate
from csmoe_data.sampling.core import DEFAULT_SPLIT, pool_checksum, sample_manifest
from csmoe_data.sampling.options import SamplingOptions, parse_split
from csmoe_data.sampling.splits import SplitReport, assign_splits, blocked_splits, spatial_blocks
from csmoe_data.sampling.strategies import (
    STRATEGIES,
    SamplingContext,
    Strategy,
    list_strategies,
    register_strategy,
)

__all__ = [
    "DEFAULT_SPLIT",
    "STRATEGIES",
    "SamplingContext",
    "SamplingOptions",
    "SplitReport",
    "Strategy",
    "allocate",
    "assign_splits",
    "blocked_splits",
    "list_strategies",
    "parse_split",
    "pool_checksum",
    "register_strategy",
    "sample_manifest",
    "spatial_blocks",
]
