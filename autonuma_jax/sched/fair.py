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
- ``active_balance``: Linux 3.6 active load balancing between nodes. When a node has an idle CPU
  and another node runs at least two more tasks, idle balancing at the NUMA level finds the busy
  node's CPUs each running one task: nothing it may move without stopping a CPU, so its attempts
  fail, and after ``cache_nice_tries + 2`` failures (``need_active_balance``) the busiest CPU's
  running task is pushed onto the idle CPU (``active_load_balance_cpu_stop``). This is what spreads
  the threads that are left as others finish. One such move per ``sched.active_balance_millisecs``
  [I: the NUMA domain's idle interval (sd_weight ms, doubling on failure) times the 5 failures,
  about 200 ms]. The stopper moves one task of the busiest CPU (the first such CPU of the busy
  node) with ``move_one_task``: an affine task first (AutoNUMA's NUMA pass), else any (idle
  balancing may always pull a non-affine task); lowest task id first.
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


def _due(tick, every):
    """An active-balance point: every ``every`` ticks (0 = never)."""
    return (every > 0) & ((tick % jnp.maximum(every, 1)) == 0)


def active_balance_needed(tasks, params, static, tick):
    """This tick is an active-balance point and some node is idle-ish next to a busier one."""
    mp = params.machine
    N = static.n_nodes
    nr = nr_running(tasks, static.n_cpus)
    node_nr = jax.ops.segment_sum(nr, mp.cpu_node, num_segments=N)
    idle_cpu = jax.ops.segment_sum((nr == 0).astype(i32), mp.cpu_node, num_segments=N) > 0
    due = _due(tick, params.derived.active_balance_ticks)
    lo = jnp.min(jnp.where(idle_cpu, node_nr, BIG))
    return due & (jnp.max(node_nr) >= lo + 2) & (N > 1)


def active_balance(tasks, params, static, autonuma_on, tick):
    """One active-balance move (see the module docstring) at an active-balance point; returns
    (tasks, moved). The identity when ``active_balance_needed`` is false."""
    mp = params.machine
    C, N, T = static.n_cpus, static.n_nodes, static.n_tasks
    nr = nr_running(tasks, C)
    node_nr = jax.ops.segment_sum(nr, mp.cpu_node, num_segments=N)
    idle_cpu = jax.ops.segment_sum((nr == 0).astype(i32), mp.cpu_node, num_segments=N) > 0
    a_node = jnp.argmin(jnp.where(idle_cpu, node_nr, BIG)).astype(i32)  # the idlest node with an idle CPU
    b_node = first_argmax(node_nr)  # the busiest node
    due = _due(tick, params.derived.active_balance_ticks)
    ok = due & (node_nr[b_node] >= node_nr[a_node] + 2) & idle_cpu[a_node]
    # destination: an idle CPU of the idle node, on an idle core first
    sib = sibling_busy(nr, mp.cpu_core, C).astype(i32)
    dst_key = jnp.where((mp.cpu_node == a_node) & (nr == 0), sib, BIG)
    dst = jnp.argmin(dst_key).astype(i32)
    # source: the busiest CPU of the busy node (first maximum)
    src = first_argmax(jnp.where(mp.cpu_node == b_node, nr, -1))
    r = runnable(tasks)
    ids = jnp.arange(T, dtype=i32)
    on_src = r & (tasks.cpu == src) & bit(params.workload.cpus_allowed, a_node)
    affine = on_src & task_autonuma_cpu(tasks.task_selected_nid, a_node, autonuma_on)
    pick_aff = jnp.min(jnp.where(affine, ids, BIG))
    pick_any = jnp.min(jnp.where(on_src, ids, BIG))
    t = jnp.where(pick_aff < BIG, pick_aff, pick_any)
    do = ok & (t < BIG)
    cpu = tasks.cpu.at[jnp.where(do, t, T)].set(dst, mode="drop")
    return replace(tasks, cpu=cpu), do
