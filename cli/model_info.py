"""CLI command ``csmoe model-info``: parameters and FLOPs of one preset, or a table of all."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from csmoe_cli._common import user_errors
from csmoe_cli.model_options import parse_key_values

if TYPE_CHECKING:
    from csmoe_model.flops import ModelReport

app = typer.Typer()

#: the preset the comparison table's ratios are relative to: CSMAE's best configuration (SESD,
#: the jakhac/CSMAE README's ``csmae.yaml``), exactly as CSMAE's code builds it
BASELINE = "csmae-sesd"


def _m(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def _g(n: float) -> str:
    return f"{n / 1e9:,.2f}"


def _console() -> Console:
    # wide enough for the comparison table when the output is not a terminal (pipes, tests)
    probe = Console()
    return Console(width=max(probe.width, 160)) if not probe.is_terminal else probe


def _detail(report: ModelReport) -> list[Table]:
    head = Table(
        title=f"{report.name}: {report.img_size} px, patch {report.patch_size}, {report.tokens_per_sensor} tokens per sensor"
    )
    head.add_column("quantity")
    head.add_column("value", justify="right")
    head.add_row("parameters, total (M)", _m(report.params_total))
    head.add_row("parameters, encoder (M)", _m(report.params_encoder))
    head.add_row("parameters, decoder (M)", _m(report.params_decoder))
    head.add_row("encoder parameters active per token (M)", _m(report.params_active_per_token))
    head.add_row(
        "Soft MoE blocks (of the encoder's)",
        f"{report.moe_blocks} / {report.config['depth_sensor'] + report.config['depth_shared']}",
    )
    head.add_row(
        "encoder inference GFLOPs per pair (GMACs)",
        f"{_g(report.encode.total)} ({_g(report.encode.total / 2)})",
    )
    head.add_row(
        "training step GFLOPs per pair, fwd+bwd (GMACs)",
        f"{_g(report.train.total)} ({_g(report.train.total / 2)})",
    )
    comp = Table(title="GFLOPs per pair by component")
    comp.add_column("component")
    comp.add_column("encoder inference", justify="right")
    comp.add_column("training step", justify="right")
    for key in report.train.components:
        comp.add_row(
            key, _g(report.encode.components.get(key, 0.0)), _g(report.train.components[key])
        )
    return [head, comp]


def _comparison(reports: list[ModelReport]) -> Table:
    base = next((r for r in reports if r.name == BASELINE), None)
    table = Table(title="Presets (GFLOPs per S1+S2 pair, FlopCounterMode: 2 per multiply-add)")
    cols = ["model", "img/patch", "tokens", "MoE blocks", "params M", "encoder M", "active/token M"]
    cols += ["encode GFLOPs", "encode GMACs", "train GFLOPs"]
    if base is not None:
        cols += [f"encode / {BASELINE}", f"train / {BASELINE}", f"params / {BASELINE}"]
    for i, c in enumerate(cols):
        table.add_column(c, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for r in reports:
        row = [r.name, f"{r.img_size}/{r.patch_size}", str(r.tokens_per_sensor), str(r.moe_blocks)]
        row += [_m(r.params_total), _m(r.params_encoder), _m(r.params_active_per_token)]
        row += [_g(r.encode.total), _g(r.encode.total / 2), _g(r.train.total)]
        if base is not None and (r.img_size, r.patch_size) == (base.img_size, base.patch_size):
            row += [
                f"{r.encode.total / base.encode.total:.3f}x",
                f"{r.train.total / base.train.total:.3f}x",
                f"{r.params_total / base.params_total:.2f}x",
            ]
        elif base is not None:
            row += ["-", "-", "-"]  # ratios only at the same image and patch size
        table.add_row(*row)
    return table


@app.command("model-info")
@user_errors
def model_info(
    name: Annotated[
        str | None, typer.Argument(help="Preset name; omit to compare all presets.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Config override KEY=VALUE (repeatable), e.g. --set patch_size=14."
        ),
    ] = None,
    batch: Annotated[
        int, typer.Option(min=1, help="Batch size for the count (FLOPs are per pair).")
    ] = 2,
) -> None:
    """Show a preset's parameters and FLOPs per S1+S2 pair, or compare all presets.

    Parameters: total, encoder, and active per token; FLOPs (FlopCounterMode on the meta device,
    2 per multiply-add; GMACs = half) for encoder inference and one training step, by component.
    """
    from csmoe_model.flops import compare_presets, model_report

    kwargs = parse_key_values(overrides, "--set")
    if name is not None:
        report = model_report(name, batch=batch, **kwargs)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
            return
        console = _console()
        for table in _detail(report):
            console.print(table)
        return
    reports = compare_presets(batch=batch, **kwargs)
    if as_json:
        typer.echo(
            json.dumps({"baseline": BASELINE, "models": [r.to_dict() for r in reports]}, indent=2)
        )
        return
    _console().print(_comparison(reports))
