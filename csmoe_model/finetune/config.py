"""The configuration of a fine-tuning run (``csmoe finetune``, ``csmoe eval segment``); no torch here.

Defaults follow the field's fine-tuning recipes where they exist: AdamW, betas (0.9, 0.999), weight
decay 0.05, a 5 % linear warm-up then cosine decay, and for ``full`` fine-tuning a layer-wise
learning-rate decay of 0.75 (BEiT, Bao et al. 2022; MAE, He et al. 2022: block ``i`` of ``L`` gets
``lr * decay ** (L + 1 - i)``, the head ``lr``). The learning rate is for the head; in ``full`` mode
the encoder's blocks get the decayed rates.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from csmoe_model.errors import CsmoeError

__all__ = ["FinetuneConfig", "Mode", "Sensor", "Task", "SEMANTIC_FIELDS"]


class Task(StrEnum):
    """What the head predicts."""

    classify = "classify"
    segment = "segment"


class Mode(StrEnum):
    """What is trained: the head alone on a frozen encoder (``linear``) or everything (``full``)."""

    linear = "linear"
    full = "full"


class Sensor(StrEnum):
    """The input the head sees: one sensor, or both (their features concatenated)."""

    s1 = "s1"
    s2 = "s2"
    both = "both"


#: options that change what a run computes; a resumed run must keep them
SEMANTIC_FIELDS: tuple[str, ...] = (
    "task", "manifest", "run", "weights", "model", "labels_column", "sensor", "mode", "epochs",
    "max_steps", "lr", "layer_decay", "weight_decay", "batch_size", "seed", "warmup_fraction",
    "eval_every", "out_indices", "head_channels", "ignore_index", "classes_file", "threshold",
    "augment", "data_root",
)  # fmt: skip


@dataclass
class FinetuneConfig:
    """Everything a fine-tuning run needs.

    Attributes:
        task: ``classify`` (scene classification) or ``segment`` (semantic segmentation).
        manifest: the manifest (with ``split``; ``mask_path`` for ``segment``).
        out: the run directory.
        run, weights, model: the pretrained encoder: a ``csmoe train`` run folder, or a
            safetensors file (``model`` names its preset when the file does not).
        labels_column: list column with the scene labels (``classify``).
        sensor: ``s1``, ``s2`` or ``both``.
        mode: ``linear`` (frozen encoder) or ``full``.
        epochs / max_steps: training length (give one; default 10 epochs).
        lr: peak learning rate of the head (and of the encoder's last layer in ``full`` mode).
        layer_decay: layer-wise learning-rate decay in ``full`` mode (1 = none).
        weight_decay: AdamW weight decay (not on norms, biases and tokens).
        batch_size: patches per step.
        warmup_fraction: share of the steps with linear warm-up.
        eval_every: steps between validations (model selection; default: once per epoch).
        checkpoint_every: steps between checkpoints (and at every validation and the end).
        log_every: steps per ``metrics.csv`` row (and at every validation).
        device, seed, cache_dir, workers, data_root: as for ``csmoe train``.
        out_indices: encoder blocks whose maps feed the UPerNet head (``segment``; default four
            evenly spaced blocks).
        head_channels: UPerNet pyramid width.
        ignore_index: mask value left out of the loss and the metrics (``segment``).
        classes_file: the mask legend (JSON or CSV, ``segment``; default: the manifest's metadata).
        threshold: multi-label decision threshold for F1 (0.5 as in ``eval probe``).
        augment: flips/90-degree rotations (``classify`` only; masks would need the same).
        total_steps: resolved at the start of the run.
    """

    task: Task = Task.classify
    manifest: str = ""
    out: str = ""
    run: str | None = None
    weights: str | None = None
    model: str | None = None
    labels_column: str | None = None
    sensor: Sensor = Sensor.s2
    mode: Mode = Mode.linear
    epochs: int | None = None
    max_steps: int | None = None
    lr: float = 1e-3
    layer_decay: float = 0.75
    weight_decay: float = 0.05
    batch_size: int = 32
    warmup_fraction: float = 0.05
    eval_every: int | None = None
    checkpoint_every: int = 500
    log_every: int = 10
    device: str = "auto"
    seed: int = 0
    cache_dir: str | None = None
    data_root: str | None = None
    workers: int = 0
    out_indices: tuple[int, ...] | None = None
    head_channels: int = 128
    ignore_index: int | None = None
    classes_file: str | None = None
    threshold: float = 0.5
    augment: bool = False
    total_steps: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.task = Task(self.task)
        self.sensor = Sensor(self.sensor)
        self.mode = Mode(self.mode)
        if self.out_indices is not None:
            self.out_indices = tuple(int(i) for i in self.out_indices)

    def validate(self) -> None:
        """Check values and combinations.

        Raises:
            CsmoeError: naming the offending option.
        """
        if (self.run is None) == (self.weights is None):
            raise CsmoeError("give either --run RUN_DIR or --weights FILE")
        if self.epochs is not None and self.max_steps is not None:
            raise CsmoeError("give --epochs or --max-steps, not both")
        for name in ("epochs", "max_steps", "eval_every"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise CsmoeError(f"--{name.replace('_', '-')} must be at least 1, got {v}")
        if min(self.batch_size, self.checkpoint_every, self.log_every, self.head_channels) < 1:
            raise CsmoeError(
                "--batch-size, --checkpoint-every, --log-every and head channels must be >= 1"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise CsmoeError(f"--lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.seed < 2**32:  # numpy's seeds are 32-bit
            raise CsmoeError(f"--seed must be in 0..{2**32 - 1}, got {self.seed}")
        if not 0 < self.layer_decay <= 1:
            raise CsmoeError(f"--layer-decay must lie in (0, 1], got {self.layer_decay}")
        if not 0 <= self.warmup_fraction < 1:
            raise CsmoeError(f"the warm-up fraction must lie in [0, 1), got {self.warmup_fraction}")
        if not 0 < self.threshold < 1:
            raise CsmoeError(f"--threshold must lie in (0, 1), got {self.threshold}")
        if self.task is Task.segment and self.augment:
            raise CsmoeError(
                "augmentation is not supported for segmentation (masks would need it too)"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (enums as strings)."""
        d = dataclasses.asdict(self)
        for k in ("task", "sensor", "mode"):
            d[k] = getattr(self, k).value
        d["out_indices"] = list(self.out_indices) if self.out_indices is not None else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """The inverse of :meth:`to_dict`.

        Raises:
            CsmoeError: unknown keys or bad values.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise CsmoeError(f"unknown fine-tuning option(s): {', '.join(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise CsmoeError(f"bad fine-tuning configuration: {exc}") from exc

    def check_resume(self, given: dict[str, Any]) -> FinetuneConfig:
        """This (saved) config with the operational options of ``given``; semantic ones must agree.

        Raises:
            CsmoeError: if ``given`` changes an option that alters the computation.
        """
        saved = self.to_dict()
        fresh = FinetuneConfig.from_dict({**saved, **given}).to_dict()
        conflicts = [
            f"{k} ({saved[k]} in the run, {fresh[k]} given)"
            for k in SEMANTIC_FIELDS
            if k in given and fresh[k] != saved[k]
        ]
        if conflicts:
            raise CsmoeError(
                "--resume keeps the run's settings; these differ: " + "; ".join(conflicts)
            )
        merged = FinetuneConfig.from_dict({**saved, **given})
        merged.total_steps = self.total_steps
        return merged
