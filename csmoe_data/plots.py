"""Figures of a sampled manifest against its pool (matplotlib, Agg backend, no basemap).

- ``class_distributions.png``: mean land-cover and climate fractions per class (full class
  names), pool, sample and (with a baseline) the random sample side by side;
- ``climate_landcover_heatmap.png``: rows per (climate, dominant land cover) stratum in the
  pool, the sample and the baseline, on one shared log colour scale (one colour is one count in
  every panel), plus the sampling rate (sample / pool rows) per stratum; pool strata a sample
  misses are outlined in red;
- ``world_map.png``: the pool in grey, the sample coloured by its majority climate;
- ``splits_map.png`` (when the sample has several splits): the sample coloured by split,
  zoomed to the sample, with the achieved shares;
- ``baseline_comparison.png`` (with a baseline): every quality figure, sample beside the
  random sample, with its better direction and the winner marked, and which of the pool's
  strata (ranked by size) each sample covers.

Maps are lon/lat plate carrée; footprints are drawn as outlines where they are large at the
map's scale (median width above 1/:data:`OUTLINE_FRACTION` of the map's width), else as centre
dots. The land mask comes from the land-cover raster named in the metadata when it is readable
(Natural Earth is not available offline), else none.

Colours come from the legends in the manifest metadata when present (``legends.<kind>.classes``
with ``color``), otherwise from the built-in Köppen palette for climate and a qualitative
colormap for land cover.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import shapely  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from csmoe_common.atomic import atomic_output  # noqa: E402
from csmoe_data.sampling.features import (  # noqa: E402
    MISSING,
    climate_columns,
    descriptor_matrix,
    landcover_columns,
)

#: figure file names always written by :func:`make_plots`
FIGURES = ("class_distributions.png", "climate_landcover_heatmap.png", "world_map.png")
#: written when the sample has more than one split
SPLITS_FIGURE = "splits_map.png"
#: written when a baseline is given
BASELINE_FIGURE = "baseline_comparison.png"
#: footprints are outlined when their median width exceeds the map width / this
OUTLINE_FRACTION = 400.0
#: characters per line of wrapped class names
NAME_WIDTH = 26
_DPI = 110
_SPLIT_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")
_SAMPLE_COLOUR = "#1b6ca8"
_BASELINE_COLOUR = "#e08214"


def legend_info(metadata: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, str]]:
    """Column -> colour and column -> display name, from the manifest's legends.

    Falls back to the built-in Köppen legend for ``kg_<symbol>`` colours.
    """
    colors: dict[str, str] = {}
    names: dict[str, str] = {}
    legends = (metadata or {}).get("legends") or {}
    for leg in legends.values() if isinstance(legends, Mapping) else []:
        if not isinstance(leg, Mapping):
            continue
        kind = leg.get("kind")
        for c in leg.get("classes") or []:
            if not isinstance(c, Mapping):
                continue
            if kind == "climate" and c.get("symbol"):
                col = f"kg_{c['symbol']}"
            elif kind == "landcover" and c.get("code") is not None:
                col = f"lc_{c['code']}"
            else:
                continue
            if c.get("color"):
                colors.setdefault(col, str(c["color"]))
            if c.get("name"):
                names.setdefault(col, str(c["name"]))
    try:  # Köppen symbols are universal, so the built-in palette fits any climate legend
        from csmoe_data.legends import load_legend

        for c in load_legend("koppen-beck", "climate").classes:
            if c.color and c.symbol:
                colors.setdefault(f"kg_{c.symbol}", c.color)
    except Exception:  # pragma: no cover - the palette is cosmetic
        pass
    return colors, names


def _colour_list(columns: list[str], colors: Mapping[str, str]) -> list[Any]:
    cmap = plt.get_cmap("tab20")
    return [colors.get(c, cmap(i % 20)) for i, c in enumerate(columns)]


def _label(col: str, names: Mapping[str, str], width: int = NAME_WIDTH) -> str:
    """``<code> <full class name>``, wrapped onto lines of ``width`` characters (never cut)."""
    short = col.split("_", 1)[1]
    name = names.get(col)
    text = f"{short} {name}" if name and name != short else short
    return textwrap.fill(text, width=width, break_long_words=False) or short


def _save(fig: plt.Figure, path: Path, overwrite: bool) -> Path:
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_class_distributions(
    sample: pd.DataFrame,
    pool: pd.DataFrame,
    path: str | Path,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    baseline: pd.DataFrame | None = None,
    baseline_label: str | None = None,
) -> Path:
    """Horizontal bars of the mean land-cover and climate fractions: pool, sample, baseline.

    Classes are ordered by their pool share and named in full (wrapped).

    Raises:
        CsmoeDataError: if ``path`` exists and ``overwrite`` is false.
    """
    colors, names = legend_info(metadata)
    groups = [
        ("land cover", landcover_columns(pool.columns)),
        ("climate", climate_columns(pool.columns)),
    ]
    groups = [(t, c) for t, c in groups if c]
    series = [("pool", pool), ("sample", sample)]
    if baseline is not None:
        series.append((baseline_label or "baseline", baseline))
    # classes of the legend that no row holds are left out (and counted in the title)
    shown: list[tuple[str, list[str], dict[str, np.ndarray], int]] = []
    for title, cols in groups:
        means = {
            k: (descriptor_matrix(df, cols).mean(axis=0) if len(df) else np.zeros(len(cols)))
            for k, df in series
        }
        held = np.any([m > 0 for m in means.values()], axis=0)
        if not held.any():
            held[:] = True
        kept = [c for c, h in zip(cols, held, strict=True) if h]
        shown.append((title, kept, {k: m[held] for k, m in means.items()}, len(cols) - len(kept)))
    longest = max([len(c) for _, c, _, _ in shown] or [1])
    fig, axes = plt.subplots(
        1,
        len(groups) or 1,
        figsize=(7.5 * max(1, len(groups)), 0.42 * longest + 2.0),
        squeeze=False,
    )
    height = 0.8 / len(series)
    for ax, (title, cols, means, absent) in zip(axes[0], shown, strict=False):
        order = np.argsort(-means["pool"], kind="stable")
        y = np.arange(len(cols))
        for i, (key, df) in enumerate(series):
            offset = (i - (len(series) - 1) / 2) * height
            style: dict[str, Any]
            if key == "pool":
                style = {"color": "0.78", "edgecolor": "0.45"}
            elif key == "sample":
                style = {
                    "color": [_colour_list(cols, colors)[j] for j in order],
                    "edgecolor": "0.15",
                }
            else:
                style = {"color": "white", "edgecolor": _BASELINE_COLOUR, "hatch": "///"}
            ax.barh(
                y + offset,
                means[key][order],
                height,
                label=f"{key} ({len(df):,} rows)",
                linewidth=0.6,
                **style,
            )
        ax.set_yticks(y, [_label(cols[j], names) for j in order], fontsize=7.5)
        ax.invert_yaxis()
        ax.set_xlabel("mean fraction of the footprint")
        plural = "class" if absent == 1 else "classes"
        note = f"\n({absent} {plural} of the legend in no row, not shown)" if absent else ""
        ax.set_title(f"{title}: mean class fractions{note}")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(path), overwrite)


def _strata_table(df: pd.DataFrame) -> pd.DataFrame:
    kg = (
        df["kg_major"].astype(object).where(df["kg_major"].notna(), MISSING)
        if "kg_major" in df
        else MISSING
    )
    lc = (
        df["lc_major"].astype(object).where(df["lc_major"].notna(), MISSING)
        if "lc_major" in df
        else MISSING
    )
    t = pd.DataFrame(
        {
            "kg": pd.Series(kg, index=df.index).astype(str),
            "lc": pd.Series(lc, index=df.index).astype(str),
        }
    )
    return t.value_counts().unstack(fill_value=0) if len(t) else pd.DataFrame()


def _lc_sort_key(v: str) -> tuple[int, Any]:
    try:
        return (0, int(v))
    except ValueError:
        return (1, v)


def _outline_missed(ax: Any, pool_counts: np.ndarray, counts: np.ndarray) -> int:
    missed = np.argwhere((pool_counts > 0) & (counts == 0))
    for r, c in missed:
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", lw=0.9))
    return len(missed)


def plot_heatmap(
    sample: pd.DataFrame,
    pool: pd.DataFrame,
    path: str | Path,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    baseline: pd.DataFrame | None = None,
    baseline_label: str | None = None,
) -> Path:
    """Climate x dominant land cover: rows per stratum on one colour scale, and sampling rates.

    Panels: pool, sample, baseline (when given) on one shared log colour scale; then the
    sampling rate (sample rows / pool rows) per stratum, with the uniform rate (n / N) marked on
    its colour bar: a random sample is near that rate everywhere, a diverse one samples rare
    strata at higher rates.

    Raises:
        CsmoeDataError: if ``path`` exists and ``overwrite`` is false.
    """
    _, names = legend_info(metadata)
    tables = [("pool", _strata_table(pool)), ("sample", _strata_table(sample))]
    if baseline is not None:
        tables.append((baseline_label or "baseline", _strata_table(baseline)))
    rows = sorted(set().union(*(set(t.index) for _, t in tables)))
    cols = sorted(set().union(*(set(t.columns) for _, t in tables)), key=_lc_sort_key)
    data = {
        k: t.reindex(index=rows, columns=cols, fill_value=0).to_numpy(dtype=float)
        for k, t in tables
    }
    pool_counts = data["pool"]
    n_panels = len(tables) + 1
    col_labels = [_label(f"lc_{c}", names, 18) for c in cols]
    width = max(4.0, 0.34 * len(cols) + 1.6)
    fig, axes = plt.subplots(
        1,
        n_panels,
        figsize=(width * n_panels + 1.5, max(4.5, 0.27 * len(rows) + 3.2)),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    axes = axes[0]
    vmax = max(1.0, max(float(d.max()) if d.size else 1.0 for d in data.values()))
    norm = LogNorm(vmin=1, vmax=vmax)  # one scale for every count panel
    im = None
    for ax, (key, _) in zip(axes, tables, strict=False):
        d = data[key]
        im = ax.imshow(
            np.ma.masked_where(d <= 0, d), aspect="auto", cmap="viridis", norm=norm,
            interpolation="nearest",
        )  # fmt: skip
        title = f"{key}: {int(d.sum()):,} rows, {int((d > 0).sum())} strata"
        if key != "pool":
            missed = _outline_missed(ax, pool_counts, d)
            if missed:
                title += f"\nred: {missed} pool strata missed"
        ax.set_title(title, fontsize=9)
    rate = np.where(pool_counts > 0, data["sample"] / np.maximum(pool_counts, 1), np.nan)
    uniform = data["sample"].sum() / max(pool_counts.sum(), 1)
    positive = rate[np.isfinite(rate) & (rate > 0)]
    lo = float(positive.min()) if positive.size else uniform / 10
    hi = float(positive.max()) if positive.size else 1.0
    lo, hi = min(lo, uniform / 2), max(hi, uniform * 2, lo * 1.01)
    rate_ax = axes[-1]
    rim = rate_ax.imshow(
        np.ma.masked_where(~(rate > 0), rate), aspect="auto", cmap="magma_r",
        norm=LogNorm(vmin=lo, vmax=min(hi, 1.0) if hi > lo else hi), interpolation="nearest",
    )  # fmt: skip
    _outline_missed(rate_ax, pool_counts, data["sample"])
    rate_ax.set_title(
        f"sampling rate (sample / pool rows per stratum)\nuniform rate n/N = {uniform:.2%}",
        fontsize=9,
    )
    for ax in axes:
        ax.set_xticks(range(len(cols)), col_labels, fontsize=6.5, rotation=90)
        ax.set_xlabel("dominant land cover (lc_major)", fontsize=8)
        ax.set_facecolor("white")
    axes[0].set_yticks(range(len(rows)), rows, fontsize=7)
    axes[0].set_ylabel("climate (kg_major)")
    if im is not None:
        fig.colorbar(
            im, ax=list(axes[:-1]), shrink=0.8, pad=0.01, label="rows per stratum (log, shared)"
        )
    cb = fig.colorbar(rim, ax=rate_ax, shrink=0.8, pad=0.02, label="sampling rate (log)")
    cb.ax.axhline(uniform, color="cyan", lw=2)
    return _save(fig, Path(path), overwrite)


def _geoms(df: pd.DataFrame) -> np.ndarray:
    if "geometry" not in df.columns or len(df) == 0:
        return np.empty(0, dtype=object)
    geoms = np.asarray(df["geometry"].values, dtype=object)
    return geoms


def _centres(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    geoms = _geoms(df)
    if len(geoms) == 0:
        return np.empty(0), np.empty(0)
    from csmoe_data.sampling.geo import footprint_circles

    ok = np.array([g is not None and not g.is_empty for g in geoms], dtype=bool)
    lon, lat, _ = footprint_circles(geoms[ok]) if ok.any() else (np.empty(0), np.empty(0), None)
    return lon, lat


def _median_width_deg(geoms: np.ndarray) -> float:
    ok = [g for g in geoms if g is not None and not g.is_empty]
    if not ok:
        return 0.0
    b = shapely.bounds(np.asarray(ok, dtype=object))
    w = np.minimum(b[:, 2] - b[:, 0], 180.0)
    return float(np.median(w))


def _polygons(geoms: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Exterior rings of every (multi)polygon part, with the index of the row it belongs to."""
    rings: list[np.ndarray] = []
    owner: list[int] = []
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            continue
        parts = getattr(g, "geoms", [g])
        for part in parts:
            if hasattr(part, "exterior"):
                rings.append(np.asarray(part.exterior.coords)[:, :2])
                owner.append(i)
    return rings, np.asarray(owner, dtype=np.int64)


