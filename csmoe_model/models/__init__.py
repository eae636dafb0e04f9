"""Model definitions.

The presets live in :mod:`csmoe_model.models.presets`, which the registry
(:mod:`csmoe_model.registry`) imports the first time it is read.
"""

from csmoe_model.models.csmoe import CSMoE, CsmoeConfig, CsmoeOutput

__all__ = ["CSMoE", "CsmoeConfig", "CsmoeOutput"]
