"""Summaries of a run and the one definition of "converged" used everywhere.

- ``local_fraction``: KiB written to the thread's own node over all KiB written, per row.
- ``final locality``: the byte-weighted local fraction over the last 10 % of the rows in which
  work was done (at least one row).
- ``steady rows``: the working rows before the end-game, i.e. those at whose end no thread had
  finished yet (``tasks_done == 0``). Once threads finish, CPUs fall idle and the load balancer
  moves the remaining threads wherever there is room, so the last rows measure the end-game, not
  the convergence (numa01 on 2node_24cpu: locality 1.00 for a minute, then 0.70 in the last row).
  A run with fewer than ``MIN_STEADY_ROWS`` such rows (a thread finished early) uses every working
  row. Rows of an unfinished run are all steady.
- ``converge_s``: the end time of the earliest steady row from which the local fraction of every
  later steady row stays within ``CONVERGED_TOLERANCE`` (absolute) of the steady final locality
  (byte-weighted, over the last 10 % of the steady rows). A run whose locality never settles
  gets its last steady row (read ``converged`` before trusting it).
- ``converged``: the run really converged, i.e. both
  (a) its locality settled for longer than the window the final locality is measured over (the
      last 10 % of the steady rows, at least one row): a run that only "settles" inside that
      window, or at its last row, has not settled at all;
  (b) it settled *towards* its memory: that final locality is above ``1 / nodes``, what tasks
      see when their pages are spread evenly over the nodes. ``inverse_bind`` settles at once, at
      locality 0, which is stable but is no convergence of tasks and memory.
  A choice of this project (the kernel postings define no such flag); ``perf bench numa``'s own
  criterion, per-thread memory on the thread's node, is stricter and per thread.
- ``local_fraction_final`` (``final_locality``) stays over the last 10 % of *all* working rows,
  end-game included: it is what the run ended with.
- ``runtime_s``: when the last thread finished its work (NaN if the run ended first).
"""
from __future__ import annotations

import math

import numpy as np

from .vmstat import kernel_counters
from .workloads.perf_bench_numa import PerfBench
from .workloads.perf_figures import perf_figures

CONVERGED_TOLERANCE = 0.05
OVERHEAD_NAMES = ("scan", "fault", "migrate", "exchange", "collapse")


def local_fraction(rows: dict) -> np.ndarray:
    tot = rows["total_kib"].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, rows["local_kib"] / tot, np.nan)


def final_locality(rows: dict) -> float:
    tot = rows["total_kib"].astype(np.float64)
    work = np.nonzero(tot > 0)[0]
    if len(work) == 0:
        return float("nan")
    k = max(1, int(math.ceil(0.1 * len(work))))
    last = work[-k:]
    return float(rows["local_kib"][last].sum() / tot[last].sum())


MIN_STEADY_ROWS = 5


def steady_rows(rows: dict) -> np.ndarray:
    """Indices of the working rows before the end-game (module doc)."""
    loc = local_fraction(rows)
    work = np.nonzero(~np.isnan(loc))[0]
    done = rows.get("tasks_done")
    if done is None:
        return work
    steady = work[np.asarray(done)[work] == 0]
    return steady if len(steady) >= MIN_STEADY_ROWS else work


def _settled(rows: dict, tol: float):
    """(steady rows, position in them of the first settled row, their final locality)."""
    loc = local_fraction(rows)
    st = steady_rows(rows)
    if len(st) == 0:
        return st, 0, float("nan")
    k = max(1, int(math.ceil(0.1 * len(st))))
    last = st[-k:]
    fin = float(rows["local_kib"][last].sum() / rows["total_kib"][last].astype(np.float64).sum())
    bad = np.nonzero(np.abs(loc[st] - fin) > tol)[0]
    first = 0 if len(bad) == 0 else min(int(bad[-1]) + 1, len(st) - 1)
    return st, first, fin


def converge_time(rows: dict, report_s: float, tol: float = CONVERGED_TOLERANCE) -> float:
    st, first, _ = _settled(rows, tol)
    if len(st) == 0:
        return float("nan")
    return float((st[first] + 1) * report_s)


def converged(rows: dict, n_nodes: int, tol: float = CONVERGED_TOLERANCE) -> bool:
    """Whether the locality settled for longer than the final window, above 1 / ``n_nodes`` (module doc)."""
    st, first, fin = _settled(rows, tol)
    if len(st) == 0:
        return False
    k = max(1, int(math.ceil(0.1 * len(st))))
    loc = local_fraction(rows)
    settled_since = first if abs(loc[st[first]] - fin) <= tol else len(st)  # never settled: none
    return bool(len(st) - settled_since > k and fin > 1.0 / max(1, n_nodes))


def summarize(res) -> dict:
    st = res.static
    report_s = st.report_ticks * st.tick_s
    ft = res.final["finish_tick"]
    finished = bool(np.all(ft >= 0))
    runtime = float(ft.max() * st.tick_s) if finished else float("nan")
    tot = {k[4:]: v for k, v in res.final.items() if k.startswith("tot_")}
    ov = np.asarray(tot["overhead_us"], np.float64) * 1e-6
    out = dict(
        label=res.config.label(), policy=res.config.policy, seed=res.config.seed, finished=finished,
        runtime_s=runtime, sim_s=float(res.final["tick"] * st.tick_s),
        local_fraction_final=final_locality(res.rows), converge_s=converge_time(res.rows, report_s),
        converged=converged(res.rows, st.n_nodes),
        pages_migrated=int(res.final["pages_migrated"]), full_scans=int(res.final["full_scans"]),
        pages_scanned=int(res.final["pages_scanned"]), hinting_faults=int(tot["hinting_faults"]),
        exchanges=int(tot["exchanges"]), noise_moves=int(tot["noise_moves"]), lb_moves=int(tot["lb_moves"]),
        queue_overflows=int(tot["queue_overflows"]), capped_ticks=int(tot["capped_ticks"]),
        oom_pages=int(tot["oom_pages"]), overhead_cpu_s=float(ov.sum()),
    )
    for name, v in zip(OVERHEAD_NAMES, ov):
        out[f"overhead_{name}_s"] = float(v)
    # the kernel's own counter names (/proc/vmstat, AutoNUMA24's sysfs) and mmtests' figures;
    # NaN where the policy's kernel had no such counter
    out.update(kernel_counters(tot, res.config.policy, out["full_scans"], out["pages_scanned"], out["pages_migrated"]))
    wl = res.config.resolved_workload()
    if isinstance(wl.bench, PerfBench):  # what perf bench numa prints
        out.update(perf_figures(res.rows, st.tick_s, ft, wl.bench, np.array([t.mm for t in wl.threads])))
    return out
