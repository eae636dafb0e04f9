"""Parameter and FLOP accounting per preset, counted with ``torch.utils.flop_counter.FlopCounterMode``.

FLOPs follow FlopCounterMode's convention: 2 per multiply-add, matrix products, convolutions and
attention only (norms, softmax, GELU and the optimizer are not counted). GMACs = GFLOPs / 2.
Counts run on the ``meta`` device by default: shapes only, no memory, no arithmetic, seconds
even for the B presets. Figures are per S1+S2 pair (the count at batch ``batch`` divided by it).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from csmoe_model.errors import CsmoeError
from csmoe_model.layers.soft_moe import SoftMoE
from csmoe_model.models.csmoe import CSMoE
from csmoe_model.registry import build_model, list_models

#: component name -> regex over FlopCounterMode's module paths (root class name stripped)
COMPONENTS: dict[str, str] = {
    "patch_embed": r"^encoder\.patch_embed\.s[12]$",
    "sensor_attn": r"^encoder\.sensor_blocks\.s[12]\.\d+\.attn$",
    "sensor_ffn": r"^encoder\.sensor_blocks\.s[12]\.\d+\.ffn$",
    "shared_attn": r"^encoder\.shared_blocks\.\d+\.attn$",
    "shared_ffn": r"^encoder\.shared_blocks\.\d+\.ffn$",
    "decoder": r"^decoders\.\w+$",
}


@dataclass
class FlopCount:
    """FLOPs per pair of one pass, total and by component (``other`` = the rest: pooling, losses)."""

    total: float
    components: dict[str, float]

    @property
    def gflops(self) -> float:
        """Giga-FLOPs per pair (2 per multiply-add)."""
        return self.total / 1e9

    @property
    def gmacs(self) -> float:
        """Giga multiply-adds per pair."""
        return self.total / 2e9


@dataclass
class ModelReport:
    """Parameters and FLOPs of one model configuration."""

    name: str
    img_size: int
    patch_size: int
    tokens_per_sensor: int
    params_total: int
    params_encoder: int
    params_decoder: int
    params_active_per_token: float
    moe_blocks: int
    encode: FlopCount
    train: FlopCount
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with GFLOPs/GMACs added for each pass."""
        out = asdict(self)
        for key in ("encode", "train"):
            fc: FlopCount = getattr(self, key)
            out[key] = {
                "flops": fc.total,
                "gflops": fc.gflops,
                "gmacs": fc.gmacs,
                "gflops_by_component": {k: v / 1e9 for k, v in fc.components.items()},
            }
        return out


def _breakdown(
    counter: FlopCounterMode, root: str, prefix: str, batch: int, drop_input_grad: bool
) -> FlopCount:
    """Sum FlopCounterMode's per-module counts into components (module paths ``root.<rel>``).

    ``drop_input_grad``: the images were given ``requires_grad`` only so that FlopCounterMode's
    module tracker attributes the backward pass correctly; the resulting gradient with respect to
    the input pixels (a convolution backward exactly as costly as the patch embedding's forward)
    is not part of a training step and is subtracted.
    """
    counts = counter.get_flop_counts()
    total = float(sum(counts.get("Global", {}).values()))
    comps = dict.fromkeys(COMPONENTS, 0.0)
    patterns = {k: re.compile(v) for k, v in COMPONENTS.items()}
    for path, ops in counts.items():
        if not path.startswith(root + "."):
            continue
        rel = prefix + path[len(root) + 1 :]
        for comp, pat in patterns.items():
            if pat.match(rel):
                flops = float(sum(ops.values()))
                if comp == "patch_embed" and drop_input_grad:
                    fwd = float(sum(v for op, v in ops.items() if str(op).endswith("convolution")))
                    flops -= fwd
                    total -= fwd
                comps[comp] += flops
    comps["other"] = total - sum(comps.values())
    return FlopCount(total=total / batch, components={k: v / batch for k, v in comps.items()})


