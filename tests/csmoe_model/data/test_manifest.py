"""The model half's manifest reader: rows, resolved imagery paths, splits, errors."""

from __future__ import annotations

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
