"""Fixtures of generated Major TOM and SSL4EO-S12 v1.1 stores (registered in ``tests/conftest.py``).

Each is generated once per test session (a second or two) into a read-only-by-convention folder;
tests that damage or extend a corpus copy it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from corpus_stores import write_majortom, write_ssl4eo

#: the cells of the generated Major TOM corpus; S2 has one product per cell, S1 the first two
MAJORTOM_CELLS = ("535U_81R", "535U_82R", "536U_81R")  # Bavaria: land for the descriptors
#: S1 acquisitions are 3 and 39 days after the S2 ones of their cells
MAJORTOM_S1_DAYS = (3, 40)
#: the 10 m size of each generated product (Major TOM Core: 1068); 2 x 2 tiles of 120 px
MAJORTOM_SIZE = 252
#: index of the S2 product whose B04 GeoTIFF is truncated
MAJORTOM_DAMAGED = 1


@dataclass(frozen=True)
class MajorTomCorpus:
    """A generated Major TOM corpus: S2L2A as Parquet shards, S1RTC as the unpacked tree."""

    root: Path
    s2_metadata: Path
    s1_metadata: Path


@dataclass(frozen=True)
class Ssl4eoCorpus:
    """A generated SSL4EO-S12 v1.1 root: ``train/{S1GRD,S2L1C,S2L2A}/*.zarr.zip``."""

    root: Path
    files: int
    samples_per_file: int
    size: int
    damaged_file: int


@pytest.fixture(scope="session")
def majortom_corpus(tmp_path_factory: pytest.TempPathFactory) -> MajorTomCorpus:
    root = tmp_path_factory.mktemp("majortom")
    s2 = write_majortom(
        root / "Core-S2L2A",
        MAJORTOM_CELLS,
        "s2",
        layout="shards",
        size=MAJORTOM_SIZE,
        days=(0, 1, 2),
        damaged=(MAJORTOM_DAMAGED,),
        seed=1,
    )
    s1 = write_majortom(
        root / "Core-S1RTC",
        MAJORTOM_CELLS[:2],
        "s1",
        layout="tree",
        size=MAJORTOM_SIZE,
        days=MAJORTOM_S1_DAYS,
        seed=2,
    )
    return MajorTomCorpus(root, s2, s1)


@pytest.fixture(scope="session")
def ssl4eo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Ssl4eoCorpus:
    root = tmp_path_factory.mktemp("ssl4eo") / "SSL4EO-S12-v1.1"
    write_ssl4eo(root, n_files=3, samples_per_file=3, size=48, damaged_chunks=(2,), seed=3)
    return Ssl4eoCorpus(root, files=3, samples_per_file=3, size=48, damaged_file=2)
