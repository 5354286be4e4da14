"""khugepaged (mm/huge_memory.c): re-collapse THPs that knuma_migrated split (spec §4.5).

Every ``scan_sleep_millisecs`` it visits the next ``pages_to_scan / 512`` pmds (a cursor over all
processes) and collapses a present, split unit back into a huge page: the unit keeps its node,
``last_nid`` (the first non-negative of its small pages, all equal here) and its pmd_numa state
(armed if any pte was). The small pages it frees leave the knuma_migrated queue (spec §2.1: a
freed page is dequeued). Only with 2 MiB units and THP enabled.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..pytree import replace
from ..state import PMD_THP
from .migrate import unit_mm

i32 = jnp.int32

WINDOW = 64  # most pmds one wake-up visits (pages_to_scan up to 32768)


def khugepaged(state, params, static):
    """Returns (state, collapse_cost_ns)."""
    if static.unit_pages != 512:
        return state, jnp.int32(0)
    kh, pages = state.khugepaged, state.pages
    kp = params.knobs.transparent_hugepage.khugepaged
    P = static.n_pmds
    run = (params.derived.thp == 1) & (state.tick >= kh.wake_tick)
    n_scan = jnp.clip(kp.pages_to_scan // 512, 1, WINDOW)
    j = jnp.arange(WINDOW, dtype=i32)
    gp = (kh.cursor + j) % P
    alive = state.mms.alive[unit_mm(gp, params.workload.mm_start)]
    flags = pages.pmd_flags[gp]
    coll = run & (j < n_scan) & alive & (pages.node[gp] >= 0) & ((flags & PMD_THP) == 0)
    pmd_flags = pages.pmd_flags.at[jnp.where(coll, gp, P)].set(flags | jnp.uint8(PMD_THP), mode="drop")
    # the small pages are freed into the new huge page: a pending migration of theirs is dequeued
    mig = pages.migrate_nid[gp].astype(i32)
    dq = coll & (mig >= 0)
    N, M = static.n_nodes, static.n_mms
    dq_pages = jax.ops.segment_sum(jnp.where(dq, 512, 0), jnp.where(dq, mig, N), num_segments=N + 1)[:N]
    m_of = unit_mm(gp, params.workload.mm_start)
    dq_mm = jax.ops.segment_sum(jnp.where(dq, 512, 0), jnp.where(dq, m_of * N + mig, M * N),
                                num_segments=M * N + 1)[:M * N].reshape(M, N)
    migrate_nid = pages.migrate_nid.at[jnp.where(dq, gp, P)].set(jnp.int8(-1), mode="drop")
    state = replace(state, migrated=replace(state.migrated, nr_migrate_pages=state.migrated.nr_migrate_pages - dq_pages),
                    mms=replace(state.mms, queued_pages=state.mms.queued_pages - dq_mm))
    cursor = jnp.where(run, (kh.cursor + n_scan) % P, kh.cursor)
    wake = jnp.where(run, state.tick + params.derived.khugepaged_sleep_ticks, kh.wake_tick)
    cost = jnp.sum(coll.astype(i32)) * 512 * params.knobs.costs.collapse_per_page_ns
    state = replace(state, pages=replace(pages, pmd_flags=pmd_flags, migrate_nid=migrate_nid),
                    khugepaged=replace(kh, cursor=cursor.astype(i32), wake_tick=wake.astype(i32)))
    return state, cost.astype(i32)
