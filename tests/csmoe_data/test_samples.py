"""The 6 real BigEarthNet footprints against the embedded Rubel Köppen and MODIS IGBP maps."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.manifest import read_manifest

# expected from /work/shared/data/README.md (patch centres checked against the maps)
EXPECTED = {
    "S2A_MSIL2A_20170613T101031_87_48": ("Cfb", 12),  # Austria, croplands
    "S2A_MSIL2A_20170617T113321_36_85": ("Cfb", 12),  # Ireland, croplands
    "S2A_MSIL2A_20170617T113321_4_55": ("Cfb", 10),  # Ireland, grasslands
    "S2A_MSIL2A_20171221T112501_56_35": ("Csa", 9),  # Portugal, savannas
    "S2B_MSIL2A_20170924T93020_69_24": ("Dfc", 8),  # Finland, woody savannas
    "S2B_MSIL2A_20180204T94161_57_38": ("Dfc", 1),  # Finland, evergreen needleleaf
}


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "bigearthnet_sample.parquet"
    # the README's example command
    res = CliRunner().invoke(
        app,
        [
            "build-manifest",
            "--footprints", "sample:bigearthnet",
            "--landcover", "sample:modis-igbp", "--landcover-legend", "modis-igbp",
            "--climate", "sample:koppen-rubel", "--climate-legend", "koppen-rubel",
            "--out", str(out),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def manifest(manifest_path):
    return read_manifest(manifest_path)


def test_climate_and_landcover_of_real_patches(manifest):
    gdf, _ = manifest
    assert sorted(gdf["patch_id"]) == sorted(EXPECTED)
    for _, row in gdf.iterrows():
        climate, igbp = EXPECTED[row["patch_id"]]
        assert row["kg_major"] == climate, row["patch_id"]
        assert row[f"kg_{climate}"] > 0.5
        assert row["lc_major"] == igbp, row["patch_id"]
        assert row["kg_valid_frac"] == pytest.approx(1.0) and row["lc_valid_frac"] == pytest.approx(
            1.0
        )


def test_real_manifest_columns_and_metadata(manifest, manifest_path):
    gdf, meta = manifest
    assert set(gdf["crs"]) == {"EPSG:32629", "EPSG:32633", "EPSG:32635"}
    # footprints are 1.2 km squares: 1.44 km2 whatever the zone (equal-area check in EPSG:6933)
    areas = gdf.to_crs("EPSG:6933").area / 1e6
    assert areas.between(1.43, 1.45).all()
    # imagery paths resolve from the manifest's folder; written outside any project tree (a
    # temporary folder), they are absolute, not ../../.. into the package
    assert gdf["s2_path"].notna().all() and gdf["s1_path"].notna().all()
    from pathlib import Path

    from csmoe_data.builder import project_root

    folder = manifest_path.parent
    for col in ("s1_path", "s2_path"):
        for p in gdf[col]:
            assert (folder / p).is_dir()
            if project_root(folder) is None:
                assert Path(p).is_absolute()
    assert all(len(list(labels)) >= 1 for labels in gdf["labels"])
    assert meta["inputs"]["climate"]["path"] == "sample:koppen-rubel"
    assert meta["inputs"]["landcover"]["resolution"] == [0.05, 0.05]
    assert meta["legends"]["climate"]["nodata"] == [32]
    assert meta["unknown_codes"]["landcover"]["values"] == {}


def test_bundled_manifest_is_reproducible(manifest, repo_root):
    """data_manifests/bigearthnet_sample.parquet holds what the command in its README builds."""
    import numpy as np

    bundled, meta = read_manifest(repo_root / "data_manifests" / "bigearthnet_sample.parquet")
    fresh, fresh_meta = manifest
    cols = ["patch_id", "crs", "lc_major", "kg_major"] + [
        c for c in fresh.columns if c[:3] in ("lc_", "kg_")
    ]
    cols = list(dict.fromkeys(cols))
    assert list(bundled.columns) == list(fresh.columns)
    for c in cols:
        a, b = bundled[c].to_numpy(), fresh[c].to_numpy()
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        else:
            assert list(a) == list(b), c
    assert (
        meta["legends"] == fresh_meta["legends"]
        and meta["inputs"]["climate"]["sha256"] == fresh_meta["inputs"]["climate"]["sha256"]
    )
    # imagery of the embedded samples resolves from the bundled manifest's folder
    folder = repo_root / "data_manifests"
    assert all((folder / p).is_dir() for p in bundled["s2_path"])
