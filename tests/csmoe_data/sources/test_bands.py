"""Tests of csmoe_data.sources.bands."""

from __future__ import annotations

import pytest

from csmoe_data.errors import CsmoeDataError
from csmoe_data.sources.bands import select_band

DW = ["water", "trees", "grass", "flooded_vegetation", "crops", "label"]


def test_single_band_needs_no_option() -> None:
    assert select_band(None, [None], "a.tif", "--landcover-band") == 1


def test_multi_band_without_option_lists_the_bands() -> None:
    with pytest.raises(
        CsmoeDataError, match="6 bands: 1 \\(water\\).*6 \\(label\\).*--landcover-band"
    ):
        select_band(None, DW, "dw.tif", "--landcover-band")


def test_index_or_name() -> None:
    assert select_band("6", DW, "dw.tif", "--landcover-band") == 6
    assert select_band(2, DW, "dw.tif", "--landcover-band") == 2
    assert select_band("label", DW, "dw.tif", "--landcover-band") == 6
    assert select_band("LABEL", DW, "dw.tif", "--landcover-band") == 6
    for bad in ("0", "7", "-1", "snow"):
        with pytest.raises(CsmoeDataError):
            select_band(bad, DW, "dw.tif", "--landcover-band")
