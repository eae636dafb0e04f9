"""Reports of csmoe eval: Markdown tables and precision-at-k plots."""

from __future__ import annotations

from pathlib import Path

import pytest

from csmoe_model.errors import CsmoeError
from csmoe_model.eval.embeddings import read_embeddings
from csmoe_model.eval.report import (
    plot_precision_curves,
    retrieval_markdown,
)
from csmoe_model.eval.retrieval import evaluate_retrieval


def test_reports_markdown_and_plots(emb_file: Path, tmp_path: Path) -> None:
    emb = read_embeddings(emb_file)
    rep = evaluate_retrieval(emb, k=10, curve_k=25)
    assert all(len(c["precision"]) == 25 for c in rep.curves.values())
    md = retrieval_markdown(rep)
    assert md.count("\n| S") == 4 and "mAP@10" in md
    files = plot_precision_curves(rep, tmp_path / "plots")
    assert [f.name for f in files] == ["precision_at_k.png", "map_at_k.png"]
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CsmoeError, match="exists"):
        plot_precision_curves(rep, tmp_path / "plots")
