"""Generated embeddings: clusters carry labels, and the S1 embedding is a noisy copy of the S2 one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csmoe_model.eval.embeddings import write_embeddings

#: classes of each cluster; clusters 0 and 1 share "forest", the others share nothing
CLUSTER_LABELS = [
    ["forest", "water"],
    ["forest", "pasture"],
    ["urban"],
    ["arable land"],
    ["beaches"],
    ["wetlands", "shrub"],
]


def make_embeddings(
    n_per_cluster: int = 30, dim: int = 16, noise: float = 0.05, seed: int = 0
) -> dict[str, object]:
    """Rows with labels from their cluster; ``emb_s1`` = ``emb_s2`` + small noise."""
    rng = np.random.default_rng(seed)
    n_clusters = len(CLUSTER_LABELS)
    centres = rng.normal(size=(n_clusters, dim)) * 3.0
    cluster = np.repeat(np.arange(n_clusters), n_per_cluster)
    s2 = centres[cluster] + rng.normal(size=(len(cluster), dim))
    s1 = s2 + noise * rng.normal(size=s2.shape)
    splits = np.array(["train", "train", "val", "test", "test"])[np.arange(len(cluster)) % 5]
    order = rng.permutation(len(cluster))  # interleave clusters
    cluster, s1, s2, splits = cluster[order], s1[order], s2[order], splits[order]
    labels = [CLUSTER_LABELS[c] for c in cluster]
    return {
        "patch_id": [f"patch_{i:04d}" for i in range(len(cluster))],
        "split": list(splits),
        "emb": {"s1": s1.astype(np.float32), "s2": s2.astype(np.float32)},
        "labels": {"labels19": labels, "labels": [[f"{x} (43)" for x in lab] for lab in labels]},
        "cluster": cluster,
    }


@pytest.fixture
def generated() -> dict[str, object]:
    return make_embeddings()


@pytest.fixture
def emb_file(tmp_path: Path, generated: dict[str, object]) -> Path:
    path = tmp_path / "emb.parquet"
    write_embeddings(
        path,
        generated["patch_id"],
        generated["split"],
        generated["emb"],
        labels=generated["labels"],
        metadata={"model": "generated"},
    )
    return path
