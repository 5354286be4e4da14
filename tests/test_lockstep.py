"""Lockstep: the JAX engine and the NumPy reference model must hold IDENTICAL state after every tick.

The reference (``autonuma_jax.reference``) is a slow, obvious per-configuration implementation of
the same model, written to be read against the spec. Each case steps both from boot (or from an
engine state, ``ReferenceModel.from_state``) and compares every field of every array after every
tick; the queue rings are compared as the FIFO lists they represent.

Engine drivers: ``tick.step_batch`` on a batch of one (what ``simulate.py`` runs: phases that no
configuration needs in a tick are skipped) and the plain ``tick.step``.

Every case names the mechanisms it must exercise (``ReferenceModel.events``: scans, faults,
queueing, cancellations, migrations, watermark stalls, exchanges, khugepaged collapses, task
starts and finishes, process exits, ...) and fails if one of them did not fire, so no case can
pass vacuously.

Known engine discrepancies are *quirks* of the reference (``numpy_model.QUIRKS``): the reference
follows the spec (or the engine's own contract) and, with a quirk switched on, reproduces the
engine instead. A lockstep case switches on the quirks it provokes (``Case.quirks``, and
``ENGINE_QUIRKS`` per driver) so that everything else is still checked; a strict xfail per quirk
runs without it and shows the discrepancy. When the engine is fixed, that xfail passes and so fails
as XPASS: then delete the quirk, its xfail and the places that switch it on.

A case runs until every mechanism it expects has fired (at most ``Case.ticks`` ticks), so the
windows need no retuning when the engine's dynamics shift a little.

Runtime is dominated by one XLA compile per (static shapes, driver): five of them.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autonuma_jax import Knobs, RunConfig, SimConfig, with_overrides
from autonuma_jax.config import build_static, validate_run
from autonuma_jax.params import build_params
from autonuma_jax.reference.numpy_model import (QUIRKS, ReferenceModel, allocate_in_rounds, diff_states,
                                                engine_state_dict)
from autonuma_jax.state import init_state
from autonuma_jax.tick import step, step_batch
from autonuma_jax.workloads import Process, Thread, Workload, combine, make_workload

from conftest import FAST, MiB, TINY2, TINY4, mini

# Quirks the reference must emulate to match each engine driver (see numpy_model.QUIRKS).
ENGINE_QUIRKS = {
    "batch": (),
    "step": (),
}

# Daemons and the balancer ten times faster than the defaults, so that a few hundred ticks see
# several knuma_scand passes, migrations, exchanges and collapses.
QUICK = {
    "autonuma.knuma_scand.scan_sleep_millisecs": 10,
    "autonuma.knuma_scand.scan_sleep_pass_millisecs": 40,
    "autonuma.knuma_migrated.migrate_sleep_millisecs": 10,
    "autonuma.balance_interval_millisecs": 10,
    "transparent_hugepage.khugepaged.scan_sleep_millisecs": 10,
}

# TINY2 with slow threads: 4 KiB units stay a few hundred per thread and tick.
SLOW2 = dataclasses.replace(TINY2, name="tiny2_slow", lat_local_ns=130.0, lat_remote_ns=250.0, core_mlp=1.0,
                            socket_mlp=2.0, node_bw_gbs=2.0, link_bw_gbs=1.5,
                            description="TINY2 with 0.5 GB/s threads (4 KiB unit tests)")
# TINY2 with 160 MiB nodes: one 128 MiB process nearly fills a node.
SMALL2 = dataclasses.replace(TINY2, name="tiny2_small", mem_per_node_mib=160,
                             description="TINY2 with 160 MiB per node (watermark tests)")

BASE = (
    "task_starts", "first_touch", "full_scans", "flushes", "publish", "hinting_faults", "first_fault_pass",
    "task_decays", "queued", "pages_migrated",
)


def stall_config(seed: int = 0) -> RunConfig:
    """A 'filler' process first-touches 128 MiB on node 1 (its threads may only run there); a 'mover'
    process zeroes its 128 MiB bound to node 0, then works from node 1 with the default policy: its
    pages are queued for node 1, which fills up to the high watermark - knuma_migrated stalls."""
    size = 128 * MiB
    threads = [Thread(mm=0, init_offset=0, init_len=size, init_passes=1, work_offset=i * size // 4,
                      work_len=size // 4, work_passes=400, cpus_allowed=0b10) for i in range(4)]
    threads += [Thread(mm=1, init_offset=0, init_len=size, init_passes=1, init_bind_mask=0b01,
                       work_offset=i * size // 4, work_len=size // 4, work_passes=100, cpus_allowed=0b10)
                for i in range(4)]
    wl = Workload(name="stall", processes=(Process(size, name="filler"), Process(size, name="mover")),
                  threads=tuple(threads))
    return RunConfig(machine=SMALL2, workload=wl, policy="autonuma24", seed=seed,
                     knobs=with_overrides(Knobs(), {**FAST, **QUICK}),
                     sim=SimConfig(duration_s=4.0, report_interval_ms=250.0))


# ------------------------------------------------------------------------------------------------
# the lockstep driver
# ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _engine(static, driver: str):
    """(init, one tick) for one configuration, compiled once per (static, driver)."""
    if driver == "batch":
        add = functools.partial(jax.tree_util.tree_map, lambda x: x[None])
        drop = functools.partial(jax.tree_util.tree_map, lambda x: x[0])

        def one(s, p):
            return drop(step_batch(add(s), add(p), static))
    else:
        one = functools.partial(step, static=static)
    return jax.jit(functools.partial(init_state, static)), jax.jit(one)


def _build(cfg: RunConfig):
    validate_run(cfg)
    static = build_static([cfg])
    return static, build_params(cfg, static)


def lockstep(cfg: RunConfig, ticks: int, driver: str = "batch", quirks=None, engine_ticks: int = 0,
             until: Callable[[ReferenceModel], bool] | None = None) -> ReferenceModel:
    """Step engine and reference together for up to ``ticks`` ticks (after ``engine_ticks`` ticks of
    the engine alone, from which the reference starts), or until ``until(reference)`` holds; assert
    identical state after every tick."""
    static, params = _build(cfg)
    init, one = _engine(static, driver)
    quirks = ENGINE_QUIRKS[driver] if quirks is None else quirks
    state = init(params)
    for _ in range(engine_ticks):
        state = one(state, params)
    if engine_ticks:
        ref = ReferenceModel.from_state(static, params, state, quirks)
    else:
        ref = ReferenceModel(static, params, quirks)
    d = diff_states(ref.as_state_dict(), engine_state_dict(state, static, params))
    assert not d, "at start:\n" + "\n".join(d)
    for i in range(ticks):
        state = one(state, params)
        ref.step()
        d = diff_states(ref.as_state_dict(), engine_state_dict(state, static, params))
        assert not d, (f"{cfg.label()}: reference (a) != engine (b) after tick {engine_ticks + i + 1}:\n"
                       + "\n".join(x[:800] for x in d))
        if until is not None and until(ref):
            break
    return ref


@dataclasses.dataclass(frozen=True)
class Case:
    make: Callable[[], RunConfig]
    ticks: int  # most ticks to run; the case stops once every expected mechanism has fired
    expect: tuple  # ReferenceModel.events that must have fired
    driver: str = "batch"
    engine_ticks: int = 0
    quirks: tuple = ()  # known discrepancies this case provokes, beyond its driver's


def _fired(expect):
    return lambda ref: all(ref.events[e] > 0 for e in expect)


def _run_case(case: Case):
    ref = lockstep(case.make(), case.ticks, case.driver, quirks=ENGINE_QUIRKS[case.driver] + case.quirks,
                   engine_ticks=case.engine_ticks, until=_fired(case.expect))
    missing = [e for e in case.expect if ref.events[e] <= 0]
    assert not missing, f"mechanisms that did not fire: {missing} (events: {dict(ref.events)})"
    return ref


# ------------------------------------------------------------------------------------------------
# 2 nodes, 2 MiB units: numa01 / numa01_THREAD_ALLOC / custom, 8 threads, 2 processes (one shape)
# ------------------------------------------------------------------------------------------------
CASES_2NODE = {
    # the main case: forced same-node start, THP; runs until both processes exit
    "numa01_autonuma": Case(lambda: mini(TINY2, "numa01", knobs=QUICK, loops=8), 900,
                            BASE + ("thp_splits", "collapses", "filter_fail", "exchanges", "threshold_wakes",
                                    "task_finishes", "mm_exits")),
    "numa01_thp_off": Case(lambda: mini(TINY2, "numa01", knobs={**QUICK, "transparent_hugepage.enabled": 0},
                                        loops=8), 400, BASE + ("filter_fail", "exchanges")),
    # allow_first_fault=0: a page needs two faults from one node; mm_working_set=0
    "numa01_no_first_fault_no_ws": Case(
        lambda: mini(TINY2, "numa01", seed=2, knobs={**QUICK, "autonuma.knuma_migrated.allow_first_fault": 0,
                                                   "autonuma.knuma_scand.mm_working_set": 0}),
        900, tuple(e for e in BASE if e != "first_fault_pass") + ("filter_fail", "exchanges")),
    # defer=1: only the end-of-pass flush wakes knuma_migrated; queued pages get cancelled meanwhile
    "numa01_defer": Case(lambda: mini(TINY2, "numa01", seed=1, loops=8, knobs={
        **QUICK, "autonuma.knuma_migrated.defer": 1, "autonuma.knuma_migrated.pages_to_migrate": 1024,
        "autonuma.knuma_migrated.migrate_sleep_millisecs": 50}), 500, BASE + ("cancels", "exchanges")),
    # a node full up to the high watermark stalls knuma_migrated
    "watermark_stall": Case(stall_config, 500, BASE + ("watermark_stalls", "ws_skips", "thp_splits", "collapses")),
    "thread_alloc_enabled0_noise": Case(
        lambda: mini(TINY2, "numa01_THREAD_ALLOC", loops=4, knobs={
            **QUICK, "autonuma.enabled": 0, "sched.noise_migrations_per_sec": 200.0}),
        300, ("task_starts", "first_touch", "noise_moves", "task_finishes", "mm_exits")),
    # as threads finish, active balancing pushes running threads onto the emptied node
    "numa01_none_noise": Case(lambda: mini(TINY2, "numa01", policy="none", loops=4, knobs={
        **QUICK, "sched.noise_migrations_per_sec": 200.0, "sched.active_balance_millisecs": 5}), 600,
        ("task_starts", "first_touch", "noise_moves", "active_balance", "task_finishes", "mm_exits")),
    "numa01_hard_bind": Case(lambda: mini(TINY2, "numa01", policy="hard_bind", loops=4, knobs=QUICK), 400,
                             ("task_starts", "first_touch", "task_finishes", "mm_exits")),
    "thread_alloc_strict": Case(
        lambda: mini(TINY2, "numa01_THREAD_ALLOC", loops=6, knobs={
            **QUICK, "autonuma.scheduler.load_balance_strict": 1}), 400,
        BASE + ("thp_splits", "collapses", "task_finishes", "mm_exits")),
}


@pytest.mark.parametrize("name", list(CASES_2NODE))
def test_lockstep_2node(name):
    _run_case(CASES_2NODE[name])


def test_lockstep_collapse_of_queued_unit():
    """khugepaged collapses a split unit that is queued for migration: the freed small pages leave
    the queue (spec §2.1). A rare coincidence: find its tick with the reference alone, run the
    engine alone to shortly before it, and continue in lockstep from the engine's state."""
    def make(seed):
        return mini(TINY2, "numa01", seed=seed, knobs={
            **QUICK, "autonuma.knuma_migrated.migrate_sleep_millisecs": 1000,
            "autonuma.knuma_migrated.pages_to_migrate": 512, "transparent_hugepage.khugepaged.scan_sleep_millisecs": 20})
    for seed in range(8):
        static, params = _build(make(seed))
        ref = ReferenceModel(static, params, ENGINE_QUIRKS["batch"])
        while ref.tick < 1500 and not ref.events["collapse_dequeues"]:
            ref.step()
        if ref.events["collapse_dequeues"]:
            break
    else:
        pytest.fail("no collapse of a queued unit in 8 seeds x 1500 ticks")
    start = max(ref.tick - 25, 0)
    ref = lockstep(make(seed), 40, "batch", engine_ticks=start, until=_fired(("collapse_dequeues",)))
    assert ref.events["collapse_dequeues"] > 0


