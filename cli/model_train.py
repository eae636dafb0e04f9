"""CLI commands: ``csmoe cache`` (decode a manifest's imagery once) and ``csmoe train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from csmoe_cli._common import console, err_console, user_errors


def _bands(value: str | None) -> tuple[str, ...] | None:
    return tuple(b.strip() for b in value.split(",") if b.strip()) if value else None


def _model_args(values: list[str] | None) -> dict | None:
    from csmoe_model.errors import CsmoeError

    if not values:
        return None
    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CsmoeError(f"--model-arg expects KEY=VALUE, not {item!r}")
        try:
            out[key.strip().replace("-", "_")] = json.loads(raw)
        except ValueError:
            out[key.strip().replace("-", "_")] = raw
    return out


def _note(message: str) -> None:
    err_console.print(message, highlight=False, soft_wrap=True)


ManifestOpt = Annotated[
    Path, typer.Option("--manifest", "-m", help="Manifest written by csmoe-data build-manifest.")
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Parent folder of imagery caches (default: $CSMOE_CACHE_DIR or ~/.cache/csmoe).",
    ),
]
S2BandsOpt = Annotated[
    str | None,
    typer.Option(
        "--s2-bands",
        help="Band order of multi-band S2 GeoTIFFs without band descriptions, e.g. B02,B03,B04,B08,...",
    ),
]
S1BandsOpt = Annotated[
    str | None,
    typer.Option(
        "--s1-bands", help="Band order of multi-band S1 GeoTIFFs without descriptions, e.g. VV,VH."
    ),
]


def cache(
    manifest: ManifestOpt,
    cache_dir: CacheDirOpt = None,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="Decoding processes.")] = 4,
    bands: Annotated[
        int, typer.Option("--bands", help="Sentinel-2 bands to cache: 12 or 10.")
    ] = 12,
    s2_bands: S2BandsOpt = None,
    s1_bands: S1BandsOpt = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Stop at the first damaged image instead of skipping it."),
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Decode a manifest's imagery once into the local cache that csmoe train and embed read."""
    from csmoe_model.data import CacheSettings, open_cache
    from csmoe_model.errors import CsmoeError

    if bands not in (10, 12):
        raise CsmoeError(f"--bands must be 10 or 12, not {bands}")
    settings = CacheSettings(bands, None, _bands(s2_bands), _bands(s1_bands))
    c = open_cache(
        manifest, cache_dir, settings, workers=workers, strict=strict, progress=progress, log=_note
    )
    valid = int(c.valid.sum())
    console.print(
        f"cache {c.path}: {len(c)} rows ({valid} usable), {c.size} px at 10 m, {c.n_s2} + 2 bands; "
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


def train_cmd(
    manifest: ManifestOpt,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Model preset (csmoe model-info lists them) (default: csmoe-b)."
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
        typer.Option("--batch-size", "-b", help="Global batch (all processes) (default: 256)."),
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Peak learning rate (default: 5e-4).")
    ] = None,
    warmup_steps: Annotated[
        int | None,
        typer.Option("--warmup-steps", help="Linear warm-up steps (default: 5% of the steps)."),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu or cuda (default: auto).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of init, masks and data order (default: 0).")
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option("--checkpoint-every", help="Steps between checkpoints (default: 1000)."),
    ] = None,
    log_every: Annotated[
        int | None, typer.Option("--log-every", help="Steps per metrics row (default: 10).")
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
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", min=0, help="Loader and decoding processes (default: 4)."),
    ] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model.")
    ] = None,
    strict: Annotated[
        bool | None, typer.Option("--strict/--no-strict", help="Stop on damaged images.")
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
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Pretrain a model on the imagery named by a manifest (torchrun --nproc-per-node K for DDP)."""
    from csmoe_model.errors import CsmoeError
    from csmoe_model.train import resolve_config, train

    given = {
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
        "workers": workers,
        "compile": compile,
        "strict": strict,
        "model_overrides": _model_args(model_arg),
        "s2_bands": _bands(s2_bands),
        "s1_bands": _bands(s1_bands),
    }
    cfg = resolve_config(given, config)
    if not cfg.out:
        raise CsmoeError("missing option --out RUN_DIR")
    if config:  # a config file counts as given options too (checked on --resume)
        from csmoe_model.train.config import read_config_file

        given = read_config_file(config) | {k: v for k, v in given.items() if v is not None}
    result = train(
        cfg, resume=resume, overwrite=overwrite, given=given, log=_note, progress=progress
    )
    if result.model_path is not None:
        loss = (
            ""
            if result.final_loss is None
            else f", loss {result.first_loss:.4f} -> {result.final_loss:.4f}"
        )
        console.print(
            f"trained {cfg.model} for {result.steps} steps{loss}; run directory {result.run_dir} "
            f"(encoder weights {result.model_path.name}, metrics.csv, tb/)",
            highlight=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    """Add ``cache`` and ``train`` to ``app``."""
    app.command("cache")(user_errors(cache))
    app.command("train")(user_errors(train_cmd))
