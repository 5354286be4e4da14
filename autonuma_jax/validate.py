"""``python -m autonuma_jax.validate``: the benchmark x policy x machine x seed matrix of spec §10.1.

Every policy of ``config.POLICIES`` (read at run time, so policies added later are picked up) runs
every autonuma-benchmark workload on each machine for a few seeds. One ``simulate`` call per
(machine, workload) cell, so all policies and seeds of a cell share compiled batches; a cell
stops as soon as every thread of every configuration in it has finished.

SIGTERM (a scheduler's time limit), SIGUSR1 or SIGINT: the cell in flight is checkpointed at the end of
its chunk and the run exits with status 3 (``EXIT_INTERRUPTED``); the same command with ``--resume``
goes on from there, cells already written are kept.

Writes into ``--out`` (default ``outputs/validate/<timestamp>``; an existing ``validation.csv``
is never overwritten without ``--overwrite``; every file is written to a temporary name and
renamed into place):

- ``validation.csv``: one row per (machine, workload, policy), seeds pooled (columns below);
- ``runs.csv``: one row per configuration (the ``Result.summary()`` of each run);
- ``validation.md``: the same as markdown tables (one per machine), a generated reading, the
  command line and the wall time;
- ``locality_<machine>_<workload>.png``: local fraction of accesses vs simulated time, one curve
  per policy (mean over seeds);
- ``nmstat_<machine>_<workload>_<policy>_seed<s>.png``: per-node memory of each process over time
  (``plots.nmstat``) for one seed of every policy of the cells chosen with ``--nmstat``;
- ``ratio_<machine>.png``: runtime / hard_bind runtime per workload and policy;
- ``meta.json``: the settings, command line and wall time (``--render DIR`` rewrites
  ``validation.md`` from it and ``validation.csv`` without simulating);
- ``validation.json`` (with ``--json``, which also prints it on stdout): meta and rows.

Default durations (``--duration`` unset): per workload (``DEFAULT_DURATION_S``, sized on
4node_32cpu where `none` needs ~480 s for numa01 and ~600 s for numa01_THREAD_ALLOC), scaled up
for machines with more CPUs per GB/s of memory bandwidth (4node_48cpu: x1.5).

The tables are rewritten after every cell (``validation.md`` says INCOMPLETE until the last one),
so an interrupted run keeps what it finished. Durations are rounded up to whole chunks of
``REPORTS_PER_CHUNK`` report intervals (every chunk of a cell reuses one compiled function); the
duration actually simulated is stated in ``validation.md`` and the ``duration_s`` column.

Statistics (``mean_ci``): the runtime is the mean over seeds, with the half-width of the 95 %
confidence interval of the mean from Student's t with n - 1 degrees of freedom
(t * s / sqrt(n), s the sample standard deviation). With one seed the half-width is NaN (no
spread can be estimated). A run that did not finish within ``--duration`` has no runtime: the
cell's ``runtime_s``, ``runtime_ci95_s`` and ratios are then NaN, ``finished`` gives the fraction
of seeds that finished, ``runtime_finished_s`` the mean over the finished seeds only and
``runtime_lb_s`` a lower bound of the mean (unfinished runs counted at the time simulated).
Other metrics are plain means over seeds (NaN-aware): ``local_fraction_final``, ``converge_s``
(as defined in ``metrics.py``), ``pages_migrated`` (4 KiB pages), ``overhead_cpu_s``,
``exchanges``, ``full_scans``, ``hinting_faults``.

``ratio_hard_bind`` / ``ratio_none`` divide the runtime by the mean runtime of hard_bind / none on
the same machine and workload (the reference row itself is 1). The two references are added to
``--policies`` automatically (``--no-references`` to leave them out; the ratios are then NaN).

``--quick``: a smoke run of the whole pipeline in about a minute or two on two CPU cores: 2 seeds,
only 2node_24cpu, every workload shrunk (memory / 8, passes / 2.5 to / 5) and the AutoNUMA daemons
sped up (a pass every 1 s, 32 MiB scan and 16 MiB migrate batches) so they act within seconds.
Shrinking rescales the workload the policy resolves to (``RunConfig.resolved_workload``), so the
policy's own variant (hard_bind, inverse_bind, ...) and the seed's forced node are kept.

Imports only numpy and the core (jax); matplotlib only when plotting.

Usage: python -m autonuma_jax.validate [--machines 2node_24cpu,4node_32cpu] [--workloads all]
       [--policies all] [--seeds 3] [--duration S] [--quick] [--out DIR] [--overwrite] [--json]
       [--nmstat first|all|none|MACHINE/WORKLOAD[,...]] [--set KNOB=VALUE ...]
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import io
import json
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from typing import Callable, Sequence

import numpy as np

from . import baselines as B
from .checkpoint import default_mode
from . import config as C
from .knobs import Knobs, with_overrides
from .machine import PRESETS
from . import plots
from .analysis import stats
from .analysis import validation_plots as VP
from .workloads import BENCHMARKS, build_variant

# every preset that models a box with published baselines (baselines.py), SMT off and on for M3
DEFAULT_MACHINES = ("2node_24cpu", "2node_12core", "2node_12core_smt", "4node_32cpu", "8node_64cpu")
# The autonuma-benchmark (spec §10.1), the default; ``--workloads all`` runs every BENCHMARKS entry.
DEFAULT_WORKLOADS = ("numa01", "numa01_THREAD_ALLOC", "numa02", "numa02_SMT")
DEFAULT_SEEDS = 3
REFERENCES = ("hard_bind", "none")
# Simulated seconds per workload when --duration is not given: 1.5-8 x the slowest baseline
# (none / inverse_bind) on 4node_32cpu; cells stop early once every thread is done. Machines with
# more work per unit of memory bandwidth get proportionally more (``default_duration``).
DEFAULT_DURATION_S = {"numa01": 800.0, "numa01_THREAD_ALLOC": 900.0, "numa02": 300.0, "numa02_SMT": 400.0}
FALLBACK_DURATION_S = 900.0
DURATION_REFERENCE_MACHINE = "4node_32cpu"
REPORT_MS = 1000.0
REPORTS_PER_CHUNK = 20

# --quick: (memory factor, passes factor) per workload, daemon knobs, seeds, machines, durations.
QUICK_SCALE = {"numa01": (1 / 8, 1 / 2.5), "numa01_THREAD_ALLOC": (1 / 8, 1 / 5), "numa02": (1 / 8, 1 / 2),
               "numa02_SMT": (1 / 8, 1 / 2)}
QUICK_DEFAULT_SCALE = (1 / 8, 1 / 4)
QUICK_KNOBS = {
    "autonuma.knuma_scand.scan_sleep_pass_millisecs": 1000,
    "autonuma.knuma_scand.pages_to_scan": 8192,
    "autonuma.knuma_migrated.pages_to_migrate": 4096,
}
QUICK_SEEDS = 2
QUICK_MACHINES = ("2node_24cpu",)
QUICK_DURATION_S = 60.0
QUICK_REPORT_MS = 250.0

CSV_COLUMNS = (
    "machine", "workload", "policy", "engine_policy", "build", "variant", "seeds", "finished",
    "runtime_s", "runtime_ci95_s", "runtime_sd_s", "runtime_min_s", "runtime_max_s",
    "runtime_finished_s", "runtime_lb_s", "ratio_hard_bind", "ratio_none",
    "local_fraction_final", "local_fraction_final_sd", "converge_s", "pages_migrated", "migrated_mib",
    "overhead_cpu_s", "exchanges", "full_scans", "hinting_faults", "queue_overflows", "oom_pages",
    "sim_s", "duration_s", "cell_wall_s",
    "published_s", "published_ratio_hard_bind", "published_error", "published_source",
    "spread_r2_converge", "alternative", "converged",
)


# ---- statistics: one home for every table and plot (analysis/stats.py) -----------------------

t_two_sided_prob, t_quantile, mean_ci = stats.t_two_sided_prob, stats.t_quantile, stats.mean_ci
_nanmean, _nansd = stats.nanmean, stats.nansd


def _cpus_per_bandwidth(machine) -> float:
    """The benchmarks run ~NCPUS threads streaming through memory: their time grows with the CPU
    count over the machine's total memory-controller bandwidth."""
    return machine.n_cpus / (machine.n_nodes * machine.node_bw_gbs)


