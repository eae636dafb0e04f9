"""CLI commands: ``csmoe finetune`` (scene classification) and ``csmoe eval segment`` (segmentation).

Both are thin layers over :func:`csmoe_model.finetune.finetune`; defaults come from
:class:`~csmoe_model.finetune.config.FinetuneConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from csmoe_cli._common import console, user_errors
from csmoe_cli.model_options import (
    CacheDirOpt,
    DataRootOpt,
    DeviceOpt,
    OverwriteOpt,
    ProgressOpt,
)
from csmoe_model.finetune.config import FinetuneConfig, Mode, Sensor, Task

app = typer.Typer()

_D = FinetuneConfig()

ManifestOpt = Annotated[
    Path, typer.Option("--manifest", "-m", help="Manifest with split (and mask_path for segment).")
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="Pretrained encoder (model.safetensors), instead of --run.",
        dir_okay=False,
    ),
]
RunOpt = Annotated[
    Path | None,
    typer.Option("--run", help="A csmoe train run folder, instead of --weights.", file_okay=False),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Preset of --weights when the file does not name it.")
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run directory of the fine-tuning run.")]
SensorOpt = Annotated[
    Sensor, typer.Option("--sensor", help="Input: s1, s2 or both (concatenated).")
]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Epochs (default 10).")]
StepsOpt = Annotated[
    int | None, typer.Option("--max-steps", help="Optimizer steps (instead of --epochs).")
]
LrOpt = Annotated[float, typer.Option("--lr", help="Peak learning rate of the head.")]
DecayOpt = Annotated[
    float,
    typer.Option(
        "--layer-decay", help="Layer-wise lr decay when the encoder is trained (1: none)."
    ),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Patches per step.")]
EvalEveryOpt = Annotated[
    int | None,
    typer.Option("--eval-every", help="Steps between validations (default: once per epoch)."),
]
CkptOpt = Annotated[
    int, typer.Option("--checkpoint-every", min=1, help="Steps between checkpoints.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of head init and data order.")]
WorkersOpt = Annotated[
    int, typer.Option("--workers", "-j", min=0, help="Loader and decoding processes.")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue the run in --out from its newest checkpoint.")
]


def run_finetune(values: dict[str, Any], *, resume: bool, overwrite: bool, progress: bool,
                 save_predictions: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Build the config from the command's options, run it, print the test table; return the metrics.

    Raises:
        CsmoeError: bad options (see :meth:`FinetuneConfig.validate`) or a failed run.
    """
    from csmoe_model.finetune.loop import finetune

    for key in ("manifest", "run", "weights", "out", "cache_dir", "classes_file", "data_root"):
        if values.get(key) is not None:
            values[key] = str(Path(values[key]).expanduser().resolve())
    cfg = FinetuneConfig.from_dict(values)
    # options left at their defaults are not "given": a resumed run keeps its own values for them
    defaults = FinetuneConfig(task=cfg.task).to_dict()
    given = {k: v for k, v in cfg.to_dict().items() if k in values and v != defaults[k]}
    result = finetune(
        cfg,
        resume=resume,
        overwrite=overwrite,
        given=given,
        save_predictions=save_predictions,
        log=lambda m: console.print(m, highlight=False, soft_wrap=True),
        progress=progress,
    )
    if result.metrics is None:
        console.print(f"stopped at step {result.steps} of {result.total_steps}; --resume continues")
        return {}
    console.print(
        (Path(cfg.out) / "metrics.md").read_text(encoding="utf-8"), highlight=False, soft_wrap=True
    )
    console.print(f"metrics: {Path(cfg.out) / 'metrics.json'}", highlight=False)
    return result.metrics


