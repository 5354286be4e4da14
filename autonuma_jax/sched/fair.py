"""CFS placement and balancing with AutoNUMA's affinity hooks (kernel/sched/fair.c, spec §6.3).

- ``place_new_task``: fork balancing (find_idlest_group / find_idlest_cpu): the idlest allowed
  node, then an idle core, then an idle CPU; under AutoNUMA only CPUs that pass
  ``task_autonuma_cpu`` qualify.
- ``noise_move``: other activity on a real machine moves a running thread to another node now and
  then, at a machine-wide rate (a knob, the same for every policy) [I]. The wake-up path honours
  ``task_selected_nid`` (select_idle_sibling, wake-affine only inside the selected node), so under
  AutoNUMA a move away from a task's selected node is refused.
- ``load_balance``: one pull per tick from the busiest CPU (own node first) to a CPU with at least
  two fewer tasks: first a NUMA pass over affine tasks, then a relaxed pass, which
  ``load_balance_strict`` forbids except for idle balancing.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ops import bit, first_argmax
from ..pytree import replace
from .runqueue import curr, nr_running, runnable, sibling_busy, task_autonuma_cpu

i32 = jnp.int32
BIG = jnp.iinfo(jnp.int32).max


def place_new_task(tasks, t, params, static, autonuma_on):
    """CPU for new task t (fork balancing)."""
    mp = params.machine
    C, N = static.n_cpus, static.n_nodes
    nr = nr_running(tasks, C)
    sel = tasks.task_selected_nid[t]
    nodes = jnp.arange(N, dtype=i32)
    node_ok = bit(params.workload.cpus_allowed[t], nodes) & task_autonuma_cpu(sel, nodes, autonuma_on)
    node_load = jax.ops.segment_sum(nr, mp.cpu_node, num_segments=N)
    n_best = jnp.argmin(jnp.where(node_ok, node_load, BIG)).astype(i32)
    sib = sibling_busy(nr, mp.cpu_core, C).astype(i32)
    key = jnp.where(mp.cpu_node == n_best, nr * 2 + sib, BIG)
    return jnp.argmin(key).astype(i32)


def nth_true(mask, n):
    """Index of the n-th (0-based) True in mask, -1 if none."""
    c = jnp.cumsum(mask.astype(i32))
    hit = mask & (c == n + 1)
    return jnp.where(jnp.any(hit), jnp.argmax(hit), -1).astype(i32)


def noise_move(tasks, draws, params, static, autonuma_on):
    """At most one cross-node move of a running thread per tick; returns (tasks, moved)."""
    mp = params.machine
    C = static.n_cpus
    r = runnable(tasks)
    n_run = jnp.sum(r.astype(i32))
    event = (draws.noise[0] < params.derived.noise_threshold) & (n_run > 0)
    p = nth_true(r, draws.noise[1] % jnp.maximum(n_run, 1))
    p_safe = jnp.maximum(p, 0)
    pc = jnp.maximum(tasks.cpu[p_safe], 0)
    pn = mp.cpu_node[pc]
    dst_ok = (mp.cpu_node != pn) & bit(params.workload.cpus_allowed[p_safe], mp.cpu_node)
    k = jnp.sum(dst_ok.astype(i32))
    x = nth_true(dst_ok, draws.noise[2] % jnp.maximum(k, 1))
    x_safe = jnp.maximum(x, 0)
    cur = curr(tasks, C)
    o = cur[x_safe]
    o_safe = jnp.maximum(o, 0)
    ok_p = task_autonuma_cpu(tasks.task_selected_nid[p_safe], mp.cpu_node[x_safe], autonuma_on)
    ok_o = (o < 0) | (task_autonuma_cpu(tasks.task_selected_nid[o_safe], pn, autonuma_on)
                      & bit(params.workload.cpus_allowed[o_safe], pn))
    do = event & (p >= 0) & (x >= 0) & ok_p & ok_o
    cpu = tasks.cpu
    cpu = cpu.at[jnp.where(do, p_safe, static.n_tasks)].set(x_safe, mode="drop")
    cpu = cpu.at[jnp.where(do & (o >= 0), o_safe, static.n_tasks)].set(pc, mode="drop")
    return replace(tasks, cpu=cpu), do


def load_balance(tasks, params, static, autonuma_on, strict):
    """One CFS pull per tick (idle / periodic balancing); returns (tasks, moved)."""
    mp = params.machine
    C, N, T = static.n_cpus, static.n_nodes, static.n_tasks
    nr = nr_running(tasks, C)
    cur = curr(tasks, C)
    cpus = jnp.arange(C, dtype=i32)
    # busiest CPU of each node and of the machine (first maximum)
    same = mp.cpu_node[:, None] == mp.cpu_node[None, :]  # [C, C]
    node_best = first_argmax(jnp.where(same, nr[None, :], -1), axis=1)  # [C] per puller's node
    glob_best = first_argmax(nr)
    src = jnp.where(nr[node_best] >= nr + 2, node_best, jnp.where(nr[glob_best] >= nr + 2, glob_best, -1))
    r = runnable(tasks)
    ids = jnp.arange(T, dtype=i32)
    src_safe = jnp.maximum(src, 0)
    on_src = r[None, :] & (tasks.cpu[None, :] == src[:, None]) & (ids[None, :] != cur[src_safe][:, None])
    dst_node = mp.cpu_node  # [C]
    allowed = bit(params.workload.cpus_allowed[None, :], dst_node[:, None])
    cand = on_src & allowed & (src[:, None] >= 0)
    affine = cand & task_autonuma_cpu(tasks.task_selected_nid[None, :], dst_node[:, None], autonuma_on)
    relaxed_ok = (nr == 0) | (strict == 0) | ~autonuma_on  # idle balancing may always pull
    first_aff = jnp.min(jnp.where(affine, ids[None, :], BIG), axis=1)
    first_any = jnp.min(jnp.where(cand, ids[None, :], BIG), axis=1)
    choice = jnp.where(first_aff < BIG, first_aff, jnp.where(relaxed_ok, first_any, BIG))
    has = choice < BIG
    a = jnp.argmax(has).astype(i32)
    do = jnp.any(has)
    t = jnp.where(do, choice[a], T)
    cpu = tasks.cpu.at[t].set(a, mode="drop")
    return replace(tasks, cpu=cpu), do
