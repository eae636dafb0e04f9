"""Lazy package attributes (PEP 562): a package names its exports, their modules load on first use.

The CLI reads library defaults at import time; without this, importing a package's ``__init__``
would pull its heavy dependencies (torch, GDAL, scipy) into every ``--help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``package.<exports[name]>`` on first access.

    Args:
        package: the package's ``__name__``.
        exports: attribute name -> the submodule that defines it (relative to ``package``, or
            its full dotted name).

    Returns:
        A function to assign to the package's ``__getattr__``; it caches each value in the
        package's namespace so later lookups skip it.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = module if module.startswith(f"{package}.") else f"{package}.{module}"
        value = getattr(importlib.import_module(target), name)
        namespace[name] = value
        return value

    return __getattr__
