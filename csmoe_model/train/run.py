"""The run directory of ``csmoe train``: its layout, its ``config.json``, and loading a trained run.

Layout (:class:`RunDir`): ``config.json`` (the resolved training config, the model config and the
normalisation statistics: everything needed to rebuild the model and feed it), ``metrics.csv``,
TensorBoard logs in ``tb/``, ``checkpoints/`` and, at the end, ``model.safetensors`` (encoder
weights). Only rank 0 writes.

``RUN_DIR/config.json`` holds ``model.name`` and ``model.config`` (``build_model(name, **config)``
rebuilds the architecture) and ``data.normalization`` (the statistics the model was trained with:
pass them as ``stats=`` to the loader when embedding other manifests); ``RUN_DIR/model.safetensors``
holds the encoder weights. A run without ``model.safetensors`` (not finished) loads the model of its
newest checkpoint instead.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from csmoe_common.atomic import write_text
from csmoe_common.version import __version__
from csmoe_model.errors import CsmoeError
from csmoe_model.train.checkpoint import load_latest_checkpoint
from csmoe_model.train.config import TrainConfig, check_resume

if TYPE_CHECKING:
    from csmoe_model.models.csmoe import CSMoE
    from csmoe_model.train.data import TrainingData
    from csmoe_model.train.distributed import DistEnv

#: what a fresh start (``--overwrite``, or ``--resume`` with nothing to resume) removes
RUN_FOLDERS: tuple[str, ...] = ("checkpoints", "tb")
RUN_FILES: tuple[str, ...] = ("metrics.csv", "config.json", "model.safetensors")


@dataclass(frozen=True)
class RunDir:
    """The run directory ``path`` of one training run (see the module docstring)."""

    path: Path

    @property
    def config_file(self) -> Path:
        """``config.json``."""
        return self.path / "config.json"

    @property
    def checkpoints(self) -> Path:
        """The ``checkpoints/`` folder."""
        return self.path / "checkpoints"

    @property
    def weights(self) -> Path:
        """``model.safetensors``, the exported encoder."""
        return self.path / "model.safetensors"

    def prepare(
        self, cfg: TrainConfig, resume: bool, overwrite: bool, given: dict[str, Any]
    ) -> tuple[TrainConfig, bool]:
        """Check the folder; on ``resume`` return the saved config merged with ``given``.

        Returns:
            ``(config, resuming)``: ``resuming`` is False when there is nothing to resume (a
            fresh start). The given config is returned unchanged in that case.

        Raises:
            CsmoeError: the folder is not empty without ``resume``/``overwrite``, or a given
                option conflicts with the run being resumed.
        """
        if resume:
            if self.config_file.is_file() and load_latest_checkpoint(self.checkpoints) is not None:
                saved = TrainConfig.from_dict(
                    json.loads(self.config_file.read_text(encoding="utf-8"))["train"]
                )
                merged = dataclasses.replace(
                    check_resume(saved, given), total_steps=saved.total_steps
                )
                return merged, True
            return cfg, False
        if self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise CsmoeError(
                f"{self.path} exists; pass --resume to continue that run or --overwrite to start over"
            )
        return cfg, False

    def clear(self) -> None:
        """Remove what an earlier run left (:data:`RUN_FOLDERS`, :data:`RUN_FILES`), nothing else."""
        for name in RUN_FOLDERS:
            shutil.rmtree(self.path / name, ignore_errors=True)
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)

    def write_config(self, run_config: dict[str, Any]) -> None:
        """Write ``config.json`` atomically (replacing an old one).

        Raises:
            CsmoeError: if it cannot be written.
        """
        write_text(self.config_file, json.dumps(run_config, indent=2), overwrite=True)


def build_run_config(
    cfg: TrainConfig, model: CSMoE, data: TrainingData, env: DistEnv
) -> dict[str, Any]:
    """The content of ``config.json``: training config, model config and data (with statistics)."""
    cache = data.cache
    return {
        "train": cfg.to_dict(),
        "model": {"name": cfg.model, "config": dataclasses.asdict(model.config)},
        "data": {
            "cache": str(cache.path),
            "cache_key": cache.meta["key"],
            "rows": int(len(data.rows)),
            "damaged": cache.n_damaged,
            "batch_size_per_process": data.local_batch,
            "global_batch_size": data.global_batch,
            "batches_per_epoch": data.batches_per_epoch,
            "world_size": env.world,
            "n_s2": data.n_s2,
            "img_size": model.img_size,
            "cache_size": cache.size,
            "upsample": cfg.upsample,
            "bands": cache.meta["bands"],
            "normalization": cache.stats,
            "stats_rows": cache.meta["stats_rows"],
        },
        "csmoe_version": __version__,
    }


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The decoded ``RUN_DIR/config.json``.

    Raises:
        CsmoeError: no such run.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CsmoeError(f"{run_dir} is not a csmoe run directory (no config.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[CSMoE, dict[str, Any]]:
    """Rebuild a run's model with its trained encoder weights, in eval mode on ``device``.

    Returns:
        ``(model, run_config)``; ``run_config["data"]["normalization"]`` are the stats to feed it with.

    Raises:
        CsmoeError: not a run, or weights that do not fit.
    """
    from csmoe_model import build_model

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    model_cfg = dict(cfg["model"]["config"])
    model_cfg.pop("name", None)
    model = build_model(cfg["model"]["name"], **model_cfg)
    weights = run_dir / "model.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        model.load_encoder_state_dict(load_file(str(weights)))
    else:
        found = load_latest_checkpoint(run_dir / "checkpoints")
        if found is None:
            raise CsmoeError(f"{run_dir} has neither model.safetensors nor a checkpoint")
        model.load_state_dict(found[1]["model"])
    return model.to(device).eval(), cfg
