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
- ``--weights FILE``: a ``model.safetensors`` that describes itself
  (:mod:`csmoe_model.weights.pretrained`: preset, config, band order, normalisation statistics;
  ``csmoe train`` and ``csmoe import-weights`` write them). The imagery is normalised with the
  file's statistics; a file without them (an older export, bare weights with ``--model NAME``)
  needs ``normalization="manifest"``: the cache's statistics of the target manifest's ``train``
  rows, which is only right when that manifest is the training distribution.

Models with a band subset (``CSMoE.select_bands``) get the named channels of the cache's bands.
"""

from __future__ import annotations

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
        stats: normalisation statistics recorded by the run or the weights file, per model
            channel (``None``: use the cache's).
        cache: imagery-cache settings recorded by the run (``n_s2``, ``size``, ``s2_bands``,
            ``s1_bands``, ``upsample``), possibly empty.
    """

    model: CSMoE
    name: str
    source: str
    stats: dict[str, list[float]] | None = None
    cache: dict[str, Any] = field(default_factory=dict)


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
    from csmoe_model.weights.pretrained import from_pretrained, read_pretrained

    info, _ = read_pretrained(Path(weights))  # type: ignore[arg-type]
    name = model or info.model or ""
    if not name:
        raise CsmoeError("--weights needs --model NAME (the file does not name its preset)")
    net = from_pretrained(info.path, model=model)
    return LoadedModel(model=net, name=name, source=str(info.path), stats=net.normalization)


def _cache_bands(net: CSMoE) -> tuple[int, dict[str, list[int] | None]]:
    """The S2 band count to cache and, per sensor, the cache channels the model takes."""
    from csmoe_common.bands import S1_BANDS, S2_BANDS_10, s2_bands

    s2_names = net.config.band_names("s2")
    n_s2 = 10 if all(b in S2_BANDS_10 for b in s2_names) else 12
    pick: dict[str, list[int] | None] = {}
    for sensor, order in (("s2", s2_bands(n_s2)), ("s1", S1_BANDS)):
        idx = [order.index(b) for b in net.config.band_names(sensor)]
        pick[sensor] = None if idx == list(range(len(order))) else idx
    return n_s2, pick


def _full_stats(
    stats: dict[str, list[float]], pick: dict[str, list[int] | None], counts: dict[str, int]
) -> dict[str, list[float]]:
    """Statistics per model channel spread onto the cache's channels (others left unscaled)."""
    out = dict(stats)
    for sensor, idx in pick.items():
        if idx is None:
            continue
        for kind, fill in (("mean", 0.0), ("std", 1.0)):
            full = [fill] * counts[sensor]
            for j, i in enumerate(idx):
                full[i] = stats[f"{sensor}_{kind}"][j]
            out[f"{sensor}_{kind}"] = full
    return out


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
    normalization: str = "stored",
    overwrite: bool = False,
    progress: bool = True,
    season: int = 0,
    data_root: str | Path | None = None,
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
        normalization: ``stored`` (the run's or the weights file's statistics) or ``manifest``
            (the cache's, computed on the manifest's ``train`` rows).
        overwrite: replace ``out``.
        progress: show progress bars.
        season: the acquisition embedded from a seasonal cache (SSL4EO-S12: 0..3).
        data_root: the folder the manifest's relative imagery paths are relative to (``None``:
            the manifest's folder).

    Raises:
        CsmoeError: output exists, bad model/weights, weights without statistics (unless
            ``normalization="manifest"``), manifest or cache problems, a season the cache does not hold.
    """
    from csmoe_model.data import open_cache

    check_output_path(out, overwrite)  # fail before minutes of work
    if batch_size < 1:
        raise CsmoeError(f"--batch-size must be at least 1, got {batch_size}")
    if normalization not in ("stored", "manifest"):
        raise CsmoeError(f"--normalization must be stored or manifest, got {normalization!r}")
    dev = resolve_device(device)
    loaded = load_model(run=run, weights=weights, model=model)
    if normalization == "manifest":
        loaded.stats = None
    elif loaded.stats is None:
        raise CsmoeError(
            f"{loaded.source} carries no normalisation statistics; pass --normalization manifest "
            "to normalise with the target manifest's (train rows) statistics"
        )
    net = loaded.model.to(dev)
    n_s2_model, pick = _cache_bands(net)
    n_s2_cache = int(loaded.cache.get("n_s2") or n_s2_model)
    if n_s2_cache < n_s2_model:
        raise CsmoeError(f"the run cached {n_s2_cache} S2 bands; the model needs {n_s2_model}")
    stats = loaded.stats
    if stats is not None:
        stats = _full_stats(stats, pick, {"s2": n_s2_model, "s1": 2})

    from csmoe_model.data import CacheSettings

    bands = {
        k: tuple(loaded.cache[k]) if loaded.cache.get(k) else None for k in ("s2_bands", "s1_bands")
    }
    settings = CacheSettings(n_s2=n_s2_cache, size=loaded.cache.get("size"), **bands)
    # open_cache reads the manifest first and reports its problems in one line
    cache = open_cache(
        manifest, cache_dir, settings, workers=workers, progress=progress, data_root=data_root
    )
    labels = read_manifest_labels(manifest, labels_columns)  # cache row i = manifest row i
    n_rows = len(cache)
    selected = np.arange(n_rows) if split is None else _split_rows(cache, split)
    # an embeddings file is keyed by patch_id (evaluation refuses repeats): refuse them now, not
    # after the embedding
    ids, counts = np.unique(cache.patch_ids[selected].astype(str), return_counts=True)
    if (counts > 1).any():
        raise CsmoeError(
            f"{Path(manifest).name} repeats {int((counts > 1).sum())} patch_id value(s) (e.g. "
            f"{str(ids[counts > 1][0])!r}); an embeddings file needs one row per id"
        )
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
            stats=stats,
            augment=False,
            shuffle=False,
            drop_last=False,
            workers=workers,
            upsample=str(loaded.cache.get("upsample") or "bilinear"),
            season=season,
        )
        with (
            progress_bar(
                "embedding", len(rows), "pairs", enabled=progress, transient=False
            ) as advance,
            torch.inference_mode(),
        ):
            for batch in loader:
                idx = batch.index.numpy()
                x1, x2 = batch.s1, batch.s2
                if pick["s1"] is not None:
                    x1 = x1[:, pick["s1"]]
                if pick["s2"] is not None:
                    x2 = x2[:, pick["s2"]]
                # each sensor alone, so that S1->S2 retrieval is honest
                emb["s1"][idx] = net.encode(s1=x1)["s1"].float().cpu().numpy()
                emb["s2"][idx] = net.encode(s2=x2)["s2"].float().cpu().numpy()
                advance(len(idx))
    seconds = time.perf_counter() - t0

    split_col = cache.split if cache.split is not None else np.full(n_rows, None, dtype=object)
    meta = {
        "model": loaded.name,
        "model_config": net.config_dict(),
        "source": loaded.source,
        "manifest": str(Path(manifest).resolve()),
        "data_root": None if data_root is None else str(Path(data_root).expanduser().resolve()),
        "cache": str(cache.path),
        "normalisation": (
            "cache" if loaded.stats is None else ("run" if run is not None else "weights")
        ),
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
