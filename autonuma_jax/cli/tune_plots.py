"""The figures of a tuning job (matplotlib, Agg): one row of panels per cell.

- ``search.png``: each search run's objective against the simulated configuration-seconds the
  search had spent when it finished, coloured by rung, with the best candidate mean per rung;
- ``knobs.png``: each search run's objective against each searched knob (log axis for log
  dimensions); the defaults are the black stars, the cell's chosen best the red ring;
- ``front.png``: runtime against kernel CPU time: the last rung's candidates (means over their
  seeds) and the evaluated knob sets (means over the fresh seeds), with their Pareto front.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from ..analysis.figures import pyplot, save
from ..analysis.tables import pareto_front


def _cells(df, meta) -> list[str]:
    return [c for c in meta.get("cells", []) if (df["cell"] == c).any()]


def search_plot(df, meta, path: str) -> str | None:
    cells = _cells(df, meta)
    if not cells:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(cells), 1, figsize=(7.0, 3.4 * len(cells)), squeeze=False)
    obj = meta.get("objective", "runtime")
    for ax, cell in zip(axes[:, 0], cells):
        sub = df[(df["stage"] == "search") & (df["cell"] == cell)]
        cost = 0.0
        for r, g in sub.groupby("rung", sort=True):
            spent = cost + np.cumsum(g["sim_s"].to_numpy(float))
            ax.scatter(spent, g["objective"], s=14, alpha=0.7, label=f"rung {int(r)} ({g['budget_s'].iloc[0]:g} s)")
            best = g.groupby("candidate")["objective"].mean().min()
            ax.hlines(best, cost, spent[-1], colors="k", lw=1)
            cost = float(spent[-1])
        ax.set_title(cell, fontsize=9)
        ax.set_xlabel("simulated configuration-seconds spent by the search")
        ax.set_ylabel(obj)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def knobs_plot(df, meta, path: str) -> str | None:
    cells = _cells(df, meta)
    dims = meta.get("dims", [])
    if not cells or not dims:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(cells), len(dims), figsize=(3.4 * len(dims), 3.0 * len(cells)), squeeze=False)
    for i, cell in enumerate(cells):
        sub = df[(df["stage"] == "search") & (df["cell"] == cell)]
        ev = df[(df["stage"] == "evaluate") & (df["cell"] == cell) & (df["knobs_from"] == cell)]
        for j, d in enumerate(dims):
            ax = axes[i, j]
            for r, g in sub.groupby("rung", sort=True):
                ax.scatter(g[d["path"]], g["objective"], s=12, alpha=0.7, label=f"rung {int(r)}")
            dflt = sub[sub["is_default"] == True]  # noqa: E712  (a pandas mask)
            ax.scatter(dflt[d["path"]], dflt["objective"], marker="*", s=70, c="k", label="defaults", zorder=3)
            if len(ev):
                ax.scatter(ev[d["path"]].iloc[:1], [sub[sub[d["path"]] == ev[d["path"]].iloc[0]]["objective"].min()],
                           s=90, facecolors="none", edgecolors="r", label="best", zorder=4)
            if d.get("log"):
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
            ax.set_xlabel(d["path"].rsplit(".", 1)[-1], fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{cell}\n{meta.get('objective', 'runtime')}", fontsize=8)
            if i == 0 and j == 0:
                ax.legend(fontsize=6)
    fig.tight_layout()
    return save(fig, path)


def front_plot(df, meta, path: str) -> str | None:
    cells = _cells(df, meta)
    if not cells:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(cells), 1, figsize=(6.4, 3.8 * len(cells)), squeeze=False)
    last = max((int(r) for r in df.loc[df["stage"] == "search", "rung"].dropna()), default=0)
    for ax, cell in zip(axes[:, 0], cells):
        s = df[(df["stage"] == "search") & (df["cell"] == cell) & (df["rung"] == last)]
        pts = s.groupby("candidate")[["runtime_proj_s", "overhead_proj_s"]].mean()
        ax.scatter(pts["overhead_proj_s"], pts["runtime_proj_s"], s=16, alpha=0.6, label=f"rung {last} candidates")
        e = df[(df["stage"] == "evaluate") & (df["cell"] == cell)]
        dims = [d["path"] for d in meta.get("dims", [])]
        rows = []  # one point per distinct knob set, named after every cell that chose it
        for _, g in e.groupby(dims, sort=False):
            names = list(dict.fromkeys(g["knobs_from"]))
            one = g[g["knobs_from"] == names[0]]
            rows.append((" = ".join(names), one["overhead_cpu_s"].mean(), one["runtime_s"].mean(), "defaults" in names))
        ev = pd.DataFrame(rows, columns=["name", "overhead_cpu_s", "runtime_s", "default"])
        for _, row in ev.iterrows():
            ax.scatter(row["overhead_cpu_s"], row["runtime_s"], marker="*" if row["default"] else "D", s=60,
                       label=f"{row['name']} (fresh seeds)"[:90])
        x = np.concatenate([pts["overhead_proj_s"].to_numpy(float), ev["overhead_cpu_s"].to_numpy(float)])
        y = np.concatenate([pts["runtime_proj_s"].to_numpy(float), ev["runtime_s"].to_numpy(float)])
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            front = pareto_front(x[ok], y[ok])
            order = np.argsort(x[ok][front])
            ax.plot(x[ok][front][order], y[ok][front][order], "-", color="C3", lw=1, label="Pareto front")
        ax.set_title(cell, fontsize=9)
        ax.set_xlabel("kernel CPU time of the policy, CPU s")
        ax.set_ylabel("runtime, s")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save(fig, path)


def plot_all(df, meta, out_dir: str) -> list[str]:
    import os
    os.makedirs(out_dir, exist_ok=True)
    out = []
    for name, fn in (("search", search_plot), ("knobs", knobs_plot), ("front", front_plot)):
        p = fn(df, meta, os.path.join(out_dir, f"{name}.png"))
        if p:
            out.append(p)
    return out
