"""CUDA-relevant paths of the model, checked device-agnostically on the CPU (and on a GPU when present).

* bf16 autocast: Soft MoE routing stays float32, the experts run in bf16;
* no host tensors and no host-device synchronisation inside forward/backward (checked on the
  ``meta`` device, where any CPU tensor an op receives would be a host-to-device copy on CUDA);
* ``torch.compile`` captures the whole training forward in one graph (masks drawn inside);
* MFU inputs: the peak table and FlopCounterMode counts;
* CUDA-only tests (skipped here) for a GPU session: bf16 step with fused AdamW under
  ``torch.cuda.set_sync_debug_mode("error")``, and an inductor-compiled step.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from csmoe_model import SoftMoE, build_model
from csmoe_model.flops import bf16_peak_flops, count_flops
from csmoe_model.models.csmoe import nt_xent

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _inputs(model, b: int = 4, device: str = "cpu", seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    size = model.img_size
    s1 = torch.randn(b, model.in_chans["s1"], size, size, generator=g)
    s2 = torch.randn(b, model.in_chans["s2"], size, size, generator=g)
    return s1.to(device), s2.to(device)


@pytest.mark.parametrize("device_type", ["cpu", pytest.param("cuda", marks=cuda)])
def test_soft_moe_autocast_bf16_routing_fp32(device_type: str) -> None:
    torch.manual_seed(0)
    moe = SoftMoE(32, num_experts=4, slots_per_expert=2, hidden_dim=64).to(device_type)
    x = torch.randn(3, 10, 32, device=device_type)
    ref = moe(x)
    with torch.autocast(device_type, dtype=torch.bfloat16):
        dispatch, combine = moe.route(x)
        out = moe(x)
    assert dispatch.dtype == combine.dtype == torch.float32  # routing never in bf16
    torch.testing.assert_close(dispatch.sum(1), torch.ones(3, 8, device=device_type))
    assert out.dtype == torch.bfloat16  # the expert einsums ran in bf16
    torch.testing.assert_close(out.float(), ref, atol=5e-2, rtol=5e-2)


class _HostTensorSpy(TorchDispatchMode):
    """Records ops that receive a CPU tensor (with more than 0 dims) or read a value on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.host_ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default):
            self.host_ops.append(str(func))  # .item() / bool(tensor): a sync on CUDA
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.ndim > 0:
                self.host_ops.append(str(func))
        return func(*args, **kwargs)


@pytest.mark.parametrize("name", ["csmoe-tiny", "csmae-tiny"])
def test_training_step_touches_no_host_tensor(name: str) -> None:
    # on the meta device any CPU tensor an op sees was made on the host inside the step: on CUDA
    # that is a host-to-device copy (a synchronisation) every step
    with torch.device("meta"):
        model = build_model(name)
        s1, s2 = _inputs(model, device="meta")
    spy = _HostTensorSpy()
    with spy:
        out = model(s1, s2)
        out.loss.backward()
    assert spy.host_ops == []


def test_nt_xent_builds_targets_on_the_device() -> None:
    z1, z2 = torch.randn(5, 8, device="meta"), torch.randn(5, 8, device="meta")
    spy = _HostTensorSpy()
    with spy:
        nt_xent(z1, z2, 0.5)
    assert spy.host_ops == []
    # and it is the SimCLR loss: the positive of view i is view i + n (mod 2n)
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=-1)
    sim = (z @ z.t() / 0.5).fill_diagonal_(float("-inf"))
    ref = torch.nn.functional.cross_entropy(sim, torch.tensor([4, 5, 6, 7, 0, 1, 2, 3]))
    torch.testing.assert_close(nt_xent(a, b, 0.5), ref)


@pytest.mark.parametrize("bf16", [False, True])
def test_compile_captures_training_forward_in_one_graph(bf16: bool) -> None:
    import torch._dynamo as dynamo

    torch.manual_seed(0)
    model = build_model("csmoe-tiny", img_size=16)
    s1, s2 = _inputs(model, b=2)

    def step(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # as in training: autocast around the model, Soft MoE switching it off for its routing
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(a, b).loss

    dynamo.reset()
    try:
        explained = dynamo.explain(step)(s1, s2)
    finally:
        dynamo.reset()
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1


def test_bf16_peak_table_and_flop_count() -> None:
    assert bf16_peak_flops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4e12)
    assert bf16_peak_flops("NVIDIA H200") == pytest.approx(989.4e12)
    assert bf16_peak_flops("NVIDIA H100 PCIe") == pytest.approx(756e12)
    assert bf16_peak_flops("NVIDIA A100-SXM4-80GB") == pytest.approx(312e12)
    assert bf16_peak_flops("Some GPU") is None
    assert bf16_peak_flops("Some GPU", 100.0) == pytest.approx(100e12)
    # MFU uses the meta-device count: it includes attention, which FlopCounterMode does not see
    # in the CPU SDPA kernel
    with torch.device("meta"):
        meta = build_model("csmae-tiny")
    fc = count_flops(meta, "encode")
    assert fc.components["sensor_attn"] > 0
    d, n, heads = 64, 17, 4  # tiny: width 64, 16 patches + CLS
    linear = 2 * (4 * d * d) * n  # qkv + proj per sequence
    sdpa = 2 * 2 * n * n * d  # QK^T and AV
    # 2 sensors x 2 sensor blocks per pair
    assert fc.components["sensor_attn"] == pytest.approx(2 * 2 * (linear + sdpa))
    assert heads  # heads do not change the count


@cuda
def test_cuda_bf16_step_fused_adamw_without_sync() -> None:
    from csmoe_model.train.config import TrainConfig
    from csmoe_model.train.schedule import build_optimizer

    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model("csmoe-tiny").to(device)
    opt = build_optimizer(model, TrainConfig(lr=1e-3), device)
    assert opt.defaults["fused"] is True
    s1, s2 = _inputs(model, b=8, device="cuda")
    params = list(model.parameters())
    losses = []
    for _ in range(3):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")  # any host-device sync in the step raises
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(s1, s2)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        losses.append(out.loss.detach())
    vals = torch.stack(losses).cpu()
    assert torch.isfinite(vals).all()
    assert out.losses["contrastive"].dtype == torch.float32


@cuda
def test_cuda_compiled_step_matches_eager_loss() -> None:
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model("csmoe-tiny", mask_ratio=0.0).to(device)  # no masks: same input for both
    s1, s2 = _inputs(model, b=4, device="cuda")
    compiled = torch.compile(model)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager = model(s1, s2).losses["contrastive"]
        comp = compiled(s1, s2)
    comp.loss.backward()
    assert torch.isfinite(comp.loss)
    torch.testing.assert_close(comp.losses["contrastive"], eager, atol=5e-2, rtol=5e-2)
