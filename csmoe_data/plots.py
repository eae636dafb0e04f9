"""Figures of a sampled manifest against its pool (matplotlib, Agg backend, no basemap).

- ``class_distributions.png``: mean land-cover and climate fractions, sample next to pool;
- ``climate_landcover_heatmap.png``: rows per (climate, dominant land cover) stratum, pool and
  sample side by side (log colour scale; pool strata the sample misses are outlined);
- ``world_map.png``: footprint centres on a lon/lat plate carrée, pool in grey, the sample
  coloured by its majority climate; the land mask comes from the land-cover raster named in
  the metadata when it is readable (Natural Earth is not available offline), else none.

Colours come from the legends in the manifest metadata when present (``legends.<kind>.classes``
with ``color``), otherwise from the built-in Köppen palette for climate and a qualitative
colormap for land cover.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from csmoe_common.atomic import atomic_output  # noqa: E402
from csmoe_data.sampling.features import (  # noqa: E402
    MISSING,
    climate_columns,
    descriptor_matrix,
    landcover_columns,
)

#: figure file names written by :func:`make_plots`
FIGURES = ("class_distributions.png", "climate_landcover_heatmap.png", "world_map.png")
_DPI = 110


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


def _label(col: str, names: Mapping[str, str]) -> str:
    short = col.split("_", 1)[1]
    name = names.get(col)
    if name and col.startswith("lc_"):
        return f"{short} {name[:22]}"
    return short


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
) -> Path:
    """Bar charts of the mean land-cover and climate fractions, sample next to pool.

    Raises:
        CsmoeDataError: if ``path`` exists and ``overwrite`` is false.
    """
    colors, names = legend_info(metadata)
    groups = [
        ("land cover", landcover_columns(pool.columns)),
        ("climate", climate_columns(pool.columns)),
    ]
    groups = [(t, c) for t, c in groups if c]
    fig, axes = plt.subplots(
        len(groups) or 1, 1, figsize=(12, 4.2 * max(1, len(groups))), squeeze=False
    )
    for ax, (title, cols) in zip(axes[:, 0], groups, strict=False):
        p = descriptor_matrix(pool, cols).mean(axis=0) if len(pool) else np.zeros(len(cols))
        s = descriptor_matrix(sample, cols).mean(axis=0) if len(sample) else np.zeros(len(cols))
        x = np.arange(len(cols))
        ax.bar(x - 0.2, p, 0.4, color="0.8", edgecolor="0.4", label=f"pool ({len(pool):,} rows)")
        ax.bar(
            x + 0.2,
            s,
            0.4,
            color=_colour_list(cols, colors),
            edgecolor="0.2",
            label=f"sample ({len(sample):,} rows)",
        )
        ax.set_xticks(x, [_label(c, names) for c in cols], rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("mean fraction")
        ax.set_title(f"{title}: mean class fractions, sample vs pool")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
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


def plot_heatmap(
    sample: pd.DataFrame,
    pool: pd.DataFrame,
    path: str | Path,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Climate x dominant land cover: rows per stratum in the pool and in the sample.

    Raises:
        CsmoeDataError: if ``path`` exists and ``overwrite`` is false.
    """
    pt, st = _strata_table(pool), _strata_table(sample)
    rows = sorted(set(pt.index) | set(st.index))
    cols = sorted(set(pt.columns) | set(st.columns), key=_lc_sort_key)
    pt = pt.reindex(index=rows, columns=cols, fill_value=0)
    st = st.reindex(index=rows, columns=cols, fill_value=0)
    fig, axes = plt.subplots(
        1, 2, figsize=(max(8, 0.45 * len(cols) * 2 + 3), max(4, 0.28 * len(rows) + 2))
    )
    for ax, table, title in ((axes[0], pt, "pool"), (axes[1], st, "sample")):
        data = table.to_numpy(dtype=float)
        masked = np.ma.masked_where(data <= 0, data)
        vmax = max(1.0, float(data.max()) if data.size else 1.0)
        im = ax.imshow(
            masked,
            aspect="auto",
            cmap="viridis",
            norm=LogNorm(vmin=1, vmax=vmax),
            interpolation="nearest",
        )
        ax.set_xticks(range(len(cols)), cols, fontsize=7, rotation=90)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_xlabel("dominant land cover (lc_major)")
        ax.set_ylabel("climate (kg_major)")
        ax.set_title(f"{title}: rows per stratum ({int((data > 0).sum())} strata)")
        ax.set_facecolor("white")
        fig.colorbar(im, ax=ax, shrink=0.8, label="rows (log)")
    # strata of the pool that the sample misses
    missed = np.argwhere((pt.to_numpy() > 0) & (st.to_numpy() == 0))
    for r, c in missed:
        axes[1].add_patch(
            plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", lw=0.8)
        )
    if len(missed):
        axes[1].set_title(
            axes[1].get_title() + f"; red: {len(missed)} pool strata missed", fontsize=9
        )
    fig.tight_layout()
    return _save(fig, Path(path), overwrite)


