"""One Jensen-Shannon divergence for the sampler and stats."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from csmoe_common.divergence import js_divergence, js_divergence_rows


def test_matches_scipy_in_bits() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = rng.random(7), rng.random(7)
        p[rng.random(7) < 0.3] = 0
        expected = jensenshannon(p, q, base=2) ** 2
        assert js_divergence(p, q) == pytest.approx(expected, abs=1e-12)


def test_empty_vector_conventions() -> None:
    assert js_divergence(np.zeros(3), np.zeros(3)) == 0.0
    assert js_divergence(np.zeros(3), np.ones(3)) == 1.0
    assert js_divergence(np.ones(3), np.zeros(3)) == 1.0
    assert js_divergence(np.array([1.0, 0]), np.array([0, 2.0])) == pytest.approx(1.0)


def test_rows_equal_the_scalar_form() -> None:
    rng = np.random.default_rng(1)
    P = rng.random((6, 5))
    P[2] = 0
    q = rng.random(5)
    rows = js_divergence_rows(P, q)
    assert rows == pytest.approx([js_divergence(p, q) for p in P], abs=1e-15)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="shapes"):
        js_divergence(np.ones(2), np.ones(3))
