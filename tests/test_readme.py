"""Every command in the README is checked against the CLI, and all of them run as written, in README
order, in one folder, as a newcomer copying them one after another would run them."""

from __future__ import annotations

import re
import shlex
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer.main
import xarray as xr
from affine import Affine
from typer.testing import CliRunner

from csmoe_cli.data_app import app as data_app
from csmoe_cli.model_app import app as model_app

README = Path(__file__).resolve().parents[1] / "README.md"
FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "csmae_reference"

#: README commands that cannot run on this machine, by their first words, with the reason; their
#: options are still checked against the CLI (test_readme_command_options_exist)
NOT_RUN_HERE = {
    "make demo": "creates .venv and runs scripts/demo.sh: the same commands over a bigger path",
    "make test": "runs this test suite itself",
    "make lint": "ruff and mypy over the repository, no csmoe command",
    "torchrun": "four GPU processes (--nproc-per-node 4) training csmoe-b for 100 epochs",
}

WEIGHTS = "Weights, backbones and other toolkits"

#: options naming a file or folder a command writes (flags of the same name, such as
#: ``model-info --json``, write to stdout and are told apart by the CLI's own parameter)
OUTPUT_OPTIONS = ("--out", "-o", "--json", "--markdown", "--plots", "--save-predictions")


def readme_commands_by_section() -> list[tuple[str, list[str]]]:
    """(heading, argv) of every shell command of the README's ```bash blocks, in README order."""
    commands = []
    heading = ""
    pieces = re.split(r"(```bash\n.*?```)", README.read_text(encoding="utf-8"), flags=re.S)
    for piece in pieces:
        if not piece.startswith("```bash"):
            headings = re.findall(r"^#{2,3} (.+)$", piece, flags=re.M)
            heading = headings[-1] if headings else heading
            continue
        for line in piece[len("```bash\n") : -3].replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append((heading, shlex.split(line)))
    return commands


def readme_commands(section: str | None = None) -> list[list[str]]:
    """Shell commands of the README (of one section, by the start of its heading)."""
    return [
        argv
        for heading, argv in readme_commands_by_section()
        if section is None or heading.startswith(section)
    ]


def _cli_args(argv: list[str]) -> tuple[typer.Typer, list[str]] | None:
    if argv[0] == "csmoe-data":
        return data_app, argv[1:]
    if argv[0] == "csmoe":
        return model_app, argv[1:]
    if argv[0] == "torchrun":  # torchrun ... -m csmoe_cli.model_app ARGS
        return model_app, argv[argv.index("csmoe_cli.model_app") + 1 :]
    return None


def _command(argv: list[str]) -> tuple[Any, list[str]]:
    """The click command a README line runs and the arguments left after its sub-command names."""
    app, args = _cli_args(argv)  # type: ignore[misc]
    command = typer.main.get_command(app)
    # typer vendors its own click: walk sub-commands through the group's own API
    while hasattr(command, "get_command") and args and not args[0].startswith("-"):
        sub = command.get_command(None, args[0])
        assert sub is not None, f"unknown command {args[0]!r} in README line {' '.join(argv)}"
        command, args = sub, args[1:]
    return command, args


def output_names(argv: list[str]) -> list[str]:
    """What a README command writes, as named on its line (``--out X``, ``--json X``, ...)."""
    command, args = _command(argv)
    flags = {o for p in command.params if getattr(p, "is_flag", False) for o in p.opts}
    names = []
    for i, token in enumerate(args):
        option, _, value = token.partition("=")
        if option in OUTPUT_OPTIONS and option not in flags:
            names.append(value or args[i + 1])
    return [name.rstrip("/") for name in names]


CLI_COMMANDS = [c for c in readme_commands() if _cli_args(c) is not None]


def test_readme_has_commands() -> None:
    names = {" ".join(c[:2]) for c in CLI_COMMANDS}
    for expected in (
        "csmoe-data build-manifest",
        "csmoe-data stats",
        "csmoe-data grid",
        "csmoe train",
    ):
        assert expected in names


