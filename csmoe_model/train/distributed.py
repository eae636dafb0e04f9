"""DDP set-up from the ``torchrun`` environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from csmoe_model.errors import CsmoeError


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job (``world == 1``: a plain single-process run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def dist_env() -> DistEnv:
    """Read the torchrun environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistEnv(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, env: DistEnv) -> torch.device:
    """``auto`` -> CUDA when available; under DDP each process takes ``cuda:LOCAL_RANK``.

    Raises:
        CsmoeError: CUDA asked for but not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CsmoeError("--device cuda: no CUDA device is available (use --device cpu)")
        if name == "cuda":
            name = f"cuda:{env.local_rank}" if env.enabled else "cuda"
    return torch.device(name)


def init_distributed(env: DistEnv, device: torch.device) -> None:
    """Join the process group (gloo on CPU, nccl on CUDA) when started by torchrun."""
    if not env.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        init_method="env://",
        rank=env.rank,
        world_size=env.world,
    )


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.barrier()


def all_gather_with_grad() -> Callable[[torch.Tensor], torch.Tensor]:
    """Concatenate a tensor from all ranks; gradients flow back to each rank's part."""
    from torch.distributed.nn.functional import all_gather

    def gather(x: torch.Tensor) -> torch.Tensor:
        return torch.cat(all_gather(x), dim=0)

    return gather
