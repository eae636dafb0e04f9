"""``csmoe-data``: build descriptor manifests, sample them, and report on them."""

from __future__ import annotations

from typing import Annotated

import typer

from csmoe_cli import data_build, data_grid, data_stats
from csmoe_cli._common import run_app

app = typer.Typer(
    name="csmoe-data",
    help="Thematic-climatic descriptors and sampled GeoParquet manifests for remote-sensing pretraining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from csmoe_data import __version__

        typer.echo(f"csmoe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Root options."""


for _module in (data_build, data_grid, data_stats):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    run_app(app)


if __name__ == "__main__":  # pragma: no cover
    main()
