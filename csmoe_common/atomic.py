"""Atomic output: one contract for every file and folder either half writes.

The contract:

* the data goes to a temporary file in the target's own folder (same file system, so the final
  rename is atomic), with a short hidden name that stays legal however long the target's name is;
* on success the temporary file is flushed (fsync) and renamed onto the target, and the folder entry
  is flushed too; on any error, Ctrl-C or SIGTERM the target is untouched and the temporary removed;
* the output gets the permissions a plain ``open()`` would give it (mkstemp's 0600 is undone);
* an existing target is replaced only when ``overwrite`` is true; :func:`check_output_path`
  checks that up front without creating anything, :func:`atomic_output` creates missing folders.

Temporary names are ``.<prefix>.<pid>.<random>.tmp`` (files) and ``.tmp-<prefix>-<pid>-<random>``
(folders): the pid lets a later run recognise leftovers whose writer is gone
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from csmoe_common.errors import CsmoeError

#: longest piece of the target's name kept in a temporary name (NAME_MAX is 255 bytes)
_PREFIX_CHARS = 48
_TMP_FILE = re.compile(r"^\..*\.(\d+)\.[^.]+\.tmp$")
_TMP_DIR = re.compile(r"^\.tmp-.*-(\d+)-[^-]+$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(name: str) -> str:
    # bytes, not characters, count against NAME_MAX: cut on the encoded form
    return name.encode("utf-8")[:_PREFIX_CHARS].decode("utf-8", "ignore")


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (renames) to disk where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def os_error_reason(exc: OSError) -> str:
    """The reason of an ``OSError`` in the platform's words.

    Writers in C/C++/Rust (pyarrow, GDAL, safetensors) wrap the system's reason in their own
    text ("Error writing bytes to file. Detail: [errno 28] ..."); where the error number is
    known its standard text is the one line a user needs.
    """
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


def os_error_message(exc: OSError, path: str | Path | None = None) -> str:
    """One line for an ``OSError``: its reason and the file it concerns."""
    where = exc.filename if exc.filename is not None else path
    reason = os_error_reason(exc)
    return f"{reason}: {where}" if where is not None else reason


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Give an ``OSError`` raised inside without a file name the name ``path``.

    Errors of C writers (pyarrow, numpy's memmap, GDAL) often carry no file name; the output
    being written is the file (or folder) the user has to look at.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, os_error_reason(exc), str(path)) from exc


#: errors of a file system that cannot reserve space ahead (then the space is not reserved)
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", -1)}


def reserve_space(path: str | Path) -> None:
    """Allocate the blocks of the (sparse) file ``path`` up to its size.

    A memory-mapped array written into a sparse file on a full disk kills the process with
    SIGBUS; with its blocks reserved first, a full disk is an ``OSError`` here instead. File
    systems that cannot reserve space are left as they are.

    Raises:
        OSError: the disk has not room for the file (ENOSPC, EDQUOT), with the file named.
    """
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in _NO_FALLOCATE:
            raise OSError(exc.errno, os_error_reason(exc), str(path)) from None
    finally:
        os.close(fd)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for f in (folder, *folder.parents):
        if f.exists() or f.is_symlink():
            break
        missing.append(f)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for f in folders:  # deepest first; a folder someone filled meanwhile stays
        try:
            f.rmdir()
        except OSError:
            break


@contextlib.contextmanager
def new_folder(folder: str | Path, whole: bool = True) -> Iterator[Path]:
    """Create ``folder`` (and its parents); if the block fails, remove what this call created.

    Args:
        folder: the output folder of a command (plots, a run, weights).
        whole: the folder is one output (plots, weights): on failure a folder this call created is
            removed with the files written into it. ``False`` for run folders, whose finished
            files (checkpoints) are worth keeping: only folders left empty are removed.

    A folder that existed before is never removed (its files are replaced one by one, atomically).

    Raises:
        CsmoeError: if the folder cannot be created.
    """
    folder = Path(folder)
    missing = _missing_folders(folder)
    _check_folders_on_the_way(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CsmoeError(f"cannot create folder {folder}: {os_error_reason(exc)}") from None
    try:
        yield folder
    except BaseException:
        if missing:
            if whole:
                shutil.rmtree(folder, ignore_errors=True)
                _remove_empty(missing[1:])
            else:
                with contextlib.suppress(OSError):
                    for sub in sorted(folder.rglob("*"), reverse=True):  # empty subfolders only
                        if sub.is_dir() and not sub.is_symlink():
                            with contextlib.suppress(OSError):
                                sub.rmdir()
                _remove_empty(missing)
        raise


def check_output_path(path: str | Path, overwrite: bool) -> Path:
    """Check that ``path`` may be written, creating nothing.

    A check made before the inputs are validated so leaves no trace.

    A symbolic link counts as an existing file even when it points nowhere; ``overwrite``
    replaces the link itself, never the file it points to.

    Raises:
        CsmoeError: if it is a folder or a special file (device, pipe, socket), exists (or is a
            link) and ``overwrite`` is false, or a folder on its way is a file.
    """
    path = Path(path)
    if path.is_dir():
        raise CsmoeError(f"{path} is a directory, not a file")
    if path.is_symlink() and not overwrite:
        raise CsmoeError(f"{path} exists (a symbolic link); pass --overwrite to replace the link")
    if path.exists() and not path.is_symlink() and not path.is_file():
        # --overwrite must not turn /dev/full, a pipe or a socket into a plain file
        raise CsmoeError(f"{path} is a device, pipe or socket, not a file; write elsewhere")
    if path.exists() and not overwrite:
        raise CsmoeError(f"{path} exists; pass --overwrite to replace it")
    _check_folders_on_the_way(path.parent)
    return path


def check_output_folder(folder: str | Path) -> Path:
    """Check that ``folder`` can be an output folder (figures), creating nothing.

    Raises:
        CsmoeError: if it, or the nearest part of its path that exists, is a file.
    """
    folder = Path(folder)
    _check_folders_on_the_way(folder)
    return folder


def _check_folders_on_the_way(folder: Path) -> None:
    """Refuse a folder path whose nearest existing part is a file (``out.parquet/fig.png``)."""
    for f in (folder, *folder.parents):
        if f.exists():
            if not f.is_dir():
                raise CsmoeError(f"cannot create folder {folder}: {f} is a file, not a folder")
            return


def make_parent(path: Path) -> list[Path]:
    """Create ``path``'s folder (and its parents).

    Returns:
        The folders created, deepest first (to remove them again if the output fails).

    Raises:
        CsmoeError: if it cannot be created (read-only, permission, a file in the way).
    """
    missing = _missing_folders(path.parent)
    _check_folders_on_the_way(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CsmoeError(f"cannot create folder {path.parent}: {os_error_reason(exc)}") from None
    return missing


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success fsync it and rename it onto ``path``.

    Args:
        path: the target file.
        overwrite: replace an existing target (checked before and again just before the rename).

    Raises:
        CsmoeError: the target exists without ``overwrite``, is a folder, or its folder cannot be
            created or written (the message names the file).
    """
    path = check_output_path(path, overwrite)
    created = make_parent(path)
    done = False
    try:
        try:
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{_prefix(path.name)}.{os.getpid()}.", suffix=".tmp", dir=path.parent
            )
        except OSError as exc:
            raise CsmoeError(f"cannot write {path}: {os_error_reason(exc)}") from None
        tmp = Path(tmp_name)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            os.close(fd)
            try:
                yield tmp
            except OSError as exc:
                # a failure writing our temporary (full disk, quota) is a failure to write the target
                if exc.filename is None or str(exc.filename) == str(tmp):
                    raise CsmoeError(f"cannot write {path}: {os_error_reason(exc)}") from None
                raise
            try:
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                if path.exists() and not overwrite:  # appeared while we were working
                    raise CsmoeError(f"{path} exists; pass --overwrite to replace it")
                os.replace(tmp, path)
            except OSError as exc:
                raise CsmoeError(f"cannot write {path}: {os_error_reason(exc)}") from None
            done = True
            fsync_dir(path.parent)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    finally:
        if not done:  # folders made for an output that failed go again
            _remove_empty(created)


