"""SoftMoE against a naive per-expert, per-slot reference written from the paper's equations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from csmoe_model import SoftMoE


def _moe(
    dim: int = 16, n: int = 4, p: int = 2, hidden: int = 24, seed: int = 0, dtype=torch.float64
) -> SoftMoE:
    torch.manual_seed(seed)
    moe = SoftMoE(dim=dim, num_experts=n, slots_per_expert=p, hidden_dim=hidden).to(dtype)
    with torch.no_grad():  # non-trivial biases and scale so that the reference checks them too
        moe.b1.normal_()
        moe.b2.normal_()
        moe.scale.fill_(2.5)
    return moe


def reference(moe: SoftMoE, x: torch.Tensor) -> torch.Tensor:
    """Soft MoE straight from Puigcerver et al. (2024), one sequence, expert and slot at a time."""
    n, p = moe.num_experts, moe.slots_per_expert
    outs = []
    for seq in x:  # (m, d)
        m = seq.shape[0]
        x_norm = seq / seq.norm(dim=1, keepdim=True)
        logits = torch.empty(m, n, p, dtype=seq.dtype)
        for i in range(n):
            for j in range(p):
                phi = moe.phi[:, i, j] / moe.phi[:, i, j].norm()
                logits[:, i, j] = moe.scale * (x_norm @ phi)
        e = logits.exp()
        dispatch = e / e.sum(dim=0, keepdim=True)  # over tokens, per slot
        flat = e.reshape(m, n * p)
        combine = flat / flat.sum(dim=1, keepdim=True)  # over all slots, per token
        slot_out = []
        for i in range(n):
            for j in range(p):
                slot_in = (dispatch[:, i, j, None] * seq).sum(dim=0)  # un-normalised tokens
                h = F.gelu(slot_in @ moe.w1[i] + moe.b1[i])
                slot_out.append(h @ moe.w2[i] + moe.b2[i])
        outs.append(combine @ torch.stack(slot_out))
    return torch.stack(outs)


@pytest.mark.parametrize(("n", "p"), [(4, 1), (3, 2), (1, 3)])
def test_matches_naive_reference_float64(n: int, p: int) -> None:
    moe = _moe(n=n, p=p)
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    torch.testing.assert_close(moe(x), reference(moe, x), rtol=1e-10, atol=1e-10)


def test_matches_naive_reference_float32() -> None:
    moe = _moe(dtype=torch.float32)
    x = torch.randn(2, 9, 16)
    torch.testing.assert_close(moe(x), reference(moe, x), rtol=1e-5, atol=1e-5)


def test_sequences_are_routed_independently() -> None:
    moe = _moe()
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    together = moe(x)
    for b in range(3):
        torch.testing.assert_close(together[b : b + 1], moe(x[b : b + 1]), rtol=1e-12, atol=1e-12)
    # changing one sequence leaves the others untouched
    y = x.clone()
    y[1] += 1.0
    out = moe(y)
    torch.testing.assert_close(out[[0, 2]], together[[0, 2]], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out[1], together[1])


def test_token_permutation_equivariance() -> None:
    moe = _moe()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(moe(x[:, perm]), moe(x)[:, perm], rtol=1e-10, atol=1e-10)


def test_dispatch_columns_and_combine_rows_sum_to_one() -> None:
    moe = _moe(n=5, p=2)
    x = torch.randn(4, 13, 16, dtype=torch.float64)
    dispatch, combine = moe.route(x)
    assert dispatch.shape == combine.shape == (4, 13, 10)
    torch.testing.assert_close(dispatch.sum(dim=1), torch.ones(4, 10, dtype=torch.float64))
    torch.testing.assert_close(combine.sum(dim=2), torch.ones(4, 13, dtype=torch.float64))
    assert (dispatch > 0).all() and (combine > 0).all()


def test_gradients_reach_every_expert_and_the_router() -> None:
    moe = _moe(n=6, p=1, dtype=torch.float32)
    x = torch.randn(2, 8, 16, requires_grad=True)
    moe(x).pow(2).sum().backward()
    for name in ("w1", "b1", "w2", "b2"):
        grad = getattr(moe, name).grad
        per_expert = grad.flatten(1).abs().sum(dim=1)
        assert (per_expert > 0).all(), f"{name}: some expert got no gradient"
    assert moe.phi.grad.abs().sum() > 0
    assert moe.scale.grad is not None and moe.scale.grad.abs() > 0
    assert x.grad.abs().sum() > 0


def test_routing_stays_float32_under_bf16_autocast() -> None:
    moe = _moe(dtype=torch.float32)
    x = torch.randn(2, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dispatch, combine = moe.route(x)
        y = moe(x)
    assert dispatch.dtype == combine.dtype == torch.float32
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), moe(x), rtol=0.05, atol=0.05)


def test_expert_init_matches_dense_linear_scale() -> None:
    moe = SoftMoE(dim=64, num_experts=8, hidden_dim=256)
    bound = (6.0 / (64 + 256)) ** 0.5
    assert moe.w1.abs().max() <= bound and moe.w1.abs().max() > 0.9 * bound
    assert moe.scale.item() == 1.0
    assert moe.num_slots == 8
    with pytest.raises(ValueError):
        SoftMoE(dim=8, num_experts=0)
