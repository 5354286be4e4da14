"""numa/core "adaptive NUMA affinity", v18 / unified tree v1 (variant C of spec schednuma.md §4).

Shared with policies/upstream.py (``POLICY_NUMA_CORE``): task-context scanning (the period resets
to the minimum at every trigger, one scan per process per minimum period, an adaptive size of 32 to
512 MB of *present* pages by convergence strength, only processes above the RSS threshold), hinting
faults remembering the last CPU (``last_cpu``), synchronous migration without a rate limit.

Here (§4.2-4.7):
- ``interleave_target``: a NUMA-shared task's pages go to the interleave node of their address over
  the nodes running at least ``buddy_quorum`` of its buddies (NUMA-shared threads of its process),
  all nodes when none qualifies; a private task's page moves to the faulting node after two faults
  in a row from it; a non-NUMA task's never.
- ``placement`` (at least once per ``placement_interval_millisecs`` and at each new scan sequence):
  the staged average ``avg = (15 avg + curr) / 16`` of the private and shared fault counts; the
  classification non-NUMA / private / shared with hysteresis (from -1: shared iff S >= P; private
  -> shared iff S >= 2P; shared -> private iff 2S <= P); the convergence strength and node
  (strength >= ``converged_permille`` per mille), mirrored into ``task_selected_nid`` so that CFS
  only moves the task inside it (NUMA_CONVERGE_MIGRATIONS); the scan-period back-off; and the
  directed move: a shared task *compresses* - it goes to the node where most of its buddy group runs
  without filling it, taking the CPU of the smallest group there (idle CPUs, non-NUMA and private
  tasks count as groups of one) if that group is not larger than its own group there, swapping
  ("task flipping"); a private task moves to an idle CPU of the least loaded node when its own node
  runs at least two more tasks.
Not modelled [I]: spreading of buddy groups larger than a node, the shared-buddy link tracking (a
task's buddies are the NUMA-shared threads of its process), interleaved *allocation* of new pages
(only the fault-time migration targets are interleaved), intranode balancing.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..config import POLICY_NUMA_CORE
from ..ops import bit, first_argmax
from ..pytree import replace
from ..sched.runqueue import curr, nr_running, runnable
from ..sched.settle import move_tasks

i32 = jnp.int32
BIG = jnp.iinfo(jnp.int32).max


def on(params):
    return params.policy == POLICY_NUMA_CORE


def buddy_counts(state, params, static):
    """[M, N] NUMA-shared running threads of each process on each node."""
    tasks, nb = state.tasks, state.numab
    N, M = static.n_nodes, static.n_mms
    run = runnable(tasks) & (nb.shared == 1)
    node = params.machine.cpu_node[jnp.maximum(tasks.cpu, 0)]
    idx = jnp.where(run, params.workload.task_mm * N + node, M * N)
    return jax.ops.segment_sum(jnp.ones_like(idx), idx, num_segments=M * N + 1)[:M * N].reshape(M, N)


def interleave_target(state, params, static, task, unit):
    """Interleave node of each page for its (shared) faulting task: over the nodes with a quorum of
    buddies (all nodes when none has one), by the unit's address."""
    bc = buddy_counts(state, params, static)[params.workload.task_mm[task]]  # [X, N]
    mask = bc >= params.knobs.numa_core.buddy_quorum
    mask = jnp.where(jnp.any(mask, axis=1, keepdims=True), mask, True)
    cnt = jnp.sum(mask.astype(i32), axis=1)
    k = unit % jnp.maximum(cnt, 1)
    rank = jnp.cumsum(mask.astype(i32), axis=1) - 1
    hit = mask & (rank == k[:, None])
    return first_argmax(hit.astype(i32), axis=1)


def placement_due(state, params):
    nb = state.numab
    seq_changed = nb.scan_seq != nb.mm_scan_seq[params.workload.task_mm]
    return on(params) & runnable(state.tasks) & (seq_changed | (state.tick >= nb.migrate_retry))


