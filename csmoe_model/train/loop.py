"""``csmoe train``: pretraining from a manifest (single process or DDP under torchrun).

A run directory holds ``config.json`` (the resolved training config, the model config and the
normalisation statistics: everything needed to rebuild the model and feed it), ``metrics.csv``,
TensorBoard logs in ``tb/``, ``checkpoints/`` and, at the end, ``model.safetensors`` (encoder
weights, :meth:`CSMoE.encoder_state_dict`). Only rank 0 writes.

Exact resume: model init, masks and dropout use the torch RNG, whose state (with numpy's, python's
and CUDA's) is checkpointed; the batches are a pure function of ``(seed, epoch)`` and the step
(:class:`~csmoe_model.data.loader.BatchPlan`); the learning rate is a function of the step. A run
stopped after step ``k`` and resumed therefore computes the same losses as an uninterrupted run (on
CPU; CUDA kernels may differ in the last bits).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csmoe_model.data.atomic import atomic_file, write_text_atomic
from csmoe_model.data.cache import CacheSettings, ImageryCache, open_cache
from csmoe_model.data.loader import DeviceLoader
from csmoe_model.errors import CsmoeError
from csmoe_model.train.checkpoint import (
    capture_rng,
    load_latest_checkpoint,
    restore_rng,
    save_checkpoint,
)
from csmoe_model.train.config import TrainConfig, check_resume
from csmoe_model.train.distributed import (
    DistEnv,
    all_gather_with_grad,
    barrier,
    dist_env,
    freeze_unused,
    init_distributed,
    resolve_device,
    shutdown_distributed,
    wrap_ddp,
)
from csmoe_model.train.schedule import build_optimizer, build_scheduler


class NonFiniteLoss(CsmoeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    run_dir: Path
    steps: int
    total_steps: int
    final_loss: float | None
    first_loss: float | None
    model_path: Path | None
    damaged: int
    cache: Path


def _say(env: DistEnv, log: Callable[[str], None]) -> Callable[[str], None]:
    return log if env.is_main else (lambda _m: None)


def prepare_run_dir(
    cfg: TrainConfig, resume: bool, overwrite: bool, given: dict[str, Any]
) -> tuple[TrainConfig, bool]:
    """Check RUN_DIR; on ``resume`` return the saved config merged with ``given`` operational options.

    Returns:
        (config, resuming): ``resuming`` is False when there is nothing to resume (fresh start).

    Raises:
        CsmoeError: RUN_DIR exists without ``--resume``/``--overwrite``, or ``--resume`` conflicts.
    """
    out = Path(cfg.out)
    cfg_file = out / "config.json"
    if resume:
        if cfg_file.is_file() and load_latest_checkpoint(out / "checkpoints") is not None:
            saved = TrainConfig.from_dict(json.loads(cfg_file.read_text(encoding="utf-8"))["train"])
            merged = check_resume(saved, given)
            merged.total_steps = saved.total_steps
            return merged, True
        return cfg, False
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CsmoeError(
            f"{out} exists; pass --resume to continue that run or --overwrite to start over"
        )
    return cfg, False


def _clear_run_dir(out: Path) -> None:
    import shutil

    for name in ("checkpoints", "tb"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("metrics.csv", "config.json", "model.safetensors"):
        (out / name).unlink(missing_ok=True)


class MetricsLog:
    """``metrics.csv`` (appended; truncated to the resumed step) and TensorBoard scalars."""

    def __init__(self, out: Path, start_step: int, enabled: bool) -> None:
        self.path = out / "metrics.csv"
        self.enabled = enabled
        self.columns: list[str] | None = None
        self.writer = None
        self.note: str | None = None
        if not enabled:
            return
        if self.path.is_file():
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            if rows:
                self.columns = list(rows[0].keys())
            kept = [r for r in rows if int(r["step"]) <= start_step]
            with atomic_file(self.path) as tmp, open(tmp, "w", newline="") as fh:
                if self.columns:
                    w = csv.DictWriter(fh, self.columns)
                    w.writeheader()
                    w.writerows(kept)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # a bare GPU host without the tensorboard package: metrics.csv only
            self.writer = None
            self.note = "tensorboard is not installed: metrics go to metrics.csv only"
            return
        self.writer = SummaryWriter(
            str(out / "tb"), purge_step=start_step + 1 if start_step else None
        )

    def write(self, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.columns is None:
            self.columns = list(row.keys())
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, self.columns).writeheader()
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.columns, extrasaction="ignore").writerow(row)
        if self.writer is None:
            return
        step = int(row["step"])
        for k, v in row.items():
            if k not in ("step", "epoch"):
                self.writer.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DDP


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    given: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on the imagery of ``cfg.manifest``; see the module docstring.

    Args:
        cfg: the resolved configuration.
        resume: continue the run in ``cfg.out`` from its newest checkpoint (fresh start if none).
        overwrite: replace an existing run directory.
        given: the options given explicitly (checked against the saved run on ``resume``).
        log: where one-line notes and the resolved configuration go (rank 0 only).
        progress: show a rich progress bar.
        on_step: called after every step with (steps done, loss); used by tests to simulate a kill.

    Raises:
        CsmoeError: bad options or manifest, RUN_DIR conflicts, damaged images with ``strict``,
            :class:`NonFiniteLoss`.
    """
    from csmoe_model import build_model, get_config

    env = dist_env()
    say = _say(env, log)
    device = resolve_device(cfg.device, env)
    init_distributed(env, device)
    try:
        cfg, resuming = prepare_run_dir(cfg, resume, overwrite, given or {})
        out = Path(cfg.out)
        if resume and not resuming:
            say(f"nothing to resume in {out} (no checkpoint yet); starting a new run")
        if env.is_main and not resuming and out.exists() and (overwrite or resume):
            _clear_run_dir(out)
        barrier(env)
        return _train(
            cfg,
            env,
            device,
            resuming,
            say,
            progress and env.is_main,
            on_step,
            build_model,
            get_config,
        )
    finally:
        shutdown_distributed()


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _train(
    cfg, env, device, resuming, say, progress, on_step, build_model, get_config
) -> TrainResult:
    out = Path(cfg.out)
    model_cfg = get_config(cfg.model, **cfg.model_overrides)
    n_s2 = cfg.n_s2 or int(model_cfg.in_chans["s2"])
    settings = CacheSettings(n_s2, None, cfg.s2_bands, cfg.s1_bands)

    # rank 0 builds the cache; the others open it once it is in place
    cache: ImageryCache | None = None
    if env.is_main:
        cache = open_cache(
            cfg.manifest,
            cfg.cache_dir,
            settings,
            workers=min(cfg.workers, os.cpu_count() or 1),
            strict=cfg.strict,
            progress=progress,
            log=say,
        )
    barrier(env)
    if cache is None:
        cache = open_cache(cfg.manifest, cfg.cache_dir, settings, build=False, strict=cfg.strict)
    rows = cache.select(cfg.split)

    if cfg.batch_size % env.world:
        raise CsmoeError(
            f"--batch-size {cfg.batch_size} is not divisible by the {env.world} processes"
        )
    local_bs = cfg.batch_size // env.world
    per_rank = len(rows) // env.world
    if per_rank < local_bs:
        say(
            f"note: only {len(rows)} rows; batch size lowered from {cfg.batch_size} to {per_rank * env.world}"
        )
        local_bs = per_rank
        if local_bs < 1:
            raise CsmoeError(f"{len(rows)} rows are too few for {env.world} processes")
    global_bs = local_bs * env.world

    _seed_all(cfg.seed)
    model = build_model(cfg.model, **cfg.model_overrides).to(device)
    # masks differ per rank; a fixed function of (seed, rank) keeps runs reproducible
    torch.manual_seed(cfg.seed * 1000 + env.rank)

    loader_probe = DeviceLoader(
        cache,
        rows,
        local_bs,
        device=device,
        img_size=model.img_size,
        n_s2=n_s2,
        shuffle=True,
        drop_last=True,
        seed=cfg.seed,
        rank=env.rank,
        world=env.world,
    )
    per_epoch = loader_probe.plan.batches_per_epoch
    if cfg.total_steps is None:
        cfg.total_steps = (
            cfg.max_steps if cfg.max_steps is not None else (cfg.epochs or 1) * per_epoch
        )
    if cfg.warmup_steps is None:
        cfg.warmup_steps = int(round(0.05 * cfg.total_steps))
    total = cfg.total_steps

    # parameters a switched-off loss term leaves without gradient (e.g. fc_norm without NT-Xent)
    # are frozen: the optimizer skips them either way, and DDP then needs no unused-parameter search
    freeze_unused(model)
    optimizer = build_optimizer(_unwrap(model), cfg, device)
    scheduler = build_scheduler(optimizer, cfg.warmup_steps, total, cfg.min_lr / cfg.lr)
    start = 0
    elapsed0 = 0.0
    if resuming:
        found = load_latest_checkpoint(out / "checkpoints", map_location="cpu")
        assert found is not None
        path, ckpt = found
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start = int(ckpt["step"])
        elapsed0 = float(ckpt.get("elapsed", 0.0))
        rng = ckpt["rng"]
        if len(rng) != env.world:
            say(
                f"note: the run was saved by {len(rng)} process(es), resumed by {env.world}: not bit-exact"
            )
        restore_rng(rng[env.rank % len(rng)], device)
        say(f"resuming {out} from {path.name} (step {start} of {total})")

    run_config = {
        "train": cfg.to_dict(),
        "model": {"name": cfg.model, "config": dataclasses.asdict(model.config)},
        "data": {
            "cache": str(cache.path),
            "cache_key": cache.meta["key"],
            "rows": int(len(rows)),
            "damaged": cache.n_damaged,
            "batch_size_per_process": local_bs,
            "global_batch_size": global_bs,
            "batches_per_epoch": per_epoch,
            "world_size": env.world,
            "n_s2": n_s2,
            "img_size": model.img_size,
            "cache_size": cache.size,
            "upsample": cfg.upsample,
            "bands": cache.meta["bands"],
            "normalization": cache.stats,
            "stats_rows": cache.meta["stats_rows"],
        },
    }
    from csmoe_model import __version__

    run_config["csmoe_version"] = __version__
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        say(
            "resolved configuration:\n"
            + json.dumps(
                run_config["train"] | {"model_config": run_config["model"]["config"]}, indent=2
            )
        )
        if not resuming:
            write_text_atomic(out / "config.json", json.dumps(run_config, indent=2))

    if env.enabled:
        model = wrap_ddp(model, device)
    gather = all_gather_with_grad() if env.enabled else None
    fwd_model = torch.compile(model) if cfg.compile else model
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if device.type == "cuda"
        else contextlib.nullcontext
    )

    loader = DeviceLoader(
        cache,
        rows,
        local_bs,
        device=device,
        img_size=model_cfg_img(model),
        n_s2=n_s2,
        stats=cache.stats,
        augment=cfg.augment,
        shuffle=True,
        drop_last=True,
        seed=cfg.seed,
        rank=env.rank,
        world=env.world,
        start_step=start,
        num_steps=max(0, total - start),
        workers=min(cfg.workers, os.cpu_count() or 1),
        upsample=cfg.upsample,
    )
    metrics = MetricsLog(out, start, env.is_main)
    if metrics.note:
        say(f"note: {metrics.note}")
    params = [p for p in model.parameters() if p.requires_grad]
    first_loss: float | None = None
    last_loss: float | None = None
    acc: dict[str, torch.Tensor] = {}
    acc_n = 0
    t_interval = time.perf_counter()
    t_start = time.perf_counter()
    done = start
    bar = _TrainBar(progress, total, start)
    try:
        with bar:
            model.train()
            for batch in loader:
                with autocast():
                    res = fwd_model(batch.s1, batch.s2, gather=gather)
                loss = res.loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                lr = optimizer.param_groups[0]["lr"]  # the rate this step used
                optimizer.step()
                scheduler.step()
                done = batch.step + 1
                terms = {
                    "loss": loss.detach().float(),
                    **{k: v.detach().float() for k, v in res.losses.items()},
                    "grad_norm": grad_norm.detach().float(),
                }
                for k, v in terms.items():
                    acc[k] = acc[k] + v if k in acc else v.clone()
                acc_n += 1
                want_ckpt = done % cfg.checkpoint_every == 0 or done == total
                if done % cfg.log_every == 0 or want_ckpt or on_step is not None:
                    vals = _reduce_mean(acc, acc_n, env)
                    # a NaN/inf loss of any step (any rank) makes the interval mean non-finite
                    if not all(math.isfinite(v) for k, v in vals.items() if k != "grad_norm"):
                        raise NonFiniteLoss(
                            f"the loss became {vals['loss']} before step {done}; training stopped. The last good "
                            f"checkpoint is kept in {out / 'checkpoints'} (lower --lr or check the data)"
                        )
                    now = time.perf_counter()
                    rate = acc_n * global_bs / max(now - t_interval, 1e-9)
                    elapsed = elapsed0 + now - t_start
                    row = {
                        "step": done,
                        "epoch": batch.epoch,
                        **vals,
                        "lr": lr,
                        "pairs_per_s": rate,
                        "elapsed_s": elapsed,
                    }
                    metrics.write(row)
                    first_loss = vals["loss"] if first_loss is None else first_loss
                    last_loss = vals["loss"]
                    bar.update(done, vals["loss"], rate)
                    acc, acc_n, t_interval = {}, 0, now
                    if want_ckpt:
                        _save(
                            out,
                            done,
                            model,
                            optimizer,
                            scheduler,
                            cfg,
                            env,
                            elapsed,
                            batch.epoch,
                            per_epoch,
                            device,
                        )
                    if on_step is not None:
                        on_step(done, vals["loss"])
                else:
                    bar.update(done, None, None)
        model_path = None
        if env.is_main and done >= total:
            model_path = export_encoder(_unwrap(model), out / "model.safetensors", cfg.model)
        if env.is_main and cache.n_damaged:
            d = cache.damaged[0]
            say(
                f"warning: {cache.n_damaged} damaged image(s) were skipped (e.g. row {d['row']} "
                f"'{d['patch_id']}': {d['error']}); use --strict to stop on them"
            )
        return TrainResult(
            out, done, total, last_loss, first_loss, model_path, cache.n_damaged, cache.path
        )
    finally:
        metrics.close()


