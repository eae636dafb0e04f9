"""Torch device resolution (one definition; torch is imported only when called)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from csmoe_common.errors import CsmoeError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """Turn a device option into a ``torch.device``.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``...
        local_rank: under torchrun, the process's ``LOCAL_RANK``: plain ``cuda`` then means
            ``cuda:LOCAL_RANK`` (an explicit index, so that DDP's ``device_ids``, ``set_device``
            and the checkpointed CUDA RNG state all name the same GPU). ``None``: ``cuda:0``.

    Raises:
        CsmoeError: an unknown device string, or CUDA asked for but not available.
    """
    import torch

    text = str(name).strip()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise CsmoeError(f"--device {name}: not a device ({exc})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CsmoeError(f"--device {name}: no CUDA device is available (use --device cpu)")
        if dev.index is None:
            dev = torch.device("cuda", local_rank or 0)
        if dev.index >= torch.cuda.device_count():
            raise CsmoeError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    return dev
