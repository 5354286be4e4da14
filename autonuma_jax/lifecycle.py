"""Task and process lifecycle (kernel/fork.c, kernel/exit.c, spec §2.7).

- One new thread per tick is created (pthread_create loops are serial) [I], placed by fork
  balancing, with its task_autonuma reset (``scheduler/reset`` = 1) or copied from its parent.
- A thread moves from its init phase to its work phase, or finishes, when its passes are done.
- A process exits when all its threads have finished: its memory is freed, its queued pages leave
  the knuma_migrated queues and knuma_scand drops it from its list.
- A process *slot* with respawns left (``Process.respawns``, a ``make -j`` job slot) runs its next
  process instead: the exiting one's page units are reset (not present, ``last_nid`` and
  ``migrate_nid`` -1, unqueued, pmd/pte flags clear), the new mm starts with zero statistics at the
  slot's place on knuma_scand's list (if knuma_scand is part-way through the old mm, it drops the
  old mm's partial statistics and moves on, as for an exit), and the slot's threads start again as new tasks
  with their task_autonuma (and the upstream policies' per-task and per-mm data) reset, as at exec
  (spec §2.7). At most one slot is respawned per tick [I]; its reset is proportional to the largest
  slot (``WorkloadParams.slot_lane``, a static capacity), so a tick's work does not grow with memory.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .ops import materialize
from .physics import cycle, locate
from .pytree import replace
from .sched.fair import place_new_task
from .state import T_DONE, T_INIT, T_NEW, T_WORK

i32 = jnp.int32


def start_one_task(state, params, static, autonuma_on):
    tasks = state.tasks
    wp = params.workload
    T = static.n_tasks
    sa = wp.start_after
    parent_ready = jnp.where(sa >= 0, tasks.phase[jnp.maximum(sa, 0)] >= T_WORK, True)
    ready = (tasks.phase == T_NEW) & parent_ready
    do = jnp.any(ready)
    t = jnp.argmax(ready).astype(i32)
    # task_autonuma at clone: reset, or copied from the parent when scheduler/reset = 0
    inherit = (params.knobs.autonuma.scheduler.reset == 0) & (sa[t] >= 0)
    par = jnp.maximum(sa[t], 0)
    idx = jnp.where(do, t, T)
    tasks = replace(
        tasks,
        task_numa_fault=tasks.task_numa_fault.at[idx].set(
            jnp.where(inherit, tasks.task_numa_fault[par], 0), mode="drop"),
        task_numa_fault_tot=tasks.task_numa_fault_tot.at[idx].set(
            jnp.where(inherit, tasks.task_numa_fault_tot[par], 0), mode="drop"),
        task_numa_fault_pass=tasks.task_numa_fault_pass.at[idx].set(
            jnp.where(inherit, tasks.task_numa_fault_pass[par], 0), mode="drop"),
        task_selected_nid=tasks.task_selected_nid.at[idx].set(
            jnp.where(inherit, tasks.task_selected_nid[par], -1), mode="drop"),
    )
    c = place_new_task(tasks, t, params, static, autonuma_on)
    phase0 = jnp.where(wp.init_passes[t] > 0, T_INIT, T_WORK)
    tasks = replace(tasks, phase=tasks.phase.at[idx].set(phase0, mode="drop"),
                    cpu=tasks.cpu.at[idx].set(c, mode="drop"))
    return replace(state, tasks=tasks)


def _finished(state, params, static):
    """(all threads of the process finished, it may respawn) per process slot."""
    M = static.n_mms
    wp = params.workload
    not_done = jax.ops.segment_sum((state.tasks.phase != T_DONE).astype(i32), wp.task_mm, num_segments=M)
    done = state.mms.alive & (not_done == 0)
    return done, done & (state.mms.generation < wp.mm_respawns)


def _free(state, ex, final):
    """Processes ``ex`` leave: their memory is freed and their queued pages leave the queues;
    ``final`` ones (a subset) leave knuma_scand's list for good."""
    mms, mg = state.mms, state.migrated
    freed = jnp.sum(jnp.where(ex[:, None], mms.node_pages, 0), axis=0)
    unq = jnp.sum(jnp.where(ex[:, None], mms.queued_pages, 0), axis=0)
    mms = replace(mms, alive=mms.alive & ~final, exited=mms.exited | final,
                  node_pages=jnp.where(ex[:, None], 0, mms.node_pages),
                  queued_pages=jnp.where(ex[:, None], 0, mms.queued_pages),
                  exits_with_stats=mms.exits_with_stats + (ex & (mms.mm_numa_fault_tot > 0)).astype(i32))
    mg = replace(mg, nr_migrate_pages=mg.nr_migrate_pages - unq)
    return replace(state, mms=mms, migrated=mg, free_pages=state.free_pages + freed)


