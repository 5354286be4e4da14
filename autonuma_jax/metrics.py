"""Summaries of a run and the one definition of "converged" used everywhere.

- ``local_fraction``: KiB written to the thread's own node over all KiB written, per row.
- ``final locality``: the byte-weighted local fraction over the last 10 % of the rows in which
  work was done (at least one row).
- ``converge_s``: the end time of the earliest row from which the local fraction of every later
  working row stays within ``CONVERGED_TOLERANCE`` (absolute) of the final locality. A run whose
  locality never settles converges at its last working row.
- ``runtime_s``: when the last thread finished its work (NaN if the run ended first).
"""
from __future__ import annotations

import math

import numpy as np

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


def converge_time(rows: dict, report_s: float, tol: float = CONVERGED_TOLERANCE) -> float:
    loc = local_fraction(rows)
    work = np.nonzero(~np.isnan(loc))[0]
    if len(work) == 0:
        return float("nan")
    fin = final_locality(rows)
    bad = np.abs(loc[work] - fin) > tol
    if not bad.any():
        return float((work[0] + 1) * report_s)
    last_bad = np.nonzero(bad)[0][-1]
    i = work[min(last_bad + 1, len(work) - 1)]
    return float((i + 1) * report_s)


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
        pages_migrated=int(res.final["pages_migrated"]), full_scans=int(res.final["full_scans"]),
        pages_scanned=int(res.final["pages_scanned"]), hinting_faults=int(tot["hinting_faults"]),
        exchanges=int(tot["exchanges"]), noise_moves=int(tot["noise_moves"]), lb_moves=int(tot["lb_moves"]),
        queue_overflows=int(tot["queue_overflows"]), capped_ticks=int(tot["capped_ticks"]),
        oom_pages=int(tot["oom_pages"]), overhead_cpu_s=float(ov.sum()),
    )
    for name, v in zip(OVERHEAD_NAMES, ov):
        out[f"overhead_{name}_s"] = float(v)
    return out
