"""``csmoe-data``: build descriptor manifests, sample them, and report on them."""

from __future__ import annotations

import typer

from csmoe_cli import data_build, data_grid, data_stats
from csmoe_cli._common import OneLineErrorsGroup, add_version_option, run_app

app = typer.Typer(
    name="csmoe-data",
    help="Thematic-climatic descriptors and sampled GeoParquet manifests for remote-sensing pretraining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrorsGroup,
)


add_version_option(app)

for _module in (data_build, data_grid, data_stats):
    app.add_typer(_module.app)


def main() -> None:
    """Console-script entry point."""
    run_app(app)


if __name__ == "__main__":  # pragma: no cover
    main()
