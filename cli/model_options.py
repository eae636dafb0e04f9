"""Option types and parsers shared by the model commands (``csmoe ...``); no commands here.

Defaults come from the library (``TrainConfig``, ``CacheSettings``, :mod:`csmoe_model.eval.options`)
so that the help and the behaviour cannot drift apart. Those modules import no torch.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from csmoe_common.errors import CsmoeError
from csmoe_model.data.cache.settings import CacheSettings
from csmoe_model.train.config import TrainConfig

#: the defaults of ``csmoe train`` (and of the cache options it shares with ``csmoe cache``)
TRAIN_DEFAULTS = TrainConfig()
CACHE_DEFAULTS = CacheSettings()


class S2BandCount(StrEnum):
    """Sentinel-2 bands a cache holds: CSMAE's 10, or 12 (with the 60 m bands B01, B09)."""

    twelve = "12"
    ten = "10"


class Season(StrEnum):
    """Which acquisition of a seasonal cache (SSL4EO-S12: 4 per location) a sample reads."""

    random = "random"
    s0 = "0"
    s1 = "1"
    s2 = "2"
    s3 = "3"


def parse_key_values(items: list[str] | None, option: str) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings (``-`` in keys read as ``_``).

    Values are JSON where they parse (``14``, ``[0, 2]``, ``null``, ``true``), else strings.

    Raises:
        CsmoeError: for an item without ``=`` or without a key.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CsmoeError(f"{option} expects KEY=VALUE, not {item!r}")
        try:
            out[key.strip().replace("-", "_")] = json.loads(raw)
        except ValueError:
            out[key.strip().replace("-", "_")] = raw
    return out


def parse_bands(value: str | None) -> tuple[str, ...] | None:
    """``B02,B03,...`` -> ``("B02", "B03", ...)``; ``None`` or empty -> ``None``."""
    return tuple(b.strip() for b in value.split(",") if b.strip()) if value else None


ManifestOpt = Annotated[
    Path, typer.Option("--manifest", "-m", help="Manifest written by csmoe-data build-manifest.")
]
DataRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        help="Folder the manifest's relative imagery (and mask) paths are relative to, for a "
        "manifest copied or moved away from its imagery (default: the manifest's folder). "
        "Absolute paths and URLs are used as written.",
        file_okay=False,
    ),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Parent folder of imagery caches (default: $CSMOE_CACHE_DIR or ~/.cache/csmoe).",
        file_okay=False,
    ),
]
S2BandsOpt = Annotated[
    str | None,
    typer.Option(
        "--s2-bands",
        help="Band order of multi-band S2 GeoTIFFs without band descriptions, e.g. B02,B03,B04,B08,...",
    ),
]
S1BandsOpt = Annotated[
    str | None,
    typer.Option(
        "--s1-bands", help="Band order of multi-band S1 GeoTIFFs without descriptions, e.g. VV,VH."
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show progress bars (on stderr).")
]
