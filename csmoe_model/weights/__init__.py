"""Weights in and out: a safe reader for torch checkpoints, CSMAE import, self-describing safetensors.

``from_pretrained`` / ``save_pretrained`` (:mod:`csmoe_model.weights.pretrained`),
``import_csmae`` (:mod:`csmoe_model.weights.csmae`), ``read_torch_checkpoint``
(:mod:`csmoe_model.weights.safe_load`); imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csmoe_common.lazy import lazy_getattr

if TYPE_CHECKING:
    from csmoe_model.weights.csmae import import_csmae
    from csmoe_model.weights.pretrained import from_pretrained, read_pretrained, save_pretrained
    from csmoe_model.weights.safe_load import read_torch_checkpoint

_LAZY: dict[str, str] = {
    "import_csmae": "csmoe_model.weights.csmae",
    "from_pretrained": "csmoe_model.weights.pretrained",
    "read_pretrained": "csmoe_model.weights.pretrained",
    "save_pretrained": "csmoe_model.weights.pretrained",
    "read_torch_checkpoint": "csmoe_model.weights.safe_load",
}

__all__ = [
    "from_pretrained",
    "import_csmae",
    "read_pretrained",
    "read_torch_checkpoint",
    "save_pretrained",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
