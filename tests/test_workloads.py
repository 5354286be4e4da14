"""The workloads beyond the autonuma-benchmark: stream, specjbb, kbuild, numactl-bound mixes and the
parametric workload (workloads/*.py), and the engine mechanisms they need: two-region cycles
(physics.locate) and process slots that respawn (lifecycle.exit_mms).

- shapes and work volumes: thread counts from the machine, bytes per thread, passes;
- the region cycle's closed form against a plain walk;
- kbuild: respawns, the resets at each exec, most processes exit before knuma_scand published
  their statistics;
- every new workload runs under every policy of ``config.POLICIES`` on small machines with the
  invariants checked in compiled code (three shape buckets: the small instances are sized so that
  several workloads share one compiled program).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autonuma_jax import Knobs, RunConfig, SimConfig, with_overrides
from autonuma_jax.config import POLICIES, build_static, validate_run
from autonuma_jax.errors import ConfigError
from autonuma_jax.machine import get_machine
from autonuma_jax.params import build_params
from autonuma_jax.physics import Cycle, locate
from autonuma_jax.simulate import Bucket
from autonuma_jax.state import T_NEW, init_state
from autonuma_jax.tick import step
from autonuma_jax.workloads import BENCHMARKS, WORKLOADS, make_workload
from autonuma_jax.workloads.kbuild import slot_passes

from conftest import FAST, TINY2, TINY4, MiB

NEW = ("stream", "specjbb", "kbuild", "parametric", "numactl_bound", "specjbb_2free_2bound")
M2, M4 = get_machine("2node_24cpu"), get_machine("4node_48cpu")


def thread_bytes(t) -> int:
    """Bytes one thread writes over its life (its init, then its work-phase cycle)."""
    a, b = t.cycle_work, t.cycle_alt
    if b == 0:
        work = t.work_passes * t.work_len
    else:
        full, rest = divmod(t.work_passes, a + b)
        work = full * (a * t.work_len + b * t.alt_len) + min(rest, a) * t.work_len + max(0, rest - a) * t.alt_len
    return t.init_passes * t.init_len + work


# ------------------------------------------------------------------------------------------------
# shapes and volumes (no simulation)
# ------------------------------------------------------------------------------------------------
def test_registry_names_and_runconfig():
    assert set(NEW) <= set(BENCHMARKS) == set(WORKLOADS)
    for name in BENCHMARKS:
        for policy in POLICIES:
            cfg = RunConfig(machine="4node_48cpu", workload=name, policy=policy)
            validate_run(cfg)
    with pytest.raises(ConfigError, match="unknown parameter 'instance'"):
        make_workload("stream", M2, instance=3)
    with pytest.raises(ConfigError, match="workload.passes"):
        make_workload("kbuild", M2, passes=0)


@pytest.mark.parametrize("machine", [M2, M4], ids=["2node_24cpu", "4node_48cpu"])
def test_stream_shape_and_volume(machine):
    wl = make_workload("stream", machine)
    assert wl.n_mms == machine.n_cpus and wl.n_tasks == machine.n_cpus  # one instance per CPU
    for i, t in enumerate(wl.threads):
        assert t.mm == i and wl.processes[i].mem_bytes == 230 * MiB
        assert (t.init_offset, t.init_len, t.init_passes) == (0, 230 * MiB, 1)  # first touch by itself
        assert (t.work_offset, t.work_len, t.work_passes) == (0, 230 * MiB, 100)
    omp = make_workload("stream", machine, instances=4, threads=6, mib=240, passes=10)
    assert omp.n_mms == 4 and omp.n_tasks == 24
    for t in omp.threads:
        assert t.init_offset == t.work_offset and t.init_len == t.work_len == 40 * MiB
        assert thread_bytes(t) == 11 * 40 * MiB
    hb = make_workload("stream", machine, "hard_bind", instances=8)
    for i, t in enumerate(hb.threads):
        assert t.cpus_allowed == t.work_bind_mask == t.init_bind_mask == 1 << (i % machine.n_nodes)
    ib = make_workload("stream", machine, "inverse_bind", instances=8)
    n = machine.n_nodes
    for i, t in enumerate(ib.threads):
        assert t.cpus_allowed == 1 << (i % n) and t.work_bind_mask == 1 << ((i % n + n // 2) % n)


@pytest.mark.parametrize("machine", [M2, M4], ids=["2node_24cpu", "4node_48cpu"])
def test_specjbb_shape_and_volume(machine):
    wl = make_workload("specjbb", machine)
    n, T = machine.n_nodes, machine.n_cpus // machine.n_nodes
    assert wl.n_mms == n and wl.n_tasks == n * T  # one JVM per node, CPUs / JVMs threads each
    heap = 3072 * MiB
    for j, t in enumerate(wl.threads):
        assert wl.processes[t.mm].mem_bytes == heap
        assert (t.alt_offset, t.alt_len) == (0, heap)  # the GC sweep: the whole heap
        assert (t.cycle_work, t.cycle_alt) == (T, 1) and t.work_passes == 10 * (T + 1)
        assert t.work_offset == (j % T) * (heap // T)
        slice_ = heap // T if j % T < T - 1 else heap - (T - 1) * (heap // T)
        assert t.work_len == slice_
        assert thread_bytes(t) == 10 * (T * slice_ + heap)
    # half of each thread's bytes go to heap-wide sweeps by default
    t = wl.threads[0]
    assert abs(t.cycle_work * t.work_len / (t.cycle_work * t.work_len + t.alt_len) - 0.5) < 0.01
    eight = make_workload("specjbb", machine, instances=2 * n)
    assert eight.n_mms == 2 * n and eight.n_tasks == 2 * n * (machine.n_cpus // (2 * n))


@pytest.mark.parametrize("machine", [M2, M4], ids=["2node_24cpu", "4node_48cpu"])
def test_kbuild_shape_and_volume(machine):
    wl = make_workload("kbuild", machine)
    J = machine.n_cpus
    assert wl.n_mms == J and wl.n_tasks == J  # make -jN with N = CPUs, one thread per process
    assert sum(p.respawns + 1 for p in wl.processes) == 2000
    counts = [p.respawns + 1 for p in wl.processes]
    assert max(counts) - min(counts) <= 1
    passes = [t.work_passes for t in wl.threads]
    assert all(18 <= p <= 30 for p in passes) and len(set(passes)) > 1  # 24 +- 25 %, slots not in step
    assert passes == slot_passes(24, J, 0.25)
    for t, p in zip(wl.threads, wl.processes):
        assert p.mem_bytes == 16 * MiB and (t.work_offset, t.work_len) == (0, 16 * MiB) and t.init_passes == 0
    with pytest.raises(ConfigError, match="processes"):
        make_workload("kbuild", machine, processes=J - 1)


def test_parametric_mix_hot_and_volume():
    base = make_workload("parametric", M2)  # 2 processes x 12 threads x 512 MiB, private slices only
    assert base.n_mms == 2 and base.n_tasks == 24
    vol = 100 * (512 * MiB // 12)
    for t in base.threads:
        assert t.cycle_alt == 0 and t.work_passes == 100 and abs(thread_bytes(t) - vol) / vol < 0.01
    mix = make_workload("parametric", M2, shared=0.25, shared_size=0.5)
    for t in mix.threads:
        assert (t.alt_offset, t.alt_len) == (0, 256 * MiB)  # the shared region
        assert t.work_offset >= 256 * MiB  # private slices after it
        assert t.cycle_alt / (t.cycle_work + t.cycle_alt) == 0.25  # fraction of passes shared
        assert abs(thread_bytes(t) - vol) / vol < 0.02  # the same work whatever the mix
    shared = make_workload("parametric", M2, shared=1.0)
    assert all((t.work_offset, t.work_len) == (0, 512 * MiB) for t in shared.threads)
    hot = make_workload("parametric", M2, hot=0.8, hot_size=0.1)
    for t in hot.threads:
        hot_b, cold_b = t.cycle_work * t.work_len, t.cycle_alt * t.alt_len
        assert abs(hot_b / (hot_b + cold_b) - 0.8) < 0.02  # fraction of bytes to the hot part
        assert t.alt_offset == t.work_offset + t.work_len  # the cold rest of the slice
        assert abs(thread_bytes(t) - vol) / vol < 0.02
    main = make_workload("parametric", M2, init="main")
    assert main.threads[0].init_len == 512 * MiB and main.threads[1].start_after == 0
    assert main.threads[13].start_after == 12
    with pytest.raises(ConfigError, match="hot set needs"):
        make_workload("parametric", M2, shared=0.5, hot=0.5)


def test_numactl_bound_mixes():
    wl = make_workload("specjbb_2free_2bound", M4)  # the cover letter's run: 4 JVMs on 4 nodes
    assert wl.n_mms == 4
    for t in wl.threads:
        if t.mm < 2:
            assert t.cpus_allowed == t.work_bind_mask == 0  # free
        else:
            node = t.mm  # the bound ones fill the last nodes: JVM 2 -> node 2, JVM 3 -> node 3
            assert t.cpus_allowed == t.work_bind_mask == 1 << node
    st = make_workload("numactl_bound", M4, base="stream", free=3, bound=1, nodes=[0], mib=64)
    assert st.n_mms == 4 and all(t.work_bind_mask == (1 if t.mm == 3 else 0) for t in st.threads)
    fixed = make_workload("numactl_bound", M2, base="numa01", bound=1)
    assert all((t.cpus_allowed == 2) == (t.mm == 1) for t in fixed.threads)
    with pytest.raises(ConfigError, match="fixed number"):
        make_workload("numactl_bound", M2, base="numa01", free=1, bound=1)


def test_locate_matches_a_plain_walk():
    """physics.locate (closed form over the cycle) against walking unit by unit."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        la, lb = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        a, b = int(rng.integers(1, 5)), int(rng.integers(0, 4))
        sa, sb = 100, 300
        passes = int(rng.integers(0, 30))
        reg = lambda p: (sa, la) if b == 0 or p % (a + b) < a else (sb, lb)  # noqa: E731
        pos = int(rng.integers(0, reg(passes)[1]))
        cy = Cycle(start_a=jnp.int32(sa), len_a=jnp.int32(la), start_b=jnp.int32(sb), len_b=jnp.int32(lb),
                   a=jnp.int32(a), b=jnp.int32(b), target=jnp.int32(10**6))
        n = jnp.arange(40, dtype=jnp.int32)
        p_e, o_e, u_e = (np.asarray(x) for x in locate(cy, jnp.int32(passes), jnp.int32(pos), n))
        p, o = passes, pos
        for k in range(40):
            assert (p_e[k], o_e[k], u_e[k]) == (p, o, reg(p)[0] + o), (la, lb, a, b, passes, pos, k)
            o += 1
            if o == reg(p)[1]:
                p, o = p + 1, 0


