"""csmoe_model: the CSMoE model (Soft MoE cross-sensor masked autoencoder), training and evaluation.

Never imports the data half (``csmoe_data``) nor GDAL: training hosts need torch, numpy and pyarrow only.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("csmoe")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from csmoe_model.layers.soft_moe import SoftMoE
from csmoe_model.models.csmoe import CSMoE, CsmoeConfig, CsmoeOutput
from csmoe_model.registry import build_model, get_config, list_models, register_model

__all__ = [
    "CSMoE",
    "CsmoeConfig",
    "CsmoeOutput",
    "SoftMoE",
    "__version__",
    "build_model",
    "get_config",
    "list_models",
    "register_model",
]
