"""Fine-tuning runs (``csmoe finetune``, ``csmoe eval segment``): one loop for both tasks.

The run directory follows ``csmoe train``'s conventions: ``config.json`` (the resolved fine-tuning
config, the model config, the normalisation statistics and the classes), ``metrics.csv`` (one row
per logged step: loss, learning rate, images/s, and the val score at validation steps),
TensorBoard logs in ``tb/``, atomic ``checkpoints/`` and ``--resume`` that continues exactly.
At the end: ``model.safetensors`` (the selected model: encoder and head), ``metrics.json`` (test
metrics, the selection, the run's facts) and ``metrics.md`` (a Markdown table).

Model selection: the model is validated every ``eval_every`` steps (default: once per epoch) and at
the last step, on the ``val`` rows; the best val score (macro mAP, or mIoU) wins, the earlier step
on ties. Its trainable weights are kept as ``checkpoints/best_step_XXXXXXXX.safetensors`` (the
checkpoint records which one). Without ``val`` rows the last model is reported, and the report says
so.

Exact resume: as in ``csmoe train``, the batches are a function of ``(seed, epoch)`` and the step,
the learning rate of the step, and every RNG state is checkpointed; validation uses no randomness.
A run stopped after step ``k`` and resumed computes the same losses and the same test metrics as an
uninterrupted one (on the CPU).

Imagery comes from the training cache and its device-side loader (no GeoTIFF decoding per epoch);
masks from the mask cache (:mod:`csmoe_model.data.masks`).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csmoe_common.atomic import new_folder, write_json, write_text
from csmoe_common.progress import progress_bar
from csmoe_model.errors import CsmoeError
from csmoe_model.finetune.backbone import Backbone, param_groups
from csmoe_model.finetune.config import FinetuneConfig, Mode, Task
from csmoe_model.finetune.export import (
    best_path,
    load_safetensors,
    prune_best,
    save_safetensors,
    trainable_state,
    write_scores,
)
from csmoe_model.finetune.tasks import ClassificationTask, FinetuneModel, SegmentationTask

__all__ = ["FinetuneResult", "finetune"]

RUN_FOLDERS: tuple[str, ...] = ("checkpoints", "tb")
RUN_FILES: tuple[str, ...] = (
    "metrics.csv", "config.json", "model.safetensors", "metrics.json", "metrics.md",
    "test_predictions.parquet",
)  # fmt: skip


@dataclass
class FinetuneResult:
    """What a finished (or stopped) fine-tuning run produced.

    Attributes:
        run_dir: the run directory.
        steps / total_steps: steps done and planned.
        metrics: the test metrics (``metrics.json``), ``None`` when stopped early.
        best_step / best_score: the selected model's step and val score (NaN without val rows).
        first_loss / final_loss: mean loss of the first and last logged interval.
        images_per_s: training throughput (mean over the run).
    """

    run_dir: Path
    steps: int
    total_steps: int
    metrics: dict[str, Any] | None
    best_step: int
    best_score: float
    first_loss: float | None
    final_loss: float | None
    images_per_s: float


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _prepare(
    cfg: FinetuneConfig, resume: bool, overwrite: bool, given: dict[str, Any]
) -> tuple[FinetuneConfig, bool]:
    from csmoe_model.train.checkpoint import load_latest_checkpoint

    out = Path(cfg.out)
    cfg_file = out / "config.json"
    if resume:
        if cfg_file.is_file() and load_latest_checkpoint(out / "checkpoints") is not None:
            saved = FinetuneConfig.from_dict(
                json.loads(cfg_file.read_text(encoding="utf-8"))["finetune"]
            )
            return saved.check_resume(given), True
        return cfg, False
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CsmoeError(
            f"{out} exists; pass --resume to continue that run or --overwrite to start over"
        )
    return cfg, False


def _clear(out: Path) -> None:
    for name in RUN_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def _make_task(
    cfg: FinetuneConfig, cache: Any, say: Callable[[str], None], progress: bool
) -> ClassificationTask | SegmentationTask:
    if cfg.task is Task.classify:
        from csmoe_model.data.manifest import read_manifest_labels

        column = cfg.labels_column
        labels = read_manifest_labels(cfg.manifest, [column] if column else [])
        if column is None:
            column = next((c for c in ("labels19", "labels") if c in labels), None)
            if column is None:
                raise CsmoeError(
                    "the manifest has no labels19 or labels column; name one with --labels-column"
                )
        return ClassificationTask(labels[column], cache.split, cache.valid, column, cfg.threshold)
    from csmoe_model.data.masks import open_mask_cache, resolve_legend

    legend = resolve_legend(cfg.manifest, cfg.classes_file)
    masks = open_mask_cache(
        cfg.manifest,
        cache.meta["key"],
        cache.size,
        Path(cache.path).parent,
        legend=legend,
        ignore_value=cfg.ignore_index,
        log=say,
        data_root=cfg.data_root,
    )
    unknown = masks.meta.get("unknown_values") or {}
    if unknown:
        shown = ", ".join(f"{k} ({v} px)" for k, v in list(unknown.items())[:5])
        say(f"warning: mask values outside the legend are ignored: {shown}")
    return SegmentationTask(masks, cache.split, cache.valid, cfg.head_channels)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def finetune(
    cfg: FinetuneConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    given: dict[str, Any] | None = None,
    save_predictions: str | Path | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> FinetuneResult:
    """Fine-tune a pretrained encoder with a task head; see the module docstring.

    Args:
        cfg: the configuration.
        resume: continue the run in ``cfg.out`` from its newest checkpoint (fresh start if none).
        overwrite: replace an existing run directory.
        given: the options given explicitly (checked against the saved run on ``resume``).
        save_predictions: ``segment`` only: write one predicted GeoTIFF per test patch here.
        log: one-line notes.
        progress: show a progress bar.
        on_step: called after every step with (steps done, loss); tests use it to simulate a kill.

    Raises:
        CsmoeError: bad options, manifest, weights or targets; a non-finite loss.
    """
    # a run folder this call creates goes again when it fails with nothing in it (finished
    # checkpoints stay: they can be resumed)
    with new_folder(cfg.out, whole=False):
        return _finetune(cfg, resume=resume, overwrite=overwrite, given=given,
                         save_predictions=save_predictions, log=log, progress=progress,
                         on_step=on_step)  # fmt: skip


def _finetune(
    cfg: FinetuneConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    given: dict[str, Any] | None = None,
    save_predictions: str | Path | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> FinetuneResult:
    """:func:`finetune` in a run folder that exists."""
    from csmoe_common.device import resolve_device
    from csmoe_model.data import CacheSettings, open_cache
    from csmoe_model.eval.embed import load_model
    from csmoe_model.train.checkpoint import (
        capture_rng,
        load_latest_checkpoint,
        restore_rng,
        save_checkpoint,
    )

    cfg.validate()
    if save_predictions is not None and cfg.task is not Task.segment:
        raise CsmoeError("--save-predictions is for segmentation")
    if save_predictions is not None:
        from csmoe_model.finetune.predictions import check_prediction_dir

        check_prediction_dir(save_predictions, overwrite)
    cfg, resuming = _prepare(cfg, resume, overwrite, given or {})
    out = Path(cfg.out)
    if resume and not resuming:
        log(f"nothing to resume in {out} (no checkpoint yet); starting a new run")
    if not resuming and out.exists() and (overwrite or resume):
        _clear(out)
    device = resolve_device(cfg.device)

    loaded = load_model(run=cfg.run, weights=cfg.weights, model=cfg.model)
    net = loaded.model
    n_s2_model = int(net.in_chans["s2"])
    bands = {
        k: tuple(loaded.cache[k]) if loaded.cache.get(k) else None for k in ("s2_bands", "s1_bands")
    }
    settings = CacheSettings(
        n_s2=int(loaded.cache.get("n_s2") or n_s2_model), size=loaded.cache.get("size"), **bands
    )
    cache = open_cache(
        cfg.manifest,
        cfg.cache_dir,
        settings,
        workers=cfg.workers,
        progress=progress,
        log=log,
        data_root=cfg.data_root,
    )
    stored = loaded.stats or getattr(net, "normalization", None)
    stats = stored or cache.stats
    if not stored:
        log(
            f"note: {loaded.source} records no normalisation statistics; the imagery is normalised "
            "with the manifest's train rows (the cache's statistics)"
        )
    task = _make_task(cfg, cache, log, progress)
    rows = task.data.rows
    train_encoder = cfg.mode is Mode.full

    _seed_all(cfg.seed)
    backbone = Backbone(net, cfg.sensor.value, cfg.out_indices)
    model = FinetuneModel(backbone, task.build_head(backbone)).to(device)
    if not train_encoder:
        backbone.requires_grad_(False)

    batch = min(cfg.batch_size, len(rows["train"]))
    if batch < cfg.batch_size:
        log(f"note: only {len(rows['train'])} training rows; batch size lowered to {batch}")
    loader_args: dict[str, Any] = {
        "device": device,
        "img_size": net.img_size,
        "n_s2": n_s2_model,
        "stats": stats,
        "workers": cfg.workers,
        "upsample": str(loaded.cache.get("upsample") or "bilinear"),
    }
    probe = cache.loader(
        rows["train"], batch, shuffle=True, drop_last=True, seed=cfg.seed, **loader_args
    )
    per_epoch = probe.plan.batches_per_epoch
    if cfg.total_steps is None:
        cfg.total_steps = (
            cfg.max_steps if cfg.max_steps is not None else (cfg.epochs or 10) * per_epoch
        )
    total = int(cfg.total_steps)
    eval_every = cfg.eval_every or per_epoch
    warmup = int(round(cfg.warmup_fraction * total))

    groups = param_groups(
        backbone, model.head, cfg.lr, cfg.weight_decay, cfg.layer_decay, train_encoder
    )
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total))
    start, best_step, best_score, elapsed0 = 0, 0, float("-inf"), 0.0
    if resuming:
        found = load_latest_checkpoint(out / "checkpoints", map_location="cpu")
        assert found is not None
        path, ckpt = found
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start = int(ckpt["step"])
        best_step = int(ckpt["best_step"])
        best_score = float(ckpt["best_score"])
        elapsed0 = float(ckpt.get("elapsed", 0.0))
        restore_rng(ckpt["rng"][0], device)
        log(f"resuming {out} from {path.name} (step {start} of {total})")

    run_config: dict[str, Any] = {
        "finetune": cfg.to_dict(),
        "model": {"name": loaded.name, "config": net.config_dict(), "source": loaded.source},
        "head": {"task": task.name, "classes": task.data.classes, "out_indices": list(backbone.out_indices),
                 "channels": cfg.head_channels, "sensor": cfg.sensor.value},
        "data": {"cache": str(cache.path), "cache_key": cache.meta["key"],
                 "rows": {k: int(len(v)) for k, v in rows.items()}, "batch_size": batch,
                 "batches_per_epoch": per_epoch, "n_s2": n_s2_model, "img_size": net.img_size,
                 "cache_size": cache.size, "normalization": stats,
                 "normalization_source": "stored" if stored else "manifest train rows", **task.data.info},
    }  # fmt: skip
    from csmoe_model import __version__

    run_config["csmoe_version"] = __version__
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        write_text(out / "config.json", json.dumps(run_config, indent=2), overwrite=True)

    def eval_loader(split: str) -> Any:
        return cache.loader(
            rows[split],
            min(batch * 2, len(rows[split])),
            shuffle=False,
            drop_last=False,
            **loader_args,
        )

    meta = {"format": "csmoe-finetuned", "task": task.name, "config": json.dumps(run_config["head"]),
            "model": loaded.name, "model_config": json.dumps(net.config_dict())}  # fmt: skip
    has_val = len(rows["val"]) > 0

    def checkpoint(step: int, elapsed: float) -> None:
        save_checkpoint(out / "checkpoints", step, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": [capture_rng(device)],
            "best_step": best_step, "best_score": best_score, "elapsed": float(elapsed),
            "config": json.dumps(cfg.to_dict()),
        }, keep=2)  # fmt: skip
        prune_best(out, best_step)

    from csmoe_model.train.metrics_log import MetricsLog

    metrics_log = MetricsLog(out, start, True)
    train_loader = cache.loader(
        rows["train"], batch, shuffle=True, drop_last=True, seed=cfg.seed, augment=cfg.augment,
        start_step=start, num_steps=max(0, total - start), **loader_args,
    )  # fmt: skip
    first_loss: float | None = None
    last_loss: float | None = None
    acc, acc_n = 0.0, 0
    t_start = t_interval = time.perf_counter()
    images = 0
    done = start
    try:
        with progress_bar(
            f"{task.name} (fine-tuning)", total - start, "steps", progress
        ) as advance:
            for b in train_loader:
                model.train()
                if not train_encoder:
                    backbone.eval()  # frozen: no dropout, and Soft MoE / norms as in inference
                loss = task.loss(model, b, train_encoder)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                lr = optimizer.param_groups[-1]["lr"] / optimizer.param_groups[-1]["lr_scale"]
                optimizer.step()
                scheduler.step()
                done = b.step + 1
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise CsmoeError(
                        f"the loss became {value} at step {done}; stopped (lower --lr). The last good "
                        f"checkpoint is kept in {out / 'checkpoints'}"
                    )
                acc += value
                acc_n += 1
                images += len(b.index)
                validate = done % eval_every == 0 or done == total
                row: dict[str, float] = {}
                if validate or done % cfg.log_every == 0:
                    now = time.perf_counter()
                    mean = acc / acc_n
                    row = {"step": done, "epoch": b.epoch, "loss": mean, "lr": lr,
                           "images_per_s": acc_n * batch / max(now - t_interval, 1e-9),
                           "elapsed_s": elapsed0 + now - t_start, "val_score": float("nan")}  # fmt: skip
                    first_loss = mean if first_loss is None else first_loss
                    last_loss = mean
                    acc, acc_n, t_interval = 0.0, 0, now
                if validate:
                    model.eval()
                    score = (
                        task.evaluate(model, eval_loader("val"))[task.selection_metric]
                        if has_val
                        else float("nan")
                    )
                    row["val_score"] = score
                    # the first validation always sets the best; later ones must beat it
                    better = (
                        not has_val
                        or best_step == 0
                        or (math.isfinite(score) and not score <= best_score)
                    )
                    if better:
                        best_step, best_score = done, score if has_val else float("nan")
                        save_safetensors(
                            best_path(out, done), trainable_state(model, train_encoder), meta
                        )
                if row:
                    metrics_log.write(row)
                advance(1)
                if validate or done % cfg.checkpoint_every == 0:
                    checkpoint(done, elapsed0 + time.perf_counter() - t_start)
                if on_step is not None:
                    on_step(done, value)
    finally:
        metrics_log.close()
    seconds = time.perf_counter() - t_start
    rate = images / seconds if seconds > 0 and images else float("nan")
    if done < total:
        return FinetuneResult(
            out, done, total, None, best_step, best_score, first_loss, last_loss, rate
        )

    # the selected model on test
    model.load_state_dict(load_safetensors(best_path(out, best_step)), strict=False)
    model.eval()
    writer = None
    if save_predictions is not None:
        from csmoe_model.finetune.predictions import PredictionWriter

        writer = PredictionWriter(
            save_predictions, cfg.manifest, cache, task, overwrite, data_root=cfg.data_root
        )
    scores: list[tuple[np.ndarray, np.ndarray]] = []

    def keep_scores(b: Any, prob: torch.Tensor) -> None:
        scores.append((b.index.numpy(), prob.float().cpu().numpy()))

    t0 = time.perf_counter()
    test = task.evaluate(
        model,
        eval_loader("test"),
        on_batch=writer
        if writer is not None
        else (keep_scores if task.name == "classify" else None),
    )
    test_s = time.perf_counter() - t0
    if scores:
        write_scores(out / "test_predictions.parquet", cache.patch_ids, scores, task)
    if writer is not None:
        writer.close()
        log(f"wrote {writer.count} predicted GeoTIFF(s) to {save_predictions}")
    selection = {
        "metric": f"val {task.selection_metric}"
        if has_val
        else "none (no val rows): the last step",
        "best_step": best_step,
        "best_val_score": best_score if has_val else None,
    }
    report = {
        **test,
        "task": task.name,
        "classes": task.data.classes,
        "selection": selection,
        "model": loaded.name,
        "source": loaded.source,
        "sensor": cfg.sensor.value,
        "mode": cfg.mode.value,
        "steps": total,
        "rows": run_config["data"]["rows"],
        "train_images_per_s": rate,
        "test_images_per_s": test["rows"] / test_s if test_s > 0 else None,
        "device": str(device),
        **{k: v for k, v in task.data.info.items() if k not in ("values",)},
    }
    full_state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_safetensors(out / "model.safetensors", full_state, meta)
    write_json(out / "metrics.json", report, overwrite=True)
    from csmoe_model.finetune.report import metrics_markdown

    write_text(out / "metrics.md", metrics_markdown(report), overwrite=True)
    return FinetuneResult(
        out, done, total, report, best_step, best_score, first_loss, last_loss, rate
    )