def exit_mms(state, params, static, respawn: bool = True):
    """Processes whose threads have all finished exit; a slot with respawns left waits for
    ``respawn_one`` (called here unless ``respawn=False``: a driver may gate it as its own phase
    with ``respawn_needed``, right after this one)."""
    done, can = _finished(state, params, static)
    ex = done & ~can
    state = _free(state, ex, ex)
    if respawn:
        state = respawn_one(state, params, static)
    return state


def respawn_needed(state, params, static):
    """Some process slot has finished its process and has respawns left."""
    if params.workload.slot_lane.shape[0] == 0:
        return jnp.zeros((), bool)
    return jnp.any(_finished(state, params, static)[1])


def respawn_one(state, params, static):
    """The first slot (lowest index) whose process finished and that has respawns left runs its next
    process: the old one's memory is freed, its page units, mm and task statistics reset. At most
    one per tick; the identity when none is ready (or the workload has no slots)."""
    M = static.n_mms
    if params.workload.slot_lane.shape[0] == 0:  # static: no slots with respawns
        return state
    _, can = _finished(state, params, static)
    resp = can & (jnp.arange(M, dtype=i32) == jnp.argmax(can))  # one-hot, or all false
    state = _free(state, resp, jnp.zeros_like(resp))
    return _respawn(state, params, static, resp)