@pytest.mark.parametrize("argv", CLI_COMMANDS, ids=lambda a: " ".join(a)[:60])
def test_readme_command_options_exist(argv: list[str]) -> None:
    command, args = _command(argv)
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for token in args:
        if token.startswith("--"):
            assert token.split("=", 1)[0] in known, f"{token} is not an option of {argv[:3]}"


def test_readme_output_names_are_unique() -> None:
    # run one after another in one folder, no command may need --overwrite or overwrite silently
    written = Counter(name for argv in CLI_COMMANDS for name in output_names(argv))
    assert written, "no outputs found"
    assert [name for name, n in written.items() if n > 1] == []


# -- inputs the README asks the reader to bring (a local copy of a corpus, their own files) ---------


def _majortom_copy(corpus_stores: Any) -> None:
    # a local copy of Core-S2L2A (shards) and Core-S1RTC (unpacked tree), on land in Europe
    cells = ["535U_81R", "535U_82R", "536U_81R", "536U_82R"]
    corpus_stores.write_majortom(
        Path("Core-S2L2A"), cells, "s2", size=252, days=[0, 5, 10, 15], seed=4
    )
    corpus_stores.write_majortom(
        Path("Core-S1RTC"), cells, "s1", layout="tree", size=252, days=[2, 6, 40, 16], seed=5
    )


def _ssl4eo_copy(corpus_stores: Any) -> None:
    corpus_stores.write_ssl4eo(
        Path("SSL4EO-S12-v1.1"), n_files=3, samples_per_file=4, size=48, seed=6
    )


def _own_points_tiles_and_netcdf(geotiff: Callable[..., Path]) -> None:
    # WorldCover-coded tiles in two UTM zones, a NetCDF climate map written by xarray (lon 0..360,
    # no grid_mapping) and a CSV of points
    rng = np.random.default_rng(0)
    tiles = Path("worldcover_tiles")
    tiles.mkdir()
    codes = np.array([10, 20, 30, 40, 50, 80], dtype=np.uint8)
    # two tiles around Berlin (13.4E, zone 33) and Paris (2.35E, zone 31)
    geotiff(
        tiles / "N52E013.tif",
        rng.choice(codes, (300, 300)),
        Affine(100, 0, 380000, 0, -100, 5830000),
        crs="EPSG:32633",
    )
    geotiff(
        tiles / "N48E002.tif",
        rng.choice(codes, (300, 300)),
        Affine(100, 0, 440000, 0, -100, 5425000),
        crs="EPSG:32631",
    )
    lat = np.arange(89.75, -90, -0.5)
    lon = np.arange(0.25, 360, 0.5)
    kg = rng.integers(1, 31, (len(lat), len(lon))).astype(np.uint8)
    xr.Dataset({"kg": (("lat", "lon"), kg)}, coords={"lat": lat, "lon": lon}).to_netcdf(
        "kg_0p5deg.nc"
    )
    Path("points.csv").write_text("patch_id,lon,lat\nberlin,13.40,52.52\nparis,2.35,48.86\n")


def _shared_manifest_copy() -> None:
    # the Major TOM manifest copied into another folder, away from the imagery it names
    Path("shared").mkdir()
    shutil.copy("majortom_train.parquet", "shared/majortom_train.parquet")


def _csmae_checkpoint() -> None:
    # a CSMAE checkpoint in CSMAE's Lightning layout (the shared fixture: a small vit_tiny one)
    shutil.copy(FIXTURES / "csmae_sesd.ckpt", "csmae_sesd.ckpt")


def _python_blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)


def _check_majortom() -> None:
    train = pq.read_table("majortom_train.parquet").to_pandas()
    assert len(train) == 12 and train["s2_path"].str.startswith("Core-S2L2A/images/").all()


def _check_ssl4eo() -> None:
    assert len(pq.read_table("ssl4eo_emb.parquet")) == 8


