"""Plots of results (matplotlib, imported lazily so the core never needs it).

- ``nmstat``: per-node memory of each process over time, the view the author plotted with
  ``nmstat`` + ``plot.sh`` (spec §9);
- ``locality``: local fraction of accesses over time, one curve per run.
"""
from __future__ import annotations

import numpy as np

from .metrics import local_fraction


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (imported lazily: the core does not need it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def finish_locality_axes(fig, ax, title: str, ylabel: str = "local fraction") -> None:
    """The common frame of every local-fraction-over-time plot."""
    ax.set_xlabel("simulated time [s]")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()


def nmstat(result, path, title: str | None = None):
    plt = pyplot()
    rows = result.rows
    st = result.static
    t = np.arange(1, len(rows["tick"]) + 1) * st.report_ticks * st.tick_s
    mib = rows["mm_node_pages"] * 4 / 1024.0  # [R, M, N]
    M, N = mib.shape[1], mib.shape[2]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    styles = ["-", "--", ":", "-."]
    for m in range(M):
        for n in range(N):
            ax.plot(t, mib[:, m, n], styles[m % 4], label=f"process {m} node {n}")
    ft = result.final["finish_tick"]
    if np.all(ft >= 0):
        ax.axvline(ft.max() * st.tick_s, color="grey", lw=0.8)
    ax.set_xlabel("simulated time [s]")
    ax.set_ylabel("memory [MiB]")
    ax.set_title(title or f"per-node memory of each process: {result.config.label()}")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def locality(results, path, title: str = "local fraction of accesses"):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        st = r.static
        t = np.arange(1, len(r.rows["tick"]) + 1) * st.report_ticks * st.tick_s
        ax.plot(t, local_fraction(r.rows), label=r.config.label())
    finish_locality_axes(fig, ax, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
