"""Model registry: ``register_model`` (decorator), ``build_model(name, **overrides)``, ``list_models``.

A registered entry is a function returning a :class:`~csmoe_model.models.csmoe.CsmoeConfig`;
``build_model`` applies keyword overrides to that config and builds the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from csmoe_model.errors import CsmoeError

if TYPE_CHECKING:
    from csmoe_model.models.csmoe import CSMoE, CsmoeConfig

_REGISTRY: dict[str, Callable[[], CsmoeConfig]] = {}


def register_model(name: str) -> Callable[[Callable[[], CsmoeConfig]], Callable[[], CsmoeConfig]]:
    """Register a preset: a zero-argument function returning a ``CsmoeConfig``.

    Raises:
        CsmoeError: if ``name`` is already registered.
    """

    def decorator(fn: Callable[[], CsmoeConfig]) -> Callable[[], CsmoeConfig]:
        if name in _REGISTRY:
            raise CsmoeError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorator


def _ensure_loaded() -> None:
    # importing the models package runs its @register_model decorators
    import csmoe_model.models  # noqa: F401


def list_models() -> list[str]:
    """Return the registered preset names, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_config(name: str, /, **overrides: Any) -> CsmoeConfig:
    """Return the preset ``name``'s config with ``overrides`` applied (validated).

    Raises:
        CsmoeError: for an unknown name, an unknown field or an invalid value.
    """
    _ensure_loaded()
    if name not in _REGISTRY:
        raise CsmoeError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    base = _REGISTRY[name]()
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise CsmoeError(
            f"unknown option(s) for model {name!r}: {', '.join(unknown)}; "
            f"valid options: {', '.join(sorted(fields))}"
        )
    overrides.pop("name", None)  # a config round-trip carries its own name; the preset's wins
    values = {**dataclasses.asdict(base), **overrides, "name": name}
    return type(base)(**values)


def build_model(name: str, /, **overrides: Any) -> CSMoE:
    """Build preset ``name`` with ``overrides`` (any ``CsmoeConfig`` field).

    ``build_model(name, **dataclasses.asdict(model.config))`` rebuilds the same architecture.

    Raises:
        CsmoeError: for an unknown name (the message lists the known ones), an unknown field or an
            invalid value.
    """
    from csmoe_model.models.csmoe import CSMoE

    return CSMoE(get_config(name, **overrides))
