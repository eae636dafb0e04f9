"""The project's foundation: layout, sample data, the data half's independence from torch."""

from __future__ import annotations

import subprocess
import sys

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


def test_shared_plumbing_imports_neither_torch_nor_gdal() -> None:
    code = (
        "import sys, csmoe_common, pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(csmoe_common.__path__, 'csmoe_common.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in ('torch', 'csmoe_data', 'csmoe_model', 'rasterio', 'geopandas', 'osgeo', 'shapely') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_data_half_never_imports_torch() -> None:
    code = (
        "import sys, csmoe_data, csmoe_cli.data_app, pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(csmoe_data.__path__, 'csmoe_data.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'torch' not in sys.modules, 'csmoe_data imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_half_never_imports_data_half_or_gdal() -> None:
    code = (
        "import sys, csmoe_model, pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(csmoe_model.__path__, 'csmoe_model.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in ('csmoe_data', 'rasterio', 'geopandas', 'osgeo') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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