def _check_points() -> None:
    from csmoe_data.manifest import read_manifest

    gdf, meta = read_manifest(Path("points.parquet"))
    assert gdf["patch_id"].tolist() == ["berlin", "paris"]
    assert np.allclose(gdf["lc_valid_frac"], 1.0, atol=1e-6)
    assert np.allclose(gdf["kg_valid_frac"], 1.0, atol=1e-6)
    assert meta["inputs"]["landcover"]["tiles"] == 2
    assert any("assumed EPSG:4326" in w for w in meta["warnings"])


def _check_downstream() -> None:
    for produced in ("ft/metrics.json", "seg/metrics.json", "study/study.md", "study/tradeoff.png"):
        assert Path(produced).exists(), produced
    assert len(list(Path("seg_pred").glob("*.tif"))) == 2


def _run_weights_python_blocks() -> None:
    from csmoe_model.integrations.timm import UNAVAILABLE

    blocks = _python_blocks(f"## {WEIGHTS}")
    assert len(blocks) == 3
    namespace: dict[str, object] = {}
    for block in blocks:
        if "import timm" in block and UNAVAILABLE is not None:
            continue  # the timm example needs timm (tests/csmoe_model/integrations covers it)
        exec(compile(block, "README.md", "exec"), namespace)  # the README's own example code
    assert namespace["maps"][0].shape[-2:] == (16, 16)  # type: ignore[index]
    assert namespace["vv_emb"].shape == (2, 192)  # type: ignore[attr-defined]


def test_readme_runs_in_order_in_one_folder(
    corpus_stores: Any,
    geotiff: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSMOE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    have_checkpoint = (FIXTURES / "csmae_sesd.ckpt").is_file()
    # prepared right before the first command that names them, as a reader would fetch them
    bring: dict[str, Callable[[], None]] = {
        "Core-S2L2A/metadata.parquet": lambda: _majortom_copy(corpus_stores),
        "SSL4EO-S12-v1.1": lambda: _ssl4eo_copy(corpus_stores),
        "points.csv": lambda: _own_points_tiles_and_netcdf(geotiff),
        "csmae_sesd.ckpt": _csmae_checkpoint,
        "shared/majortom_train.parquet": _shared_manifest_copy,
    }
    # what a section's commands produced, checked once its last command ran
    checks: dict[str, Callable[[], None]] = {
        "Pretrain on Major TOM": _check_majortom,
        "Pretrain on SSL4EO-S12": _check_ssl4eo,
        "Data as you have it": _check_points,
        "Downstream tasks": _check_downstream,
        WEIGHTS: _run_weights_python_blocks,
    }
    commands = readme_commands_by_section()
    not_run: set[str] = set()
    runner = CliRunner()
    for i, (heading, argv) in enumerate(commands):
        excused = next((k for k in NOT_RUN_HERE if " ".join(argv).startswith(k)), None)
        if excused is not None:
            not_run.add(excused)
            continue
        assert _cli_args(argv) is not None, f"README command neither run nor excused: {argv}"
        if heading.startswith(WEIGHTS) and not have_checkpoint:
            continue  # skipped below, once everything else has run
        for token in argv:
            if token in bring:
                bring.pop(token)()
        app, args = _cli_args(argv)  # type: ignore[misc]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{' '.join(argv)}\n{result.output}"
        for name in output_names(argv):
            assert Path(name).exists(), f"{' '.join(argv)} did not write {name}"
        last_of_section = i + 1 == len(commands) or commands[i + 1][0] != heading
        check = next((c for h, c in checks.items() if heading.startswith(h)), None)
        if last_of_section and check is not None:
            check()
            checks = {h: c for h, c in checks.items() if c is not check}
    assert not_run == set(NOT_RUN_HERE), "an excused command is no longer in the README"
    if not have_checkpoint:
        pytest.skip(f"all but the weights section ran; its CSMAE fixture is not at {FIXTURES}")
    assert checks == {}, f"sections not found in the README: {sorted(checks)}"
    assert bring == {}, f"inputs no README command named: {sorted(bring)}"
