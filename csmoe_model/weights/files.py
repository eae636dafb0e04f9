"""Writing tensors to files so that a failed write is an ``OSError`` naming the file.

``torch.save`` reports a failed ``write`` (full disk, quota) as a ``RuntimeError`` about stream
positions ("unexpected pos 576 vs 534"), and safetensors as a ``SafetensorError`` ("I/O error: No
space left on device (os error 28)"); neither says which file, and neither is an ``OSError``, so
the CLI's one-line handler cannot recognise them. The two writers here turn such failures back
into the ``OSError`` the system raised, with the file named.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from csmoe_common.atomic import os_error_reason

_OS_ERROR = re.compile(r"os error (\d+)")


class _RecordingFile:
    """A binary file whose ``write`` failures are kept, for torch's writer swallows them."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return int(self._fh.write(data))
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._fh.flush()


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)``; a failed write raises the system's ``OSError`` naming ``path``.

    Raises:
        OSError: the file cannot be created or written (errno and file name set).
    """
    path = Path(path)
    try:
        with open(path, "wb") as fh:
            recorder = _RecordingFile(fh)
            try:
                torch.save(obj, recorder)  # type: ignore[arg-type]
            except RuntimeError:
                if recorder.error is None:
                    raise
                raise recorder.error from None
    except OSError as exc:  # from torch's writes, or from the final flush on closing
        raise OSError(exc.errno, os_error_reason(exc), str(path)) from None


def save_safetensors_file(
    state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """``safetensors.torch.save_file``; a failed write raises an ``OSError`` naming ``path``.

    Raises:
        OSError: the file cannot be created or written (errno from safetensors' message).
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(state, str(path), metadata=metadata)
    except SafetensorError as exc:
        match = _OS_ERROR.search(str(exc))
        if match is None:
            raise
        code = int(match[1])
        raise OSError(code, os.strerror(code), str(path)) from None


__all__ = ["save_safetensors_file", "save_torch"]