# ------------------------------------------------------------------------------------------------
# 2 nodes, numa02 (9 threads, 1 process), plain step
# ------------------------------------------------------------------------------------------------
CASES_NUMA02 = {
    # threads inherit the main thread's statistics and selected node (scheduler/reset=0), so they
    # crowd one node: load balancing pulls them (idle pulls only: load_balance_strict=1)
    "numa02_inherit_strict_noise": Case(
        lambda: mini(TINY2, "numa02", loops=200, knobs={
            **QUICK, "autonuma.scheduler.reset": 0, "autonuma.scheduler.load_balance_strict": 1,
            "sched.noise_migrations_per_sec": 100.0}),
        1000, BASE + ("lb_moves", "ws_skips", "task_finishes", "mm_exits"), driver="step"),
    "numa02_hard_bind": Case(lambda: mini(TINY2, "numa02", policy="hard_bind", loops=100, knobs=QUICK), 200,
                             ("task_starts", "first_touch", "task_finishes"), driver="step"),
}


@pytest.mark.parametrize("name", list(CASES_NUMA02))
def test_lockstep_numa02(name):
    _run_case(CASES_NUMA02[name])


# ------------------------------------------------------------------------------------------------
# 4 nodes (SLIT 10/16/22), 2 MiB units, plain step
# ------------------------------------------------------------------------------------------------
CASES_4NODE = {
    "numa01": Case(lambda: mini(TINY4, "numa01", seed=3, loops=6, knobs=QUICK), 500,
                   BASE + ("thp_splits", "collapses", "filter_fail", "exchanges", "threshold_wakes"), driver="step"),
    "numa01_THREAD_ALLOC": Case(lambda: mini(TINY4, "numa01_THREAD_ALLOC", loops=6, knobs=QUICK), 500,
                                BASE + ("thp_splits", "task_finishes", "mm_exits"), driver="step"),
}


