"""``csmoe``: the CSMoE model: inspect presets, train from manifests, embed and evaluate."""

from __future__ import annotations

import typer

from csmoe_cli import model_eval, model_finetune, model_info, model_study, model_train
from csmoe_cli._common import add_version_option, run_app

app = typer.Typer(
    name="csmoe",
    help="Train and evaluate CSMoE (Soft MoE cross-sensor masked autoencoder) from csmoe-data manifests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


add_version_option(app)

for _module in (model_info, model_train, model_eval):
    _module.register(app)
app.add_typer(model_finetune.app)
app.add_typer(model_study.app)


def main() -> None:
    """Console-script entry point."""
    run_app(app)


if __name__ == "__main__":  # pragma: no cover
    main()
