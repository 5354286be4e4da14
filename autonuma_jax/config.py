"""One simulated configuration (machine x workload x policy x knobs x seed) and its validation.

``RunConfig`` is plain, hashable Python. ``build_static`` derives the shapes a batch of them needs;
``params.build_params`` turns each into traced arrays. Everything is checked here, before any
compile, with one-line ``ConfigError``s that name the field, the value and the allowed range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from .errors import ConfigError, require
from .knobs import Knobs, validate as validate_knobs
from .machine import PAGE_SIZE, Machine, get_machine
from .static import UNIT_2M, UNIT_4K, Static, pow2_at_least
from .workloads import BUILDS, VARIANTS, Workload, make_benchmark

# Kernel policies understood by the engine (a traced integer, so they can share one batch).
POLICY_NONE = 0  # Linux 3.6: first touch, NUMA-unaware CFS, no migration
POLICY_AUTONUMA24 = 1
POLICY_BALANCENUMA = 2  # Linux 3.8 (policies/upstream.py)
POLICY_NUMA_BALANCING = 3  # Linux 3.13 (policies/upstream.py)
POLICY_SCHED_NUMA = 4  # Peter Zijlstra's fault-driven home-node "sched-numa rewrite" (policies/schednuma.py)
POLICY_NUMA_CORE = 5  # numa/core "adaptive NUMA affinity", v18 / unified tree (policies/numacore.py)
# policies that scan from task context and handle hinting faults in policies/upstream.py
UPSTREAM = (POLICY_BALANCENUMA, POLICY_NUMA_BALANCING, POLICY_SCHED_NUMA, POLICY_NUMA_CORE)

# User-facing policy names -> (engine policy, workload variant). hard_bind / inverse_bind are the
# benchmark's own numactl-style bindings run on the `none` kernel (spec §10.1).
POLICIES = {
    "none": (POLICY_NONE, None),
    "autonuma24": (POLICY_AUTONUMA24, None),
    "hard_bind": (POLICY_NONE, "hard_bind"),
    "inverse_bind": (POLICY_NONE, "inverse_bind"),
    "balancenuma": (POLICY_BALANCENUMA, None),
    "numa_balancing": (POLICY_NUMA_BALANCING, None),
    "sched_numa": (POLICY_SCHED_NUMA, None),
    "numa_core": (POLICY_NUMA_CORE, None),
}

PAGE_UNITS = {"2M": UNIT_2M, "4K": UNIT_4K}


# perf bench numa: simulated seconds past its -s window (its initialisation before the barrier)
PERF_EXIT_MARGIN_S = 3.0


@dataclass(frozen=True)
class SimConfig:
    """How a configuration is simulated: time step, length, memory granularity, reporting.

    Attributes (allowed ranges as ``validate`` checks them, before any compile):
        tick_ms: the simulation step, ms of simulated time; a number in [0.05, 10].
        duration_s: simulated seconds at most (a run stops earlier once every thread finished,
            with ``simulate(stop_when_done=True)``); a number in (0, 100000], at least one report
            interval and a whole multiple of ``report_interval_ms``. A ``perf_bench_numa`` workload
            with ``nr_secs`` ends at most ``nr_secs + 3`` s in (perf exits after its -s window,
            which opens once every thread is initialised): ``validate_run`` shortens a longer
            duration to that (a whole number of report intervals).
        page_unit: the granularity memory is tracked in: ``"2M"`` (2 MiB units: exact for
            AutoNUMA's default pmd scanning and for THP) or ``"4K"`` (4 KiB pages: needed for pte-mode
            scanning, ``autonuma.knuma_scand.pmd=0``, with THP off; 512x the memory).
        report_interval_ms: simulated ms between two time-series rows (``Result.rows``); a number in
            [tick_ms, 3600000] and a whole multiple of ``tick_ms``.
        check_invariants: check the state's invariants inside the compiled code after every
            report interval and stop with the one that broke (slower); True or False (or 0 / 1).
    """
    tick_ms: float = 1.0
    duration_s: float = 60.0
    page_unit: str = "2M"
    report_interval_ms: float = 1000.0
    check_invariants: bool = False

    def validate(self) -> "SimConfig":
        """Check every field's type and range; return the settings normalised (floats, a bool)."""
        from . import checks as K
        tick = K.number("sim.tick_ms", self.tick_ms, 0.05, 10)
        dur = K.number("sim.duration_s", self.duration_s, 0, 100_000, lo_open=True)
        unit = K.choice("sim.page_unit", self.page_unit, PAGE_UNITS)
        rep = K.number("sim.report_interval_ms", self.report_interval_ms, tick, 3_600_000)
        inv = K.flag("sim.check_invariants", self.check_invariants)
        ratio = rep / tick
        require(abs(ratio - round(ratio)) < 1e-9, "sim.report_interval_ms", self.report_interval_ms,
                f"a whole multiple of sim.tick_ms ({self.tick_ms})")
        require(dur * 1000 >= rep, "sim.duration_s", self.duration_s, f">= one report interval ({rep} ms)")
        n = dur * 1000 / rep
        # the run is a whole number of report intervals: say so instead of simulating more than asked
        require(abs(n - round(n)) < 1e-6, "sim.duration_s", self.duration_s,
                f"a whole multiple of sim.report_interval_ms ({rep:g} ms), e.g. "
                f"{math.floor(n) * rep / 1000:g} or {math.ceil(n) * rep / 1000:g}")
        return replace(self, tick_ms=tick, duration_s=dur, page_unit=unit, report_interval_ms=rep, check_invariants=inv)

    @property
    def tick_ns(self) -> int:
        return int(round(self.tick_ms * 1e6))

    @property
    def report_ticks(self) -> int:
        return int(round(self.report_interval_ms / self.tick_ms))

    @property
    def n_reports(self) -> int:
        return max(1, round(self.duration_s * 1000 / self.report_interval_ms))  # validated: within 1e-6 of whole


