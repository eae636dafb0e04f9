"""The one registry pattern."""

from __future__ import annotations

import pytest

from csmoe_common.errors import CsmoeError, UnknownNameError
from csmoe_common.registry import Registry


def test_register_get_list_in_order() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("b", 2)

    @reg.register("a")
    def _a() -> int:
        return 1

    assert reg.names() == ["b", "a"]
    assert reg.get("b") == 2 and "a" in reg and len(reg) == 2


def test_unknown_name_lists_known_ones() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("one", 1)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'two'; known: one") as info:
        reg.get("two")
    assert isinstance(info.value, CsmoeError) and isinstance(info.value, KeyError)
    assert str(info.value) == "unknown widget 'two'; known: one"


def test_duplicate_is_refused() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("one", 1)
    with pytest.raises(CsmoeError, match="already registered"):
        reg.add("one", 2)


def test_populate_imports_lazily() -> None:
    reg: Registry[int] = Registry("widget", populate=("csmoe_common.bands",))
    assert reg._loaded is False
    assert reg.names() == []
    assert reg._loaded is True
