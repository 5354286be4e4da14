"""Metrics against swept knobs: a line per cell and policy with the 95 % CI over seeds when one
knob is swept; heatmaps over every pair when two or more are.

Heatmap values: ``runtime_s`` as a ratio to the cell's baseline (tables.add_runtime_ratio); every
other metric (cost counters, CPU seconds, locality, time to converge) in absolute units, because
a baseline's cost is often zero (hard_bind migrates nothing) and a ratio to it means nothing.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np

from . import stats
from .columns import RATIO_METRICS, facets as facet_columns, fmt, swept_knobs, unit
from .figures import grid, legend_below, pyplot, safe, save, style
from .tables import add_runtime_ratio

KNOB_METRICS = ("runtime_s", "converge_s", "local_fraction_final", "overhead_cpu_s", "pages_migrated",
                "hinting_faults")


def _log_axis(values) -> bool:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    return len(v) > 1 and (v > 0).all() and v.max() / v.min() >= 8


def one_knob_plot(df, knob: str, path: str, metrics=KNOB_METRICS, level: float = 0.95) -> str | None:
    """One panel per metric: mean over seeds against ``knob``, error bars = the ``level`` CI of the
    mean (Student's t over seeds), one line per machine / workload / policy that varies."""
    plt = pyplot()
    metrics = [m for m in metrics if m in df.columns and np.isfinite(df[m].astype(float)).any()]
    if not metrics:
        return None
    lines = facet_columns(df)
    groups = list(df.groupby(lines, sort=False)) if lines else [((), df)]
    nrow, ncol = grid(len(metrics))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.4 * nrow + 0.8), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        for gi, (key, sub) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            xs, ys, es = [], [], []
            for x, cell in sub.groupby(knob, sort=True):
                mean, half, _ = stats.mean_ci(cell[m].astype(float), level)
                xs.append(float(x))
                ys.append(mean)
                es.append(0.0 if math.isnan(half) else half)
            st = style(gi, len(groups), plt)
            label = ", ".join(f"{c}={k}" for c, k in zip(lines, key)) or "all"
            ax.errorbar(xs, ys, yerr=es, marker="o", ms=3.5, capsize=3, lw=1.2, label=label, **st)
        if _log_axis(df[knob].astype(float)):
            ax.set_xscale("log", base=2)
        values = sorted(set(df[knob].astype(float)))
        if len(values) <= 10:  # the swept values themselves, as the user wrote them
            ax.set_xticks(values, [fmt(v) for v in values], fontsize=7)
            ax.minorticks_off()
        ax.set_xlabel(knob, fontsize=8)
        ax.set_ylabel(unit(m), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    bottom = legend_below(fig, handles, labels) if len(groups) > 1 else 0.0
    n_seeds = int(df.groupby([knob] + lines, sort=False).size().min())
    fig.suptitle(f"metrics against {knob}: mean over seeds, bars = {level:.0%} CI (>= {n_seeds} seeds per point)",
                 fontsize=10)
    fig.tight_layout(rect=(0, bottom, 1, 0.96))
    return save(fig, path)


def one_knob_plots(df, out_dir: str, metrics=KNOB_METRICS) -> list[str]:
    """``knob_<knob>.png`` when exactly one numeric knob (or sim/workload setting) is swept."""
    knobs = swept_knobs(df)
    if len(knobs) != 1:
        return []
    p = one_knob_plot(df, knobs[0], os.path.join(out_dir, f"knob_{safe(knobs[0])}.png"), metrics)
    return [p] if p else []


def heatmaps(results, out_dir, metric: str = "runtime_s", baseline: str = "auto", max_pairs: int = 6) -> list[str]:
    """Heatmaps of ``metric`` over every pair of swept numeric knobs (other swept numbers
    averaged), one panel per machine / workload / policy: ``runtime_s`` as a ratio to a baseline,
    any other metric in its own unit."""
    plt = pyplot()
    df = results
    numeric = swept_knobs(df)
    if len(numeric) < 2:
        return []
    use_ratio = metric in RATIO_METRICS
    if use_ratio and not np.isfinite(df[metric].to_numpy(float)).any():
        fallback = "local_fraction_final"
        print(f"report: every {metric} is NaN (runs did not finish); heatmaps show {fallback} instead",
              file=sys.stderr)
        metric, use_ratio = fallback, False
    if use_ratio:
        df = add_runtime_ratio(df, metric, baseline)
        value, vlabel = f"{metric}_ratio", f"{metric} / baseline"
    else:
        value, vlabel = metric, unit(metric)
    fac = facet_columns(df)
    if use_ratio and "policy" in fac:
        # a baseline policy is a reference, not a panel of its own, when knobs are swept
        df = df[df["policy"] != "hard_bind"] if (df["policy"] != "hard_bind").any() else df
        fac = facet_columns(df)
    low_is_good = metric != "local_fraction_final"
    paths = []
    for i in range(len(numeric)):
        for j in range(i + 1, len(numeric)):
            if len(paths) >= max_pairs:
                return paths
            x, y = numeric[i], numeric[j]
            paths.append(_heatmap(plt, df, x, y, value, vlabel, fac, use_ratio, low_is_good,
                                  os.path.join(out_dir, f"heatmap_{value}_{safe(x)}__{safe(y)}.png")))
    return paths


def _heatmap(plt, df, x, y, value, vlabel, fac, use_ratio, low_is_good, path) -> str:
    panels = list(df.groupby(fac, sort=False)) if fac else [((), df)]
    nrow, ncol = grid(len(panels))
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.2 * nrow), squeeze=False)
    cmap = "viridis_r" if low_is_good else "viridis"  # dark = bad either way
    for ax, (key, sub) in zip(axes.flat, panels):
        piv = sub.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
        arr = piv.to_numpy(float)
        im = ax.imshow(arr, origin="lower", aspect="auto", cmap=cmap)
        ax.set_xticks(range(len(piv.columns)), [fmt(v) for v in piv.columns], rotation=45, fontsize=7)
        ax.set_yticks(range(len(piv.index)), [fmt(v) for v in piv.index], fontsize=7)
        ax.set_xlabel(x, fontsize=8)
        ax.set_ylabel(y, fontsize=8)
        lo, hi = (np.nanmin(arr), np.nanmax(arr)) if np.isfinite(arr).any() else (0.0, 1.0)
        for (i, j), v in np.ndenumerate(arr):
            frac = (v - lo) / (hi - lo) if v == v and hi > lo else 0.0
            dark = frac > 0.5 if low_is_good else frac < 0.5
            ax.text(j, i, "nan" if v != v else f"{v:.3g}", ha="center", va="center", fontsize=7,
                    color="w" if dark else "k")
        key = key if isinstance(key, tuple) else (key,)
        base = ""
        if use_ratio and "ratio_baseline" in sub.columns:
            base = f" (baseline: {', '.join(sorted(set(sub['ratio_baseline']) - {''}))})"
        ax.set_title(", ".join(f"{f}={k}" for f, k in zip(fac, key)) + base, fontsize=8)
        fig.colorbar(im, ax=ax, label=vlabel)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{vlabel}\n(mean over seeds and other swept parameters)", fontsize=9)
    fig.tight_layout()
    return save(fig, path)



