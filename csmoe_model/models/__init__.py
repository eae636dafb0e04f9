"""Model definitions; importing this package registers the presets."""

from csmoe_model.models import presets as presets  # noqa: F401  (registers the presets)
from csmoe_model.models.csmoe import CSMoE, CsmoeConfig, CsmoeOutput

__all__ = ["CSMoE", "CsmoeConfig", "CsmoeOutput"]
