"""What ``perf bench numa mem`` prints, from a simulated run's time series: calc_convergence() and
print_res() of tools/perf/bench/numa.c.

The measurement window opens at the barrier perf holds its threads at until every task is
initialised: here the first report row at which every thread is past its initialisation
(``tasks_working``). It closes ``nr_secs`` later, when every thread finished ``nr_loops`` loops,
or, with ``measure_convergence``, at the first converged check. Rows are the resolution: with
``sim.report_interval_ms`` of 1000 or a divisor of it, the checks land on whole seconds after the
barrier as perf's (made once a second by the last task).

Convergence (calc_convergence / calc_convergence_compression): at a check, each thread is on the
node of the CPU it last ran on (a thread never seen running is unknown: not converged, as today's
perf); the system is converged when every process has all its threads on one node. Several
processes may share a node, and where the memory is does not enter.

Figures (print_res), bytes in GB of 1e9, as perf divides:

- ``perf_convergence_latency_s`` ("secs latency to NUMA-converge"): barrier to the first converged
  check; NaN when it did not converge in the window (perf then runs to -s and prints ~nr_secs);
  ``perf_converged`` says which.
- ``perf_runtime_max_s`` / ``_min_s`` / ``_avg_s`` ("secs slowest / fastest / average
  thread-runtime"): the window's length (perf: the parent's wall time to the last exit), and over
  the threads, their time from the barrier to their last loop (the window's end unless they ran
  out of loops before it).
- ``perf_spread_runtime_pct`` ("% difference between max/avg runtime"): ((max - min) / 2) / max x 100.
- ``perf_data_thread_gb``, ``perf_data_total_gb``: bytes the threads wrote in the window (perf
  counts nominal bytes per finished loop; here the bytes written).
- ``perf_runtime_byte_thread_ns`` ("nsecs/byte/thread runtime"): runtime_max x 1e9 / (bytes / tasks).
- ``perf_thread_speed_gbs`` ("GB/sec/thread speed"), ``perf_total_speed_gbs`` ("GB/sec total speed").
- ``perf_cut_short``: the simulation ended (``sim.duration_s``) before the window closed; the
  figures then cover what was simulated.
"""
from __future__ import annotations

import math

import numpy as np

FIGURES = ("perf_convergence_latency_s", "perf_converged", "perf_runtime_max_s", "perf_runtime_min_s",
           "perf_runtime_avg_s", "perf_spread_runtime_pct", "perf_data_thread_gb", "perf_data_total_gb",
           "perf_runtime_byte_thread_ns", "perf_thread_speed_gbs", "perf_total_speed_gbs", "perf_cut_short")


def last_known_node(task_node: np.ndarray) -> np.ndarray:
    """[R, T] node of the CPU each thread last ran on, as of each row (-1: never seen)."""
    tn = np.asarray(task_node)
    idx = np.where(tn >= 0, np.arange(len(tn))[:, None], -1)
    idx = np.maximum.accumulate(idx, axis=0)
    return np.where(idx >= 0, np.take_along_axis(tn, np.maximum(idx, 0), axis=0), -1)


def converged_rows(task_node: np.ndarray, task_mm: np.ndarray, n_mms: int) -> np.ndarray:
    """[R] bool: every process has all its threads (last seen) on one node."""
    nodes = last_known_node(task_node)
    if nodes.shape[0] == 0:
        return np.zeros(0, bool)
    known = np.all(nodes >= 0, axis=1)
    ok = known.copy()
    mm = np.asarray(task_mm)
    for m in range(n_mms):  # processes: a handful (loop over processes, not over rows or ticks)
        sel = nodes[:, mm == m]
        if sel.shape[1]:
            ok &= sel.min(axis=1) == sel.max(axis=1)
    return ok