@app.command("finetune")
@user_errors
def finetune_cmd(
    manifest: ManifestOpt,
    out: OutOpt,
    weights: WeightsOpt = None,
    run: RunOpt = None,
    model: ModelOpt = None,
    labels_column: Annotated[
        str | None,
        typer.Option(
            "--labels-column", help="List column of scene labels (default: labels19, else labels)."
        ),
    ] = None,
    sensor: SensorOpt = _D.sensor,
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode", help="linear: frozen encoder + linear head; full: train everything."
        ),
    ] = _D.mode,
    epochs: EpochsOpt = None,
    max_steps: StepsOpt = None,
    lr: LrOpt = _D.lr,
    layer_decay: DecayOpt = _D.layer_decay,
    batch_size: BatchOpt = _D.batch_size,
    eval_every: EvalEveryOpt = None,
    checkpoint_every: CkptOpt = _D.checkpoint_every,
    augment: Annotated[
        bool, typer.Option("--augment/--no-augment", help="Random flips and 90-degree rotations.")
    ] = _D.augment,
    device: DeviceOpt = _D.device,
    seed: SeedOpt = _D.seed,
    cache_dir: CacheDirOpt = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = _D.workers,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Fine-tune a pretrained encoder for scene classification (train/val/test from the manifest's split).

    Multi-label columns train with binary cross-entropy, single-label ones with softmax
    cross-entropy; the model with the best val macro mAP is reported on test (macro/micro mAP and F1
    at 0.5, as eval probe) in OUT/metrics.json and OUT/metrics.md.
    """
    values = {
        "task": Task.classify, "manifest": manifest, "out": out, "weights": weights, "run": run,
        "model": model, "labels_column": labels_column, "sensor": sensor, "mode": mode,
        "epochs": epochs, "max_steps": max_steps, "lr": lr, "layer_decay": layer_decay,
        "batch_size": batch_size, "eval_every": eval_every, "checkpoint_every": checkpoint_every,
        "augment": augment, "device": device, "seed": seed, "cache_dir": cache_dir, "workers": workers,
        "data_root": data_root,
    }  # fmt: skip
    run_finetune(values, resume=resume, overwrite=overwrite, progress=progress)


def segment_cmd(
    manifest: ManifestOpt,
    out: OutOpt,
    weights: WeightsOpt = None,
    run: RunOpt = None,
    model: ModelOpt = None,
    classes: Annotated[
        Path | None,
        typer.Option(
            "--classes",
            help="Mask legend: JSON {value: name} or CSV value,name (default: manifest metadata).",
            dir_okay=False,
        ),
    ] = None,
    ignore_index: Annotated[
        int | None,
        typer.Option(
            "--ignore-index", help="Mask value never trained on nor evaluated (nodata always is)."
        ),
    ] = None,
    finetune_encoder: Annotated[
        bool,
        typer.Option(
            "--finetune/--frozen",
            help="Train the encoder too (default: frozen encoder, head only).",
        ),
    ] = False,
    sensor: SensorOpt = _D.sensor,
    out_indices: Annotated[
        str | None,
        typer.Option(
            "--out-indices",
            help="Encoder blocks feeding the head, e.g. 2,5,8,11 (default: 4 evenly spaced).",
        ),
    ] = None,
    head_channels: Annotated[
        int, typer.Option("--head-channels", min=1, help="UPerNet pyramid width.")
    ] = _D.head_channels,
    epochs: EpochsOpt = None,
    max_steps: StepsOpt = None,
    lr: LrOpt = _D.lr,
    layer_decay: DecayOpt = _D.layer_decay,
    batch_size: BatchOpt = _D.batch_size,
    eval_every: EvalEveryOpt = None,
    checkpoint_every: CkptOpt = _D.checkpoint_every,
    save_predictions: Annotated[
        Path | None,
        typer.Option(
            "--save-predictions",
            help="Write one predicted GeoTIFF per test patch here.",
            file_okay=False,
        ),
    ] = None,
    device: DeviceOpt = _D.device,
    seed: SeedOpt = _D.seed,
    cache_dir: CacheDirOpt = None,
    data_root: DataRootOpt = None,
    workers: WorkersOpt = _D.workers,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Semantic segmentation: a UPerNet head on feature maps of several encoder blocks.

    Masks come from the manifest's mask_path column (one label raster per patch on the S2 grid),
    cached like the imagery. The model with the best val mIoU is reported on test: mIoU,
    per-class IoU, overall accuracy and per-class F1 from the confusion matrix of all test pixels,
    in OUT/metrics.json and OUT/metrics.md.
    """
    from csmoe_model.errors import CsmoeError

    indices = None
    if out_indices:
        try:
            indices = tuple(int(v) for v in out_indices.split(",") if v.strip())
        except ValueError:
            raise CsmoeError(
                f"--out-indices expects integers like 2,5,8,11, not {out_indices!r}"
            ) from None
    values = {
        "task": Task.segment, "manifest": manifest, "out": out, "weights": weights, "run": run,
        "model": model, "classes_file": classes, "ignore_index": ignore_index, "sensor": sensor,
        "mode": Mode.full if finetune_encoder else Mode.linear, "out_indices": indices,
        "head_channels": head_channels, "epochs": epochs, "max_steps": max_steps, "lr": lr,
        "layer_decay": layer_decay, "batch_size": batch_size, "eval_every": eval_every,
        "checkpoint_every": checkpoint_every, "device": device, "seed": seed, "cache_dir": cache_dir,
        "workers": workers, "data_root": data_root,
    }  # fmt: skip
    run_finetune(values, resume=resume, overwrite=overwrite, progress=progress,
                 save_predictions=save_predictions.expanduser().resolve() if save_predictions else None)  # fmt: skip