def _respawn(state, params, static, resp):
    """The slot flagged in ``resp`` (one-hot or all false) starts its next process (a fresh exec)."""
    wp = params.workload
    M, T, U, P = static.n_mms, static.n_tasks, static.n_units, static.n_pmds
    upp = static.units_per_pmd
    do = jnp.any(resp)
    m = jnp.argmax(resp).astype(i32)
    # ---- the freed page units of the old process: reset (work ~ the largest slot) -------------
    lane = wp.slot_lane
    n_units = (wp.mm_len[m] + upp - 1) // upp * upp
    u = wp.mm_start[m] + lane
    idx = jnp.where(do & (lane < n_units), u, U)
    pages = state.pages
    pages = replace(
        pages,
        node=pages.node.at[idx].set(jnp.int8(-1), mode="drop"),
        last_nid=pages.last_nid.at[idx].set(jnp.int8(-1), mode="drop"),
        migrate_nid=pages.migrate_nid.at[idx].set(jnp.int8(-1), mode="drop"),
        migrate_seq=pages.migrate_seq.at[idx].set(-1, mode="drop"),
        pte_numa=(pages.pte_numa.at[idx].set(jnp.uint8(0), mode="drop") if static.pte_faults
                  else pages.pte_numa),
        pmd_flags=pages.pmd_flags.at[jnp.where(idx < U, idx // upp, P)].set(jnp.uint8(0), mode="drop"),
    )
    # ---- the new mm: zero statistics, same place on knuma_scand's list ------------------------
    mms = state.mms
    mi = jnp.where(do, m, M)
    mms = replace(mms, generation=mms.generation.at[mi].add(1, mode="drop"),
                  mm_numa_fault=mms.mm_numa_fault.at[mi].set(0, mode="drop"),
                  mm_numa_fault_tot=mms.mm_numa_fault_tot.at[mi].set(0, mode="drop"),
                  mm_numa_fault_pass=mms.mm_numa_fault_pass.at[mi].set(0, mode="drop"))
    # knuma_scand part-way through the old mm: drop its partial statistics, finish the mm at its next
    # step (at the start of the old mm it simply goes on with the new one)
    sc = state.scand
    inside = do & (sc.mm == m) & (sc.addr > 0)
    sc = replace(sc, addr=jnp.where(inside, (wp.mm_len[m] + upp - 1) // upp, sc.addr).astype(i32),
                 fault_tmp=jnp.where(inside, 0, sc.fault_tmp))
    # ---- the slot's threads: new tasks (task_autonuma reset as at exec) ---------------------------
    tasks = state.tasks
    mine = do & (wp.task_mm == m)
    z = lambda a, v: jnp.where(mine.reshape((T,) + (1,) * (a.ndim - 1)), v, a).astype(a.dtype)  # noqa: E731
    tasks = replace(tasks, phase=z(tasks.phase, T_NEW), cpu=z(tasks.cpu, -1), pos=z(tasks.pos, 0),
                    frac=z(tasks.frac, 0), passes=z(tasks.passes, 0), debt_ns=z(tasks.debt_ns, 0),
                    finish_tick=z(tasks.finish_tick, -1), task_numa_fault=z(tasks.task_numa_fault, 0),
                    task_numa_fault_tot=z(tasks.task_numa_fault_tot, 0),
                    task_numa_fault_pass=z(tasks.task_numa_fault_pass, 0),
                    task_selected_nid=z(tasks.task_selected_nid, -1))
    state = replace(state, pages=pages, mms=mms, scand=sc, tasks=tasks)
    return replace(state, numab=_reset_numab(state, params, static, mine, do & (jnp.arange(M) == m)))


# per-process and per-node fields of state.Numab; every other field is per task
_NUMAB_MM = ("next_scan", "scan_offset", "mm_scan_seq", "first_nid", "next_reset")
_NUMAB_NODE = ("rl_end", "rl_pages")


def _reset_numab(state, params, static, task_mask, mm_mask):
    """The upstream policies' data of the new process's tasks and mm back to their boot values."""
    from .state import init_state
    nb = state.numab
    fresh = init_state(static, params).numab  # only the few [T] / [M] leaves used survive compilation
    out = {}
    for f in nb.__dataclass_fields__:
        cur, new = getattr(nb, f), getattr(fresh, f)
        if f in _NUMAB_NODE:
            out[f] = cur
            continue
        mask = mm_mask if f in _NUMAB_MM else task_mask
        if cur.ndim == 0 or cur.shape[0] != mask.shape[0]:
            out[f] = cur
            continue
        out[f] = jnp.where(mask.reshape(mask.shape + (1,) * (cur.ndim - 1)), new, cur)
    return replace(nb, **out)


def advance(tasks, params, st, tick, go=None):
    """Move each thread forward by the units it completed (through its region cycle, physics.locate);
    phase changes at the end of passes. ``go``: ``ops.materialize``'s (locate's result computed once)."""
    wp = params.workload
    in_init = tasks.phase == T_INIT
    cy = cycle(tasks, wp)
    target = cy.target
    passes, pos = materialize(go, lambda: locate(cy, tasks.passes, tasks.pos, st.n_done)[:2])
    frac = st.frac
    done_phase = ((tasks.phase == T_INIT) | (tasks.phase == T_WORK)) & (passes >= target)
    to_work = done_phase & in_init & (wp.work_passes > 0)
    finish = done_phase & ~to_work
    phase = jnp.where(to_work, T_WORK, jnp.where(finish, T_DONE, tasks.phase))
    reset = done_phase
    return replace(
        tasks, phase=phase.astype(i32), pos=jnp.where(reset, 0, pos), frac=jnp.where(reset, 0, frac),
        passes=jnp.where(reset, 0, passes), cpu=jnp.where(finish, -1, tasks.cpu),
        finish_tick=jnp.where(finish, tick, tasks.finish_tick),
    )
