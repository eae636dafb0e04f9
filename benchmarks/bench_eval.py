"""Exact cosine top-k retrieval: csmoe ``cosine_search`` vs scikit-learn brute-force kNN vs numpy.

Run side by side in one process on the same random float32 embeddings (all rows are queries and
archive, the query itself excluded, k = 10), and print times, ratios and agreement of the lists.

    python benchmarks/bench_eval.py --rows 10000 --dim 384
    python benchmarks/bench_eval.py --rows 20000 --dim 768
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from csmoe_model.eval.metrics import cosine_search, retrieval_curves


def best_of(func: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return min(times), out


def numpy_topk(x: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Chunked matmul + argpartition + stable sort of the top k, self excluded."""
    n = x.shape[0]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, chunk):
        sim = xn[s : s + chunk] @ xn.T
        rows = np.arange(sim.shape[0])
        sim[rows, rows + s] = -np.inf
        part = np.argpartition(-sim, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, part, 1), axis=1, kind="stable")
        out[s : s + chunk] = np.take_along_axis(part, order, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n, k = args.rows, args.k
    x = rng.normal(size=(n, args.dim)).astype(np.float32)
    ids = np.array([f"p{i}" for i in range(n)], dtype=object)
    labels = rng.random((n, args.classes)) < 0.15

    t_ours, res = best_of(
        lambda: cosine_search(x, x, k, query_ids=ids, archive_ids=ids, chunk_size=1024),
        args.repeats,
    )

    def sklearn_topk() -> np.ndarray:
        nn = NearestNeighbors(
            n_neighbors=k + 1, metric="cosine", algorithm="brute", n_jobs=args.threads
        )
        return nn.fit(x).kneighbors(x)[1]

    t_sk, idx_sk = best_of(sklearn_topk, args.repeats)
    t_np, idx_np = best_of(lambda: numpy_topk(x, k), args.repeats)
    t_metrics, _ = best_of(lambda: retrieval_curves(labels, labels, res.indices), args.repeats)

    sk_noself = np.array([[j for j in row if j != i][:k] for i, row in enumerate(idx_sk)])
    same_sk = (sk_noself == res.indices).all(1).mean()
    same_np = (idx_np == res.indices).all(1).mean()
    print(f"rows={n} dim={args.dim} k={k} threads={args.threads} (best of {args.repeats})")
    print(f"  csmoe cosine_search   {t_ours:8.2f} s  {n / t_ours:9.0f} queries/s")
    print(f"  scikit-learn brute    {t_sk:8.2f} s  {t_sk / t_ours:6.2f}x slower than csmoe")
    print(f"  numpy argpartition    {t_np:8.2f} s  {t_np / t_ours:6.2f}x slower than csmoe")
    print(f"  identical top-{k} lists: {same_sk:.4f} vs scikit-learn, {same_np:.4f} vs numpy")
    print(f"  metrics after search  {t_metrics:8.3f} s")


if __name__ == "__main__":
    main()
