"""``csmoe cache`` through the CLI: damaged images are counted, --strict stops."""

from __future__ import annotations

from typer.testing import CliRunner

from csmoe_cli.model_app import app

runner = CliRunner()


def test_cli_cache_warns_about_damaged_images_and_strict_stops(patches, cache_dir) -> None:
    manifest, rows = patches
    next((manifest.parent / rows[5]["s1_path"]).glob("*_VV.tif")).write_bytes(b"\x00" * 64)
    base = [
        "cache",
        "--manifest",
        str(manifest),
        "--cache-dir",
        str(cache_dir),
        "--workers",
        "0",
        "--no-progress",
    ]
    res = runner.invoke(app, [*base, "--strict"])
    assert (
        res.exit_code == 1
        and "damaged image in row 5" in res.output
        and "Traceback" not in res.output
    )
    res = runner.invoke(app, base)
    assert res.exit_code == 0, res.output
    assert (
        "16 rows (15 usable)" in res.output and "warning: 1 damaged image(s) skipped" in res.output
    )
