"""Manifest metadata, device resolution and the progress bar of csmoe_common."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csmoe_common.device import resolve_device
from csmoe_common.errors import CsmoeError
from csmoe_common.manifest import (
    METADATA_KEY,
    fraction_columns,
    imagery_root,
    read_manifest_metadata,
    resolve_imagery_path,
)
from csmoe_common.progress import progress_bar


def _parquet(path: Path, meta: dict[bytes, bytes] | None) -> Path:
    table = pa.table({"patch_id": ["a"]})
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def test_metadata_round_trip(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "m.parquet", {METADATA_KEY: json.dumps({"seed": 3}).encode()})
    assert read_manifest_metadata(path) == {"seed": 3}
    assert read_manifest_metadata(_parquet(tmp_path / "n.parquet", None)) == {}


@pytest.mark.parametrize(
    ("raw", "message"), [(b"{not json", "not valid JSON"), (b"[1, 2]", "not a JSON object")]
)
def test_bad_metadata_is_one_error(tmp_path: Path, raw: bytes, message: str) -> None:
    path = _parquet(tmp_path / "m.parquet", {METADATA_KEY: raw})
    with pytest.raises(CsmoeError, match=message):
        read_manifest_metadata(path)


def test_missing_and_non_parquet_files(tmp_path: Path) -> None:
    with pytest.raises(CsmoeError, match="not found"):
        read_manifest_metadata(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_text("hello")
    with pytest.raises(CsmoeError, match="not a readable Parquet"):
        read_manifest_metadata(bad)
    with pytest.raises(CsmoeError, match="directory"):
        read_manifest_metadata(tmp_path)


def test_fraction_columns_skip_summaries() -> None:
    names = ["lc_10", "lc_valid_frac", "lc_major", "lc_entropy", "kg_Cfb", "kg_major", "x"]
    assert fraction_columns(names, "lc_") == ["lc_10"]
    assert fraction_columns(names, "kg_") == ["kg_Cfb"]


def test_resolve_device() -> None:
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda"}
    with pytest.raises(CsmoeError, match="not a device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(CsmoeError, match="no CUDA device"):
            resolve_device("cuda")


def test_progress_bar_counts_and_disables() -> None:
    with progress_bar("work", 3, unit="rows", enabled=False) as advance:
        advance(2)  # a no-op, but callable with the same signature
    with progress_bar("work", 3, unit="rows", enabled=True, transient=True) as advance:
        for _ in range(3):
            advance()


def test_imagery_paths_resolve_against_the_manifest_folder_or_the_data_root(
    tmp_path: Path,
) -> None:
    manifest, root = tmp_path / "shared" / "m.parquet", tmp_path / "imagery"
    root.mkdir()
    assert imagery_root(manifest) == tmp_path.resolve() / "shared"
    assert imagery_root(manifest, root) == root.resolve()
    # relative paths (store fragments included) join the root; absolute ones and URLs do not
    assert resolve_imagery_path("S2/p0", root) == str(root / "S2" / "p0")
    assert resolve_imagery_path("mt/part_00001.parquet#row=3", root) == str(
        root / "mt" / "part_00001.parquet#row=3"
    )
    assert resolve_imagery_path("/data/S2/p0", root) == "/data/S2/p0"
    assert resolve_imagery_path("/vsis3/bucket/p0.tif", root) == "/vsis3/bucket/p0.tif"
    assert resolve_imagery_path("s3://bucket/p0.tif", root) == "s3://bucket/p0.tif"
    assert resolve_imagery_path("~/S2/p0", root) == str(Path.home() / "S2" / "p0")
    assert resolve_imagery_path(None, root) is None and resolve_imagery_path(" ", root) is None


def test_a_data_root_that_is_not_a_folder_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(CsmoeError, match=r"^--data-root .*nope does not exist$"):
        imagery_root(tmp_path / "m.parquet", tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(CsmoeError, match=r"^--data-root .*f is not a folder$"):
        imagery_root(tmp_path / "m.parquet", tmp_path / "f")
