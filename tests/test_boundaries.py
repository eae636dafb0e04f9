"""The package boundaries: the data half never imports torch, the model half never imports GDAL or
the data half, and the shared plumbing imports neither."""

from __future__ import annotations

import subprocess
import sys


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
