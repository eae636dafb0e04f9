"""Model registry (timm's shape): ``register_model``, ``list_models``, ``get_config``, ``build_model``.

A registered entry is a zero-argument function returning a
:class:`~csmoe_model.models.csmoe.CsmoeConfig`; ``build_model`` applies keyword overrides to that
config and builds the model. The registry is a :class:`csmoe_common.registry.Registry` that imports
:mod:`csmoe_model.models.presets` the first time it is read, so this module imports no model code
at import time and there is no import circle (presets import the registry, never the reverse).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from csmoe_common.registry import Registry
from csmoe_model.errors import CsmoeError

if TYPE_CHECKING:
    from csmoe_model.models.csmoe import CSMoE, CsmoeConfig

PresetFactory = Callable[[], "CsmoeConfig"]

#: the model presets (populated by importing ``csmoe_model.models.presets`` on first read)
MODELS: Registry[PresetFactory] = Registry("model", populate=("csmoe_model.models.presets",))


def register_model(name: str) -> Callable[[PresetFactory], PresetFactory]:
    """Register a preset: a zero-argument function returning a ``CsmoeConfig``.

    Raises:
        CsmoeError: if ``name`` is already registered.
    """
    return MODELS.register(name)


def list_models() -> list[str]:
    """Return the registered preset names, sorted."""
    return sorted(MODELS.names())


def get_config(name: str, /, **overrides: Any) -> CsmoeConfig:
    """Return the preset ``name``'s config with ``overrides`` applied (validated).

    Raises:
        UnknownNameError: for an unknown name (a :class:`CsmoeError`; the message lists the known
            presets).
        CsmoeError: for an unknown field or an invalid value.
    """
    base = MODELS.get(name)()
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise CsmoeError(
            f"unknown option(s) for model {name!r}: {', '.join(unknown)}; "
            f"valid options: {', '.join(sorted(fields))}"
        )
    overrides.pop("name", None)  # a config round-trip carries its own name; the preset's wins
    from csmoe_common.fields import coerce_fields

    # values come from the command line and config files: check them against the field types
    overrides = coerce_fields(type(base), overrides, "model config field")
    values = {**dataclasses.asdict(base), **overrides, "name": name}
    try:
        return type(base)(**values)
    except (TypeError, ValueError, KeyError, ZeroDivisionError) as exc:
        raise CsmoeError(f"bad config for model {name!r}: {exc}") from None


def build_model(name: str, /, **overrides: Any) -> CSMoE:
    """Build preset ``name`` with ``overrides`` (any ``CsmoeConfig`` field).

    ``build_model(name, **dataclasses.asdict(model.config))`` rebuilds the same architecture.

    Raises:
        UnknownNameError: for an unknown name (the message lists the known ones).
        CsmoeError: for an unknown field or an invalid value.
    """
    from csmoe_model.models.csmoe import CSMoE

    return CSMoE(get_config(name, **overrides))
