"""csmoe_model: the CSMoE model (Soft MoE cross-sensor masked autoencoder), training and evaluation.

Never imports the data half (``csmoe_data``) nor GDAL: training hosts need torch, numpy and pyarrow
only. The names below are imported on first use (PEP 562), so that light modules such as
:mod:`csmoe_model.train.config` (read by the CLI for its defaults) do not pull in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csmoe_common.lazy import lazy_getattr
from csmoe_common.version import __version__

if TYPE_CHECKING:
    from csmoe_model.layers.soft_moe import SoftMoE
    from csmoe_model.models.csmoe import CSMoE, CsmoeConfig, CsmoeOutput
    from csmoe_model.registry import MODELS, build_model, get_config, list_models, register_model
    from csmoe_model.weights.pretrained import from_pretrained, save_pretrained

_LAZY: dict[str, str] = {
    "SoftMoE": "csmoe_model.layers.soft_moe",
    "CSMoE": "csmoe_model.models.csmoe",
    "CsmoeConfig": "csmoe_model.models.csmoe",
    "CsmoeOutput": "csmoe_model.models.csmoe",
    "MODELS": "csmoe_model.registry",
    "build_model": "csmoe_model.registry",
    "get_config": "csmoe_model.registry",
    "list_models": "csmoe_model.registry",
    "register_model": "csmoe_model.registry",
    "from_pretrained": "csmoe_model.weights.pretrained",
    "save_pretrained": "csmoe_model.weights.pretrained",
}

__all__ = [
    "MODELS",
    "CSMoE",
    "CsmoeConfig",
    "CsmoeOutput",
    "SoftMoE",
    "__version__",
    "build_model",
    "from_pretrained",
    "get_config",
    "list_models",
    "register_model",
    "save_pretrained",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
