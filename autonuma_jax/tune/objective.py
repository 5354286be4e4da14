"""What a tuning job minimises, measured on one simulated run (full length or a shorter look).

Objectives (lower is better):

- ``runtime``: the benchmark's runtime, s (when its last thread finished).
- ``converge``: the time to converge, s (``metrics``: ``converge_s`` when the run ``converged``);
  a run that did not converge scores the length of the run it was measured on, i.e. "not within
  this many seconds" (censored), which ranks it behind every run that converged sooner.
- ``overhead``: the policy's kernel CPU time over the whole run, CPU s (``overhead_cpu_s``).
- ``weighted``: ``runtime + overhead_weight x overhead``, s: the user states what a CPU second of
  kernel work is worth in seconds of runtime (1.0 on a machine whose CPUs have nothing else to do
  would be generous; the number of CPUs is the break-even of a fully loaded machine).

A run that has not finished (an early rung looks at the first part of a run only) is scored by
projection from the share of the workload's writes it completed, ``progress`` (total MiB written
over the MiB the workload writes in all): runtime ~ elapsed / progress and overhead ~ overhead so
far / progress. Early rungs rank candidates by the speed they reached so far, which favours fast
convergence; the last rung always runs the full length, where nothing is projected.
"""
from __future__ import annotations

import math
from typing import Any

OBJECTIVES = ("runtime", "converge", "overhead", "weighted")
MIB = 1 << 20


def workload_mib(workload) -> float:
    """MiB the workload's threads write in all (init and work phases, every respawn)."""
    total = 0
    for t in workload.threads:
        nbytes = t.init_len * t.init_passes
        cw, ca = t.cycle_work, t.cycle_alt
        if ca > 0:
            per = cw + ca
            full, rem = divmod(t.work_passes, per)
            nbytes += full * (cw * t.work_len + ca * t.alt_len) + min(rem, cw) * t.work_len + max(0, rem - cw) * t.alt_len
        else:
            nbytes += t.work_passes * t.work_len
        total += nbytes * (workload.processes[t.mm].respawns + 1)
    return total / MIB


def progress(result) -> float:
    """Share of the workload's writes the run completed, in [0, 1]."""
    if bool((result.final["finish_tick"] >= 0).all()):
        return 1.0
    want = workload_mib(result.config.resolved_workload())
    done = float(result.final["tot_total_mib"])
    return min(1.0, done / want) if want > 0 else 1.0


def measure(result, objective: str, overhead_weight: float = 1.0) -> dict[str, Any]:
    """The run's summary metrics plus ``progress``, ``runtime_proj_s`` / ``overhead_proj_s``
    (projections, exact for a finished run) and ``objective``."""
    s = result.summary()
    p = progress(result)
    s["progress"] = p
    if s["finished"]:
        rt, ov = s["runtime_s"], s["overhead_cpu_s"]
    elif p > 0:
        rt, ov = s["sim_s"] / p, s["overhead_cpu_s"] / p
    else:
        rt = ov = math.inf
    s["runtime_proj_s"], s["overhead_proj_s"] = rt, ov
    if objective == "runtime":
        val = rt
    elif objective == "converge":
        val = s["converge_s"] if s["converged"] else s["sim_s"]
    elif objective == "overhead":
        val = ov
    elif objective == "weighted":
        val = rt + overhead_weight * ov
    else:
        raise ValueError(objective)
    s["objective"] = float(val)
    return s
