"""Tests of csmoe_data.labels: the BigEarthNet 43 -> 19 mapping and label-cell parsing."""

from __future__ import annotations

import numpy as np
import pytest

from csmoe_data.labels import BEN19_LABELS, BEN43_LABELS, BEN43_TO_19, parse_labels, to_labels19


def test_nomenclature_sizes_and_targets() -> None:
    assert len(BEN43_LABELS) == 43
    assert len(set(BEN43_LABELS)) == 43
    assert len(BEN19_LABELS) == 19
    targets = {v for v in BEN43_TO_19.values() if v is not None}
    # every 19-class name is reached, and nothing else
    assert targets == set(BEN19_LABELS)
    dropped = sorted(k for k, v in BEN43_TO_19.items() if v is None)
    assert len(dropped) == 11
    assert "Airports" in dropped and "Bare rock" in dropped and "Intertidal flats" in dropped


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            [
                "Non-irrigated arable land",
                "Land principally occupied by agriculture, with significant areas of natural vegetation",
            ],
            [
                "Arable land",
                "Land principally occupied by agriculture, with significant areas of natural vegetation",
            ],
        ),
        (
            ["Coniferous forest", "Transitional woodland/shrub", "Peatbogs", "Water bodies"],
            [
                "Coniferous forest",
                "Transitional woodland, shrub",
                "Inland wetlands",
                "Inland waters",
            ],
        ),
        (["Sea and ocean", "Coastal lagoons", "Estuaries"], ["Marine waters"]),
        (["Airports", "Port areas", "Bare rock"], []),
        # order follows the nomenclature, duplicates collapse, names match case-insensitively
        (
            ["water courses", "Continuous urban fabric", "Discontinuous urban fabric"],
            ["Urban fabric", "Inland waters"],
        ),
        # 19-class names (BigEarthNet v2) map to themselves; unknown names are dropped
        (["Arable land", "Moon dust"], ["Arable land"]),
    ],
)
def test_to_labels19(labels: list[str], expected: list[str]) -> None:
    assert to_labels19(labels) == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (["a", " b "], ["a", "b"]),
        (np.array(["x", "y"], dtype=object), ["x", "y"]),
        (
            '["Pastures", "Land principally occupied by agriculture, with significant areas of natural vegetation"]',
            [
                "Pastures",
                "Land principally occupied by agriculture, with significant areas of natural vegetation",
            ],
        ),
        ("Pastures; Mixed forest", ["Pastures", "Mixed forest"]),
        ("Pastures|Mixed forest|", ["Pastures", "Mixed forest"]),
        ("Beaches, dunes, sands", ["Beaches, dunes, sands"]),
        ("", []),
        (None, []),
        (float("nan"), []),
        ("[not json", ["[not json"]),
    ],
)
def test_parse_labels(cell: object, expected: list[str]) -> None:
    assert parse_labels(cell) == expected
