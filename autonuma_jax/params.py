"""Traced parameters of one configuration: machine numbers, workload layout, knobs, derived timers.

``build_params`` turns a validated ``RunConfig`` into a pytree of NumPy arrays with fixed dtypes;
``stack`` makes a batch of them (leading axis = configuration). Everything here may differ
between the configurations of one compiled batch.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .config import PAGE_UNITS, RunConfig, migrate_limit, units_limit
from .knobs import Knobs, flatten
from .machine import PAGE_SIZE
from .pytree import pytree_dataclass
from .static import Static

i32 = np.int32
f32 = np.float32


@pytree_dataclass
class MachineParams:
    cpu_node: np.ndarray  # [C]
    cpu_core: np.ndarray  # [C]
    node_pages: np.ndarray  # [N] capacity in 4 KiB pages
    wmark_low: np.ndarray  # [N]
    wmark_high: np.ndarray  # [N]
    distance: np.ndarray  # [N, N] SLIT
    zonelist: np.ndarray  # [N, N] nodes by distance from each node
    # the memory system (memsys.py): integer ps, Q8 miss slots, f32 scales of the utilisations
    lat_ps: np.ndarray  # [N, N] idle latency of a miss from a CPU of node a to memory of node b
    core_mlp_q8: np.ndarray  # miss slots of one core, Q8
    socket_mlp_q8: np.ndarray  # [N] miss slots of one node's cores together, Q8
    mc_svc_ps: np.ndarray  # [N] controller time per line written (bzero_traffic lines of DRAM traffic)
    link_svc_ps: np.ndarray  # [N, N] link time per line carried
    mc_scale: np.ndarray  # [N] f32: Q16 utilisation per byte/us written into the node
    link_scale: np.ndarray  # [N, N] f32: Q16 utilisation per byte/us carried a -> b
    rfo: np.ndarray  # f32: read-for-ownership lines per line written (bzero_traffic - 1)


@pytree_dataclass
class WorkloadParams:
    task_mm: np.ndarray  # [T]
    init_start: np.ndarray  # [T] global unit index
    init_len: np.ndarray  # [T] units
    init_passes: np.ndarray  # [T]
    init_bind: np.ndarray  # [T] node mask (0 = default policy)
    init_by_slice: np.ndarray  # [T] 0/1
    work_start: np.ndarray
    work_len: np.ndarray
    work_passes: np.ndarray
    work_bind: np.ndarray
    cpus_allowed: np.ndarray  # [T] node mask (never 0: all nodes when unrestricted)
    start_after: np.ndarray  # [T] -1 or task index
    mm_start: np.ndarray  # [M] first unit (pmd aligned)
    mm_len: np.ndarray  # [M] units (whole pmds)
    mm_vma_bind: np.ndarray  # [M] node mask of an explicit VMA policy (0 = none)
    # work-phase cycle (workloads/base.py): cyc_work passes over the work region, then cyc_alt passes
    # over the alternate region, repeated; cyc_alt = 0 (alt_start = work_start, alt_len = 1): none
    alt_start: np.ndarray  # [T] global unit index
    alt_len: np.ndarray  # [T] units
    cyc_work: np.ndarray  # [T] >= 1
    cyc_alt: np.ndarray  # [T] >= 0
    mm_respawns: np.ndarray  # [M] processes a slot runs after its first (0 = an ordinary process)
    # [S] 0..S-1: S = page units of the largest slot with respawns (whole pmds), 0 when there is none.
    # Only its *shape* is used: the static capacity of the per-tick slot reset (lifecycle.exit_mms).
    slot_lane: np.ndarray


@pytree_dataclass
class Derived:
    """Host-side conversions of knobs into ticks and per-tick probabilities (no float in the tick)."""
    scan_sleep_ticks: np.ndarray
    pass_sleep_half_ticks: np.ndarray
    migrate_sleep_ticks: np.ndarray
    balance_ticks: np.ndarray
    khugepaged_sleep_ticks: np.ndarray
    noise_threshold: np.ndarray  # P(noise move in a tick) * 2^24
    active_balance_ticks: np.ndarray  # ticks between active-balance points (0 = never)
    phase_jitter_ns: np.ndarray
    speed_a: np.ndarray  # f32 AR(1) coefficient of the thread speed per tick, exp(-tick / correlation)
    speed_b: np.ndarray  # f32 innovation std per tick, jitter * sqrt(1 - a^2)
    scan_walk_pmds: np.ndarray  # most pmds knuma_scand walks in one tick (from this config's pages_to_scan)
    units_limit: np.ndarray  # most units one thread begins in a tick (this config's machine)
    migrate_limit: np.ndarray  # queue entries knuma_migrated looks at per source list (this config's batch)
    thp: np.ndarray  # THP in effect (2 MiB units and transparent_hugepage.enabled)
    # upstream NUMA balancing (policies/upstream.py), from this configuration's policy's knobs
    up_scan_delay_ms: np.ndarray
    up_period_min_ms: np.ndarray
    up_period_max_ms: np.ndarray
    up_reset_ms: np.ndarray
    up_scan_mb: np.ndarray
    up_scan_units: np.ndarray
    up_rl_window_ms: np.ndarray
    up_rl_pages: np.ndarray
    up_numa_force: np.ndarray
    up_period_threshold: np.ndarray
    up_imbalance_pct: np.ndarray
    up_retry_ms: np.ndarray
    up_mm_interval_ms: np.ndarray  # per-process scan interval (wall): -1 = the task's period (3.8/3.13)
    up_settle: np.ndarray  # sched_numa: scan sequences a new home node must wait (0 = no settling)
    up_pull_ticks: np.ndarray  # sched_numa: NUMA_PULL_BIAS interval of a busy CPU
    up_scan_min_units: np.ndarray  # numa_core: the smallest adaptive scan size, in units
    up_rss_min_pages: np.ndarray  # numa_core: RSS threshold of a NUMA candidate
    up_place_ticks: np.ndarray  # numa_core: placement at least this often
    pmd: np.ndarray  # effective knuma_scand/pmd


@pytree_dataclass
class Params:
    policy: np.ndarray  # 0 = none, 1 = autonuma24
    seed: np.ndarray  # uint32 pair: the configuration's PRNG key data
    machine: MachineParams
    workload: WorkloadParams
    knobs: object  # Knobs with array leaves
    derived: Derived


def _register_knobs():
    import jax
    from . import knobs as K
    for cls in (K.KnumaScand, K.KnumaMigrated, K.Scheduler, K.Autonuma, K.Khugepaged, K.TransparentHugepage,
                K.Costs, K.Sched, K.Balancenuma, K.NumaBalancing, K.SchedNuma, K.NumaCore, K.Knobs):
        try:
            jax.tree_util.register_dataclass(cls, data_fields=[f.name for f in __import__("dataclasses").fields(cls)],
                                             meta_fields=[])
        except ValueError:
            pass  # already registered


_register_knobs()


def machine_params(m) -> dict:
    """The memory system's numbers of machine ``m`` as engine arrays (memsys.py's units)."""
    N = m.n_nodes
    svc_mc = 64.0 * m.bzero_traffic / m.node_bw_gbs * 1000.0  # ps per line written (GB/s == bytes/ns)
    svc_l = 64.0 / m.link_matrix() * 1000.0  # ps per line carried
    q16_per_bpus = 65536.0 / (64.0 * 1e6)  # (bytes/us / 64 lines) * svc_ps / 1e6 ps per us, in Q16
    return dict(
        lat_ps=np.rint(m.latency_matrix() * 1000.0).astype(i32),
        core_mlp_q8=np.asarray(int(round(m.core_mlp * 256)), i32),
        socket_mlp_q8=np.full(N, int(round(m.socket_mlp * 256)), i32),
        mc_svc_ps=np.full(N, int(round(svc_mc)), i32),
        link_svc_ps=np.rint(svc_l).astype(i32),
        mc_scale=np.full(N, svc_mc * q16_per_bpus, f32),
        link_scale=(svc_l * q16_per_bpus).astype(f32),
        rfo=np.asarray(m.bzero_traffic - 1.0, f32),
    )


def _ms_ticks(ms: float, tick_ns: int) -> int:
    """Sleeping `ms` wakes the daemon `ceil(ms / tick)` ticks later (at least one tick)."""
    return max(1, math.ceil(ms * 1e6 / tick_ns - 1e-9))


def knob_arrays(knobs: Knobs) -> Knobs:
    import jax
    return jax.tree_util.tree_map(lambda v: np.asarray(v, f32 if isinstance(v, float) else i32), knobs)


def layout(cfg: RunConfig, static: Static):
    """Global unit layout: each process's region starts on a pmd boundary, in mm creation order."""
    wl = cfg.resolved_workload()
    unit_bytes = static.unit_pages * PAGE_SIZE
    upp = static.units_per_pmd
    starts, lens = [], []
    pos = 0
    for p in wl.processes:
        n = max(1, -(-p.mem_bytes // unit_bytes))
        starts.append(pos)
        lens.append(n)
        pos += -(-n // upp) * upp
    assert pos == static.n_units, (pos, static.n_units)
    return wl, np.array(starts, i32), np.array(lens, i32)


def build_params(cfg: RunConfig, static: Static) -> Params:
    m = cfg.resolved_machine()
    wl, mm_start, mm_len = layout(cfg, static)
    unit_bytes = static.unit_pages * PAGE_SIZE
    N = m.n_nodes
    full = (1 << N) - 1
    mn, low, high = m.watermarks_pages()
    dist = m.distance_matrix()
    tick_s = static.tick_ns * 1e-9
    mp = machine_params(m)
    mp = MachineParams(
        cpu_node=m.cpu_node(), cpu_core=m.cpu_core(), node_pages=m.node_pages.astype(i32),
        wmark_low=low.astype(i32), wmark_high=high.astype(i32), distance=dist, zonelist=m.zonelist(), **mp)

    def region(t, off, ln):
        base = int(mm_start[t.mm])
        n_mm = int(mm_len[t.mm])
        s = min(off // unit_bytes, n_mm - 1)
        e = min(max(s + 1, (off + ln) // unit_bytes), n_mm)
        return base + s, e - s

    rows = []
    for t in wl.threads:
        i_s, i_l = region(t, t.init_offset, t.init_len) if t.init_passes else (int(mm_start[t.mm]), 1)
        w_s, w_l = region(t, t.work_offset, t.work_len) if t.work_passes else (int(mm_start[t.mm]), 1)
        rows.append((t.mm, i_s, i_l, t.init_passes, t.init_bind_mask, int(t.init_bind_by_slice),
                     w_s, w_l, t.work_passes, t.work_bind_mask, t.cpus_allowed or full, t.start_after))
    a = np.array(rows, dtype=np.int64).T.astype(i32)
    cyc = np.array([(*region(t, t.alt_offset, t.alt_len), t.cycle_work, t.cycle_alt)
                    if t.work_passes and t.cycle_alt else (row[6], 1, 1, 0)
                    for t, row in zip(wl.threads, rows)], np.int64).T.astype(i32)
    upp = static.units_per_pmd
    slot_units = max([-(-int(n) // upp) * upp for n, p in zip(mm_len, wl.processes) if p.respawns > 0], default=0)
    wp = WorkloadParams(task_mm=a[0], init_start=a[1], init_len=a[2], init_passes=a[3], init_bind=a[4],
                        init_by_slice=a[5], work_start=a[6], work_len=a[7], work_passes=a[8], work_bind=a[9],
                        cpus_allowed=a[10], start_after=a[11], mm_start=mm_start, mm_len=mm_len,
                        mm_vma_bind=np.array([p.vma_bind_mask for p in wl.processes], i32),
                        alt_start=cyc[0], alt_len=cyc[1], cyc_work=cyc[2], cyc_alt=cyc[3],
                        mm_respawns=np.array([p.respawns for p in wl.processes], i32),
                        slot_lane=np.arange(slot_units, dtype=i32))
    k = cfg.knobs
    tn = static.tick_ns
    noise_p = min(1.0, k.sched.noise_migrations_per_sec * tick_s)
    thp = int(static.unit_pages == 512 and k.transparent_hugepage.enabled == 1)
    d = Derived(
        scan_sleep_ticks=np.asarray(_ms_ticks(k.autonuma.knuma_scand.scan_sleep_millisecs, tn), i32),
        pass_sleep_half_ticks=np.asarray(_ms_ticks(k.autonuma.knuma_scand.scan_sleep_pass_millisecs // 2, tn), i32),
        migrate_sleep_ticks=np.asarray(_ms_ticks(k.autonuma.knuma_migrated.migrate_sleep_millisecs, tn), i32),
        balance_ticks=np.asarray(_ms_ticks(k.sched_numa.balance_interval_millisecs if cfg.policy == "sched_numa"
                                           else k.autonuma.balance_interval_millisecs, tn), i32),
        khugepaged_sleep_ticks=np.asarray(_ms_ticks(k.transparent_hugepage.khugepaged.scan_sleep_millisecs, tn), i32),
        noise_threshold=np.asarray(int(round(noise_p * (1 << 24))), i32),
        active_balance_ticks=np.asarray(_ms_ticks(k.sched.active_balance_millisecs, tn)
                                        if k.sched.active_balance_millisecs > 0 else 0, i32),
        phase_jitter_ns=np.asarray(tn * k.sched.phase_jitter_permille // 1000, i32),
        speed_a=np.asarray(math.exp(-tn * 1e-6 / k.sched.speed_correlation_ms), f32),
        speed_b=np.asarray(k.sched.speed_jitter_permille
                           * math.sqrt(max(0.0, 1 - math.exp(-2 * tn * 1e-6 / k.sched.speed_correlation_ms))), f32),
        scan_walk_pmds=np.asarray(-(-k.autonuma.knuma_scand.pages_to_scan // 512) + 1, i32),
        units_limit=np.asarray(units_limit(m, tn, static.unit_pages), i32),
        migrate_limit=np.asarray(migrate_limit(k, static.unit_pages), i32),
        thp=np.asarray(thp, i32),
        **_upstream_derived(cfg, static),
        pmd=np.asarray(1 if static.unit_pages == 512 else int(not static.pte_faults), i32),
    )
    import jax
    key = np.asarray(jax.random.key_data(jax.random.PRNGKey(cfg.seed)), np.uint32)
    return Params(policy=np.asarray(cfg.engine_policy, i32), seed=key, machine=mp, workload=wp,
                  knobs=knob_arrays(k), derived=d)


def _upstream_derived(cfg: RunConfig, static: Static) -> dict:
    from .config import POLICY_BALANCENUMA, POLICY_NUMA_CORE, POLICY_SCHED_NUMA
    k = cfg.knobs
    b, n, sn = k.balancenuma, k.numa_balancing, k.sched_numa
    if cfg.engine_policy == POLICY_NUMA_CORE:
        c = k.numa_core
        mb = c.sched_numa_scan_size_max_mb
        v = dict(up_scan_delay_ms=c.sched_numa_scan_delay_ms, up_period_min_ms=c.sched_numa_scan_period_min_ms,
                 up_period_max_ms=c.sched_numa_scan_period_max_ms, up_rl_window_ms=100, up_rl_pages=2**30,
                 up_mm_interval_ms=c.sched_numa_scan_period_min_ms, up_settle=0)
    elif cfg.engine_policy == POLICY_SCHED_NUMA:
        mb = sn.sched_numa_scan_size_mb
        v = dict(up_scan_delay_ms=sn.sched_numa_scan_delay_ms, up_period_min_ms=sn.sched_numa_scan_period_min_ms,
                 up_period_max_ms=sn.sched_numa_scan_period_max_ms, up_rl_window_ms=100, up_rl_pages=2**30,
                 up_mm_interval_ms=2 * sn.sched_numa_scan_period_min_ms,  # one scan per process per 2 x min
                 up_settle=sn.sched_numa_settle_count if sn.numa_settle else 0)
    else:
        g = b if cfg.engine_policy == POLICY_BALANCENUMA else n
        mb = g.numa_balancing_scan_size_mb
        v = dict(up_scan_delay_ms=g.numa_balancing_scan_delay_ms, up_period_min_ms=g.numa_balancing_scan_period_min_ms,
                 up_period_max_ms=g.numa_balancing_scan_period_max_ms, up_rl_window_ms=g.migrate_interval_millisecs,
                 up_rl_pages=g.ratelimit_pages, up_mm_interval_ms=-1, up_settle=0)
    v.update(up_reset_ms=b.numa_balancing_scan_period_reset, up_scan_mb=mb,
             up_scan_units=-(-mb * 256 // static.unit_pages), up_numa_force=b.numa_force,
             up_period_threshold=n.period_threshold, up_imbalance_pct=n.imbalance_pct,
             up_retry_ms=n.migrate_retry_millisecs, up_pull_ticks=_ms_ticks(sn.balance_interval_millisecs, static.tick_ns),
             up_scan_min_units=-(-k.numa_core.sched_numa_scan_size_min_mb * 256 // static.unit_pages),
             up_rss_min_pages=k.numa_core.sched_numa_rss_threshold_mb * 256,
             up_place_ticks=_ms_ticks(k.numa_core.placement_interval_millisecs, static.tick_ns))
    return {key: np.asarray(val, i32) for key, val in v.items()}


def stack(params: Sequence[Params]) -> Params:
    import dataclasses
    import jax
    # the slot-reset capacity is the batch's largest (configurations of one shape may differ in it)
    s = max(len(p.workload.slot_lane) for p in params)
    params = [dataclasses.replace(p, workload=dataclasses.replace(p.workload, slot_lane=np.arange(s, dtype=i32)))
              if len(p.workload.slot_lane) != s else p for p in params]
    return jax.tree_util.tree_map(lambda *xs: np.stack(xs), *params)


def index(params: Params, i: int) -> Params:
    import jax
    return jax.tree_util.tree_map(lambda x: x[i], params)
