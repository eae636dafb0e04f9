"""``csmoe study``: the paper's comparison at any scale, one resumable cell per model and training set.

For every model ``m`` and training set ``t`` (default: the evaluation manifest itself) a cell
``OUT/cells/<m>__<t>/`` runs, with the same budget and seed for every cell:

1. ``pretrain/``: ``csmoe train`` for ``budget`` steps on ``t`` (its ``train`` split when it has one,
   so that pretraining on the evaluation manifest never sees its val/test rows);
2. ``embeddings.parquet``: ``csmoe embed`` of the evaluation manifest;
3. ``retrieval.json``: ``eval retrieval`` in the four directions (queries and archive: all rows);
4. ``probe.json``: ``eval probe`` (linear probe and kNN) on the manifest's train/val/test;
5. ``finetune/``: ``csmoe finetune`` (``full``, layer-wise lr decay) on the same splits;
6. ``segment/``: ``csmoe eval segment`` when the manifest has a ``mask_path`` column.

Each step is skipped when its output exists (every output is written atomically) and the two
training steps run with ``--resume``, so an interrupted study continues where it stopped and a
finished one only re-renders its report. FLOPs and parameters are those of ``csmoe model-info``
(:func:`csmoe_model.flops.model_report`: encoder FLOPs per S1+S2 pair, encoder parameters).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csmoe_common.atomic import new_folder, write_json, write_text
from csmoe_common.manifest import imagery_root
from csmoe_model.errors import CsmoeError

__all__ = ["StudyConfig", "StudyResult", "run_study"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class StudyConfig:
    """What a study compares and how.

    Attributes:
        manifest: the evaluation manifest (``split``, labels, optionally ``mask_path``).
        models: model presets.
        train_sets: pretraining manifests (default: the evaluation manifest).
        budget: pretraining steps of every cell.
        out: the study folder.
        batch_size, lr, seed, device, cache_dir, workers: pretraining options (shared).
        data_root: the folder the relative imagery paths of every manifest (evaluation and
            training sets) are relative to (``None``: each manifest's folder). Not one of the
            study's settings (it says where the files are, not what is computed); a cell's
            unfinished runs refuse another one on resume, as ``csmoe train`` does.
        model_overrides: config fields changed for every model (e.g. ``{"img_size": 16}``).
        finetune_steps, segment_steps: steps of the downstream runs.
        labels_column: the scene labels (default ``labels19``, else ``labels``).
        k: retrieval cut-off.
    """

    manifest: str
    models: list[str]
    out: str
    train_sets: list[str] = field(default_factory=list)
    budget: int = 1000
    batch_size: int = 64
    lr: float = 5e-4
    seed: int = 0
    device: str = "auto"
    cache_dir: str | None = None
    data_root: str | None = None
    workers: int = 0
    model_overrides: dict[str, Any] = field(default_factory=dict)
    finetune_steps: int = 200
    segment_steps: int = 200
    labels_column: str | None = None
    k: int = 10

    def validate(self) -> None:
        """Check the options.

        Raises:
            CsmoeError: no model, repeated names, a non-positive budget, a non-finite --lr or a
                seed outside 0..2**32 - 1.
        """
        if not self.models:
            raise CsmoeError("--models names no model")
        if len(set(self.models)) != len(self.models):
            raise CsmoeError("--models names a model twice")
        if len(set(self.train_sets)) != len(self.train_sets):
            raise CsmoeError("--train-sets names a file twice")
        for name in ("budget", "batch_size", "finetune_steps", "segment_steps", "k"):
            if getattr(self, name) < 1:
                raise CsmoeError(f"--{name.replace('_', '-')} must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise CsmoeError(f"--lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.seed < 2**32:  # numpy's seeds are 32-bit
            raise CsmoeError(f"--seed must be in 0..{2**32 - 1}, got {self.seed}")


@dataclass
class StudyResult:
    """The study's cells and where the report went."""

    out: Path
    cells: list[dict[str, Any]]
    report: dict[str, Any]


def _set_name(path: str) -> str:
    return _SAFE.sub("_", Path(path).stem)


def _has_split(path: str) -> bool:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if "split" not in schema.names:
        return False
    values = pq.read_table(path, columns=["split"]).column("split").to_pylist()
    return "train" in values


def _has_masks(path: str) -> bool:
    import pyarrow.parquet as pq

    from csmoe_common.manifest import MASK_PATH

    schema = pq.read_schema(path)
    if MASK_PATH not in schema.names:
        return False
    return any(v for v in pq.read_table(path, columns=[MASK_PATH]).column(MASK_PATH).to_pylist())


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def run_cell(
    cfg: StudyConfig,
    model: str,
    train_set: str,
    folder: Path,
    *,
    log: Callable[[str], None],
    progress: bool,
) -> dict[str, Any]:
    """Run (or finish) one cell; return its figures.

    Raises:
        CsmoeError: from any of its steps.
    """
    from csmoe_model.eval.embed import embed_manifest
    from csmoe_model.eval.embeddings import read_embeddings
    from csmoe_model.eval.probe import evaluate_probe
    from csmoe_model.eval.retrieval import evaluate_retrieval
    from csmoe_model.finetune.config import FinetuneConfig
    from csmoe_model.finetune.loop import finetune
    from csmoe_model.flops import model_report
    from csmoe_model.train.config import TrainConfig
    from csmoe_model.train.loop import train

    folder.mkdir(parents=True, exist_ok=True)
    pre = folder / "pretrain"
    name = f"{model} on {_set_name(train_set)}"
    if not (pre / "model.safetensors").is_file():
        log(f"[{name}] pretraining for {cfg.budget} steps")
        tcfg = TrainConfig.from_dict({
            "manifest": train_set, "model": model, "out": str(pre), "max_steps": cfg.budget,
            "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed, "device": cfg.device,
            "cache_dir": cfg.cache_dir, "data_root": cfg.data_root, "workers": cfg.workers,
            "split": "train" if _has_split(train_set) else None,
            "model_overrides": dict(cfg.model_overrides),
            "checkpoint_every": max(1, min(1000, cfg.budget // 2)), "log_every": max(1, min(10, cfg.budget)),
        })  # fmt: skip
        train(tcfg, resume=True, log=log, progress=progress)
    emb = folder / "embeddings.parquet"
    if not emb.is_file():
        log(f"[{name}] embedding the evaluation manifest")
        embed_manifest(cfg.manifest, emb, run=pre, device=cfg.device, cache_dir=cfg.cache_dir,
                       workers=cfg.workers, progress=progress, data_root=cfg.data_root)  # fmt: skip
    embeddings = None
    retrieval_file = folder / "retrieval.json"
    if not retrieval_file.is_file():
        embeddings = read_embeddings(emb)
        n = len(embeddings)
        rep = evaluate_retrieval(embeddings, labels_column=cfg.labels_column, k=min(cfg.k, max(1, n - 1)),
                                 device=cfg.device)  # fmt: skip
        write_json(retrieval_file, rep.to_dict(), overwrite=True)
    probe_file = folder / "probe.json"
    if not probe_file.is_file():
        embeddings = embeddings or read_embeddings(emb)
        probe = evaluate_probe(embeddings, labels_column=cfg.labels_column, sensor="both",
                               knn_k=min(20, max(1, len(embeddings) // 2)), seed=cfg.seed,
                               device=cfg.device)  # fmt: skip
        write_json(probe_file, probe.to_dict(), overwrite=True)
    common = {"manifest": cfg.manifest, "run": str(pre), "sensor": "both", "device": cfg.device,
              "seed": cfg.seed, "cache_dir": cfg.cache_dir, "data_root": cfg.data_root,
              "workers": cfg.workers, "batch_size": min(cfg.batch_size, 32)}  # fmt: skip
    ft = folder / "finetune"
    if not (ft / "metrics.json").is_file():
        log(f"[{name}] fine-tuning for scene classification ({cfg.finetune_steps} steps)")
        fcfg = FinetuneConfig.from_dict({**common, "task": "classify", "out": str(ft), "mode": "full",
                                         "labels_column": cfg.labels_column,
                                         "max_steps": cfg.finetune_steps, "lr": 1e-3})  # fmt: skip
        finetune(fcfg, resume=True, log=log, progress=progress)
    seg = folder / "segment"
    segment: dict[str, Any] | None = None
    if _has_masks(cfg.manifest):
        if not (seg / "metrics.json").is_file():
            log(f"[{name}] segmentation ({cfg.segment_steps} steps, frozen encoder)")
            scfg = FinetuneConfig.from_dict({**common, "task": "segment", "out": str(seg),
                                             "mode": "linear", "max_steps": cfg.segment_steps,
                                             "lr": 1e-3, "sensor": "s2"})  # fmt: skip
            finetune(scfg, resume=True, log=log, progress=progress)
        segment = _read_json(seg / "metrics.json")
    report = model_report(model, **cfg.model_overrides)
    retrieval = _read_json(retrieval_file)
    probe_rep = _read_json(probe_file)
    fin = _read_json(ft / "metrics.json")
    k = retrieval["meta"]["k"]
    return {
        "model": model,
        "train_set": _set_name(train_set),
        "train_set_path": train_set,
        "encoder_gflops": report.encode.total / 1e9,
        "encoder_params_m": report.params_encoder / 1e6,
        "retrieval_k": k,
        "retrieval_map": {d: v.get(f"map@{k}") for d, v in retrieval.items() if d != "meta"},
        "probe_linear_macro_map": probe_rep["linear"].get("macro_map"),
        "probe_knn_macro_map": probe_rep["knn"].get("macro_map"),
        "finetune_macro_map": fin.get("macro_map"),
        "finetune_micro_f1": fin.get("micro_f1"),
        "segment_miou": None if segment is None else segment.get("miou"),
        "folder": str(folder),
    }


def run_study(
    cfg: StudyConfig, *, log: Callable[[str], None] = print, progress: bool = False
) -> StudyResult:
    """Run every cell (resuming finished and interrupted ones), then write the report.

    Writes ``OUT/study.json``, ``OUT/study.md`` and ``OUT/tradeoff.png``.

    Raises:
        CsmoeError: bad options or a failing cell.
    """
    # a study folder this call creates goes again when it fails with nothing in it (finished
    # cells stay: a rerun resumes them)
    with new_folder(cfg.out, whole=False):
        return _run_study(cfg, log=log, progress=progress)


def _run_study(
    cfg: StudyConfig, *, log: Callable[[str], None] = print, progress: bool = False
) -> StudyResult:
    """:func:`run_study` in a study folder that exists."""
    from csmoe_model.study.report import plot_tradeoff, study_markdown

    cfg.validate()
    out = Path(cfg.out)
    sets = cfg.train_sets or [cfg.manifest]
    for path in [cfg.manifest, *sets]:
        if not Path(path).is_file():
            raise CsmoeError(f"manifest not found: {path}")
    if cfg.data_root is not None:
        imagery_root(cfg.manifest, cfg.data_root)  # a missing folder fails before any cell runs
    names = [_set_name(s) for s in sets]
    if len(set(names)) != len(names):
        raise CsmoeError("two --train-sets have the same file name; rename one")
    settings = {
        "manifest": cfg.manifest, "models": cfg.models, "train_sets": sets, "budget": cfg.budget,
        "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
        "model_overrides": cfg.model_overrides, "finetune_steps": cfg.finetune_steps,
        "segment_steps": cfg.segment_steps, "k": cfg.k,
    }  # fmt: skip
    settings_file = out / "settings.json"
    if settings_file.is_file():
        saved = _read_json(settings_file)
        if saved != json.loads(json.dumps(settings)):
            diff = sorted(
                k for k in settings if saved.get(k) != json.loads(json.dumps(settings[k]))
            )
            raise CsmoeError(
                f"{out} holds a study with other settings ({', '.join(diff)}); use another --out"
            )
    else:
        write_json(settings_file, settings)
    cells = []
    for model in cfg.models:
        for path in sets:
            folder = out / "cells" / f"{_SAFE.sub('_', model)}__{_set_name(path)}"
            cells.append(run_cell(cfg, model, path, folder, log=log, progress=progress))
    report = {"settings": settings, "cells": cells, "baseline": cfg.models[0]}
    write_json(out / "study.json", report, overwrite=True)
    write_text(out / "study.md", study_markdown(report), overwrite=True)
    plot_tradeoff(report, out / "tradeoff.png")
    return StudyResult(out, cells, report)
