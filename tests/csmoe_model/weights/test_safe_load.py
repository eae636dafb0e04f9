"""The safe torch-zip reader: real tensors out, nothing from the file ever imported or run."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from csmoe_model.errors import CsmoeError
from csmoe_model.weights.safe_load import SkippedObject, read_torch_checkpoint

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "csmae_reference"


def test_round_trip_matches_weights_only_load(tmp_path: Path) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {
        "state_dict": OrderedDict(
            w=torch.randn(3, 5),
            view=base[:, 1::2],  # non-contiguous view with an offset into a shared storage
            shared=base,
            half=torch.randn(7).half(),
            bf16=torch.randn(2, 2).bfloat16(),
            ints=torch.arange(5, dtype=torch.int64),
            mask=torch.tensor([True, False]),
            empty=torch.empty(0, 3),
            scalar=torch.tensor(2.5),
            param=torch.nn.Parameter(torch.ones(2)),
        ),
        "epoch": 3,
        "nested": [1, 2.5, "x", None, (True, b"raw")],
    }
    path = tmp_path / "plain.pt"
    torch.save(obj, path)
    expected = torch.load(path, weights_only=True)
    got = read_torch_checkpoint(path)
    assert got.skipped == []
    assert got.obj["epoch"] == 3 and got.obj["nested"] == expected["nested"]
    for key, value in expected["state_dict"].items():
        out = got.obj["state_dict"][key]
        assert type(out) is torch.Tensor and out.dtype == value.dtype, key
        assert out.shape == value.shape and torch.equal(out, value.detach()), key


def _torch_zip(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what a malicious checkpoint does
        return (os.system, (f"touch {self.marker}",))


class _ExecExploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("exploit", [_Exploit, _ExecExploit])
def test_malicious_pickle_runs_nothing(tmp_path: Path, exploit: type) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"state_dict": {"w": 1}, "evil": exploit(marker)}, protocol=2)
    path = tmp_path / "evil.ckpt"
    _torch_zip(path, payload)
    # the same payload unpickled plainly would create the marker: the test can fail
    got = read_torch_checkpoint(path)
    assert not marker.exists()
    assert isinstance(got.obj["evil"], SkippedObject)
    assert got.skipped and all(
        name.split(".")[0] in {"posix", "nt", "builtins", "__builtin__"} for name in got.skipped
    )
    pickle.loads(payload)
    assert marker.exists()  # proves the payload was live


def test_refuses_copyreg_extension_opcodes(tmp_path: Path) -> None:
    # EXT1 resolves a global through the process-wide copyreg registry: refused outright
    payload = b"\x80\x02\x82\x01."
    path = tmp_path / "ext.ckpt"
    _torch_zip(path, payload)
    with pytest.raises(CsmoeError, match="EXT1"):
        read_torch_checkpoint(path)


def test_storage_reaching_outside_its_record_is_refused(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(4)}, tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as z:
        names = z.namelist()
        records = {n: z.read(n) for n in names}
    data_key = next(n for n in names if "/data/" in n)
    bad = tmp_path / "short.pt"
    with zipfile.ZipFile(bad, "w") as z:
        for n, raw in records.items():
            z.writestr(n, raw[:4] if n == data_key else raw)
    with pytest.raises(CsmoeError, match="truncated"):
        read_torch_checkpoint(bad)


def test_not_a_zip_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CsmoeError, match="not a torch zip checkpoint"):
        read_torch_checkpoint(path)
    with pytest.raises(CsmoeError, match="not found"):
        read_torch_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"CSMAE fixtures not found at {FIXTURES}")
def test_lightning_checkpoint_with_omegaconf() -> None:
    path = FIXTURES / "csmae_sesd.ckpt"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # why a safe reader is needed at all
    got = read_torch_checkpoint(path)
    assert "omegaconf.dictconfig.DictConfig" in got.skipped
    cfg = got.obj["hyper_parameters"]["cfg"]
    assert isinstance(cfg, SkippedObject) and isinstance(cfg.state, dict)
    sd = got.obj["state_dict"]
    assert sd["backbone.cls_token"].shape == (1, 1, 192)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())


def test_stream_is_not_executed_through_io(tmp_path: Path) -> None:
    # a persistent id that is not a storage tuple is refused, not interpreted
    buf = io.BytesIO()

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return ("evil", "x") if obj == "marker" else None

    P(buf, protocol=2).dump({"a": "marker"})
    path = tmp_path / "pid.ckpt"
    _torch_zip(path, buf.getvalue())
    with pytest.raises(CsmoeError, match="persistent id"):
        read_torch_checkpoint(path)
