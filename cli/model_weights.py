"""CLI command ``csmoe import-weights``: bring other projects' weights in as ``model.safetensors``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from csmoe_cli._common import console, user_errors

app = typer.Typer()


class Source(StrEnum):
    """Where the weights come from."""

    csmae = "csmae"


class InputTransform(StrEnum):
    """How the imported model takes its images."""

    transpose_hw = "transpose_hw"
    none = "none"


@app.command("import-weights")
@user_errors
def import_weights(
    source: Annotated[
        Source, typer.Argument(help="Format of the checkpoint: csmae (jakhac/CSMAE).")
    ],
    checkpoint: Annotated[
        Path, typer.Argument(help="The checkpoint (.ckpt) to convert.", dir_okay=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write model.safetensors into.")
    ],
    input_transform: Annotated[
        InputTransform,
        typer.Option(
            "--input-transform",
            help="transpose_hw: the model takes raster-oriented images (CSMAE's pipeline "
            "transposed them); none: tensors laid out as CSMAE's model received them.",
        ),
    ] = InputTransform.transpose_hw,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing model.safetensors.")
    ] = False,
) -> None:
    """Convert a checkpoint into DIR/model.safetensors for `csmoe embed --weights` and from_pretrained.

    The checkpoint is read without unpickling anything but tensors and plain containers; the
    variant is detected from its keys; the file records the preset, config, band order,
    BigEarthNet normalisation statistics and the input transform.
    """
    from csmoe_model.weights.csmae import import_csmae

    written, ckpt = import_csmae(
        checkpoint, out, input_transform=input_transform.value, overwrite=overwrite
    )
    sizes = ", ".join(f"{k}={v}" for k, v in sorted(ckpt.overrides.items()) if k != "in_chans")
    console.print(
        f"{checkpoint.name}: CSMAE {ckpt.variant} -> {ckpt.preset}"
        + (f" ({sizes})" if sizes else "")
        + f"; wrote {written}",
        highlight=False,
        soft_wrap=True,
    )
    if ckpt.assumed:
        console.print(
            f"note: the checkpoint's config did not say {', '.join(ckpt.assumed)}; "
            "CSMAE's defaults were used",
            highlight=False,
            soft_wrap=True,
        )
