"""finalize_table's id checks: every id present, not blank, unique."""

from __future__ import annotations

import pandas as pd
import pytest
import shapely

from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import finalize_table


def _finalize(ids: list[object]) -> pd.DataFrame:
    geoms = [shapely.box(i, 0, i + 1, 1) for i in range(len(ids))]
    table, _, _ = finalize_table(pd.Series(ids), geoms, "EPSG:4326", None, "pid", [], lonlat=True)
    return table


def test_blank_ids_are_counted():
    # whitespace of any kind, as str.strip() sees it (tab, no-break and ideographic spaces)
    with pytest.raises(CsmoeDataError, match="'pid' has 4 blank value"):
        _finalize(["a", "", "  ", "\t\u00a0", "\u3000", "b c"])


def test_ids_with_inner_or_outer_spaces_are_kept():
    assert _finalize([" a", "b ", "c d", 7])["patch_id"].tolist() == [" a", "b ", "c d", "7"]
