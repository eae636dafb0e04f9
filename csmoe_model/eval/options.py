"""Defaults and choices of the evaluation functions, in one light module (no torch).

The library functions take their defaults from here and the ``csmoe embed`` / ``csmoe eval``
commands read them for their options, so help texts and behaviour cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum


class ProbeSensor(StrEnum):
    """Which embeddings a probe classifies: one sensor's, or both concatenated."""

    s1 = "s1"
    s2 = "s2"
    both = "both"


#: retrieval cut-off (items retrieved per query)
RETRIEVAL_K = 10
#: queries per similarity chunk (bounds the memory of the search)
RETRIEVAL_CHUNK_SIZE = 1024
#: largest cut-off of the precision@k / mAP@k curves (``--plots``)
CURVE_K = 100
#: neighbours of the kNN classifier
PROBE_KNN_K = 20
#: inverse regularisation strengths of the linear probe tried on ``val``
PROBE_CS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: the sensor probed by default
PROBE_SENSOR = ProbeSensor.s2
#: pairs per forward pass when embedding
EMBED_BATCH_SIZE = 256
#: loader (and cache-decoding) processes when embedding; 0 reads in this process
EMBED_WORKERS = 0