def _centres(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if "geometry" not in df.columns or len(df) == 0:
        return np.empty(0), np.empty(0)
    from csmoe_data.sampling.geo import footprint_circles

    geoms = np.asarray(df["geometry"].values, dtype=object)
    ok = np.array([g is not None and not g.is_empty for g in geoms], dtype=bool)
    lon, lat, _ = footprint_circles(geoms[ok]) if ok.any() else (np.empty(0), np.empty(0), None)
    return lon, lat


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
    """Footprint centres on a lon/lat map: pool grey, sample coloured by majority climate.

    Raises:
        CsmoeDataError: if ``path`` exists and ``overwrite`` is false.
    """
    colors, _ = legend_info(metadata)
    fig, ax = plt.subplots(figsize=(13, 6.8))
    land = _landcover_background(metadata)
    if land is not None:
        ax.imshow(
            np.where(land, 0.88, 1.0),
            extent=(-180, 180, -90, 90),
            cmap="gray",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
    ax.set_facecolor("#f4f8fb")
    plon, plat = _centres(pool)
    if len(plon) and pool is not sample:
        ax.scatter(plon, plat, s=2, c="0.6", alpha=0.5, linewidths=0, label=f"pool ({len(pool):,})")
    slon, slat = _centres(sample)
    kg = (
        sample["kg_major"]
        .astype(object)
        .where(sample["kg_major"].notna(), MISSING)
        .astype(str)
        .to_numpy()
        if "kg_major" in sample
        else np.full(len(slon), MISSING)
    )
    if len(slon) == len(kg):
        for sym in sorted(set(kg.tolist())):
            m = kg == sym
            ax.scatter(
                slon[m],
                slat[m],
                s=9,
                color=colors.get(f"kg_{sym}", "black"),
                edgecolors="0.15",
                linewidths=0.2,
                label=f"{sym} ({int(m.sum())})",
            )
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.grid(alpha=0.3)
    ax.set_title(f"selected footprints ({len(sample):,}) by majority climate")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles,
            labels,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize=7,
            ncol=1 + len(labels) // 28,
            markerscale=1.5,
        )
    return _save(fig, Path(path), overwrite)


def make_plots(
    sample: pd.DataFrame,
    pool: pd.DataFrame | None,
    out_dir: str | Path,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write the three figures of :data:`FIGURES` into ``out_dir``; returns their paths.

    Raises:
        CsmoeDataError: if a figure exists and ``overwrite`` is false, or the folder cannot be made.
    """
    from csmoe_common.atomic import check_output_path

    out_dir = Path(out_dir)
    pool = sample if pool is None else pool
    paths = [out_dir / f for f in FIGURES]
    for p in paths:  # fail before drawing anything
        check_output_path(p, overwrite)
    return [
        plot_class_distributions(sample, pool, paths[0], metadata, overwrite),
        plot_heatmap(sample, pool, paths[1], metadata, overwrite),
        plot_world_map(sample, pool, paths[2], metadata, overwrite),
    ]
