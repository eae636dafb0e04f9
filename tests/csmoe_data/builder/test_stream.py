"""Streamed builds: batches in, row groups out; identical bytes whatever the batch or chunk size."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyproj
import pytest
import shapely
from rasterio.transform import from_origin

from csmoe_data.builder import BuildInputs, ExecutionOptions, build_manifest
from csmoe_data.builder import describe as describe_mod
from csmoe_data.builder import write as write_mod
from csmoe_data.builder.stream import BatchTally, merge_notes
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints
from csmoe_data.manifest import read_manifest
from csmoe_data.sampling import SamplingOptions

X0, Y0 = 500000.0, 5000000.0


@pytest.fixture
def data(tmp_path, geotiff):
    """60 footprints in a GeoParquet file over a 10 m land-cover and a 0.01 deg climate raster."""
    rng = np.random.default_rng(7)
    lc = rng.choice(np.array([10, 20, 30, 40, 80], dtype=np.uint8), size=(300, 300))
    lc[-5:, -5:] = 77  # a code the legend lacks
    geotiff(tmp_path / "lc.tif", lc, from_origin(X0, Y0, 10, 10), nodata=0)
    kg = np.full((100, 100), 15, dtype=np.uint8)
    kg[:, 50:] = 8
    geotiff(tmp_path / "kg.tif", kg, from_origin(14.5, 45.6, 0.01, 0.01), crs="EPSG:4326")
    x, y = rng.uniform(0, 2700, 60), rng.uniform(0, 2700, 60)
    geoms = shapely.box(X0 + x, Y0 - y - 250, X0 + x + 250, Y0 - y)
    geoms[5] = shapely.Polygon(
        [(X0, Y0 - 10), (X0 + 90, Y0 - 100), (X0 + 90, Y0 - 10), (X0, Y0 - 100)]
    )  # bow-tie: repaired
    fp = gpd.GeoDataFrame(
        {
            "patch_id": [f"p{i:03d}" for i in range(60)],
            "score": np.arange(60.0),
            "tag": ["a", "b", "c"] * 20,
        },
        geometry=geoms,
        crs="EPSG:32633",
    )
    fp.to_parquet(tmp_path / "fp.parquet")
    return tmp_path


def _inputs(d, footprints="fp.parquet"):
    return BuildInputs(
        d / footprints,
        landcover=d / "lc.tif",
        landcover_legend="worldcover",
        climate=d / "kg.tif",
        climate_legend="koppen-beck",
    )


def _build(d, name, chunk_size=2000, batch_rows=65_536, workers=1, **kw):
    execution = ExecutionOptions(workers=workers, chunk_size=chunk_size, progress=False)
    return build_manifest(_inputs(d, **kw), d / name, execution, batch_rows=batch_rows)


@pytest.fixture(params=["compiled", "numpy"])
def engine(request, monkeypatch):
    monkeypatch.setattr(
        describe_mod, "COMPILED_MIN_FOOTPRINTS", 0 if request.param == "compiled" else 10**12
    )
    return request.param


def test_chunk_size_one_and_small_batches_give_identical_bytes(data, engine, monkeypatch):
    monkeypatch.setattr(write_mod, "ROW_GROUP_ROWS", 16)  # several row groups on 60 rows
    a = _build(data, "a.parquet")
    b = _build(data, "b.parquet", chunk_size=1, batch_rows=7)
    c = _build(data, "c.parquet", chunk_size=3, batch_rows=13, workers=2)
    assert a.path.read_bytes() == b.path.read_bytes() == c.path.read_bytes()
    pf = pq.ParquetFile(a.path)
    assert pf.metadata.num_row_groups == 4 and pf.metadata.num_rows == 60
    gdf, meta = read_manifest(a.path)
    assert list(gdf["patch_id"]) == [f"p{i:03d}" for i in range(60)]  # input order
    assert list(gdf["tag"]) == ["a", "b", "c"] * 20
    assert meta["footprints"]["rows"] == 60 and meta["footprints"]["repaired"] == 1
    assert meta["footprints"]["notes"] == ["1 invalid geometry repaired"]
    assert meta["inputs"]["footprints"]["crs"] == ["EPSG:32633"]
    # the geo metadata covers every row, not the first batch only
    geo = json.loads(pf.schema_arrow.metadata[b"geo"])
    np.testing.assert_allclose(geo["columns"]["geometry"]["bbox"], gdf.total_bounds)
    # the repaired bow-tie of one batch is a MultiPolygon: types of every batch are listed
    assert geo["columns"]["geometry"]["geometry_types"] == ["MultiPolygon", "Polygon"]


def test_streamed_equals_whole_file_descriptors(data):
    """A GeoPackage source (loaded whole) and the same footprints as GeoParquet (streamed)."""
    gpd.read_parquet(data / "fp.parquet").to_file(data / "fp.gpkg")
    a, _ = read_manifest(_build(data, "a.parquet", batch_rows=8).path)
    b, _ = read_manifest(_build(data, "b.parquet", footprints="fp.gpkg").path)
    cols = [c for c in a.columns if c.startswith(("lc_", "kg_"))]
    assert list(a["patch_id"]) == list(b["patch_id"])
    for c in cols:
        np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy())


def test_duplicate_ids_across_batches_fail_and_write_nothing(data):
    fp = gpd.read_parquet(data / "fp.parquet")
    fp.loc[50, "patch_id"] = "p001"  # repeats a row of the first batch
    fp.to_parquet(data / "dup.parquet")
    with pytest.raises(CsmoeDataError, match="duplicate"):
        _build(data, "d.parquet", batch_rows=10, footprints="dup.parquet")
    assert not (data / "d.parquet").exists()
    assert not [p for p in data.iterdir() if p.name.startswith(".d.parquet")]


def test_sampling_through_a_temporary_pool(data):
    execution = ExecutionOptions(progress=False)
    res = build_manifest(
        _inputs(data), data / "s.parquet", execution, SamplingOptions(n=10), batch_rows=9
    )
    gdf, meta = read_manifest(res.path)
    assert len(gdf) == 10 and res.pool_rows == 60 and meta["sampling"]["pool_size"] == 60
    assert sorted(p.name for p in data.iterdir() if p.suffix == ".parquet") == [
        "fp.parquet",
        "s.parquet",
    ]  # the temporary pool is gone


def test_unreachable_dask_scheduler_is_reported_before_footprints_are_read(data):
    pytest.importorskip("distributed")
    inputs = BuildInputs(
        data / "not-there.parquet",  # loading the footprints would fail with another message
        landcover=data / "lc.tif",
        landcover_legend="worldcover",
    )
    execution = ExecutionOptions(dask_scheduler="tcp://127.0.0.1:9", progress=False)
    with pytest.raises(CsmoeDataError, match="Dask scheduler"):
        build_manifest(inputs, data / "x.parquet", execution)


def test_merge_notes_sums_counted_notes() -> None:
    merged = merge_notes(
        [
            ["1 invalid geometry repaired", "GeoParquet 'bbox' covering column dropped"],
            [
                "3 invalid geometries repaired",
                "2 footprint(s) without a polygonal geometry dropped (e.g. 'a', 'b')",
            ],
            [
                "GeoParquet 'bbox' covering column dropped",
                "1 footprint(s) without a polygonal geometry dropped (e.g. 'c')",
            ],
        ]
    )
    assert merged == [
        "4 invalid geometries repaired",
        "GeoParquet 'bbox' covering column dropped",
        "3 footprint(s) without a polygonal geometry dropped (e.g. 'a', 'b')",
    ]


def test_in_memory_and_windowed_reads_give_identical_output(data, engine):
    """The read strategy never changes a byte: every raster in memory, none, or one of two."""
    from csmoe_data.engine import io

    def build(name, mb):
        execution = ExecutionOptions(chunk_size=11, progress=False, raster_memory_mb=mb)
        return build_manifest(_inputs(data), data / name, execution, batch_rows=25).path

    lc_mb = io.raster_nbytes(io.inspect_raster(data / "lc.tif")) / 1e6
    windows, memory, one = build("w.parquet", 0), build("m.parquet", 512), build("o.parquet", 0.02)
    assert lc_mb > 0.02  # the 0.02 MB budget holds the small climate raster only
    assert windows.read_bytes() == memory.read_bytes() == one.read_bytes()


def test_class_areas_in_memory_equals_windowed(data, engine):
    from csmoe_data.descriptors import class_areas
    from csmoe_data.engine import io
    from csmoe_data.legends import load_legend

    info = io.inspect_raster(data / "lc.tif")
    legend = load_legend("worldcover", "landcover")
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-100, 3000, 300), rng.uniform(-100, 3000, 300)  # some off the raster
    size = rng.uniform(5, 900, 300)
    geoms = shapely.box(X0 + x, Y0 - y - size, X0 + x + size, Y0 - y)
    compiled = engine == "compiled"
    a = class_areas(geoms, info, legend, compiled, in_memory=False)  # one region read
    b = class_areas(geoms, info, legend, compiled, in_memory=True)
    import csmoe_data.descriptors as descriptors

    old = descriptors.MAX_REGION_PIXELS
    descriptors.MAX_REGION_PIXELS = 0  # tile-grouped window reads only
    try:
        c = class_areas(geoms, info, legend, compiled, in_memory=False)
    finally:
        descriptors.MAX_REGION_PIXELS = old
    np.testing.assert_array_equal(a.area, b.area)
    np.testing.assert_array_equal(a.area, c.area)
    assert a.unknown == b.unknown == c.unknown and a.unknown_rows == b.unknown_rows
    assert info.path in io._IN_MEMORY


def test_plan_in_memory_takes_the_smallest_first(data):
    from csmoe_data.engine import io

    lc, kg = io.inspect_raster(data / "lc.tif"), io.inspect_raster(data / "kg.tif")
    assert io.plan_in_memory([lc, kg], 0) == set()
    assert io.plan_in_memory([lc, kg], 1) == {lc.path, kg.path}
    assert io.plan_in_memory([lc, kg], io.raster_nbytes(kg) / 1e6) == {kg.path}


def _ids(*ids: str) -> Footprints:
    table = gpd.GeoDataFrame(
        {"patch_id": list(ids), "crs": ["EPSG:4326"] * len(ids)},
        geometry=[shapely.box(0, 0, 1, 1)] * len(ids),
    )
    return Footprints(table=table, source="test")


@pytest.mark.parametrize("reserved", [0, 2, 100])
def test_tally_finds_ids_repeated_across_batches_whatever_was_reserved(reserved):
    unique, repeated = BatchTally(), BatchTally()
    for tally in (unique, repeated):
        tally.reserve(reserved)  # too small: the buffer grows; enough: filled in place
    for batch in (["a", "b"], ["c"], ["d", "e", "f"]):
        unique.add(_ids(*batch))
    for batch in (["a", "b"], ["c"], ["d", "b", "f"]):
        repeated.add(_ids(*batch))
    assert unique.rows == repeated.rows == 6
    unique.check_unique_ids("patch_id")
    with pytest.raises(CsmoeDataError, match="1 duplicate id"):
        repeated.check_unique_ids("patch_id")


@pytest.mark.parametrize("bbox", ["covering", "attribute", "none"])
def test_streamed_batches_equal_the_whole_file(data, bbox, monkeypatch):
    """Batches of a GeoParquet file hold the rows, attributes, CRS and notes of the whole file.

    A covering ``bbox`` column is dropped in Arrow (with the whole file's note), a ``bbox``
    attribute that is not one is kept, and the CRS is parsed once for all batches.
    """
    from csmoe_data.builder.load import load_all_footprints
    from csmoe_data.builder.stream import footprint_batches
    from csmoe_data.footprints.vector import COVERING_BBOX_NOTE

    fp = gpd.read_parquet(data / "fp.parquet")
    path = data / f"fp_{bbox}.parquet"
    if bbox == "attribute":
        fp["bbox"] = np.arange(len(fp), dtype=float)
    fp.to_parquet(path, write_covering_bbox=bbox == "covering")
    inputs = _inputs(data, path.name)
    whole = load_all_footprints(inputs)
    parsed = []  # PROJJSON parsed into a CRS (not a CRS passed on as it is)
    real = pyproj.CRS.from_user_input.__func__

    def counting(cls, value, **kwargs):
        if isinstance(value, dict):
            parsed.append(value)
        return real(cls, value, **kwargs)

    monkeypatch.setattr(pyproj.CRS, "from_user_input", classmethod(counting))
    batches = list(footprint_batches(inputs, 7).batches)
    monkeypatch.undo()
    assert len(parsed) == 1  # once for the file, not once per batch
    assert len(batches) == 9
    table = pd.concat([b.table for b in batches], ignore_index=True)
    pd.testing.assert_frame_equal(
        table.drop(columns="geometry"), whole.table.drop(columns="geometry")
    )
    assert shapely.equals_exact(table.geometry.to_numpy(), whole.table.geometry.to_numpy()).all()
    assert ("bbox" in table.columns) == (bbox == "attribute")
    # geopandas' whole-file reader leaves the covering column out itself, without a note
    noted = [COVERING_BBOX_NOTE] if bbox == "covering" else []
    assert merge_notes([b.notes for b in batches]) == noted + whole.notes


def test_a_crs_proj_does_not_know_is_one_line(data):
    table = pq.read_table(data / "fp.parquet")
    geo = json.loads(table.schema.metadata[b"geo"])
    geo["columns"]["geometry"]["crs"] = {"type": "nonsense"}
    meta = {**table.schema.metadata, b"geo": json.dumps(geo).encode()}
    pq.write_table(table.replace_schema_metadata(meta), data / "bad_crs.parquet")
    with pytest.raises(CsmoeDataError, match="cannot read footprint file .*bad_crs.parquet"):
        _build(data, "x.parquet", footprints="bad_crs.parquet")