@pytest.mark.parametrize("name", list(CASES_4NODE))
def test_lockstep_4node(name):
    _run_case(CASES_4NODE[name])


# ------------------------------------------------------------------------------------------------
# 4 KiB units: pmd mode (a fault walks 512 ptes) and pte mode (knuma_scand/pmd=0)
# ------------------------------------------------------------------------------------------------
CASES_4K = {
    # seed 6: knuma_scand wakes at tick 0, before the processes touch memory (untouched VMAs are skipped)
    "pmd_numa01": Case(lambda: mini(SLOW2, "numa01", seed=6, page_unit="4K", size_mib=4, loops=10, knobs=QUICK), 500,
                       BASE + ("filter_fail", "exchanges", "vma_skips", "publish_kept", "task_finishes", "mm_exits"),
                       driver="step"),
    "pte_numa02": Case(lambda: mini(SLOW2, "numa02", page_unit="4K", size_mib=8, loops=100, knobs={
        **QUICK, "autonuma.knuma_scand.pmd": 0}), 800, BASE + ("ws_skips", "task_finishes", "mm_exits")),
    "pte_numa02_no_ws": Case(lambda: mini(SLOW2, "numa02", page_unit="4K", size_mib=8, loops=100, knobs={
        **QUICK, "autonuma.knuma_scand.pmd": 0, "autonuma.knuma_scand.mm_working_set": 0}), 300, BASE),
}


