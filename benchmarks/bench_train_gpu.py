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
import os
import tempfile
import time

import torch

from csmoe_model import build_model
from csmoe_model.data import open_cache, synthetic_cache
from csmoe_model.train.config import TrainConfig
from csmoe_model.train.schedule import build_optimizer
from csmoe_model.train.step import amp_dtype_for, train_step


def run(model, opt, batches, steps: int, device: torch.device, compile_: bool, loader=None):
    """Seconds per step over steps ``steps // 5 .. steps - 1`` and the loader wait in that window.

    Each step is :func:`~csmoe_model.train.step.train_step` as ``csmoe train`` runs it (bf16
    autocast on CUDA, gradient clipping at 1.0, fused AdamW; no schedule).

    The clock starts and stops after ``torch.cuda.synchronize()``, so the figure is GPU time, not
    the time to queue kernels; nothing in the loop synchronises (no ``.item()``), so the CPU runs
    ahead and a loader that keeps up costs the GPU nothing.
    """
    fwd = torch.compile(model) if compile_ else model
    amp_dtype = amp_dtype_for(device)
    params = [p for p in model.parameters() if p.requires_grad]
    skip = max(1, steps // 5)  # warm-up: allocator, cuDNN/cuBLAS heuristics, compilation
    t0, wait0, done = None, 0.0, 0
    for i, (s1, s2) in enumerate(batches):
        if i == skip:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            wait0 = loader.wait_s if loader is not None else 0.0
        train_step(fwd, opt, s1, s2, params=params, grad_clip=1.0, amp_dtype=amp_dtype)
        done = i + 1
        if done >= steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    if t0 is None or done <= skip:
        raise SystemExit(f"only {done} steps ran; need more than {skip} (raise --steps or --pairs)")
    wait = (loader.wait_s - wait0) if loader is not None else 0.0
    return (time.perf_counter() - t0) / (done - skip), wait / (done - skip)


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
    p.add_argument("--json", default=None, help="also write the figures here (JSON)")
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
        cache = synthetic_cache(root, args.pairs, size=120, n_s2=10)  # every preset takes 10
    print(f"cache: {cache.path} ({len(cache)} pairs, ready in {time.perf_counter() - t0:.1f} s)")

    torch.manual_seed(0)
    model = build_model(args.model).to(device)
    opt = build_optimizer(model, TrainConfig(lr=1e-4), device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    rows = cache.select()
    loader = cache.loader(rows, args.batch, device=device, img_size=model.img_size, n_s2=model.in_chans["s2"], augment=True, shuffle=True,
                          drop_last=True, seed=0, num_steps=args.steps, workers=args.workers)  # fmt: skip

    t_loader, wait_per_step = run(
        model, opt, ((b.s1, b.s2) for b in loader), args.steps, device, args.compile, loader
    )
    first = next(
        iter(cache.loader(rows[: args.batch], args.batch, device=device, img_size=model.img_size))
    )
    t_compute, _ = run(
        model,
        opt,
        ((first.s1, first.s2) for _ in range(args.steps)),
        args.steps,
        device,
        args.compile,
    )

    from csmoe_model.flops import bf16_peak_flops, model_report

    flops = model_report(args.model).train.total  # per pair, forward + backward (FlopCounterMode)
    pairs_s = args.batch / t_loader
    peak = bf16_peak_flops(name, args.peak_tflops) if device.type == "cuda" else None
    share = max(0.0, 1 - t_compute / t_loader)
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
    print(f"GPU data-wait share: {share:.1%} (goal < 5%); "
          f"CPU time blocked on the loader: {wait_per_step / t_loader:.1%} of the loop")  # fmt: skip
    print(f"pairs/s per loader worker needed at this speed: {pairs_s / max(args.workers, 1):,.0f}")
    if args.json:
        import json
        from pathlib import Path

        res = {
            "device": name,
            "torch": torch.__version__,
            "model": args.model,
            "img_size": model.img_size,
            "batch": args.batch,
            "steps": args.steps,
            "workers": args.workers,
            "compile": args.compile,
            "train_gflops_per_pair": flops / 1e9,
            "peak_flops": peak,
            "s_per_step_loader": t_loader,
            "s_per_step_no_data": t_compute,
            "pairs_per_s_loader": pairs_s,
            "pairs_per_s_no_data": args.batch / t_compute,
            "mfu_loader": flops * args.batch / t_loader / peak if peak else None,
            "mfu_no_data": flops * args.batch / t_compute / peak if peak else None,
            "gpu_data_wait_share": share,
            "cpu_blocked_share": wait_per_step / t_loader,
        }
        out = Path(args.json)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(res, indent=2))
        tmp.replace(out)


if __name__ == "__main__":
    main()