@dataclass(frozen=True)
class RunConfig:
    """One configuration to simulate: machine x workload x policy x knobs x sim settings x seed.

    Plain and hashable; ``validate_run`` (called by ``simulate`` before any compile) checks every
    field and raises one ``ConfigError`` line naming the field, the value and what it must be.

    Attributes:
        machine: a preset name (``autonuma_jax.MACHINES``: ``2node_24cpu``, ``4node_32cpu`` ...) or
            a ``Machine`` (checked by ``Machine.validate``); at most 4096 CPUs.
        workload: a benchmark name (``autonuma_jax.BENCHMARKS``: ``numa01``, ``numa02`` ...), built
            for the machine, or a ``Workload``; at most 4096 threads, and its memory must fit in
            the machine's above the high watermarks (and in the nodes any binding allows).
        policy: the kernel policy, one of ``POLICIES`` (``autonuma24``, ``none``, ``hard_bind``,
            ``inverse_bind``, ``balancenuma``, ``numa_balancing``, ``sched_numa``, ``numa_core``).
        knobs: the tuning knobs (``Knobs``; every range in ``knobs.RANGES``). With
            ``sim.page_unit="2M"`` and THP off, ``autonuma.knuma_scand.pmd`` must be 1.
        sim: the simulation settings (``SimConfig``).
        seed: the random seed (scheduler noise, speed jitter, numa01's forced node); an integer in
            [0, 2**31 - 1].
        variant: the benchmark variant when the policy imposes none (``hard_bind`` and
            ``inverse_bind`` do): one of ``workloads.VARIANTS`` (``default``, ``no_force``,
            ``split_init``, ``hard_bind``, ``inverse_bind``, ``inverse_bind_both``).
        build: the dated autonuma-benchmark build a benchmark name compiles to: one of
            ``workloads.BUILDS`` (``2012-03``, ``2012-06-06``, ``2012-07-05``, ``2012-07-15``,
            ``latest``).
    """
    machine: object = "2node_24cpu"  # preset name or Machine
    workload: object = "numa01"  # benchmark name or Workload
    policy: str = "autonuma24"
    knobs: Knobs = field(default_factory=Knobs)
    sim: SimConfig = field(default_factory=SimConfig)
    seed: int = 0
    variant: str = "default"  # workload variant when the policy does not impose one (e.g. no_force)
    build: str = "latest"  # the dated autonuma-benchmark build (workloads.BUILDS): what default / inverse_bind compile to

    def resolved_machine(self) -> Machine:
        return self.machine if isinstance(self.machine, Machine) else get_machine(self.machine)

    @property
    def engine_policy(self) -> int:
        return POLICIES[self.policy][0]

    def force_node(self) -> int:
        """numa01's FORCE_SAME_NODE node: `(time(NULL) & 1)` in the source; here a seeded coin."""
        return int((self.seed * 2654435761 >> 7) & 1)

    def resolved_workload(self) -> Workload:
        if isinstance(self.workload, Workload):
            return self.workload.validate(self.resolved_machine().n_nodes)
        pol_variant = POLICIES[self.policy][1]
        variant = pol_variant or self.variant
        return make_benchmark(self.workload, self.resolved_machine(), variant, self.force_node(), self.build)

    def label(self) -> str:
        wl = self.workload if isinstance(self.workload, str) else self.workload.name
        m = self.machine if isinstance(self.machine, str) else self.machine.name
        return f"{m}/{wl}/{self.policy}/seed{self.seed}"