@pytest.mark.parametrize("name", list(CASES_4K))
def test_lockstep_4k(name):
    _run_case(CASES_4K[name])


# ------------------------------------------------------------------------------------------------
# the workload mechanisms: two-region cycles (private/shared, hot sets, GC sweeps), numactl-bound
# processes beside free ones, process slots that respawn (a kernel build's short processes)
# ------------------------------------------------------------------------------------------------
def _wl_config(machine, wl, seed=0, knobs=None, page_unit="2M", policy="autonuma24"):
    return RunConfig(machine=machine, workload=wl, policy=policy, seed=seed,
                     knobs=with_overrides(Knobs(), {**FAST, **QUICK, **(knobs or {})}),
                     sim=SimConfig(duration_s=4.0, report_interval_ms=250.0, page_unit=page_unit))


def kbuild_mix_config(page_unit="2M"):
    """Kernel-build slots (short processes respawning) beside a process with a two-region cycle; a
    small scan chunk makes knuma_scand stop part-way through the slots' mms."""
    if page_unit == "2M":
        kb = make_workload("kbuild", TINY2, jobs=3, processes=30, mib=6, passes=20)
        other = make_workload("parametric", TINY2, processes=1, threads=2, mib=8, passes=60, shared=0.5)
        machine, knobs = TINY2, {"autonuma.knuma_scand.pages_to_scan": 1024}
    else:
        kb = make_workload("kbuild", SLOW2, jobs=3, processes=24, mib=4, passes=6)
        other = make_workload("parametric", SLOW2, processes=1, threads=2, mib=8, passes=30, hot=0.8, hot_size=0.25)
        machine, knobs = SLOW2, {"autonuma.knuma_scand.pages_to_scan": 384, "autonuma.knuma_scand.pmd": 0}
    return _wl_config(machine, combine("kbuild_mix", kb, other), knobs=knobs, page_unit=page_unit)


