"""Descriptor columns of a manifest: which columns are classes, the descriptor matrix, strata.

Shared by the sampler and by ``csmoe-data stats`` so that both read a manifest the same way.
Column contract (``data_manifests/README.md``): land cover ``lc_<code>`` (integer code), climate
``kg_<symbol>``; ``lc_valid_frac``, ``lc_major``, ``lc_entropy``, ``kg_valid_frac`` and
``kg_major`` are summaries, not classes.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from csmoe_common import manifest as schema
from csmoe_data.errors import CsmoeDataError

#: a unique value of a majority column (a class code or a Köppen symbol)
Scalar = int | float | str

_LC_CLASS = re.compile(rf"^{schema.LANDCOVER_PREFIX}(-?\d+)$")
_KG_SUMMARY = {schema.KG_VALID_FRAC, schema.KG_MAJOR, "kg_entropy"}
#: label used for a missing climate or land-cover majority in stratum names
MISSING = "none"


def landcover_columns(columns: pd.Index | list[str]) -> list[str]:
    """Return the land-cover class columns (``lc_<integer code>``), in their original order."""
    return [c for c in columns if isinstance(c, str) and _LC_CLASS.match(c)]


def climate_columns(columns: pd.Index | list[str]) -> list[str]:
    """Return the climate class columns (``kg_<symbol>``, not the summaries), in order."""
    return [
        c
        for c in columns
        if isinstance(c, str)
        and c.startswith(schema.CLIMATE_PREFIX)
        and c not in _KG_SUMMARY
        and len(c) > 3
    ]


def class_columns(columns: pd.Index | list[str]) -> list[str]:
    """Land-cover class columns followed by climate class columns."""
    return landcover_columns(columns) + climate_columns(columns)


def descriptor_matrix(df: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    """Return the descriptor (land-cover fractions ⊕ climate fractions) as float32, NaN as 0.

    Args:
        df: manifest rows.
        columns: class columns to use, in this order; missing ones are zeros. Default: all
            class columns of ``df``.

    Returns:
        A C-contiguous ``(len(df), len(columns))`` float32 array.
    """
    if columns is None:
        columns = class_columns(df.columns)
    out = np.zeros((len(df), len(columns)), dtype=np.float32)
    for j, col in enumerate(columns):
        if col in df.columns:
            out[:, j] = pd.to_numeric(df[col], errors="coerce").to_numpy(
                dtype=np.float32, na_value=np.nan
            )
    np.nan_to_num(out, copy=False, nan=0.0)
    return out


def climate_group(symbol: str) -> str:
    """Köppen main group of a symbol: ``Cfb`` -> ``C`` (``EF``/``ET`` -> ``E``)."""
    return symbol[:1] if symbol else symbol


def load_landcover_groups(path: str | Path) -> dict[int, str]:
    """Read a land-cover grouping file: code -> group name.

    Accepted forms: a JSON object ``{"1": "forest", "2": "forest", ...}``, a JSON object of
    lists ``{"forest": [1, 2, 3, 4, 5], ...}``, or a CSV with columns ``code,group`` (a header
    row is optional).

    Raises:
        CsmoeDataError: if the file is missing, unreadable or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise CsmoeDataError(f"land-cover groups file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    out: dict[int, str] = {}
    try:
        if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
            data = json.loads(text)
            if not isinstance(data, Mapping):
                raise ValueError("expected a JSON object")
            for key, value in data.items():
                if isinstance(value, list):  # group -> [codes]
                    for code in value:
                        out[int(code)] = str(key)
                else:  # code -> group
                    out[int(key)] = str(value)
        else:
            for row in csv.reader(text.splitlines()):
                if not row or not row[0].strip() or row[0].strip().startswith("#"):
                    continue
                if len(row) < 2:
                    raise ValueError(f"row {row!r} has no group")
                try:
                    code = int(row[0])
                except ValueError:
                    if not out:  # header row
                        continue
                    raise
                out[code] = row[1].strip()
    except (ValueError, TypeError) as exc:
        raise CsmoeDataError(f"bad land-cover groups file {path}: {exc}") from None
    if not out:
        raise CsmoeDataError(f"land-cover groups file {path} maps no codes")
    return out


def _labels_of(
    series: pd.Series | None, n: int, mapper: Callable[[Scalar], str] | None = None
) -> np.ndarray:
    """Strings for a majority column; nulls become :data:`MISSING`. Vectorised over uniques."""
    if series is None:
        return np.full(n, MISSING, dtype=object)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    names = []
    for u in uniques:
        if isinstance(u, float) and u.is_integer():
            u = int(u)
        name = str(u)
        if mapper is not None:
            name = mapper(u)
        names.append(name)
    table = np.array([*names, MISSING], dtype=object)
    return table[np.where(codes < 0, len(names), codes)]


def strata_labels(
    df: pd.DataFrame,
    climate_level: str = "symbol",
    landcover_groups: Mapping[int, str] | None = None,
) -> np.ndarray:
    """Stratum of every row, ``"<climate>|<land cover>"`` (e.g. ``"Cfb|12"``, ``"C|forest"``).

    Args:
        df: rows with ``kg_major`` and ``lc_major`` (a missing column counts as all null).
        climate_level: ``symbol`` (Cfb) or ``group`` (C).
        landcover_groups: optional code -> group mapping; unmapped codes keep their code.

    Raises:
        CsmoeDataError: on an unknown ``climate_level``.
    """
    if climate_level not in ("symbol", "group"):
        raise CsmoeDataError(f"climate level must be 'symbol' or 'group', not {climate_level!r}")
    n = len(df)

    def kg_map(u: object) -> str:
        return climate_group(str(u)) if climate_level == "group" else str(u)

    def lc_map(u: Scalar) -> str:
        if landcover_groups is None:
            return str(u)
        try:
            return landcover_groups.get(int(u), str(u))
        except (TypeError, ValueError):
            return str(u)

    kg = _labels_of(df[schema.KG_MAJOR] if schema.KG_MAJOR in df.columns else None, n, kg_map)
    lc = _labels_of(df[schema.LC_MAJOR] if schema.LC_MAJOR in df.columns else None, n, lc_map)
    # combine through codes so that the string concatenation runs once per distinct pair
    pairs = pd.MultiIndex.from_arrays([kg, lc])
    codes, uniques = pd.factorize(pairs)
    names = np.array([f"{a}|{b}" for a, b in uniques], dtype=object)
    return names[codes]
