"""The Jensen-Shannon divergence: one definition for the sampler and for ``csmoe-data stats``.

Both vectors are non-negative class masses, normalised here. Conventions (so that the figure the
sampler optimises is exactly the one ``stats`` reports):

* in bits (log base 2), so the value lies in [0, 1];
* two empty vectors (all zeros) are identical: 0; one empty and one not: 1 (maximally apart).
"""

from __future__ import annotations

import numpy as np


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits between two non-negative vectors.

    Args:
        p: class masses (any non-negative scale).
        q: class masses of the same length.

    Returns:
        A value in [0, 1].

    Raises:
        ValueError: if the shapes differ.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError(f"js_divergence: shapes differ ({p.shape} vs {q.shape})")
    return float(js_divergence_rows(p[None, :], q)[0])


def js_divergence_rows(P: np.ndarray, q: np.ndarray) -> np.ndarray:
    """JS divergence in bits of every row of ``P`` to ``q`` (vectorised :func:`js_divergence`).

    Args:
        P: (N, K) non-negative class masses, one distribution per row.
        q: (K,) non-negative class masses.

    Returns:
        (N,) float64 values in [0, 1], with the empty-vector conventions of the module.
    """
    P = np.asarray(P, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    sp = P.sum(axis=1)
    sq = float(q.sum())
    out = np.empty(len(P), dtype=np.float64)
    empty = sp <= 0
    if sq <= 0:
        out[:] = np.where(empty, 0.0, 1.0)
        return out
    Pn = P / np.where(empty, 1.0, sp)[:, None]
    qn = q / sq
    M = 0.5 * (Pn + qn[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(Pn > 0, Pn * np.log2(Pn / M), 0.0).sum(axis=1)
        b = np.where(qn[None, :] > 0, qn[None, :] * np.log2(qn[None, :] / M), 0.0).sum(axis=1)
    out[:] = np.clip(0.5 * a + 0.5 * b, 0.0, 1.0)
    out[empty] = 1.0
    return out
