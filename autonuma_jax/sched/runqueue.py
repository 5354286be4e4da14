"""Per-CPU runqueue views derived from task placement (kernel/sched/core.c's rq->nr_running, curr).

Tasks never sleep inside a phase in these workloads, so a runnable task is one that has started and
not finished. CPUs shared by several tasks split each tick fairly (CFS); ``curr`` is the task with
the least CPU time received, ties to the lowest id.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..state import T_INIT, T_WORK

i32 = jnp.int32


def runnable(tasks):
    return ((tasks.phase == T_INIT) | (tasks.phase == T_WORK)) & (tasks.cpu >= 0)


def nr_running(tasks, n_cpus: int):
    r = runnable(tasks)
    return jax.ops.segment_sum(r.astype(i32), jnp.where(r, tasks.cpu, n_cpus), num_segments=n_cpus + 1)[:n_cpus]


def curr(tasks, n_cpus: int):
    """[C] task running on each CPU (-1 = idle)."""
    r = runnable(tasks)
    T = tasks.cpu.shape[0]
    seg = jnp.where(r, tasks.cpu, n_cpus)
    big = jnp.iinfo(i32).max
    min_exec = jax.ops.segment_min(jnp.where(r, tasks.exec_us, big), seg, num_segments=n_cpus + 1)
    cand = r & (tasks.exec_us == min_exec[seg])
    ids = jnp.arange(T, dtype=i32)
    best = jax.ops.segment_min(jnp.where(cand, ids, big), seg, num_segments=n_cpus + 1)[:n_cpus]
    return jnp.where(best == big, -1, best).astype(i32)


def busy_on_core(nr, cpu_core, n_cpus: int):
    """[C] CPUs of each CPU's core that have work (SMT siblings share the core's miss slots)."""
    busy = (nr > 0).astype(i32)
    per_core = jax.ops.segment_sum(busy, cpu_core, num_segments=n_cpus)
    return per_core[cpu_core]


def sibling_busy(nr, cpu_core, n_cpus: int):
    """[C] another CPU of the same core has work."""
    return (busy_on_core(nr, cpu_core, n_cpus) - (nr > 0).astype(i32)) > 0


def task_autonuma_cpu(selected_nid, cpu_node_of_dst, autonuma_on):
    """kernel/sched/numa.c task_autonuma_cpu(): may p run on a CPU of this node?"""
    return (~autonuma_on) | (selected_nid < 0) | (cpu_node_of_dst == selected_nid)
