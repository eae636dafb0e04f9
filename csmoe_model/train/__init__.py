"""Training: ``train(TrainConfig)`` (``csmoe train``), checkpoints, and ``load_run`` for trained models.

Load a trained model (what ``csmoe embed`` does)::

    from csmoe_model.train import load_run
    model, run = load_run("runs/tiny", device="cuda")       # config.json + model.safetensors
    stats = run["data"]["normalization"]                       # feed other manifests with these
"""

from csmoe_model.train.checkpoint import load_checkpoint, load_latest_checkpoint, save_checkpoint
from csmoe_model.train.config import TrainConfig, resolve_config
from csmoe_model.train.loop import NonFiniteLoss, TrainResult, export_encoder, train
from csmoe_model.train.run import load_run, read_run_config

__all__ = [
    "NonFiniteLoss",
    "TrainConfig",
    "TrainResult",
    "export_encoder",
    "load_checkpoint",
    "load_latest_checkpoint",
    "load_run",
    "read_run_config",
    "resolve_config",
    "save_checkpoint",
    "train",
]
