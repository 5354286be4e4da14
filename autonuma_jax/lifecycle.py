"""Task and process lifecycle (kernel/fork.c, kernel/exit.c, spec §2.7).

- One new thread per tick is created (pthread_create loops are serial) [I], placed by fork
  balancing, with its task_autonuma reset (``scheduler/reset`` = 1) or copied from its parent.
- A thread moves from its init phase to its work phase, or finishes, when its passes are done.
- A process exits when all its threads have finished: its memory is freed, its queued pages leave
  the knuma_migrated queues and knuma_scand drops it from its list.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

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


def exit_mms(state, params, static):
    """Processes whose threads have all finished exit."""
    tasks, mms, mg = state.tasks, state.mms, state.migrated
    M, N = static.n_mms, static.n_nodes
    tm = params.workload.task_mm
    not_done = jax.ops.segment_sum((tasks.phase != T_DONE).astype(i32), tm, num_segments=M)
    ex = mms.alive & (not_done == 0)
    freed = jnp.sum(jnp.where(ex[:, None], mms.node_pages, 0), axis=0)
    unq = jnp.sum(jnp.where(ex[:, None], mms.queued_pages, 0), axis=0)
    mms = replace(mms, alive=mms.alive & ~ex, exited=mms.exited | ex,
                  node_pages=jnp.where(ex[:, None], 0, mms.node_pages),
                  queued_pages=jnp.where(ex[:, None], 0, mms.queued_pages))
    mg = replace(mg, nr_migrate_pages=mg.nr_migrate_pages - unq)
    return replace(state, mms=mms, migrated=mg, free_pages=state.free_pages + freed)


def advance(tasks, params, st, tick):
    """Move each thread forward by the units it completed; phase changes at the end of passes."""
    wp = params.workload
    in_init = tasks.phase == T_INIT
    length = jnp.maximum(jnp.where(in_init, wp.init_len, wp.work_len), 1)
    target = jnp.where(in_init, wp.init_passes, wp.work_passes)
    rel = tasks.pos + st.n_done
    passes = tasks.passes + rel // length
    pos = rel % length
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