def perf_figures(rows: dict, tick_s: float, finish_tick: np.ndarray, bench, task_mm: np.ndarray) -> dict:
    nan = float("nan")
    out = {k: nan for k in FIGURES}
    out["perf_converged"] = False
    n_tasks = len(task_mm)
    t = np.asarray(rows["tick"], np.float64) * tick_s
    working = np.asarray(rows["tasks_working"])
    ready = np.nonzero(working >= n_tasks)[0]
    if len(t) == 0 or len(ready) == 0:
        out["perf_cut_short"] = True
        return _plain(out)
    i0 = int(ready[0])
    t0 = t[i0]
    eps = 0.5 * tick_s
    end = t0 + bench.nr_secs if bench.nr_secs else math.inf
    done = np.nonzero(np.asarray(rows["tasks_done"]) >= n_tasks)[0]
    if len(done):
        end = min(end, t[int(done[0])])
    # the checks: once a second after the barrier, at the first row at or past each whole second
    conv = converged_rows(rows["task_node"], task_mm, int(np.max(task_mm)) + 1)
    latency = nan
    k = 1
    while t0 + k <= min(end, t[-1]) + eps:
        i = int(np.searchsorted(t, t0 + k - eps))
        if i < len(t) and conv[i]:
            latency = t[i] - t0
            break
        k += 1
    if not math.isnan(latency):
        out["perf_converged"] = True
        out["perf_convergence_latency_s"] = latency
        if bench.measure_convergence:
            end = min(end, t0 + latency)
    cut = end > t[-1] + eps
    i1 = len(t) - 1 if cut else int(np.searchsorted(t, end - eps))
    runtime = t[i1] - t0
    kib = float(np.asarray(rows["total_kib"], np.float64)[i0 + 1:i1 + 1].sum())
    nbytes = kib * 1024.0
    ft = np.asarray(finish_tick, np.float64) * tick_s
    per_thread = np.where((ft >= 0) & (ft - t0 < runtime), np.maximum(ft - t0, 0.0), runtime)
    out.update(perf_cut_short=bool(cut), perf_runtime_max_s=runtime, perf_runtime_min_s=float(per_thread.min()),
               perf_runtime_avg_s=float(per_thread.mean()), perf_data_total_gb=nbytes / 1e9,
               perf_data_thread_gb=nbytes / n_tasks / 1e9)
    if runtime > 0:
        out["perf_spread_runtime_pct"] = (runtime - float(per_thread.min())) / 2 / runtime * 100
        out["perf_thread_speed_gbs"] = nbytes / n_tasks / 1e9 / runtime
        out["perf_total_speed_gbs"] = nbytes / runtime / 1e9
        if nbytes > 0:
            out["perf_runtime_byte_thread_ns"] = runtime * 1e9 / (nbytes / n_tasks)
    return _plain(out)


def _plain(d: dict) -> dict:
    """Plain Python values (summaries are)."""
    return {k: bool(v) if isinstance(v, (bool, np.bool_)) else float(v) for k, v in d.items()}


def perf_text(fig: dict, case: str) -> str:
    """The figures in perf's long format (print_res without -q)."""
    lines = [f" # {case}"]
    if fig["perf_converged"]:
        lines.append(f" {fig['perf_convergence_latency_s']:14.3f} secs latency to NUMA-converge")
    else:
        lines.append("            did not converge in the window")
    for k, text in (("perf_runtime_max_s", "secs slowest (max) thread-runtime"),
                    ("perf_runtime_min_s", "secs fastest (min) thread-runtime"),
                    ("perf_runtime_avg_s", "secs average thread-runtime"),
                    ("perf_spread_runtime_pct", "% difference between max/avg runtime"),
                    ("perf_data_thread_gb", "GB data processed, per thread"),
                    ("perf_data_total_gb", "GB data processed, total"),
                    ("perf_runtime_byte_thread_ns", "nsecs/byte/thread runtime"),
                    ("perf_thread_speed_gbs", "GB/sec/thread speed"),
                    ("perf_total_speed_gbs", "GB/sec total speed")):
        lines.append(f" {fig[k]:14.3f} {text}")
    return "\n".join(lines) + "\n"
