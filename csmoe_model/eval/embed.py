"""Embed a manifest's imagery with a trained encoder: the input of ``csmoe eval``.

Each sensor is embedded ALONE (``model.encode(s1=x)`` and ``model.encode(s2=y)`` as separate calls),
so cross-sensor retrieval measures what one sensor's embedding knows about the other's, not a fused
representation. Imagery goes through the SAME cache and loader as training
(:func:`csmoe_model.data.open_cache`, ``cache.loader``), normalised with the run's statistics when the
run recorded them (else the cache's, computed on the manifest's ``train`` rows), in eval mode,
without masking and without augmentation, in manifest order.

Loading a model:

- ``--run RUN_DIR``: :func:`csmoe_model.train.run.load_run` (``config.json``: ``model.name``,
  ``model.config``, ``data.normalization``; ``model.safetensors``: the encoder weights). The run's
  statistics normalise the imagery and its cache settings (``n_s2``, band orders, upsampling) are
  reused, so ``embed`` reads the training cache when it embeds the training manifest.
- ``--weights FILE --model NAME``: a safetensors file of encoder (or full-model) weights for preset
  ``NAME``; when the file's metadata records the model config (``csmoe train`` writes ``model`` and
  ``config``), that config is used and ``--model`` may be left out. The imagery is then normalised
  with the cache's statistics (the manifest's ``train`` rows).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from csmoe_common.atomic import check_output_path
from csmoe_common.device import resolve_device
from csmoe_common.progress import progress_bar
from csmoe_common.version import __version__
from csmoe_model.data.manifest import read_manifest_labels
from csmoe_model.errors import CsmoeError
from csmoe_model.eval.embeddings import write_embeddings
from csmoe_model.eval.options import EMBED_BATCH_SIZE, EMBED_WORKERS

if TYPE_CHECKING:
    from csmoe_model.data.cache import ImageryCache
    from csmoe_model.models.csmoe import CSMoE

__all__ = ["EmbedSummary", "LoadedModel", "embed_manifest", "load_model"]


@dataclass
class LoadedModel:
    """A model ready to embed, with what is known about how it was trained.

    Attributes:
        model: the model (eval mode, on the CPU).
        name: its preset name.
        source: the run folder or weights file.
        stats: normalisation statistics recorded by the run (``None``: use the cache's).
        cache: imagery-cache settings recorded by the run (``n_s2``, ``size``, ``s2_bands``,
            ``s1_bands``, ``upsample``), possibly empty.
    """

    model: CSMoE
    name: str
    source: str
    stats: dict[str, list[float]] | None = None
    cache: dict[str, Any] = field(default_factory=dict)


def _load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        raise CsmoeError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CsmoeError(f"cannot read {path} as safetensors: {exc}") from exc
    return state, meta


def _encoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a full-model state dict too: keep the ``encoder.`` entries without the prefix."""
    if state and all(k.startswith("encoder.") or not k.startswith("encoder") for k in state):
        enc = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        if enc:
            return enc
    return state


def _cache_from_run_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Imagery-cache settings the run trained with, so that ``embed`` reuses the same cache."""
    out: dict[str, Any] = {}
    for section in (cfg.get("train"), cfg.get("data"), cfg.get("cache")):
        if isinstance(section, Mapping):
            for k in ("n_s2", "size", "s2_bands", "s1_bands", "upsample"):
                if section.get(k) is not None and k not in out:
                    out[k] = section[k]
    return out


def load_model(
    run: str | Path | None = None,
    weights: str | Path | None = None,
    model: str | None = None,
) -> LoadedModel:
    """Build a model and load trained encoder weights.

    Args:
        run: a run folder of ``csmoe train`` (``config.json`` + ``model.safetensors``).
        weights: a safetensors file (with ``model``), instead of ``run``.
        model: preset name; with ``run`` it must match the run's model if given.

    Raises:
        CsmoeError: neither or both of ``run``/``weights``, missing files, unknown model, weights
            that do not fit the architecture.
    """
    from csmoe_model import build_model

    if (run is None) == (weights is None):
        raise CsmoeError("give either --run RUN_DIR or --weights FILE (with --model NAME)")
    if run is not None:
        from csmoe_model.train.run import load_run

        run = Path(run)
        if not (run / "config.json").is_file():
            raise CsmoeError(f"{run} is not a csmoe run folder (no config.json)")
        try:
            net, cfg = load_run(run, device="cpu")
        except (KeyError, TypeError, ValueError) as exc:  # a config.json of another layout
            raise CsmoeError(f"{run}/config.json is not a csmoe run configuration ({exc})") from exc
        name = str(cfg["model"]["name"])
        if model is not None and model != name:
            raise CsmoeError(f"--model {model} differs from the run's model {name}")
        section = cfg.get("data")
        data: Mapping[str, Any] = section if isinstance(section, Mapping) else {}
        return LoadedModel(
            model=net,
            name=name,
            source=str(run),
            stats=data.get("normalization"),
            cache=_cache_from_run_config(cfg),
        )
    assert weights is not None  # exactly one of run / weights (checked above)
    weights = Path(weights)
    state, meta = _load_state(weights)
    overrides: dict[str, Any] = {}
    if meta.get("config"):  # export_encoder (csmoe train) records the model config
        try:
            overrides = json.loads(meta["config"])
        except json.JSONDecodeError:
            overrides = {}
    name = str(model or meta.get("model") or overrides.get("name") or "")
    if not name:
        raise CsmoeError("--weights needs --model NAME (the preset the weights belong to)")
    if model is not None and overrides.get("name") not in (None, model):
        overrides = {}  # another preset was asked for: its own config, not the file's
    net = build_model(name, **overrides)
    net.load_encoder_state_dict(_encoder_state(state))
    net.eval()
    return LoadedModel(model=net, name=name, source=str(weights))


@dataclass
class EmbedSummary:
    """What :func:`embed_manifest` did."""

    out: Path
    rows: int
    embedded: int
    skipped: int
    dim: int
    model: str
    device: str
    seconds: float
    cache: str


def embed_manifest(
    manifest: str | Path,
    out: str | Path,
    *,
    run: str | Path | None = None,
    weights: str | Path | None = None,
    model: str | None = None,
    device: str = "auto",
    batch_size: int = EMBED_BATCH_SIZE,
    split: str | None = None,
    cache_dir: str | Path | None = None,
    workers: int = EMBED_WORKERS,
    labels_columns: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool = True,
) -> EmbedSummary:
    """Embed every row (or the rows of ``split``) of ``manifest`` and write the embeddings Parquet.

    One output row per selected manifest row, in manifest order; a row whose imagery the cache
    marked as damaged gets null embeddings (and counts as skipped).

    Args:
        manifest: the manifest (with ``s1_path`` and ``s2_path``).
        out: the embeddings Parquet to write (atomically).
        run: a run folder of ``csmoe train`` (see :func:`load_model`).
        weights: a safetensors file of encoder weights, instead of ``run``.
        model: the preset of ``weights`` (or, with ``run``, a check of the run's preset).
        device: ``auto``, ``cpu``, ``cuda``, ...
        batch_size: pairs per forward pass.
        split: embed only this split (e.g. ``test``; ``None``: all rows).
        cache_dir: imagery cache folder (default: as training, ``$CSMOE_CACHE_DIR`` or ``~/.cache/csmoe``).
        workers: loader worker processes (and cache decoding processes).
        labels_columns: further list columns to copy besides ``labels`` and ``labels19``.
        overwrite: replace ``out``.
        progress: show progress bars.

    Raises:
        CsmoeError: output exists, bad model/weights, manifest or cache problems.
    """
    from csmoe_model.data import open_cache

    check_output_path(out, overwrite)  # fail before minutes of work
    if batch_size < 1:
        raise CsmoeError(f"--batch-size must be at least 1, got {batch_size}")
    dev = resolve_device(device)
    loaded = load_model(run=run, weights=weights, model=model)
    net = loaded.model.to(dev)
    n_s2_model = int(net.in_chans["s2"])
    n_s2_cache = int(loaded.cache.get("n_s2") or n_s2_model)

    from csmoe_model.data import CacheSettings

    bands = {
        k: tuple(loaded.cache[k]) if loaded.cache.get(k) else None for k in ("s2_bands", "s1_bands")
    }
    settings = CacheSettings(n_s2=n_s2_cache, size=loaded.cache.get("size"), **bands)
    # open_cache reads the manifest first and reports its problems in one line
    cache = open_cache(manifest, cache_dir, settings, workers=workers, progress=progress)
    labels = read_manifest_labels(manifest, labels_columns)  # cache row i = manifest row i
    n_rows = len(cache)
    selected = np.arange(n_rows) if split is None else _split_rows(cache, split)
    rows = selected[cache.valid[selected]]
    dim = int(net.embed_dim)
    emb = {s: np.full((n_rows, dim), np.nan, dtype=np.float32) for s in ("s1", "s2")}

    t0 = time.perf_counter()
    if len(rows):
        loader = cache.loader(
            rows,
            batch_size=min(batch_size, len(rows)),
            device=dev,
            img_size=net.img_size,
            n_s2=n_s2_model,
            stats=loaded.stats,
            augment=False,
            shuffle=False,
            drop_last=False,
            workers=workers,
            upsample=str(loaded.cache.get("upsample") or "bilinear"),
        )
        with (
            progress_bar(
                "embedding", len(rows), "pairs", enabled=progress, transient=False
            ) as advance,
            torch.inference_mode(),
        ):
            for batch in loader:
                idx = batch.index.numpy()
                # each sensor alone, so that S1->S2 retrieval is honest
                emb["s1"][idx] = net.encode(s1=batch.s1)["s1"].float().cpu().numpy()
                emb["s2"][idx] = net.encode(s2=batch.s2)["s2"].float().cpu().numpy()
                advance(len(idx))
    seconds = time.perf_counter() - t0

    split_col = cache.split if cache.split is not None else np.full(n_rows, None, dtype=object)
    meta = {
        "model": loaded.name,
        "model_config": net.config_dict(),
        "source": loaded.source,
        "manifest": str(Path(manifest).resolve()),
        "cache": str(cache.path),
        "normalisation": "run" if loaded.stats else "cache",
        "split": split or "all",
        "encode": "each sensor alone, all patches visible, eval mode, no augmentation",
        "tool_version": __version__,
    }
    write_embeddings(
        out,
        [str(p) for p in cache.patch_ids[selected]],
        [None if s is None else str(s) for s in split_col[selected]],
        {s: v[selected] for s, v in emb.items()},
        labels={c: [v[i] for i in selected] for c, v in labels.items()},
        metadata=meta,
        overwrite=overwrite,
    )
    return EmbedSummary(
        out=Path(out),
        rows=len(selected),
        embedded=len(rows),
        skipped=len(selected) - len(rows),
        dim=dim,
        model=loaded.name,
        device=str(dev),
        seconds=seconds,
        cache=str(cache.path),
    )


def _split_rows(cache: ImageryCache, split: str) -> np.ndarray:
    from csmoe_model.data import select_split

    return select_split(cache.split, split)
