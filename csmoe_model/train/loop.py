"""``csmoe train``: pretraining from a manifest (single process or DDP under torchrun).

The pieces, one per module: :mod:`~csmoe_model.train.run` (the run directory and ``config.json``),
:mod:`~csmoe_model.train.data` (cache, rows, batch sizes, the device loader),
:mod:`~csmoe_model.train.step` (one training step), :mod:`~csmoe_model.train.metrics_log`,
:mod:`~csmoe_model.train.checkpoint` and :mod:`~csmoe_model.train.export`. This module strings them
together: :func:`train`.

Exact resume: model init, masks and dropout use the torch RNG, whose state (with numpy's, python's
and CUDA's) is checkpointed; the batches are a pure function of ``(seed, epoch)`` and the step
(:class:`~csmoe_model.data.loader.BatchPlan`); the learning rate is a function of the step. A run
stopped after step ``k`` and resumed therefore computes the same losses as an uninterrupted run (on
CPU; CUDA kernels may differ in the last bits).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csmoe_common.atomic import new_folder
from csmoe_common.device import resolve_device
from csmoe_common.progress import progress_bar
from csmoe_model.errors import CsmoeError
from csmoe_model.models.csmoe import CSMoE
from csmoe_model.train.checkpoint import (
    capture_rng,
    load_latest_checkpoint,
    restore_rng,
    save_checkpoint,
)
from csmoe_model.train.config import TrainConfig
from csmoe_model.train.data import TrainingData, make_train_loader, open_training_data
from csmoe_model.train.distributed import (
    DistEnv,
    all_gather_with_grad,
    barrier,
    dist_env,
    freeze_unused,
    init_distributed,
    shutdown_distributed,
    wrap_ddp,
)
from csmoe_model.train.export import export_encoder
from csmoe_model.train.metrics_log import MetricsLog
from csmoe_model.train.run import (
    RunDir,
    build_run_config,
    check_same_data,
    checkpoint_run_config,
)
from csmoe_model.train.schedule import build_optimizer, build_scheduler
from csmoe_model.train.step import amp_dtype_for, train_step

Log = Callable[[str], None]
OnStep = Callable[[int, float], None]


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
    model: str = ""


@dataclass
class TrainState:
    """The model, optimizer and scheduler of a run, and where it starts.

    Attributes:
        model: the bare model (not DDP-wrapped, not compiled).
        optimizer: AdamW over its trainable parameters.
        scheduler: the warm-up + cosine schedule.
        start_step: the first step to run (0, or the resumed checkpoint's step).
        elapsed: training seconds before ``start_step`` (from the checkpoint).
    """

    model: CSMoE
    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    start_step: int = 0
    elapsed: float = 0.0


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    given: dict[str, Any] | None = None,
    log: Log = print,
    progress: bool = True,
    on_step: OnStep | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on the imagery of ``cfg.manifest``; see the module docstring.

    Args:
        cfg: the resolved configuration (not modified).
        resume: continue the run in ``cfg.out`` from its newest checkpoint (fresh start if none).
        overwrite: replace an existing run directory.
        given: the options given explicitly (checked against the saved run on ``resume``).
        log: where one-line notes and the resolved configuration go (rank 0 only).
        progress: show a progress bar.
        on_step: called after every step with (steps done, loss); used by tests to simulate a kill.

    Raises:
        CsmoeError: bad options or manifest, RUN_DIR conflicts, damaged images with ``strict``,
            :class:`NonFiniteLoss`.
    """
    env = dist_env()
    say = log if env.is_main else _quiet
    device = resolve_device(cfg.device, env.local_rank if env.enabled else None)
    init_distributed(env, device)
    try:
        run_dir = RunDir(Path(cfg.out))
        was_empty = run_dir.is_empty()
        cfg, resuming = run_dir.prepare(cfg, resume, overwrite, given or {})
        if resume and not resuming:
            say(
                f"nothing to resume in {run_dir.path} "
                + (
                    "(empty); starting a new run"
                    if was_empty
                    else "(no checkpoint yet); starting it again"
                )
            )
        if env.is_main and not resuming and not was_empty and (overwrite or resume):
            kept = run_dir.clear()  # only csmoe's own files
            if kept:
                say(
                    f"note: kept {len(kept)} file(s) csmoe did not write in {run_dir.path} "
                    f"(e.g. {kept[0].name})"
                )
        barrier(env)
        # a run folder this call creates goes again when it fails with nothing in it (finished
        # checkpoints stay: they can be resumed)
        with new_folder(run_dir.path, whole=False) if env.is_main else contextlib.nullcontext():
            return _run(cfg, run_dir, env, device, resuming, say, progress and env.is_main, on_step)
    finally:
        shutdown_distributed()


def _quiet(_message: str) -> None:
    return None


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def resolve_schedule(cfg: TrainConfig, batches_per_epoch: int) -> TrainConfig:
    """A copy of ``cfg`` with ``total_steps`` and ``warmup_steps`` resolved (``cfg`` is unchanged).

    ``total_steps``: kept when set (a resumed run), else ``max_steps``, else ``epochs`` (default 1)
    times the batches per epoch; ``warmup_steps``: 5 % of the steps unless given.
    """
    total = cfg.total_steps
    if total is None:
        total = (
            cfg.max_steps if cfg.max_steps is not None else (cfg.epochs or 1) * batches_per_epoch
        )
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else int(round(0.05 * total))
    return dataclasses.replace(cfg, total_steps=total, warmup_steps=warmup)


def build_state(cfg: TrainConfig, env: DistEnv, device: torch.device) -> TrainState:
    """Seed, build the model on ``device``, freeze unused parameters, build optimizer and schedule.

    ``cfg`` must have a resolved schedule (:func:`resolve_schedule`).
    """
    from csmoe_model.registry import build_model

    assert cfg.total_steps is not None and cfg.warmup_steps is not None
    _seed_all(cfg.seed)
    model = build_model(cfg.model, **cfg.model_overrides).to(device)
    # masks differ per rank; a fixed function of (seed, rank) keeps runs reproducible
    torch.manual_seed(cfg.seed * 1000 + env.rank)
    # parameters a switched-off loss term leaves without gradient (e.g. fc_norm without NT-Xent)
    # are frozen: the optimizer skips them either way, and DDP then needs no unused-parameter search
    freeze_unused(model)
    optimizer = build_optimizer(model, cfg, device)
    scheduler = build_scheduler(optimizer, cfg.warmup_steps, cfg.total_steps, cfg.min_lr / cfg.lr)
    return TrainState(model, optimizer, scheduler)


def restore_state(
    state: TrainState, run_dir: RunDir, env: DistEnv, device: torch.device, say: Log
) -> Path:
    """Load the newest checkpoint of ``run_dir`` into ``state`` (weights, optimizer, RNG, step).

    Returns:
        The checkpoint file loaded.

    Raises:
        CsmoeError: if the run has no readable checkpoint.
    """
    found = load_latest_checkpoint(run_dir.checkpoints, map_location="cpu")
    if found is None:
        raise CsmoeError(f"{run_dir.checkpoints} holds no readable checkpoint")
    path, ckpt = found
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    state.start_step = int(ckpt["step"])
    state.elapsed = float(ckpt.get("elapsed", 0.0))
    rng = ckpt["rng"]
    if len(rng) != env.world:
        say(
            f"note: the run was saved by {len(rng)} process(es), resumed by {env.world}: not bit-exact"
        )
    restore_rng(rng[env.rank % len(rng)], device)
    return path


def _run(
    cfg: TrainConfig,
    run_dir: RunDir,
    env: DistEnv,
    device: torch.device,
    resuming: bool,
    say: Log,
    progress: bool,
    on_step: OnStep | None,
) -> TrainResult:
    from csmoe_model.registry import get_config

    model_cfg = get_config(cfg.model, **cfg.model_overrides)
    n_s2 = cfg.n_s2 or int(model_cfg.in_chans["s2"])
    data = open_training_data(cfg, env, n_s2, say, progress)
    cfg = resolve_schedule(cfg, data.batches_per_epoch)
    state = build_state(cfg, env, device)
    assert cfg.total_steps is not None
    total = cfg.total_steps
    run_config = build_run_config(cfg, state.model, data, env)
    if resuming:
        saved = run_dir.read_config() or checkpoint_run_config(run_dir)
        if saved is not None:
            check_same_data(saved, run_config)
        path = restore_state(state, run_dir, env, device, say)
        say(f"resuming {run_dir.path} from {path.name} (step {state.start_step} of {total})")

    if env.is_main:
        run_dir.path.mkdir(parents=True, exist_ok=True)
        say(
            "resolved configuration:\n"
            + json.dumps(
                run_config["train"] | {"model_config": run_config["model"]["config"]}, indent=2
            )
        )
        if not resuming or not run_dir.config_file.is_file():  # fresh, or recovered
            run_dir.write_config(run_config)

    done, first_loss, last_loss = _loop(
        cfg, run_dir, state, data, env, device, say, progress, on_step, run_config
    )
    model_path = None
    if env.is_main and done >= total:
        check_finite(state.model, done, run_dir, "the encoder weights were not exported")
        model_path = export_encoder(
            state.model,
            run_dir.weights,
            cfg.model,
            normalization=data.cache.stats,
            source=f"csmoe train run {run_dir.path}",
        )
    cache = data.cache
    if env.is_main and cache.n_damaged:
        d = cache.damaged[0]
        say(
            f"warning: {cache.n_damaged} damaged image(s) were skipped (e.g. row {d['row']} "
            f"'{d['patch_id']}': {d['error']}); use --strict to stop on them"
        )
    return TrainResult(
        run_dir.path,
        done,
        total,
        last_loss,
        first_loss,
        model_path,
        cache.n_damaged,
        cache.path,
        cfg.model,
    )


def _loop(
    cfg: TrainConfig,
    run_dir: RunDir,
    state: TrainState,
    data: TrainingData,
    env: DistEnv,
    device: torch.device,
    say: Log,
    progress: bool,
    on_step: OnStep | None,
    run_config: dict[str, Any],
) -> tuple[int, float | None, float | None]:
    """Run steps ``state.start_step .. total - 1``: log, checkpoint, stop on a non-finite loss.

    Returns:
        ``(steps done, first logged loss, last logged loss)``.
    """
    assert cfg.total_steps is not None
    total, start = cfg.total_steps, state.start_step
    model: torch.nn.Module = wrap_ddp(state.model, device) if env.enabled else state.model
    gather = all_gather_with_grad() if env.enabled else None
    fwd_model = torch.compile(model) if cfg.compile else model
    amp_dtype = amp_dtype_for(device)
    loader = make_train_loader(cfg, data, env, device, state.model.img_size, start, total)
    metrics = MetricsLog(run_dir.path, start, env.is_main)
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
    label = "train" if start == 0 else f"train (from step {start})"
    try:
        with progress_bar(
            label, total - start, "steps", enabled=progress, transient=False
        ) as advance:
            model.train()
            for batch in loader:
                step = train_step(
                    fwd_model,
                    state.optimizer,
                    batch.s1,
                    batch.s2,
                    params=params,
                    grad_clip=cfg.grad_clip,
                    scheduler=state.scheduler,
                    gather=gather,
                    amp_dtype=amp_dtype,
                )
                done = batch.step + 1
                assert step.grad_norm is not None
                terms = {
                    "loss": step.loss.float(),
                    **{k: v.float() for k, v in step.losses.items()},
                    "grad_norm": step.grad_norm.detach().float(),
                }
                for k, v in terms.items():
                    acc[k] = acc[k] + v if k in acc else v.clone()
                acc_n += 1
                advance(1)
                want_ckpt = done % cfg.checkpoint_every == 0 or done == total
                if not (done % cfg.log_every == 0 or want_ckpt or on_step is not None):
                    continue
                vals = _reduce_mean(acc, acc_n, env)
                # a NaN/inf loss of any step (any rank) makes the interval mean non-finite
                if not all(math.isfinite(v) for k, v in vals.items() if k != "grad_norm"):
                    raise NonFiniteLoss(
                        f"the loss became {vals['loss']} before step {done}; training stopped. The last good "
                        f"checkpoint is kept in {run_dir.checkpoints} (lower --lr or check the data)"
                    )
                now = time.perf_counter()
                rate = acc_n * data.global_batch / max(now - t_interval, 1e-9)
                elapsed = state.elapsed + now - t_start
                metrics.write(
                    {
                        "step": done,
                        "epoch": batch.epoch,
                        **vals,
                        "lr": step.lr,
                        "pairs_per_s": rate,
                        "elapsed_s": elapsed,
                    }
                )
                first_loss = vals["loss"] if first_loss is None else first_loss
                last_loss = vals["loss"]
                acc, acc_n, t_interval = {}, 0, now
                if want_ckpt:
                    _save_checkpoint(
                        run_dir, done, state, cfg, env, elapsed, data, device, run_config
                    )
                if on_step is not None:
                    on_step(done, vals["loss"])
    finally:
        metrics.close()
    return done, first_loss, last_loss


def check_finite(model: torch.nn.Module, step: int, run_dir: RunDir, consequence: str) -> None:
    """Stop when a parameter holds NaN or infinity (a too high ``--lr`` can do that silently).

    Raises:
        NonFiniteLoss: naming the first bad tensor.
    """
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise NonFiniteLoss(
            f"{len(bad)} parameter tensor(s) became non-finite by step {step} (e.g. {bad[0]}); "
            f"{consequence}. The last good checkpoint is kept in {run_dir.checkpoints} "
            "(lower --lr or check the data)"
        )


def _reduce_mean(acc: dict[str, torch.Tensor], n: int, env: DistEnv) -> dict[str, float]:
    keys = list(acc)
    vec = torch.stack([acc[k] for k in keys]) / max(n, 1)
    if env.enabled:
        import torch.distributed as dist

        dist.all_reduce(vec, op=dist.ReduceOp.SUM)
        vec = vec / env.world
    return dict(zip(keys, vec.cpu().tolist(), strict=True))


def _save_checkpoint(
    run_dir: RunDir,
    step: int,
    state: TrainState,
    cfg: TrainConfig,
    env: DistEnv,
    elapsed: float,
    data: TrainingData,
    device: torch.device,
    run_config: dict[str, Any],
) -> None:
    """Gather every rank's RNG state; rank 0 writes the checkpoint of ``step``.

    Raises:
        NonFiniteLoss: a parameter is NaN or infinite (nothing is written).
    """
    check_finite(state.model, step, run_dir, "no checkpoint was written")
    rng = capture_rng(device)
    states: list[Any]
    if env.enabled:
        import torch.distributed as dist

        states = [None] * env.world
        dist.all_gather_object(states, rng)
    else:
        states = [rng]
    per_epoch = data.batches_per_epoch
    if env.is_main:
        save_checkpoint(run_dir.checkpoints, step, {
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "rng": states,
            "data": {"seed": cfg.seed, "next_step": step, "epoch": step // per_epoch,
                     "batch_in_epoch": step % per_epoch, "batches_per_epoch": per_epoch, "world": env.world},
            "elapsed": float(elapsed),
            "config": json.dumps(cfg.to_dict()),
            "run_config": json.dumps(run_config),  # recovers a lost config.json
        }, keep=cfg.keep_checkpoints)  # fmt: skip
    barrier(env)