def default_duration(machine: str, workload: str) -> float:
    """The default simulated-time cap of a cell: 1.6 x the slowest published baseline of the box
    (``baselines.py``) when there is one, else the workload's base, scaled up (never down) for
    machines with more CPUs per GB/s of memory bandwidth than the reference machine."""
    pub = [x for r in B.rows_for(machine) if r.benchmark == workload
           for x in (r.none_s, r.hard_bind_s, r.inverse_bind_s) if x]
    if pub:
        return 1.6 * max(pub) + 30.0
    base = DEFAULT_DURATION_S.get(workload, FALLBACK_DURATION_S)
    ref = PRESETS.get(DURATION_REFERENCE_MACHINE)
    m = PRESETS.get(machine)
    if ref is None or m is None:
        return base
    return base * max(1.0, _cpus_per_bandwidth(m) / _cpus_per_bandwidth(ref))


# ---- configurations --------------------------------------------------------------------------

def policy_entry(policy: str) -> tuple:
    """(engine policy, workload variant or None) of a policy name, from ``config.POLICIES``."""
    e = C.POLICIES[policy]
    if isinstance(e, tuple):
        return (e[0], e[1] if len(e) > 1 else None)
    return (getattr(e, "engine", getattr(e, "engine_policy", e)), getattr(e, "variant", None))