def validate_run(cfg: RunConfig, index: int | None = None) -> RunConfig:
    """Validate one configuration; errors name the configuration index in a batch."""
    from . import checks as K
    where = "" if index is None else f"config[{index}]."
    try:  # best effort before the fields are checked: a knob error still names its configuration
        label = cfg.label()
    except Exception:  # noqa: BLE001  (fields of any type: the checks below say what is wrong)
        label = None
    try:
        K.choice("policy", cfg.policy, POLICIES)
        seed = K.integer("seed", cfg.seed, 0, 2**31 - 1)
        K.choice("variant", cfg.variant, VARIANTS)
        K.choice("workload.build", cfg.build, BUILDS)
        if isinstance(cfg.machine, Machine):
            machine = cfg.machine.validate()
            mach = machine
        elif isinstance(cfg.machine, str):
            machine = get_machine(cfg.machine)
            mach = cfg.machine
        else:
            raise ConfigError(f"machine={cfg.machine!r}: must be a preset name or a Machine")
        if not isinstance(cfg.workload, (str, Workload)):
            raise ConfigError(f"workload={cfg.workload!r}: must be a workload name or a Workload")
        if not isinstance(cfg.sim, SimConfig):
            raise ConfigError(f"sim={cfg.sim!r}: must be a SimConfig")
        if not isinstance(cfg.knobs, Knobs):
            raise ConfigError(f"knobs={cfg.knobs!r}: must be a Knobs")
        sim = cfg.sim.validate()
        knobs = validate_knobs(cfg.knobs)
        cfg = replace(cfg, machine=mach, sim=sim, knobs=knobs, seed=seed)
        label = cfg.label()
        wl = cfg.resolved_workload()
        nr_secs = getattr(wl.bench, "nr_secs", 0)
        if nr_secs:  # perf exits after its window: nothing later is measured
            rep = sim.report_interval_ms
            cap = math.ceil((nr_secs + PERF_EXIT_MARGIN_S) * 1000 / rep - 1e-9) * rep / 1000
            if sim.duration_s > cap:
                cfg = replace(cfg, sim=replace(sim, duration_s=cap))
        k = cfg.knobs
        unit_pages = PAGE_UNITS[sim.page_unit]
        if unit_pages == UNIT_2M and not k.transparent_hugepage.enabled:
            require(k.autonuma.knuma_scand.pmd == 1, "autonuma.knuma_scand.pmd", k.autonuma.knuma_scand.pmd,
                    "1 with sim.page_unit=2M and THP off (pte-mode scanning needs sim.page_unit=4K)")
        require(getattr(wl.bench, "thp", 0) != -1 or not k.transparent_hugepage.enabled,
                "transparent_hugepage.enabled", k.transparent_hugepage.enabled,
                f"0 for {wl.name} (--thp -1: MADV_NOHUGEPAGE on all its memory; with sim.page_unit=4K)")
        _check_fits(machine, wl, unit_pages)
    except ConfigError as e:
        raise ConfigError(f"{where}{e}" + (f" [{label}]" if index is not None and label else "")) from None
    return cfg


