"""What the columns of a results table mean: identity (what was simulated) vs metrics (what came
out), the unit and direction of each metric, and one label per parameter combination.

A *combination* is a row's identity without its seed: the seeds of one combination are the
samples every mean and confidence interval is taken over. Its label names only the identity
columns that vary in the table at hand (``pages_to_scan=8192,policy=autonuma24``), so labels stay
short; the same rows in a different table may get a different, equally unique, label.
"""
from __future__ import annotations

import numpy as np

# identity (what was simulated) vs metrics (what came out)
NAME_COLUMNS = ("machine", "workload", "variant", "policy")
# a configuration's cell: the numbers of different cells are never pooled
CELL_COLUMNS = ("machine", "workload")
NON_METRIC = {"config_index", "combo", "combo_label", "label", "seed", "n_tasks", "reports", "job_dir", "group",
              "ratio_baseline"}

# metric -> (unit, better, what it is). better: "lower", "higher" or None (no direction).
METRICS = {
    "runtime_s": ("s", "lower", "simulated time until the last thread finished its work (NaN: not finished)"),
    "converge_s": ("s", "lower", "when the local fraction settled within 0.05 of its steady final value"),
    "converged": ("", "higher", "the locality really settled, above 1/nodes (metrics.py)"),
    "local_fraction_final": ("", "higher", "local fraction of written KiB over the last 10 % of working rows"),
    "finished": ("", "higher", "every thread finished within sim.duration_s"),
    "sim_s": ("s", None, "simulated time the run lasted"),
    "pages_migrated": ("4 KiB pages", None, "pages moved by the policy's migration"),
    "pages_scanned": ("4 KiB pages", None, "pages the scanner visited (pte_numa armed)"),
    "full_scans": ("passes", None, "complete passes of the scanner over the address spaces"),
    "hinting_faults": ("faults", None, "NUMA hinting faults taken"),
    "exchanges": ("exchanges", None, "task exchanges / NUMA moves of the scheduler side"),
    "noise_moves": ("moves", None, "threads moved by other activity on the machine (sched/fair.py noise_move)"),
    "lb_moves": ("moves", None, "task moves of CFS load balancing"),
    "queue_overflows": ("page units", None, "migration queueings refused by a full queue"),
    "capped_ticks": ("thread-ticks", None, "a thread reached the engine's units-per-tick capacity (its rate was cut)"),
    "oom_pages": ("pages", None, "allocations that found no room on any node"),
    "overhead_cpu_s": ("CPU s", "lower", "kernel CPU time of the policy, all sources"),
}
# the kernel's counters under their own names (vmstat.py; NaN where the policy's kernel had none)
METRICS.update({
    "numa_pte_updates": ("4 KiB pages", None, "/proc/vmstat: pages made NUMA-protecting by the scanner (a huge pmd: 512)"),
    "numa_huge_pte_updates": ("pmds", None, "/proc/vmstat: huge pmds made NUMA-protecting"),
    "numa_hint_faults": ("faults", None, "/proc/vmstat: NUMA hinting faults"),
    "numa_hint_faults_local": ("faults", None, "/proc/vmstat: hinting faults on a page already on the CPU's node"),
    "numa_pages_migrated": ("4 KiB pages", None, "/proc/vmstat: pages migrated by NUMA balancing"),
    "numa_hit": ("4 KiB pages", None, "/proc/vmstat: pages allocated on the preferred node"),
    "numa_miss": ("4 KiB pages", None, "/proc/vmstat: pages allocated elsewhere than the preferred node"),
    "numa_foreign": ("4 KiB pages", None, "/proc/vmstat: pages meant for a node and allocated elsewhere (= numa_miss)"),
    "numa_interleave": ("4 KiB pages", None, "/proc/vmstat: interleave-policy allocations (none here)"),
    "numa_local": ("4 KiB pages", None, "/proc/vmstat: pages allocated on the allocating CPU's node"),
    "numa_other": ("4 KiB pages", None, "/proc/vmstat: pages allocated on another node than the CPU's"),
    "autonuma.knuma_scand.full_scans": ("passes", None, "AutoNUMA24 sysfs: knuma_scand's complete passes"),
    "autonuma.knuma_scand.pages_scanned": ("4 KiB pages", None, "AutoNUMA24 sysfs: pages knuma_scand scanned"),
    "autonuma.knuma_migrated.pages_migrated": ("4 KiB pages", None, "AutoNUMA24 sysfs: pages knuma_migrated moved"),
    "mmtests_hint_local_pct": ("%", "higher", "mmtests 'NUMA hint local percent': local hinting faults / all"),
    "mmtests_pte_updates_base": ("4 KiB pages", None, "mmtests 'NUMA PTE updates' (since 2019): numa_pte_updates - 512 x huge pmds"),
    "mmtests_autonuma_cost": ("", "lower", "mmtests 'AutoNUMA cost' (vmstat.autonuma_cost)"),
})
# what perf bench numa prints (workloads/perf_figures.py; perf_bench_numa workloads only)
METRICS.update({
    "perf_convergence_latency_s": ("s", "lower", "perf: secs latency to NUMA-converge (NaN: did not converge)"),
    "perf_converged": ("", "higher", "perf: every process had all its threads on one node at a check"),
    "perf_runtime_max_s": ("s", None, "perf: secs slowest (max) thread-runtime"),
    "perf_runtime_min_s": ("s", None, "perf: secs fastest (min) thread-runtime"),
    "perf_runtime_avg_s": ("s", None, "perf: secs average thread-runtime"),
    "perf_spread_runtime_pct": ("%", "lower", "perf: % difference between max/avg runtime"),
    "perf_data_thread_gb": ("GB", None, "perf: GB data processed, per thread"),
    "perf_data_total_gb": ("GB", None, "perf: GB data processed, total"),
    "perf_runtime_byte_thread_ns": ("ns", "lower", "perf: nsecs/byte/thread runtime"),
    "perf_thread_speed_gbs": ("GB/s", "higher", "perf: GB/sec/thread speed"),
    "perf_total_speed_gbs": ("GB/s", "higher", "perf: GB/sec total speed"),
    "perf_cut_short": ("", None, "the simulation ended before perf's measurement window closed"),
})
for _src in ("scan", "fault", "migrate", "exchange", "collapse"):
    METRICS[f"overhead_{_src}_s"] = ("CPU s", "lower", f"kernel CPU time of the policy: {_src}")
