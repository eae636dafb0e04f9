"""Atomic writes for the model half (the model half must not import ``csmoe_data.atomic``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (renames) to disk where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    A crash or exception at any moment leaves ``path`` as it was (old content or absent) and no
    temporary file behind (except after a hard kill, where a hidden ``.<name>.*.tmp`` may remain).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600 files; give the output the permissions a plain open() would
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def replace_dir(tmp_dir: Path, target: Path) -> None:
    """Move a finished folder ``tmp_dir`` onto ``target`` (replacing a stale one) with renames only.

    Readers that have files of the old folder open keep reading them (POSIX unlink semantics).
    """
    if target.exists():
        trash = target.with_name(f".trash-{target.name}-{os.getpid()}")
        os.rename(target, trash)
        os.rename(tmp_dir, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp_dir, target)
    fsync_dir(target.parent)