# ------------------------------------------------------------------------------------------------
# kbuild: respawns and the resets at each exec
# ------------------------------------------------------------------------------------------------
KB_KNOBS = {**FAST, "autonuma.knuma_scand.scan_sleep_millisecs": 20}


def kbuild_cfg(policy="autonuma24", machine=TINY2, duration_s=3.0, **kw):
    v = POLICIES[policy][1] or "default"
    wl = make_workload("kbuild", machine, v, **{"processes": 64, "mib": 8, "passes": 16, **kw})
    return RunConfig(machine=machine, workload=wl, policy=policy, knobs=with_overrides(Knobs(), KB_KNOBS),
                     sim=SimConfig(duration_s=duration_s, report_interval_ms=250.0, check_invariants=True))


def test_kbuild_respawn_resets_task_and_mm():
    """Step the engine until a slot's process that had task and mm statistics has finished, then
    apply the exit phase (lifecycle.exit_mms): the old process is gone (memory freed, page units
    reset) and the slot's thread is a new task with zeroed statistics in a new, zeroed mm."""
    from autonuma_jax.lifecycle import exit_mms
    from autonuma_jax.state import T_DONE
    cfg = dataclasses.replace(kbuild_cfg(jobs=4, processes=40, mib=8, passes=12), knobs=with_overrides(
        Knobs(), {**KB_KNOBS, "autonuma.knuma_scand.scan_sleep_pass_millisecs": 100}))
    validate_run(cfg)
    static = build_static([cfg])
    params = jax.tree_util.tree_map(jnp.asarray, build_params(cfg, static))
    wp = params.workload
    one = jax.jit(lambda s: step(s, params, static))
    exit_phase = jax.jit(lambda s: exit_mms(s, params, static))
    s = jax.jit(lambda p: init_state(static, p))(params)
    upp = static.units_per_pmd
    task_mm = np.asarray(wp.task_mm)
    for _ in range(2000):
        s = one(s)
        phase, tot = np.asarray(s.tasks.phase), np.asarray(s.tasks.task_numa_fault_tot)
        mtot, gen = np.asarray(s.mms.mm_numa_fault_tot), np.asarray(s.mms.generation)
        ready = [m for m in range(static.n_mms)
                 if np.all(phase[task_mm == m] == T_DONE) and gen[m] < int(wp.mm_respawns[m])]
        if ready and tot[task_mm == ready[0]].sum() > 0 and mtot[ready[0]] > 0:
            break
    else:
        pytest.fail("no process with statistics finished in 2000 ticks")
    m = ready[0]
    t = int(np.nonzero(task_mm == m)[0][0])
    e = exit_phase(s)
    assert int(e.mms.generation[m]) == gen[m] + 1 and int(np.sum(e.mms.generation)) == int(np.sum(gen)) + 1
    a, b = int(wp.mm_start[m]), int(wp.mm_start[m] + wp.mm_len[m])
    assert np.all(np.asarray(s.pages.node[a:b]) >= 0)  # it had its memory ...
    for f in ("node", "last_nid", "migrate_nid"):
        assert np.all(np.asarray(getattr(e.pages, f)[a:b]) == -1), f  # ... now freed and reset
    assert np.all(np.asarray(e.pages.pmd_flags[a // upp:(b + upp - 1) // upp]) == 0)
    freed = int(np.sum(np.asarray(s.mms.node_pages[m])))
    assert np.array_equal(np.asarray(e.free_pages) - np.asarray(s.free_pages), np.asarray(s.mms.node_pages[m]))
    assert freed == (b - a) * static.unit_pages
    assert bool(e.mms.alive[m]) and not bool(e.mms.exited[m])  # the slot's new mm
    assert np.all(np.asarray(e.mms.node_pages[m]) == 0) and np.all(np.asarray(e.mms.mm_numa_fault[m]) == 0)
    assert int(e.mms.mm_numa_fault_tot[m]) == 0 and int(e.mms.mm_numa_fault_pass[m]) == 0
    assert int(e.mms.exits_with_stats[m]) == int(s.mms.exits_with_stats[m]) + 1
    assert int(e.tasks.phase[t]) == T_NEW and int(e.tasks.cpu[t]) == -1 and int(e.tasks.finish_tick[t]) == -1
    assert int(e.tasks.task_numa_fault_tot[t]) == 0 and int(e.tasks.task_numa_fault_pass[t]) == 0
    assert np.all(np.asarray(e.tasks.task_numa_fault[t]) == 0) and int(e.tasks.task_selected_nid[t]) == -1
    others = task_mm != m  # nothing else changes
    assert np.array_equal(np.asarray(e.tasks.phase)[others], phase[others])
    e2 = one(s)  # the whole tick: the new task starts (one per tick) in the slot's fresh mm
    assert int(e2.mms.generation[m]) == gen[m] + 1


# ------------------------------------------------------------------------------------------------
# every new workload under every policy, invariants checked in compiled code
# ------------------------------------------------------------------------------------------------
def _variant(policy):
    return POLICIES[policy][1] or "default"


# Group A: 2 processes x 4 threads x 32 MiB on TINY2 (one compiled program for all of them)
GROUP_A = {
    "stream": dict(instances=2, threads=4, mib=32, passes=30),
    "specjbb": dict(instances=2, threads=4, heap_mib=32, gc_every=4, gc_cycles=4),
    "parametric": dict(processes=2, threads=4, mib=32, passes=30, shared=0.5),
    "numactl_bound": dict(base="parametric", free=1, bound=1, threads=4, mib=32, passes=30, hot=0.7),
}
# Group B: 4 processes x 2 threads x 16 MiB on TINY4
GROUP_B = {
    "specjbb_2free_2bound": dict(threads=2, heap_mib=16, gc_every=2, gc_cycles=6),
    "stream": dict(instances=4, threads=2, mib=16, passes=40),
}


def _group_configs(machine, group):
    k = with_overrides(Knobs(), FAST)
    out = []
    for name, params in group.items():
        for p in POLICIES:
            wl = make_workload(name, machine, _variant(p), **params)
            out.append(RunConfig(machine=machine, workload=wl, policy=p, knobs=k, seed=3,
                                 sim=SimConfig(duration_s=1.5, report_interval_ms=250.0, check_invariants=True)))
    return out


def _check_group(res, machine):
    for r in res:
        assert r.rows["invariants_ok"].all()
        s = r.summary()
        assert s["finished"], s["label"]
        if r.config.policy in ("none", "hard_bind", "inverse_bind"):
            assert s["pages_migrated"] == 0
        if r.config.policy == "hard_bind":
            assert s["local_fraction_final"] > 0.99  # every process or thread bound to one node
    ran = {(r.config.workload.name, r.config.policy) for r in res}
    assert len(ran) == len(res)


@pytest.mark.parametrize("machine,group", [(TINY2, GROUP_A), (TINY4, GROUP_B)], ids=["tiny2", "tiny4"])
def test_every_policy_runs_with_invariants(machine, group):
    cfgs = _group_configs(machine, group)
    res = Bucket.build(cfgs).run(reports_per_chunk=6)  # raises InvariantViolation on any breach
    _check_group(res, machine)


def test_kbuild_every_policy_and_stats_at_exit():
    """kbuild under every policy; under AutoNUMA most processes exit before knuma_scand ever
    published their statistics (mm_numa_fault_tot == 0 at exit)."""
    cfgs = [kbuild_cfg(p) for p in POLICIES]
    b = Bucket.build(cfgs)
    res = b.run(reports_per_chunk=6)
    _check_group(res, TINY2)
    gen = np.asarray(b.state.mms.generation)
    resp = np.asarray(b.params.workload.mm_respawns)
    exited = np.asarray(b.state.mms.exited)
    assert np.all(gen == resp) and exited.all()  # every slot ran all its processes, then exited
    assert np.all(gen.sum(axis=1) + gen.shape[1] == 64)
    with_stats = np.asarray(b.state.mms.exits_with_stats).sum(axis=1)
    by = {c.policy: i for i, c in enumerate(cfgs)}
    assert with_stats[by["none"]] == 0
    a = by["autonuma24"]
    assert res[a].summary()["full_scans"] >= 1 and res[a].summary()["hinting_faults"] > 0
    assert 0 < with_stats[a] < 64 // 2, with_stats[a]  # some were scanned, most never were
