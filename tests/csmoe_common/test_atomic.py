"""The one atomic-output contract."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from csmoe_common.atomic import (
    atomic_file,
    atomic_output,
    check_output_path,
    naming,
    new_folder,
    os_error_message,
    remove_stale_temporaries,
    replace_dir,
    temporary_dir,
    write_json,
    write_text,
)
from csmoe_common.errors import CsmoeError


def test_writes_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    write_text(target, "hello")
    assert target.read_text() == "hello"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_default_permissions_like_open(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        plain = tmp_path / "b.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o644


def test_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(CsmoeError, match="--overwrite"):
        write_text(target, "new")
    assert target.read_text() == "old"
    write_text(target, "new", overwrite=True)
    assert target.read_text() == "new"


def test_error_inside_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_long_target_name_gets_a_legal_temporary(tmp_path: Path) -> None:
    target = tmp_path / ("n" * 250 + ".json")
    write_json(target, {"a": float("nan")})
    assert target.read_text().strip().endswith("}")
    assert '"a": null' in target.read_text()


def test_check_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.txt"
    assert check_output_path(target, overwrite=False) == target
    assert not target.parent.exists()
    with pytest.raises(CsmoeError, match="directory"):
        check_output_path(tmp_path, overwrite=True)


def test_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with (
        pytest.raises(CsmoeError, match="cannot create folder"),
        atomic_output(blocker / "out.txt"),
    ):
        pass


def test_write_failure_names_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(CsmoeError, match="out.bin"), atomic_output(target) as tmp:
        raise OSError(28, "No space left on device", str(tmp))
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_output_removes_the_folders_it_made(tmp_path: Path) -> None:
    target = tmp_path / "new" / "sub" / "out.bin"
    with pytest.raises(CsmoeError, match="out.bin"), atomic_output(target):
        raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()  # a folder that was there stays, even empty
    with pytest.raises(CsmoeError), atomic_output(tmp_path / "mine" / "out.bin"):
        raise OSError(28, "No space left on device")
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


def test_reason_is_the_system_text_of_the_error_number() -> None:
    # pyarrow's wording of a full disk, which repeats the reason inside its own text
    exc = OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert os_error_message(exc, "/x/m.parquet") == "No space left on device: /x/m.parquet"
    assert os_error_message(OSError("no number"), None) == "no number"


def test_naming_adds_the_file_to_an_error_without_one(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info, naming(tmp_path / "cache"):
        raise OSError(28, "No space left on device")
    assert info.value.filename == str(tmp_path / "cache") and info.value.errno == 28
    with pytest.raises(OSError) as info, naming(tmp_path / "cache"):
        raise OSError(13, "Permission denied", "/elsewhere")
    assert info.value.filename == "/elsewhere"


def test_new_folder_removes_a_whole_new_output_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), new_folder(tmp_path / "a" / "plots") as folder:
        (folder / "one.png").write_bytes(b"done")
        raise RuntimeError("the second figure failed")
    assert list(tmp_path.iterdir()) == []
    with new_folder(tmp_path / "plots") as folder:  # success: kept
        (folder / "one.png").write_bytes(b"done")
    with pytest.raises(RuntimeError), new_folder(tmp_path / "plots"):  # existed: untouched
        raise RuntimeError("later run failed")
    assert (tmp_path / "plots" / "one.png").read_bytes() == b"done"


def test_new_run_folder_keeps_finished_files_and_drops_empty_ones(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), new_folder(tmp_path / "run", whole=False) as run:
        (run / "tb").mkdir()
        raise RuntimeError("failed before writing anything")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), new_folder(tmp_path / "run", whole=False) as run:
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "step_1.pt").write_bytes(b"resumable")
        (run / "tb").mkdir()
        raise RuntimeError("failed at the second checkpoint")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "run", "run/checkpoints", "run/checkpoints/step_1.pt"
    ]  # fmt: skip


def test_replace_dir(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    for content in ("one", "two"):
        tmp = temporary_dir(target)
        (tmp / "f").write_text(content)
        replace_dir(tmp, target)
    assert (target / "f").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    # a writer that dies hard (no cleanup) leaves its temporary behind
    code = (
        "import os, sys\n"
        "from csmoe_common.atomic import atomic_output, temporary_dir\n"
        "temporary_dir(sys.argv[1] + '/cache')\n"
        "cm = atomic_output(sys.argv[1] + '/out.txt'); tmp = cm.__enter__()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert len(leftovers) == 2
    mine = temporary_dir(tmp_path / "cache")  # a live writer's temporary stays
    user_file = tmp_path / ".hidden.tmp"  # not a name we make
    user_file.write_text("keep")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == leftovers
    assert mine.exists() and user_file.exists()
