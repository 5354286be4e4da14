"""The figures of ``python -m autonuma_jax.validate``: locality curves of one cell (every seed, and
their mean) and the runtime ratios of a machine's matrix. numpy + matplotlib only (validate runs
on a bare GPU box), on the shared frame of ``figures.py``."""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from .. import plots
from ..metrics import local_fraction
from .figures import save, style

def locality_curves(results) -> dict:
    """policy -> (t [s], per-seed local fractions [seeds, rows], mean over the seeds still working)
    of one cell; rows of unequal length are padded with NaN (a configuration whose threads are all
    done has no local fraction)."""
    out = {}
    for p in dict.fromkeys(r.config.policy for r in results):
        rs = [r for r in results if r.config.policy == p]
        n = max(len(r.rows["tick"]) for r in rs)
        arr = np.full((len(rs), n), np.nan)
        for i, r in enumerate(rs):
            lf = local_fraction(r.rows)
            arr[i, :len(lf)] = lf
        st = rs[0].static
        t = np.arange(1, n + 1) * st.report_ticks * st.tick_s
        with warnings.catch_warnings():  # all-NaN columns (every thread done) stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(arr, axis=0)
        out[p] = (t, arr, mean)
    return out


def plot_locality(curves: dict, path: str, title: str) -> None:
    """Bold: mean over the seeds still working; thin: each seed."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for j, (p, (t, arr, mean)) in enumerate(curves.items()):
        st = style(j, len(curves), plt)
        for y in arr:
            ax.plot(t, y, color=st["color"], lw=0.6, alpha=0.3)
        ax.plot(t, mean, lw=1.8, label=f"{p} ({len(arr)} seeds)", **st)
    plots.finish_locality_axes(fig, ax, title, ylabel="local fraction of accesses")
    save(fig, path)


def plot_ratios(rows: Sequence[dict], path: str, title: str) -> None:
    plt = plots.pyplot()
    wls = list(dict.fromkeys(r["workload"] for r in rows))
    pols = list(dict.fromkeys(r["policy"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(wls)), 4.5))
    width = 0.8 / max(1, len(pols))
    for j, p in enumerate(pols):
        ys, es = [], []
        for w in wls:
            r = next((r for r in rows if r["workload"] == w and r["policy"] == p), None)
            ref = next((x for x in rows if x["workload"] == w and x["policy"] == "hard_bind"), None)
            y = r["ratio_hard_bind"] if r else float("nan")
            e = (r["runtime_ci95_s"] / ref["runtime_s"]) if r and ref and ref["runtime_s"] else float("nan")
            ys.append(y)
            es.append(0.0 if math.isnan(e) else e)
        x = np.arange(len(wls)) + (j - (len(pols) - 1) / 2) * width
        ax.bar(x, ys, width, yerr=es, label=p, capsize=2)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(np.arange(len(wls)))
    ax.set_xticklabels(wls, fontsize=8)
    ax.set_ylabel("runtime / hard_bind runtime")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save(fig, path)
