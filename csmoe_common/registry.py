"""One registry pattern (timm's ``register_model`` / ``list_models`` / ``get_*`` shape).

A :class:`Registry` maps names to entries (factories, classes or values). Registering imports
nothing; a registry may name a module to import the first time it is read, so that the entries'
``@register`` decorators run without an import circle (the registry never imports its entries at
import time).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from csmoe_common.errors import CsmoeError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    Args:
        kind: what an entry is, for messages (``"model"``, ``"strategy"``, ``"legend"``).
        populate: modules imported before the first read (their decorators register the entries).
    """

    def __init__(self, kind: str, populate: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._populate = populate
        self._loaded = not populate
        self._entries: dict[str, T] = {}

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._populate:
                importlib.import_module(module)

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``.

        Raises:
            CsmoeError: if ``name`` is already registered.
        """
        if name in self._entries:
            raise CsmoeError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorator(entry: T) -> T:
            return self.add(name, entry)

        return decorator

    def get(self, name: str) -> T:
        """Return the entry ``name``.

        Raises:
            UnknownNameError: for a name that is not registered (the message lists the known ones).
        """
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        self._load()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs in registration order."""
        self._load()
        return list(self._entries.items())
