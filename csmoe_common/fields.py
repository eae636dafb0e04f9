"""Values from files and ``KEY=VALUE`` options checked against a dataclass's field types.

Configs (``--config`` JSON/TOML, a run's ``config.json``, ``--set``/``--model-arg``) are untrusted
data: a value of the wrong type must be a one-line error naming the field, not a ``TypeError``
deep inside training. :func:`coerce_fields` checks (and lightly converts: a list for a tuple, an
int for a float) each value against the annotation of its field: ``int``, ``float``, ``bool``,
``str``, ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[str, X]`` and
``Any``; ``Literal`` and enums by value.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from csmoe_common.errors import CsmoeError


class _Mismatch(Exception):
    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else _name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any) -> Any:
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch(_name(tp))
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch("null")
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch(" or ".join(repr(a) for a in args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise _Mismatch(" or ".join(repr(m.value) for m in tp)) from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise _Mismatch("a finite number")
            return float(value)
        raise _Mismatch("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch("text")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(_name(tp))
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch(f"{len(args)} values ({_name(tp)})")
            items = [_coerce(v, a) for v, a in zip(value, args, strict=True)]
        else:
            item = args[0] if args else Any
            items = [_coerce(v, item) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch(_name(tp))
        key_tp, val_tp = args if args else (Any, Any)
        return {_coerce(k, key_tp): _coerce(v, val_tp) for k, v in value.items()}
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch(_name(tp))
    return value  # an annotation this checker does not know: accept it as it is


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce_fields(cls: type, values: Mapping[str, Any], what: str = "option") -> dict[str, Any]:
    """Check ``values`` against the fields of the dataclass ``cls`` and return them converted.

    Args:
        cls: a dataclass.
        values: field name -> value (from JSON/TOML or parsed ``KEY=VALUE`` options).
        what: how to call a field in messages (``training option``, ``model config field``).

    Raises:
        CsmoeError: an unknown field (the known ones are listed) or a value of the wrong type
            (the field, the value and the expected type are named).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise CsmoeError(f"unknown {what} {key!r}; known: {known}")
        try:
            out[key] = _coerce(value, hints.get(key, Any))
        except _Mismatch as exc:
            raise CsmoeError(
                f"{what} {key!r} must be {exc.expected}, not {_short(value)}"
            ) from None
    return out
