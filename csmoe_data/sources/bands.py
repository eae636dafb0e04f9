"""Choosing the band that holds the class codes of a multi-band raster.

A Dynamic World export has 10 bands (``water`` ... ``label``); reading band 1 silently gives
the water probability, not the label. So a raster with several bands needs ``--landcover-band``
/ ``--climate-band``: a 1-based index or a band description (GDAL ``DESCRIPTION``, or the name
of a NetCDF dimension's coordinate value).
"""

from __future__ import annotations

from collections.abc import Sequence

from csmoe_data.errors import CsmoeDataError

__all__ = ["band_listing", "select_band"]


def band_listing(descriptions: Sequence[str | None], limit: int = 12) -> str:
    """``1 (water), 2 (trees), ...`` for messages."""
    items = [f"{i} ({d})" if d else str(i) for i, d in enumerate(descriptions, start=1)]
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def select_band(
    spec: str | int | None,
    descriptions: Sequence[str | None],
    path: str,
    option: str,
) -> int:
    """The 1-based band index chosen by ``spec``.

    Args:
        spec: None, a 1-based index (int or digits) or a band description.
        descriptions: each band's description (None where it has none), in band order.
        path: the raster, for messages.
        option: the option's name, for messages (``--landcover-band``).

    Raises:
        CsmoeDataError: several bands and no ``spec`` (the message lists the bands), an index out
            of range, or a name no band carries.
    """
    count = len(descriptions)
    if count < 1:
        raise CsmoeDataError(f"{path} has no bands")
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        if count == 1:
            return 1
        raise CsmoeDataError(
            f"{path} has {count} bands: {band_listing(descriptions)}; "
            f"choose the band of class codes with {option} N or NAME"
        )
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 1 <= index <= count:
            raise CsmoeDataError(
                f"{option} {index}: {path} has bands 1..{count} ({band_listing(descriptions)})"
            )
        return index
    names = [d or "" for d in descriptions]
    if text in names:
        return names.index(text) + 1
    folded = [n.casefold() for n in names]
    if folded.count(text.casefold()) == 1:
        return folded.index(text.casefold()) + 1
    raise CsmoeDataError(
        f"{option} {text!r}: no band of {path} has that description; bands: "
        f"{band_listing(descriptions)}"
    )