def atomic_file(path: str | Path) -> contextlib.AbstractContextManager[Path]:
    """:func:`atomic_output` that replaces an existing target (checkpoints, caches, configs)."""
    return atomic_output(path, overwrite=True)


def temporary_dir(target: str | Path) -> Path:
    """Create and return a fresh hidden folder beside ``target`` for building it atomically.

    Raises:
        CsmoeError: if the folder cannot be created.
    """
    target = Path(target)
    created = make_parent(target)
    try:
        return Path(
            tempfile.mkdtemp(
                prefix=f".tmp-{_prefix(target.name)}-{os.getpid()}-", dir=target.parent
            )
        )
    except OSError as exc:
        _remove_empty(created)
        raise CsmoeError(f"cannot write in {target.parent}: {os_error_reason(exc)}") from None


def replace_dir(tmp_dir: Path, target: Path) -> None:
    """Move a finished folder ``tmp_dir`` onto ``target`` (replacing an old one) with renames only.

    Readers that have files of the old folder open keep reading them (POSIX unlink semantics).
    """
    if target.exists():
        trash = target.with_name(f".tmp-trash-{_prefix(target.name)}-{os.getpid()}-0")
        os.rename(target, trash)
        os.rename(tmp_dir, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp_dir, target)
    fsync_dir(target.parent)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders this module left in ``folder`` whose writer is gone.

    Only names made by this module (see the module docstring) whose pid is not a live process
    are touched; anything else is left alone.

    Returns:
        The paths removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_FILE.match(entry.name) or _TMP_DIR.match(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


def json_ready(value: Any) -> Any:
    """Convert numpy scalars/arrays to Python types and NaN/inf to ``None`` (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return json_ready(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_text(path: str | Path, text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) atomically.

    Raises:
        CsmoeError: see :func:`atomic_output`.
    """
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any, overwrite: bool = False) -> Path:
    """Write ``data`` as indented strict JSON (NaN becomes ``null``), atomically.

    Raises:
        CsmoeError: see :func:`atomic_output`.
    """
    text = json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n"
    return write_text(path, text, overwrite)
