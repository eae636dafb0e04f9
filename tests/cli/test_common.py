"""Usage errors of both CLIs are one ``error:`` line with the help hint, exit 2, never a panel."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from csmoe_cli.data_app import app as data_app
from csmoe_cli.model_app import app as model_app

USAGE_ERRORS = [
    (model_app, ["train", "--bogus"], "No such option: --bogus", "csmoe train --help"),
    (
        model_app,
        ["train", "--manifest", "m.parquet", "--out", "r", "--max-steps", "abc"],
        "--max-steps",
        "csmoe train --help",
    ),
    (model_app, ["eval", "probe"], "Missing option '--embeddings'", "csmoe eval probe --help"),
    (
        model_app,
        ["eval", "probe", "-e", "x.parquet", "--knn-k", "0"],
        "--knn-k",
        "csmoe eval probe --help",
    ),
    (
        model_app,
        ["eval", "probe", "-e", "x.parquet", "--sensor", "s3"],
        "--sensor",
        "csmoe eval probe --help",
    ),
    (model_app, ["nosuch"], "No such command 'nosuch'", "csmoe --help"),
    (model_app, ["tran"], "Did you mean 'train'?", "csmoe --help"),
    (model_app, ["eval", "nosuch"], "No such command 'nosuch'", "csmoe eval --help"),
    (model_app, ["--bogus"], "No such option: --bogus", "csmoe --help"),
    (
        data_app,
        ["build-manifest", "--pool", "p.parquet", "--n", "0", "--out", "o.parquet"],
        "--n",
        "csmoe-data build-manifest --help",
    ),
    (
        data_app,
        ["grid", "--bbox", "0,0,1,1", "--bbox", "1,1,2,2", "--out", "g.parquet"],
        "--bbox is given 2 times",
        "csmoe-data grid --help",
    ),
    (data_app, ["stats"], "Missing argument", "csmoe-data stats --help"),
    (
        data_app,
        ["grid", "--bbox", "1,2,3,4", "--max-cells", "x"],
        "--max-cells",
        "csmoe-data grid --help",
    ),
]


@pytest.mark.parametrize(
    ("app", "args", "needle", "hint"),
    USAGE_ERRORS,
    ids=[f"{hint.split()[0]} {' '.join(args)}"[:50] for _, args, _, hint in USAGE_ERRORS],
)
def test_usage_errors_are_one_line(
    app: object, args: list[str], needle: str, hint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # a narrow terminal: the line is not wrapped either
    res = CliRunner().invoke(app, args, prog_name=hint.split()[0])  # type: ignore[arg-type]
    text = res.stdout + res.stderr
    assert res.exit_code == 2, text
    assert "Traceback" not in text and "╭" not in text and "Usage:" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert needle in lines[0] and lines[0].endswith(f"(try '{hint}')"), lines[0]
    assert res.stdout == "", "errors go to stderr"


@pytest.mark.parametrize("app", [model_app, data_app])
def test_no_arguments_still_show_the_help(app: object) -> None:
    res = CliRunner().invoke(app, [])  # type: ignore[arg-type]
    text = res.stdout + res.stderr
    assert "Usage:" in text and "Commands" in text and "error:" not in text, text


def test_out_of_memory_names_only_the_options_the_command_has() -> None:
    import typer

    from csmoe_cli._common import user_errors

    app = typer.Typer()

    @app.command("a")
    @user_errors
    def with_workers(workers: int = 1, batch_size: int = 2) -> None:
        raise MemoryError

    @app.command("b")
    @user_errors
    def without() -> None:
        raise MemoryError

    res = CliRunner().invoke(app, ["a"])
    assert res.exit_code == 1
    assert "out of memory; try fewer --workers or a smaller --batch-size" in res.output
    res = CliRunner().invoke(app, ["b"])
    assert res.exit_code == 1 and res.output.strip() == "error: out of memory"


# --- help texts ------------------------------------------------------------------------


def _commands(app, prefix=()):  # noqa: ANN001, ANN202
    """(argv prefix, click command) of every command of ``app``, groups included."""
    import typer

    root = typer.main.get_command(app)
    stack = [(tuple(prefix), root)]
    while stack:
        path, command = stack.pop()
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            stack.append((path + (name,), sub))


def test_reflow_help_joins_paragraph_lines_and_keeps_the_rest() -> None:
    from csmoe_cli._common import reflow_help

    text = """First line
    goes on.

    Second paragraph,
    wrapped in the source.

    - item one
      continued
    - item two
    1. numbered

    \b
    kept
    as is
    \f
    private
    notes"""
    out = reflow_help(text)
    assert out.split("\n\n")[:2] == [
        "First line goes on.",
        "Second paragraph, wrapped in the source.",
    ]
    assert "- item one\n  continued\n- item two\n1. numbered" in out
    assert "\b\nkept\nas is" in out
    assert out.endswith("\f\nprivate\nnotes")
    assert reflow_help(out) == out


@pytest.mark.parametrize("app", [data_app, model_app], ids=["csmoe-data", "csmoe"])
def test_every_help_text_renders_its_paragraphs_unbroken(app, monkeypatch) -> None:  # noqa: ANN001
    # on a wide terminal each paragraph of a help text is one line of the rendered help
    from csmoe_cli._common import reflow_help

    monkeypatch.setenv("COLUMNS", "2000")
    monkeypatch.setenv("TERM", "dumb")
    runner = CliRunner()
    seen = 0
    for path, command in _commands(app):
        result = runner.invoke(app, [*path, "--help"], terminal_width=2000)
        assert result.exit_code == 0, (path, result.output)
        lines = {" ".join(line.split()) for line in result.output.splitlines()}
        for paragraph in reflow_help(command.help or "").partition("\f")[0].split("\n\n"):
            if "\n" in paragraph or "[" in paragraph or not paragraph.strip():
                continue  # lists and Rich markup render differently
            assert " ".join(paragraph.split()) in lines, (path, paragraph)
            seen += 1
    assert seen >= 5