def shrink(workload, mem_factor: float, pass_factor: float):
    """``workload`` with every process's memory and every thread's range scaled by ``mem_factor``
    and its passes by ``pass_factor`` (at least 1 where there were any)."""
    def scale_bytes(v: int, size: int, new: int) -> int:
        return int(v * new // size)

    procs = [dataclasses.replace(p, mem_bytes=max(1 << 21, int(p.mem_bytes * mem_factor) >> 21 << 21))
             for p in workload.processes]
    threads = []
    for t in workload.threads:
        size, new = workload.processes[t.mm].mem_bytes, procs[t.mm].mem_bytes
        kw = {}
        for off, ln in (("work_offset", "work_len"), ("init_offset", "init_len"), ("alt_offset", "alt_len")):
            if not hasattr(t, ln):
                continue
            o, n = getattr(t, off), getattr(t, ln)
            if n > 0:
                no = scale_bytes(o, size, new)
                ne = max(no + 1, scale_bytes(o + n, size, new))
                kw[off], kw[ln] = no, min(new, ne) - no
        if t.work_passes > 0:
            kw["work_passes"] = max(1, int(round(t.work_passes * pass_factor)))
        threads.append(dataclasses.replace(t, **kw))
    return dataclasses.replace(workload, processes=tuple(procs), threads=tuple(threads),
                               description=workload.description + f" [shrunk: memory x{mem_factor:g}, "
                                                                  f"passes x{pass_factor:g}]")


def build_for(machine: str) -> str:
    """The benchmark build the published runs of this box imply (``baselines.py``), else the latest."""
    bm = B.machine_for(machine)
    return bm.build if bm is not None else "latest"


def cell_configs(machine: str, workload: str, policies: Sequence[str], seeds: int, sim: C.SimConfig,
                 knobs: Knobs, scale: tuple | None = None, build: str = "latest") -> list:
    """Every (policy, seed) of one (machine, workload) cell, policy-major."""
    out = []
    for p in policies:
        for s in range(seeds):
            cfg = C.RunConfig(machine=machine, workload=workload, policy=p, knobs=knobs, sim=sim, seed=s, build=build)
            if scale is not None:
                # The policy's own variant and the seed's forced node come from resolved_workload.
                cfg = dataclasses.replace(cfg, workload=shrink(cfg.resolved_workload(), *scale))
            out.append(cfg)
    return out


# ---- aggregation -----------------------------------------------------------------------------

def spread_r2(runs: Sequence[dict]) -> float:
    """How much of a cell's runtime spread over seeds its time to converge explains: the squared
    correlation of runtime with converge_s (NaN with fewer than 3 finished seeds or no spread)."""
    pts = [(float(s["runtime_s"]), float(s["converge_s"])) for s in runs
           if s["finished"] and not math.isnan(float(s["converge_s"]))]
    if len(pts) < 3:
        return float("nan")
    x, y = np.asarray(pts).T
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def aggregate(summaries: Sequence[dict], machine: str, workload: str, policies: Sequence[str], duration_s: float,
              wall_s: float = float("nan"), build: str = "latest", compare: bool = True) -> list[dict]:
    """One row per policy of a cell from the per-run summaries (``Result.summary()`` dicts)."""
    rows = []
    for p in policies:
        runs = [s for s in summaries if s["policy"] == p]
        n = len(runs)
        fin = [bool(s["finished"]) for s in runs]
        rts = [float(s["runtime_s"]) for s in runs if s["finished"]]
        all_fin = n > 0 and all(fin)
        mean, ci, _ = mean_ci(rts)
        eng, var = policy_entry(p)
        lb = [float(s["runtime_s"]) if s["finished"] else float(s["sim_s"]) for s in runs]
        built = build_variant(workload, var or "default", build) if workload in BENCHMARKS else (var or "default")
        row = dict(
            machine=machine, workload=workload, policy=p, engine_policy=int(eng), build=build, variant=built,
            seeds=n, finished=(sum(fin) / n) if n else float("nan"),
            runtime_s=mean if all_fin else float("nan"),
            runtime_ci95_s=ci if all_fin else float("nan"),
            runtime_sd_s=_nansd(rts) if all_fin else float("nan"),
            runtime_min_s=min(rts) if all_fin else float("nan"),
            runtime_max_s=max(rts) if all_fin else float("nan"),
            runtime_finished_s=mean, runtime_lb_s=_nanmean(lb),
            ratio_hard_bind=float("nan"), ratio_none=float("nan"),
            local_fraction_final=_nanmean(s["local_fraction_final"] for s in runs),
            local_fraction_final_sd=_nansd(s["local_fraction_final"] for s in runs),
            converge_s=_nanmean(s["converge_s"] for s in runs),
            converged=_nanmean(float(s["converged"]) for s in runs if "converged" in s),  # fraction of seeds
            pages_migrated=_nanmean(s["pages_migrated"] for s in runs),
            migrated_mib=_nanmean(s["pages_migrated"] for s in runs) * 4 / 1024,
            overhead_cpu_s=_nanmean(s["overhead_cpu_s"] for s in runs),
            exchanges=_nanmean(s["exchanges"] for s in runs),
            full_scans=_nanmean(s["full_scans"] for s in runs),
            hinting_faults=_nanmean(s["hinting_faults"] for s in runs),
            queue_overflows=_nanmean(s.get("queue_overflows", float("nan")) for s in runs),
            oom_pages=_nanmean(s.get("oom_pages", float("nan")) for s in runs),
            sim_s=max((float(s["sim_s"]) for s in runs), default=float("nan")),
            duration_s=float(duration_s), cell_wall_s=float(wall_s),
            spread_r2_converge=spread_r2(runs),
        )
        rows.append(row)
    by_policy = {r["policy"]: r for r in rows}
    for ref, col in (("hard_bind", "ratio_hard_bind"), ("none", "ratio_none")):
        base = by_policy.get(ref, {}).get("runtime_s", float("nan"))
        for r in rows:
            if r["policy"] == ref and r["seeds"] > 0 and r["finished"] == 1:
                r[col] = 1.0
            elif base and not math.isnan(base) and not math.isnan(r["runtime_s"]):
                r[col] = r["runtime_s"] / base
    published(rows, machine if compare else "", workload)
    return rows


def published(rows: Sequence[dict], machine: str, workload: str) -> None:
    """Add the published baseline of the box to the rows of none / hard_bind / inverse_bind: the
    seconds, the ratio to hard_bind and the relative error of the simulated value (of the absolute
    runtime for hard_bind, of the ratio for the others): the calibration table."""
    row = next((r for r in B.rows_for(machine) if r.benchmark == workload), None)
    for r in rows:
        r.update(published_s=float("nan"), published_ratio_hard_bind=float("nan"), published_error=float("nan"),
                 published_source="")
        if row is None or r["policy"] not in B.POLICIES or row.seconds(r["policy"]) is None:
            continue
        pub = row.seconds(r["policy"])
        r["published_s"] = pub
        r["published_ratio_hard_bind"] = pub / row.hard_bind_s
        r["published_source"] = row.message_id
        if r["policy"] == "hard_bind":
            r["published_error"] = r["runtime_s"] / pub - 1
        else:
            r["published_error"] = r["ratio_hard_bind"] / r["published_ratio_hard_bind"] - 1


# ---- files -----------------------------------------------------------------------------------

def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file in the same folder, then rename it to ``path``."""
    d, base = os.path.split(os.path.abspath(path))
    ext = os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=d)
    os.close(fd)
    try:
        os.chmod(tmp, default_mode())  # mkstemp creates 0600; results are meant to be shared (umask applies)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_text(path: str, text: str) -> None:
    def w(tmp):
        with open(tmp, "w", newline="") as f:
            f.write(text)
    atomic_write(path, w)


def _fmt_csv(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(float(v))
    return v


def csv_text(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    cols = list(columns) if columns else (list(rows[0]) if rows else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt_csv(r.get(k, "")) for k in cols})
    return buf.getvalue()


def _json_safe(v):
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


_TEXT_COLUMNS = ("machine", "workload", "policy", "variant", "build", "published_source")


def read_rows(path: str) -> list[dict]:
    """validation.csv back into row dicts (numbers as float, seeds / engine_policy as int)."""
    with open(path, newline="") as f:
        out = []
        for r in csv.DictReader(f):
            row = {}
            for k, v in r.items():
                if k in _TEXT_COLUMNS:
                    row[k] = v
                elif k in ("seeds", "engine_policy"):
                    row[k] = int(v)
                elif k == "alternative":  # set on alternative-build rows only, as aggregate() does
                    if v == "True":
                        row[k] = True
                else:
                    row[k] = float(v) if v not in ("", "nan") else float("nan")
            out.append(row)
    return out


# ---- markdown --------------------------------------------------------------------------------

def _f(v, digits=1, na="n/a"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return na
    return f"{v:.{digits}f}"


def _runtime_cell(r) -> str:
    if r["seeds"] == 0:
        return "n/a"
    if r["finished"] < 1:
        return f"> {_f(r['runtime_lb_s'])} (unfinished)"
    if math.isnan(r["runtime_ci95_s"]):
        return _f(r["runtime_s"])
    return f"{_f(r['runtime_s'])} ± {_f(r['runtime_ci95_s'])}"


def markdown_table(rows: Sequence[dict]) -> str:
    head = ("| workload | policy | seeds | finished | runtime s (±95% CI) | ×hard_bind | ×none | local final | "
            "converge s | migrated MiB | kernel CPU s | exchanges | full scans |")
    out = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        out.append(f"| {r['workload']} | {r['policy']} | {r['seeds']} | {_f(r['finished'], 2)} | {_runtime_cell(r)} | "
                   f"{_f(r['ratio_hard_bind'], 2)} | {_f(r['ratio_none'], 2)} | {_f(r['local_fraction_final'], 3)} | "
                   f"{_f(r['converge_s'])} | {_f(r['migrated_mib'], 0)} | {_f(r['overhead_cpu_s'], 2)} | "
                   f"{_f(r['exchanges'], 0)} | {_f(r['full_scans'], 1)} |")
    return "\n".join(out)


def reading(rows: Sequence[dict]) -> list[str]:
    """Generated sentences about one machine's rows: who is closest to hard_bind per workload (and
    who is fastest when that differs), the seed spread, unfinished runs, notes and numbers that
    look implausible."""
    lines = []
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    for wl in workloads:
        rs = [r for r in rows if r["workload"] == wl]
        hb = next((r for r in rs if r["policy"] == "hard_bind"), None)
        # candidates: the policies that are not the benchmark's own bindings
        cand = [r for r in rs if r["variant"] == "default" and not math.isnan(r["ratio_hard_bind"])
                and r["ratio_hard_bind"] > 0]
        parts = []
        if hb is None or math.isnan(hb["runtime_s"]):
            parts.append("no finished hard_bind reference")
        elif cand:
            closest = min(cand, key=lambda r: abs(math.log(r["ratio_hard_bind"])))
            fastest = min(cand, key=lambda r: r["ratio_hard_bind"])
            order = ", ".join(f"{r['policy']} {r['ratio_hard_bind']:.2f}" for r in
                              sorted(cand, key=lambda r: r["ratio_hard_bind"]))
            parts.append(f"closest to hard_bind ({hb['runtime_s']:.1f} s): **{closest['policy']}** "
                         f"(×{closest['ratio_hard_bind']:.2f})"
                         + (f", fastest: **{fastest['policy']}** (×{fastest['ratio_hard_bind']:.2f})"
                            if fastest is not closest else "")
                         + f"; runtime / hard_bind: {order}")
        ib = next((r for r in rs if r["policy"] == "inverse_bind"), None)
        if ib is not None and not math.isnan(ib["ratio_hard_bind"]):
            parts.append(f"inverse_bind ×{ib['ratio_hard_bind']:.2f}")
        spread = [(r["runtime_ci95_s"] / r["runtime_s"], r) for r in rs
                  if not math.isnan(r["runtime_ci95_s"]) and r["runtime_s"] > 0]
        if spread:
            rel, r = max(spread, key=lambda x: x[0])
            src = r.get("spread_r2_converge", float("nan"))
            parts.append(f"widest seed spread: {r['policy']} (95% CI ±{100 * rel:.1f}% of its mean, "
                         f"seeds {r['runtime_min_s']:.1f}-{r['runtime_max_s']:.1f} s"
                         + ("" if src is None or math.isnan(src) else
                            f"; the time to converge explains {100 * src:.0f}% of its variance") + ")")
        elif rs and all(r["seeds"] <= 1 for r in rs):
            parts.append("one seed per policy: no confidence intervals")
        lines.append(f"- {wl}: " + "; ".join(parts) + ".")
    unfinished = [r for r in rows if r["seeds"] and r["finished"] < 1]
    if unfinished:
        lines.append("- Unfinished within the simulated duration (runtime reported as a lower bound, ratios n/a): "
                     + ", ".join(f"{r['workload']}/{r['policy']} ({r['finished'] * r['seeds']:.0f}/{r['seeds']} "
                                 f"seeds finished, > {r['runtime_lb_s']:.0f} s)" for r in unfinished) + ".")
    else:
        lines.append("- Every run finished within the simulated duration.")
    notes, odd = check_plausibility(rows)
    if notes:
        lines.append("- Notes: " + "; ".join(notes) + ".")
    if odd:
        lines.append("- Looks implausible, check: " + "; ".join(odd) + ".")
    return lines


def hard_bind_nodes(machine: str, workload: str) -> int:
    """The most nodes one hard_bind CPU or memory binding of this benchmark spans (0: unknown)."""
    if machine not in PRESETS or workload not in BENCHMARKS or "hard_bind" not in C.POLICIES:
        return 0
    try:
        wl = C.RunConfig(machine=machine, workload=workload, policy="hard_bind").resolved_workload()
    except Exception:
        return 0
    masks = [m for t in wl.threads for m in (t.cpus_allowed, t.work_bind_mask) if m]
    return max((bin(m).count("1") for m in masks), default=0)


def check_plausibility(rows: Sequence[dict]) -> tuple[list[str], list[str]]:
    """(notes, implausible): generic checks, policy names and properties read from the rows."""
    notes, odd = [], []
    hb = {(r["machine"], r["workload"]): r for r in rows if r["policy"] == "hard_bind"}
    ib = {(r["machine"], r["workload"]): r for r in rows if r["policy"] == "inverse_bind"}
    for r in rows:
        key = (r["machine"], r["workload"])
        tag = f"{r['workload']}/{r['policy']}"
        ref = hb.get(key)
        ref_local = ref is not None and not math.isnan(ref["local_fraction_final"]) and ref["local_fraction_final"] >= 0.95
        if r["policy"] == "hard_bind":
            span = hard_bind_nodes(*key)
            if r["local_fraction_final"] < 0.95:
                if span > 1:
                    notes.append(f"{tag}: final locality {r['local_fraction_final']:.2f}, its bindings span {span} "
                                 f"nodes, so it is not a perfectly local placement and other policies may beat it")
                else:
                    odd.append(f"{tag} final locality {r['local_fraction_final']:.3f} < 0.95 under single-node binding")
        elif not math.isnan(r["ratio_hard_bind"]) and r["ratio_hard_bind"] < 0.95:
            msg = (f"{tag} is faster than hard_bind (×{r['ratio_hard_bind']:.2f}, final locality "
                   f"{r['local_fraction_final']:.2f} vs {ref['local_fraction_final']:.2f})")
            (odd if ref_local else notes).append(msg)
        if r["engine_policy"] == C.POLICY_NONE and r["pages_migrated"] > 0:
            odd.append(f"{tag} migrated {r['migrated_mib']:.0f} MiB on the `none` kernel")
        if r["oom_pages"] and r["oom_pages"] > 0:
            odd.append(f"{tag}: {r['oom_pages']:.0f} pages could not be allocated")
        if r["seeds"] and math.isnan(r["local_fraction_final"]):
            odd.append(f"{tag} has no local fraction (no work done?)")
        w = ib.get(key)
        # `none` can legitimately lose to inverse_bind (numa02: all memory behind one controller)
        if (w is not None and r["variant"] == "default" and r["engine_policy"] != C.POLICY_NONE
                and not math.isnan(r["runtime_s"]) and not math.isnan(w["runtime_s"])
                and r["runtime_s"] > 1.05 * w["runtime_s"]):
            odd.append(f"{tag} is slower than inverse_bind ({r['runtime_s']:.1f} s vs {w['runtime_s']:.1f} s; "
                       f"seeds {r['runtime_min_s']:.1f}-{r['runtime_max_s']:.1f} s)")
    return notes, odd


def calibration_table(rows: Sequence[dict]) -> str:
    """The baseline rows of one machine against the published runs of its box (``baselines.py``):
    simulated vs published seconds, the ratios to hard_bind and the relative error (of the absolute
    runtime for hard_bind, of the ratio for none and inverse_bind), within the tolerance or not."""
    rs = [r for r in rows if r.get("published_source")]
    if not rs:
        return ""
    m = rs[0]["machine"]
    tol = B.TOLERANCE.get(PRESETS[m].n_nodes if m in PRESETS else 8, 0.25)
    out = [f"Calibration against the published runs (tolerance ±{tol:.0%} on the hard_bind runtime and on the "
           "ratios; sources: Message-IDs in docs/model.md):", "",
           "| workload | policy | build / variant | simulated s | published s | simulated ×hard_bind | "
           "published ×hard_bind | error | within |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        err = r["published_error"]
        ok = "n/a" if math.isnan(err) else ("yes" if abs(err) <= tol else "**no**")
        what = "runtime" if r["policy"] == "hard_bind" else "ratio"
        out.append(f"| {r['workload']} | {r['policy']} | {r.get('build', '')} / {r['variant']} | {_runtime_cell(r)} | "
                   f"{_f(r['published_s'])} | {_f(r['ratio_hard_bind'], 3)} | {_f(r['published_ratio_hard_bind'], 3)} | "
                   f"{'n/a' if math.isnan(err) else f'{err:+.1%}'} ({what}) | {ok} |")
    return "\n".join(out)


def markdown_report(rows: Sequence[dict], meta: dict) -> str:
    out = ["# Validation: autonuma-benchmark x policy x machine", ""]
    out.append(f"Command: `{meta['command']}`")
    out.append("")
    out.append(f"Wall time: {meta['wall_s']:.0f} s ({meta['wall_s'] / 60:.1f} min) on {meta['host']}"
               + (" (the finished cells' own wall times, collected with --collect)" if meta.get("collected")
                  else "" if meta.get("complete", True) else " (INCOMPLETE: still running or interrupted)") + ".")
    if meta.get("missing_cells"):
        out.append("")
        out.append(f"**Not run yet ({len(meta['missing_cells'])} of {len(meta['machines']) * len(meta['workloads'])} "
                   f"cells):** " + ", ".join(meta["missing_cells"]) + ". The tables below hold the cells that "
                   "finished; the missing ones are still to be simulated (`--resume` in the same --out).")
    out.append(f"Seeds: {meta['seeds']}; simulated duration cap per cell: "
               + "; ".join(f"{m}: " + ", ".join(f"{w} {v:.0f} s" for w, v in d.items())
                           for m, d in meta["durations"].items())
               + f"; report interval {meta['report_ms']:.0f} ms; policies: {', '.join(meta['policies'])}"
               + (f"; **quick mode** ({meta['quick_note']})" if meta.get("quick") else "") + ".")
    if meta.get("knob_overrides"):
        out.append(f"Knob overrides: {meta['knob_overrides']}.")
    out.append("")
    out.append("Runtime: mean over seeds ± half-width of the 95 % CI of the mean (Student t, n-1 df; n/a with one "
               "seed). ×hard_bind / ×none: runtime over the reference's mean runtime on the same machine and "
               "workload. local final: byte-weighted local fraction over the last 10 % of working report rows. "
               "converge s, migrated MiB (4 KiB pages x 4 / 1024), kernel CPU s, exchanges, full scans: means over "
               "seeds. An unfinished run has no runtime: the cell shows a lower bound and no ratio. Caveats: the "
               "last 10 % of working rows is the tail of the run, when only a few threads are left and the load "
               "balancer may move them, so a low final locality with a good runtime points at the tail; converge s "
               "(metrics.py) leaves that end-game out and is the last row before it when the locality never "
               "settles; full scans counts knuma_scand "
               "passes (AutoNUMA only).")
    for m in dict.fromkeys(r["machine"] for r in rows):
        rs = [r for r in rows if r["machine"] == m]
        desc = PRESETS[m].description if m in PRESETS else ""
        main_rows = [r for r in rs if not r.get("alternative")]
        out += ["", f"## {m}" + (f": {desc}" if desc else ""), "", markdown_table(main_rows), ""]
        cal = calibration_table(rs)
        if cal:
            out += [cal, ""]
        out += ["Reading:", ""]
        out += reading(main_rows)
        walls = {r["workload"]: r["cell_wall_s"] for r in rs}
        out += ["", "Wall time per cell: " + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items()) + "."]
    if meta.get("plots"):
        out += ["", "Plots: " + ", ".join(f"`{p}`" for p in sorted(dict.fromkeys(meta["plots"]))) + "."]
    return "\n".join(out) + "\n"


# ---- plots (analysis/validation_plots.py) ----------------------------------------------------

locality_curves, plot_locality, plot_ratios = VP.locality_curves, VP.plot_locality, VP.plot_ratios


def plot_nmstat(result, path: str) -> None:
    atomic_write(path, lambda tmp: plots.nmstat(result, tmp))


# ---- driver ----------------------------------------------------------------------------------

CHECKPOINT_EVERY = 5  # chunks (of REPORTS_PER_CHUNK report intervals) between a cell's checkpoints
EXIT_INTERRUPTED = 3  # the status of a run stopped by a signal after saving its checkpoint


class Interrupted(Exception):
    """``should_stop`` turned true: the bucket in flight was checkpointed at the end of its chunk."""


class StopOnSignal:
    """SIGTERM (what SLURM and most schedulers send at the time limit), SIGUSR1 (``--signal=USR1@..``)
    and SIGINT ask the run to stop at the end of the chunk in flight, after saving its checkpoint, so
    that ``--resume`` loses nothing; without it a signal lost everything since the last periodic
    checkpoint (up to ``CHECKPOINT_EVERY`` chunks, minutes on eight nodes). A second SIGINT raises
    KeyboardInterrupt as soon as Python runs again (no checkpoint). ``restore()`` puts the earlier
    handlers back. (``cli.preempt`` does the same for the hydra jobs, and hands the signal on to
    submitit's requeue; the core does not import the CLI layer, so this is its own small copy.)"""
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self):
        self.signum = None
        self.prev = {}
        for sig in self.SIGNALS:
            try:
                self.prev[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: no signal handling, periodic checkpoints only
                break

    def _handler(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            print(f"validate: got {signal.Signals(signum).name}: checkpointing at the end of this chunk, then "
                  f"stopping (ctrl-c again: without a checkpoint)", file=sys.stderr, flush=True)
        self.signum = signum

    def requested(self) -> bool:
        return self.signum is not None

    def restore(self) -> None:
        for sig, prev in self.prev.items():
            signal.signal(sig, prev)
        self.prev = {}


def run_cell(cfgs, ckpt_dir: str | None, progress=None, should_stop: Callable[[], bool] | None = None) -> list:
    """``simulate`` with a checkpoint per bucket in ``ckpt_dir`` (resumed when present), so that a
    long cell interrupted by a signal or a crash goes on where it stopped. When ``should_stop()``
    turns true (polled between chunks) the bucket in flight is checkpointed and ``Interrupted`` is
    raised."""
    from .simulate import make_buckets
    out = [None] * len(cfgs)
    for bi, (idx, bucket) in enumerate(make_buckets(cfgs)):
        path = os.path.join(ckpt_dir, f"bucket{bi}.npz") if ckpt_dir else None
        # finished configurations leave the batch (at half of it): the cell then costs the sum of its
        # runs, not its slowest run times the batch (41 % of the ticks simulated were past a run's end)
        res = bucket.run(reports_per_chunk=REPORTS_PER_CHUNK, stop_when_done=True, on_chunk=progress,
                         checkpoint=path, checkpoint_every=CHECKPOINT_EVERY, retire_done=True,
                         should_stop=should_stop)
        if bucket.stopped:
            raise Interrupted(path)
        for i, r in zip(idx, res):
            out[i] = r
    return out


def _remove_tree(path: str) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def _unjson(rows):
    """Rows read back from a cell file: JSON null -> NaN (what the tables expect)."""
    return [{k: (float("nan") if v is None else v) for k, v in r.items()} for r in rows]


def _split(s: str | None, allowed: Sequence[str], what: str, default: Sequence[str]) -> list[str]:
    if s is None:
        return list(default)
    items = [x.strip() for x in s.split(",") if x.strip()]
    if items == ["all"]:
        return list(allowed)
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise SystemExit(f"validate: --{what} {s!r}: unknown {bad or 'empty'}; choose from {', '.join(allowed)} or all")
    return list(dict.fromkeys(items))


def _parse_value(v: str):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m autonuma_jax.validate",
                                 description="benchmark x policy x machine x seeds validation matrix "
                                             "(validation.csv, validation.md, plots)")
    ap.add_argument("--machines", help=f"comma list of presets or all (default {','.join(DEFAULT_MACHINES)}; "
                                       f"--quick: {','.join(QUICK_MACHINES)})")
    ap.add_argument("--workloads", help="comma list of workloads.BENCHMARKS names or all (default the "
                                        f"autonuma-benchmark: {','.join(DEFAULT_WORKLOADS)})")
    ap.add_argument("--policies", help="comma list of config.POLICIES names or all (default all, read at run time)")
    ap.add_argument("--no-references", action="store_true",
                    help="do not add hard_bind and none (the ratio references) to --policies")
    ap.add_argument("--seeds", type=int, help=f"seeds 0..N-1 per policy (default {DEFAULT_SEEDS}, --quick {QUICK_SEEDS})")
    ap.add_argument("--duration", type=float,
                    help="simulated seconds per cell (cells stop early when every thread is done; default per "
                         f"workload {DEFAULT_DURATION_S}, scaled up for machines with more CPUs per GB/s of "
                         f"memory bandwidth than {DURATION_REFERENCE_MACHINE}; --quick {QUICK_DURATION_S})")
    ap.add_argument("--report-ms", type=float, help=f"report interval (default {REPORT_MS}, --quick {QUICK_REPORT_MS})")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 2node_24cpu, shrunk workloads, fast daemons")
    ap.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE", help="knob override (repeatable)")
    ap.add_argument("--nmstat", default="first",
                    help="cells to draw nmstat plots for (seed 0 of each policy): first, all, none or "
                         "MACHINE/WORKLOAD[,...] (default first: the first machine and workload)")
    ap.add_argument("--out", help="output folder (default outputs/validate/<timestamp>)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing validation.csv in --out")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted run in --out: finished cells are kept (cells/*.json), the cell "
                         "that was running resumes from its checkpoints (checkpoints/)")
    ap.add_argument("--collect", action="store_true",
                    help="simulate nothing: write the tables from the cells already finished in --out "
                         "(cells/*.json, from runs of any cell subset; a cell with no json keeps its rows "
                         "of a validation.csv already in --out and its plots there); cells not yet run are "
                         "listed as missing")
    ap.add_argument("--json", action="store_true", help="also write validation.json and print it on stdout")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--render", metavar="DIR",
                    help="simulate nothing: rewrite DIR/validation.md and the ratio plots from DIR/validation.csv "
                         "and DIR/meta.json (after a change of the generated reading)")
    return ap.parse_args(argv)


def write_ratio_plots(rows: Sequence[dict], out: str) -> list[str]:
    names = []
    rows = [r for r in rows if not r.get("alternative")]
    for m in dict.fromkeys(r["machine"] for r in rows):
        name = f"ratio_{m}.png"
        plot_ratios([r for r in rows if r["machine"] == m], os.path.join(out, name),
                    f"{m}: runtime / hard_bind (error bars: 95% CI of the mean)")
        names.append(name)
    return names


def cell_plots(names: Sequence[str], machine: str, workload: str) -> list[str]:
    """The plots among ``names`` that belong to one cell: its locality plot and its nmstat plots
    (a plain prefix test would give numa01 the plots of numa01_THREAD_ALLOC)."""
    pre = f"nmstat_{machine}_{workload}_"
    return [n for n in names if n == f"locality_{machine}_{workload}.png"
            or (n.startswith(pre) and n.endswith(".png") and "_seed" in n
                and n[len(pre):-4].rsplit("_seed", 1)[0] in C.POLICIES)]


def render(folder: str) -> int:
    """Rewrite validation.md (and the ratio plots) of a finished run from its csv and meta.json."""
    rows = read_rows(os.path.join(folder, "validation.csv"))
    with open(os.path.join(folder, "meta.json")) as f:
        meta = json.load(f)
    try:
        write_ratio_plots(rows, folder)
    except ImportError as e:
        print(f"validate: plots skipped: {e}", file=sys.stderr)
    atomic_text(os.path.join(folder, "validation.md"), markdown_report(rows, meta))
    print(f"validate: rewrote {os.path.join(folder, 'validation.md')}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    stop = StopOnSignal()
    try:
        return _main(argv, stop)
    finally:
        stop.restore()


def _main(argv, stop: StopOnSignal) -> int:
    t_start = time.time()
    args = parse_args(argv)
    if args.render:
        return render(args.render)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m autonuma_jax.validate " + " ".join(shlex.quote(a) for a in argv_list)

    policies_all = list(C.POLICIES)  # read at run time: policies added to config are picked up
    machines = _split(args.machines, list(PRESETS), "machines", QUICK_MACHINES if args.quick else DEFAULT_MACHINES)
    workloads = _split(args.workloads, list(BENCHMARKS), "workloads",
                       [w for w in DEFAULT_WORKLOADS if w in BENCHMARKS] or list(BENCHMARKS))
    policies = _split(args.policies, policies_all, "policies", policies_all)
    if not args.no_references:
        policies += [p for p in REFERENCES if p in policies_all and p not in policies]
    seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    if seeds < 1:
        raise SystemExit("validate: --seeds must be >= 1")
    report_ms = args.report_ms or (QUICK_REPORT_MS if args.quick else REPORT_MS)

    overrides = dict(QUICK_KNOBS) if args.quick else {}
    for kv in args.set:
        if "=" not in kv:
            raise SystemExit(f"validate: --set {kv!r}: expected KNOB=VALUE")
        k, v = kv.split("=", 1)
        overrides[k.strip()] = _parse_value(v.strip())
    knobs = with_overrides(Knobs(), overrides)

    out = args.out or os.path.join("outputs", "validate", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    csv_path = os.path.join(out, "validation.csv")
    if os.path.exists(csv_path) and not (args.overwrite or args.resume or args.collect):
        print(f"validate: {csv_path} exists; refusing to overwrite it (use --overwrite or another --out)",
              file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)

    if args.nmstat == "all":
        nm_cells = {(m, w) for m in machines for w in workloads}
    elif args.nmstat == "none":
        nm_cells = set()
    elif args.nmstat == "first":
        nm_cells = {(machines[0], workloads[0])}
    else:
        nm_cells = {tuple(c.split("/", 1)) for c in args.nmstat.split(",") if "/" in c}

    def duration_for(m: str, wl: str) -> float:
        if args.duration is not None:
            return float(args.duration)
        return QUICK_DURATION_S if args.quick else default_duration(m, wl)

    def sim_for(m: str, wl: str) -> C.SimConfig:
        # a whole number of chunks, so that every chunk of a cell reuses one compiled function
        n = max(1, math.ceil(duration_for(m, wl) * 1000 / report_ms - 1e-9))
        n = -(-n // REPORTS_PER_CHUNK) * REPORTS_PER_CHUNK if n > REPORTS_PER_CHUNK else n
        return C.SimConfig(duration_s=n * report_ms / 1000, report_interval_ms=report_ms)

    durations = {m: {w: sim_for(m, w).duration_s for w in workloads} for m in machines}
    meta = dict(command=command, argv=argv_list, machines=machines, workloads=workloads, policies=policies,
                seeds=seeds, durations=durations, report_ms=report_ms, quick=bool(args.quick),
                quick_note=("workloads shrunk (memory x1/8, passes x1/2.5 to x1/5), daemons sped up: "
                            + ", ".join(f"{k}={v}" for k, v in QUICK_KNOBS.items())) if args.quick else "",
                knob_overrides={k: v for k, v in overrides.items() if not (args.quick and k in QUICK_KNOBS)},
                host=f"{os.cpu_count()} CPUs", out=out, started=datetime.datetime.now().isoformat(timespec="seconds"))
    try:
        import jax
        meta["host"] = f"{jax.default_backend()} backend, {os.cpu_count()} CPUs"
    except Exception:  # pragma: no cover - jax is a core dependency
        pass

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    all_rows: list[dict] = []
    all_runs: list[dict] = []
    plots_written: list[str] = []
    plot_errors: list[str] = []
    cells = [(m, w) for m in machines for w in workloads]
    missing: list[str] = []  # --collect: cells not run yet
    # --collect: cells with no json keep the rows of a validation.csv already in --out (a table
    # published without its cells/*.json, to which newly run cells are added)
    kept: dict = {}
    if args.collect and os.path.exists(csv_path):
        for r in read_rows(csv_path):
            kept.setdefault((r["machine"], r["workload"]), []).append(r)
    log(f"validate: {len(cells)} cells x {len(policies)} policies x {seeds} seeds -> {out}")

    def write_tables(complete: bool) -> None:
        meta["wall_s"] = time.time() - t_start
        if args.collect:  # the cells' own wall times, not this command's
            meta["wall_s"] = sum({(r["machine"], r["workload"]): r.get("cell_wall_s") or 0.0
                                  for r in all_rows}.values())
        meta["missing_cells"] = list(missing)
        meta["collected"] = bool(args.collect)
        meta["complete"] = complete and not missing
        meta["plots"] = plots_written
        atomic_text(os.path.join(out, "runs.csv"), csv_text(all_runs))
        atomic_text(os.path.join(out, "meta.json"), json.dumps(_json_safe(meta), indent=1) + "\n")
        atomic_text(os.path.join(out, "validation.md"), markdown_report(all_rows, meta))
        atomic_text(csv_path, csv_text(all_rows, CSV_COLUMNS))

    for ci, (m, w) in enumerate(cells):
        sim = sim_for(m, w)
        scale = QUICK_SCALE.get(w, QUICK_DEFAULT_SCALE) if args.quick else None
        build = build_for(m)
        cell_file = os.path.join(out, "cells", f"{m}__{w}.json")
        if args.collect and not os.path.exists(cell_file):
            if (m, w) in kept:
                all_rows.extend(kept[(m, w)])
                plots_written.extend(cell_plots(sorted(os.listdir(out)), m, w))
                log(f"[{ci + 1}/{len(cells)}] {m} / {w}: kept from {csv_path} (no cell json)")
            else:
                missing.append(f"{m}/{w}")
            continue
        if (args.resume or args.collect) and os.path.exists(cell_file):
            with open(cell_file) as f:
                done = json.load(f)
            all_runs.extend(_unjson(done["runs"]))
            all_rows.extend(_unjson(done["rows"]))
            plots_written.extend(cell_plots(done.get("plots", []), m, w))
            log(f"[{ci + 1}/{len(cells)}] {m} / {w}: done before, kept ({cell_file})")
            continue
        cfgs = cell_configs(m, w, policies, seeds, sim, knobs, scale, build)
        pub_row = next((r for r in B.rows_for(m) if r.benchmark == w), None)
        alt = (pub_row.alt_build if (pub_row is not None and pub_row.alt_build and "none" in policies
                                     and not args.quick) else "")
        alt_cfgs = cell_configs(m, w, ["none"], seeds, sim, knobs, scale, alt) if alt else []
        t0 = time.time()
        log(f"[{ci + 1}/{len(cells)}] {m} / {w} (build {build}): {len(cfgs) + len(alt_cfgs)} configurations, up to "
            f"{sim.duration_s:.0f} s simulated")

        def progress(b, t0=t0):
            st = b.static
            log(f"    {b.reports_done * st.report_ticks * st.tick_s:7.1f} s simulated  ({time.time() - t0:6.1f} s wall)")

        ckpt = os.path.join(out, "checkpoints", f"{m}__{w}")
        try:
            results = run_cell(cfgs + alt_cfgs, ckpt, progress, should_stop=stop.requested)
        except Interrupted:
            print(f"validate: stopped by {signal.Signals(stop.signum).name}; {m} / {w} checkpointed in {ckpt}, the "
                  f"cells before it kept: rerun the same command with --resume to go on", file=sys.stderr)
            return EXIT_INTERRUPTED
        wall = time.time() - t0
        summaries = [r.summary() for r in results]
        cell_runs = [dict(machine=m, workload=w, build=r.config.build, **s) for s, r in zip(summaries, results)]
        all_runs.extend(cell_runs)
        # shrunk (--quick) runs are not the published programs: no calibration comparison
        rows = aggregate(summaries[:len(cfgs)], m, w, policies, sim.duration_s, wall, build, compare=not args.quick)
        if alt_cfgs:
            extra = aggregate(summaries[len(cfgs):], m, w, ["none"], sim.duration_s, wall, alt, compare=not args.quick)
            hb = next((r for r in rows if r["policy"] == "hard_bind"), None)
            for r in extra:
                r["alternative"] = True
                if hb is not None and hb["runtime_s"] == hb["runtime_s"]:
                    r["ratio_hard_bind"] = r["runtime_s"] / hb["runtime_s"]
                    r["published_error"] = r["ratio_hard_bind"] / r["published_ratio_hard_bind"] - 1
            rows += extra
        all_rows.extend(rows)
        log(f"    done in {wall:.0f} s: " + ", ".join(
            f"{r['policy']} {_runtime_cell(r)}" for r in rows))
        try:
            name = f"locality_{m}_{w}.png"
            plot_locality(locality_curves(results[:len(cfgs)]), os.path.join(out, name),
                          f"{m} / {w}: local fraction (bold: mean over seeds still working)")
            plots_written.append(name)
            if (m, w) in nm_cells:
                for p in policies:
                    r = next(r for r in results[:len(cfgs)] if r.config.policy == p)
                    name = f"nmstat_{m}_{w}_{p}_seed{r.config.seed}.png"
                    plot_nmstat(r, os.path.join(out, name))
                    plots_written.append(name)
        except ImportError as e:  # matplotlib is optional on a bare GPU box
            plot_errors.append(str(e))
        del results
        os.makedirs(os.path.dirname(cell_file), exist_ok=True)
        atomic_text(cell_file, json.dumps(_json_safe(dict(rows=rows, runs=cell_runs,
                                                          plots=cell_plots(plots_written, m, w))))
                    + "\n")
        _remove_tree(ckpt)
        write_tables(complete=False)

    try:
        plots_written.extend(write_ratio_plots(all_rows, out))
    except ImportError as e:
        plot_errors.append(str(e))
    if plot_errors:
        log(f"validate: plots skipped: {plot_errors[0]}")
    write_tables(complete=True)
    doc = dict(meta=meta, rows=all_rows)
    if args.json:
        text = json.dumps(_json_safe(doc), indent=1)
        atomic_text(os.path.join(out, "validation.json"), text + "\n")
        print(text)
    else:
        print(markdown_report(all_rows, meta))
    log(f"validate: wrote {out} in {meta['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
