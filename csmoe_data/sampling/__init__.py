"""Descriptor-driven sampling of manifest pools (strategy registry, allocation, splits).

Entry point: :func:`sample_manifest`. Strategies live in :data:`STRATEGIES`
(``thematic-climatic`` (default), ``stratified``, ``cluster``, ``random``); add one with
:func:`register_strategy`.

The names below are imported on first use, so that ``csmoe_data.sampling.options`` (what the CLI
reads its defaults from) can be imported without scipy and scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csmoe_common.lazy import lazy_getattr

if TYPE_CHECKING:
    from csmoe_data.sampling.allocation import allocate
    from csmoe_data.sampling.core import DEFAULT_SPLIT, pool_checksum, sample_manifest
    from csmoe_data.sampling.options import (
        ClimateLevel,
        SamplingOptions,
        StrategyName,
        parse_split,
    )
    from csmoe_data.sampling.splits import (
        SplitReport,
        assign_splits,
        blocked_splits,
        spatial_blocks,
    )
    from csmoe_data.sampling.strategies import (
        STRATEGIES,
        SamplingContext,
        Strategy,
        get_strategy,
        list_strategies,
        register_strategy,
    )

_EXPORTS: dict[str, str] = {
    "allocate": "allocation",
    "DEFAULT_SPLIT": "core",
    "pool_checksum": "core",
    "sample_manifest": "core",
    "ClimateLevel": "options",
    "SamplingOptions": "options",
    "StrategyName": "options",
    "parse_split": "options",
    "assign_splits": "splits",
    "blocked_splits": "splits",
    "SplitReport": "splits",
    "spatial_blocks": "splits",
    "STRATEGIES": "strategies",
    "SamplingContext": "strategies",
    "Strategy": "strategies",
    "get_strategy": "strategies",
    "list_strategies": "strategies",
    "register_strategy": "strategies",
}

__all__ = [
    "ClimateLevel",
    "DEFAULT_SPLIT",
    "STRATEGIES",
    "SamplingContext",
    "SamplingOptions",
    "SplitReport",
    "Strategy",
    "StrategyName",
    "allocate",
    "assign_splits",
    "blocked_splits",
    "get_strategy",
    "list_strategies",
    "parse_split",
    "pool_checksum",
    "register_strategy",
    "sample_manifest",
    "spatial_blocks",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
