"""``csmoe``: the CSMoE model: inspect presets, train from manifests, embed and evaluate."""

from __future__ import annotations

from typing import Annotated

import typer

from csmoe_cli import model_eval, model_info, model_train
from csmoe_cli._common import run_app

app = typer.Typer(
    name="csmoe",
    help="Train and evaluate CSMoE (Soft MoE cross-sensor masked autoencoder) from csmoe-data manifests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from csmoe_model import __version__

        typer.echo(f"csmoe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Root options."""


for _module in (model_info, model_train, model_eval):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    run_app(app)


if __name__ == "__main__":  # pragma: no cover
    main()
