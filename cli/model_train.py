"""CLI commands ``csmoe cache`` (decode a manifest's imagery once) and ``csmoe train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from csmoe_cli._common import console, err_console, fail, user_errors
from csmoe_cli.model_options import (
    CACHE_DEFAULTS,
    TRAIN_DEFAULTS,
    CacheDirOpt,
    DataRootOpt,
    ManifestOpt,
    S1BandsOpt,
    S2BandCount,
    S2BandsOpt,
    Season,
    parse_bands,
    parse_key_values,
)
from csmoe_common.errors import CsmoeError

app = typer.Typer()

_T = TRAIN_DEFAULTS


def _note(message: str) -> None:
    err_console.print(message, highlight=False, soft_wrap=True)


@app.command("cache")
@user_errors
def cache(
    manifest: ManifestOpt,
    cache_dir: CacheDirOpt = None,
    data_root: DataRootOpt = None,
    workers: Annotated[
        int, typer.Option("--workers", "-j", min=0, help="Decoding processes.")
    ] = _T.workers,
    bands: Annotated[
        S2BandCount, typer.Option("--bands", help="Sentinel-2 bands to cache.")
    ] = S2BandCount(str(CACHE_DEFAULTS.n_s2)),
    s2_bands: S2BandsOpt = None,
    s1_bands: S1BandsOpt = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Stop at the first damaged image instead of skipping it."),
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild", help="Decode the imagery again even if an up-to-date cache exists."
        ),
    ] = False,
) -> None:
    """Decode a manifest's imagery once into the local cache that csmoe train and embed read.

    An existing cache is checked against its meta.json (shapes, sizes, checksums) and rebuilt
    when damaged (with --strict: refused).
    """
    from csmoe_model.data.cache import CacheSettings, open_cache

    settings = CacheSettings(int(bands.value), None, parse_bands(s2_bands), parse_bands(s1_bands))
    c = open_cache(
        manifest,
        cache_dir,
        settings,
        workers=workers,
        strict=strict,
        progress=progress,
        log=_note,
        rebuild=rebuild,
        data_root=data_root,
    )
    valid = int(c.valid.sum())
    console.print(
        f"cache {c.path}: {len(c)} rows ({valid} usable), {c.size} px at 10 m, {c.n_s2} + 2 bands"
        f"{f', {c.seasons} seasons per row' if c.seasons > 1 else ''}; "
        f"statistics from {c.meta['stats_rows']}",
        highlight=False,
        soft_wrap=True,
    )
    if c.n_damaged:
        d = c.damaged[0]
        _note(
            f"warning: {c.n_damaged} damaged image(s) skipped (e.g. row {d['row']} '{d['patch_id']}': {d['error']}); "
            "--strict stops on them"
        )


@app.command("train")
@user_errors
def train_cmd(
    manifest: ManifestOpt,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help=f"Model preset (csmoe model-info lists them) (default: {_T.model})."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory.")] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Optimizer steps to train.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Epochs to train (default 1).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", "-b", help=f"Global batch (all processes) (default: {_T.batch_size})."
        ),
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help=f"Peak learning rate (default: {_T.lr:g}).")
    ] = None,
    warmup_steps: Annotated[
        int | None,
        typer.Option("--warmup-steps", help="Linear warm-up steps (default: 5% of the steps)."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help=f"auto, cpu, cuda or cuda:N (default: {_T.device})."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help=f"Seed of init, masks and data order (default: {_T.seed})."),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            "--checkpoint-every",
            help=f"Steps between checkpoints (default: {_T.checkpoint_every}).",
        ),
    ] = None,
    log_every: Annotated[
        int | None,
        typer.Option("--log-every", help=f"Steps per metrics row (default: {_T.log_every})."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its newest checkpoint.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="JSON or TOML file of options (command line wins)."),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split", help="Train on rows of these splits, e.g. train (default: all rows)."
        ),
    ] = None,
    cache_dir: CacheDirOpt = None,
    data_root: DataRootOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            min=0,
            help=f"Loader and decoding processes (default: {_T.workers}).",
        ),
    ] = None,
    compile: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile", help=f"torch.compile the model (default: {_T.compile})."
        ),
    ] = None,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict", help=f"Stop on damaged images (default: {_T.strict})."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run directory.")
    ] = False,
    model_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--model-arg", help="Model config override KEY=VALUE (repeatable), e.g. img_size=48."
        ),
    ] = None,
    s2_bands: S2BandsOpt = None,
    s1_bands: S1BandsOpt = None,
    season: Annotated[
        Season | None,
        typer.Option(
            "--season",
            help="Seasonal caches (SSL4EO-S12): one season per sample and epoch drawn from --seed, "
            f"or a fixed one (default: {_T.season}).",
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Pretrain a model on the imagery named by a manifest (torchrun --nproc-per-node K for DDP).

    Options not given come from --config, else from the defaults shown; with --resume, the run's
    own settings.
    """
    from csmoe_model.train.config import read_config_file, resolve_config
    from csmoe_model.train.loop import train

    overrides = parse_key_values(model_arg, "--model-arg")
    given: dict[str, Any] = {
        "manifest": str(manifest.expanduser().resolve()),
        "model": model,
        "out": str(out) if out else None,
        "max_steps": max_steps,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "warmup_steps": warmup_steps,
        "device": device,
        "seed": seed,
        "checkpoint_every": checkpoint_every,
        "log_every": log_every,
        "split": split,
        "cache_dir": str(cache_dir) if cache_dir else None,
        "data_root": str(data_root.expanduser().resolve()) if data_root else None,
        "workers": workers,
        "compile": compile,
        "strict": strict,
        "model_overrides": overrides or None,
        "s2_bands": parse_bands(s2_bands),
        "s1_bands": parse_bands(s1_bands),
        "season": season.value if season is not None else None,
    }
    cfg = resolve_config(given, config)
    if not cfg.out:
        raise CsmoeError("missing option --out RUN_DIR")
    if config:  # a config file counts as given options too (checked on --resume)
        given = read_config_file(config) | {k: v for k, v in given.items() if v is not None}
    try:
        result = train(
            cfg, resume=resume, overwrite=overwrite, given=given, log=_note, progress=progress
        )
    except KeyboardInterrupt as exc:
        from csmoe_common.processes import exit_code
        from csmoe_model.train.checkpoint import list_checkpoints

        steps = list_checkpoints(Path(cfg.out) / "checkpoints")
        where = (
            f"the run in {cfg.out} can be resumed from {steps[-1].name} with --resume"
            if steps
            else f"no checkpoint was written yet; --resume in {cfg.out} starts it again"
        )
        raise fail(f"interrupted; {where}", code=exit_code(exc)) from None
    if result.model_path is not None:
        loss = (
            ""
            if result.final_loss is None
            else f", loss {result.first_loss:.4f} -> {result.final_loss:.4f}"
        )
        console.print(
            f"trained {result.model or cfg.model} for {result.steps} steps{loss}; run directory {result.run_dir} "
            f"(encoder weights {result.model_path.name}, metrics.csv, tb/)",
            highlight=False,
            soft_wrap=True,
        )
