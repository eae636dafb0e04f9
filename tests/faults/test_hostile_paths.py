"""Output paths and manifests a hostile or careless user hands over, beyond issue 10's list.

Links in place of outputs, files where folders belong, GeoParquet that is not a manifest, columns
of the wrong type: each is one ``error:`` line, and nothing that was there is changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

X0, Y0 = 500000.0, 5000000.0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, geotiff: Any) -> dict[str, Path]:
    """A land-cover raster, footprints and the manifest built from them."""
    import geopandas as gpd
    import numpy as np
    import shapely
    from rasterio.transform import from_origin
    from typer.testing import CliRunner

    from csmoe_cli.data_app import app

    root = tmp_path_factory.mktemp("hostile")
    lc = np.full((100, 100), 40, dtype=np.uint8)
    lc[:, 50:] = 10
    geotiff(root / "lc.tif", lc, from_origin(X0, Y0, 10, 10), crs="EPSG:32633", nodata=0)
    geoms = [shapely.box(X0 + 100 * i, Y0 - 300, X0 + 100 * i + 200, Y0 - 100) for i in range(6)]
    gpd.GeoDataFrame({"tile_id": [f"t{i}" for i in range(6)]}, geometry=geoms, crs=32633).to_file(
        root / "fp.geojson"
    )
    paths = {"root": root, "lc": root / "lc.tif", "fp": root / "fp.geojson"}
    res = CliRunner().invoke(app, build(paths, root / "m.parquet"))
    assert res.exit_code == 0, res.output
    return {**paths, "manifest": root / "m.parquet"}


def build(p: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["build-manifest", "--footprints", str(p["fp"]), "--landcover", str(p["lc"]),
            "--landcover-legend", "worldcover", "--id-column", "tile_id", "--out", str(out),
            *extra]  # fmt: skip


# ------------------------------------------------------------------------------ outputs


def test_a_dangling_link_in_place_of_the_output_is_not_replaced(
    data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    link = tmp_path / "m.parquet"
    link.symlink_to(tmp_path / "elsewhere" / "m.parquet")  # points nowhere (yet)
    res = faults.invoke(faults.DATA_APP, build(data, link))
    faults.assert_one_line_error(res, "symbolic link", "--overwrite")
    assert link.is_symlink() and not (tmp_path / "elsewhere").exists()


def test_overwrite_replaces_a_link_never_the_file_it_points_to(
    data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"not a manifest\n")
    link = tmp_path / "m.parquet"
    link.symlink_to(precious)
    res = faults.invoke(faults.DATA_APP, build(data, link))
    faults.assert_one_line_error(res, "exists", "--overwrite")
    res = faults.invoke(faults.DATA_APP, build(data, link, "--overwrite"))
    assert res.code == 0, res.err
    assert precious.read_bytes() == b"not a manifest\n"
    assert not link.is_symlink() and link.read_bytes()[:4] == b"PAR1"


@pytest.mark.parametrize("command", ["build-manifest", "stats --json", "stats --plots", "grid"])
def test_a_file_where_a_folder_belongs_is_refused_before_any_work(
    command: str, data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    blocker = tmp_path / "m.parquet"
    blocker.write_bytes(b"a file, not a folder\n")
    before = faults.snapshot(tmp_path)
    out = blocker / "sub" / "out.parquet"
    args = {
        "build-manifest": build(data, out),
        "stats --json": ["stats", str(data["manifest"]), "--json", str(blocker / "s.json")],
        "stats --plots": ["stats", str(data["manifest"]), "--plots", str(blocker / "plots")],
        "grid": ["grid", "--bbox", "12.9,47.9,13.1,48.1", "--cell-size", "1200", "--out", str(out)],
    }[command]
    res = faults.invoke(faults.DATA_APP, args)
    faults.assert_one_line_error(res, f"{blocker} is a file, not a folder")
    assert res.out == ""  # refused before the report was printed
    assert faults.snapshot(tmp_path) == before


# ------------------------------------------------------------------------------ manifests


def _rewrite(src: Path, dst: Path, change: Any, keep_pandas: bool = True) -> Path:
    import pyarrow.parquet as pq

    table = change(pq.read_table(src))
    meta = dict(pq.read_schema(src).metadata)
    if not keep_pandas:
        meta.pop(b"pandas", None)
    pq.write_table(table.replace_schema_metadata(meta), dst)
    return dst


def _as_text(table: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, name in enumerate(table.column_names):
        if name.startswith("lc_"):
            table = table.set_column(i, name, pc.cast(table[name], pa.string()))
    return table


def test_fractions_stored_as_text_are_refused(
    data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    bad = _rewrite(data["manifest"], tmp_path / "text.parquet", _as_text, keep_pandas=False)
    res = faults.invoke(faults.DATA_APP, ["stats", bad])
    faults.assert_one_line_error(res, "lc_", "not fractions")


def test_columns_that_contradict_their_declared_type_are_refused(
    data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    # the pandas metadata still says lc_major is Int32; the data is text
    bad = _rewrite(data["manifest"], tmp_path / "contradicts.parquet", _as_text)
    res = faults.invoke(faults.DATA_APP, ["stats", bad])
    faults.assert_one_line_error(res, "contradicts.parquet", "another type")


def test_geoparquet_without_descriptors_is_a_loud_warning(tmp_path: Path, faults: Any) -> None:
    import geopandas as gpd
    import shapely

    plain = tmp_path / "plain.parquet"
    gpd.GeoDataFrame(
        {"patch_id": ["a", "b"]}, geometry=[shapely.box(0, 0, 1, 1)] * 2, crs=4326
    ).to_parquet(plain)
    res = faults.invoke(faults.DATA_APP, ["stats", plain])
    assert res.code == 0, res.err
    assert "warning:" in res.err and "no land-cover or climate fraction columns" in res.err


def test_a_legend_code_beyond_64_bits_is_one_line(
    data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    legend = tmp_path / "legend.json"
    legend.write_text('{"99999999999999999999": "huge", "10": "trees"}')
    args = build(data, tmp_path / "m.parquet")
    args[args.index("worldcover")] = str(legend)
    res = faults.invoke(faults.DATA_APP, args)
    faults.assert_one_line_error(res, "legend.json", "beyond the 64-bit integer range")
    assert not (tmp_path / "m.parquet").exists()


def test_a_device_pipe_or_socket_is_never_replaced(
    data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    import os

    pipe = tmp_path / "m.parquet"
    os.mkfifo(pipe)
    for args in (build(data, pipe, "--overwrite"),
                 ["stats", str(data["manifest"]), "--json", str(pipe), "--overwrite"]):  # fmt: skip
        res = faults.invoke(faults.DATA_APP, args)
        faults.assert_one_line_error(res, "m.parquet is a device, pipe or socket")
        assert pipe.is_fifo()


# ------------------------------------------------------------------------------ the model half


def _train(signal_data: dict[str, Path], out: Path, *extra: Any) -> list[Any]:
    return ["train", "--manifest", signal_data["manifest"], "--model", "csmoe-tiny", "--model-arg",
            "img_size=16", "--device", "cpu", "--cache-dir", signal_data["cache"], "--max-steps",
            "1", "--no-progress", "--out", out, *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("folder", "is a directory, not a JSON or TOML file"),
        (b"\xa0\xff\x00binary", "is not UTF-8 text"),
        ("lr = 0.1  # caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    ],
)
def test_a_config_that_is_a_folder_or_not_text_is_one_line(
    config: Any, needle: str, signal_data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    path = tmp_path / "c.toml"
    if config == "folder":
        path.mkdir()
    else:
        path.write_bytes(config)
    res = faults.invoke(faults.MODEL_APP, _train(signal_data, tmp_path / "run", "--config", path))
    faults.assert_one_line_error(res, "c.toml", needle)
    assert not (tmp_path / "run").exists()


def test_a_file_given_as_the_run_directory_is_untouched(
    signal_data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_bytes(b"my notes\n")
    for extra in ((), ("--resume",), ("--overwrite",)):
        res = faults.invoke(faults.MODEL_APP, _train(signal_data, mine, *extra))
        faults.assert_one_line_error(res, "notes.txt is a file, not a run directory")
        assert mine.read_bytes() == b"my notes\n"


def test_embed_refuses_repeated_ids_before_the_work(
    signal_data: dict[str, Path], tmp_path: Path, faults: Any
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(signal_data["manifest"])
    ids = table["patch_id"].to_pylist()
    ids[1] = ids[0]
    table = table.set_column(table.schema.get_field_index("patch_id"), "patch_id", pa.array(ids))
    dup = tmp_path / "dup.parquet"
    pq.write_table(table, dup)
    out = tmp_path / "emb.parquet"
    res = faults.invoke(faults.MODEL_APP, [
        "embed", "--manifest", dup, "--data-root", signal_data["root"], "--weights",
        signal_data["weights"], "--normalization", "manifest", "--device", "cpu", "--cache-dir",
        signal_data["cache"], "--no-progress", "--out", out])  # fmt: skip
    faults.assert_one_line_error(res, "repeats 1 patch_id value(s)", repr(ids[0]))
    assert not out.exists()
