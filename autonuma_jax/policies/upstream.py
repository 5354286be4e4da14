"""Upstream automatic NUMA balancing: Linux 3.8 "balancenuma" and Linux 3.13 (spec §12).

Both scan from task context (``task_numa_work``: each task whose CPU time since its last stamp
exceeds its ``numa_scan_period`` may scan ``scan_size_mb`` of its process's address space, one scan
per process per period), take NUMA hinting faults on the armed pages, and migrate a misplaced page
synchronously in the fault, at most ``ratelimit_pages`` per ``migrate_interval_millisecs`` into each
node and only while the destination stays above its high watermark.

- 3.8: the page's ``last_nid`` must equal this node (a fresh page does not migrate on its first
  fault); every fault that did not migrate slows the task's scanning by 10 ms, reset to the minimum
  every ``scan_period_reset``; no scanning until the process ran on a node other than its first;
  no scanning while the local node is rate limited; no task placement.
- 3.13: the page remembers the last faulting CPU and task (``last_cpupid``, kept in
  ``pages.migrate_seq``, unused by these policies otherwise): migrate when it is unset or on this
  node; faults are counted per node as private (same task as last time) or shared; once per scan
  sequence they decay (``faults / 2 + buffer``), the preferred node becomes their argmax (with the
  numa group's faults for grouped tasks), the scan period adapts to locality (RSS-scaled bounds),
  and ``task_numa_migrate`` moves the task to its preferred node or swaps it with a task there,
  refusing moves that would unbalance the nodes beyond ``imbalance_pct``. Threads that share
  pages form numa groups.

Modelling choices [I]: one scanner per process per tick (the lowest task id among those due);
concurrent ``task_numa_migrate`` decisions of one tick are settled like AutoNUMA's exchanges
(sched/numa.py); migrations of one tick are granted in fault-time order against the rate limit and
the watermark; numa groups only form between threads of one process (pages here are private to
their process).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..config import POLICY_BALANCENUMA, POLICY_NUMA_BALANCING, POLICY_NUMA_CORE, POLICY_SCHED_NUMA
from ..ops import bit, first_argmax, permille
from ..pytree import replace
from ..sched.runqueue import curr, nr_running, runnable
from ..sched.settle import move_tasks
from ..state import PMD_NUMA, PMD_THP
from ..vmstat import count_vm_numa_events
from ..mm.migrate import unit_mm
from . import numacore

i32 = jnp.int32
BIG = jnp.iinfo(jnp.int32).max


def kind(params):
    return params.policy


def upstream_on(params):
    """Scanning and faults are active: balancenuma, sched_numa, or numa_balancing with
    kernel.numa_balancing=1."""
    p = params.policy
    return ((p == POLICY_BALANCENUMA) | (p == POLICY_SCHED_NUMA) | (p == POLICY_NUMA_CORE)
            | ((p == POLICY_NUMA_BALANCING) & (params.knobs.numa_balancing.numa_balancing == 1)))


def _ms_to_ticks(ms, static):
    tick_us = max(1, static.tick_ns // 1000)
    return jnp.maximum(1, (ms * 1000 + tick_us - 1) // tick_us)


def _rss_pages(state, params):
    return jnp.sum(state.mms.node_pages, axis=1)  # [M]


def scan_bounds(state, params, static):
    """(min, max) scan period in ms per task (3.13 task_scan_min/max; 3.8: the sysctls)."""
    d = params.derived
    rss = _rss_pages(state, params)[params.workload.task_mm]
    size_pages = d.up_scan_units * static.unit_pages
    windows = jnp.maximum(1, (rss + size_pages - 1) // jnp.maximum(size_pages, 1))
    floor = (1000 * d.up_scan_mb) // 2560  # MAX_SCAN_WINDOW: at most 2560 MB/s of scanning
    smin = jnp.maximum(floor, d.up_period_min_ms // windows)
    smax = jnp.maximum(smin, d.up_period_max_ms // windows)
    is313 = params.policy == POLICY_NUMA_BALANCING
    return (jnp.where(is313, smin, d.up_period_min_ms), jnp.where(is313, smax, d.up_period_max_ms))


# ------------------------------------------------------------------------------------------------
# task_tick_numa + task_numa_work: task-context scanning
# ------------------------------------------------------------------------------------------------
def scan_needed(state, params):
    tasks, nb = state.tasks, state.numab
    d = params.derived
    period_us = jnp.where(nb.scan_period == 0, d.up_scan_delay_ms, nb.scan_period) * 1000
    return jnp.any(upstream_on(params) & runnable(tasks) & (tasks.exec_us - nb.node_stamp >= period_us))


def task_numa_work(state, params, static):
    """Returns (state, per-task scan cost ns)."""
    tasks, nb, pages, mms = state.tasks, state.numab, state.pages, state.mms
    wp, d, costs, mp = params.workload, params.derived, params.knobs.costs, params.machine
    T, M, N, U = static.n_tasks, static.n_mms, static.n_nodes, static.n_units
    tick = state.tick
    on = upstream_on(params)
    is38 = params.policy == POLICY_BALANCENUMA
    run = runnable(tasks)
    smin, smax = scan_bounds(state, params, static)
    period_us = jnp.where(nb.scan_period == 0, d.up_scan_delay_ms, nb.scan_period) * 1000
    isC = params.policy == POLICY_NUMA_CORE
    rss = _rss_pages(state, params)
    big_enough = jnp.where(isC, rss[wp.task_mm] >= d.up_rss_min_pages, True)  # v18 RSS filter
    due = on & run & big_enough & (tasks.exec_us - nb.node_stamp >= period_us)
    # numa_core: node_stamp += period and the period restarts from the minimum at every trigger
    node_stamp = jnp.where(due, jnp.where(isC, nb.node_stamp + period_us, tasks.exec_us), nb.node_stamp)
    period = jnp.where(due & ((nb.scan_period == 0) | isC), smin, nb.scan_period)  # slow start over
    mm = wp.task_mm
    ids = jnp.arange(T, dtype=i32)
    # 3.8: no scanning until the process has run on a node other than its first node. Every task
    # whose scan work runs checks this first, before the scan-time check and the cmpxchg: the first
    # one of a new mm records its node and returns; one on another node (or NUMA_FORCE) activates
    # scanning for the mm and goes on, and so do the tasks after it. Due tasks go in id order [I].
    tnode = mp.cpu_node[jnp.maximum(tasks.cpu, 0)]
    first0 = nb.first_nid
    lowest = jax.ops.segment_min(jnp.where(due, ids, T), mm, num_segments=M)
    f_set = jnp.where(is38 & (first0 == -2) & (lowest < T), tnode[jnp.minimum(lowest, T - 1)], first0)
    # (a task that records the first node in this tick returns, even with NUMA_FORCE)
    later = jnp.where(first0[mm] == -2, ids > lowest[mm], True)
    off = due & later & ((tnode != f_set[mm]) | (d.up_numa_force == 1))
    activator = jax.ops.segment_min(jnp.where(off, ids, T), mm, num_segments=M)
    active0 = first0 == -1
    passes = due & (~is38 | active0[mm] | (ids >= activator[mm]))
    first = jnp.where(is38 & ~active0 & (activator < T), -1, jnp.where(is38, f_set, first0))
    cand = passes & (tick >= nb.next_scan[mm])
    winner = jax.ops.segment_min(jnp.where(cand, ids, T), mm, num_segments=M)  # [M] the cmpxchg winner
    scans = winner < T
    w = jnp.minimum(winner, T - 1)
    interval = jnp.where(d.up_mm_interval_ms >= 0, d.up_mm_interval_ms, period[w])
    next_scan = jnp.where(scans, tick + _ms_to_ticks(interval, static), nb.next_scan)
    # 3.8: reset the scan period to the minimum every scan_period_reset
    reset = scans & is38 & (tick >= nb.next_reset)
    next_reset = jnp.where(reset, tick + _ms_to_ticks(d.up_reset_ms, static), nb.next_reset)
    period = period.at[jnp.where(reset, w, T)].set(d.up_period_min_ms, mode="drop")
    # 3.8: skip scanning while the local node is migration rate limited
    wnode = tnode[w]
    limited = (tick < nb.rl_end[wnode]) & (nb.rl_pages[wnode] >= d.up_rl_pages)
    do = scans & ~(is38 & limited)

    # the scan: scan_size of address space from numa_scan_offset; wrapping starts a new sequence
    mm_len = wp.mm_len
    wrap = do & (nb.scan_offset >= mm_len)
    seq = nb.mm_scan_seq + wrap.astype(i32)
    off = jnp.where(wrap, 0, nb.scan_offset)
    Wt = static.task_scan_units
    j = jnp.arange(Wt, dtype=i32)
    rel = off[:, None] + j[None, :]
    in_va = do[:, None] & (rel < mm_len[:, None])
    u = jnp.minimum(wp.mm_start[:, None] + rel, U - 1)
    # numa_core (v18): the size adapts to the scanning task's convergence strength, counted in
    # present pages; the others scan scan_size of address space
    size_c = d.up_scan_min_units + ((d.up_scan_units - d.up_scan_min_units) * (1024 - nb.strength[w])) // 1024
    pres_va = in_va & (pages.node[u] >= 0)
    n_before = jnp.cumsum(pres_va.astype(i32), axis=1) - pres_va.astype(i32)
    inside = in_va & jnp.where(isC, (n_before < size_c[:, None]) & (j[None, :] < static.task_scan_units),
                               j[None, :] < d.up_scan_units)
    present = inside & (pages.node[u] >= 0)
    if static.pte_faults:
        newly = present & (pages.pte_numa[u] == 0)
        pte_numa = pages.pte_numa.at[jnp.where(newly, u, U).ravel()].set(jnp.uint8(1), mode="drop")
        pages = replace(pages, pte_numa=pte_numa)
        n_pte = jnp.sum(present.astype(i32), axis=1)
        cost = n_pte * costs.scan_per_pte_ns
        huge_updates = jnp.int32(0)
    else:
        pmd = u // static.units_per_pmd
        fl = pages.pmd_flags[pmd]
        newly = present & ((fl & PMD_NUMA) == 0)
        pmd_flags = pages.pmd_flags.at[jnp.where(newly, pmd, static.n_pmds).ravel()].set(
            (fl | jnp.uint8(PMD_NUMA)).ravel(), mode="drop")
        pages = replace(pages, pmd_flags=pmd_flags)
        cost = jnp.sum(present.astype(i32), axis=1) * costs.scan_per_pmd_ns
        huge_updates = jnp.sum((newly & ((fl & PMD_THP) != 0)).astype(i32)) if static.unit_pages == 512 else jnp.int32(0)
    # change_prot_numa's count: 4 KiB pages newly armed (a pmd of 2 MiB units counts 512)
    state = count_vm_numa_events(state, numa_pte_updates=jnp.sum(newly.astype(i32)) * static.unit_pages,
                                 numa_huge_pte_updates=huge_updates)
    cost = cost + jnp.where(do, costs.scan_tlb_flush_ns, 0)
    scanned = jnp.sum(inside.astype(i32), axis=1)
    offset = jnp.where(do, off + scanned, nb.scan_offset)
    task_cost = jax.ops.segment_sum(jnp.where(do, cost, 0), jnp.where(do, winner, T), num_segments=T + 1)[:T]
    nb = replace(nb, scan_period=period, node_stamp=node_stamp, next_scan=next_scan, next_reset=next_reset,
                 first_nid=first, scan_offset=offset, mm_scan_seq=jnp.where(do, seq, nb.mm_scan_seq))
    return replace(state, numab=nb, pages=pages), task_cost


# ------------------------------------------------------------------------------------------------
# the hinting fault: do_numa_page -> mpol_misplaced -> migrate_misplaced_page, task_numa_fault
# ------------------------------------------------------------------------------------------------
CPUPID_TASK_BITS = 12


def numa_fault(state, params, static, x_unit, x_task, x_valid, this_nid, this_cpu):
    """Upstream fault handling for page units x (time order). Returns (state, stats)."""
    pages, tasks, nb, mms = state.pages, state.tasks, state.numab, state.mms
    d, mp, wp, costs = params.derived, params.machine, params.workload, params.knobs.costs
    N, T, U, M = static.n_nodes, static.n_tasks, static.n_units, static.n_mms
    w = static.unit_pages
    tick = state.tick
    is38 = params.policy == POLICY_BALANCENUMA
    g = x_valid & upstream_on(params)
    u = jnp.minimum(x_unit, U - 1)
    t = jnp.minimum(x_task, T - 1)
    page_nid = pages.node[u].astype(i32)
    # 3.8 two-stage filter on last_nid (a fresh page never migrates on its first fault)
    last = pages.last_nid[u].astype(i32)
    want38 = last == this_nid
    # 3.13: last_cpupid = (cpu << 12) | task; first fault allowed
    prev = pages.migrate_seq[u]
    prev_cpu = jnp.right_shift(prev, CPUPID_TASK_BITS)
    prev_task = prev & ((1 << CPUPID_TASK_BITS) - 1)
    prev_nid = jnp.where(prev >= 0, mp.cpu_node[jnp.clip(prev_cpu, 0, static.n_cpus - 1)], -1)
    want313 = (prev < 0) | (prev_nid == this_nid)
    private = (prev >= 0) & (prev_task == t)
    # sched_numa: the two-sample last_nid rule, and only for a task that has a home node (the home
    # policy carries MPOL_F_MOF; with NUMA_MIGRATION off nothing acts on the statistics)
    isB = params.policy == POLICY_SCHED_NUMA
    isC = params.policy == POLICY_NUMA_CORE
    wantB = want38 & (nb.preferred[t] >= 0) & (params.knobs.sched_numa.numa_migration == 1)
    # numa_core: private -> this node after an "access hit" (last_cpu on this node); shared -> the
    # interleave node of the address; non-NUMA -> never
    cls = nb.shared[t]
    target_c = numacore.interleave_target(state, params, static, t, u) if _has(static, POLICY_NUMA_CORE) else this_nid
    dest = jnp.where(isC & (cls == 1), target_c, this_nid)
    wantC = jnp.where(cls == 1, True, (cls == 0) & (prev >= 0) & (prev_nid == this_nid))
    want = g & jnp.where(is38, want38, jnp.where(isB, wantB, jnp.where(isC, wantC, want313))) & (page_nid != dest)
    this_nid_fault = this_nid
    this_nid = dest  # from here on: the migration destination
    private = jnp.where(isC, (prev >= 0) & (prev_cpu == tasks.cpu[t]), private & ~isB & ~is38)

    # rate limit + room, granted in fault order per destination. A node's window restarts lazily, at
    # the first migration attempt after it ended (numamigrate_update_ratelimit), so a tick without
    # faults leaves it alone.
    nodes = jnp.arange(N, dtype=i32)[None, :]
    tried = jnp.any(want[:, None] & (this_nid[:, None] == nodes), axis=0)
    window_over = tried & (tick >= nb.rl_end)
    rl_pages = jnp.where(window_over, 0, nb.rl_pages)
    rl_end = jnp.where(window_over, tick + _ms_to_ticks(d.up_rl_window_ms, static), nb.rl_end)
    onehot = (want[:, None] & (this_nid[:, None] == nodes)).astype(i32) * w
    cum = jnp.take_along_axis(jnp.cumsum(onehot, axis=0), jnp.clip(this_nid, 0, N - 1)[:, None], axis=1)[:, 0]
    dn = jnp.clip(this_nid, 0, N - 1)
    ok_rate = rl_pages[dn] + cum <= d.up_rl_pages
    ok_room = state.free_pages[dn] - cum > mp.wmark_high[dn]
    moved = want & ok_rate & ok_room
    node_after = jnp.where(moved, this_nid, page_nid)

    mig_pages = jax.ops.segment_sum(jnp.where(moved, w, 0), jnp.where(moved, this_nid, N), num_segments=N + 1)[:N]
    out_pages = jax.ops.segment_sum(jnp.where(moved, w, 0), jnp.where(moved, page_nid, N), num_segments=N + 1)[:N]
    m_of = unit_mm(u, wp.mm_start)
    add = jax.ops.segment_sum(jnp.where(moved, w, 0), jnp.where(moved, m_of * N + this_nid, M * N), num_segments=M * N + 1)
    sub = jax.ops.segment_sum(jnp.where(moved, w, 0), jnp.where(moved, m_of * N + page_nid, M * N), num_segments=M * N + 1)
    mms = replace(mms, node_pages=mms.node_pages + (add - sub)[:M * N].reshape(M, N))
    idx = jnp.where(g, u, U)
    pages = replace(
        pages,
        node=pages.node.at[jnp.where(moved, u, U)].set(this_nid.astype(pages.node.dtype), mode="drop"),
        last_nid=pages.last_nid.at[idx].set(this_nid_fault.astype(pages.last_nid.dtype), mode="drop"),
        migrate_seq=pages.migrate_seq.at[idx].set(jnp.left_shift(this_cpu, CPUPID_TASK_BITS) | t, mode="drop"),
    )
    free = state.free_pages - mig_pages + out_pages
    # zone_statistics of the migration targets: the destination is the preferred node (a hit);
    # local when it is the faulting CPU's node
    mig_local = jnp.sum(jnp.where(moved & (this_nid == this_nid_fault), w, 0))
    state = count_vm_numa_events(state, numa_hit=jnp.sum(mig_pages), numa_local=mig_local,
                                 numa_other=jnp.sum(mig_pages) - mig_local)

    # task_numa_fault: statistics (3.13) and the scan period (3.8: +10 ms per fault not migrated)
    tt = jnp.where(g, t, T)
    local = page_nid == this_nid_fault  # TNF_FAULT_LOCAL: the page was already on the faulting node
    fb_add = jax.ops.segment_sum(jnp.where(g, w, 0), (tt * N + node_after) * 2 + private.astype(i32),
                                 num_segments=(T + 1) * N * 2)[:T * N * 2].reshape(T, N, 2)
    loc_add = jax.ops.segment_sum(jnp.where(g, w, 0), tt * 2 + local.astype(i32), num_segments=(T + 1) * 2)[:T * 2]
    not_moved = jax.ops.segment_sum((g & ~moved).astype(i32), tt, num_segments=T + 1)[:T]
    _, smax = scan_bounds(state, params, static)
    period38 = jnp.minimum(nb.scan_period + 10 * not_moved, smax)
    period = jnp.where(is38, jnp.where(not_moved > 0, period38, nb.scan_period), nb.scan_period)
    nb = replace(nb, faults_buf=nb.faults_buf + fb_add, locality=nb.locality + loc_add.reshape(T, 2),
                 scan_period=period, rl_pages=rl_pages + mig_pages, rl_end=rl_end)

    # numa groups (3.13): a shared fault on a page last touched by a task that runs right now on the
    # recorded CPU joins that task's group if it is at least as large (ties: the older group)
    cur = curr(tasks, static.n_cpus)
    other = cur[jnp.clip(prev_cpu, 0, static.n_cpus - 1)]
    same_mm = wp.task_mm[jnp.maximum(other, 0)] == wp.task_mm[t]
    is313 = params.policy == POLICY_NUMA_BALANCING
    join = (g & is313 & (prev >= 0) & ~private & (other >= 0) & (other == prev_task) & same_mm)
    gid_other = nb.group[jnp.maximum(other, 0)]
    size = jax.ops.segment_sum(jnp.ones(T, i32), nb.group, num_segments=T)
    mine = nb.group[t]
    better = (size[gid_other] > size[mine]) | ((size[gid_other] == size[mine]) & (gid_other < mine))
    join = join & (gid_other != mine) & better
    # the first join request of each task (in fault order) wins
    order = jnp.arange(join.shape[0], dtype=i32)
    first = jax.ops.segment_min(jnp.where(join, order, BIG), jnp.where(join, t, T), num_segments=T + 1)[:T]
    pick = jnp.where(first < BIG, gid_other[jnp.minimum(first, join.shape[0] - 1)], nb.group)
    nb = replace(nb, group=pick)

    mig_cost = jax.ops.segment_sum(jnp.where(moved, w * costs.migrate_per_page_ns, 0), tt, num_segments=T + 1)[:T]
    state = replace(state, pages=pages, mms=mms, numab=nb, free_pages=free)
    stats = dict(pages_migrated=jnp.sum(mig_pages), migrate_ns=mig_cost)
    return state, stats


# ------------------------------------------------------------------------------------------------
# task_numa_placement (3.13): decay, preferred node, scan period; task_numa_migrate
# ------------------------------------------------------------------------------------------------
def _has(static, pid):
    return pid in static.policies


def placement_needed(state, params):
    nb = state.numab
    seq_changed = nb.scan_seq != nb.mm_scan_seq[params.workload.task_mm]
    retry = (nb.migrate_retry > 0) & (state.tick >= nb.migrate_retry)
    is313 = params.policy == POLICY_NUMA_BALANCING
    isB = params.policy == POLICY_SCHED_NUMA
    return jnp.any(((is313 | isB) & upstream_on(params) & runnable(state.tasks) & (seq_changed | (is313 & retry)))
                   | numacore.placement_due(state, params))


def schednuma_placement(state, params, static):
    """sched_numa (variant B, §3.3-3.4) once per scan sequence: the node with most faults (before
    halving) becomes the home node, after NUMA_SETTLE's wait; scanning resets to the minimum when
    the home node changes and backs off (x2) while it stays. The home node is mirrored into
    ``task_selected_nid`` so that allocation (the home-node mempolicy, B20) and CFS (NUMA_HOT,
    NUMA_BIAS) prefer it."""
    tasks, nb = state.tasks, state.numab
    d = params.derived
    on = (params.policy == POLICY_SCHED_NUMA) & upstream_on(params)
    mseq = nb.mm_scan_seq[params.workload.task_mm]
    new = on & runnable(tasks) & (nb.scan_seq != mseq)
    counts = nb.faults[:, :, 0] + nb.faults_buf[:, :, 0]
    has = jnp.sum(counts, axis=1) > 0
    max_node = first_argmax(counts, axis=1)
    faults0 = jnp.right_shift(counts, 1)
    faults = jnp.where(new[:, None, None], jnp.stack([faults0, jnp.zeros_like(faults0)], axis=2), nb.faults)
    faults_buf = jnp.where(new[:, None, None], 0, nb.faults_buf)
    change = new & has & (max_node != nb.preferred)
    stay = new & has & (max_node == nb.preferred)
    _, smax = scan_bounds(state, params, static)
    period = jnp.where(change, d.up_period_min_ms, jnp.where(stay, jnp.minimum(smax, nb.scan_period * 2),
                                                                 nb.scan_period))
    settling = (d.up_settle > 0) & (mseq - nb.home_seq <= d.up_settle)
    move = change & ~settling & (params.knobs.sched_numa.numa_migration == 1)
    home = jnp.where(move, max_node, nb.preferred)
    home_seq = jnp.where(move, mseq, nb.home_seq)
    sel = jnp.where(on & (params.knobs.sched_numa.numa_migration == 1), home, tasks.task_selected_nid)
    nb = replace(nb, scan_seq=jnp.where(new, mseq, nb.scan_seq), faults=faults, faults_buf=faults_buf,
                 scan_period=period, preferred=home, home_seq=home_seq)
    return replace(state, numab=nb, tasks=replace(tasks, task_selected_nid=sel))


def group_faults(nb, T):
    """[T, N] the faults of each task's numa group (members' decayed faults, both kinds)."""
    per_task = jnp.sum(nb.faults, axis=2)
    per_group = jax.ops.segment_sum(per_task, nb.group, num_segments=T)
    return per_group[nb.group]


def task_numa_placement(state, params, static):
    """Once per scan sequence per task (3.13). Returns state."""
    tasks, nb = state.tasks, state.numab
    d = params.derived
    T, N = static.n_tasks, static.n_nodes
    on = (params.policy == POLICY_NUMA_BALANCING) & upstream_on(params)
    mseq = nb.mm_scan_seq[params.workload.task_mm]
    new = on & runnable(tasks) & (nb.scan_seq != mseq)
    # update_task_scan_period from this window's locality and private/shared split
    remote, local = nb.locality[:, 0], nb.locality[:, 1]
    shared = jnp.sum(nb.faults_buf[:, :, 0], axis=1)
    priv = jnp.sum(nb.faults_buf[:, :, 1], axis=1)
    smin, smax = scan_bounds(state, params, static)
    per = jnp.maximum(nb.scan_period, 1)
    slot = (per + 9) // 10
    tot = local + remote
    ratio = (local * 10) // jnp.maximum(tot, 1)
    thr = d.up_period_threshold
    up = jnp.maximum(ratio - thr, 1) * slot
    down = -(thr - ratio) * slot
    pratio = (priv * 10 + jnp.maximum(priv + shared, 1) - 1) // jnp.maximum(priv + shared, 1)
    down = (down * pratio) // 10
    diff = jnp.where(ratio >= thr, up, down)
    newper = jnp.where(tot == 0, jnp.minimum(smax, per * 2), jnp.clip(per + diff, smin, smax))
    scan_period = jnp.where(new, newper, nb.scan_period)
    # decay: faults = faults / 2 + buffer
    faults = jnp.where(new[:, None, None], jnp.right_shift(nb.faults, 1) + nb.faults_buf, nb.faults)
    faults_buf = jnp.where(new[:, None, None], 0, nb.faults_buf)
    locality = jnp.where(new[:, None], 0, nb.locality)
    nb2 = replace(nb, faults=faults)
    tw = jnp.sum(faults, axis=2)
    gw = group_faults(nb2, T)
    grouped = jax.ops.segment_sum(jnp.ones(T, i32), nb.group, num_segments=T)[nb.group] > 1
    tmax = first_argmax(tw, axis=1)
    gmax = first_argmax(gw, axis=1)
    tw_pm = permille(tw, jnp.sum(tw, axis=1)[:, None])
    gw_pm = permille(gw, jnp.sum(gw, axis=1)[:, None])
    combo = first_argmax(tw_pm + gw_pm, axis=1)
    best = jnp.where(grouped & (tmax != gmax), combo, tmax)
    has = jnp.sum(tw, axis=1) > 0
    pref_new = new & has & (best != nb.preferred)
    preferred = jnp.where(pref_new, best, nb.preferred)
    # numa_migrate_preferred: try now, then every migrate_retry_millisecs while settling
    retry = jnp.where(pref_new, state.tick, nb.migrate_retry)
    nb = replace(nb, scan_seq=jnp.where(new, mseq, nb.scan_seq), scan_period=scan_period, faults=faults,
                 faults_buf=faults_buf, locality=locality, preferred=preferred, migrate_retry=retry)
    return replace(state, numab=nb)


def task_numa_migrate(state, params, static):
    """Tasks whose retry time came and that are not on their preferred node look for an idle CPU
    or a task to swap with there. Returns (state, n_moves, moved[T])."""
    tasks, nb = state.tasks, state.numab
    mp, wp, d = params.machine, params.workload, params.derived
    T, C, N = static.n_tasks, static.n_cpus, static.n_nodes
    tick = state.tick
    on = (params.policy == POLICY_NUMA_BALANCING) & upstream_on(params)
    run = runnable(tasks)
    tnode = mp.cpu_node[jnp.maximum(tasks.cpu, 0)]
    trying = on & run & (nb.migrate_retry > 0) & (tick >= nb.migrate_retry) & (nb.preferred >= 0)
    at_home = tnode == nb.preferred
    act = trying & ~at_home
    retry = jnp.where(trying, jnp.where(at_home, 0, tick + _ms_to_ticks(d.up_retry_ms, static)), nb.migrate_retry)

    tw = jnp.sum(nb.faults, axis=2)
    gw = group_faults(nb, T)
    task_w = permille(tw, jnp.sum(tw, axis=1)[:, None])  # [T, N]
    grp_w = permille(gw, jnp.sum(gw, axis=1)[:, None])
    grouped = jax.ops.segment_sum(jnp.ones(T, i32), nb.group, num_segments=T)[nb.group] > 1
    cur = curr(tasks, C)
    nr = nr_running(tasks, C)
    load = jax.ops.segment_sum(nr, mp.cpu_node, num_segments=N)
    # candidates: CPUs of the preferred node (allowed for p) [T, C]
    cn = mp.cpu_node[None, :]
    pref = jnp.maximum(nb.preferred, 0)[:, None]
    src = tnode[:, None]
    o = jnp.maximum(cur, 0)[None, :]
    busy = (cur >= 0)[None, :]
    allowed = bit(wp.cpus_allowed[:, None], cn) & (cn == pref)
    o_ok = bit(wp.cpus_allowed[o], src) & (o != jnp.arange(T)[:, None])
    same_grp = nb.group[o] == nb.group[:, None]
    # improvement (per mille): p's gain moving src -> dst, plus the partner's gain moving dst -> src;
    # within one numa group both use task weights, otherwise group weights for grouped tasks
    def at(wts, nodes):  # wts [T or 1, C, N] or [T, N]; nodes broadcast to [T, C]
        wts = wts if wts.ndim == 3 else jnp.broadcast_to(wts[:, None, :], (T, C, N))
        wts = jnp.broadcast_to(wts, (T, C, N))
        return jnp.take_along_axis(wts, jnp.broadcast_to(nodes, (T, C))[..., None], axis=2)[..., 0]

    p_w = jnp.where(same_grp[..., None], task_w[:, None, :],
                    jnp.where(grouped[:, None, None], grp_w[:, None, :], task_w[:, None, :]))
    o_w = jnp.where(same_grp[..., None], task_w[o],
                    jnp.where(grouped[o][..., None], grp_w[o], task_w[o]))
    imp_p = at(p_w, pref) - at(p_w, src)
    imp_o = at(o_w, src) - at(o_w, cn)
    # a move to an idle CPU must not unbalance the nodes; a swap keeps the loads
    src_load = load[tnode][:, None]
    dst_load = load[jnp.broadcast_to(cn, (T, C))]
    balanced = (dst_load + 1) * 100 <= (src_load - 1) * d.up_imbalance_pct
    imp = jnp.where(busy, imp_p + imp_o, imp_p)  # [T, C]
    ok = act[:, None] & allowed & jnp.where(busy, o_ok, balanced) & (imp > 0)
    score = jnp.where(ok, imp, -1)
    best = first_argmax(score, axis=1)
    found = jnp.take_along_axis(score, best[:, None], axis=1)[:, 0] > 0
    # settle concurrent decisions: per target CPU the lowest task wins; a task that is itself some
    # winner's swap partner, or whose partner is moving, waits for its next retry
    tgt = jnp.where(found, best, C)
    ids = jnp.arange(T, dtype=i32)
    winner = jax.ops.segment_min(jnp.where(found, ids, T), tgt, num_segments=C + 1)[:C]
    tsafe = jnp.minimum(tgt, C - 1)
    partner = jnp.where(found, cur[tsafe], -1)
    is_partner = jnp.zeros(T, bool).at[jnp.where(found & (partner >= 0), partner, T)].set(True, mode="drop")
    accepted = found & (winner[tsafe] == ids) & ~is_partner & ~jnp.where(partner >= 0, found[jnp.maximum(partner, 0)],
                                                                         False)
    cpu, moved = move_tasks(tasks.cpu, accepted, tsafe, partner)
    nb = replace(nb, migrate_retry=retry)
    return replace(state, tasks=replace(tasks, cpu=cpu), numab=nb), jnp.sum(accepted.astype(i32)), moved