def _inputs(model: CSMoE, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    size = model.img_size
    s1 = torch.randn(batch, model.in_chans["s1"], size, size, device=device)
    s2 = torch.randn(batch, model.in_chans["s2"], size, size, device=device)
    return s1, s2


def count_flops(model: CSMoE, mode: str = "encode", batch: int = 2) -> FlopCount:
    """Count FLOPs per pair for ``mode``, always on the ``meta`` device.

    ``"encode"`` is the inference embedding of S1 and S2 with all patches visible, ``"train"`` one
    masked forward + backward of the full objective. A model on another device is counted
    through a twin built on the meta device from its config: on a CPU tensor,
    ``F.scaled_dot_product_attention`` dispatches to a fused CPU kernel that
    ``FlopCounterMode`` does not count, so a CPU count would silently leave attention out; on
    the meta device it is counted, and no memory or arithmetic is spent.

    Raises:
        ValueError: for an unknown mode.
    """
    if mode not in ("encode", "train"):
        raise ValueError(f"mode must be 'encode' or 'train', got {mode!r}")
    if next(model.parameters()).device.type != "meta":
        with torch.device("meta"):
            twin = type(model)(dataclasses.replace(model.config))
        if not len(model.decoders):
            twin.decoders = torch.nn.ModuleDict()
        model = twin
    device = next(model.parameters()).device
    s1, s2 = _inputs(model, batch, device)
    if mode == "encode":
        was = model.training
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.encode(s1=s1, s2=s2)
        model.train(was)
        return _breakdown(counter, type(model.encoder).__name__, "encoder.", batch, False)
    else:
        model.train()
        s1.requires_grad_(True)
        s2.requires_grad_(True)
        with FlopCounterMode(display=False) as counter:
            model(s1, s2).loss.backward()
        model.zero_grad(set_to_none=True)
        return _breakdown(counter, type(model).__name__, "", batch, True)


def count_params(model: CSMoE) -> dict[str, float]:
    """Parameter counts: ``total``, ``encoder``, ``decoder`` and ``active_per_token``.

    ``active_per_token`` (encoder, inference) counts the parameters whose multiply-adds one token
    costs on average: every dense parameter, plus for each Soft MoE layer its router and its expert
    parameters scaled by ``slots / tokens`` (the experts run on ``n * p`` slots, not on the ``m``
    tokens of a sequence; one slot uses one expert).
    """
    total = sum(p.numel() for p in model.parameters())
    enc = sum(p.numel() for p in model.encoder.parameters())
    tokens = model.num_patches + 1
    active = float(enc)
    for m in model.encoder.modules():
        if isinstance(m, SoftMoE):
            experts = sum(p.numel() for p in (m.w1, m.b1, m.w2, m.b2))
            active -= experts
            active += experts / m.num_experts * m.num_slots / tokens
    return {"total": total, "encoder": enc, "decoder": total - enc, "active_per_token": active}


#: largest batch the FLOP count runs with (on the meta device, but tensor sizes still overflow)
MAX_BATCH = 4096


def model_report(name: str, batch: int = 2, device: str = "meta", **overrides: Any) -> ModelReport:
    """Build preset ``name`` (with ``overrides``) on ``device`` and report its parameters and FLOPs.

    Reports are deterministic, so they are cached per process (a copy is returned).

    Raises:
        CsmoeError: for an unknown preset, a bad override, or a batch outside 1..:data:`MAX_BATCH`.
    """
    if not 1 <= batch <= MAX_BATCH:  # FLOPs are per pair: a larger batch only overflows sizes
        raise CsmoeError(f"--batch must be in 1..{MAX_BATCH} (FLOPs are per pair), got {batch}")
    key = json.dumps(overrides, sort_keys=True, default=str)
    return copy.deepcopy(_cached_report(name, batch, device, key))


@functools.lru_cache(maxsize=64)
def _cached_report(name: str, batch: int, device: str, overrides_json: str) -> ModelReport:
    with torch.device(device):
        model = build_model(name, **json.loads(overrides_json))
    params = count_params(model)
    return ModelReport(
        name=name,
        img_size=model.img_size,
        patch_size=model.patch_size,
        tokens_per_sensor=model.num_patches,
        params_total=int(params["total"]),
        params_encoder=int(params["encoder"]),
        params_decoder=int(params["decoder"]),
        params_active_per_token=params["active_per_token"],
        moe_blocks=len(model.config.moe_indices()),
        encode=count_flops(model, "encode", batch),
        train=count_flops(model, "train", batch),
        config=model.config_dict(),
    )


#: dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, matched in order against the GPU's name
#: (more specific names first: "H100 PCIe" before "H100"); H200 is the H100 SXM chip with more memory
BF16_PEAK_TFLOPS: list[tuple[str, float]] = [
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM5
    ("H800", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
]


def bf16_peak_flops(device_name: str, override_tflops: float | None = None) -> float | None:
    """Dense bf16 peak of a GPU in FLOP/s from its name (``torch.cuda.get_device_name``).

    ``None`` for an unknown device (then pass ``override_tflops``); MFU = model FLOPs (as counted
    by :func:`count_flops`) per second / this peak.
    """
    if override_tflops:
        return float(override_tflops) * 1e12
    for key, tflops in BF16_PEAK_TFLOPS:
        if key in device_name:
            return tflops * 1e12
    return None


def compare_presets(
    names: list[str] | None = None, batch: int = 2, **overrides: Any
) -> list[ModelReport]:
    """Reports for ``names`` (default: every registered preset), same overrides for each."""
    return [model_report(n, batch=batch, **overrides) for n in (names or list_models())]
