"""Options of descriptor-driven sampling, shared by ``build-manifest --n`` and ``--pool``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class ClimateLevel(StrEnum):
    """Level of the Köppen-Geiger class in strata: the full symbol (Cfb) or its group (C)."""

    SYMBOL = "symbol"
    GROUP = "group"


class StrategyName(StrEnum):
    """The built-in sampling strategies (the registry may hold more; see ``list_strategies``)."""

    THEMATIC_CLIMATIC = "thematic-climatic"
    STRATIFIED = "stratified"
    CLUSTER = "cluster"
    RANDOM = "random"


@dataclass(frozen=True)
class SamplingOptions:
    """What to select from a descriptor pool.

    Attributes:
        n: number of rows to select; None keeps every row that passes the filters.
        strategy: a name from the strategy registry (``thematic-climatic``, ``stratified``,
            ``cluster``, ``random``).
        alpha: stratum budget exponent, n_s proportional to N_s ** alpha (1 representative, 0 equal).
        seed: random seed; same pool, options and seed give the same rows in the same order.
        climate_level: ``symbol`` (Cfb) or ``group`` (C) for strata.
        landcover_groups: optional JSON/CSV file mapping land-cover codes to coarser groups.
        min_valid_frac: rows whose land-cover or climate valid fraction is below this are dropped.
        where: optional filter on manifest columns, in the language of :mod:`csmoe_data.where`
            (parsed, never evaluated as code).
        min_distance: metres; no two selected footprints closer than this.
        split: split name -> fraction (e.g. train 0.8, val 0.1, test 0.1), spatially blocked.
        split_block_size: metres; cell size of the block grid of the splits (None: derived
            from the footprint size, see :mod:`csmoe_data.sampling.splits`).
    """

    n: int | None = None
    strategy: str = StrategyName.THEMATIC_CLIMATIC.value
    alpha: float = 0.5
    seed: int = 0
    climate_level: ClimateLevel = ClimateLevel.SYMBOL
    landcover_groups: Path | None = None
    min_valid_frac: float = 0.5
    where: str | None = None
    min_distance: float | None = None
    split: dict[str, float] | None = field(default=None)
    split_block_size: float | None = None

    def to_metadata(self) -> dict[str, Any]:
        """JSON-serialisable form for the manifest's file metadata."""
        out = asdict(self)
        out["landcover_groups"] = str(self.landcover_groups) if self.landcover_groups else None
        out["climate_level"] = str(self.climate_level)  # a plain string, whatever was passed
        return out


def parse_split(text: str) -> dict[str, float]:
    """Parse ``train=0.8,val=0.1,test=0.1`` into a name -> fraction mapping.

    Raises:
        ValueError: on a malformed item, a duplicate name, a negative fraction, or fractions
            that do not sum to 1 (within 1e-6).
    """
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"bad split item {item!r}; expected NAME=FRACTION, e.g. train=0.8")
        if name in out:
            raise ValueError(f"split {name!r} is given twice")
        try:
            frac = float(value)
        except ValueError:
            raise ValueError(f"bad split fraction {value!r} for {name!r}") from None
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"split fraction for {name!r} must lie in [0, 1], not {frac}")
        out[name] = frac
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split fractions sum to {total:g}, not 1")
    return out
