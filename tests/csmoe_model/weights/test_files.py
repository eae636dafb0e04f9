"""Tensor writers whose failed writes are ``OSError``s naming the file (torch and safetensors hide them)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
import torch

from csmoe_model.weights.files import save_safetensors_file, save_torch


def test_torch_write_failure_is_an_os_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    import csmoe_model.weights.files as files

    class FullDisk(io.RawIOBase):
        """A file on a disk that is full after 100 bytes."""

        def __init__(self) -> None:
            self.size = 0

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            if self.size + len(data) > 100:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.size += len(data)
            return len(data)

    # unbuffered: the failure reaches torch's writer, which reports it as a RuntimeError
    monkeypatch.setattr(files, "open", lambda path, mode: FullDisk(), raising=False)
    with pytest.raises(OSError) as info:
        save_torch({"w": torch.zeros(10_000)}, tmp_path / "x.pt")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "x.pt")
    # buffered: the failure comes when the file is closed
    monkeypatch.setattr(files, "open", lambda path, mode: io.BufferedWriter(FullDisk(), 1 << 20))
    with pytest.raises(OSError) as info:
        save_torch({"w": torch.zeros(10_000)}, tmp_path / "x.pt")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "x.pt")


def test_torch_round_trip(tmp_path: Path) -> None:
    save_torch({"w": torch.arange(5)}, tmp_path / "x.pt")
    assert torch.load(tmp_path / "x.pt", weights_only=True)["w"].tolist() == [0, 1, 2, 3, 4]


def test_safetensors_io_error_is_an_os_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no such folder" / "w.safetensors"
    with pytest.raises(OSError) as info:
        save_safetensors_file({"w": torch.zeros(3)}, missing, metadata={"a": "b"})
    assert info.value.errno == errno.ENOENT and info.value.filename == str(missing)
