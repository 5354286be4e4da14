"""Invariants of the machine state, evaluated inside compiled code (debug mode and tests).

``check(state, params, static)`` returns one boolean per invariant (``NAMES``); the work is
proportional to total memory, so it runs once per report interval in ``check_invariants`` mode,
never per tick.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .mm.migrate import ring_index, unit_mm
from .state import T_DONE, T_INIT, T_NEW, T_WORK

i32 = jnp.int32

NAMES = (
    "page_node_in_range",  # each page unit is on exactly one node (or not present)
    "node_usage_within_capacity",  # free pages >= 0 on every node
    "free_plus_used_is_capacity",  # free + pages of live processes = node size
    "mm_node_pages_match_units",  # the nmstat counters equal a recount of the page units
    "queue_counters_match_pages",  # autonuma_nr_migrate_pages == queued pages (live processes)
    "queued_pages_have_live_entries",  # every queued page has its ring entry in [head, tail)
    "mm_queued_match",  # per-process queued counters add up to the node counters
    "stats_non_negative",  # task/mm statistics are >= 0
    "mm_tot_is_sum",  # mm_numa_fault_tot = sum of mm_numa_fault
    "task_on_at_most_one_cpu",  # running tasks have one CPU, others none
    "ring_bounds",  # 0 <= tail - head <= capacity
)


def check(state, params, static) -> jnp.ndarray:
    N, U, M, C = static.n_nodes, static.n_units, static.n_mms, static.n_cpus
    w = static.unit_pages
    pages, mms, mg, tasks = state.pages, state.mms, state.migrated, state.tasks
    wp = params.workload
    node = pages.node.astype(i32)
    u = jnp.arange(U, dtype=i32)
    m_of = unit_mm(u, wp.mm_start)
    in_mm = (u - wp.mm_start[m_of]) < wp.mm_len[m_of]
    live = mms.alive[m_of] & in_mm
    present = live & (node >= 0)
    ok = []
    ok.append(jnp.all((node >= -1) & (node < N)))
    ok.append(jnp.all(state.free_pages >= 0))
    used = jnp.sum(mms.node_pages, axis=0)
    ok.append(jnp.all(state.free_pages + used == params.machine.node_pages) | (state.tot.oom_pages > 0))
    recount = jax.ops.segment_sum(jnp.where(present, w, 0), jnp.where(present, m_of * N + node, M * N),
                                  num_segments=M * N + 1)[:M * N].reshape(M, N)
    ok.append(jnp.all(recount == mms.node_pages))
    mig = pages.migrate_nid.astype(i32)
    queued = present & (mig >= 0)
    q_count = jax.ops.segment_sum(jnp.where(queued, w, 0), jnp.where(queued, mig, N), num_segments=N + 1)[:N]
    ok.append(jnp.all(q_count == mg.nr_migrate_pages))
    r = ring_index(jnp.maximum(mig, 0), jnp.maximum(node, 0), N)
    seq = pages.migrate_seq
    entry = mg.ring[r, seq % static.ring_capacity]
    has_entry = (entry == u) & (seq >= mg.head[r]) & (seq < mg.tail[r])
    ok.append(jnp.all(~queued | has_entry))
    ok.append(jnp.all(jnp.sum(mms.queued_pages, axis=0) == mg.nr_migrate_pages))
    ok.append(jnp.all(tasks.task_numa_fault >= 0) & jnp.all(tasks.task_numa_fault_tot >= 0)
              & jnp.all(mms.mm_numa_fault >= 0) & jnp.all(mms.node_pages >= 0) & jnp.all(mms.queued_pages >= 0))
    ok.append(jnp.all(jnp.sum(mms.mm_numa_fault, axis=1) == mms.mm_numa_fault_tot))
    running = (tasks.phase == T_INIT) | (tasks.phase == T_WORK)
    ok.append(jnp.all(jnp.where(running, (tasks.cpu >= 0) & (tasks.cpu < C), tasks.cpu == -1)))
    depth = mg.tail - mg.head
    ok.append(jnp.all((depth >= 0) & (depth <= static.ring_capacity)))
    return jnp.stack(ok)


def violations(ok) -> list:
    import numpy as np
    ok = np.asarray(ok)
    return [n for n, v in zip(NAMES, ok) if not v]
