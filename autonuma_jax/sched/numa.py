"""CPU follows memory: sched_autonuma_balance (kernel/sched/numa.c, spec §6.1-6.2).

Runs for the task currently on each busy CPU whose balance timer expires (every
``balance_interval_millisecs``, staggered). Weights are per mille of the task's own faults
(threads of one process) or of the process's memory (different processes); a partner CPU on another
node qualifies iff ``w_nid > w_other`` and ``w_nid > w_this``; the best has the strictly largest
``2*w_nid - w_other - w_this``; ``task_selected_nid`` becomes the partner's node, or this node.

Several CPUs can fire in one tick. They all decide from the same state (as concurrent softirqs
would); conflicting decisions are settled deterministically [I]: for each partner CPU the
lowest-numbered proposer wins, and a proposal is dropped (it is retried at that CPU's next
interval) when its own CPU is some proposal's partner or its partner CPU is itself proposing. A
dropped CPU behaves as the kernel's "exchange already pending" early return: nothing changes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ops import bit, first_argmax, permille
from ..pytree import replace
from .runqueue import curr
from .settle import exchange_cpus, settle_cpu_proposals

i32 = jnp.int32


def weights(tasks, mms):
    """Per-mille task weights [T, N] and process weights [M, N]."""
    task_w = permille(tasks.task_numa_fault, tasks.task_numa_fault_tot[:, None])
    mm_w = permille(mms.mm_numa_fault, mms.mm_numa_fault_tot[:, None])
    return task_w, mm_w


def sched_autonuma_balance(state, params, static, policy_autonuma, enabled):
    """Returns (tasks, sched, n_exchanges, moved_mask[T])."""
    tasks, mms, sched = state.tasks, state.mms, state.sched
    mp, wp = params.machine, params.workload
    C, T = static.n_cpus, static.n_tasks
    tick = state.tick
    fire = tick >= sched.next_balance
    next_balance = jnp.where(fire, tick + params.derived.balance_ticks, sched.next_balance)
    cur = curr(tasks, C)
    busy = cur >= 0
    act = fire & busy & policy_autonuma  # the hook exists only in an AutoNUMA kernel
    p = jnp.maximum(cur, 0)  # [C]
    this_nid = mp.cpu_node  # [C]
    mm_p = wp.task_mm[p]
    task_w, mm_w = weights(tasks, mms)
    mm_tot = mms.mm_numa_fault_tot
    task_tot = tasks.task_numa_fault_tot
    anchored = (mm_tot[mm_p] == 0) | (task_tot[p] == 0)
    tw_p = task_w[p]  # [C, N]
    mw_p = mm_w[mm_p]  # [C, N]
    sel_task = first_argmax(tw_p, axis=1)
    sel_mm = first_argmax(mw_p, axis=1)
    fast = (sel_task == this_nid) & (sel_mm == this_nid)

    # ---- partner search: [a, c] = (this CPU, candidate CPU) ------------------------------
    o = jnp.maximum(cur, 0)  # curr of each candidate
    n_c = mp.cpu_node[None, :]
    mm_o = wp.task_mm[o]
    cand = ((n_c != this_nid[:, None]) & bit(wp.cpus_allowed[p][:, None], n_c) & busy[None, :]
            & (mm_tot[mm_o] > 0)[None, :] & (task_tot[o] > 0)[None, :]
            & bit(wp.cpus_allowed[o][None, :], this_nid[:, None]))
    same = mm_o[None, :] == mm_p[:, None]
    n_idx = jnp.broadcast_to(n_c, (C, C))
    tw_o = task_w[o, mp.cpu_node]  # [C] the candidate's own task weight on its node
    mw_o = mm_w[mm_o, mp.cpu_node]  # [C] its process's weight on its node
    w_other = jnp.where(same, tw_o[None, :], mw_o[None, :])
    w_nid = jnp.where(same, jnp.take_along_axis(tw_p, n_idx, axis=1), jnp.take_along_axis(mw_p, n_idx, axis=1))
    w_this = jnp.where(same, jnp.take_along_axis(tw_p, this_nid[:, None], axis=1),
                       jnp.take_along_axis(mw_p, this_nid[:, None], axis=1))
    ok = cand & (w_nid > w_other) & (w_nid > w_this)
    weight = jnp.where(ok, 2 * w_nid - w_other - w_this, 0)
    best = first_argmax(weight, axis=1)
    found = jnp.take_along_axis(weight, best[:, None], axis=1)[:, 0] > 0
    sel_cpu = jnp.where(found, best, jnp.arange(C, dtype=i32))

    searching = act & (enabled == 1) & ~anchored & ~fast
    proposer = searching & found
    # ---- settle concurrent decisions ------------------------------------------------------
    accepted, tgt_safe = settle_cpu_proposals(proposer, sel_cpu)
    acc_tgt = jnp.where(accepted, sel_cpu, C)
    partnered = jax.ops.segment_sum(accepted.astype(i32), acc_tgt, num_segments=C + 1)[:C] > 0
    dropped = (proposer & ~accepted) | (act & partnered)

    # ---- task_selected_nid ----------------------------------------------------------------
    new_sel = jnp.where(enabled == 1, jnp.where(anchored | fast, this_nid, mp.cpu_node[sel_cpu]), -1)
    upd = act & ~dropped
    sel = tasks.task_selected_nid.at[jnp.where(upd, p, T)].set(new_sel, mode="drop")

    # ---- the exchange (stop_one_cpu works on both CPUs) -------------------------------------
    cpu, moved = exchange_cpus(tasks.cpu, accepted, p, cur[jnp.minimum(sel_cpu, C - 1)], sel_cpu)
    # rq->autonuma_balance: set for the CPUs of this tick's exchanges (the stop_one_cpu works run at
    # once); unchanged in a tick where no balance timer fires, so a skipped phase is a no-op.
    pending = jnp.where(jnp.any(fire), accepted | partnered, sched.pending)
    tasks = replace(tasks, task_selected_nid=sel, cpu=cpu)
    sched = replace(sched, next_balance=next_balance, pending=pending)
    return tasks, sched, jnp.sum(accepted.astype(i32)), moved
