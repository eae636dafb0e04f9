"""Whole training step on a GPU: pairs/s, MFU, and the share of time the GPU waits for data.

Runs the pieces ``csmoe train`` uses (cache -> DeviceLoader with worker processes and pinned memory
-> on-GPU resampling/normalisation/augmentation -> bf16 autocast forward/backward -> clipping ->
fused AdamW) twice in one process:

1. ``loader``: batches come from the imagery cache through the DeviceLoader;
2. ``no data``: the same steps on one batch already on the GPU (the compute-only ceiling).

``GPU data-wait share = 1 - t(no data) / t(loader)`` (goal: < 5 %); the loader's own counter of
time spent waiting for the next batch is printed too. MFU = model FLOPs per pair (forward +
backward, :func:`csmoe_model.flops.model_report`) x pairs/s / peak dense bf16 FLOP/s of the GPU
(H100/H200 SXM 989 TFLOP/s, A100 312; ``--peak-tflops`` to override).

Needs only torch, numpy and pyarrow (no GDAL): the cache is generated (``synthetic_cache``) unless
``--manifest`` names real imagery (which then needs rasterio once, to build the cache).

    python benchmarks/bench_train_gpu.py --model csmoe-b --batch 256 --workers 12 --steps 60
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time

import torch

from csmoe_model import build_model
from csmoe_model.data import open_cache, synthetic_cache
from csmoe_model.train.config import TrainConfig
from csmoe_model.train.schedule import build_optimizer

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def peak_flops(name: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def run(model, opt, batches, steps: int, device: torch.device, compile_: bool) -> float:
    fwd = torch.compile(model) if compile_ else model
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if device.type == "cuda"
        else contextlib.nullcontext
    )
    params = [p for p in model.parameters() if p.requires_grad]
    t0 = None
    for i, (s1, s2) in enumerate(batches):
        if i == 0 or i == steps // 5:  # skip the warm-up (allocator, kernels, compile)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, start = time.perf_counter(), i
        with autocast():
            out = fwd(s1, s2)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if i + 1 >= steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / (steps - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="csmoe-b")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    p.add_argument("--pairs", type=int, default=8192, help="size of the generated cache")
    p.add_argument("--cache-dir", default=None)
    p.add_argument(
        "--manifest", default=None, help="use this manifest's imagery instead of a generated cache"
    )
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--peak-tflops", type=float, default=None)
    args = p.parse_args()

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name}; torch {torch.__version__}; {os.cpu_count()} CPU cores; loader workers {args.workers}"
    )
    root = args.cache_dir or tempfile.mkdtemp(prefix="csmoe-gpu-bench-")
    t0 = time.perf_counter()
    if args.manifest:
        cache = open_cache(args.manifest, root, workers=args.workers, progress=True)
    else:
        cache = synthetic_cache(root, args.pairs, size=120, n_s2=12)
    print(f"cache: {cache.path} ({len(cache)} pairs, ready in {time.perf_counter() - t0:.1f} s)")

    torch.manual_seed(0)
    model = build_model(args.model).to(device)
    opt = build_optimizer(model, TrainConfig(lr=1e-4), device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    rows = cache.select()
    loader = cache.loader(rows, args.batch, device=device, img_size=model.img_size, augment=True, shuffle=True,
                          drop_last=True, seed=0, num_steps=args.steps, workers=args.workers)  # fmt: skip

    t_loader = run(model, opt, ((b.s1, b.s2) for b in loader), args.steps, device, args.compile)
    wait_share = loader.wait_s / max(t_loader * args.steps, 1e-9)
    first = next(
        iter(cache.loader(rows[: args.batch], args.batch, device=device, img_size=model.img_size))
    )
    t_compute = run(
        model,
        opt,
        ((first.s1, first.s2) for _ in range(args.steps)),
        args.steps,
        device,
        args.compile,
    )

    from csmoe_model.flops import model_report

    flops = model_report(args.model).train.total  # per pair, forward + backward
    pairs_s = args.batch / t_loader
    peak = peak_flops(name, args.peak_tflops)
    print(
        f"\nmodel {args.model} at {model.img_size} px, batch {args.batch}, {flops / 1e9:.1f} GFLOP per pair (train)"
    )
    print(f"{'':34s} {'s/step':>8s} {'pairs/s':>9s} {'MFU':>7s}")
    for label, t in (
        ("loader (cache -> GPU transforms)", t_loader),
        ("no data (batch resident on GPU)", t_compute),
    ):
        mfu = f"{flops * args.batch / t / peak:6.1%}" if peak else "   n/a"
        print(f"{label:34s} {t:8.4f} {args.batch / t:9,.0f} {mfu:>7s}")
    print(f"GPU data-wait share: {max(0.0, 1 - t_compute / t_loader):.1%} (goal < 5%); "
          f"CPU time blocked on the loader: {wait_share:.1%} of the loop")  # fmt: skip
    print(f"pairs/s per loader worker needed at this speed: {pairs_s / max(args.workers, 1):,.0f}")


if __name__ == "__main__":
    main()
