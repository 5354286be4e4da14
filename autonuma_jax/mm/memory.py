"""The access phase of a tick (mm/memory.c: handle_mm_fault and the NUMA hinting fault entries).

Every running thread's touched units become entries (unit, time, task). Grouped by unit, the
entry with the earliest time (ties: lowest task id) is the unit's first toucher this tick: it
allocates the page if absent (first touch). The first toucher of an armed pmd (or, in 4 KiB pte
mode, of an armed pte) takes the NUMA hinting fault; everybody after it finds it disarmed. Fault
events are then ordered by time (ties: by unit), the order in which they queue pages (FIFO) and
move the knuma_migrated counters. Nothing depends on scatter order.

Only a touched unit that is absent or armed can change anything here (``interesting``); in a
steady tick that is a handful of the T x A candidate entries (numa01 on 2node_24cpu: at most 6
of 384, none in 70 % of ticks). ``access`` with a ``capacity`` first compacts those entries, in
their original order, into an array of that size and works on it alone; the batched driver uses
it whenever every configuration of the batch fits, and the whole array otherwise. Both give the
same result: every entry of an absent unit or an armed pmd/pte is kept, and the kept entries keep
their relative order, which is all the sorts below look at.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ops import segment_first_min, sort_perm
from ..pytree import replace
from ..state import PMD_NUMA, PMD_THP, T_INIT
from ..vmstat import count_vm_numa_events
from . import autonuma, mempolicy
from ..config import UPSTREAM
from ..policies import upstream

i32 = jnp.int32
BIG = jnp.iinfo(jnp.int32).max


def absent_touched(pages, static, st):
    """[T, A] the touched candidates whose unit has no page yet (first touch allocates it); ``st``
    was streamed over these ``pages``."""
    return st.touched & st.absent


def interesting(pages, static, st):
    """[T, A] the touched candidates whose unit is absent or armed (pmd, or pte in pte mode)."""
    u = jnp.minimum(st.unit, static.n_units - 1)
    if static.pte_faults:
        armed = pages.pte_numa[u] != 0
    else:
        armed = (pages.pmd_flags[u // static.units_per_pmd] & PMD_NUMA) != 0
    return st.touched & (st.absent | armed)


def _ring_writes(fstats, static):
    """The queue entries to write, padded to the full path's size so that both paths (and the
    skipped phase, all zeros: nothing to write) return the same shapes."""
    pad = static.fault_events * static.units_per_fault - fstats["ring_slot"].shape[0]
    return dict(ring_slot=jnp.pad(fstats["ring_slot"], (0, pad)), ring_unit=jnp.pad(fstats["ring_unit"], (0, pad)))


def access(state, params, static, st, autonuma_on, capacity=None, first_touch=True):
    """Allocation on first touch and NUMA hinting faults for stream ``st``; with ``capacity``, on
    the first ``capacity`` interesting entries only (the caller makes sure there are no more);
    with ``first_touch=False``, without the allocation step (the caller makes sure no touched unit
    is absent, as in every tick after a workload's start-up: the step would change nothing).

    Returns (state, wake[N], stats dict with per-task costs in ns). ``state`` comes without the
    knuma_migrated rings (``migrated.ring`` None): the entries queued are returned in
    stats["ring_slot"], stats["ring_unit"] for ``migrate.write_rings``.
    """
    pages, tasks, mms = state.pages, state.tasks, state.mms
    mp, wp, costs = params.machine, params.workload, params.knobs.costs
    T, A, N, U = static.n_tasks, static.units_per_tick, static.n_nodes, static.n_units
    E_all = T * A
    w = static.unit_pages
    upf = static.units_per_fault

    if capacity is None:
        E, F = E_all, static.fault_events
        src = jnp.arange(E_all, dtype=i32)  # entry -> candidate (flat task * A + k)
        keep = st.touched.ravel()
    else:
        E, F = capacity, min(static.fault_events, capacity)
        src = jnp.nonzero(interesting(pages, static, st).ravel(), size=E, fill_value=E_all)[0].astype(i32)
        keep = src < E_all
        src = jnp.minimum(src, E_all - 1)
    unit = jnp.where(keep, st.unit.ravel()[src], U)
    tau_all = st.tau.ravel()[src]
    ubits = max(1, U.bit_length())
    flat_s = sort_perm([(unit, ubits)], E)  # by unit, then task, then position in the stream
    unit_s = unit[flat_s]
    tau_s = tau_all[flat_s]
    src_s = src[flat_s]
    task_s = src_s // A
    real = unit_s < U
    us = jnp.minimum(unit_s, U - 1)
    new_unit = jnp.concatenate([jnp.ones(1, bool), unit_s[1:] != unit_s[:-1]])
    useg = jnp.cumsum(new_unit.astype(i32)) - 1
    # first toucher of each unit: earliest time, ties to the lowest task id
    first_u = segment_first_min(tau_s, task_s, useg, E)

    # ---- first touch ------------------------------------------------------------------------
    free, oom, alloc_ns = state.free_pages, jnp.zeros(E, bool), jnp.zeros(T, i32)
    if first_touch:
        cur_node = pages.node[us].astype(i32)
        req = real & first_u & (cur_node < 0)
        order = st.order.reshape(E_all, N)[src_s]
        allowed = st.allowed.reshape(E_all, N)[src_s]
        got, free, oom = mempolicy.allocate(req, order, allowed, jnp.full(E, w, i32), free, mp.wmark_low, N)
        idx = jnp.where(req, us, U)
        node = pages.node.at[idx].set(got.astype(pages.node.dtype), mode="drop")
        pmd_flags = pages.pmd_flags
        if static.unit_pages == 512:
            thp = params.derived.thp == 1
            pmd_flags = pmd_flags.at[idx].set(jnp.where(thp, jnp.uint8(PMD_THP), jnp.uint8(0)), mode="drop")
        m_of = wp.task_mm[task_s]
        M = static.n_mms
        alloc_add = jax.ops.segment_sum(jnp.where(req, w, 0), jnp.where(req, m_of * N + got, M * N),
                                        num_segments=M * N + 1)[:M * N].reshape(M, N)
        pages = replace(pages, node=node, pmd_flags=pmd_flags)
        mms = replace(mms, node_pages=mms.node_pages + alloc_add)
        alloc_ns = jax.ops.segment_sum(jnp.where(req, w * costs.first_touch_per_page_ns, 0), task_s, num_segments=T)
        # zone_statistics: preferred = the first allowed node of the zonelist the request started from
        hit = got == mempolicy.first_choice(order, allowed)
        local = got == mp.cpu_node[jnp.maximum(tasks.cpu[task_s], 0)]
        state = count_vm_numa_events(
            state, numa_hit=jnp.sum(jnp.where(req & hit, w, 0)), numa_miss=jnp.sum(jnp.where(req & ~hit, w, 0)),
            numa_local=jnp.sum(jnp.where(req & local, w, 0)), numa_other=jnp.sum(jnp.where(req & ~local, w, 0)))

    # ---- who takes each hinting fault ----------------------------------------------------------
    key_s = unit_s // upf  # fault key: pmd (pmd level in 4 KiB mode) or unit
    if upf == 1:
        owner = real & first_u
    else:
        new_key = jnp.concatenate([jnp.ones(1, bool), key_s[1:] != key_s[:-1]])
        kseg = jnp.cumsum(new_key.astype(i32)) - 1
        owner = real & segment_first_min(tau_s, task_s, kseg, E)
    if static.pte_faults:
        armed = pages.pte_numa[us] != 0
    else:
        armed = (pages.pmd_flags[jnp.minimum(key_s, static.n_pmds - 1) if upf > 1 else us // static.units_per_pmd]
                 & PMD_NUMA) != 0
    fault = owner & armed

    # compact the fault events and order them by time
    slot = jnp.where(fault, jnp.cumsum(fault.astype(i32)) - 1, F)
    ev_key = jnp.full(F, 0, i32).at[slot].set(key_s, mode="drop")
    ev_task = jnp.full(F, T, i32).at[slot].set(task_s, mode="drop")
    tbits = max(1, (2 * static.tick_ns).bit_length())
    ev_tau = jnp.full(F, (1 << tbits) - 1, i32).at[slot].set(tau_s, mode="drop")
    # time order; equal times keep the unit order of the compaction
    perm = sort_perm([(ev_tau, tbits)], F)
    ev_key, ev_task, ev_tau = ev_key[perm], ev_task[perm], ev_tau[perm]
    ev_valid = ev_task < T
    n_events = jnp.sum(ev_valid.astype(i32))
    # numa_hint_faults_local: the page (the first of a pmd fault's) already on the faulting CPU's node
    ev_nid = pages.node[jnp.minimum(ev_key * upf, U - 1)].astype(i32)
    ev_cpu_nid = mp.cpu_node[jnp.maximum(tasks.cpu[jnp.minimum(ev_task, T - 1)], 0)]
    state = count_vm_numa_events(state, numa_hint_faults_local=jnp.sum((ev_valid & (ev_nid == ev_cpu_nid)).astype(i32)))

    # disarm: the pmd (all its ptes) or the pte
    if static.pte_faults:
        flags_before = pages.pmd_flags[jnp.minimum(ev_key if upf > 1 else ev_key // static.units_per_pmd,
                                                   static.n_pmds - 1)]
        pte_numa = pages.pte_numa.at[jnp.where(ev_valid, ev_key, U)].set(jnp.uint8(0), mode="drop")
        pages = replace(pages, pte_numa=pte_numa)
    else:
        pmd = ev_key if upf > 1 else ev_key // static.units_per_pmd
        pidx = jnp.where(ev_valid, pmd, static.n_pmds)
        cur = pages.pmd_flags[jnp.minimum(pidx, static.n_pmds - 1)]
        # the flags before the fault, of every valid event's pmd (the only ones read below): the
        # gathered values themselves, so that nothing reads the array after its in-place update
        # (a second gather of it, unordered with the scatter, made XLA copy the array every tick)
        flags_before = cur
        pages = replace(pages, pmd_flags=pages.pmd_flags.at[pidx].set(cur & ~jnp.uint8(PMD_NUMA), mode="drop"))

    # expand to the page units each event covers
    x_unit = (ev_key[:, None] * upf + jnp.arange(upf, dtype=i32)[None, :]).ravel()
    x_task = jnp.repeat(ev_task, upf)
    x_unit = jnp.minimum(x_unit, U - 1)
    x_valid = jnp.repeat(ev_valid, upf) & (pages.node[x_unit] >= 0)
    ts = jnp.minimum(x_task, T - 1)
    this_nid = mp.cpu_node[jnp.maximum(tasks.cpu[ts], 0)]
    # numa_hinting_fault() does nothing for a task with a mempolicy or with AutoNUMA disabled
    t_phase_mask = jnp.where(tasks.phase[ts] == T_INIT,
                             jnp.where(wp.init_by_slice[ts] == 1, 1, wp.init_bind[ts]), wp.work_bind[ts])
    gate = autonuma_on & (t_phase_mask == 0)
    state = replace(state, pages=pages, mms=mms, free_pages=free)
    state, wake, fstats = autonuma.numa_hinting_fault(state, params, static, x_unit, x_task, x_valid, gate, this_nid)
    up_migrated, up_ns = jnp.int32(0), jnp.zeros(T, i32)
    if any(pid in UPSTREAM for pid in static.policies):
        # upstream NUMA balancing: the same fault events, its own filter and synchronous migration
        state, ust = upstream.numa_fault(state, params, static, x_unit, x_task, x_valid & (t_phase_mask == 0),
                                         this_nid, tasks.cpu[ts])
        up_migrated, up_ns = ust["pages_migrated"], ust["migrate_ns"]
        state = replace(state, migrated=replace(state.migrated,
                                                pages_migrated=state.migrated.pages_migrated + up_migrated))

    # ---- costs of the faults, charged to the faulting threads -----------------------------------
    if static.unit_pages == 512:
        # a THP fault is one call of weight 512; a page-table pmd (or a split THP) walks 512 ptes
        ev_thp = (flags_before & PMD_THP) != 0
        pages_handled = jnp.where(ev_valid, jnp.where(ev_thp, 1, 512), 0)
    else:
        pages_handled = jnp.sum(x_valid.reshape(-1, upf).astype(i32), axis=1)
    ev_cost = jnp.where(ev_valid, costs.hinting_fault_ns + pages_handled * costs.hinting_fault_per_page_ns, 0)
    fault_ns = jax.ops.segment_sum(ev_cost, jnp.minimum(ev_task, T), num_segments=T + 1)[:T] + up_ns

    stats = dict(hinting_faults=n_events, fault_pages=fstats["fault_pages"], pages_queued=fstats["pages_queued"],
                 overflows=fstats["overflows"], oom=jnp.sum(jnp.where(oom, w, 0)), alloc_ns=alloc_ns,
                 migrated=up_migrated, up_migrate_ns=jnp.sum(up_ns),
                 fault_ns=fault_ns, **_ring_writes(fstats, static),
                 # the node of every stream entry after the phase, for the tick's locality count; read
                 # here, inside the phase, so that no read of pages.node outside it is left unordered
                 # with the in-place writes of the phases around it (XLA copied the array for it)
                 node_entry=state.pages.node[jnp.minimum(st.unit, U - 1)].astype(i32), ran=jnp.bool_(True))
    return state, wake, stats
