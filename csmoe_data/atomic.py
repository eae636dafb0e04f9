"""Atomic output: write to a temporary file beside the target, then rename.

A crash, Ctrl-C or error leaves the target untouched and no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from csmoe_data.errors import CsmoeDataError


def check_output_path(path: str | Path, overwrite: bool) -> Path:
    """Check that ``path`` may be written, without creating anything (so that a check made
    before the inputs are validated leaves no trace).

    Raises:
        CsmoeDataError: if it exists and ``overwrite`` is false, or it is a directory.
    """
    path = Path(path)
    if path.exists() and path.is_dir():
        raise CsmoeDataError(f"{path} is a directory, not a file")
    if path.exists() and not overwrite:
        raise CsmoeDataError(f"{path} exists; pass --overwrite to replace it")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Raises:
        CsmoeDataError: see :func:`check_output_path`.
    """
    path = check_output_path(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CsmoeDataError(f"cannot create folder {path.parent}: {exc.strerror}") from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600 files; give the output the permissions a plain open() would
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if path.exists() and not overwrite:  # appeared while we were working
            raise CsmoeDataError(f"{path} exists; pass --overwrite to replace it")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