RESPAWN = ("task_starts", "first_touch", "respawns", "respawn_waits", "respawn_scand_drop", "exits_with_stats",
           "publish", "hinting_faults", "full_scans", "region_switches", "task_finishes", "mm_exits")

CASES_WORKLOADS = {
    # same shapes as numa01 on TINY2 (no recompile): threads alternate private slice / shared region
    "parametric_shared": Case(lambda: _wl_config(TINY2, make_workload(
        "parametric", TINY2, processes=2, threads=4, mib=128, passes=60, shared=0.4), seed=1), 1500,
        BASE + ("region_switches", "exchanges", "thp_splits", "task_finishes", "mm_exits")),
    # same shapes as numa01 on TINY4: a SPECjbb JVM free beside one numactl-bound (GC sweeps)
    "specjbb_free_bound": Case(lambda: _wl_config(TINY4, make_workload(
        "numactl_bound", TINY4, base="specjbb", free=1, bound=1, threads=4, heap_mib=128, gc_every=2,
        gc_cycles=4), seed=2), 900, BASE + ("region_switches", "task_finishes", "mm_exits"), driver="step"),
    "kbuild_mix": Case(kbuild_mix_config, 1500, RESPAWN + ("thp_splits",)),
    # perf bench numa: -0 first touch on node 0 under MPOL_BIND, then each thread's buffer and the
    # process buffer in a two-region loop, threads created after the process buffer exists
    "perf_bench_numa": Case(lambda: _wl_config(TINY4, make_workload(
        "perf_bench_numa", TINY4, case="custom", nr_proc=2, nr_threads=3, mb_proc=48, mb_thread=8, nr_loops=30,
        init_cpu0=True), seed=3), 1200, BASE + ("region_switches", "task_finishes", "mm_exits")),
    "kbuild_mix_4k_pte": Case(lambda: kbuild_mix_config("4K"), 1500,
                              tuple(e for e in RESPAWN if e != "respawn_waits"), driver="step"),
}


