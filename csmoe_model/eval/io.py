"""Atomic output for the model half (which must not import ``csmoe_data.atomic``).

Write to a temporary file beside the target, then rename: a crash or Ctrl-C leaves the target
untouched and no partial file behind.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from csmoe_model.data.atomic import atomic_file
from csmoe_model.errors import CsmoeError

__all__ = ["atomic_output", "check_output_path", "json_ready", "write_json", "write_text"]


def check_output_path(path: str | Path, overwrite: bool) -> Path:
    """Check that ``path`` may be written and create its folder.

    Raises:
        CsmoeError: if it exists and ``overwrite`` is false, is a folder, or its folder cannot be made.
    """
    path = Path(path)
    if path.exists() and path.is_dir():
        raise CsmoeError(f"{path} is a directory, not a file")
    if path.exists() and not overwrite:
        raise CsmoeError(f"{path} exists; pass --overwrite to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CsmoeError(f"cannot create folder {path.parent}: {exc.strerror}") from exc
    return path


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Raises:
        CsmoeError: see :func:`check_output_path`.
    """
    path = check_output_path(path, overwrite)
    with atomic_file(path) as tmp:
        yield tmp
        if path.exists() and not overwrite:  # appeared while we were working
            raise CsmoeError(f"{path} exists; pass --overwrite to replace it")


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
    """Write ``text`` atomically (UTF-8).

    Raises:
        CsmoeError: see :func:`check_output_path`.
    """
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any, overwrite: bool = False) -> Path:
    """Write ``data`` as indented strict JSON (NaN becomes ``null``), atomically.

    Raises:
        CsmoeError: see :func:`check_output_path`.
    """
    text = json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n"
    return write_text(path, text, overwrite)