def _draw(
    ax: Any,
    df: pd.DataFrame,
    color: Any,
    outline: bool,
    label: str | None,
    size: float = 9,
    alpha: float = 1.0,
) -> None:
    """Footprints of ``df`` as outlines (``outline``) or centre dots, in one colour."""
    if outline:
        rings, _ = _polygons(_geoms(df))
        if rings:
            ax.add_collection(
                PolyCollection(
                    rings, facecolors=color, edgecolors=color, linewidths=0.6, alpha=alpha,
                    label=label,
                )
            )  # fmt: skip
        return
    lon, lat = _centres(df)
    if len(lon):
        ax.scatter(
            lon, lat, s=size, color=color, edgecolors="0.15" if size >= 6 else "none",
            linewidths=0.2, alpha=alpha, label=label,
        )  # fmt: skip


def _map_axes(
    figsize: tuple[float, float], extent: tuple[float, float, float, float], metadata: Any
) -> tuple[plt.Figure, Any]:
    fig, ax = plt.subplots(figsize=figsize)
    land = _landcover_background(metadata)
    if land is not None:
        ax.imshow(
            np.where(land, 0.88, 1.0), extent=(-180, 180, -90, 90), cmap="gray", vmin=0, vmax=1,
            interpolation="nearest",
        )  # fmt: skip
    ax.set_facecolor("#f4f8fb")
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_aspect("equal")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.grid(alpha=0.3)
    return fig, ax