def _units(nbytes: int, unit_pages: int) -> int:
    return max(1, -(-nbytes // (unit_pages * PAGE_SIZE)))


def _check_fits(machine: Machine, wl: Workload, unit_pages: int) -> None:
    """The workload must fit in the machine's memory (with bindings, in the bound nodes). Cheap
    bounds first; every loop is linear in threads and processes."""
    require(machine.n_cpus <= 4096, "machine.n_cpus", machine.n_cpus, "<= 4096")
    require(wl.n_tasks <= 4096, f"workload[{wl.name}].threads", wl.n_tasks, "<= 4096 threads")
    pages = sum(_units(p.mem_bytes, unit_pages) * unit_pages for p in wl.processes)
    mn, low, high = machine.watermarks_pages()
    usable = int(np.maximum(machine.node_pages - high, 0).sum())
    if pages > usable:
        need = pages * PAGE_SIZE / 2**30
        have = usable * PAGE_SIZE / 2**30
        raise ConfigError(f"workload={wl.name!r}: needs {need:.2f} GiB but machine={machine.name!r} has "
                          f"{have:.2f} GiB above the high watermarks (short by {need - have:.2f} GiB)")
    # A thread allowed only on nodes without CPUs could never run (uneven machines: memory-only nodes).
    with_cpus = machine.cpu_nodes_mask()
    for i, t in enumerate(wl.threads):
        if t.cpus_allowed and not t.cpus_allowed & with_cpus:
            nodes = [machine.node_label(n) for n in range(machine.n_nodes) if t.cpus_allowed >> n & 1]
            raise ConfigError(f"workload={wl.name!r}: thread {i} may run only on node(s) {nodes}, which have no CPUs "
                              f"on machine={machine.name!r} (nodes with CPUs: "
                              f"{[machine.node_label(n) for n in range(machine.n_nodes) if with_cpus >> n & 1]})")
    # Every bind mask used for allocation must be able to hold the memory of the processes bound to it.
    bound: dict = {}
    for t in wl.threads:
        for mask in {t.init_bind_mask, t.work_bind_mask} - {0}:
            bound.setdefault(mask, set()).add(t.mm)
    for mask, procs in bound.items():
        nodes = [n for n in range(machine.n_nodes) if mask >> n & 1]
        cap = sum(max(0, int(machine.node_pages[n] - high[n])) for n in nodes)
        need = sum(_units(wl.processes[i].mem_bytes, unit_pages) * unit_pages for i in procs)
        if need > cap:
            raise ConfigError(f"workload={wl.name!r}: bind mask {mask:#x} holds {cap * PAGE_SIZE / 2**30:.2f} "
                              f"GiB but the processes bound there need {need * PAGE_SIZE / 2**30:.2f} GiB")


def units_limit(machine: Machine, tick_ns: int, unit_pages: int) -> int:
    """Most page units one thread of this machine can begin in a tick: alone on a core, local
    memory on an idle machine (its core's miss slots over the local latency), at the top of the
    speed clamp (1.4 x nominal), plus the unit in progress."""
    max_bytes = machine.thread_peak_gbs * tick_ns * 1.4  # GB/s == bytes/ns
    return math.ceil(max_bytes / (unit_pages * PAGE_SIZE)) + 2


def migrate_limit(knobs: Knobs, unit_pages: int) -> int:
    """Queue entries knuma_migrated looks at per source list in one batch: the batch in units plus
    room for dead entries (cancelled queueings) in front of it."""
    mig_units = -(-knobs.autonuma.knuma_migrated.pages_to_migrate // unit_pages)
    return mig_units + max(64, mig_units // 8)


def task_scan_limit(knobs: Knobs, unit_pages: int) -> int:
    """Page units one task-context scan (task_numa_work) covers: the larger of the two upstream
    policies' scan_size_mb, so that one capacity fits whichever the configuration uses."""
    mb = max(knobs.balancenuma.numa_balancing_scan_size_mb, knobs.numa_balancing.numa_balancing_scan_size_mb,
             knobs.sched_numa.sched_numa_scan_size_mb, knobs.numa_core.sched_numa_scan_size_max_mb)
    return -(-mb * 256 // unit_pages)


def pte_mode(cfg: RunConfig) -> bool:
    """4 KiB units arm ptes one by one: AutoNUMA with knuma_scand/pmd=0, or an upstream policy."""
    if PAGE_UNITS[cfg.sim.page_unit] != UNIT_4K:
        return False
    return cfg.engine_policy in UPSTREAM or cfg.knobs.autonuma.knuma_scand.pmd == 0


def build_static(cfgs: Sequence[RunConfig]) -> Static:
    """The shapes a batch of (already validated) configurations needs; they must agree."""
    first = cfgs[0]
    machine = first.resolved_machine()
    wl = first.resolved_workload()
    sim = first.sim
    unit_pages = PAGE_UNITS[sim.page_unit]
    upp = 512 // unit_pages
    n_units = sum(-(-_units(p.mem_bytes, unit_pages) // upp) * upp for p in wl.processes)
    pte_faults = pte_mode(first)
    unit_bytes = unit_pages * PAGE_SIZE
    # A thread alone on a core at local speed, 1.4 x faster at the top of the jitter clamp.
    units_per_tick = pow2_at_least(max(units_limit(c.resolved_machine(), sim.tick_ns, unit_pages) for c in cfgs), 4)
    max_scan = max(c.knobs.autonuma.knuma_scand.pages_to_scan for c in cfgs)
    scan_pmds = pow2_at_least(-(-max_scan // 512) + 1, 64)
    migrate_window = pow2_at_least(max(migrate_limit(c.knobs, unit_pages) for c in cfgs), 64)
    ring_capacity = pow2_at_least(n_units + 64, 64)
    task_scan_units = pow2_at_least(max(task_scan_limit(c.knobs, unit_pages) for c in cfgs), 8)
    # none and autonuma24 are always compiled in (cheap, and batches mixing them share one program);
    # other policies' phases only when a configuration of the bucket uses them
    policies = tuple(sorted({POLICY_NONE, POLICY_AUTONUMA24} | {c.engine_policy for c in cfgs}))
    st = Static(
        n_nodes=machine.n_nodes, n_cpus=machine.n_cpus, n_tasks=wl.n_tasks, n_mms=wl.n_mms, n_units=n_units,
        unit_pages=unit_pages, pte_faults=pte_faults, tick_ns=sim.tick_ns, units_per_tick=units_per_tick,
        scan_pmds_per_tick=scan_pmds, migrate_window=migrate_window, ring_capacity=ring_capacity,
        report_ticks=sim.report_ticks, n_reports=sim.n_reports, check_invariants=bool(sim.check_invariants),
        task_scan_units=task_scan_units, policies=policies,
    )
    return st


def shape_key(cfg: RunConfig) -> tuple:
    """Configurations with the same key can share a batch (same shapes before capacities)."""
    m = cfg.resolved_machine()
    wl = cfg.resolved_workload()
    s = cfg.sim
    unit_pages = PAGE_UNITS[s.page_unit]
    return (m.n_nodes, m.n_cpus, wl.n_tasks, tuple(_units(p.mem_bytes, unit_pages) for p in wl.processes),
            s.page_unit, s.tick_ns, s.report_ticks, s.n_reports, bool(s.check_invariants), pte_mode(cfg))
