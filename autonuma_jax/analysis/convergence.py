"""Convergence over simulated time: mean over seeds per combination with the seed band, and the
nmstat view (per-node memory of each process) of single configurations."""
from __future__ import annotations

import os

from .columns import add_groups
from .figures import legend_below, pyplot, safe, save, style

# (column of timeseries.parquet or derived, axis label, scale); per-interval counts unless noted
CURVES = (("local_fraction", "local fraction of accesses", 1.0),
          ("pages_migrated", "MiB migrated per interval", 4 / 1024),
          ("hinting_faults", "NUMA hinting faults per interval", 1.0),
          ("exchanges", "task exchanges per interval", 1.0),
          ("overhead_us", "kernel CPU s per interval", 1e-6),
          ("progress", "threads done (fraction)", 1.0))
MAX_GROUPS = 40


def with_derived(series):
    """Adds ``overhead_us`` (every ``overhead_*_us`` source summed) when it is missing."""
    if series is not None and "overhead_us" not in series.columns:
        src = [c for c in series.columns if c.startswith("overhead_") and c.endswith("_us")]
        if src:
            series = series.copy()
            series["overhead_us"] = series[src].sum(axis=1)
    return series


def _join_groups(results, series):
    key = ["job_dir", "config_index"] if "job_dir" in series.columns and "job_dir" in results.columns \
        else ["config_index"]
    return with_derived(series).merge(results[key + ["group"]], on=key, how="inner"), key


def convergence_plot(results, series, path, max_groups: int = MAX_GROUPS, title: str | None = None) -> str:
    """Mean over seeds per combination with the min-max band, against simulated time. Every
    combination is drawn up to ``max_groups`` (distinct colour and line style each); the title says
    how many were left out beyond that."""
    plt = pyplot()
    df = results if "group" in results.columns else add_groups(results)
    ts, key = _join_groups(df, series)
    groups = list(dict.fromkeys(df["group"]))
    shown = groups[:max_groups]
    curves = [c for c in CURVES if c[0] in ts.columns]
    nrow = (len(curves) + 1) // 2
    fig, axes = plt.subplots(nrow, 2, figsize=(12, 3.3 * nrow + 1.0), sharex=True, squeeze=False)
    for (col, ylabel, scale), ax in zip(curves, axes.flat):
        for gi, g in enumerate(shown):
            sub = ts[ts["group"] == g]
            agg = sub.groupby("sim_time_s")[col].agg(["mean", "min", "max"])
            x = agg.index.to_numpy(float)
            st = style(gi, len(shown), plt)
            ax.plot(x, agg["mean"] * scale, label=g, lw=1.3, **st)
            if len(sub[key].drop_duplicates()) > 1:  # several seeds (or jobs) in this combination
                ax.fill_between(x, agg["min"] * scale, agg["max"] * scale, color=st["color"], alpha=0.15, lw=0)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        if col in ("local_fraction", "progress"):
            ax.set_ylim(-0.02, 1.02)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("simulated time [s]")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    extra = (f"; {len(groups) - len(shown)} of {len(groups)} combinations not shown" if len(groups) > len(shown)
             else f"; {len(groups)} combination(s)")
    bottom = legend_below(fig, handles, labels)
    fig.suptitle(title or f"convergence: mean over seeds, band = min..max{extra}", fontsize=10)
    fig.tight_layout(rect=(0, bottom, 1, 0.97))
    return save(fig, path)


def nmstat_plot(series_one, path, title: str = "") -> str:
    """Per-node memory of each process over time for one configuration (the nmstat view)."""
    plt = pyplot()
    cols = [c for c in series_one.columns if c.startswith("mm") and c.endswith(".pages")
            and series_one[c].notna().any()]
    t = series_one["sim_time_s"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for c in cols:
        mm, node = c.split(".")[0][2:], c.split(".")[1][4:]
        ax.plot(t, series_one[c].to_numpy(float) * 4 / 1024, ("-", "--", ":", "-.")[int(mm) % 4],
                label=f"process {mm} node {node}")
    ax.set_xlabel("simulated time [s]")
    ax.set_ylabel("memory [MiB]")
    ax.set_title(title or "per-node memory of each process", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def nmstat_plots(results, series, out_dir, max_plots: int = 4) -> list[str]:
    """One nmstat plot for the first seed of the first ``max_plots`` combinations."""
    df = results if "group" in results.columns else add_groups(results)
    first = df.drop_duplicates("group").head(max_plots)
    paths = []
    for _, row in first.iterrows():
        sel = series["config_index"] == row["config_index"]
        if "job_dir" in series.columns and "job_dir" in row.index:
            sel &= series["job_dir"] == row["job_dir"]
        sub = series[sel].sort_values("sim_time_s")
        if sub.empty:
            continue
        name = safe(f"{row.get('job_dir', '')}_{row['config_index']}".strip("_."))
        p = os.path.join(out_dir, f"nmstat_{name}.png")
        nmstat_plot(sub, p, title=f"per-node memory: {row.get('label', '')} [{row['group']}]")
        paths.append(p)
    return paths