def placement(state, params, static):
    """Returns (state, n_moves, moved[T])."""
    tasks, nb = state.tasks, state.numab
    mp, wp, d, kc = params.machine, params.workload, params.derived, params.knobs.numa_core
    T, C, N, M = static.n_tasks, static.n_cpus, static.n_nodes, static.n_mms
    tick = state.tick
    due = placement_due(state, params)
    mseq = nb.mm_scan_seq[wp.task_mm]
    # staged average of the fault counts, then the private / shared split
    faults = jnp.where(due[:, None, None], (nb.faults * 15 + nb.faults_buf) // 16, nb.faults)
    faults_buf = jnp.where(due[:, None, None], 0, nb.faults_buf)
    S = jnp.sum(faults[:, :, 0], axis=1)
    P = jnp.sum(faults[:, :, 1], axis=1)
    cls = nb.shared
    new_cls = jnp.where(cls < 0, jnp.where(S + P > 0, (S >= P).astype(i32), -1),
                        jnp.where(cls == 0, jnp.where(S >= 2 * P, 1, 0), jnp.where(2 * S <= P, 0, 1)))
    rss = jnp.sum(state.mms.node_pages, axis=1)[wp.task_mm]
    candidate = (rss >= d.up_rss_min_pages) & (S + P > 0)
    new_cls = jnp.where(candidate, new_cls, -1)
    shared = jnp.where(due, new_cls, cls)
    # convergence strength and node
    tw = jnp.sum(faults, axis=2)
    tot = jnp.sum(tw, axis=1)
    maxn = first_argmax(tw, axis=1)
    mx = jnp.take_along_axis(tw, maxn[:, None], axis=1)[:, 0]
    strength = jnp.where(tot > 0, (jnp.right_shift(mx, 0) * 1024) // jnp.maximum(tot, 1), 0)
    strength = jnp.where(due, strength, nb.strength)
    converged = due & candidate & (strength * 1000 >= kc.converged_permille * 1024)
    sel = jnp.where(due, jnp.where(converged, maxn, -1), tasks.task_selected_nid)
    # scan period: back off while the max node stays, back to the minimum when it changes
    same = maxn == nb.preferred
    _, smax = _bounds(d)
    period = jnp.where(due, jnp.where(same, jnp.minimum(nb.scan_period * 2, smax), d.up_period_min_ms),
                       nb.scan_period)
    preferred = jnp.where(due & (tot > 0), maxn, nb.preferred)
    nxt = jnp.where(due, tick + d.up_place_ticks, nb.migrate_retry)
    nb = replace(nb, faults=faults, faults_buf=faults_buf, shared=shared, strength=strength, scan_period=period,
                 preferred=preferred, migrate_retry=nxt, scan_seq=jnp.where(due, mseq, nb.scan_seq))
    tasks = replace(tasks, task_selected_nid=sel)
    state = replace(state, numab=nb, tasks=tasks)

    # ---- the directed move ------------------------------------------------------------------
    run = runnable(tasks)
    cur = curr(tasks, C)
    nr = nr_running(tasks, C)
    tnode = mp.cpu_node[jnp.maximum(tasks.cpu, 0)]
    cpn = jax.ops.segment_sum(jnp.ones(C, i32), mp.cpu_node, num_segments=N)  # CPUs per node
    bc = buddy_counts(state, params, static)  # [M, N]
    g = bc[wp.task_mm]  # [T, N] own group's size on each node
    # compress (shared tasks): the node with most buddies that the group does not fill yet
    room = g < cpn[None, :]
    target = first_argmax(jnp.where(room, g, -1), axis=1)
    gt = jnp.take_along_axis(g, target[:, None], axis=1)[:, 0]
    want_c = due & (shared == 1) & (target != tnode) & jnp.any(room, axis=1)
    # group size of each CPU's task on its node: idle / non-NUMA / private = 1
    cq = jnp.maximum(cur, 0)
    cpu_grp = jnp.where((cur >= 0) & (nb.shared[cq] == 1), bc[wp.task_mm[cq], mp.cpu_node], 1)  # [C]
    cands = (mp.cpu_node[None, :] == target[:, None]) & bit(wp.cpus_allowed[:, None], mp.cpu_node[None, :])
    cands = cands & ((cur < 0)[None, :] | bit(wp.cpus_allowed[cq][None, :], tnode[:, None]))
    key = jnp.where(cands, cpu_grp[None, :] * (C + 1) + jnp.arange(C)[None, :], BIG)
    best_c = jnp.argmin(key, axis=1).astype(i32)
    ok_c = want_c & (jnp.min(key, axis=1) < BIG) & (cpu_grp[best_c] <= gt)
    # private tasks: an idle CPU of the least loaded node when this node runs >= 2 more tasks
    load = jax.ops.segment_sum(nr, mp.cpu_node, num_segments=N)
    allowed_n = bit(wp.cpus_allowed[:, None], jnp.arange(N)[None, :])
    least = jnp.argmin(jnp.where(allowed_n, load[None, :], BIG), axis=1).astype(i32)
    idle_key = jnp.where((mp.cpu_node[None, :] == least[:, None]) & (nr == 0)[None, :], jnp.arange(C)[None, :], BIG)
    idle_c = jnp.min(idle_key, axis=1)
    ok_p = due & (shared == 0) & (load[tnode] - load[least] >= 2) & (idle_c < BIG)
    prop = (ok_c | ok_p) & run
    dst = jnp.where(ok_c, best_c, jnp.minimum(idle_c, C - 1))
    # settle concurrent moves: per target CPU the lowest task; a task whose CPU is a target, or whose
    # partner moves itself, waits for its next placement
    ids = jnp.arange(T, dtype=i32)
    tgt = jnp.where(prop, dst, C)
    winner = jax.ops.segment_min(jnp.where(prop, ids, T), tgt, num_segments=C + 1)[:C]
    ts = jnp.minimum(tgt, C - 1)
    partner = jnp.where(prop, cur[ts], -1)
    own_cpu_targeted = jax.ops.segment_sum(prop.astype(i32), tgt, num_segments=C + 1)[:C][jnp.maximum(tasks.cpu, 0)] > 0
    accepted = prop & (winner[ts] == ids) & ~own_cpu_targeted & ~jnp.where(partner >= 0, prop[jnp.maximum(partner, 0)],
                                                                           False)
    cpu, moved = move_tasks(tasks.cpu, accepted, ts, partner)
    return replace(state, tasks=replace(tasks, cpu=cpu)), jnp.sum(accepted.astype(i32)), moved


def _bounds(d):
    return d.up_period_min_ms, d.up_period_max_ms