@pytest.mark.parametrize("name", list(CASES_WORKLOADS))
def test_lockstep_workloads(name):
    _run_case(CASES_WORKLOADS[name])


# ------------------------------------------------------------------------------------------------
# known discrepancies (strict xfail: an XPASS means the engine was fixed - drop the quirk)
# ------------------------------------------------------------------------------------------------
def test_migration_keeps_destination_above_high_watermark():
    # node 1 has 512 free pages (high watermark 429): no whole unit may move into it
    lockstep(stall_config(), 200, driver="batch")


def test_quirks_are_known():
    used = set()
    for driver, quirks in ENGINE_QUIRKS.items():
        used |= set(quirks)
    for cases in (CASES_2NODE, CASES_NUMA02, CASES_4NODE, CASES_4K, CASES_WORKLOADS):
        for case in cases.values():
            used |= set(case.quirks)
    assert used <= set(QUIRKS)
    assert set(QUIRKS) <= used, "a quirk nothing needs any more: delete it"


# ------------------------------------------------------------------------------------------------
# the allocator's rounds, where a node fills up in the middle of a tick
# ------------------------------------------------------------------------------------------------
def test_allocate_rounds_match_reference():
    """mm/mempolicy.allocate (vectorised) against the reference's loops, on crowded random requests
    with mixed zonelists, bindings and nearly full nodes."""
    from autonuma_jax.mm import mempolicy
    rng = np.random.default_rng(0)
    n, e = 4, 24
    zonelist = np.array(TINY4.zonelist())
    low = np.array([40, 30, 50, 20], np.int32)
    alloc = jax.jit(lambda req, order, allowed, w, free: mempolicy.allocate(
        req, order, allowed, w, free, jnp.asarray(low), n))
    differs = 0
    for trial in range(40):
        w = int(rng.choice([1, 8]))
        base = rng.integers(0, n, e)
        order = zonelist[base]
        mask = np.where(rng.random(e) < 0.3, rng.integers(1, 1 << n, e), 0)
        allowed = (mask[:, None] == 0) | ((mask[:, None] >> order) & 1 == 1)
        req = rng.random(e) < 0.8
        free = (low + rng.integers(-10, 60, n)).astype(np.int32)
        got, free_e, oom = alloc(jnp.asarray(req), jnp.asarray(order, jnp.int32), jnp.asarray(allowed),
                                 jnp.full(e, w, jnp.int32), jnp.asarray(free))
        idx = np.nonzero(req)[0]
        prefs = [([int(x) for x in order[i]], [bool(x) for x in allowed[i]]) for i in idx]
        free_r = [int(x) for x in free]
        got_r, oom_r = allocate_in_rounds(prefs, free_r, [int(x) for x in low], w)
        assert [int(x) for x in np.asarray(got)[idx]] == got_r, trial
        assert [bool(x) for x in np.asarray(oom)[idx]] == oom_r, trial
        assert [int(x) for x in np.asarray(free_e)] == free_r, trial
        differs += int(any(g != o[0] for g, (o, a) in zip(got_r, prefs)))
    assert differs > 10  # the trials do make nodes fill up (requests fall back)


def test_lockstep_past_the_configurations_end():
    """After the last process exited both engines are frozen: a tick changes nothing."""
    cfg = mini(TINY2, "numa01", policy="hard_bind", loops=2, size_mib=32, knobs=QUICK)
    static, params = _build(cfg)
    ref = lockstep(cfg, 800, "batch", until=lambda r: r.finished())
    assert ref.finished()
    end = ref.tick
    ref2 = lockstep(cfg, end + 30, "step")  # 30 ticks beyond the end, compared after every one
    assert ref2.tick == end and ref2.finished()
