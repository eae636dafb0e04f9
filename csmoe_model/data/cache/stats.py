"""Per-band normalisation statistics of a cache, computed on its training rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from csmoe_model.data.imagery import s2_groups


def compute_stats(
    folder: Path, n_s2: int, rows: np.ndarray, chunk: int = 64
) -> dict[str, list[float]]:
    """Per-band mean and std (float64 accumulation) of the cached arrays over ``rows``."""
    out: dict[str, list[float]] = {}
    sensors = {"s2": s2_groups(n_s2), "s1": ("s1",)}
    for sensor, groups in sensors.items():
        means: list[float] = []
        stds: list[float] = []
        for g in groups:
            arr = np.load(folder / f"{g}.npy", mmap_mode="r")
            c = arr.shape[1]
            s = np.zeros(c)
            ss = np.zeros(c)
            count = 0
            for a in range(0, len(rows), chunk):
                x = arr[rows[a : a + chunk]].astype(np.float64)
                s += x.sum(axis=(0, 2, 3))
                ss += np.square(x).sum(axis=(0, 2, 3))
                count += x.shape[0] * x.shape[2] * x.shape[3]
            mean = s / max(count, 1)
            std = np.sqrt(np.maximum(ss / max(count, 1) - mean**2, 0.0))
            means += mean.tolist()
            stds += [float(v) if v > 1e-6 else 1.0 for v in std]  # constant band: leave it unscaled
        out[f"{sensor}_mean"] = means
        out[f"{sensor}_std"] = stds
    return out


def stats_rows(split: np.ndarray | None, valid: np.ndarray) -> tuple[np.ndarray, str]:
    """The rows statistics are computed on: valid rows with split "train", else all valid rows."""
    if split is not None:
        train = np.flatnonzero(valid & (split.astype(str) == "train"))
        if len(train):
            return train, f"split == 'train' ({len(train)} rows)"
    rows = np.flatnonzero(valid)
    return rows, f"all valid rows ({len(rows)})"
