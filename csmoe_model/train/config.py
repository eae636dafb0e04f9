"""The training configuration: defaults < ``--config FILE`` (JSON or TOML) < command-line options."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csmoe_model.errors import CsmoeError

#: options that change what a run computes; a resumed run must keep them
SEMANTIC_FIELDS: tuple[str, ...] = (
    "manifest", "model", "model_overrides", "split", "max_steps", "epochs", "batch_size", "lr",
    "min_lr", "warmup_steps", "weight_decay", "betas", "grad_clip", "seed", "n_s2", "s2_bands",
    "s1_bands", "upsample", "augment", "season", "data_root",
)  # fmt: skip


@dataclass
class TrainConfig:
    """Everything ``csmoe train`` needs; saved as ``RUN_DIR/config.json`` (key ``train``).

    Attributes:
        manifest: the manifest file.
        model: preset name (``csmoe model-info`` lists them); ``model_overrides``: config fields to change
            (e.g. ``{"img_size": 48}``).
        out: the run directory.
        max_steps / epochs: training length (give one; default 1 epoch). ``total_steps`` is resolved.
        batch_size: global batch (all processes together; each of K processes takes batch_size / K).
        lr: peak learning rate after linear warm-up (``warmup_steps``, default 5 % of the steps),
            then cosine decay to ``min_lr``.
        weight_decay, betas: AdamW (decay off for ``model.no_weight_decay()``); grad_clip: max grad norm.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        seed: seeds model init, masks and data order.
        checkpoint_every: steps between checkpoints (and one at the end); keep_checkpoints: how many.
        log_every: steps per metrics row / progress update.
        split: manifest ``split`` values to train on ("train", "train,val"; ``None``: all rows).
        cache_dir, workers, strict, n_s2, s2_bands, s1_bands: imagery cache options (see csmoe cache).
        data_root: the folder the manifest's relative imagery paths are relative to (``None``:
            the manifest's folder); a resumed run keeps its own.
        upsample: ``bilinear`` or ``bicubic`` for the 20/60 m bands; augment: flips/rotations.
        season: which acquisition of a seasonal cache (SSL4EO-S12: 4 per location) a sample
            reads: ``"random"`` (one per sample and epoch, from ``seed``: the SSL4EO augmentation)
            or a fixed ``0`` .. ``3``; single-date corpora ignore it.
        compile: ``torch.compile`` the model.
    """

    manifest: str = ""
    model: str = "csmoe-b"
    out: str = ""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = None
    epochs: int | None = None
    batch_size: int = 256
    lr: float = 5e-4
    min_lr: float = 0.0
    warmup_steps: int | None = None
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    split: str | None = None
    cache_dir: str | None = None
    data_root: str | None = None
    workers: int = 4
    strict: bool = False
    n_s2: int | None = None
    s2_bands: tuple[str, ...] | None = None
    s1_bands: tuple[str, ...] | None = None
    upsample: str = "bilinear"
    augment: bool = True
    season: str = "random"
    compile: bool = False
    total_steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values (tuples as lists)."""
        d = dataclasses.asdict(self)
        for k in ("betas", "s2_bands", "s1_bands"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (``-`` in keys read as ``_``).

        Raises:
            CsmoeError: unknown keys or values of the wrong kind.
        """
        from csmoe_common.fields import coerce_fields

        if not isinstance(data, dict):
            raise CsmoeError(f"a training configuration is a mapping, not {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        clean = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(clean) - names)
        if unknown:
            raise CsmoeError(f"unknown training option(s): {', '.join(unknown)}")
        clean = coerce_fields(cls, clean, "training option")
        try:
            cfg = cls(**clean)
        except TypeError as exc:
            raise CsmoeError(f"bad training configuration: {exc}") from exc
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check the values together.

        Raises:
            CsmoeError: for inconsistent values.
        """
        if self.max_steps is not None and self.epochs is not None:
            raise CsmoeError("give --max-steps or --epochs, not both")
        for name in (
            "max_steps",
            "epochs",
            "batch_size",
            "checkpoint_every",
            "log_every",
            "keep_checkpoints",
        ):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise CsmoeError(f"{name.replace('_', '-')} must be >= 1, not {v}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise CsmoeError(f"--lr must be a finite number > 0, not {self.lr}")
        for name in ("min_lr", "weight_decay"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise CsmoeError(f"{name.replace('_', '-')} must be a finite number >= 0, not {v}")
        if not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise CsmoeError(f"grad-clip must be a finite number > 0, not {self.grad_clip}")
        if not all(math.isfinite(b) and 0 <= b < 1 for b in self.betas):
            raise CsmoeError(f"betas must lie in [0, 1), not {list(self.betas)}")
        if not 0 <= self.seed < 2**32:  # numpy's seeds are 32-bit
            raise CsmoeError(f"--seed must be in 0..{2**32 - 1}, not {self.seed}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise CsmoeError(f"--warmup-steps must be >= 0, not {self.warmup_steps}")
        if self.total_steps is not None and self.total_steps < 1:
            raise CsmoeError(f"total_steps must be >= 1, not {self.total_steps}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise CsmoeError(f"--device must be auto, cpu or cuda, not {self.device!r}")
        if self.upsample not in ("bilinear", "bicubic"):
            raise CsmoeError(f"upsample must be bilinear or bicubic, not {self.upsample!r}")
        if self.workers < 0:
            raise CsmoeError("--workers must be >= 0")
        self.season = str(self.season)
        if self.season != "random" and not self.season.isdigit():
            raise CsmoeError(
                f"--season must be random or a season index (0..3), not {self.season!r}"
            )

    @property
    def season_index(self) -> int | None:
        """The fixed season, or ``None`` for ``random``."""
        return None if self.season == "random" else int(self.season)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` file (``.toml`` or JSON); a TOML file may nest options under ``[train]``.

    Raises:
        CsmoeError: unreadable or not a mapping.
    """
    path = Path(path)
    if path.is_dir():
        raise CsmoeError(f"config file {path} is a directory, not a JSON or TOML file")
    if not path.is_file():
        raise CsmoeError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except UnicodeDecodeError:
        raise CsmoeError(f"config file {path} is not UTF-8 text (JSON or TOML)") from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CsmoeError(f"cannot parse config file {path}: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        data = data["train"]  # RUN_DIR/config.json or a [train] table
    if not isinstance(data, dict):
        raise CsmoeError(f"config file {path} must hold a mapping of options")
    return {k: v for k, v in data.items() if k != "total_steps"}


def resolve_config(cli: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """Merge defaults, a config file and the options given on the command line (``None`` = not given)."""
    merged: dict[str, Any] = dict(read_config_file(config_file)) if config_file else {}
    merged.update({k: v for k, v in cli.items() if v is not None})
    return TrainConfig.from_dict(merged)


def check_resume(saved: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    """The saved config with operational options (device, workers, ...) taken from ``given``.

    Raises:
        CsmoeError: when a given option that changes the computation differs from the saved run's.
    """
    diff = []
    out = dataclasses.replace(saved)
    for k, v in given.items():
        if v is None or k == "total_steps":
            continue
        if k in ("betas", "s2_bands", "s1_bands") and v is not None:
            v = tuple(v)
        if k in SEMANTIC_FIELDS:
            if v != getattr(saved, k):
                diff.append(f"{k} ({getattr(saved, k)!r} in the run, {v!r} given)")
        else:
            setattr(out, k, v)
    if diff:
        raise CsmoeError(
            "--resume continues a run with its own settings; these differ: " + "; ".join(diff)
        )
    return out
