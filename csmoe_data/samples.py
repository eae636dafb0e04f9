"""Embedded real sample data, addressable as ``sample:<name>`` wherever a path is accepted.

Provenance and licences: ``csmoe_data/samples/README.md``.
"""

from __future__ import annotations

from pathlib import Path

from csmoe_data.errors import CsmoeDataError

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

#: name -> path relative to :data:`SAMPLES_DIR`
SAMPLES: dict[str, str] = {
    "koppen-rubel": "koppen/kg_rubel2017_5arcmin.tif",
    "modis-igbp": "landcover/mcd12c1_2019_igbp_005deg.tif",
    "bigearthnet": "bigearthnet",
}

SAMPLE_PREFIX = "sample:"


def list_samples() -> dict[str, Path]:
    """Return every embedded sample name with its absolute path."""
    return {name: SAMPLES_DIR / rel for name, rel in SAMPLES.items()}


def is_sample(value: str | Path) -> bool:
    """Whether ``value`` names an embedded sample (``sample:<name>``)."""
    return isinstance(value, str) and value.startswith(SAMPLE_PREFIX)


def resolve_path(value: str | Path) -> Path:
    """Resolve a user path or a ``sample:<name>`` reference to a filesystem path.

    Args:
        value: a path, or ``sample:koppen-rubel`` / ``sample:modis-igbp`` / ``sample:bigearthnet``.

    Returns:
        The path (not checked for existence unless it names a sample).

    Raises:
        CsmoeDataError: if ``value`` names an unknown sample or the sample's files are missing.
    """
    if not is_sample(value):
        return Path(value).expanduser()
    name = str(value)[len(SAMPLE_PREFIX) :]
    if name not in SAMPLES:
        known = ", ".join(SAMPLE_PREFIX + n for n in sorted(SAMPLES))
        raise CsmoeDataError(f"unknown sample {value!r}; known samples: {known}")
    path = SAMPLES_DIR / SAMPLES[name]
    if not path.exists():
        raise CsmoeDataError(f"sample {value!r} is missing from the installation ({path})")
    return path
