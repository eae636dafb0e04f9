"""Scene labels: the BigEarthNet CORINE nomenclatures and label-column parsing.

BigEarthNet v1 patches carry the CORINE Land Cover 2018 level-3 classes present in the patch
(43 of the 44 CLC classes; "Glaciers and perpetual snow" never occurs). The standard 19-class
nomenclature groups them and drops the 11 classes that cannot be recognised from a single
Sentinel-2 patch:

    Sumbul, Charfuelan, Demir, Markl (2020), "BigEarthNet dataset with a new class-nomenclature
    for remote sensing image understanding", arXiv:2001.06372; and Sumbul, de Wall, Kreuziger,
    Marcelino, Costa, Benevides, Caetano, Demir, Markl (2021), "BigEarthNet-MM: A Large-Scale,
    Multimodal, Multilabel Benchmark Archive for Remote Sensing Image Classification and
    Retrieval", IEEE Geoscience and Remote Sensing Magazine 9(3):174-180, Table 1.

The mapping below is that table (also what ``bigearthnet-common`` ships as ``old2new_labels``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "BEN19_LABELS",
    "BEN43_LABELS",
    "BEN43_TO_19",
    "parse_labels",
    "to_labels19",
]

#: the 19-class BigEarthNet nomenclature, in its published order
BEN19_LABELS: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

#: 43-class CORINE name (as written in BigEarthNet v1 JSON) -> 19-class name, or None (dropped)
BEN43_TO_19: dict[str, str | None] = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Industrial or commercial units": "Industrial or commercial units",
    "Road and rail networks and associated land": None,
    "Port areas": None,
    "Airports": None,
    "Mineral extraction sites": None,
    "Dump sites": None,
    "Construction sites": None,
    "Green urban areas": None,
    "Sport and leisure facilities": None,
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Pastures": "Pastures",
    "Complex cultivation patterns": "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation": (
        "Land principally occupied by agriculture, with significant areas of natural vegetation"
    ),
    "Agro-forestry areas": "Agro-forestry areas",
    "Broad-leaved forest": "Broad-leaved forest",
    "Coniferous forest": "Coniferous forest",
    "Mixed forest": "Mixed forest",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Beaches, dunes, sands": "Beaches, dunes, sands",
    "Bare rock": None,
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Burnt areas": None,
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Intertidal flats": None,
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}

#: the 43 BigEarthNet v1 class names
BEN43_LABELS: tuple[str, ...] = tuple(BEN43_TO_19)

_BEN19_ORDER = {name: i for i, name in enumerate(BEN19_LABELS)}


def _norm(name: str) -> str:
    return " ".join(name.strip().lower().split())


# case- and whitespace-insensitive lookup; 19-class names map to themselves (BigEarthNet v2 style)
_LOOKUP: dict[str, str | None] = {_norm(k): v for k, v in BEN43_TO_19.items()}
_LOOKUP.update({_norm(k): k for k in BEN19_LABELS})


def to_labels19(labels: Iterable[str]) -> list[str]:
    """Map CORINE labels (43-class BigEarthNet v1 names, or 19-class names) to the 19 classes.

    Classes without a 19-class counterpart (e.g. "Airports", "Bare rock") and names that are not
    BigEarthNet classes at all are dropped.

    Args:
        labels: class names of one patch.

    Returns:
        The distinct 19-class names, in the nomenclature's published order.
    """
    found = {_LOOKUP.get(_norm(str(name))) for name in labels}
    found.discard(None)
    return sorted((n for n in found if n is not None), key=_BEN19_ORDER.__getitem__)


def parse_labels(value: Any) -> list[str]:
    """Read one cell of a labels column as a list of strings.

    Accepted: a list/tuple/numpy array of strings; a JSON list in a string (``'["a", "b"]'``);
    a string separated by ``;`` or ``|`` (``"a; b"``); a single string (one label); None/NaN or an
    empty string (no label). Items are stripped; empty items are dropped; order is kept.

    Args:
        value: the cell.

    Returns:
        The labels as a list of strings.
    """
    if value is None:
        return []
    if isinstance(value, float) and np.isnan(value):
        return []
    if isinstance(value, (list, tuple, np.ndarray)) or (
        hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict))
    ):
        return [s for s in (str(v).strip() for v in value if v is not None) if s]
    text = value.decode() if isinstance(value, bytes) else str(value)
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return [s for s in (str(v).strip() for v in parsed if v is not None) if s]
    for sep in (";", "|"):
        if sep in text:
            return [s.strip() for s in text.split(sep) if s.strip()]
    return [text]
