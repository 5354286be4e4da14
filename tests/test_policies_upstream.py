"""Rules of the upstream policies (spec §12) against the engine's functions on crafted states:
balancenuma never migrates on a page's first fault and respects its rate limit; numa_balancing
migrates on the first fault, adapts its scan period to locality, forms numa groups for threads
sharing pages and moves tasks to their preferred node."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autonuma_jax.policies import upstream
from autonuma_jax.state import T_WORK

from test_rules import HP, TINY2, Rig, to_np

E = 64


@pytest.fixture(scope="module")
def rig():
    return Rig(TINY2)


@pytest.fixture(scope="module")
def fns(rig):
    s = rig.static
    fault = jax.jit(lambda st, p, xu, xt, xv, tn, tc: upstream.numa_fault(st, p, s, xu, xt, xv, tn, tc))
    scan = jax.jit(lambda st, p: upstream.task_numa_work(st, p, s))
    place = jax.jit(lambda st, p: upstream.task_numa_placement(st, p, s))
    migr = jax.jit(lambda st, p: upstream.task_numa_migrate(st, p, s))
    return dict(fault=fault, scan=scan, place=place, migrate=migr)


def faults(fns, S, p, events):
    """events: [(unit, task, this_nid, this_cpu)] in time order."""
    xu, xt, tn, tc = (np.zeros(E, np.int32) for _ in range(4))
    xv = np.zeros(E, bool)
    for i, (u, t, n, c) in enumerate(events):
        xu[i], xt[i], tn[i], tc[i], xv[i] = u, t, n, c, True
    S2, st = fns["fault"](S, p, xu, xt, xv, tn, tc)
    return to_np(S2), {k: np.asarray(v) for k, v in st.items()}


def running(S, tasks_cpus):
    for t, c in tasks_cpus:
        S.tasks.phase[t] = T_WORK
        S.tasks.cpu[t] = c
    return S


CPU_N1 = 4  # TINY2: CPUs 0-3 on node 0, 4-7 on node 1


def test_balancenuma_never_migrates_on_a_first_fault(rig, fns):
    p = rig.p(policy="balancenuma")
    S = running(rig.place(rig.state(p), [0, 1], 0), [(0, CPU_N1)])
    S, st = faults(fns, S, p, [(0, 0, 1, CPU_N1)])
    assert S.pages.node[0] == 0 and S.pages.last_nid[0] == 1 and st["pages_migrated"] == 0
    S, st = faults(fns, S, p, [(0, 0, 1, CPU_N1)])  # second fault from the same node: migrate now
    assert S.pages.node[0] == 1 and st["pages_migrated"] == HP
    assert S.free_pages[1] == rig.state(p).free_pages[1] - HP
    assert st["migrate_ns"][0] == HP * p.knobs.costs.migrate_per_page_ns  # paid by the faulting task
    # a fault from another node first: the filter fails, the page stays
    S, _ = faults(fns, S, p, [(1, 0, 1, CPU_N1), (1, 0, 0, 0)])
    assert S.pages.node[1] == 0


def test_balancenuma_rate_limit_per_window(rig, fns):
    p = rig.p({"balancenuma.ratelimit_pages": 3 * HP, "balancenuma.migrate_interval_millisecs": 100},
              policy="balancenuma")
    units = list(range(8))
    S = running(rig.place(rig.state(p), units, 0), [(0, CPU_N1)])
    S, _ = faults(fns, S, p, [(u, 0, 1, CPU_N1) for u in units])  # primes last_nid
    S = dataclasses.replace(S, tick=np.int32(5))
    S, st = faults(fns, S, p, [(u, 0, 1, CPU_N1) for u in units])
    assert st["pages_migrated"] == 3 * HP and (S.pages.node[:3] == 1).all() and (S.pages.node[3:8] == 0).all()
    S, st = faults(fns, S, p, [(u, 0, 1, CPU_N1) for u in units[3:]])  # same window: nothing more
    assert st["pages_migrated"] == 0
    S = dataclasses.replace(S, tick=np.int32(int(S.numab.rl_end[1])))  # the next window
    S, st = faults(fns, S, p, [(u, 0, 1, CPU_N1) for u in units[3:]])
    assert st["pages_migrated"] == 3 * HP


def test_balancenuma_slows_scanning_when_faults_do_not_migrate(rig, fns):
    p = rig.p(policy="balancenuma")
    S = running(rig.place(rig.state(p), [0, 1, 2], 0), [(0, 0)])
    S.numab.scan_period[0] = 100
    S, _ = faults(fns, S, p, [(0, 0, 0, 0), (1, 0, 0, 0), (2, 0, 0, 0)])  # local: nothing to migrate
    assert S.numab.scan_period[0] == 130  # +10 ms per fault that did not migrate


def test_numa_balancing_migrates_on_the_first_fault_and_counts_private_shared(rig, fns):
    p = rig.p(policy="numa_balancing")
    S = running(rig.place(rig.state(p), [0, 1], 0), [(0, CPU_N1), (1, CPU_N1 + 1)])
    S, st = faults(fns, S, p, [(0, 0, 1, CPU_N1)])  # last_cpupid unset: first fault migrates
    assert S.pages.node[0] == 1 and st["pages_migrated"] == HP
    assert S.numab.faults_buf[0, 1, 0] == HP  # shared (no previous accessor), counted where it ended
    S, _ = faults(fns, S, p, [(0, 0, 1, CPU_N1)])  # same task again: private
    assert S.numab.faults_buf[0, 1, 1] == HP
    S, _ = faults(fns, S, p, [(0, 1, 1, CPU_N1 + 1)])  # another task: shared
    assert S.numab.faults_buf[1, 1, 0] == HP


def test_numa_balancing_groups_form_for_threads_sharing_pages(rig, fns):
    p = rig.p(policy="numa_balancing")
    S = running(rig.place(rig.state(p), [0], 0), [(0, 0), (1, 1)])
    assert S.numab.group[0] == 0 and S.numab.group[1] == 1
    S, _ = faults(fns, S, p, [(0, 0, 0, 0)])
    S, _ = faults(fns, S, p, [(0, 1, 0, 1)])  # task 0 runs on the recorded CPU 0: join its group
    assert S.numab.group[1] == 0 and S.numab.group[0] == 0


def test_numa_balancing_scan_period_adapts_to_locality(rig, fns):
    p = rig.p(policy="numa_balancing")
    base = running(rig.place(rig.state(p), [0, 1], 0), [(0, 0)])
    base.numab.scan_period[0] = 4000
    base.numab.scan_seq[0] = 0
    base.numab.mm_scan_seq[0] = 1  # a new scan sequence: task_numa_placement runs
    poor = dataclasses.replace(base, numab=dataclasses.replace(base.numab, locality=np.array(
        [[900, 100]] + [[0, 0]] * (rig.static.n_tasks - 1), np.int32)))
    poor.numab.faults_buf[0, 0, 1] = 1000  # private faults
    good = dataclasses.replace(base, numab=dataclasses.replace(base.numab, locality=np.array(
        [[50, 950]] + [[0, 0]] * (rig.static.n_tasks - 1), np.int32)))
    good.numab.faults_buf[0, 0, 1] = 1000
    sp = to_np(fns["place"](poor, p)).numab.scan_period[0]
    sg = to_np(fns["place"](good, p)).numab.scan_period[0]
    assert sp < 4000 < sg  # poor locality scans faster, good locality slower


def test_numa_balancing_prefers_the_node_of_its_faults_and_moves_there(rig, fns):
    p = rig.p(policy="numa_balancing")
    S = running(rig.state(p), [(0, 0), (1, 1), (2, CPU_N1)])
    S.numab.scan_seq[:] = 0
    S.numab.mm_scan_seq[:] = 1
    S.numab.faults_buf[0, 1, 1] = 4000  # task 0 faults mostly on node 1
    S.numab.faults_buf[0, 0, 1] = 100
    S = dataclasses.replace(S, tick=np.int32(10))
    S = to_np(fns["place"](S, p))
    assert S.numab.preferred[0] == 1 and S.numab.migrate_retry[0] == 10
    S2, n, moved = fns["migrate"](S, p)
    S2 = to_np(S2)
    # node 1 runs one task, node 0 two: moving task 0 to an idle CPU of node 1 keeps the balance
    assert int(n) == 1 and moved[0] and S2.tasks.cpu[0] >= CPU_N1


def test_upstream_scanning_arms_scan_size_from_the_offset_and_wraps(rig, fns):
    p = rig.p({"numa_balancing.numa_balancing_scan_size_mb": 4}, policy="numa_balancing")  # 2 units
    S = running(rig.place(rig.state(p), [0, 1, 2, 3], 0), [(0, 0)])
    S.tasks.exec_us[0] = 2_000_000  # past the scan delay
    S, cost = fns["scan"](S, p)
    S = to_np(S)
    assert (S.pages.pmd_flags[:2] & 1).all() and not (S.pages.pmd_flags[2:4] & 1).any()
    assert S.numab.scan_offset[0] == 2 and np.asarray(cost)[0] > 0
    assert S.numab.scan_period[0] > 0  # slow start over


# ---- sched_numa (variant B) ------------------------------------------------------------------------
def test_sched_numa_home_node_follows_faults_after_settling(rig, fns):
    import jax as _jax
    s = rig.static
    place = _jax.jit(lambda st, p: upstream.schednuma_placement(st, p, s))
    p = rig.p(policy="sched_numa")
    S = running(rig.state(p), [(0, 0)])
    S.numab.scan_period[0] = 400
    S.numab.faults_buf[0, 1, 0] = 1000  # faults on node 1
    S.numab.mm_scan_seq[0] = 1
    S = to_np(place(S, p))
    # home_seq starts at -1: 1 - (-1) = 2 <= settle_count (2): NUMA_SETTLE keeps the old home (none)
    assert S.numab.preferred[0] == -1 and S.numab.scan_period[0] == 100  # changed: back to the minimum
    assert S.numab.faults[0, 1, 0] == 500  # halved once per sequence
    S.numab.faults_buf[0, 1, 0] = 1000
    S.numab.mm_scan_seq[0] = 2
    S = to_np(place(S, p))
    # 2 - (-1) = 3 > settle_count: the home node moves to the node with most faults
    assert S.numab.preferred[0] == 1 and S.tasks.task_selected_nid[0] == 1 and S.numab.home_seq[0] == 2
    S.numab.faults_buf[0, 0, 0] = 5000  # now node 0 leads: a new home must wait settle_count sequences
    S.numab.mm_scan_seq[0] = 3
    S = to_np(place(S, p))
    assert S.numab.preferred[0] == 1  # 3 - 2 = 1 <= 2: settling
    S.numab.faults_buf[0, 1, 0] = 100000  # node 1 again
    S.numab.mm_scan_seq[0] = 4
    per = S.numab.scan_period[0]
    S = to_np(place(S, p))
    assert S.numab.scan_period[0] == min(2 * per, 1600)  # unchanged home: back off


def test_sched_numa_migrates_only_for_tasks_with_a_home(rig, fns):
    p = rig.p(policy="sched_numa")
    S = running(rig.place(rig.state(p), [0], 0), [(0, CPU_N1)])
    S, _ = faults(fns, S, p, [(0, 0, 1, CPU_N1)])
    S, st = faults(fns, S, p, [(0, 0, 1, CPU_N1)])  # last_nid matches but no home node yet
    assert S.pages.node[0] == 0 and st["pages_migrated"] == 0
    S.numab.preferred[0] = 1
    S, st = faults(fns, S, p, [(0, 0, 1, CPU_N1)])
    assert S.pages.node[0] == 1 and st["pages_migrated"] == HP  # no rate limit in sched_numa


def test_sched_numa_pull_bias_swaps_tasks_towards_their_home(rig):
    import jax as _jax
    from autonuma_jax.policies import schednuma
    s = rig.static
    pull = _jax.jit(lambda st, p, fire: schednuma.pull_bias(st, p, s, fire))
    p = rig.p(policy="sched_numa")
    S = running(rig.state(p), [(0, 0), (1, CPU_N1)])
    S.numab.preferred[0] = 1  # task 0 runs on node 0, its home is node 1
    S.numab.preferred[1] = -1  # task 1 (node 1) has no home
    fire = np.zeros(s.n_cpus, bool)
    fire[CPU_N1] = True  # CPU 4 (node 1) balances: its task is non-NUMA, task 0 wants node 1
    tasks, n, moved = pull(S, p, fire)
    tasks = to_np(tasks)
    assert int(n) == 1 and tasks.cpu[0] == CPU_N1 and tasks.cpu[1] == 0 and moved[0] and moved[1]


def test_every_policy_alone_equals_inside_a_mixed_batch():
    """The phases of other policies compiled into a batch leave a configuration untouched."""
    from autonuma_jax.config import POLICIES
    from autonuma_jax.simulate import Bucket
    from conftest import mini
    pols = sorted(POLICIES)
    cfgs = [mini(policy=pn, seed=3, duration_s=1.5, knobs={"balancenuma.numa_balancing_scan_delay_ms": 100,
                                                           "numa_balancing.numa_balancing_scan_delay_ms": 100,
                                                           "sched_numa.sched_numa_scan_delay_ms": 100})
            for pn in pols]
    batch = Bucket.build(cfgs).run(reports_per_chunk=3, stop_when_done=False)
    for cfg, rb in zip(cfgs, batch):
        ra = Bucket.build([cfg]).run(reports_per_chunk=3, stop_when_done=False)[0]
        for k in ra.rows:
            assert np.array_equal(ra.rows[k], rb.rows[k]), (cfg.policy, k)
        for k in ra.final:
            assert np.array_equal(ra.final[k], rb.final[k]), (cfg.policy, k)
    by = {r.config.policy: r.summary() for r in batch}
    assert by["numa_balancing"]["hinting_faults"] > 0 and by["balancenuma"]["hinting_faults"] > 0
    assert by["sched_numa"]["hinting_faults"] > 0


# ---- numa_core (variant C) -----------------------------------------------------------------------
def test_numa_core_classification_with_hysteresis(rig):
    import jax as _jax
    from autonuma_jax.policies import numacore
    s = rig.static
    place = _jax.jit(lambda st, p: numacore.placement(st, p, s)[0])
    p = rig.p({"numa_core.sched_numa_rss_threshold_mb": 0}, policy="numa_core")
    S = running(rig.place(rig.state(p), [0], 0), [(0, 0)])

    def step(S, shared, private):
        S.numab.faults[:] = 0
        S.numab.faults_buf[:] = 0
        S.numab.faults[0, 0, 0] = shared
        S.numab.faults[0, 0, 1] = private
        S.numab.migrate_retry[0] = 0  # due now
        return to_np(place(S, p))

    S = step(S, 1000, 1000)
    assert S.numab.shared[0] == 1  # from non-NUMA: shared iff S >= P
    S = step(S, 1000, 600)  # shared stays shared unless 2S <= P
    assert S.numab.shared[0] == 1
    S = step(S, 500, 1000)
    assert S.numab.shared[0] == 0  # 2S <= P: private
    S = step(S, 1500, 1000)
    assert S.numab.shared[0] == 0  # private -> shared needs S >= 2P
    S = step(S, 2000, 1000)
    assert S.numab.shared[0] == 1
    # converged on node 0 (all faults there): the convergence node steers CFS
    assert S.numab.strength[0] == 1024 and S.tasks.task_selected_nid[0] == 0


def test_numa_core_interleave_target_spreads_shared_pages_over_buddy_nodes(rig):
    from autonuma_jax.policies import numacore
    import jax.numpy as _jnp
    p = rig.p({"numa_core.buddy_quorum": 1}, policy="numa_core")
    S = running(rig.state(p), [(0, 0), (1, CPU_N1)])
    S.numab.shared[:2] = 1  # two shared threads of process 0, one per node
    units = np.arange(6, dtype=np.int32)
    tgt = np.asarray(numacore.interleave_target(S, p, rig.static, _jnp.zeros(6, _jnp.int32), _jnp.asarray(units)))
    assert tgt.tolist() == [0, 1, 0, 1, 0, 1]
    S.tasks.cpu[1] = 1  # both on node 0: the mask is node 0 only
    tgt = np.asarray(numacore.interleave_target(S, p, rig.static, _jnp.zeros(6, _jnp.int32), _jnp.asarray(units)))
    assert tgt.tolist() == [0] * 6
