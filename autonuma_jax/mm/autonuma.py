"""mm/autonuma.c: numa_hinting_fault() with the last_nid filter, and knuma_scand (spec §3, §4).

``numa_hinting_fault`` handles a tick's fault events, already in time order and expanded to the
page units they cover (a pmd fault in 4 KiB pmd mode walks the 512 ptes of its range, all with the
faulting CPU's node). ``knuma_scand`` advances the scanner's state machine by one tick.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ops import exclusive_cumsum
from ..pytree import replace
from ..state import PMD_NUMA, PMD_THP, SCAND_PASS_SLEEP1, SCAND_PASS_SLEEP2, SCAND_RUN, SCAND_SLEEP
from ..vmstat import count_vm_numa_events
from . import migrate

i32 = jnp.int32
i8 = jnp.int8


# ----------------------------------------------------------------------------------------------
# numa_hinting_fault (spec §4.3, §4.4)
# ----------------------------------------------------------------------------------------------
def last_nid_filter(last_nid, this_nid, allow_first_fault):
    """True when the fault passes: last == this, or (allow_first_fault and last == -1)."""
    fail = ((allow_first_fault == 0) | (last_nid >= 0)) & (last_nid != this_nid)
    return ~fail


def numa_hinting_fault(state, params, static, x_unit, x_task, x_valid, gate, this_nid):
    """Apply the per-page handler to units x (time order). Returns (state, wake[N], stats); the
    queue entries to write are stats["ring_slot"], stats["ring_unit"] (``migrate.write_rings``)."""
    pages, mms, mg, tasks = state.pages, state.mms, state.migrated, state.tasks
    kn = params.knobs.autonuma.knuma_migrated
    wp = params.workload
    N, U, M = static.n_nodes, static.n_units, static.n_mms
    w = static.unit_pages
    u = jnp.minimum(x_unit, U - 1)
    page_nid = pages.node[u].astype(i32)
    last = pages.last_nid[u].astype(i32)
    mig = pages.migrate_nid[u].astype(i32)
    g = x_valid & gate
    passed = last_nid_filter(last, this_nid, kn.allow_first_fault)
    cancel = g & ~passed & (mig >= 0)  # a mismatch cancels a pending migration
    ok = g & passed
    local = ok & (this_nid == page_nid)
    local_dq = local & (mig >= 0)
    want = ok & ~local & (mig != this_nid)
    # queue onto (this_nid, page_nid) in time order
    mg, pushed, seq, slot = migrate.push(mg, pages, u, this_nid, page_nid, want, g, static)
    dq_old = cancel | local_dq | (pushed & (mig >= 0))
    new_mig = jnp.where(cancel | local_dq, -1, jnp.where(pushed, this_nid, mig))
    access_nid = jnp.where(ok, this_nid, page_nid)

    # counters per destination, in event order, to see a crossing of pages_to_migrate
    nodes = jnp.arange(N, dtype=i32)[None, :]
    d_minus = jnp.where(dq_old[:, None] & (mig[:, None] == nodes), w, 0)
    d_plus = jnp.where(pushed[:, None] & (this_nid[:, None] == nodes), w, 0)
    run = mg.nr_migrate_pages[None, :] + jnp.cumsum(d_plus - d_minus, axis=0)
    before = run - d_plus
    thr = kn.pages_to_migrate
    crossed = (d_plus > 0) & (before < thr) & (run >= thr)
    wake = jnp.any(crossed, axis=0) & (kn.defer == 0)
    cnt = mg.nr_migrate_pages + jnp.sum(d_plus - d_minus, axis=0)
    mg = replace(mg, nr_migrate_pages=cnt)

    m_of = migrate.unit_mm(u, wp.mm_start)
    q_plus = jax.ops.segment_sum(jnp.where(pushed, w, 0), jnp.where(pushed, m_of * N + this_nid, M * N),
                                 num_segments=M * N + 1)
    q_minus = jax.ops.segment_sum(jnp.where(dq_old, w, 0), jnp.where(dq_old, m_of * N + mig, M * N),
                                  num_segments=M * N + 1)
    queued = mms.queued_pages + (q_plus - q_minus)[:M * N].reshape(M, N)

    idx = jnp.where(g, u, U)
    pages = replace(
        pages,
        # the value reads `last` (dropped entries keep it): a write that does not depend on the read
        # of the same array lets XLA order them either way, and it copied the array (every tick)
        last_nid=pages.last_nid.at[idx].set(jnp.where(g, this_nid, last).astype(i8), mode="drop"),
        migrate_nid=pages.migrate_nid.at[idx].set(new_mig.astype(i8), mode="drop"),
        migrate_seq=pages.migrate_seq.at[jnp.where(pushed, u, U)].set(seq, mode="drop"),
    )

    # task_numa_fault: lazy halving on the first fault of a new pass, then credit access_nid
    T = static.n_tasks
    t = jnp.where(g, x_task, T)
    had = jax.ops.segment_sum(g.astype(i32), t, num_segments=T + 1)[:T] > 0
    new_pass = tasks.task_numa_fault_pass != mms.mm_numa_fault_pass[wp.task_mm]
    halve = had & new_pass
    tf = jnp.where(halve[:, None], jnp.right_shift(tasks.task_numa_fault, 1), tasks.task_numa_fault)
    tot = jnp.where(halve, jnp.right_shift(tasks.task_numa_fault_tot, 1), tasks.task_numa_fault_tot)
    add = jax.ops.segment_sum(jnp.where(g, w, 0), t * N + access_nid, num_segments=(T + 1) * N)[:T * N]
    tf = tf + add.reshape(T, N)
    tot = tot + jnp.sum(add.reshape(T, N), axis=1)
    fpass = jnp.where(halve, mms.mm_numa_fault_pass[wp.task_mm], tasks.task_numa_fault_pass)
    tasks = replace(tasks, task_numa_fault=tf, task_numa_fault_tot=tot, task_numa_fault_pass=fpass)

    state = replace(state, pages=pages, mms=replace(mms, queued_pages=queued), migrated=mg, tasks=tasks)
    stats = dict(pages_queued=jnp.sum(jnp.where(pushed, w, 0)), overflows=jnp.sum((want & ~pushed).astype(i32)),
                 fault_pages=jnp.sum(jnp.where(x_valid, w, 0)), ring_slot=slot, ring_unit=u)
    return state, wake, stats


# ----------------------------------------------------------------------------------------------
# knuma_scand (spec §3)
# ----------------------------------------------------------------------------------------------
def _first_alive_after(alive, m):
    """First alive mm with index > m (m = -1: the head of the list); -1 if none."""
    idx = jnp.arange(alive.shape[0], dtype=i32)
    c = alive & (idx > m)
    return jnp.where(jnp.any(c), jnp.argmax(c), -1).astype(i32)


def knuma_scand(state, params, static, on):
    """One tick of knuma_scand. Returns (state, flush, scan_cost_ns)."""
    sc, pages, mms = state.scand, state.pages, state.mms
    wp, kn, costs = params.workload, params.knobs.autonuma.knuma_scand, params.knobs.costs
    d = params.derived
    N, W, U = static.n_nodes, static.scan_pmds_per_tick, static.n_units
    upp = static.units_per_pmd
    tick = state.tick
    pts = kn.pages_to_scan
    ws = kn.mm_working_set == 1

    # ---- timers: pass sleep halves with the knuma_migrated flush between, chunk sleep -------
    due = on & (tick >= sc.wake_tick)
    flush = due & (sc.phase == SCAND_PASS_SLEEP1)
    phase = jnp.where(flush, SCAND_PASS_SLEEP2, sc.phase)
    wake_tick = jnp.where(flush, tick + d.pass_sleep_half_ticks, sc.wake_tick)
    p2 = due & (sc.phase == SCAND_PASS_SLEEP2)
    p2_sleep = p2 & (sc.progress > pts)
    progress = jnp.where(p2_sleep, 0, sc.progress)
    phase = jnp.where(p2_sleep, SCAND_SLEEP, jnp.where(p2, SCAND_RUN, phase))
    wake_tick = jnp.where(p2_sleep, tick + d.scan_sleep_ticks, wake_tick)
    phase = jnp.where(due & (sc.phase == SCAND_SLEEP), SCAND_RUN, phase)
    run = on & (phase == SCAND_RUN)

    # ---- start of a pass / of a knumad_do_scan call -----------------------------------------
    start_pass = run & (sc.mm < 0)
    m_first = _first_alive_after(mms.alive, jnp.int32(-1))
    mm_cur = jnp.where(start_pass, m_first, sc.mm)
    addr = jnp.where(start_pass, 0, sc.addr)
    mm_pass = mms.mm_numa_fault_pass
    mm_pass = mm_pass.at[jnp.where(start_pass & (m_first >= 0), m_first, static.n_mms)].add(1, mode="drop")
    call = jnp.where(run & (sc.call_progress == 0), 1, sc.call_progress)

    has_mm = mm_cur >= 0
    m = jnp.maximum(mm_cur, 0)
    alive = has_mm & mms.alive[m]
    start_pmd = wp.mm_start[m] // upp
    len_pmd = (wp.mm_len[m] + upp - 1) // upp
    # A VMA is skipped for 1 progress when it has an explicit policy, or no anon_vma yet (the
    # process never touched its memory); each process here has one anonymous VMA (spec §3.3).
    untouched = jnp.sum(mms.node_pages[m]) == 0
    skip_vma = alive & ((wp.mm_vma_bind[m] != 0) | untouched)

    # ---- walk up to W pmds of this mm ----------------------------------------------------------
    jj = jnp.arange(W, dtype=i32)
    # One tick walks at most ceil(pages_to_scan / 512) + 1 pmds (the most one call can find present):
    # a call across sparse memory (or, in pte mode, across already armed ptes) goes on next tick [I].
    # The limit is this configuration's own, never the batch's array capacity W.
    in_range = run & alive & ~skip_vma & (addr + jj < len_pmd) & (jj < d.scan_walk_pmds)
    gp = jnp.minimum(start_pmd + addr + jj, static.n_pmds - 1)
    pmdf = pages.pmd_flags[gp]
    armed = (pmdf & PMD_NUMA) != 0
    thp = (pmdf & PMD_THP) != 0
    units = gp[:, None] * upp + jnp.arange(upp, dtype=i32)[None, :]  # [W, upp]
    present = pages.node[units] >= 0
    mnid = jnp.where(pages.migrate_nid[units] >= 0, pages.migrate_nid[units], pages.node[units]).astype(i32)
    if static.unit_pages == 512:
        pres = present[:, 0]
        skip_ws = ws & thp & armed
        count = pres & ~skip_ws  # fault_tmp += 512
        cost = jnp.where(pres, 512, 0)
        cnt_units = count[:, None]
        new_pte = None
    elif not static.pte_faults:  # 4 KiB units, pmd mode: ptes are never pte_numa
        cnt_units = present
        cost = jnp.sum(present.astype(i32), axis=1)
        new_pte = None
    else:  # 4 KiB units, pte mode
        pte = pages.pte_numa[units] != 0
        skip = ws & pte
        cnt_units = present & ~skip
        arm_pte = cnt_units & ~pte
        cost = jnp.sum(arm_pte.astype(i32), axis=1)
        new_pte = arm_pte
    cost = jnp.where(in_range, cost, 0)
    before = call + exclusive_cumsum(cost)
    proc = in_range & (before < pts)
    n_proc = jnp.sum(proc.astype(i32))
    call = call + jnp.sum(jnp.where(proc, cost, 0)) + jnp.where(skip_vma & run, 1, 0)
    w_count = 512 if static.unit_pages == 512 else 1
    cu = cnt_units & proc[:, None]
    fault_tmp = sc.fault_tmp + jax.ops.segment_sum(jnp.where(cu, w_count, 0).ravel(),
                                                   jnp.where(cu, mnid, N).ravel(), num_segments=N + 1)[:N]
    # arm
    if static.pte_faults:
        arm_pmd = jnp.zeros_like(proc)
        pte_idx = jnp.where(new_pte & proc[:, None], units, U)
        pte_numa = pages.pte_numa.at[pte_idx.ravel()].set(jnp.uint8(1), mode="drop")
    else:
        arm_pmd = proc & (cost > 0) & ~armed
        pte_numa = pages.pte_numa
    pmd_flags = pages.pmd_flags.at[jnp.where(arm_pmd, gp, static.n_pmds)].set(pmdf | jnp.uint8(PMD_NUMA), mode="drop")
    addr = jnp.where(skip_vma & run, len_pmd, addr + n_proc)
    # the vmstat equivalents (AutoNUMA24 exported none: vmstat.py): 4 KiB pages newly armed, a
    # huge pmd counting 512; huge pmds among them
    if static.pte_faults:
        pte_updates = jnp.sum((new_pte & proc[:, None]).astype(i32))
        huge_updates = jnp.int32(0)
    elif static.unit_pages == 512:
        pte_updates = jnp.sum(arm_pmd.astype(i32)) * 512
        huge_updates = jnp.sum((arm_pmd & thp).astype(i32))
    else:
        pte_updates = jnp.sum((present & arm_pmd[:, None]).astype(i32))
        huge_updates = jnp.int32(0)

    # ---- end of the call: next mm, publication, pass end, sleep --------------------------------
    at_end = run & (~alive | (addr >= len_pmd))
    call_done = run & (at_end | (call >= pts))
    p = jnp.where(call_done, call, 0)
    progress = progress + p
    pass_progress = sc.pass_progress + p
    call = jnp.where(call_done, 0, call)
    m_next = _first_alive_after(mms.alive, jnp.where(has_mm, mm_cur, static.n_mms))
    m_next = jnp.where(has_mm, m_next, -1)
    mm_pass = mm_pass.at[jnp.where(at_end & (m_next >= 0), m_next, static.n_mms)].add(1, mode="drop")
    publish = at_end & alive & ~(ws & (jnp.sum(fault_tmp) == 0))
    mm_fault = mms.mm_numa_fault.at[jnp.where(publish, m, static.n_mms)].set(fault_tmp, mode="drop")
    mm_tot = mms.mm_numa_fault_tot.at[jnp.where(publish, m, static.n_mms)].set(jnp.sum(fault_tmp), mode="drop")
    fault_tmp = jnp.where(at_end, 0, fault_tmp)
    new_mm = jnp.where(at_end, m_next, mm_cur)
    addr = jnp.where(at_end, 0, addr)
    pass_end = call_done & (new_mm < 0)
    pages_scanned = sc.pages_scanned + jnp.where(pass_end, pass_progress, 0)
    pass_progress = jnp.where(pass_end, 0, pass_progress)
    full_scans = sc.full_scans + pass_end.astype(i32)
    chunk_sleep = call_done & ~pass_end & (progress > pts)
    phase = jnp.where(pass_end, SCAND_PASS_SLEEP1, jnp.where(chunk_sleep, SCAND_SLEEP, phase))
    wake_tick = jnp.where(pass_end, tick + d.pass_sleep_half_ticks,
                          jnp.where(chunk_sleep, tick + d.scan_sleep_ticks, wake_tick))
    progress = jnp.where(chunk_sleep, 0, progress)

    # ---- CPU cost of the scan ---------------------------------------------------------------------
    n_pte = jnp.sum((present & proc[:, None]).astype(i32)) if static.unit_pages == 1 else 0
    scan_ns = (n_proc * costs.scan_per_pmd_ns + n_pte * costs.scan_per_pte_ns
               + jnp.where(call_done, costs.scan_tlb_flush_ns, 0))

    sc = replace(sc, phase=phase.astype(i32), wake_tick=wake_tick.astype(i32), mm=new_mm.astype(i32),
                 addr=addr.astype(i32), progress=progress.astype(i32), pass_progress=pass_progress.astype(i32),
                 call_progress=call.astype(i32), fault_tmp=fault_tmp.astype(i32), full_scans=full_scans,
                 pages_scanned=pages_scanned.astype(i32))
    pages = replace(pages, pmd_flags=pmd_flags, pte_numa=pte_numa)
    mms = replace(mms, mm_numa_fault=mm_fault, mm_numa_fault_tot=mm_tot, mm_numa_fault_pass=mm_pass)
    state = count_vm_numa_events(state, numa_pte_updates=pte_updates, numa_huge_pte_updates=huge_updates)
    return replace(state, scand=sc, pages=pages, mms=mms), flush, scan_ns.astype(i32)
