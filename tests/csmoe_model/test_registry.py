"""The model registry: no import circle, timm's shape, one error type for unknown names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from csmoe_common.errors import CsmoeError, UnknownNameError
from csmoe_model import MODELS, build_model, get_config, list_models, register_model


def test_registry_imports_no_model_code_until_read() -> None:
    code = (
        "import sys, csmoe_model.registry as r\n"
        "assert 'csmoe_model.models.presets' not in sys.modules\n"
        "names = r.list_models()\n"
        "assert 'csmoe_model.models.presets' in sys.modules and 'csmoe-tiny' in names\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_config("csmoe-xl")
    assert isinstance(info.value, CsmoeError) and isinstance(info.value, KeyError)
    assert info.value.kind == "model" and info.value.name == "csmoe-xl"
    assert set(info.value.known) == set(list_models())
    assert str(info.value).startswith("unknown model 'csmoe-xl'; known: ")
    with pytest.raises(UnknownNameError):
        build_model("nope")


def test_register_model_adds_a_preset_and_refuses_a_duplicate() -> None:
    name = "test-registry-tiny"
    if name not in MODELS:

        @register_model(name)
        def _preset():  # the tiny dense preset under another name
            return get_config("csmae-tiny")

    assert name in list_models() and list_models() == sorted(list_models())
    model = build_model(name, img_size=16)
    assert model.config.name == name and model.img_size == 16
    with pytest.raises(CsmoeError, match="already registered"):
        register_model(name)(lambda: get_config("csmae-tiny"))
