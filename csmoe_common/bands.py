"""Band names and the fixed band order the model sees (documented in docs/MODEL_CARD.md and README).

Sentinel-2: CSMAE's ten bands (B02 B03 B04 B08 at 10 m, then B05 B06 B07 B11 B12 B8A at 20 m),
followed by the two 60 m bands B01 and B09 for 12-band models. Sentinel-1: VH, VV (CSMAE's order).
"""

S2_BANDS_10: tuple[str, ...] = (
    "B02",
    "B03",
    "B04",
    "B08",
    "B05",
    "B06",
    "B07",
    "B11",
    "B12",
    "B8A",
)
S2_BANDS_12: tuple[str, ...] = (*S2_BANDS_10, "B01", "B09")
S1_BANDS: tuple[str, ...] = ("VH", "VV")

#: Sentinel-2 resolution groups in model band order (their concatenation is ``S2_BANDS_12``)
S2_GROUPS: dict[str, tuple[str, ...]] = {
    "s2_10": ("B02", "B03", "B04", "B08"),
    "s2_20": ("B05", "B06", "B07", "B11", "B12", "B8A"),
    "s2_60": ("B01", "B09"),
}
#: size divisor of each group (and of ``s1``) relative to the 10 m size
GROUP_DIVISOR: dict[str, int] = {"s2_10": 1, "s2_20": 2, "s2_60": 6, "s1": 1}

#: native ground sampling distance in metres
BAND_GSD: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20, "VH": 10, "VV": 10,
}  # fmt: skip


def s2_bands(n: int) -> tuple[str, ...]:
    """Return the Sentinel-2 band order for a model with ``n`` S2 channels (10 or 12).

    Raises:
        ValueError: for any other count.
    """
    if n == 10:
        return S2_BANDS_10
    if n == 12:
        return S2_BANDS_12
    raise ValueError(f"Sentinel-2 models take 10 or 12 bands, not {n}")