def model_cfg_img(model: torch.nn.Module) -> int:
    return int(_unwrap(model).img_size)


def _reduce_mean(acc: dict[str, torch.Tensor], n: int, env: DistEnv) -> dict[str, float]:
    keys = list(acc)
    vec = torch.stack([acc[k] for k in keys]) / max(n, 1)
    if env.enabled:
        import torch.distributed as dist

        dist.all_reduce(vec, op=dist.ReduceOp.SUM)
        vec = vec / env.world
    return dict(zip(keys, vec.cpu().tolist(), strict=True))


def _save(
    out: Path,
    step: int,
    model,
    optimizer,
    scheduler,
    cfg: TrainConfig,
    env: DistEnv,
    elapsed: float,
    epoch: int,
    per_epoch: int,
    device: torch.device,
) -> None:
    rng = capture_rng(device)
    if env.enabled:
        import torch.distributed as dist

        states: list[Any] = [None] * env.world
        dist.all_gather_object(states, rng)
    else:
        states = [rng]
    if env.is_main:
        save_checkpoint(out / "checkpoints", step, {
            "model": _unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": states,
            "data": {"seed": cfg.seed, "next_step": step, "epoch": step // per_epoch,
                     "batch_in_epoch": step % per_epoch, "batches_per_epoch": per_epoch, "world": env.world},
            "elapsed": float(elapsed),
            "config": json.dumps(cfg.to_dict()),
        }, keep=cfg.keep_checkpoints)  # fmt: skip
    barrier(env)


def export_encoder(model: torch.nn.Module, path: Path, name: str) -> Path:
    """Write ``model.encoder_state_dict()`` as safetensors (atomic; metadata: model name and config)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous().clone() for k, v in model.encoder_state_dict().items()}
    meta = {
        "model": name,
        "config": json.dumps(dataclasses.asdict(model.config)),
        "format": "csmoe-encoder",
    }
    with atomic_file(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return path


class _TrainBar:
    """Progress bar with loss, pairs/s and ETA (no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.enabled = enabled
        self.total, self.start = total, start
        self._bar = None

    def __enter__(self) -> _TrainBar:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[rate]} pairs/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                "train", total=self.total, completed=self.start, loss="-", rate="-"
            )
        return self

    def update(self, done: int, loss: float | None, rate: float | None) -> None:
        if self._bar is None:
            return
        fields = {}
        if loss is not None:
            fields = {"loss": f"{loss:.4f}", "rate": f"{rate:,.0f}"}
        self._bar.update(self._task, completed=done, **fields)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
