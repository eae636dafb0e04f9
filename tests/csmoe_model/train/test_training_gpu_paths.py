"""CUDA-relevant paths of training, checked device-agnostically on the CPU (and on a GPU when present).

Device choice, CUDA RNG checkpointing, ``weights_only`` checkpoints, DDP with a loss term switched
off, the uint16 -> float conversion and the one-pass flips/rotations of the device transform, and the
loader's side-stream copies (CUDA-only tests are skipped without a GPU; a GPU session runs them with
``pytest -k "gpu or cuda"``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csmoe_common.device import resolve_device
from csmoe_model import build_model
from csmoe_model.data import synthetic_cache
from csmoe_model.data.loader import DeviceLoader
from csmoe_model.data.transforms import DeviceTransform, _dihedral_reference, dihedral, to_float
from csmoe_model.train.checkpoint import (
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from csmoe_model.train.config import TrainConfig
from csmoe_model.train.distributed import freeze_unused, wrap_ddp
from csmoe_model.train.schedule import build_optimizer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_device_auto_picks_cuda_with_an_index(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda:0")
    # under torchrun (LOCAL_RANK 1) plain "cuda" names this process's GPU
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_cpu_run_checkpoints_no_cuda_state_and_loads_weights_only(tmp_path) -> None:
    torch.manual_seed(5)
    state = capture_rng(torch.device("cpu"))
    assert state["cuda"] == []  # a CPU run never touches (or creates) a CUDA context
    expect = torch.rand(3)
    model = build_model("csmoe-tiny", img_size=16)
    opt = build_optimizer(model, TrainConfig(lr=1e-3), torch.device("cpu"))
    path = save_checkpoint(tmp_path, 1, {"model": model.state_dict(), "rng": [state],
                                         "optimizer": opt.state_dict()})  # fmt: skip
    ckpt = load_checkpoint(path)  # torch.load(weights_only=True) inside
    torch.manual_seed(99)
    restore_rng(ckpt["rng"][0], torch.device("cpu"))
    torch.testing.assert_close(torch.rand(3), expect)


@pytest.mark.parametrize(
    "overrides,unused",
    [
        ({}, set()),
        ({"w_contrastive": 0.0}, {"encoder.fc_norm.weight", "encoder.fc_norm.bias"}),
        # encoder.norm feeds the pooled embedding too (CSMAE's fc_norm(mean(norm(x)))): still used
        ({"w_uni": 0.0, "w_cross": 0.0}, set()),
    ],
)
def test_unused_in_training_is_exact(overrides, unused) -> None:
    torch.manual_seed(0)
    model = build_model("csmoe-tiny", img_size=16, **overrides)
    s1, s2 = torch.randn(2, 2, 16, 16), torch.randn(2, 10, 16, 16)
    model(s1, s2).loss.backward()
    no_grad = {n for n, p in model.named_parameters() if p.grad is None}
    assert no_grad == unused == model.unused_in_training()


def test_ddp_with_a_loss_term_switched_off(tmp_path) -> None:
    # world size 1 is enough: DDP's reducer fails on the second step when a trainable parameter
    # got no gradient in the first one
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = build_model("csmoe-tiny", img_size=16, w_contrastive=0.0)
        assert freeze_unused(model) == {"encoder.fc_norm.weight", "encoder.fc_norm.bias"}
        opt = build_optimizer(model, TrainConfig(lr=1e-3), torch.device("cpu"))
        ddp = wrap_ddp(model, torch.device("cpu"))
        s1, s2 = torch.randn(2, 2, 16, 16), torch.randn(2, 10, 16, 16)
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            ddp(s1, s2).loss.backward()
            opt.step()
    finally:
        dist.destroy_process_group()


def test_uint16_travels_as_int16_and_converts_in_one_step() -> None:
    raw = np.array([0, 1, 1500, 32767, 32768, 65535], dtype=np.uint16)
    t = torch.from_numpy(raw.view(np.int16))
    out = to_float(t)
    assert out.dtype == torch.float32
    assert out.tolist() == raw.astype(np.float32).tolist()


def test_dihedral_gather_equals_the_definition() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 6, 6, generator=g)
    code = torch.arange(16) % 8
    torch.testing.assert_close(dihedral(x, code), _dihedral_reference(x, code), rtol=0, atol=0)
    xt = x.transpose(-1, -2)  # non-contiguous input
    torch.testing.assert_close(dihedral(xt, code), _dihedral_reference(xt, code), rtol=0, atol=0)
    assert dihedral(x, code).is_contiguous()
    with pytest.raises(ValueError):
        dihedral(torch.zeros(1, 1, 2, 3), torch.tensor([0]))


def test_transform_leaves_float32_input_untouched() -> None:
    stats = {
        "s2_mean": [1.0] * 12,
        "s2_std": [2.0] * 12,
        "s1_mean": [3.0, 4.0],
        "s1_std": [5.0, 6.0],
    }
    tf = DeviceTransform(stats, 12, img_size=8)
    batch = {
        "s2_10": torch.zeros(2, 4, 8, 8, dtype=torch.int16),
        "s2_20": torch.zeros(2, 6, 4, 4, dtype=torch.int16),
        "s2_60": torch.zeros(2, 2, 2, 2, dtype=torch.int16),
        "s1": torch.full((2, 2, 8, 8), 3.0),
    }
    before = batch["s1"].clone()
    s1, s2 = tf(batch, torch.tensor([1, 6]))
    assert torch.equal(batch["s1"], before)
    torch.testing.assert_close(s1[:, 0], torch.zeros(2, 8, 8))
    torch.testing.assert_close(s2, torch.full((2, 12, 8, 8), -0.5))


def _batches(cache, device, workers: int):
    rows = cache.select()
    loader = DeviceLoader(cache, rows, 4, device=device, img_size=32, augment=True,
                          shuffle=True, drop_last=True, seed=3, num_steps=4, workers=workers)  # fmt: skip
    return [(b.step, b.s1.cpu(), b.s2.cpu()) for b in loader], loader


def test_loader_prefetch_yields_the_planned_batches(tmp_path) -> None:
    cache = synthetic_cache(tmp_path, 16, size=24, n_s2=12)
    got, loader = _batches(cache, "cpu", workers=0)
    assert [s for s, _, _ in got] == [0, 1, 2, 3]
    assert loader.wait_s > 0
    # the same batches with a worker process (ring buffers + one batch fetched ahead)
    again, _ = _batches(cache, "cpu", workers=1)
    for (_, a1, a2), (_, b1, b2) in zip(got, again, strict=True):
        assert torch.equal(a1, b1) and torch.equal(a2, b2)


@cuda
def test_cuda_loader_side_stream_matches_cpu(tmp_path) -> None:
    cache = synthetic_cache(tmp_path, 16, size=24, n_s2=12)
    ref, _ = _batches(cache, "cpu", workers=0)
    got, loader = _batches(cache, "cuda", workers=1)
    for (sa, a1, a2), (sb, b1, b2) in zip(ref, got, strict=True):
        assert sa == sb
        torch.testing.assert_close(b1, a1, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(b2, a2, atol=1e-4, rtol=1e-5)


@cuda
def test_cuda_transform_ops_match_cpu() -> None:
    raw = torch.randint(-32768, 32767, (3, 2, 8, 8), dtype=torch.int16)
    torch.testing.assert_close(to_float(raw.cuda()).cpu(), to_float(raw), rtol=0, atol=0)
    x, code = torch.randn(8, 3, 8, 8), torch.arange(8)
    torch.testing.assert_close(dihedral(x.cuda(), code.cuda()).cpu(), dihedral(x, code))


@cuda
def test_cuda_rng_state_of_the_training_device_round_trips(tmp_path) -> None:
    device = resolve_device("cuda")
    torch.cuda.manual_seed(11)
    state = capture_rng(device)
    assert len(state["cuda"]) == 1  # only this device, not every visible GPU
    path = save_checkpoint(tmp_path, 1, {"rng": [state]})
    expect = torch.rand(4, device=device)
    torch.cuda.manual_seed(12)
    restore_rng(load_checkpoint(path)["rng"][0], device)
    torch.testing.assert_close(torch.rand(4, device=device), expect)


@cuda
def test_cuda_optimizer_is_fused_and_resumes_from_a_cpu_loaded_checkpoint(tmp_path) -> None:
    device = resolve_device("cuda")
    torch.manual_seed(0)
    model = build_model("csmoe-tiny").to(device)
    opt = build_optimizer(model, TrainConfig(lr=1e-3), device)
    assert opt.defaults["fused"] is True
    s1, s2 = torch.randn(4, 2, 32, 32, device=device), torch.randn(4, 10, 32, 32, device=device)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        model(s1, s2).loss.backward()
    opt.step()
    path = save_checkpoint(
        tmp_path, 1, {"model": model.state_dict(), "optimizer": opt.state_dict()}
    )
    ckpt = load_checkpoint(path, map_location="cpu")
    model2 = build_model("csmoe-tiny").to(device)
    model2.load_state_dict(ckpt["model"])
    opt2 = build_optimizer(model2, TrainConfig(lr=1e-3), device)
    opt2.load_state_dict(ckpt["optimizer"])
    for st in opt2.state.values():
        assert st["exp_avg"].device.type == "cuda"
    opt2.step()  # the fused kernel accepts the restored state