# Metrics whose ratio to a baseline run is meaningful (a time of the same work); cost counters of a
# baseline are often zero (hard_bind migrates nothing: a ratio of "7666x"), so they stay absolute.
RATIO_METRICS = ("runtime_s",)


def unit(metric: str) -> str:
    u = METRICS.get(metric, ("",))[0]
    return f"{metric} [{u}]" if u else metric


def knob_columns(df) -> list[str]:
    from ..knobs import Knobs, flatten
    return [c for c in flatten(Knobs()) if c in df.columns]


def identity_columns(df) -> list[str]:
    """Columns that say what was simulated (everything but the seed and the bookkeeping)."""
    cols = [c for c in NAME_COLUMNS if c in df.columns]
    cols += [c for c in df.columns if c.startswith(("machine.", "workload.", "sim."))]
    cols += knob_columns(df)
    return cols


def metric_columns(df) -> list[str]:
    """Numeric or boolean columns that are outcomes (not identity, not bookkeeping)."""
    ident = set(identity_columns(df))
    out = []
    for c in df.columns:
        if c in ident or c in NON_METRIC or c.startswith("job."):
            continue
        if df[c].dtype == bool or np.issubdtype(df[c].dtype, np.number):
            out.append(c)
    return out


def _nunique(s) -> int:
    return s.astype(str).nunique(dropna=False)


def varying(df, cols) -> list[str]:
    return [c for c in cols if c in df.columns and _nunique(df[c]) > 1]


def short_names(cols) -> dict:
    """The last path component of each column where that is unambiguous."""
    lasts = [c.split(".")[-1] for c in cols]
    return {c: (c.split(".")[-1] if lasts.count(c.split(".")[-1]) == 1 else c) for c in cols}


def fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if v != v:
            return "nan"
        return f"{float(v):.6g}"
    return str(v)


def label_columns(df) -> list[str]:
    """The identity columns that name a combination (derived machine numbers and a variant implied
    by the policy left out)."""
    var = varying(df, [c for c in NAME_COLUMNS if c in df.columns]
                  + [c for c in df.columns if c.startswith(("workload.", "sim."))] + knob_columns(df))
    if "variant" in var and "policy" in df.columns and (df.groupby("policy")["variant"].nunique() <= 1).all():
        var.remove("variant")
    if "machine" not in var:  # a preset with field overrides keeps its name
        var += varying(df, [c for c in df.columns if c.startswith("machine.")])
    return var


def add_groups(df):
    """Adds ``group``: one label per parameter combination (the varying identity columns; the
    policy name when nothing varies). Seeds of one combination share a group; so do the rows of
    one combination that came from different jobs."""
    df = df.copy()
    var = label_columns(df)
    names = short_names(var)
    if not var:
        df["group"] = df["policy"].astype(str) if "policy" in df.columns else "all"
    else:
        df["group"] = [",".join(f"{names[c]}={fmt(v)}" for c, v in zip(var, vals))
                       for vals in df[var].itertuples(index=False, name=None)]
    return df


def swept_knobs(df) -> list[str]:
    """Numeric knobs and sim settings that vary in the table (the axes of knob plots)."""
    cols = varying(df, knob_columns(df) + [c for c in df.columns if c.startswith(("sim.", "workload."))])
    # pandas' own dtypes (a StringDtype column: workload.params as JSON) are not numpy dtypes
    return [c for c in cols if isinstance(df[c].dtype, np.dtype) and np.issubdtype(df[c].dtype, np.number)
            and df[c].dtype != bool]


def facets(df) -> list[str]:
    """Name columns that vary: machine, workload, variant, policy (one panel or line each)."""
    return varying(df, [c for c in NAME_COLUMNS if c in df.columns and c != "variant"])
