"""Every command in the README is checked against the CLI, and the whole path is run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer.main
from typer.testing import CliRunner

from csmoe_cli.data_app import app as data_app
from csmoe_cli.model_app import app as model_app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands(section: str | None = None) -> list[list[str]]:
    """Shell commands of the README's ```bash blocks (continuations joined, comments dropped)."""
    text = README.read_text(encoding="utf-8")
    if section is not None:
        start = text.index(section)
        end = text.find("\n## ", start + len(section))
        text = text[start : end if end > 0 else None]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


def _cli_args(argv: list[str]) -> tuple[object, list[str]] | None:
    if argv[0] == "csmoe-data":
        return typer.main.get_command(data_app), argv[1:]
    if argv[0] == "csmoe":
        return typer.main.get_command(model_app), argv[1:]
    if argv[0] == "torchrun":  # torchrun ... -m csmoe_cli.model_app ARGS
        return typer.main.get_command(model_app), argv[argv.index("csmoe_cli.model_app") + 1 :]
    return None


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
    group, args = _cli_args(argv)  # type: ignore[misc]
    command = group
    # typer vendors its own click: walk sub-commands through the group's own API
    while hasattr(command, "get_command") and args and not args[0].startswith("-"):
        sub = command.get_command(None, args[0])
        assert sub is not None, f"unknown command {args[0]!r} in README line {' '.join(argv)}"
        command, args = sub, args[1:]
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for token in args:
        if token.startswith("--"):
            assert token.split("=", 1)[0] in known, f"{token} is not an option of {argv[:3]}"


def test_readme_whole_path_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSMOE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    commands = readme_commands("## The whole path in six commands")
    assert len(commands) == 6
    for argv in commands:
        group, args = _cli_args(argv)  # type: ignore[misc]
        app = data_app if argv[0] == "csmoe-data" else model_app
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{' '.join(argv)}\n{result.output}"
    for produced in (
        "manifest.parquet",
        "stats.json",
        "run/model.safetensors",
        "emb.parquet",
        "retrieval.json",
        "probe.json",
    ):
        assert (tmp_path / produced).exists(), produced


def test_readme_downstream_tasks_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSMOE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    commands = readme_commands("### Downstream tasks")
    assert [" ".join(c[:3]) for c in commands][2:] == [
        "csmoe finetune --manifest",
        "csmoe eval segment",
        "csmoe study --manifest",
    ]
    for argv in commands:
        group, args = _cli_args(argv)  # type: ignore[misc]
        app = data_app if argv[0] == "csmoe-data" else model_app
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{' '.join(argv)}\n{result.output}"
    for produced in ("ft/metrics.json", "seg/metrics.json", "study/study.md", "study/tradeoff.png"):
        assert (tmp_path / produced).exists(), produced
    assert len(list((tmp_path / "seg_pred").glob("*.tif"))) == 2


WEIGHTS_SECTION = "## Weights, backbones and other toolkits"
FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "csmae_reference"


def _python_blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)


@pytest.mark.skipif(
    not (FIXTURES / "csmae_sesd.ckpt").is_file(), reason=f"CSMAE fixtures not found at {FIXTURES}"
)
def test_readme_weights_section_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from csmoe_model.integrations.timm import UNAVAILABLE

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSMOE_CACHE_DIR", str(tmp_path / "cache"))
    # a CSMAE checkpoint in CSMAE's Lightning layout (the shared fixture: a small vit_tiny one)
    shutil.copy(FIXTURES / "csmae_sesd.ckpt", tmp_path / "csmae_sesd.ckpt")
    runner = CliRunner()
    build = readme_commands("## The whole path in six commands")[0]
    commands = [build, *readme_commands(WEIGHTS_SECTION)]
    assert [c[:2] for c in commands[1:]] == [["csmoe", "import-weights"], ["csmoe", "embed"]]
    for argv in commands:
        app = data_app if argv[0] == "csmoe-data" else model_app
        result = runner.invoke(app, argv[1:])
        assert result.exit_code == 0, f"{' '.join(argv)}\n{result.output}"
    assert (tmp_path / "csmae_sesd" / "model.safetensors").is_file()
    assert (tmp_path / "emb_csmae.parquet").is_file()
    blocks = _python_blocks(WEIGHTS_SECTION)
    assert len(blocks) == 3
    namespace: dict[str, object] = {}
    for block in blocks:
        if "import timm" in block and UNAVAILABLE is not None:
            continue  # the timm example needs timm (tests/csmoe_model/integrations covers it)
        exec(compile(block, "README.md", "exec"), namespace)  # the README's own example code
    assert namespace["maps"][0].shape[-2:] == (16, 16)
    assert namespace["vv_emb"].shape == (2, 192)


def _run_section(section: str, count: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSMOE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    commands = readme_commands(section)
    assert len(commands) == count
    for argv in commands:
        group, args = _cli_args(argv)  # type: ignore[misc]
        app = data_app if argv[0] == "csmoe-data" else model_app
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{' '.join(argv)}\n{result.output}"


def test_readme_majortom_walkthrough(
    corpus_stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a local copy of Core-S2L2A (shards) and Core-S1RTC (unpacked tree), on land in Europe
    cells = ["535U_81R", "535U_82R", "536U_81R", "536U_82R"]
    corpus_stores.write_majortom(
        tmp_path / "Core-S2L2A", cells, "s2", size=252, days=[0, 5, 10, 15], seed=4
    )
    corpus_stores.write_majortom(
        tmp_path / "Core-S1RTC", cells, "s1", layout="tree", size=252, days=[2, 6, 40, 16], seed=5
    )
    _run_section("## Pretrain on Major TOM", 4, tmp_path, monkeypatch)
    train = pq.read_table(tmp_path / "majortom_train.parquet").to_pandas()
    assert len(train) == 12 and train["s2_path"].str.startswith("Core-S2L2A/images/").all()
    assert (tmp_path / "majortom_run" / "model.safetensors").is_file()


def test_readme_ssl4eo_walkthrough(
    corpus_stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus_stores.write_ssl4eo(
        tmp_path / "SSL4EO-S12-v1.1", n_files=3, samples_per_file=4, size=48, seed=6
    )
    _run_section("## Pretrain on SSL4EO-S12", 4, tmp_path, monkeypatch)
    assert len(pq.read_table(tmp_path / "ssl4eo_emb.parquet")) == 8
    assert (tmp_path / "ssl4eo_run" / "model.safetensors").is_file()
