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

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from csmoe_common.atomic import write_text
from csmoe_common.version import __version__
from csmoe_model.errors import CsmoeError
from csmoe_model.train.checkpoint import list_checkpoints, load_checkpoint, load_latest_checkpoint
from csmoe_model.train.config import TrainConfig, check_resume

if TYPE_CHECKING:
    from csmoe_model.models.csmoe import CSMoE
    from csmoe_model.train.data import TrainingData
    from csmoe_model.train.distributed import DistEnv

#: what csmoe writes in a run directory, and all that a fresh start (``--overwrite``) removes: in
#: these folders only the files matching the patterns, at the top level only these files (and each
#: only when its content shows csmoe wrote it); anything else in the folder is left alone
RUN_FOLDERS: dict[str, tuple[str, ...]] = {
    "checkpoints": ("step_*.pt", "latest", ".step_*.tmp", ".latest.*.tmp"),
    "tb": ("events.out.tfevents.*",),
}
RUN_FILES: tuple[str, ...] = ("metrics.csv", "config.json", "model.safetensors")


class NotARunError(CsmoeError):
    """``--resume`` on a folder that holds no csmoe run (nothing was changed)."""


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

    def is_empty(self) -> bool:
        """Whether the folder is missing or holds nothing."""
        if self.path.exists() and not self.path.is_dir():
            raise CsmoeError(f"{self.path} is a file, not a run directory")
        try:
            return not self.path.exists() or not any(self.path.iterdir())
        except OSError as exc:
            raise CsmoeError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def read_config(self) -> dict[str, Any] | None:
        """The decoded ``config.json``, or ``None`` when there is none.

        Raises:
            CsmoeError: it exists but cannot be read or is not a csmoe run config.
        """
        if not self.config_file.exists():
            return None
        try:
            data = json.loads(self.config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CsmoeError(
                f"{self.config_file} cannot be read ({' '.join(str(exc).split())}); nothing was "
                "changed (move it away to resume from the newest checkpoint's config)"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("train"), dict):
            raise CsmoeError(
                f"{self.config_file} is not the config of a csmoe run; nothing was changed"
            )
        return data

    def prepare(
        self, cfg: TrainConfig, resume: bool, overwrite: bool, given: dict[str, Any]
    ) -> tuple[TrainConfig, bool]:
        """Check the folder; on ``resume`` return the saved config merged with ``given``.

        ``--resume`` never destroys anything: a folder that is not a csmoe run, an unreadable
        ``config.json`` or checkpoints none of which can be read fail with one line and leave the
        folder as it is. A missing ``config.json`` is recovered from the config stored in the
        newest checkpoint. A run that stopped before its first checkpoint starts again from step
        0 with its saved settings.

        Returns:
            ``(config, resuming)``: ``resuming`` is False when there is nothing to resume (a
            fresh start); the config is the saved run's when there is one, else ``cfg``.

        Raises:
            CsmoeError: the folder is not empty without ``resume``/``overwrite``, is not a run,
                cannot be read, or a given option conflicts with the run being resumed.
        """
        if not resume:
            if not self.is_empty() and not overwrite:
                raise CsmoeError(
                    f"{self.path} exists; pass --resume to continue that run or --overwrite to start over"
                )
            return cfg, False
        if self.is_empty():
            return cfg, False
        steps = list_checkpoints(self.checkpoints)
        saved_run = self.read_config()
        if saved_run is None and not steps:
            raise NotARunError(
                f"{self.path} is not a csmoe run (no config.json, no checkpoint); nothing was "
                "changed. Use an empty or new --out, or --overwrite to start a run there"
            )
        found = load_latest_checkpoint(self.checkpoints) if steps else None
        if steps and found is None:
            raise CsmoeError(
                f"none of the {len(steps)} checkpoint(s) in {self.checkpoints} can be read (e.g. "
                f"{_load_error(steps[-1])}); nothing was changed"
            )
        if saved_run is not None:
            train_dict = saved_run["train"]
        else:
            assert found is not None
            train_dict = _checkpoint_config(found[0], found[1])
        saved = TrainConfig.from_dict(train_dict)
        merged = check_resume(saved, given)
        if found is None:  # stopped before its first checkpoint: start again, same settings
            return dataclasses.replace(merged, total_steps=None), False
        return dataclasses.replace(merged, total_steps=saved.total_steps), True

    def clear(self) -> list[Path]:
        """Remove what csmoe wrote here (:data:`RUN_FOLDERS`, :data:`RUN_FILES`), nothing else.

        A file is removed only when its name is one of csmoe's and its content shows csmoe wrote
        it; a folder only when it is left empty. Returns the paths kept because they are not
        csmoe's (a user's own files).
        """
        kept: list[Path] = []
        for folder, patterns in RUN_FOLDERS.items():
            root = self.path / folder
            if not root.is_dir() or root.is_symlink():
                continue
            for entry in root.iterdir():
                if entry.is_file() and any(entry.match(p) for p in patterns):
                    entry.unlink(missing_ok=True)
                else:
                    kept.append(entry)
            with contextlib.suppress(OSError):
                root.rmdir()  # only when empty
        for name in RUN_FILES:
            path = self.path / name
            if not path.is_file():
                continue
            if _written_by_csmoe(path):
                path.unlink(missing_ok=True)
            else:
                kept.append(path)
        return kept

    def write_config(self, run_config: dict[str, Any]) -> None:
        """Write ``config.json`` atomically (replacing an old one).

        Raises:
            CsmoeError: if it cannot be written.
        """
        write_text(self.config_file, json.dumps(run_config, indent=2), overwrite=True)


def _load_error(path: Path) -> str:
    try:
        load_checkpoint(path)
    except CsmoeError as exc:
        return " ".join(str(exc).split())[:200]
    return f"{path.name} loads"  # pragma: no cover - only called for unreadable ones


def _checkpoint_config(path: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The training config stored in a checkpoint (to recover a lost ``config.json``)."""
    try:
        run = json.loads(ckpt["run_config"]) if "run_config" in ckpt else None
        if isinstance(run, dict) and isinstance(run.get("train"), dict):
            return run["train"]
        data = json.loads(ckpt["config"])
    except (KeyError, TypeError, ValueError):
        raise CsmoeError(
            f"config.json is missing and {path} holds no readable config; nothing was changed"
        ) from None
    if not isinstance(data, dict):
        raise CsmoeError(f"config.json is missing and {path} holds no config; nothing was changed")
    return data


def checkpoint_run_config(run_dir: RunDir) -> dict[str, Any] | None:
    """The whole ``config.json`` content stored in the newest readable checkpoint, if any."""
    found = load_latest_checkpoint(run_dir.checkpoints)
    if found is None or "run_config" not in found[1]:
        return None
    try:
        run = json.loads(found[1]["run_config"])
    except (TypeError, ValueError):
        return None
    return run if isinstance(run, dict) else None


def _written_by_csmoe(path: Path) -> bool:
    """Whether a file named like one of csmoe's run files holds what csmoe writes there."""
    try:
        if path.name == "metrics.csv":
            with open(path, encoding="utf-8", errors="replace") as fh:
                return fh.readline().startswith("step,")
        if path.name == "config.json":
            data = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(data, dict) and "train" in data and "model" in data
        if path.name == "model.safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as fh:
                return (fh.metadata() or {}).get("format") == "csmoe-encoder"
    except Exception:  # unreadable or foreign: not ours, keep it
        return False
    return False


def check_same_data(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a run on other data than it was trained on.

    Compares the ``data`` entries of the saved and the new ``config.json``: the cache key (it
    hashes the manifest's content as training sees it: rows, patch ids, imagery paths, splits,
    and the preprocessing) and the normalisation statistics (they change with the imagery).

    Raises:
        CsmoeError: one line listing what differs.
    """
    old, new = saved.get("data") or {}, current.get("data") or {}
    diff = []
    if old.get("cache_key") not in (None, new.get("cache_key")):
        diff.append("the manifest's rows or imagery (cache key)")
    if "normalization" in old and json.loads(json.dumps(new.get("normalization"))) != old.get(
        "normalization"
    ):
        diff.append("the normalisation statistics")
    if diff:
        raise CsmoeError(
            "--resume refused: the data differ from the run's (" + "; ".join(diff) + "); train "
            "in a new --out, or --overwrite to start this run over"
        )


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
        CsmoeError: no such run, or a damaged ``config.json``.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CsmoeError(f"{run_dir} is not a csmoe run directory (no config.json)")
    data = RunDir(Path(run_dir)).read_config()
    assert data is not None
    model = data.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("config"), dict):
        raise CsmoeError(f"{path} names no model config; is it a csmoe run?")
    return data


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[CSMoE, dict[str, Any]]:
    """Rebuild a run's model with its trained encoder weights, in eval mode on ``device``.

    Returns:
        ``(model, run_config)``; ``run_config["data"]["normalization"]`` are the stats to feed it with.

    Raises:
        CsmoeError: not a run, damaged files, or weights that do not fit.
    """
    from csmoe_model import build_model

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    model_cfg = dict(cfg["model"]["config"])
    model_cfg.pop("name", None)
    model = build_model(str(cfg["model"].get("name")), **model_cfg)
    weights = run_dir / "model.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        try:
            state = load_file(str(weights))
        except Exception as exc:  # SafetensorError, OSError: truncated or not safetensors
            raise CsmoeError(f"cannot read {weights}: {' '.join(str(exc).split())[:200]}") from None
        try:
            model.load_encoder_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CsmoeError(
                f"{weights} does not fit the run's model: {' '.join(str(exc).split())[:200]}"
            ) from None
    else:
        found = load_latest_checkpoint(run_dir / "checkpoints")
        if found is None:
            raise CsmoeError(f"{run_dir} has neither model.safetensors nor a checkpoint")
        model.load_state_dict(found[1]["model"])
    return model.to(device).eval(), cfg
