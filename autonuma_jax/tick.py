"""One tick of the machine, phases in a fixed order (the NumPy reference follows the same order):

1. lifecycle   processes exit; one new thread is created and placed (fork balancing)
2. CFS         a noise move (other activity), one load-balancing pull
3. AutoNUMA    sched_autonuma_balance on busy CPUs whose balance timer fires (CPU follows memory)
4. accesses    every running thread streams; first touch allocates; armed pmds/ptes take NUMA
               hinting faults (last_nid filter, queueing: memory follows CPU); threads advance
5. knuma_scand arms the next chunk / publishes mm statistics / sleeps; end-of-pass flush
6. knuma_migrated  daemons that are due isolate and migrate a batch
7. khugepaged  re-collapses split THPs
8. accounting  kernel CPU time becomes debt of the threads that pay it; counters
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from . import lifecycle
from .config import POLICY_AUTONUMA24
from .mm import autonuma, khugepaged, memory, migrate
from .ops import add_us
from .physics import stream
from .pytree import replace
from .rng import tick_draws
from .sched import fair, numa
from .sched.runqueue import nr_running, runnable, sibling_busy
from .state import OV_COLLAPSE, OV_EXCHANGE, OV_FAULT, OV_MIGRATE, OV_SCAN, Counters

i32 = jnp.int32
f32 = jnp.float32


def _count(c: Counters, **inc) -> Counters:
    return replace(c, **{k: getattr(c, k) + v for k, v in inc.items()})


def _overhead(c: Counters, ov) -> Counters:
    us, rem = add_us(c.overhead_us, c.overhead_rem_ns, ov)
    return replace(c, overhead_us=us, overhead_rem_ns=rem)


def step(state, params, static):
    """Advance one configuration by one tick. Pure; ``vmap`` it over configurations."""
    mp, kn = params.machine, params.knobs
    T, C, N = static.n_tasks, static.n_cpus, static.n_nodes
    policy_autonuma = params.policy == POLICY_AUTONUMA24
    enabled = kn.autonuma.enabled
    autonuma_on = policy_autonuma & (enabled == 1)
    d = params.derived
    draws = tick_draws(params.seed, state.tick, state.tasks.speed_pm, d.speed_a, d.speed_b, d.phase_jitter_ns)
    state = replace(state, tasks=replace(state.tasks, speed_pm=draws.speed_pm))

    # 1. lifecycle ---------------------------------------------------------------------------
    state = lifecycle.exit_mms(state, params, static)
    state = lifecycle.start_one_task(state, params, static, autonuma_on)

    # 2. CFS -----------------------------------------------------------------------------------
    tasks, noise = fair.noise_move(state.tasks, draws, params, static, autonuma_on)
    tasks, pulled = fair.load_balance(tasks, params, static, autonuma_on, kn.autonuma.scheduler.load_balance_strict)
    state = replace(state, tasks=tasks)

    # 3. sched_autonuma_balance ------------------------------------------------------------------
    tasks, sched, n_exch, moved = numa.sched_autonuma_balance(state, params, static, policy_autonuma, enabled)
    exch_ns = jnp.where(moved, kn.costs.exchange_ns, 0)
    state = replace(state, tasks=tasks, sched=sched)

    # 4. accesses ----------------------------------------------------------------------------------
    tasks = state.tasks
    run = runnable(tasks)
    nr = nr_running(tasks, C)
    cpu = jnp.maximum(tasks.cpu, 0)
    share = jnp.where(run, static.tick_ns // jnp.maximum(nr[cpu], 1), 0)
    debt = tasks.debt_ns + exch_ns
    pay = jnp.minimum(debt, share)
    budget = share - pay
    debt = debt - pay
    sib = sibling_busy(nr, mp.cpu_core, C)[cpu]
    sib_slow = jnp.where(sib, mp.smt_slow, f32(1.0))
    tasks = replace(tasks, debt_ns=debt, exec_us=tasks.exec_us + share // 1000)
    state = replace(state, tasks=tasks)
    st = stream(tasks, state.pages, params, static, draws, budget, run, sib_slow, autonuma_on)
    state, node_entry, wake, ast = memory.access(state, params, static, st, autonuma_on)
    cpu_node = mp.cpu_node[cpu]
    local_kib = jnp.sum(jnp.where(st.valid & (node_entry == cpu_node[:, None]), st.kib, 0))
    total_kib = jnp.sum(jnp.where(st.valid, st.kib, 0))
    tasks = lifecycle.advance(state.tasks, params, st, state.tick + 1)
    tasks = replace(tasks, debt_ns=tasks.debt_ns + ast["fault_ns"] + ast["alloc_ns"])
    state = replace(state, tasks=tasks)

    # 5. knuma_scand ---------------------------------------------------------------------------------
    state, flush, scan_ns = autonuma.knuma_scand(state, params, static, autonuma_on)

    # 6. knuma_migrated (runs whenever queues exist, even with enabled=0, spec §5.3) --------------------
    wake_all = wake | (flush & (state.migrated.nr_migrate_pages > 0))
    state, moved_pages, mig_ns = migrate.knuma_migrated(state, params, static, wake_all)

    # 7. khugepaged ----------------------------------------------------------------------------------------
    state, coll_ns = khugepaged.khugepaged(state, params, static)

    # 8. accounting: daemons steal CPU time from the threads running where they run ------------------------
    tasks = state.tasks
    run = runnable(tasks)
    tnode = mp.cpu_node[jnp.maximum(tasks.cpu, 0)]
    per_node_run = jax.ops.segment_sum(run.astype(i32), jnp.where(run, tnode, N), num_segments=N + 1)[:N]
    node_ns = mig_ns  # knuma_migrated<N> is bound to node N
    share_node = jnp.where(run, node_ns[tnode] // jnp.maximum(per_node_run[tnode], 1), 0)
    n_run = jnp.sum(run.astype(i32))
    glob_ns = scan_ns + coll_ns  # unbound kernel threads
    share_glob = jnp.where(run, glob_ns // jnp.maximum(n_run, 1), 0)
    tasks = replace(tasks, debt_ns=tasks.debt_ns + share_node + share_glob)
    state = replace(state, tasks=tasks)

    ov = jnp.stack([scan_ns, jnp.sum(ast["fault_ns"]), jnp.sum(mig_ns), jnp.sum(exch_ns), coll_ns]).astype(i32)
    capped = jnp.sum(st.capped.astype(i32))
    inc = dict(local_kib=local_kib, total_kib=total_kib, hinting_faults=ast["hinting_faults"],
               fault_pages=ast["fault_pages"], pages_queued=ast["pages_queued"], pages_migrated=jnp.sum(moved_pages),
               exchanges=n_exch, noise_moves=noise.astype(i32), lb_moves=pulled.astype(i32),
               queue_overflows=ast["overflows"], capped_ticks=capped, oom_pages=ast["oom"])
    first_touch_us = jnp.sum(ast["alloc_ns"]) // 1000
    acc = _overhead(_count(state.acc, first_touch_us=first_touch_us, **inc), ov)
    tot = _overhead(_count(state.tot, first_touch_us=first_touch_us, **inc), ov)
    return replace(state, acc=acc, tot=tot, tick=state.tick + 1)
