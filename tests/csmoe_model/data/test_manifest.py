"""The model half's manifest reader: rows, resolved imagery paths, splits, errors."""

from __future__ import annotations

import shutil

import pytest

from csmoe_model.data import (
    read_manifest_rows,
)
from csmoe_model.errors import CsmoeError


def test_manifest_paths_resolve_against_its_folder(patches) -> None:
    manifest, rows = patches
    m = read_manifest_rows(manifest)
    assert len(m) == 16
    assert m.s2_path[0] == str(manifest.parent / rows[0]["s2_path"])
    assert list(m.split[:13]) == ["train"] * 12 + ["val"]


def test_manifest_without_imagery_columns_is_a_clear_error(tmp_path, manifest_factory) -> None:
    path = manifest_factory(tmp_path / "x.parquet", [{"patch_id": "a"}])
    with pytest.raises(CsmoeError, match="no column.*s1_path"):
        read_manifest_rows(path)


def test_a_moved_manifest_resolves_against_the_data_root(patches, tmp_path) -> None:
    manifest, rows = patches
    moved = tmp_path / "elsewhere" / "m.parquet"
    moved.parent.mkdir()
    shutil.copy(manifest, moved)
    away = read_manifest_rows(moved)
    missing = away.s2_path[0]
    assert missing == str(moved.parent / rows[0]["s2_path"])
    hint = away.missing_hint(missing)
    assert str(moved.parent) in hint and "pass --data-root DIR" in hint
    back = read_manifest_rows(moved, data_root=manifest.parent)
    original = read_manifest_rows(manifest)
    assert list(back.s1_path) == list(original.s1_path)
    assert list(back.s2_path) == list(original.s2_path)
    assert back.data_root == manifest.parent.resolve()
    assert "resolve against --data-root" in back.missing_hint(str(manifest.parent / "S2" / "x"))
    # a missing file outside the root: --data-root would not help, so no hint
    assert back.missing_hint("/nowhere/S2/x") == ""
