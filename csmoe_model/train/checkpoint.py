"""Checkpoints: atomic writes, ``weights_only=True`` loading, and every RNG state as plain tensors.

``RUN_DIR/checkpoints/step_XXXXXXXX.pt`` holds ``model``, ``optimizer``, ``scheduler``, ``rng`` (one
entry per DDP rank: torch, cuda, numpy, python), ``step``, ``data`` (the position in the batch plan),
``elapsed`` and ``config``. Each file is written to a temporary file, fsynced and renamed; then the
``latest`` pointer is replaced the same way, so a kill at any moment leaves the previous checkpoint
readable. Loading tries ``latest`` first and falls back to the newest file that loads.
"""

from __future__ import annotations

import contextlib
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csmoe_common.atomic import atomic_file, write_text
from csmoe_model.errors import CsmoeError
from csmoe_model.weights.files import save_torch

CKPT_FORMAT = 1
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


def _cuda_device(device: torch.device | str | None) -> torch.device | None:
    """The CUDA device whose generator a run uses (``None``: the run does not use CUDA)."""
    if device is None:
        # only a process that already uses CUDA has a CUDA RNG state worth saving; asking
        # otherwise would create a CUDA context on a CPU run
        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return None
        return torch.device("cuda", torch.cuda.current_device())
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


def capture_rng(device: torch.device | str | None = None) -> dict[str, Any]:
    """The RNG states of this process (torch, cuda, numpy, python) as tensors and plain values.

    ``cuda`` holds the generator state of the ONE device this process trains on (a list with zero
    or one tensor): ``get_rng_state_all`` would create a CUDA context on every visible GPU in
    every DDP process, and could not be restored on a host with another GPU count.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    cuda = _cuda_device(device)
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(cuda)] if cuda is not None else [],
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(state, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
    }  # fmt: skip


def restore_rng(state: dict[str, Any], device: torch.device | str | None = None) -> None:
    """Restore what :func:`capture_rng` captured; the CUDA state goes to ``device`` (if CUDA)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = _cuda_device(device)
    if state["cuda"] and cuda is not None:
        # the first entry is the training device's (older checkpoints saved every device's)
        torch.cuda.set_rng_state(state["cuda"][0].cpu(), cuda)
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))


def checkpoint_path(folder: Path, step: int) -> Path:
    """The file of the checkpoint of ``step`` in ``folder``."""
    return folder / f"step_{step:08d}.pt"


def save_checkpoint(folder: str | Path, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
    """Write ``payload`` (plus ``format`` and ``step``) atomically and point ``latest`` at it.

    Older checkpoints beyond the ``keep`` newest are removed (after the new one is safely in place).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(folder, step)
    with atomic_file(path) as tmp:
        save_torch({"format": CKPT_FORMAT, "step": int(step), **payload}, tmp)
    write_text(folder / "latest", path.name + "\n", overwrite=True)
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def _step_of(path: Path) -> int:
    match = _NAME.match(path.name)
    return int(match[1]) if match else -1


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if _NAME.match(p.name)),
        key=_step_of,
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one checkpoint with ``weights_only=True``.

    Raises:
        CsmoeError: unreadable, truncated or not one of ours.
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, pickle refused, ...
        reason = " ".join(str(exc).split())[:200]
        raise CsmoeError(f"cannot read checkpoint {path}: {reason}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise CsmoeError(f"{path} is not a csmoe checkpoint")
    return ckpt


def load_latest_checkpoint(
    folder: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable checkpoint of ``folder`` (``latest`` first), or ``None`` when there is none."""
    folder = Path(folder)
    candidates = list(reversed(list_checkpoints(folder)))
    pointer = folder / "latest"
    named = None
    if pointer.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError, ValueError):
            named = folder / pointer.read_text(encoding="utf-8").strip()
        if named is not None and named in candidates:
            candidates.remove(named)
            candidates.insert(0, named)
    for path in candidates:
        try:
            return path, load_checkpoint(path, map_location)
        except CsmoeError:
            continue  # a damaged file (should not happen with atomic writes): try the previous one
    return None
