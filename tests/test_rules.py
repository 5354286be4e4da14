"""Unit tests of the AutoNUMA24 rules (spec §§2-7, §13) against the engine's functions.

Each test builds a real state for a tiny configuration (``init_state`` of a ``mini`` config), sets
the few fields the rule depends on, calls one engine function (jitted once per module, so values
never recompile) and checks the result against the spec. States are edited as NumPy copies.

Layout of the crafted configurations (``mini(size_mib=16)``, 2 MiB page units, THP on):
two processes (mm 0: units 0..7, mm 1: units 8..15), one unit per pmd, eight threads
(tasks 0..3 in mm 0, 4..7 in mm 1). TINY2: CPUs 0-3 on node 0, 4-7 on node 1.
TINY4: CPU 2n and 2n+1 on node n.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autonuma_jax import ops
from autonuma_jax import params as P
from autonuma_jax.config import build_static, validate_run
from autonuma_jax.mm import autonuma, memory, mempolicy, migrate
from autonuma_jax.physics import stream
from autonuma_jax.rng import tick_draws
from autonuma_jax.sched import numa
from autonuma_jax.sched.runqueue import runnable
from autonuma_jax.state import (PMD_NUMA, PMD_THP, SCAND_PASS_SLEEP1, SCAND_PASS_SLEEP2, SCAND_RUN, SCAND_SLEEP,
                                T_WORK, init_state)

from conftest import TINY2, TINY4, mini

AFF = "autonuma.knuma_migrated.allow_first_fault"
DEFER = "autonuma.knuma_migrated.defer"
PTM = "autonuma.knuma_migrated.pages_to_migrate"
PTS = "autonuma.knuma_scand.pages_to_scan"
WS = "autonuma.knuma_scand.mm_working_set"
ENABLED = "autonuma.enabled"

HP = 512  # 4 KiB pages per 2 MiB unit
E = 8  # fault events per numa_hinting_fault call (padded)
FAR = 1 << 30  # a tick that never comes


# ------------------------------------------------------------------------------------------------
# the rig: one tiny configuration, its state and the engine functions jitted once
# ------------------------------------------------------------------------------------------------
def to_np(tree):
    """Writable NumPy copy of a pytree (State, Params, ...)."""
    return jax.tree_util.tree_map(lambda x: np.array(x), tree)


class Rig:
    def __init__(self, machine, page_unit="2M", knobs=None, size_mib=16):
        self.machine = machine
        self.size_mib = size_mib
        self.page_unit = page_unit
        self.base_knobs = dict(knobs or {})
        cfg = self.cfg()
        validate_run(cfg)
        self.static = s = build_static([cfg])
        self.params = P.build_params(cfg, s)
        self._init = jax.jit(functools.partial(init_state, s))
        self.fault_fn = jax.jit(lambda st, p, xu, xt, xv, tn: _with_ring_writes(autonuma.numa_hinting_fault(
            st, p, s, xu, xt, xv, jnp.bool_(True), tn)))
        self.scand_fn = jax.jit(lambda st, p, on: autonuma.knuma_scand(st, p, s, on))
        self.migrated_fn = jax.jit(lambda st, p, wake: migrate.knuma_migrated(st, p, s, wake))
        self.balance_fn = jax.jit(lambda st, p, en: numa.sched_autonuma_balance(st, p, s, p.policy == 1, en))
        self.access_fn = jax.jit(lambda st, p: _access(st, p, s))

    def cfg(self, knobs=None, policy="autonuma24"):
        return mini(self.machine, policy=policy, size_mib=self.size_mib, page_unit=self.page_unit,
                    knobs={**self.base_knobs, **(knobs or {})})

    def p(self, knobs=None, policy="autonuma24"):
        """Params of this layout with other knob values (same Static, so nothing recompiles)."""
        return to_np(P.build_params(self.cfg(knobs, policy), self.static))

    def state(self, params=None):
        """Boot state with knuma_scand due now (at boot it sleeps until a seeded point of its cycle,
        tested in test_scand_boot_phase_is_seeded)."""
        S = to_np(self._init(self.params if params is None else params))
        return dataclasses.replace(S, scand=dataclasses.replace(S.scand, phase=np.asarray(SCAND_RUN, np.int32),
                                                                wake_tick=np.asarray(0, np.int32)))

    # ---- crafting ------------------------------------------------------------------------
    def mm_of(self, u):
        return int(np.searchsorted(self.params.workload.mm_start, u, side="right") - 1)

    def place(self, S, units, node, thp=True, armed=False):
        """Page units present on `node` (first touch already done), consistent counters."""
        w = self.static.unit_pages
        for u in np.atleast_1d(units):
            u = int(u)
            assert S.pages.node[u] < 0
            S.pages.node[u] = node
            S.free_pages[node] -= w
            S.mms.node_pages[self.mm_of(u), node] += w
            if w == HP:
                S.pages.pmd_flags[u] = (PMD_THP if thp else 0) | (PMD_NUMA if armed else 0)
        return S

    def run_task(self, S, t, cpu):
        S.tasks.phase[t] = T_WORK
        S.tasks.cpu[t] = cpu
        return S

    # ---- engine calls ----------------------------------------------------------------------
    def fault(self, S, params, events):
        """numa_hinting_fault for events [(unit, task, this_nid), ...] in time order."""
        assert len(events) <= E
        xu = np.zeros(E, np.int32)
        xt = np.zeros(E, np.int32)
        tn = np.zeros(E, np.int32)
        xv = np.zeros(E, bool)
        for i, (u, t, n) in enumerate(events):
            xu[i], xt[i], tn[i], xv[i] = u, t, n, True
        S2, wake, stats = self.fault_fn(S, params, xu, xt, xv, tn)
        return to_np(S2), np.asarray(wake), {k: int(v) for k, v in stats.items() if not k.startswith("ring_")}

    def scand(self, S, params, on=True):
        S2, flush, ns = self.scand_fn(S, params, jnp.bool_(on))
        return to_np(S2), bool(flush)

    def migrated(self, S, params, wake):
        S2, moved, cost = self.migrated_fn(S, params, np.asarray(wake, bool))
        return to_np(S2), np.asarray(moved)

    def balance(self, S, params, enabled=1):
        tasks, sched, n, moved = self.balance_fn(S, params, jnp.int32(enabled))
        return to_np(tasks), to_np(sched), int(n), np.asarray(moved)

    def access(self, S, params):
        S2, touched = self.access_fn(S, params)
        return to_np(S2), np.asarray(touched)


def _access(state, params, static):
    """Phase 4 of a tick alone: every runnable thread streams one tick (physics.stream) and its
    accesses go through memory.access (first-touch allocation, hinting faults)."""
    tasks = state.tasks
    d = params.derived
    draws = tick_draws(params.seed, state.tick, tasks.speed_q, d.speed_a, d.speed_b, d.phase_jitter_ns)
    run = runnable(tasks)
    budget = jnp.where(run, static.tick_ns, 0).astype(jnp.int32)
    core_busy = jnp.ones(static.n_tasks, jnp.int32)
    on = (params.policy == 1) & (params.knobs.autonuma.enabled == 1)
    st = stream(tasks, state.pages, params, static, draws, budget, run, core_busy, on, state.memsys)
    state = _with_ring_writes(memory.access(state, params, static, st, on))[0]
    return state, st.touched


def _with_ring_writes(out):
    """(state, wake, stats) of a phase that queues pages, with the queued entries written to the
    rings as the tick writes them after the access phase."""
    state, wake, stats = out
    mg = state.migrated
    ring = migrate.write_rings(mg.ring, stats["ring_slot"], stats["ring_unit"])
    return dataclasses.replace(state, migrated=dataclasses.replace(mg, ring=ring)), wake, stats


def set_tick(S, t):
    return dataclasses.replace(S, tick=np.asarray(t, np.int32))


def ring_entries(rig, S, dst, src):
    """Live-or-dead entries of the (dst, src) ring, oldest first."""
    r = int(migrate.ring_index(np.int32(dst), np.int32(src), rig.static.n_nodes))
    h, t = int(S.migrated.head[r]), int(S.migrated.tail[r])
    cap = rig.static.ring_capacity
    return [int(S.migrated.ring[r, i % cap]) for i in range(h, t)]


@pytest.fixture(scope="module")
def r2():
    return Rig(TINY2)


@pytest.fixture(scope="module")
def r4():
    return Rig(TINY4)


# ================================================================================================
# ops.permille and the last_nid filter (spec §4.4, §6.2, §13)
# ================================================================================================
def test_permille_is_floor_and_raises_the_total():
    pm = jax.jit(ops.permille)
    f = np.array([0, 1, 3, 7, 999, 1000, 5, 4, 123456], np.int32)
    t = np.array([7, 3, 7, 7, 1000, 1000, 3, 0, 1 << 20], np.int32)
    got = np.asarray(pm(f, t))
    want = [0, 333, 428, 1000, 999, 1000, 1000, 1000, 117]  # f > tot: tot raised to f; tot 0 & f>0 -> 1000
    assert got.tolist() == want
    # exact floor(1000 f / t) for totals below 2^21, as the kernel's unsigned long arithmetic
    rng = np.random.default_rng(0)
    t = rng.integers(1, 1 << 21, 2000).astype(np.int32)
    f = (rng.random(2000) * t).astype(np.int32)
    assert np.array_equal(np.asarray(pm(f, t)), (f.astype(np.int64) * 1000) // t)
    assert int(pm(np.int32(0), np.int32(0))) == 0


@pytest.mark.parametrize("aff", [0, 1])
def test_last_nid_filter_truth_table(aff):
    filt = jax.jit(autonuma.last_nid_filter)
    last = np.array([-1, -1, 0, 0, 1, 1], np.int32)
    this = np.array([0, 1, 0, 1, 0, 1], np.int32)
    got = np.asarray(filt(last, this, np.int32(aff))).tolist()
    # pass <=> last == this  or  (allow_first_fault and last == -1)
    want = [(l == n) or (aff == 1 and l == -1) for l, n in zip(last, this)]
    assert got == want


# ================================================================================================
# numa_hinting_fault (spec §4.3-4.5, §5.2)
# ================================================================================================
@pytest.mark.parametrize("aff", [0, 1])
@pytest.mark.parametrize("last", [-1, 0, 1])
def test_fault_filter_decides_queueing_and_credit(r2, aff, last):
    """Remote page on node 0, fault from node 1: queued to node 1 iff the filter passes; last_nid
    always becomes this_nid; the task is credited at access_nid (this_nid when passed, else the
    page's node)."""
    p = r2.p({AFF: aff})
    S = r2.place(r2.state(p), [0], 0)
    S.pages.last_nid[0] = last
    S, wake, stats = r2.fault(S, p, [(0, 0, 1)])
    passed = last == 1 or (aff == 1 and last == -1)
    assert S.pages.last_nid[0] == 1
    assert S.pages.migrate_nid[0] == (1 if passed else -1)
    assert S.migrated.nr_migrate_pages.tolist() == [0, HP if passed else 0]
    assert S.mms.queued_pages[0].tolist() == [0, HP if passed else 0]
    assert stats["pages_queued"] == (HP if passed else 0)
    assert ring_entries(r2, S, 1, 0) == ([0] if passed else [])
    access_nid = 1 if passed else 0
    want = [0, 0]
    want[access_nid] = HP
    assert S.tasks.task_numa_fault[0].tolist() == want
    assert S.tasks.task_numa_fault_tot[0] == HP


@pytest.mark.parametrize("aff", [0, 1])
def test_mismatch_cancels_pending_migration(r2, aff):
    """A fault from another node than last time dequeues a queued page (spec §4.4, §5.2)."""
    p = r2.p({AFF: aff})
    S = r2.place(r2.state(p), [0, 1], 0)
    S.pages.last_nid[[0, 1]] = 1  # so that the first fault passes with either allow_first_fault
    S, _, _ = r2.fault(S, p, [(0, 0, 1), (1, 0, 1)])
    assert S.pages.migrate_nid[[0, 1]].tolist() == [1, 1]
    assert S.migrated.nr_migrate_pages.tolist() == [0, 2 * HP]
    S, _, _ = r2.fault(S, p, [(0, 4, 0)])  # node 0 faults, last_nid = 1: fails
    assert S.pages.migrate_nid[[0, 1]].tolist() == [-1, 1]
    assert S.pages.last_nid[0] == 0
    assert S.migrated.nr_migrate_pages.tolist() == [0, HP]
    assert S.mms.queued_pages[0].tolist() == [0, HP]
    assert S.pages.node[0] == 0  # not migrated
    # the daemon later migrates only the page still queued
    S, moved = r2.migrated(S, p, [False, True])
    assert S.pages.node[[0, 1]].tolist() == [0, 1] and moved.tolist() == [0, HP]


def test_local_fault_dequeues(r2):
    """A passing fault from the page's own node removes it from the migration queue."""
    p = r2.p()
    S = r2.place(r2.state(p), [0], 0)
    S, _, _ = r2.fault(S, p, [(0, 0, 1)])  # queued 0 -> 1
    assert S.pages.migrate_nid[0] == 1
    S.pages.last_nid[0] = 0  # the last fault came from node 0: a local fault from node 0 passes
    S, _, stats = r2.fault(S, p, [(0, 1, 0)])
    assert S.pages.migrate_nid[0] == -1
    assert S.migrated.nr_migrate_pages.tolist() == [0, 0]
    assert S.mms.queued_pages.sum() == 0
    assert stats["pages_queued"] == 0
    assert S.tasks.task_numa_fault[1].tolist() == [HP, 0]  # local: credited to this node


def test_requeue_to_same_destination_is_a_noop(r2):
    p = r2.p()
    S = r2.place(r2.state(p), [0], 0)
    S, _, st1 = r2.fault(S, p, [(0, 0, 1)])
    S, _, st2 = r2.fault(S, p, [(0, 1, 1)])  # passes again (last == this), already queued to 1
    assert st1["pages_queued"] == HP and st2["pages_queued"] == 0
    assert S.migrated.nr_migrate_pages.tolist() == [0, HP]
    assert ring_entries(r2, S, 1, 0) == [0]
    assert S.tasks.task_numa_fault[0].tolist() == [0, HP] and S.tasks.task_numa_fault[1].tolist() == [0, HP]


def test_destination_is_faulting_cpus_node_not_selected_nid(r4):
    """Memory follows CPU: dst = this_nid, never task_selected_nid (spec §4.4)."""
    p = r4.p()
    S = r4.place(r4.state(p), [0], 0)
    S.tasks.task_selected_nid[0] = 3
    S, _, _ = r4.fault(S, p, [(0, 0, 2)])
    assert S.pages.migrate_nid[0] == 2
    assert ring_entries(r4, S, 2, 0) == [0] and ring_entries(r4, S, 3, 0) == []
    assert S.migrated.nr_migrate_pages.tolist() == [0, 0, HP, 0]
    assert S.tasks.task_numa_fault[0].tolist() == [0, 0, HP, 0]


def test_destination_through_the_access_path(r2):
    """memory.access: the first toucher of an armed THP takes the fault; this_nid is the node of
    the CPU it runs on (task_selected_nid points elsewhere); the pmd is disarmed."""
    p = r2.p()
    S = r2.state(p)
    S = r2.place(S, range(0, 8), 0, armed=True)
    S = r2.run_task(S, 0, 4)  # node 1
    S.tasks.task_selected_nid[0] = 0
    S, touched = r2.access(S, p)
    t_units = np.nonzero(touched[0])[0]
    assert len(t_units) >= 1
    u = int(t_units[0])  # the work region starts at unit 0 of mm 0
    assert u == 0
    assert S.pages.migrate_nid[u] == 1
    assert S.pages.pmd_flags[u] & PMD_NUMA == 0
    assert S.tasks.task_numa_fault[0, 1] == HP * len(t_units)
    assert S.tasks.task_numa_fault[0, 0] == 0


def test_thp_fault_is_one_event_of_weight_512(r2):
    p = r2.p()
    S = r2.place(r2.state(p), [3], 0)
    S, _, stats = r2.fault(S, p, [(3, 2, 1)])
    assert stats["fault_pages"] == HP and stats["pages_queued"] == HP
    assert S.tasks.task_numa_fault[2].tolist() == [0, HP] and S.tasks.task_numa_fault_tot[2] == HP
    assert S.migrated.nr_migrate_pages[1] == HP
    assert ring_entries(r2, S, 1, 0) == [3]  # one queue entry
    # knuma_migrated splits it and its 512 pages move together
    free0 = S.free_pages.copy()
    S, moved = r2.migrated(S, p, [False, True])
    assert moved.tolist() == [0, HP]
    assert S.pages.node[3] == 1 and S.pages.pmd_flags[3] & PMD_THP == 0
    assert (S.free_pages - free0).tolist() == [HP, -HP]
    assert S.mms.node_pages[0].tolist() == [0, HP]


def test_task_stats_halve_lazily_on_first_fault_of_a_new_pass(r2):
    p = r2.p()
    S = r2.place(r2.state(p), [0, 1, 2, 3], 0)
    S.tasks.task_numa_fault[0] = [100, 41]
    S.tasks.task_numa_fault_tot[0] = 141
    S.tasks.task_numa_fault_pass[0] = 3
    S.tasks.task_numa_fault[1] = [60, 20]  # task 1: same mm, no fault: not decayed
    S.tasks.task_numa_fault_tot[1] = 80
    S.tasks.task_numa_fault_pass[1] = 3
    S.mms.mm_numa_fault_pass[0] = 4  # knuma_scand started a new pass of mm 0
    S.pages.last_nid[[0, 1, 2, 3]] = 0  # local faults
    # two faults of task 0 in one call: halved once, then both credited
    S, _, _ = r2.fault(S, p, [(0, 0, 0), (1, 0, 0)])
    assert S.tasks.task_numa_fault[0].tolist() == [50 + 2 * HP, 20]
    assert S.tasks.task_numa_fault_tot[0] == 70 + 2 * HP
    assert S.tasks.task_numa_fault_pass[0] == 4
    assert S.tasks.task_numa_fault[1].tolist() == [60, 20] and S.tasks.task_numa_fault_pass[1] == 3
    # a later fault in the same pass: no halving
    S, _, _ = r2.fault(S, p, [(2, 0, 0)])
    assert S.tasks.task_numa_fault[0].tolist() == [50 + 3 * HP, 20]
    assert S.tasks.task_numa_fault_tot[0] == 70 + 3 * HP
    # next pass: halved again on the first fault
    S.mms.mm_numa_fault_pass[0] = 5
    S, _, _ = r2.fault(S, p, [(3, 0, 0)])
    assert S.tasks.task_numa_fault[0].tolist() == [(50 + 3 * HP) // 2 + HP, 10]
    assert S.tasks.task_numa_fault_tot[0] == (70 + 3 * HP) // 2 + HP


def test_failed_filter_credits_page_node(r4):
    """access_nid: the page's current node when the filter fails (spec §4.4)."""
    p = r4.p({AFF: 0})
    S = r4.place(r4.state(p), [0], 3)
    S, _, _ = r4.fault(S, p, [(0, 0, 1)])  # first fault with allow_first_fault=0: fails
    assert S.tasks.task_numa_fault[0].tolist() == [0, 0, 0, HP]
    S, _, _ = r4.fault(S, p, [(0, 0, 1)])  # now last_nid == 1: passes, queued, credited to 1
    assert S.tasks.task_numa_fault[0].tolist() == [0, HP, 0, HP]
    assert S.pages.migrate_nid[0] == 1


# ================================================================================================
# knuma_migrated wake-up rule (spec §5.2)
# ================================================================================================
def test_wake_only_when_counter_crosses_threshold(r2):
    p = r2.p({PTM: 2 * HP})
    S = r2.place(r2.state(p), range(0, 6), 0)
    S, wake, _ = r2.fault(S, p, [(0, 0, 1)])
    assert wake.tolist() == [False, False]  # 512 < 1024
    S, wake, _ = r2.fault(S, p, [(1, 0, 1)])
    assert wake.tolist() == [False, True]  # 512 -> 1024 crosses
    S, wake, _ = r2.fault(S, p, [(2, 0, 1)])
    assert wake.tolist() == [False, False]  # already above: no new crossing
    # a crossing in the middle of one call's events
    S = r2.place(r2.state(p), range(0, 6), 0)
    S, wake, _ = r2.fault(S, p, [(0, 0, 1), (1, 0, 1), (2, 0, 1)])
    assert wake.tolist() == [False, True]
    # cancel one (1536 -> 1024 -> still >= thr), cancel another (-> 512), queue one (-> 1024): crosses again
    S, wake, _ = r2.fault(S, p, [(0, 4, 0), (1, 4, 0), (3, 0, 1)])
    assert S.migrated.nr_migrate_pages[1] == 2 * HP
    assert wake.tolist() == [False, True]


def test_defer_never_wakes(r2):
    p = r2.p({PTM: 2 * HP, DEFER: 1})
    S = r2.place(r2.state(p), range(0, 6), 0)
    S, wake, _ = r2.fault(S, p, [(0, 0, 1), (1, 0, 1), (2, 0, 1)])
    assert S.migrated.nr_migrate_pages[1] == 3 * HP
    assert not wake.any()


def test_below_threshold_queue_waits_for_the_flush(r2):
    """A waiting daemon runs only when woken (crossing or knuma_scand's end-of-pass flush)."""
    p = r2.p({PTM: 8 * HP})
    S = r2.place(r2.state(p), [0], 0)
    S, wake, _ = r2.fault(S, p, [(0, 0, 1)])
    assert not wake.any()
    S2, moved = r2.migrated(S, p, [False, False])
    assert moved.sum() == 0 and S2.pages.migrate_nid[0] == 1 and S2.migrated.waiting[1]
    S2, moved = r2.migrated(S, p, [False, True])  # the flush
    assert moved.tolist() == [0, HP] and S2.pages.node[0] == 1
    assert S2.migrated.waiting[1]  # queue empty again: waits for the next wake-up


# ================================================================================================
# knuma_migrated: FIFO per (src, dst), round robin over sources, batch cap, watermark (spec §5.3-5.4)
# ================================================================================================
ORDER = [2, 0, 4, 1, 3, 6, 5]  # enqueue order; units 0-2 on node 0, 3-4 on node 1, 5-6 on node 2


def _rr_state(r4, p):
    S = r4.state(p)
    S = r4.place(S, [0, 1, 2], 0)
    S = r4.place(S, [3, 4], 1)
    S = r4.place(S, [5, 6], 2)
    S, wake, _ = r4.fault(S, p, [(u, 0, 3) for u in ORDER])
    assert S.migrated.nr_migrate_pages.tolist() == [0, 0, 0, 7 * HP]
    return S, wake


def _next_batch(rig, S, p, wake=None):
    """Run knuma_migrated at its next due tick."""
    if wake is None:
        S = set_tick(S, max(int(S.tick) + 1, int(S.migrated.wake_tick.max())))
        wake = np.zeros(rig.static.n_nodes, bool)
    S2, moved = rig.migrated(S, p, wake)
    newly = sorted(int(u) for u in np.nonzero((S2.pages.node != S.pages.node))[0])
    return S2, moved, newly


def test_fifo_per_source_round_robin_one_page_per_source(r4):
    p = r4.p({PTM: HP})  # every batch stops after its first round
    S, wake = _rr_state(r4, p)
    assert wake.tolist() == [False, False, False, True]
    assert ring_entries(r4, S, 3, 0) == [2, 0, 1]
    S, moved, newly = _next_batch(r4, S, p, wake)
    assert newly == [2, 4, 6] and moved[3] == 3 * HP  # oldest of each source
    assert not S.migrated.waiting[3]
    S, moved, newly = _next_batch(r4, S, p)
    assert newly == [0, 3, 5]
    S, moved, newly = _next_batch(r4, S, p)
    assert newly == [1]
    assert S.migrated.nr_migrate_pages.tolist() == [0, 0, 0, 0] and S.migrated.waiting[3]
    assert (S.pages.node[:7] == 3).all() and (S.pages.migrate_nid[:7] == -1).all()
    assert S.migrated.pages_migrated == 7 * HP


def test_batch_cap_pages_to_migrate(r4):
    # cap 1024 with three sources: the first round already takes 1536 pages, then the batch stops
    p = r4.p({PTM: 2 * HP})
    S, wake = _rr_state(r4, p)
    S, moved, newly = _next_batch(r4, S, p, wake)
    assert newly == [2, 4, 6]
    # one source: rounds of one page until the cap
    p = r4.p({PTM: 2 * HP})
    S = r4.place(r4.state(p), [0, 1, 2, 3, 4], 0)
    S, wake, _ = r4.fault(S, p, [(u, 0, 1) for u in [4, 3, 2, 1, 0]])
    assert wake[1]
    S, moved, newly = _next_batch(r4, S, p, wake)
    assert newly == [3, 4] and moved[1] == 2 * HP
    S, moved, newly = _next_batch(r4, S, p)
    assert newly == [1, 2]
    S, moved, newly = _next_batch(r4, S, p)
    assert newly == [0]


def test_cancelled_entries_are_skipped_fifo_kept(r2):
    p = r2.p({PTM: HP})
    S = r2.place(r2.state(p), [0, 1, 2], 0)
    S, wake, _ = r2.fault(S, p, [(0, 0, 1), (1, 0, 1), (2, 0, 1)])
    S, _, _ = r2.fault(S, p, [(1, 4, 0)])  # cancels unit 1
    S, moved, newly = _next_batch(r2, S, p, [False, True])
    assert newly == [0]
    S, moved, newly = _next_batch(r2, S, p)
    assert newly == [2]
    assert S.pages.node[1] == 0 and S.migrated.nr_migrate_pages.tolist() == [0, 0]


def test_full_destination_stalls_until_room(r4):
    p = r4.p({PTM: 8 * HP})
    S, _ = _rr_state(r4, p)
    high = int(p.machine.wmark_high[3])
    S.free_pages[3] = high  # not above the high watermark: no room
    S, moved, newly = _next_batch(r4, S, p, [False, False, False, True])
    assert newly == [] and moved.sum() == 0
    assert S.migrated.nr_migrate_pages[3] == 7 * HP and (S.pages.migrate_nid[:7] == 3).all()
    assert not S.migrated.waiting[3]  # sleeps and retries
    S, moved, newly = _next_batch(r4, S, p)  # still full at the retry
    assert newly == [] and S.migrated.nr_migrate_pages[3] == 7 * HP
    S.free_pages[3] = high + 1  # one free page above the watermark: no room for a whole unit
    S, moved, newly = _next_batch(r4, S, p)
    assert newly == [] and moved.sum() == 0
    # room for exactly one unit: every one of its pages passes free > high + isolated, the next fails
    S.free_pages[3] = high + HP
    S, moved, newly = _next_batch(r4, S, p)
    assert newly == [2] and moved[3] == HP
    S.free_pages[3] = high + 6 * HP  # room for the six others (rounds 1 to 3, n < pages_to_migrate)
    S, moved, newly = _next_batch(r4, S, p)
    assert sorted(newly) == [0, 1, 3, 4, 5, 6]
    assert S.migrated.nr_migrate_pages[3] == 0


@functools.partial(jax.jit, static_argnums=2)
def _compact(S, p, static):
    return migrate.compact_rings(S, p, static)


def test_queueing_never_refused_while_destination_is_full(r2):
    """Node 1 is full, so its daemon isolates nothing (spec §5.4: pages stay queued). Meanwhile
    the same few pages are cancelled and queued again, pass after pass. At most 8 pages are ever
    queued: every queueing must succeed."""
    p = r2.p()
    S = r2.place(r2.state(p), range(0, 8), 0)
    high = int(p.machine.wmark_high[1])
    U = list(range(1, 8))
    S, _, _ = r2.fault(S, p, [(0, 0, 1)] + [(u, 0, 1) for u in U])  # 8 pages queued to node 1
    overflows = 0
    for rep in range(r2.static.ring_capacity // len(U) + 2):
        S.free_pages[1] = high
        S, moved, _ = _next_batch(r2, S, p, [False, True] if S.migrated.waiting[1] else None)
        assert moved.sum() == 0 and S.pages.migrate_nid[0] == 1
        S = to_np(_compact(S, p, r2.static))  # the tick's ring maintenance after knuma_migrated
        S, _, st = r2.fault(S, p, [(u, 4, 0) for u in U])  # node 0 faults: cancelled
        S, _, _ = r2.fault(S, p, [(u, 0, 1) for u in U])  # node 1: fails once (last_nid was 0)
        S, _, st = r2.fault(S, p, [(u, 0, 1) for u in U])  # node 1 again: queued again
        overflows += st["overflows"]
        assert (S.pages.migrate_nid[U] == 1).all(), f"queueing refused in cycle {rep}"
    assert overflows == 0 and S.migrated.nr_migrate_pages[1] == 8 * HP


# ================================================================================================
# knuma_scand (spec §3)
# ================================================================================================
def _scan(rig, S, p, max_calls=50, until=None):
    """Call knuma_scand tick by tick (jumping over sleeps). Returns the list of (tick, state, flush)."""
    out = []
    for _ in range(max_calls):
        t = int(S.tick)
        S, flush = rig.scand(S, p)
        out.append((t, S, flush))
        if until is not None and until(S):
            break
        nt = t + 1 if S.scand.phase == SCAND_RUN else max(t + 1, int(S.scand.wake_tick))
        S = set_tick(S, nt)
    return out


def test_scand_chunks_of_pages_to_scan_then_sleeps(r2):
    p = r2.p({PTS: 2 * HP})  # progress starts at 1: two THP pmds make 1025 >= 1024
    S = r2.place(r2.state(p), range(0, 8), 0)
    S = r2.place(S, range(8, 16), 1)
    S, _ = r2.scand(S, p)
    armed = (S.pages.pmd_flags & PMD_NUMA) != 0
    assert armed.tolist() == [True, True] + [False] * 14
    assert S.scand.mm == 0 and S.scand.addr == 2
    assert S.scand.fault_tmp.tolist() == [2 * HP, 0]
    assert S.scand.phase == SCAND_SLEEP  # 1025 > 1024
    assert S.scand.wake_tick == int(p.derived.scan_sleep_ticks)
    assert S.mms.mm_numa_fault_pass.tolist() == [1, 0]
    # asleep: nothing happens before the wake tick
    S1 = set_tick(S, int(S.scand.wake_tick) - 1)
    S2, _ = r2.scand(S1, p)
    assert (S2.pages.pmd_flags == S.pages.pmd_flags).all() and S2.scand.addr == 2
    # at the wake tick the next chunk
    S3, _ = r2.scand(set_tick(S, int(S.scand.wake_tick)), p)
    assert ((S3.pages.pmd_flags & PMD_NUMA) != 0).tolist() == [True] * 4 + [False] * 12


def test_scand_sleeps_only_when_progress_exceeds_pages_to_scan(r2):
    """A call stops once its progress reaches pages_to_scan; the main loop sleeps only when the
    accumulated progress is strictly greater (spec §3.2-3.3)."""
    p = r2.p({PTS: 2 * HP + 1})  # 1 + 512 + 512 == pages_to_scan
    S = r2.place(r2.state(p), range(0, 8), 0)
    S, _ = r2.scand(S, p)
    assert S.scand.addr == 2 and S.scand.progress == 2 * HP + 1
    assert S.scand.phase == SCAND_RUN  # not > pages_to_scan: no sleep
    S, _ = r2.scand(set_tick(S, 1), p)  # next call, next tick: progress 2050 > 1025 -> sleep
    assert S.scand.addr == 4 and S.scand.phase == SCAND_SLEEP and S.scand.progress == 0


def test_scand_progress_accumulates_over_small_mms(r2):
    """Each call scans at most one mm; the 100 ms sleep comes only once progress > pages_to_scan
    (spec §3.2); mm_numa_fault_pass is incremented when an mm's scan starts (§3.3)."""
    p = r2.p({PTS: 20 * HP})
    S = r2.place(r2.state(p), range(0, 8), 0)
    S = r2.place(S, range(8, 12), 1)
    S, _ = r2.scand(S, p)
    assert S.scand.phase == SCAND_RUN and S.scand.progress == 1 + 8 * HP
    assert S.scand.mm == 1 and S.mms.mm_numa_fault_pass.tolist() == [1, 1]
    assert S.mms.mm_numa_fault[0].tolist() == [8 * HP, 0] and S.mms.mm_numa_fault_tot[0] == 8 * HP
    assert S.mms.mm_numa_fault_tot[1] == 0


def test_scand_pass_sleep_halves_flush_and_counters(r2):
    p = r2.p({PTS: 12 * HP})
    half = int(p.derived.pass_sleep_half_ticks)
    S = r2.place(r2.state(p), range(0, 8), 0)
    S = r2.place(S, range(8, 16), 1)
    S = set_tick(S, 10)
    S, flush = r2.scand(S, p)  # mm 0: 1 + 4096 (no sleep: not > 6144)
    assert not flush and S.scand.mm == 1 and S.scand.phase == SCAND_RUN
    assert S.mms.mm_numa_fault_pass.tolist() == [1, 1]
    S = set_tick(S, 11)
    S, flush = r2.scand(S, p)  # mm 1 ends the pass
    assert not flush
    assert S.scand.mm == -1 and S.scand.full_scans == 1
    assert S.scand.pages_scanned == 2 * (1 + 8 * HP)
    assert S.scand.pass_progress == 0
    assert S.scand.phase == SCAND_PASS_SLEEP1 and S.scand.wake_tick == 11 + half
    assert S.mms.mm_numa_fault[1].tolist() == [0, 8 * HP]
    # first half: nothing, not even a flush
    S2, flush = r2.scand(set_tick(S, 11 + half - 1), p)
    assert not flush and S2.scand.phase == SCAND_PASS_SLEEP1
    # the flush between the halves
    S, flush = r2.scand(set_tick(S, 11 + half), p)
    assert flush and S.scand.phase == SCAND_PASS_SLEEP2 and S.scand.wake_tick == 11 + 2 * half
    S2, flush = r2.scand(set_tick(S, 11 + 2 * half - 1), p)
    assert not flush and S2.scand.phase == SCAND_PASS_SLEEP2
    # end of the second half: progress 8194 > 6144 -> the chunk sleep comes first
    S, flush = r2.scand(set_tick(S, 11 + 2 * half), p)
    assert not flush and S.scand.phase == SCAND_SLEEP and S.scand.progress == 0
    assert S.scand.wake_tick == 11 + 2 * half + int(p.derived.scan_sleep_ticks)
    # then the second pass starts at the head of the list: mm 0 (now all armed and untouched) is
    # done in one call and mm 1's scan starts, each incrementing its pass counter
    S, _ = r2.scand(set_tick(S, int(S.scand.wake_tick)), p)
    assert S.mms.mm_numa_fault_pass.tolist() == [2, 2] and S.scand.mm == 1
    assert S.scand.full_scans == 1


@pytest.mark.parametrize("ws", [1, 0])
def test_scand_working_set_idle_mm_keeps_snapshot(r2, ws):
    """mm 0 with every THP still armed (untouched since the last scan): with mm_working_set the
    armed THPs are skipped (still 512 progress each), fault_tmp stays 0 and the previous snapshot
    survives; without it they are counted and the snapshot is replaced (spec §3.4-3.5)."""
    p = r2.p({PTS: 64 * HP, WS: ws})
    S = r2.place(r2.state(p), range(0, 8), 0, armed=True)
    S.mms.mm_numa_fault[0] = [7, 3]
    S.mms.mm_numa_fault_tot[0] = 10
    S, _ = r2.scand(S, p)
    assert S.scand.mm == 1 and S.scand.progress == 1 + 8 * HP
    if ws:
        assert S.mms.mm_numa_fault[0].tolist() == [7, 3] and S.mms.mm_numa_fault_tot[0] == 10
    else:
        assert S.mms.mm_numa_fault[0].tolist() == [8 * HP, 0] and S.mms.mm_numa_fault_tot[0] == 8 * HP
    assert (S.pages.pmd_flags[:8] & PMD_NUMA != 0).all()


@pytest.mark.parametrize("ws", [1, 0])
def test_scand_working_set_empty_mm(r2, ws):
    """An mm with nothing present: fault_tmp all zero -> kept with ws=1, replaced (zeros) with ws=0."""
    p = r2.p({PTS: 64 * HP, WS: ws})
    S = r2.state(p)
    S.mms.mm_numa_fault[0] = [7, 3]
    S.mms.mm_numa_fault_tot[0] = 10
    S, _ = r2.scand(S, p)
    assert S.scand.mm == 1
    if ws:
        assert S.mms.mm_numa_fault[0].tolist() == [7, 3] and S.mms.mm_numa_fault_tot[0] == 10
    else:
        assert S.mms.mm_numa_fault[0].tolist() == [0, 0] and S.mms.mm_numa_fault_tot[0] == 0


def test_scand_working_set_skips_armed_thp_only(r2):
    p = r2.p({PTS: 64 * HP, WS: 1})
    S = r2.place(r2.state(p), range(0, 4), 0, armed=True)
    S = r2.place(S, range(4, 8), 1, armed=False)
    S, _ = r2.scand(S, p)
    assert S.mms.mm_numa_fault[0].tolist() == [0, 4 * HP]
    assert S.scand.progress == 1 + 8 * HP  # skipped THPs still cost 512 each
    assert (S.pages.pmd_flags[:8] & PMD_NUMA != 0).all()


def test_scand_counts_queued_pages_at_destination(r2):
    p = r2.p({PTS: 64 * HP})
    S = r2.place(r2.state(p), range(0, 8), 0)
    S, _, _ = r2.fault(S, p, [(0, 0, 1), (5, 0, 1)])  # queued 0 -> 1 (still on node 0)
    assert S.pages.node[[0, 5]].tolist() == [0, 0]
    S, _ = r2.scand(S, p)
    assert S.mms.mm_numa_fault[0].tolist() == [6 * HP, 2 * HP]


def test_scand_skips_vma_with_explicit_policy(r2):
    """A VMA with its own mempolicy costs 1 progress and is neither counted nor armed (§3.3)."""
    p = r2.p({PTS: 64 * HP})
    p.workload.mm_vma_bind[0] = 1
    S = r2.place(r2.state(p), range(0, 8), 0)
    S, _ = r2.scand(S, p)
    assert S.scand.mm == 1 and S.scand.progress == 2
    assert (S.pages.pmd_flags[:8] & PMD_NUMA == 0).all()
    assert S.mms.mm_numa_fault_tot[0] == 0


def test_scand_untouched_vma_is_skipped_for_one_progress(r2):
    """Spec §3.3: a VMA without anon_vma (never had anonymous pages) is skipped and adds 1."""
    p = r2.p({PTS: 64 * HP})
    S = r2.place(r2.state(p), range(8, 16), 1)  # mm 1 touched, mm 0 never
    S, _ = r2.scand(S, p)
    assert S.scand.mm == 1 and S.scand.progress == 2


def test_scand_walk_does_not_depend_on_capacity():
    """mm 0 = 128 pmds with only the first and the last present. The spec's call walks the whole mm
    (progress 1 + 1024 < pages_to_scan, §3.3); the model walks at most ceil(pages_to_scan / 512) + 1
    pmds per tick, present or not, and goes on next tick [I] - a per-configuration limit, so the
    array capacity (the batch's largest pages_to_scan) never changes the result."""
    rig = Rig(TINY2, size_mib=256)
    s64 = rig.static
    assert s64.scan_pmds_per_tick == 64 and s64.n_pmds == 256
    s256 = dataclasses.replace(s64, scan_pmds_per_tick=256)
    scan256 = jax.jit(lambda st, p, on: autonuma.knuma_scand(st, p, s256, on))
    p = rig.p({PTS: 16384})
    assert int(p.derived.scan_walk_pmds) == 33
    S = rig.place(rig.state(p), [0, 127], 0)
    a, _ = rig.scand(S, p)
    b, _, _ = scan256(S, p, jnp.bool_(True))
    b = to_np(b)
    assert a.scand.mm == 0 and a.scand.addr == 33 and a.scand.call_progress == 1 + HP
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, a, b))
    # the call goes on over the next three ticks (33 + 33 + 33 + 29 pmds) and publishes the whole mm
    for _ in range(2):
        a = set_tick(a, int(a.tick) + 1)
        a, _ = rig.scand(a, p)
    assert a.scand.mm == 0 and a.scand.addr == 99 and a.mms.mm_numa_fault_tot[0] == 0
    a = set_tick(a, int(a.tick) + 1)
    a, _ = rig.scand(a, p)
    assert a.mms.mm_numa_fault[0].tolist() == [2 * HP, 0]


# ---- 4 KiB pte mode (pmd=0): armed ptes are free and, with the working set, not counted ----------
@pytest.fixture(scope="module")
def r2pte():
    return Rig(TINY2, page_unit="4K", knobs={"autonuma.knuma_scand.pmd": 0})


@pytest.mark.parametrize("ws", [1, 0])
def test_scand_pte_mode_progress_and_working_set(r2pte, ws):
    rig = r2pte
    assert rig.static.pte_faults and rig.static.unit_pages == 1
    p = rig.p({PTS: 8192, WS: ws})
    S = rig.state(p)
    units = np.arange(512)  # first pmd of mm 0
    S.pages.node[units] = 0
    S.free_pages[0] -= 512
    S.mms.node_pages[0, 0] += 512
    S.pages.pte_numa[units[:500]] = 1  # still armed from the previous pass
    S, _ = rig.scand(S, p)
    assert S.scand.mm == 1
    assert S.scand.progress == 1 + 12  # only the 12 newly armed ptes cost progress
    assert S.mms.mm_numa_fault[0].tolist() == ([12, 0] if ws else [512, 0])
    assert (S.pages.pte_numa[units] == 1).all()
    assert (S.pages.pmd_flags & PMD_NUMA == 0).all()  # pte mode never arms the pmd


# ================================================================================================
# sched_autonuma_balance (spec §6.2, §13)
# ================================================================================================
def _sched_state(rig, p, running, tick=100):
    """running: {task: cpu}. Only CPUs in `fire` have their balance timer due."""
    S = rig.state(p)
    S = set_tick(S, tick)
    S.sched.next_balance[:] = FAR
    for t, c in running.items():
        rig.run_task(S, t, c)
    return S


def _stats(S, task=None, mm=None, tf=None, mf=None):
    if tf is not None:
        S.tasks.task_numa_fault[task] = tf
        S.tasks.task_numa_fault_tot[task] = sum(tf)
    if mf is not None:
        S.mms.mm_numa_fault[mm] = mf
        S.mms.mm_numa_fault_tot[mm] = sum(mf)


def test_exchange_process_weights(r2):
    """Different processes: mm weights. w_nid = 700 > w_other = 400, > w_this = 300."""
    p = r2.p()
    S = _sched_state(r2, p, {0: 0, 4: 4})
    _stats(S, 0, 0, tf=[500, 500], mf=[300, 700])
    _stats(S, 4, 1, tf=[900, 100], mf=[600, 400])
    S.sched.next_balance[0] = 0
    tasks, sched, n, moved = r2.balance(S, p)
    assert n == 1 and tasks.cpu[0] == 4 and tasks.cpu[4] == 0
    assert moved[[0, 4]].tolist() == [True, True]
    assert tasks.task_selected_nid[0] == 1  # the partner's node
    assert tasks.task_selected_nid[4] == -1  # the partner's own balance did not run
    assert sched.next_balance[0] == 100 + int(p.derived.balance_ticks)


@pytest.mark.parametrize("case", ["w_nid==w_other", "w_nid==w_this"])
def test_exchange_needs_both_strict_inequalities(r2, case):
    p = r2.p()
    S = _sched_state(r2, p, {0: 0, 4: 4})
    if case == "w_nid==w_other":
        _stats(S, 0, 0, tf=[500, 500], mf=[300, 700])
        _stats(S, 4, 1, tf=[900, 100], mf=[300, 700])
    else:
        _stats(S, 0, 0, tf=[100, 900], mf=[500, 500])  # sel_task = 1: no fast path
        _stats(S, 4, 1, tf=[900, 100], mf=[900, 100])
    S.sched.next_balance[0] = 0
    tasks, sched, n, moved = r2.balance(S, p)
    assert n == 0 and tasks.cpu[0] == 0 and tasks.cpu[4] == 4 and not moved.any()
    assert tasks.task_selected_nid[0] == 0  # no partner: this node


def test_exchange_thread_weights_for_same_mm(r2):
    """Threads of one process compare task weights; process weights would refuse here."""
    p = r2.p()
    S = _sched_state(r2, p, {0: 0, 1: 4})
    _stats(S, 0, 0, tf=[200, 800], mf=[900, 100])
    _stats(S, 1, tf=[600, 400])
    S.sched.next_balance[0] = 0
    tasks, _, n, _ = r2.balance(S, p)
    assert n == 1 and tasks.cpu[0] == 4 and tasks.cpu[1] == 0 and tasks.task_selected_nid[0] == 1
    # and the converse: different processes with the same numbers use mm weights -> no exchange
    S = _sched_state(r2, p, {0: 0, 4: 4})
    _stats(S, 0, 0, tf=[200, 800], mf=[900, 100])
    _stats(S, 4, 1, tf=[600, 400], mf=[600, 400])
    S.sched.next_balance[0] = 0
    tasks, _, n, _ = r2.balance(S, p)
    assert n == 0 and tasks.task_selected_nid[0] == 0


@pytest.mark.parametrize("w3,want_cpu", [(250, 2), (251, 6)])
def test_exchange_best_score(r4, w3, want_cpu):
    """score = 2 w_nid - w_other - w_this, max over CPUs of other nodes, ties to the first found.
    Node 2 has the largest w_nid but not the largest score."""
    p = r4.p()
    S = _sched_state(r4, p, {0: 0, 1: 2, 2: 4, 3: 6})
    w0 = 1000 - 300 - 350 - w3
    _stats(S, 0, 0, tf=[w0, 300, 350, w3], mf=[1000, 0, 0, 0])
    _stats(S, 1, tf=[0, 100, 0, 900])  # on node 1: w_other = 100 -> score 200 + 300 - w0
    _stats(S, 2, tf=[0, 0, 340, 660])  # on node 2: w_other = 340 -> score 10 + 350 - w0
    _stats(S, 3, tf=[1000, 0, 0, 0])  # on node 3: w_other = 0 -> score 2 * w3 - w0
    S.sched.next_balance[0] = 0
    tasks, _, n, _ = r4.balance(S, p)
    assert n == 1 and tasks.cpu[0] == want_cpu
    assert tasks.task_selected_nid[0] == want_cpu // 2
    partner = {2: 1, 6: 3}[want_cpu]
    assert tasks.cpu[partner] == 0


def test_fast_path_sets_this_node(r2):
    p = r2.p()
    S = _sched_state(r2, p, {0: 0, 4: 4})
    _stats(S, 0, 0, tf=[600, 400], mf=[700, 300])
    _stats(S, 4, 1, tf=[900, 100], mf=[900, 100])
    S.tasks.task_selected_nid[0] = 1
    S.sched.next_balance[0] = 0
    tasks, _, n, _ = r2.balance(S, p)
    assert n == 0 and tasks.task_selected_nid[0] == 0


@pytest.mark.parametrize("which", ["mm_tot", "task_tot"])
def test_anchored_when_no_statistics(r2, which):
    """mm_tot == 0 or task_tot == 0: task_selected_nid := this node, no exchange (spec §6.2.2)."""
    p = r2.p()
    S = _sched_state(r2, p, {0: 0, 4: 4})
    _stats(S, 0, 0, tf=[0, 1000], mf=[0, 1000])
    _stats(S, 4, 1, tf=[1000, 0], mf=[1000, 0])
    if which == "mm_tot":
        _stats(S, mm=0, mf=[0, 0])
    else:
        _stats(S, 0, tf=[0, 0])
    S.tasks.task_selected_nid[0] = 1
    S.sched.next_balance[0] = 0
    tasks, _, n, _ = r2.balance(S, p)
    assert n == 0 and tasks.cpu[0] == 0 and tasks.task_selected_nid[0] == 0


def test_disabled_clears_selected_nid(r2):
    p = r2.p({ENABLED: 0})
    S = _sched_state(r2, p, {0: 0, 4: 4})
    _stats(S, 0, 0, tf=[0, 1000], mf=[0, 1000])
    _stats(S, 4, 1, tf=[1000, 0], mf=[1000, 0])
    S.tasks.task_selected_nid[0] = 1
    S.sched.next_balance[0] = 0
    tasks, _, n, _ = r2.balance(S, p, enabled=0)
    assert n == 0 and tasks.cpu[0] == 0 and tasks.task_selected_nid[0] == -1


def test_idle_cpus_are_never_chosen(r2):
    """Task 0 wants node 1, whose CPUs are all idle: no exchange (idle balancing is CFS's job);
    a busy candidate without statistics is skipped too."""
    p = r2.p()
    S = _sched_state(r2, p, {1: 0})
    _stats(S, 1, 0, tf=[0, 1000], mf=[0, 1000])
    _stats(S, 0, tf=[1000, 0])  # a thread of the same process with statistics, not running
    S.sched.next_balance[0] = 0
    tasks, _, n, moved = r2.balance(S, p)
    assert n == 0 and tasks.cpu[1] == 0 and tasks.cpu[0] == -1 and not moved.any()
    assert tasks.task_selected_nid[1] == 0
    S = _sched_state(r2, p, {0: 0, 4: 5})  # busy, but mm 1 has no completed scan
    _stats(S, 0, 0, tf=[0, 1000], mf=[0, 1000])
    _stats(S, 4, tf=[1000, 0])
    S.sched.next_balance[0] = 0
    tasks, _, n, _ = r2.balance(S, p)
    assert n == 0 and tasks.cpu[0] == 0


def test_balance_runs_only_when_timer_fires_on_busy_cpu(r2):
    p = r2.p()
    S = _sched_state(r2, p, {0: 0, 4: 4})
    _stats(S, 0, 0, tf=[500, 500], mf=[300, 700])
    _stats(S, 4, 1, tf=[900, 100], mf=[600, 400])
    S.sched.next_balance[:] = 101  # tick is 100: not yet
    tasks, _, n, _ = r2.balance(S, p)
    assert n == 0 and tasks.task_selected_nid[0] == -1 and tasks.cpu[0] == 0


# ================================================================================================
# allocation (spec §6.4, mm/mempolicy.c): task_selected_nid, MPOL_BIND, fallback by distance
# ================================================================================================
def _alloc_state(rig, p, cpu=0, selected=-1):
    S = rig.state(p)
    S = rig.run_task(S, 0, cpu)
    S.tasks.task_selected_nid[0] = selected
    return S


def _allocated(S0, S):
    new = np.nonzero((S0.pages.node < 0) & (S.pages.node >= 0))[0]
    assert len(new) >= 1
    return sorted(set(S.pages.node[new].tolist()))


@pytest.mark.parametrize("cpu,selected,policy,want", [
    (0, 1, "autonuma24", [1]),  # follows task_selected_nid while running on node 0
    (0, -1, "autonuma24", [0]),  # none selected: local node
    (4, 0, "autonuma24", [0]),
    (0, 1, "none", [0]),  # no AutoNUMA: first touch on the local node
])
def test_allocation_follows_selected_nid(r2, cpu, selected, policy, want):
    p = r2.p(policy=policy)
    S0 = _alloc_state(r2, p, cpu, selected)
    S, _ = r2.access(S0, p)
    assert _allocated(S0, S) == want


def test_allocation_mpol_bind_wins(r2):
    p = r2.p()
    p.workload.work_bind[0] = 1 << 0  # MPOL_BIND to node 0
    S0 = _alloc_state(r2, p, cpu=4, selected=1)
    S, _ = r2.access(S0, p)
    assert _allocated(S0, S) == [0]


def test_allocation_falls_back_when_selected_node_full(r2):
    p = r2.p()
    S0 = _alloc_state(r2, p, cpu=4, selected=1)
    S0.free_pages[1] = int(p.machine.wmark_low[1]) + 100  # a 2 MiB unit would go below the low wmark
    S, _ = r2.access(S0, p)
    assert _allocated(S0, S) == [0]
    assert S.tot.oom_pages == 0


@pytest.fixture(scope="module")
def alloc4():
    m = TINY4
    zl = m.zonelist()
    _, low, _ = m.watermarks_pages()
    fn = jax.jit(lambda req, order, allowed, w, free: mempolicy.allocate(req, order, allowed, w, free,
                                                                            jnp.asarray(low), m.n_nodes))
    return zl, low, fn


@pytest.mark.parametrize("full,want", [((), 3), ((3,), 1), ((3, 1), 2), ((3, 1, 2), 0)])
def test_allocation_fallback_by_distance(alloc4, full, want):
    """From node 3 (SLIT row 22 16 16 10) the zonelist is 3, 1, 2, 0."""
    zl, low, fn = alloc4
    assert zl[3].tolist() == [3, 1, 2, 0]
    free = np.full(4, 100_000, np.int32)
    for n in full:
        free[n] = low[n] + 511  # a unit of 512 pages would dip under the low watermark
    order = zl[3][None, :].astype(np.int32)
    got, free2, oom = fn(np.array([True]), order, np.ones((1, 4), bool), np.array([HP], np.int32), free)
    assert int(got[0]) == want and not bool(oom[0])
    assert int(free[want] - free2[want]) == HP


def test_allocation_min_watermark_retry_and_overcommit(alloc4):
    zl, low, fn = alloc4
    order = zl[3][None, :].astype(np.int32)
    free = (low + 511).astype(np.int32)  # every node under low after a unit, node 1 has room above 0
    free[3] = 100
    got, _, oom = fn(np.array([True]), order, np.ones((1, 4), bool), np.array([HP], np.int32), free)
    assert int(got[0]) == 1 and not bool(oom[0])  # second round ignores the watermark, by distance
    free = np.full(4, 100, np.int32)  # no room anywhere: over-commit the first choice, counted
    got, _, oom = fn(np.array([True]), order, np.ones((1, 4), bool), np.array([HP], np.int32), free)
    assert int(got[0]) == 3 and bool(oom[0])


# ================================================================================================
# CFS active load balancing between nodes (sched/fair.py: Linux 3.6 need_active_balance)
# ================================================================================================
AB = "sched.active_balance_millisecs"


def _active(rig, S, p, on=True):
    from autonuma_jax.sched import fair
    f = jax.jit(lambda tasks, params, tick: fair.active_balance(tasks, params, rig.static, jnp.bool_(on), tick))
    need = jax.jit(lambda tasks, params, tick: fair.active_balance_needed(tasks, params, rig.static, tick))
    tasks, moved = f(S.tasks, p, S.tick)
    return to_np(tasks), bool(moved), bool(need(S.tasks, p, S.tick))


def test_active_balance_pushes_a_running_task_onto_an_idle_node(r2):
    p = r2.p({AB: 200})
    S = _sched_state(r2, p, {0: 4, 1: 5, 2: 6}, tick=400)  # node 1 runs 3, node 0 idle
    tasks, moved, need = _active(r2, S, p)
    assert need and moved
    assert tasks.cpu[0] == 0  # the busiest CPU's task (CPU 4: the first with the most), onto an idle core
    assert tasks.cpu[1] == 5 and tasks.cpu[2] == 6


def test_active_balance_only_at_its_interval(r2):
    p = r2.p({AB: 200})
    S = _sched_state(r2, p, {0: 4, 1: 5, 2: 6}, tick=401)
    tasks, moved, need = _active(r2, S, p)
    assert not need and not moved and tasks.cpu[0] == 4  # the identity when not needed
    p0 = r2.p({AB: 0})  # 0 = never, not even at tick 0
    tasks, moved, need = _active(r2, set_tick(S, 0), p0)
    assert not need and not moved


def test_active_balance_needs_two_more_tasks(r2):
    p = r2.p({AB: 200})
    S = _sched_state(r2, p, {0: 4, 1: 0}, tick=400)  # 1 and 1: balanced
    assert not _active(r2, S, p)[1]
    S = _sched_state(r2, p, {0: 4}, tick=400)  # 1 and 0: one more only
    assert not _active(r2, S, p)[1]


def test_active_balance_respects_cpus_allowed(r2):
    p = r2.p({AB: 200}, policy="hard_bind")  # process 1 (tasks 4-7) may only run on node 1
    S = _sched_state(r2, p, {4: 4, 5: 5, 6: 6}, tick=400)
    tasks, moved, _ = _active(r2, S, p)
    assert not moved and list(tasks.cpu[4:7]) == [4, 5, 6]


def test_active_balance_prefers_an_affine_task(r2):
    """Two tasks share CPU 4: under AutoNUMA the stopper moves the one whose selected node is the
    idle node (the NUMA pass of move_one_task), not the lower id."""
    p = r2.p({AB: 200})
    S = _sched_state(r2, p, {0: 4, 1: 4, 2: 5}, tick=400)
    S.tasks.task_selected_nid[0] = 1
    S.tasks.task_selected_nid[1] = 0
    tasks, moved, _ = _active(r2, S, p, on=True)
    assert moved and tasks.cpu[1] == 0 and tasks.cpu[0] == 4
    tasks, moved, _ = _active(r2, S, p, on=False)  # without AutoNUMA: the lowest id
    assert moved and tasks.cpu[0] == 0


def test_init_state_scand_sleeps_until_a_seeded_wake(r2):
    S = to_np(r2._init(r2.params))
    assert S.scand.phase == SCAND_SLEEP and S.scand.mm == -1
    pass_ticks = 2 * int(r2.params.derived.pass_sleep_half_ticks)
    assert 0 <= int(S.scand.wake_tick) < pass_ticks
    wakes = {int(to_np(r2._init(P.build_params(dataclasses.replace(r2.cfg(), seed=s), r2.static))).scand.wake_tick)
             for s in range(8)}
    assert len(wakes) > 4  # the phase differs from seed to seed
