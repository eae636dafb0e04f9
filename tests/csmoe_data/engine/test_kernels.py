"""The compiled kernels (numba) against the numpy path: same areas on known-answer cases."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from csmoe_data import descriptors
from csmoe_data.descriptors import class_areas
from csmoe_data.engine import kernels as engine_kernels
from csmoe_data.engine.coverage import boundary_pieces, coverage_raw
from csmoe_data.geometry import transform_geometries_by_crs

pytest.importorskip("numba")


def _both(geoms, info, legend, crs="EPSG:32633"):
    g = transform_geometries_by_crs(np.array(geoms, dtype=object), [crs] * len(geoms), info.crs, 21)
    return class_areas(g, info, legend, compiled=True), class_areas(g, info, legend, compiled=False)


def _assert_same(a, b):
    np.testing.assert_allclose(a.area, b.area, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.valid, b.valid, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(a.total, b.total)
    assert a.unknown.keys() == b.unknown.keys()
    for v in a.unknown:
        assert a.unknown[v] == pytest.approx(b.unknown[v], abs=1e-9)
    assert a.unknown_rows == b.unknown_rows
    with np.errstate(invalid="ignore", divide="ignore"):
        fa, fb = a.area / a.valid[:, None], b.area / b.valid[:, None]
    np.testing.assert_allclose(fa, fb, rtol=0, atol=1e-9)


def test_kernels_are_used():
    assert engine_kernels.jit_kernels() is not None


def test_no_numba_env_selects_numpy(monkeypatch):
    monkeypatch.setattr(engine_kernels, "_KERNELS", [])
    monkeypatch.setenv("CSMOE_NO_NUMBA", "1")
    assert engine_kernels.jit_kernels() is None


def test_known_answers_on_both_paths(categorical_raster, legend_of, grid10m, tmp_path):
    # quadrants 1 2 / 3 4 with a nodata pixel (0) and a code the legend lacks (9)
    data = np.zeros((8, 8), dtype=np.uint8)
    data[:4, :4], data[:4, 4:], data[4:, :4], data[4:, 4:] = 1, 2, 3, 4
    data[7, 7], data[0, 7] = 0, 9
    info = categorical_raster(tmp_path / "q.tif", data, grid10m.transform, nodata=0)
    geoms = [
        grid10m.box(0, 0, 8, 8),  # whole raster
        grid10m.box(2, 2, 6, 6),  # aligned, one pixel per quadrant corner
        grid10m.box(1.25, 2.5, 5.75, 4.5),  # sub-pixel offsets
        shapely.affinity.rotate(grid10m.box(1, 1, 7, 7), 30),  # rotated
        grid10m.box(3.2, 3.3, 3.7, 3.9),  # inside one pixel
        grid10m.box(6, -3, 11, 2),  # partly off the raster, over the unknown code
        grid10m.box(20, 20, 30, 30),  # wholly off
        shapely.Polygon(
            grid10m.box(0, 0, 8, 8).exterior.coords, [grid10m.box(2, 2, 6, 6).exterior.coords]
        ),  # a hole
    ]
    legend = legend_of([1, 2, 3, 4])
    a, b = _both(geoms, info, legend)
    _assert_same(a, b)
    # the known answers, on the compiled path
    assert a.area[1] == pytest.approx([4, 4, 4, 4])
    assert a.area[2].sum() == pytest.approx(4.5 * 2)
    assert a.area[4] == pytest.approx([0.5 * 0.6, 0, 0, 0], abs=1e-9)
    assert a.area[6].sum() == 0 and a.total[6] == pytest.approx(100)
    assert a.unknown == {9: pytest.approx(3.0)}  # three footprints cover that pixel
    assert a.area[7] == pytest.approx([12, 11, 12, 11])  # minus the hole, nodata, code 9


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_random_footprints_strips_and_batches(
    categorical_raster, legend_of, grid10m, tmp_path, monkeypatch, dtype
):
    rng = np.random.default_rng(5)
    data = rng.integers(1, 6, size=(70, 90)).astype(dtype)
    if dtype == "uint16":
        data[data == 5] = 3000  # a large code the legend lacks
    info = categorical_raster(tmp_path / "r.tif", data, grid10m.transform, nodata=1)
    geoms = [
        shapely.affinity.rotate(grid10m.box(x, y, x + s, y + s * 0.7), ang)
        for x, y, s, ang in zip(
            rng.uniform(-5, 80, 60),
            rng.uniform(-5, 60, 60),
            rng.uniform(0.3, 40, 60),
            rng.uniform(0, 90, 60),
            strict=True,
        )
    ]
    legend = legend_of([2, 3, 4])
    a, b = _both(geoms, info, legend)
    _assert_same(a, b)
    assert a.unknown_rows > 0 and set(a.unknown) == {3000 if dtype == "uint16" else 5}
    # huge windows in row strips and tiny batches: the compiled path agrees with itself
    monkeypatch.setattr(descriptors, "MAX_WINDOW_PIXELS", 41)
    monkeypatch.setattr(descriptors, "PIECES_PER_BATCH", 30)
    c, d = _both(geoms, info, legend)
    _assert_same(c, a)
    _assert_same(d, b)


def test_compiled_boundary_pieces_give_the_same_coverage():
    rng = np.random.default_rng(2)
    for _ in range(20):
        x, y = rng.uniform(0, 5, 2)
        poly = shapely.affinity.rotate(
            shapely.box(x, y, x + rng.uniform(0.2, 9), y + rng.uniform(0.2, 9)), rng.uniform(0, 360)
        )
        poly = shapely.geometry.polygon.orient(poly)
        b = poly.bounds
        win = (int(np.floor(b[1])), int(np.ceil(b[3])), int(np.floor(b[0])), int(np.ceil(b[2])))
        ca = coverage_raw(boundary_pieces(poly, compiled=True), *win)
        cb = coverage_raw(boundary_pieces(poly, compiled=False), *win)
        np.testing.assert_allclose(ca, cb, rtol=0, atol=1e-9)
        assert ca.sum() == pytest.approx(poly.area)


def test_unwritable_cache_compiles_in_memory(monkeypatch):
    """No writable cache location (numba raises when caching is asked for): no failure."""
    import numba

    real = numba.njit
    calls = []

    def njit(*args, **kw):
        calls.append(kw.get("cache"))
        if kw.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **kw)

    monkeypatch.setattr(numba, "njit", njit)
    monkeypatch.setattr(engine_kernels, "_KERNELS", [])
    kernels = engine_kernels.jit_kernels()
    assert kernels is not None and calls == [True, False, True, False]
