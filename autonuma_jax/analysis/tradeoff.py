"""Runtime against kernel CPU overhead, the trade-off a tuner chooses on: one point per
combination (mean over seeds, 95 % CI bars on both axes), the Pareto front marked (no other
combination of the same cell is both faster and cheaper)."""
from __future__ import annotations

import math

import numpy as np

from . import stats
from .columns import CELL_COLUMNS, add_groups, varying
from .figures import grid, pyplot, save
from .tables import pareto_front

X, Y = "overhead_cpu_s", "runtime_s"


def points(results, level: float = 0.95):
    """Per cell and combination: means and CI half-widths of runtime and CPU overhead, and
    ``pareto`` (on the front of its cell)."""
    import pandas as pd
    df = results if "group" in results.columns else add_groups(results)
    cells = varying(df, [c for c in CELL_COLUMNS if c in df.columns])
    rows = []
    for key, sub in df.groupby(cells + ["group"], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        r = dict(zip(cells + ["group"], key))
        for col, name in ((X, "x"), (Y, "y")):
            m, h, _ = stats.mean_ci(sub[col].astype(float), level)
            r[name], r[f"{name}_ci"] = m, h
        rows.append(r)
    pts = pd.DataFrame(rows)
    pts["pareto"] = False
    for _, idx in (pts.groupby(cells[0] if len(cells) == 1 else cells, sort=False).groups.items() if cells else [(None, pts.index)]):
        sub = pts.loc[idx]
        pts.loc[idx, "pareto"] = pareto_front(sub["x"], sub["y"])
    return pts, cells


def tradeoff_plot(results, path: str, max_labels: int = 6) -> str | None:
    """``tradeoff.png``: one panel per machine / workload that varies."""
    if X not in results.columns or Y not in results.columns:
        return None
    if not np.isfinite(results[Y].astype(float)).any():
        return None
    plt = pyplot()
    pts, cells = points(results)
    panels = list(pts.groupby(cells, sort=False)) if cells else [((), pts)]
    nrow, ncol = grid(len(panels), 2)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.4 * ncol, 4.8 * nrow), squeeze=False)
    for ax, (key, sub) in zip(axes.flat, panels):
        key = key if isinstance(key, tuple) else (key,)
        err = dict(xerr=np.nan_to_num(sub["x_ci"].to_numpy(float)), yerr=np.nan_to_num(sub["y_ci"].to_numpy(float)))
        ax.errorbar(sub["x"], sub["y"], fmt="o", ms=4, color="C0", alpha=0.7, capsize=2, label="combination", **err)
        front = sub[sub["pareto"]].sort_values("x")
        ax.plot(front["x"], front["y"], "-o", color="C3", ms=6, lw=1.2, mfc="none", label="Pareto front")
        show = sub if len(sub) <= max_labels else front  # many points: only the front is named
        for k, (_, r) in enumerate(show.iterrows()):
            if math.isfinite(r["x"]) and math.isfinite(r["y"]):
                ax.annotate(str(r["group"])[:48], (r["x"], r["y"]), fontsize=6, xytext=(4, 4 - 9 * (k % 3)),
                            textcoords="offset points")
        # both are non-negative: a wide CI of two seeds must not stretch the axes below zero
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("kernel CPU overhead [CPU s]", fontsize=8)
        ax.set_ylabel("runtime [s]", fontsize=8)
        ax.set_title(", ".join(f"{c}={k}" for c, k in zip(cells, key)) or "runtime vs CPU overhead", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("runtime against kernel CPU overhead: mean over seeds, bars = 95 % CI, front = not beaten on both",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, path)
