"""The project's foundation: layout, sample data, the data half's independence from torch."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from csmoe_data.errors import CsmoeDataError
from csmoe_data.samples import list_samples, resolve_path


def test_samples_resolve_and_exist() -> None:
    for name, path in list_samples().items():
        assert resolve_path(f"sample:{name}") == path
        assert path.exists(), name


def test_unknown_sample_is_a_clear_error() -> None:
    with pytest.raises(CsmoeDataError, match="unknown sample"):
        resolve_path("sample:nope")


def test_plain_paths_pass_through(tmp_path) -> None:
    assert resolve_path(str(tmp_path)) == tmp_path


def test_cli_is_not_installed_as_bare_cli_module() -> None:
    import importlib.util
    import site

    import csmoe_cli

    assert csmoe_cli.__name__ == "csmoe_cli"
    # a bare `cli` may be importable from a checkout (the source folder), never from site-packages;
    # the checkout's own folder name and location do not matter
    spec = importlib.util.find_spec("cli")
    origin = str(spec.origin or "") if spec is not None else ""
    for folder in site.getsitepackages():
        assert not origin.startswith(folder), origin


@pytest.mark.parametrize("app_module", ["csmoe_cli.data_app", "csmoe_cli.model_app"])
def test_apps_show_version(app_module: str) -> None:
    import importlib

    app = importlib.import_module(app_module).app
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert "csmoe" in result.output
