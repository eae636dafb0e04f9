"""Training-step throughput: csmae-sesd (CSMAE exactly, its best variant) vs csmoe-b (Soft MoE), side by side.

One step = :func:`csmoe_model.train.step.train_step`, the step ``csmoe train`` runs (masked forward
of the full CSMAE objective + backward + AdamW from ``build_optimizer``: weight decay off for norms,
biases, tokens, Soft MoE scale; fused on CUDA), without gradient clipping or a schedule, on
synthetic normalised inputs at the model's img_size.
Reports pairs/s, peak memory, and model-FLOPs utilisation (MFU) = (FlopCounterMode FLOPs of one
forward+backward, counted on the meta device; optimizer not counted) x steps/s / the device's
dense bf16 peak. On a CPU MFU is not applicable (no bf16 peak to compare against).

    python benchmarks/bench_train_step.py --device cpu --batch 4 --steps 3
    python benchmarks/bench_train_step.py --device cuda --batch 256 --steps 30 --compile both
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import torch

from csmoe_model import build_model
from csmoe_model.flops import bf16_peak_flops, count_flops
from csmoe_model.train.config import TrainConfig
from csmoe_model.train.schedule import build_optimizer
from csmoe_model.train.step import train_step


def device_peak(device: torch.device, override: float | None) -> tuple[str, float | None]:
    """Device name and its bf16 peak in FLOP/s (``None`` where unknown or on a CPU)."""
    if device.type != "cuda":
        return (
            f"CPU {platform.machine()} x{os.cpu_count()} ({platform.processor() or 'unknown'})",
            None,
        )
    name = torch.cuda.get_device_name(device)
    return name, bf16_peak_flops(name, override)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mem_gib(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30, "max allocated"
    # Linux reports KiB; process-wide high-water mark (models run in order, smaller first)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "process peak RSS"


def bench(
    name: str, args: argparse.Namespace, device: torch.device, compiled: bool
) -> dict[str, Any]:
    """Time ``args.steps`` training steps of preset ``name`` after ``args.warmup`` untimed ones."""
    overrides = json.loads(args.overrides) if args.overrides else {}
    with torch.device("meta"):
        meta = build_model(name, **overrides)
    flops_per_pair = count_flops(meta, "train", batch=2).total
    del meta

    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: seconds faster for 485M parameters
        model = build_model(name, **overrides).train()
    params = dict(model.named_parameters())
    # the training optimizer: decay groups as csmoe train, fused AdamW on CUDA (one kernel)
    opt = build_optimizer(model, TrainConfig(lr=1e-4, weight_decay=0.05), device)
    step_model = torch.compile(model) if compiled else model
    g = torch.Generator(device=device).manual_seed(0)
    size, b = model.img_size, args.batch
    s1 = torch.randn(b, model.in_chans["s1"], size, size, device=device, generator=g)
    s2 = torch.randn(b, model.in_chans["s2"], size, size, device=device, generator=g)
    amp_dtype = torch.bfloat16 if args.dtype == "bf16" else None

    def step() -> torch.Tensor:
        return train_step(step_model, opt, s1, s2, amp_dtype=amp_dtype).loss

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    _sync(device)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    _sync(device)
    elapsed = time.perf_counter() - t0
    mem, mem_kind = _peak_mem_gib(device)
    pairs_s = args.steps * b / elapsed
    out = {
        "model": name,
        "compile": compiled,
        "dtype": args.dtype,
        "batch": b,
        "steps": args.steps,
        "params_M": sum(p.numel() for p in params.values()) / 1e6,
        "train_gflops_per_pair": flops_per_pair / 1e9,
        "pairs_per_s": pairs_s,
        "step_ms": 1e3 * elapsed / args.steps,
        "warmup_s": warm_s,
        "peak_mem_gib": mem,
        "peak_mem_kind": mem_kind,
        "achieved_tflops": flops_per_pair * pairs_s / 1e12,
        "final_loss": loss.item(),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="+", default=["csmae-sesd", "csmoe-b"], help="baseline first")
    ap.add_argument(
        "--batch", type=int, default=None, help="pairs per step (default 256 on cuda, 4 on cpu)"
    )
    ap.add_argument(
        "--steps", type=int, default=None, help="timed steps (default 20 on cuda, 3 on cpu)"
    )
    ap.add_argument(
        "--warmup", type=int, default=None, help="untimed steps (default 5 on cuda, 1 on cpu)"
    )
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16", help="bf16 = autocast")
    ap.add_argument("--compile", choices=["off", "on", "both"], default="off")
    ap.add_argument(
        "--overrides",
        default=None,
        help="JSON config overrides for every model, e.g. '{\"patch_size\": 10}'",
    )
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="bf16 peak when the device is not in the table",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.batch = args.batch or (256 if cuda else 4)
    args.steps = args.steps or (20 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dev_name, peak = device_peak(device, args.peak_tflops)
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    print(
        f"device: {dev_name}; bf16 peak: {f'{peak / 1e12:.1f} TFLOP/s' if peak else 'n/a'}; torch {torch.__version__}"
    )
    print(f"batch {args.batch}, {args.warmup} warm-up + {args.steps} timed steps, {args.dtype}")
    results: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []

    def save() -> None:
        # after every model, so that a run cut short (timeout, OOM) still leaves its figures
        if args.json:
            tmp = args.json.with_suffix(args.json.suffix + ".tmp")
            data = {"device": dev_name, "peak_flops": peak, "results": results, "failed": failed}
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(args.json)

    for compiled in modes:
        for name in args.models:
            try:
                r = bench(name, args, device, compiled)
            except torch.OutOfMemoryError as exc:  # record it and go on with the next model
                failed.append(
                    {"model": name, "compile": compiled, "error": f"out of memory: {exc}"[:300]}
                )
                print(f"{name:>10} compile={str(compiled):5} out of memory at batch {args.batch}")
                r = None
            gc.collect()  # free this model's weights and optimizer state before the next one
            if cuda:
                torch.cuda.empty_cache()
            if r is None:
                save()
                continue
            r["mfu"] = r["achieved_tflops"] * 1e12 / peak if peak else None
            results.append(r)
            save()
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a (CPU)"
            print(
                f"{name:>10} compile={str(compiled):5} {r['pairs_per_s']:9.2f} pairs/s  {r['step_ms']:9.1f} ms/step  "
                f"{r['train_gflops_per_pair']:6.2f} GFLOPs/pair  {r['achieved_tflops']:7.3f} TFLOP/s  MFU {mfu}  "
                f"peak {r['peak_mem_gib']:.2f} GiB ({r['peak_mem_kind']})  warm-up {r['warmup_s']:.1f} s",
                flush=True,
            )
        base = next(
            (r for r in results if r["compile"] == compiled and r["model"] == args.models[0]), None
        )
        for r in results:
            if base is not None and r["compile"] == compiled and r is not base:
                print(
                    f"  {r['model']} / {base['model']} (compile={compiled}): {r['pairs_per_s'] / base['pairs_per_s']:.2f}x pairs/s"
                )
    save()


if __name__ == "__main__":
    main()
