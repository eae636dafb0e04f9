"""Figures are written as valid, non-trivial PNG files."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine

from csmoe_common.errors import CsmoeError
from csmoe_data.plots import FIGURES, legend_info, make_plots, plot_world_map

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_pool(rows: int = 60) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(0)
    lc = rng.dirichlet(np.ones(3), size=rows).astype(np.float32)
    kg = rng.dirichlet(np.ones(2), size=rows).astype(np.float32)
    df = pd.DataFrame(
        {
            "patch_id": [f"p{i}" for i in range(rows)],
            "lc_0": lc[:, 0],
            "lc_10": lc[:, 1],
            "lc_12": lc[:, 2],
            "lc_major": pd.array(np.array([0, 10, 12])[lc.argmax(1)], dtype="Int32"),
            "kg_Cfb": kg[:, 0],
            "kg_BWh": kg[:, 1],
            "kg_major": pd.array(np.array(["Cfb", "BWh"])[kg.argmax(1)], dtype="string"),
        }
    )
    lon = rng.uniform(-170, 170, rows)
    lat = rng.uniform(-60, 70, rows)
    return gpd.GeoDataFrame(
        df, geometry=shapely.box(lon, lat, lon + 0.1, lat + 0.1), crs="EPSG:4326"
    )


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000  # a real figure, not an empty canvas


def test_make_plots_writes_pngs(tmp_path) -> None:
    pool = small_pool()
    sample = pool.iloc[::4]
    meta = {
        "legends": {
            "landcover": {
                "kind": "landcover",
                "classes": [
                    {"value": 0, "code": 0, "name": "Water", "color": "#1c0dff"},
                    {"value": 10, "code": 10, "name": "Grasslands", "color": "#b6ff05"},
                ],
            }
        }
    }
    paths = make_plots(sample, pool, tmp_path / "figs", meta)
    assert [p.name for p in paths] == list(FIGURES)
    for p in paths:
        assert_png(p)
    with pytest.raises(CsmoeError, match="overwrite"):
        make_plots(sample, pool, tmp_path / "figs", meta)
    make_plots(sample, None, tmp_path / "figs", meta, overwrite=True)


def test_legend_info_reads_metadata_and_falls_back() -> None:
    colors, names = legend_info(
        {
            "legends": {
                "lc": {
                    "kind": "landcover",
                    "classes": [{"code": 12, "name": "Croplands", "color": "#c24f44"}],
                }
            }
        }
    )
    assert colors["lc_12"] == "#c24f44" and names["lc_12"] == "Croplands"
    assert colors.get("kg_Cfb", "").startswith("#")  # built-in Köppen palette


def test_world_map_draws_a_landcover_background(tmp_path, geotiff) -> None:
    raster = tmp_path / "lc.tif"
    data = np.zeros((90, 180), dtype=np.uint8)
    data[20:60, 30:120] = 10  # one "continent"
    geotiff(raster, data, Affine(2, 0, -180, 0, -2, 90), crs="EPSG:4326", nodata=255)
    pool = small_pool()
    plain = plot_world_map(pool.iloc[:5], pool, tmp_path / "plain.png")
    with_bg = plot_world_map(
        pool.iloc[:5], pool, tmp_path / "bg.png", {"inputs": {"landcover": {"path": str(raster)}}}
    )
    assert_png(plain)
    assert_png(with_bg)
    assert plain.read_bytes() != with_bg.read_bytes()
    # an unreadable raster just means no background
    assert_png(
        plot_world_map(
            pool, pool, tmp_path / "x.png", {"inputs": {"landcover": {"path": "/nope.tif"}}}
        )
    )


def test_class_distributions_leave_out_classes_no_row_holds(tmp_path, monkeypatch) -> None:
    import csmoe_data.plots as plots

    pool = small_pool()
    pool["lc_20"] = np.float32(0.0)  # a legend class present as a column, held by no row
    pool["kg_EF"] = np.float32(0.0)
    figures = []

    def keep(fig, path, overwrite):  # noqa: ANN001, ANN202
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_class_distributions(
        pool.iloc[::3], pool, tmp_path / "c.png", baseline=pool.iloc[1::3]
    )
    (fig,) = figures
    lc_ax, kg_ax = fig.axes
    lc_labels = [t.get_text() for t in lc_ax.get_yticklabels()]
    kg_labels = [t.get_text() for t in kg_ax.get_yticklabels()]
    assert len(lc_labels) == 3 and not any(label.startswith("20") for label in lc_labels)
    assert kg_labels == ["Cfb", "BWh"] or sorted(kg_labels) == ["BWh", "Cfb"]
    assert "1 class of the legend in no row" in lc_ax.get_title()
    assert "1 class of the legend in no row" in kg_ax.get_title()
