"""``csmoe``: the CSMoE model: inspect presets, train from manifests, embed and evaluate."""

from __future__ import annotations

import typer

from csmoe_cli import (
    model_eval,
    model_finetune,
    model_info,
    model_study,
    model_train,
    model_weights,
)
from csmoe_cli._common import OneLineErrorsGroup, add_version_option, run_app

app = typer.Typer(
    name="csmoe",
    help="Train and evaluate CSMoE (Soft MoE cross-sensor masked autoencoder) from csmoe-data manifests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrorsGroup,
)


add_version_option(app)

# each module's nameless Typer app is merged into this one (its commands become top-level commands)
for _module in (model_info, model_train, model_eval, model_finetune, model_study, model_weights):
    app.add_typer(_module.app)


def main() -> None:
    """Console-script entry point."""
    run_app(app)


if __name__ == "__main__":  # pragma: no cover
    main()
