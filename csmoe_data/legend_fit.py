"""Does the legend fit the raster? A warning, naming the likely legend, when it does not.

A legend that does not fit gives wrong descriptors with exit 0: Beck's 5-class main-group map
(1 A ... 5 E) read with the 30-class ``koppen-beck`` legend turns every temperate pixel (3 = C)
into ``Aw`` and Berlin into a hot desert (4 = ``BWh``). Two signs give it away, checked on the
raster values found under the footprints (area-weighted):

- **a small prefix of a large legend**: a legend of 10 or more classes, of which only codes
  among its first 6 values occur, over footprints spread across several continents (60 degrees
  of longitude or 45 of latitude): no real 30-class climate map is that uniform, a 5-class one
  always is;
- **values the legend lacks**: more than a fifth of the valid area carries values the legend
  does not know (the level of the legend does not match the values: a main-group legend over
  a 30-class map, IGBP codes read with WorldCover's legend).

In both cases the built-in legends of the same kind that know (nearly) all the values found are
named, smallest first.
"""

from __future__ import annotations

from collections.abc import Mapping

from csmoe_data.legends import Legend

__all__ = ["legend_fit_warning"]

#: a legend this large whose values stay within its first PREFIX_MAX values is suspect
LARGE_LEGEND = 10
PREFIX_MAX = 6
#: spread of the footprints (degrees) that makes a small prefix implausible
WIDE_LON, WIDE_LAT = 60.0, 45.0
#: share of the valid area with unknown values that makes a legend suspect
UNKNOWN_SHARE = 0.2
#: share of the area a candidate legend must know
CANDIDATE_SHARE = 0.99


def _known_share(legend: Legend, value_area: Mapping[float, float]) -> float:
    total = sum(value_area.values())
    if total <= 0:
        return 1.0
    known = set(legend.values.tolist())
    return (
        sum(a for v, a in value_area.items() if float(v).is_integer() and int(v) in known) / total
    )


def _candidates(
    legend: Legend, value_area: Mapping[float, float], max_classes: int | None = None
) -> list[str]:
    from csmoe_data.legends import list_legends, load_legend

    found: list[tuple[int, str]] = []
    for name in list_legends(legend.kind):
        if name == legend.name:
            continue
        other = load_legend(name, legend.kind)
        if max_classes is not None and len(other.classes) > max_classes:
            continue  # another large legend would show the same small prefix
        nodata = set(other.nodata)
        area = {
            v: a for v, a in value_area.items() if not (float(v).is_integer() and int(v) in nodata)
        }
        if area and _known_share(other, area) >= CANDIDATE_SHARE:
            found.append((len(other.classes), name))
    return [name for _, name in sorted(found)]


def legend_fit_warning(
    legend: Legend,
    value_area: Mapping[float, float],
    lon_span: float,
    lat_span: float,
    option: str,
) -> str | None:
    """A one-line warning when the legend probably does not fit the raster's values, else None.

    Args:
        legend: the legend in use.
        value_area: raster value -> covered area under the footprints (valid pixels: classes of
            the legend and unknown values, not nodata).
        lon_span: longitudes spanned by the footprints (degrees).
        lat_span: latitudes spanned by the footprints (degrees).
        option: the legend's option, for the advice (``--climate-legend``).
    """
    area = {float(v): float(a) for v, a in value_area.items() if a > 0}
    if not area:
        return None

    codes = sorted(int(v) for v in area if v.is_integer())
    first = sorted(legend.values.tolist())[:PREFIX_MAX]
    wide = lon_span >= WIDE_LON or lat_span >= WIDE_LAT
    reason = None
    max_classes = None
    if (
        len(legend.classes) >= LARGE_LEGEND
        and wide
        and len(codes) >= 2
        and set(codes) <= set(first)
        and _known_share(legend, area) >= CANDIDATE_SHARE
    ):
        reason = (
            f"over footprints spanning {lon_span:.0f} x {lat_span:.0f} degrees the raster holds "
            f"only codes {', '.join(map(str, codes))} of legend {legend.name!r}'s "
            f"{len(legend.classes)}: its classes probably mean something else"
        )
        max_classes = PREFIX_MAX
    else:
        unknown = 1.0 - _known_share(legend, area)
        if unknown > UNKNOWN_SHARE:
            reason = (
                f"{unknown:.0%} of the valid area holds values legend {legend.name!r} lacks "
                f"(its level does not match the raster's values)"
            )
    if reason is None:
        return None
    names = _candidates(legend, area, max_classes)
    if names:
        advice = f"likely legend: {' or '.join(names)} ({option} {names[0]})"
    else:
        advice = f"check {option} (no built-in legend fits these values; give a legend file)"
    return f"{reason}; {advice}"