def _legend(ax: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7,
            ncol=1 + len(labels) // 28, markerscale=1.5,
        )  # fmt: skip


def _landcover_background(metadata: Mapping[str, Any] | None) -> np.ndarray | None:
    """A coarse land mask (True on land) from the land-cover raster in the metadata, if readable."""
    inputs = (metadata or {}).get("inputs") or {}
    entry = inputs.get("landcover") if isinstance(inputs, Mapping) else None
    path = entry.get("path") if isinstance(entry, Mapping) else None
    if not path:
        return None
    try:
        import rasterio
        from rasterio.enums import Resampling

        from csmoe_data.samples import resolve_path

        with rasterio.open(resolve_path(path)) as ds:
            if ds.crs is None or not ds.crs.is_geographic:
                return None
            b = ds.bounds
            if b.left > -179 or b.right < 179 or b.bottom > -89 or b.top < 89:
                return None  # not a global lon/lat raster: no background
            data = ds.read(1, out_shape=(360, 720), resampling=Resampling.nearest)
            nodata = set(ds.nodatavals or ()) | {255}
        legend_water = {0}  # IGBP/most legends: 0 = water
        return ~np.isin(data, list(nodata | legend_water))
    except Exception:  # a background is optional; any failure just means no background
        return None


def plot_world_map(
    sample: pd.DataFrame,
    pool: pd.DataFrame,
    path: str | Path,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """World map: pool grey, sample coloured by majority climate (outlines where large).

    Raises:
        CsmoeDataError: if ``path`` exists and ``overwrite`` is false.
    """
    colors, _ = legend_info(metadata)
    extent = (-180.0, -90.0, 180.0, 90.0)
    fig, ax = _map_axes((13, 6.8), extent, metadata)
    outline = _median_width_deg(_geoms(sample)) > 360.0 / OUTLINE_FRACTION
    if pool is not sample and len(pool):
        _draw(ax, pool, "0.78", outline, f"pool ({len(pool):,})", size=2, alpha=0.45)
    kg = (
        sample["kg_major"].astype(object).where(sample["kg_major"].notna(), MISSING).astype(str)
        if "kg_major" in sample
        else pd.Series(MISSING, index=sample.index)
    ).to_numpy()
    for sym in sorted(set(kg.tolist())):
        m = kg == sym
        _draw(ax, sample[m], colors.get(f"kg_{sym}", "black"), outline, f"{sym} ({int(m.sum())})")
    shown = "outlines" if outline else "centres"
    ax.set_title(f"selected footprints ({len(sample):,}, {shown}) by majority climate")
    _legend(ax)
    return _save(fig, Path(path), overwrite)


def _extent(df: pd.DataFrame) -> tuple[float, float, float, float]:
    """The sample's lon/lat box padded by 5% (global when it spans most of the globe)."""
    geoms = [g for g in _geoms(df) if g is not None and not g.is_empty]
    if not geoms:
        return (-180.0, -90.0, 180.0, 90.0)
    b = shapely.bounds(np.asarray(geoms, dtype=object))
    x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    if x1 - x0 > 200:
        return (-180.0, -90.0, 180.0, 90.0)
    pad = 0.05 * max(x1 - x0, y1 - y0, 0.01)
    return (
        max(-180.0, x0 - pad),
        max(-90.0, y0 - pad),
        min(180.0, x1 + pad),
        min(90.0, y1 + pad),
    )


def plot_splits_map(
    sample: pd.DataFrame,
    pool: pd.DataFrame,
    path: str | Path,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """The sample coloured by split, zoomed to the sample; title with the achieved shares.

    Raises:
        CsmoeDataError: if ``path`` exists and ``overwrite`` is false.
    """
    extent = _extent(sample)
    w, h = extent[2] - extent[0], extent[3] - extent[1]
    fig, ax = _map_axes((12, max(4.0, min(10.0, 12 * h / max(w, 1e-6)))), extent, metadata)
    outline = _median_width_deg(_geoms(sample)) > w / OUTLINE_FRACTION
    split = sample["split"].astype(str).to_numpy() if "split" in sample else np.array([])
    names = sorted(set(split.tolist()), key=lambda s: (s != "train", s != "val", s))
    for i, name in enumerate(names):
        m = split == name
        _draw(
            ax, sample[m], _SPLIT_COLOURS[i % len(_SPLIT_COLOURS)], outline,
            f"{name} ({int(m.sum()):,}, {m.mean():.1%})",
        )  # fmt: skip
    sampling = (metadata or {}).get("sampling") if isinstance(metadata, Mapping) else None
    report = sampling.get("split_report") if isinstance(sampling, Mapping) else None
    title = f"splits of the {len(sample):,} selected footprints"
    if isinstance(report, Mapping):
        title += (
            f"\n{report.get('blocks', 0):,} blocks of {float(report.get('block_size_m', 0)):,.0f} m;"
            f" {int(report.get('removed', 0)):,} footprints touching another split removed"
        )
        if int(report.get("replaced", 0) or 0):
            title += f" ({int(report['replaced']):,} replaced by rows of their strata)"
    ax.set_title(title, fontsize=10)
    _legend(ax)
    return _save(fig, Path(path), overwrite)


def plot_baseline_comparison(
    figures: Mapping[str, Any],
    sample: pd.DataFrame,
    pool: pd.DataFrame,
    baseline: pd.DataFrame,
    path: str | Path,
    baseline_label: str = "random",
    overwrite: bool = False,
) -> Path:
    """Sample against baseline: each quality figure with its better direction, and strata covered.

    Args:
        figures: :func:`csmoe_data.stats.compute_stats` output with ``comparison``
            (:func:`csmoe_data.stats.compare_figures`).
        sample: the sample's rows.
        pool: the eligible pool rows.
        baseline: the baseline's rows.
        path: PNG to write.
        baseline_label: how the baseline is named.
        overwrite: replace an existing ``path``.

    Raises:
        CsmoeDataError: if ``path`` exists and ``overwrite`` is false.
    """
    from csmoe_data.sampling.features import strata_labels

    comparison = figures.get("comparison") or {}
    keys = [
        k for k, c in comparison.items() if c["sample"] is not None and c["baseline"] is not None
    ]
    fig = plt.figure(figsize=(2.1 * max(4, len(keys)), 8.2))
    grid = fig.add_gridspec(2, max(1, len(keys)), height_ratios=[1.0, 1.15], hspace=0.42)
    wins = 0
    for i, key in enumerate(keys):
        c = comparison[key]
        ax = fig.add_subplot(grid[0, i])
        values = [float(c["sample"]), float(c["baseline"])]
        bars = ax.bar(
            [0, 1], values, color=[_SAMPLE_COLOUR, _BASELINE_COLOUR], width=0.65, edgecolor="0.2"
        )
        win = {"sample": 0, "baseline": 1}.get(c["winner"])
        if win is not None:
            bars[win].set_linewidth(2.5)
            bars[win].set_edgecolor("black")
        wins += c["winner"] == "sample"
        for x, v in enumerate(values):
            ax.text(x, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks([0, 1], ["sample", textwrap.fill(baseline_label, 10)], fontsize=8)
        arrow = "higher is better ↑" if c["better"] == "higher" else "lower is better ↓"
        verdict = {"sample": "sample better", "baseline": f"{baseline_label} better"}.get(
            c["winner"], "tie"
        )
        ax.set_title(
            f"{textwrap.fill(key.replace('_', ' '), 16)}\n{arrow}\n{verdict}",
            fontsize=8, color="darkgreen" if c["winner"] == "sample" else "0.2",
        )  # fmt: skip
        ax.set_ylim(0, max(values) * 1.25 if max(values) > 0 else 1)
        ax.tick_params(axis="y", labelsize=7)
        if key.endswith("js_divergence") and c["winner"] == "baseline":
            ax.set_xlabel("diversity costs some\nrepresentativeness", fontsize=7, color="0.35")
    # strata of the pool, largest first, and which sample covers them
    ax = fig.add_subplot(grid[1, :])
    pool_strata = pd.Series(strata_labels(pool)).value_counts()
    covered_s = set(strata_labels(sample).tolist())
    covered_b = set(strata_labels(baseline).tolist())
    ranks = np.arange(len(pool_strata))
    ax.bar(ranks, pool_strata.to_numpy(), width=1.0, color="0.8", label="pool rows per stratum")
    ax.set_yscale("log")
    top = float(pool_strata.max()) if len(pool_strata) else 1.0
    in_s = np.array([s in covered_s for s in pool_strata.index])
    in_b = np.array([s in covered_b for s in pool_strata.index])
    ax.scatter(ranks[in_s], np.full(in_s.sum(), top * 3.0), marker="|", s=60, color=_SAMPLE_COLOUR,
               label=f"covered by the sample ({in_s.sum()} of {len(ranks)})")  # fmt: skip
    ax.scatter(ranks[in_b], np.full(in_b.sum(), top * 6.0), marker="|", s=60, color=_BASELINE_COLOUR,
               label=f"covered by {baseline_label} ({in_b.sum()} of {len(ranks)})")  # fmt: skip
    ax.set_ylim(0.5, top * 12)
    ax.set_xlim(-1, len(ranks))
    ax.set_xlabel("pool strata (climate x dominant land cover), largest first")
    ax.set_ylabel("pool rows (log)")
    ax.legend(loc="lower left", fontsize=8)
    small = max(1, len(ranks) // 2)  # the smaller half of the pool's strata
    ax.set_title(
        f"pool strata covered: sample {in_s.sum()}, {baseline_label} {in_b.sum()} of {len(ranks)};"
        f" of the {len(ranks) - small} smallest: sample {in_s[small:].sum()},"
        f" {baseline_label} {in_b[small:].sum()}",
        fontsize=9,
    )
    fig.suptitle(
        f"sample ({len(sample):,} rows) vs {baseline_label} ({len(baseline):,} rows) from the "
        f"same {len(pool):,} eligible pool rows: sample better on {wins} of {len(keys)} figures",
        fontsize=11,
    )
    return _save(fig, Path(path), overwrite)


def make_plots(
    sample: pd.DataFrame,
    pool: pd.DataFrame | None,
    out_dir: str | Path,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    baseline: pd.DataFrame | None = None,
    baseline_label: str | None = None,
    figures: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write the figures of :data:`FIGURES` (and the optional ones) into ``out_dir``.

    Args:
        sample: the sample's rows.
        pool: the (eligible) pool rows; None: the sample is its own pool.
        out_dir: folder to write into (created).
        metadata: the manifest's metadata (legends, inputs, sampling).
        overwrite: replace existing figures.
        baseline: a baseline sample (e.g. :func:`csmoe_data.stats.random_baseline`).
        baseline_label: how the baseline is named in the figures.
        figures: :func:`csmoe_data.stats.compute_stats` output with ``comparison``, needed for
            :data:`BASELINE_FIGURE`.

    Returns:
        The written paths, :data:`FIGURES` first.

    Raises:
        CsmoeDataError: if a figure exists and ``overwrite`` is false, or the folder cannot be made.
    """
    from csmoe_common.atomic import check_output_path, new_folder

    out_dir = Path(out_dir)
    pool = sample if pool is None else pool
    label = baseline_label or "baseline"
    names = list(FIGURES)
    with_splits = "split" in sample.columns and sample["split"].nunique() > 1
    if with_splits:
        names.append(SPLITS_FIGURE)
    with_baseline = baseline is not None and figures is not None and "comparison" in figures
    if with_baseline:
        names.append(BASELINE_FIGURE)
    paths = {n: out_dir / n for n in names}
    for p in paths.values():  # fail before drawing anything
        check_output_path(p, overwrite)
    with new_folder(out_dir):  # a new folder goes again, with its figures, if one fails
        out = [
            plot_class_distributions(
                sample, pool, paths[FIGURES[0]], metadata, overwrite, baseline, label
            ),
            plot_heatmap(sample, pool, paths[FIGURES[1]], metadata, overwrite, baseline, label),
            plot_world_map(sample, pool, paths[FIGURES[2]], metadata, overwrite),
        ]
        if with_splits:
            out.append(plot_splits_map(sample, pool, paths[SPLITS_FIGURE], metadata, overwrite))
        if with_baseline:
            assert baseline is not None and figures is not None
            out.append(
                plot_baseline_comparison(
                    figures, sample, pool, baseline, paths[BASELINE_FIGURE], label, overwrite
                )
            )
    return out
