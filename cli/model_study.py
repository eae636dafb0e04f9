"""CLI command: ``csmoe study`` (the CSMoE-vs-CSMAE comparison on the user's own data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from csmoe_cli._common import console, user_errors
from csmoe_cli.model_options import DataRootOpt
from csmoe_model.study.run import StudyConfig

app = typer.Typer()

_D = StudyConfig(manifest="", models=[], out="")


@app.command("study")
@user_errors
def study_cmd(
    manifest: Annotated[
        Path,
        typer.Option(
            "--manifest", "-m", help="Evaluation manifest (split, labels, optional mask_path)."
        ),
    ],
    models: Annotated[
        str,
        typer.Option(
            "--models", help="Comma-separated presets, the baseline first, e.g. csmae-sesd,csmoe-b."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Study folder (rerun the command to resume).")
    ],
    train_sets: Annotated[
        str | None,
        typer.Option(
            "--train-sets", help="Comma-separated pretraining manifests (default: --manifest)."
        ),
    ] = None,
    budget: Annotated[
        int, typer.Option("--budget", min=1, help="Pretraining steps of every cell.")
    ] = _D.budget,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Pretraining batch.")
    ] = _D.batch_size,
    lr: Annotated[float, typer.Option("--lr", help="Pretraining peak learning rate.")] = _D.lr,
    finetune_steps: Annotated[
        int, typer.Option("--finetune-steps", min=1, help="Steps of each fine-tuning run.")
    ] = _D.finetune_steps,
    segment_steps: Annotated[
        int, typer.Option("--segment-steps", min=1, help="Steps of each segmentation run.")
    ] = _D.segment_steps,
    model_arg: Annotated[
        list[str] | None,
        typer.Option("--model-arg", help="Config override KEY=VALUE for every model (repeatable)."),
    ] = None,
    labels_column: Annotated[
        str | None,
        typer.Option("--labels-column", help="Scene labels (default labels19, else labels)."),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Retrieval cut-off.")] = _D.k,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every run.")] = _D.seed,
    device: Annotated[
        str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    ] = _D.device,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Parent folder of caches (default: $CSMOE_CACHE_DIR or ~/.cache/csmoe).",
            file_okay=False,
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-j", min=0, help="Loader and decoding processes.")
    ] = _D.workers,
    data_root: DataRootOpt = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress bars.")
    ] = False,
) -> None:
    """Pretrain each model on each training set with the same budget and seed, then compare them.

    Every cell runs retrieval (4 directions), the linear and kNN probes, fine-tuning and (with
    masks) segmentation on the same evaluation splits; writes OUT/study.md, OUT/study.json and
    OUT/tradeoff.png (accuracy vs encoder GFLOPs and parameters). Rerunning resumes.
    """
    import json

    from csmoe_model.errors import CsmoeError
    from csmoe_model.study.run import run_study

    overrides: dict[str, object] = {}
    for item in model_arg or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CsmoeError(f"--model-arg expects KEY=VALUE, not {item!r}")
        try:
            overrides[key.strip().replace("-", "_")] = json.loads(raw)
        except ValueError:
            overrides[key.strip().replace("-", "_")] = raw
    cfg = StudyConfig(
        manifest=str(manifest.expanduser().resolve()),
        models=[m.strip() for m in models.split(",") if m.strip()],
        out=str(out),
        train_sets=[str(Path(t.strip()).expanduser().resolve()) for t in (train_sets or "").split(",") if t.strip()],
        budget=budget, batch_size=batch_size, lr=lr, seed=seed, device=device,
        cache_dir=str(cache_dir.expanduser().resolve()) if cache_dir else None, workers=workers,
        data_root=str(data_root.expanduser().resolve()) if data_root else None,
        model_overrides=overrides, finetune_steps=finetune_steps, segment_steps=segment_steps,
        labels_column=labels_column, k=k,
    )  # fmt: skip
    result = run_study(
        cfg, log=lambda m: console.print(m, highlight=False, soft_wrap=True), progress=progress
    )
    console.print(
        (result.out / "study.md").read_text(encoding="utf-8"), highlight=False, soft_wrap=True
    )
    console.print(
        f"study: {result.out / 'study.json'}, plot: {result.out / 'tradeoff.png'}", highlight=False
    )
