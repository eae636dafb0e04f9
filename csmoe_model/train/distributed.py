"""DDP set-up from the ``torchrun`` environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job (``world == 1``: a plain single-process run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process (DDP)."""
        return self.world > 1


def dist_env() -> DistEnv:
    """Read the torchrun environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistEnv(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(env: DistEnv, device: torch.device) -> None:
    """Join the process group (gloo on CPU, nccl on CUDA) when started by torchrun."""
    if device.type == "cuda":
        # before any CUDA work: kernels, NCCL and the RNG then use this GPU, not cuda:0
        torch.cuda.set_device(device)
    if not env.enabled or dist.is_initialized():
        return
    # the other ranks wait in a barrier while rank 0 builds the imagery cache (BigEarthNet: about
    # 8 minutes on 16 cores), longer than NCCL's default 10-minute collective timeout
    minutes = float(os.environ.get("CSMOE_DIST_TIMEOUT_MIN", "120"))
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        init_method="env://",
        rank=env.rank,
        world_size=env.world,
        timeout=datetime.timedelta(minutes=minutes),
    )


def shutdown_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    """Wait for every process (no-op in a single-process run)."""
    if env.enabled and dist.is_initialized():
        dist.barrier()


def all_gather_with_grad() -> Callable[[torch.Tensor], torch.Tensor]:
    """Concatenate a tensor from all ranks; gradients flow back to each rank's part."""
    from torch.distributed.nn.functional import all_gather

    def gather(x: torch.Tensor) -> torch.Tensor:
        return torch.cat(all_gather(x), dim=0)

    return gather


def freeze_unused(model: torch.nn.Module) -> set[str]:
    """Freeze (``requires_grad=False``) the parameters the active loss terms leave without gradient.

    Uses ``model.unused_in_training()`` (e.g. ``encoder.fc_norm`` when NT-Xent is off). DDP
    requires every trainable parameter to receive a gradient each step; freezing these is cheaper
    than ``find_unused_parameters=True`` (a graph traversal every step), which would not even work
    here because the pooled embeddings are part of the forward output.

    Returns:
        The names frozen.
    """
    unused = getattr(model, "unused_in_training", None)  # CSMoE's; other modules: none
    names: set[str] = set(unused()) if callable(unused) else set()
    for name, p in model.named_parameters():
        if name in names:
            p.requires_grad_(False)
    return names


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel`` on this process's device (``device_ids`` only on CUDA).

    Call :func:`freeze_unused` first (and build the optimizer from the bare model).
    """
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )
