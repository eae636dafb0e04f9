"""Legend registry: raster values -> classes (names, colours, column keys).

A legend maps each integer value a raster stores to a class. Land-cover classes are keyed by
their product code (columns ``lc_<code>``); Köppen classes by their symbol (columns
``kg_<symbol>``), so rasters with different integer encodings (Beck 1-30, Rubel 1-31) give the
same columns. Values a legend declares as ``nodata`` (e.g. Rubel's 32 = ocean) are excluded
from the valid area like the raster's own nodata. Values that are neither a class nor nodata
are *unknown*: the engine counts them and reports them, it never drops them silently.

Built-in legends (``csmoe_data/legends/<name>.json``; sources in ``legends/README.md``):

- ``worldcover``: ESA WorldCover 10-100.
- ``corine``: CORINE Land Cover level-3 codes 111-523.
- ``corine-index``: the official CLC 100 m GeoTIFF's index encoding 1-44 (48-50, 255 nodata);
  its classes are reported with the level-3 codes, so columns equal those of ``corine``.
- ``modis-igbp``: IGBP 0-16 (255 nodata).
- ``dynamic-world``: Dynamic World labels 0-8.
- ``nlcd``: NLCD 11-95 (0 and 250 nodata).
- ``koppen-beck``: Köppen-Geiger, Beck et al. 1-30 (0 nodata).
- ``koppen-rubel``: Köppen-Geiger, Rubel et al. 1-31 (32 = ocean, excluded).
- ``koppen-beck-main``: Beck et al.'s main-group maps, 1 A ... 5 E (0 ocean), columns
  ``kg_A`` ... ``kg_E``.

User legends: a JSON file ``{"<value>": "<name>"}`` or
``{"<value>": {"name": ..., "color": "#rrggbb", "code": <int>, "nodata": false}}`` (``symbol``
and ``rgb`` are accepted as aliases of ``name`` and ``color``, so Beck's published legend file
loads as is), a JSON file in the built-in format (``{"classes": [...]}``), or a CSV file with a
header ``code,name[,color]``. In a climate legend each name starts with the Köppen symbol or
main group (``Cfb``, ``Cfb temperate ...``, ``A tropical``: the first word is the column key); an
entry marked ``"nodata": true``, or (unless marked ``"nodata": false``) named like
``ocean``, ``nodata`` or ``ocean/nodata``, is excluded like nodata, so Beck's own main-group
legend file (``"0": "ocean/nodata"``, ``"1": "A tropical"``) loads as is.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from csmoe_common.errors import UnknownNameError
from csmoe_common.registry import Registry
from csmoe_data.errors import CsmoeDataError

LEGENDS_DIR = Path(__file__).resolve().parent / "legends"

Kind = Literal["landcover", "climate"]

#: built-in legend name -> kind (each is ``legends/<name>.json``)
LEGENDS: Registry[Kind] = Registry("legend")
_BUILTIN: tuple[tuple[str, Kind], ...] = (
    ("worldcover", "landcover"),
    ("corine", "landcover"),
    ("corine-index", "landcover"),
    ("modis-igbp", "landcover"),
    ("dynamic-world", "landcover"),
    ("nlcd", "landcover"),
    ("koppen-beck", "climate"),
    ("koppen-rubel", "climate"),
    ("koppen-beck-main", "climate"),
)
for _name, _kind in _BUILTIN:
    LEGENDS.add(_name, _kind)

#: index returned by :meth:`Legend.lookup_table` for values the legend lacks
UNKNOWN = -1
#: index returned by :meth:`Legend.lookup_table` for legend-declared nodata values
NODATA = -2

_HEX = re.compile(r"^#?[0-9a-fA-F]{6}$")
_KOPPEN = re.compile(r"^[A-E][A-Za-z]{0,2}$")
#: names that mark a climate legend entry as nodata (Beck's "ocean/nodata", Rubel's "Ocean")
_NODATA_NAME = re.compile(
    r"^\s*(ocean|sea|water|no[ _-]?data|missing)(\s*[/,;&+-]\s*|\s+)?"
    r"(ocean|sea|water|no[ _-]?data|missing)?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LegendClass:
    """One class of a legend.

    Attributes:
        value: the integer the raster stores.
        code: the class code reported in columns and ``lc_major`` (equals ``value`` except for
            re-encoded legends such as ``corine-index``).
        name: human-readable name (the symbol for Köppen classes).
        color: ``#rrggbb`` or None.
        symbol: Köppen symbol (climate legends only).
        group: Köppen main group letter A-E (climate legends only).
    """

    value: int
    code: int
    name: str
    color: str | None = None
    symbol: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Legend:
    """An ordered set of classes plus the values excluded as nodata.

    Attributes:
        name: registry name, or the file name for user legends.
        kind: ``landcover`` (columns ``lc_<code>``) or ``climate`` (columns ``kg_<symbol>``).
        classes: the classes, in legend (= column) order.
        nodata: raster values excluded from the valid area.
        title: one-line description.
        reference: provenance note.
        source: ``builtin`` or the user file's path.
    """

    name: str
    kind: Kind
    classes: tuple[LegendClass, ...]
    nodata: tuple[int, ...] = ()
    title: str = ""
    reference: str = ""
    source: str = "builtin"
    _by_value: dict[int, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.classes:
            raise CsmoeDataError(f"legend {self.name!r} has no classes")
        by_value: dict[int, int] = {}
        for i, c in enumerate(self.classes):
            if c.value in by_value:
                raise CsmoeDataError(f"legend {self.name!r} lists value {c.value} twice")
            by_value[c.value] = i
        keys = self.keys
        if len(set(keys)) != len(keys):
            raise CsmoeDataError(f"legend {self.name!r} has duplicate column keys")
        self._by_value.update(by_value)

    @property
    def prefix(self) -> str:
        """Column prefix: ``lc`` or ``kg``."""
        return "lc" if self.kind == "landcover" else "kg"

    @property
    def keys(self) -> list[str]:
        """Column suffix of each class: the code (land cover) or the symbol (climate)."""
        if self.kind == "climate":
            return [str(c.symbol) for c in self.classes]
        return [str(c.code) for c in self.classes]

    @property
    def columns(self) -> list[str]:
        """Per-class column names, in legend order (``lc_10``..., ``kg_Af``...)."""
        return [f"{self.prefix}_{k}" for k in self.keys]

    @property
    def values(self) -> np.ndarray:
        """Raster values of the classes, in legend order."""
        return np.array([c.value for c in self.classes], dtype=np.int64)

    @property
    def codes(self) -> np.ndarray:
        """Reported class codes, in legend order."""
        return np.array([c.code for c in self.classes], dtype=np.int64)

    def index_of(self, value: int) -> int:
        """Class index of a raster value, :data:`NODATA` or :data:`UNKNOWN`."""
        if value in self._by_value:
            return self._by_value[value]
        return NODATA if value in self.nodata else UNKNOWN

    def lookup_table(self, size: int) -> np.ndarray:
        """Array ``t`` of length ``size`` with ``t[v]`` = class index / NODATA / UNKNOWN.

        Raster values >= 0 and < ``size`` index it directly (fast path for 8/16-bit rasters).
        """
        table = np.full(size, UNKNOWN, dtype=np.int32)
        for v in self.nodata:
            if 0 <= v < size:
                table[v] = NODATA
        for v, i in self._by_value.items():
            if 0 <= v < size:
                table[v] = i
        return table

    def to_metadata(self) -> dict[str, Any]:
        """JSON form for the manifest metadata."""
        classes = []
        for c in self.classes:
            item: dict[str, Any] = {"value": c.value, "code": c.code, "name": c.name}
            if c.color:
                item["color"] = c.color
            if c.symbol:
                item["symbol"] = c.symbol
                item["group"] = c.group
            classes.append(item)
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "title": self.title,
            "nodata": list(self.nodata),
            "columns": self.columns,
            "classes": classes,
        }


def list_legends(kind: Kind | None = None) -> list[str]:
    """Names of the built-in legends, optionally only those of one kind."""
    return [n for n, k in LEGENDS.items() if kind is None or k == kind]


def legend_kind(name: str) -> Kind:
    """The kind (``landcover`` or ``climate``) of the built-in legend ``name``.

    Raises:
        UnknownNameError: if ``name`` is not a built-in legend (the message lists them).
    """
    return LEGENDS.get(name)


def _color(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) and len(value) >= 3:
        return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in value[:3]))
    if isinstance(value, str) and _HEX.match(value.strip()):
        return "#" + value.strip().lstrip("#").lower()
    raise CsmoeDataError(f"{where}: bad colour {value!r}; expected #rrggbb")


def _int(value: Any, where: str) -> int:
    try:
        out = int(str(value).strip())
    except ValueError:
        raise CsmoeDataError(f"{where}: class code {value!r} is not an integer") from None
    if not -(2**63) <= out < 2**63:  # raster values and codes are held as int64
        raise CsmoeDataError(f"{where}: class code {value!r} is beyond the 64-bit integer range")
    return out


def _make_class(
    kind: Kind, value: int, name: str, color: str | None, code: int | None, where: str
) -> LegendClass:
    name = str(name).strip()
    if not name:
        raise CsmoeDataError(f"{where}: class {value} has an empty name")
    symbol = group = None
    if kind == "climate":
        # "Cfb" or "Cfb  Temperate, no dry season, warm summer" or Beck's main groups "A tropical"
        head = name.split()[0]
        if not _KOPPEN.match(head):
            raise CsmoeDataError(
                f"{where}: {name!r} (value {value}) does not start with a Köppen symbol such as "
                "Cfb or a main group A-E"
            )
        symbol, group = head, head[0]
    return LegendClass(
        value=value,
        code=value if code is None else code,
        name=name,
        color=color,
        symbol=symbol,
        group=group,
    )


def _from_entries(
    entries: list[dict[str, Any]], kind: Kind, where: str
) -> tuple[list[LegendClass], list[int]]:
    classes: list[LegendClass] = []
    nodata: list[int] = []
    for e in entries:
        value = _int(e.get("value", e.get("code")), where)
        name = e.get("name", e.get("symbol"))
        if name is None:
            raise CsmoeDataError(f"{where}: class {value} has no name")
        marked = e.get("nodata")
        if marked or (
            marked is None and kind == "climate" and _NODATA_NAME.match(str(name)) is not None
        ):
            nodata.append(value)
            continue
        code = e.get("code") if "value" in e else None
        classes.append(
            _make_class(
                kind,
                value,
                name,
                _color(e.get("color", e.get("rgb")), where),
                None if code is None else _int(code, where),
                where,
            )
        )
    return classes, nodata


def _parse_json(path: Path, kind: Kind) -> tuple[list[LegendClass], list[int], dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CsmoeDataError(f"cannot read legend {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CsmoeDataError(f"legend {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CsmoeDataError(f"legend {path}: expected a JSON object")
    if "classes" in data:  # the built-in format
        if not isinstance(data["classes"], list):
            raise CsmoeDataError(f"legend {path}: 'classes' must be a list")
        classes, nodata = _from_entries(data["classes"], kind, str(path))
        nodata += [_int(v, str(path)) for v in data.get("nodata", [])]
        return classes, nodata, data
    entries = []
    for key, val in data.items():
        if isinstance(val, str):
            entries.append({"code": key, "name": val})
        elif isinstance(val, dict):
            entries.append({**val, "value": key})
        else:
            raise CsmoeDataError(f"legend {path}: entry {key!r} must be a name or an object")
    classes, nodata = _from_entries(entries, kind, str(path))
    return classes, nodata, {}


def _parse_csv(path: Path, kind: Kind) -> tuple[list[LegendClass], list[int]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CsmoeDataError(f"cannot read legend {path}: {exc}") from exc
    if not rows or not {"code", "name"} <= {(k or "").strip().lower() for k in rows[0]}:
        raise CsmoeDataError(f"legend {path}: expected a CSV header code,name[,color] and rows")
    entries = [{(k or "").strip().lower(): v for k, v in r.items()} for r in rows]
    return _from_entries(entries, kind, str(path))


@cache
def _builtin(name: str) -> Legend:
    path = LEGENDS_DIR / f"{name}.json"
    kind = LEGENDS.get(name)
    classes, nodata, data = _parse_json(path, kind)
    return Legend(
        name=name,
        kind=kind,
        classes=tuple(classes),
        nodata=tuple(sorted(set(nodata))),
        title=data.get("title", ""),
        reference=data.get("reference", ""),
    )


def load_legend(spec: str | Path, kind: Kind) -> Legend:
    """Return a built-in legend by name, or load a user legend file.

    Args:
        spec: a built-in name (see :data:`LEGENDS`) or a ``.json`` / ``.csv`` path.
        kind: ``landcover`` or ``climate``; a built-in legend of the other kind is refused.

    Raises:
        UnknownNameError: an unknown name (the message lists the known ones).
        CsmoeDataError: wrong kind, missing or malformed file, duplicate values, or (climate) a name that is not a Köppen symbol.
    """
    text = str(spec)
    if text in LEGENDS:
        if LEGENDS.get(text) != kind:
            raise CsmoeDataError(
                f"legend {text!r} is a {LEGENDS.get(text)} legend, not a {kind} legend; "
                f"{kind} legends: {', '.join(list_legends(kind))}"
            )
        return _builtin(text)
    path = Path(text).expanduser()
    if path.suffix.lower() not in (".json", ".csv"):
        # not a file name either: an unknown name (the built-ins of this kind, or a file)
        raise UnknownNameError(f"{kind} legend", text, [*list_legends(kind), "a .json/.csv file"])
    if not path.is_file():
        raise CsmoeDataError(f"legend file not found: {path}")
    if path.suffix.lower() == ".json":
        classes, nodata, data = _parse_json(path, kind)
    else:
        (classes, nodata), data = _parse_csv(path, kind), {}
    return Legend(
        name=data.get("name", path.stem) if isinstance(data, dict) else path.stem,
        kind=kind,
        classes=tuple(classes),
        nodata=tuple(sorted(set(nodata))),
        title=data.get("title", "") if isinstance(data, dict) else "",
        reference=data.get("reference", "") if isinstance(data, dict) else "",
        source=str(path.resolve()),
    )
